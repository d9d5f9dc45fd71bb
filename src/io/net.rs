//! socket2 builders for every socket the server opens: control listeners
//! (SO_REUSEPORT, one per worker, the first one exclusive), passive data listeners (never
//! SO_REUSEPORT), active data connections, and per-connection options.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// How a control listener takes its address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The first listener on the address (worker 0): it fails with
    /// EADDRINUSE when anything already listens there, and then lets the
    /// other workers join it.
    First,
    /// Another worker's listener, joining the first one's SO_REUSEPORT group.
    Join,
}

/// A control listener for one worker, non-blocking. Every worker has its own
/// socket on the same address (SO_REUSEPORT: the kernel spreads the
/// connections over them).
///
/// SO_REUSEPORT alone would let a second server (or any program of the same
/// user that sets it) join the group silently, and the kernel would split
/// new connections between the two. So the first listener binds and listens
/// WITHOUT SO_REUSEPORT, which fails with EADDRINUSE against any listener on
/// the address, with or without SO_REUSEPORT (and of two servers starting at
/// once, the second `listen` fails); only then does it set SO_REUSEPORT,
/// which the kernel reads when the next socket binds, so the other workers
/// (`Claim::Join`) can join it. A program that binds later with
/// SO_REUSEPORT as the same user can still join: the kernel offers no way
/// to close a group.
pub fn control_listener(addr: SocketAddr, backlog: i32, claim: Claim) -> io::Result<mio::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // SO_REUSEADDR: a restart is not blocked by the last run's TIME_WAITs
    // (on Linux it never allows binding over a listening socket).
    sock.set_reuse_address(true)?;
    if claim == Claim::Join {
        sock.set_reuse_port(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    if claim == Claim::First {
        sock.set_reuse_port(true)?;
    }
    Ok(mio::net::TcpListener::from_std(sock.into()))
}

/// --check-config: whether a control listener could claim `addr` now (see
/// `control_listener`): binds a socket without SO_REUSEPORT and closes it.
pub fn check_free(addr: SocketAddr) -> io::Result<()> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())
}

/// The error of a control listener that could not bind `addr`, saying who
/// is in the way when the address is taken.
pub fn listen_error(addr: SocketAddr, e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        let msg = format!(
            "listen on {addr}: address already in use: another program (perhaps another mirrorftpd) listens there"
        );
        return io::Error::new(e.kind(), msg);
    }
    io::Error::new(e.kind(), format!("listen on {addr}: {e}"))
}

/// A passive data listener on `ip`, on the first of `ports` that is free
/// (0: a port the kernel chooses, which is slow once many TIME_WAIT sockets
/// exist; see `pasv_ports.rs`). One socket serves every try: a failed bind
/// leaves it unbound. AddrInUse when none was free.
/// Never SO_REUSEPORT: a passive port belongs to exactly one session.
pub fn passive_listener(ip: IpAddr, ports: impl IntoIterator<Item = u16>) -> io::Result<mio::net::TcpListener> {
    let fresh = || -> io::Result<Socket> {
        let sock =
            Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), Type::STREAM.nonblocking().cloexec(), None)?;
        if ip.is_ipv6() {
            sock.set_only_v6(true)?;
        }
        // SO_REUSEADDR (never SO_REUSEPORT): a port whose earlier data
        // connections sit in TIME_WAIT (or are still open) is usable at once
        // when named explicitly; only another listener on it conflicts.
        sock.set_reuse_address(true)?;
        Ok(sock)
    };
    let mut sock = fresh()?;
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for port in ports {
        match sock.bind(&SocketAddr::new(ip, port).into()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        }
        match sock.listen(1) {
            Ok(()) => return Ok(mio::net::TcpListener::from_std(sock.into())),
            // Another listener took the port between our bind and listen
            // (SO_REUSEADDR lets two sockets bind before either listens).
            // This socket is bound now: try the next port with a new one.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                last = e;
                sock = fresh()?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Starts a non-blocking connect from `local_ip` to `to` for an active-mode
/// data connection, from `from_port` (--active-from-port-20) or from a port
/// the kernel chooses.
pub fn active_connect(local_ip: IpAddr, from_port: Option<u16>, to: SocketAddr) -> io::Result<mio::net::TcpStream> {
    let sock = Socket::new(Domain::for_address(to), Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))?;
    match from_port {
        // SO_REUSEADDR: every session binds the same source port; connect()
        // then needs only the 4-tuple to be unique (EADDRNOTAVAIL if not).
        Some(port) => {
            sock.set_reuse_address(true)?;
            sock.bind(&SocketAddr::new(local_ip, port).into())?;
        }
        // Let connect() pick the port for the whole 4-tuple, so TIME_WAIT from
        // earlier transfers does not exhaust the ephemeral range at bind().
        None => {
            super::sys::set_bind_address_no_port(&sock)?;
            sock.bind(&SocketAddr::new(local_ip, 0).into())?;
        }
    }
    match sock.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(mio::net::TcpStream::from_std(sock.into()))
}

/// Options of an accepted control connection: SO_OOBINLINE so urgent data
/// (Telnet Synch, or ftplib's whole ABOR line sent with MSG_OOB) stays in the
/// byte stream, and TCP_NODELAY for prompt replies.
pub fn tune_control(s: &mio::net::TcpStream, nodelay: bool) -> io::Result<()> {
    let sock = SockRef::from(s);
    sock.set_out_of_band_inline(true)?;
    if nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    Ok(())
}

/// Options of a data connection: buffer sizes when configured (0 keeps the
/// kernel's autotuning), keepalive so a dead peer is noticed, and with
/// `max_rate` > 0 (--max-rate) the kernel's pacing of what it sends.
pub fn tune_data(s: &mio::net::TcpStream, sndbuf: usize, rcvbuf: usize, max_rate: u64) -> io::Result<()> {
    let sock = SockRef::from(s);
    if sndbuf > 0 {
        sock.set_send_buffer_size(sndbuf)?;
    }
    if rcvbuf > 0 {
        sock.set_recv_buffer_size(rcvbuf)?;
    }
    sock.set_keepalive(true)?;
    if max_rate > 0 {
        super::sys::set_max_pacing_rate(s, max_rate)?;
    }
    Ok(())
}

/// Reads a pending socket error (after a non-blocking connect completes).
pub fn take_error(s: &mio::net::TcpStream) -> io::Result<Option<io::Error>> {
    s.take_error()
}

/// Canonical form of an address for comparisons: IPv4-mapped IPv6 → IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What reading a PROXY protocol header (`--proxy-protocol`) came to.
#[derive(Debug)]
pub enum ProxyRead {
    /// Not all of it has arrived: wait for the socket to be readable.
    Wait,
    /// The header was read (and only it: what follows stays in the socket);
    /// the client's address, or None (LOCAL, UNKNOWN: the connection's own).
    Done(Option<SocketAddr>),
    /// No valid header: drop the connection, for this reason.
    Failed(String),
}

/// Reads a PROXY header off `sock`: `peek` until `proto::proxy::parse`
/// decides, then exactly the header's length is read, so no byte after it
/// (an SSH version line, a command, a TLS ClientHello) is ever consumed.
pub fn read_proxy_header(sock: &mio::net::TcpStream) -> ProxyRead {
    use crate::proto::proxy::{self, Parse};
    let mut buf = [0u8; proxy::MAX_HEADER];
    let mut interrupted = 0;
    let seen = loop {
        match sock.peek(&mut buf) {
            Ok(0) => return ProxyRead::Failed("closed before its PROXY header".into()),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ProxyRead::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && interrupted < 8 => interrupted += 1,
            Err(e) => return ProxyRead::Failed(format!("read error before the PROXY header: {e}")),
        }
    };
    match proxy::parse(&buf[..seen]) {
        Parse::NeedMore => ProxyRead::Wait,
        Parse::Invalid(why) => ProxyRead::Failed(format!("bad PROXY header: {why}")),
        Parse::Done { consumed, source, .. } => match take_exactly(sock, &mut buf[..consumed]) {
            Ok(()) => ProxyRead::Done(source),
            Err(e) => ProxyRead::Failed(format!("reading the PROXY header: {e}")),
        },
    }
}

/// Reads exactly `buf.len()` bytes that `peek` has already seen.
fn take_exactly(mut sock: &mio::net::TcpStream, buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read;
    let mut got = 0;
    let mut tries = 0;
    while got < buf.len() {
        tries += 1;
        if tries > 2 * crate::proto::proxy::MAX_HEADER {
            return Err(io::Error::other("the header did not come off the socket"));
        }
        match sock.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
