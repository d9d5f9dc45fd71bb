//! systemd integration without libsystemd: `sd_notify` (READY=1, RELOADING=1,
//! STOPPING=1 as datagrams to $NOTIFY_SOCKET) and socket activation
//! (LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES: fds 3.. are the control listeners).
//!
//! Both read and unset their environment variables at start-up, while the
//! process has one thread; the notify socket is connected then, so messages
//! still reach systemd after --chroot.

use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

use socket2::{Socket, Type};

use crate::io::creds;

/// The first fd passed by socket activation (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;
/// Most inherited fds accepted (a sanity bound on LISTEN_FDS).
const MAX_LISTEN_FDS: usize = 64;
/// A socket unit's FileDescriptorName= that marks an implicit-TLS listener.
pub const IMPLICIT_TLS_NAME: &str = "implicit-tls";

/// A connected datagram socket to the service manager.
pub struct Notifier {
    sock: UnixDatagram,
}

impl Notifier {
    /// Connects to $NOTIFY_SOCKET (a path, or an abstract name written with a
    /// leading '@') and unsets it. `None`: not run by a service manager, or
    /// the socket is unusable (logged; like sd_notify, not fatal).
    /// Call before other threads start.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        creds::unset_env("NOTIFY_SOCKET");
        let target = target.to_string_lossy().into_owned();
        match Notifier::connect(&target) {
            Ok(n) => Some(n),
            Err(e) => {
                crate::log::warn(format_args!("NOTIFY_SOCKET {target:?}: {e}; not notifying the service manager"));
                None
            }
        }
    }

    fn connect(target: &str) -> io::Result<Notifier> {
        let addr = match target.strip_prefix('@') {
            Some(name) => UnixAddr::from_abstract_name(name.as_bytes())?,
            None => UnixAddr::from_pathname(target)?,
        };
        let sock = UnixDatagram::unbound()?;
        sock.connect_addr(&addr)?;
        sock.set_nonblocking(true)?;
        Ok(Notifier { sock })
    }

    /// Sends one state message (`READY=1`, ...); failures are logged, not fatal.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.sock.send(state.as_bytes()) {
            crate::log::warn(format_args!("sd_notify {:?}: {e}", state.lines().next().unwrap_or("")));
        }
    }

    pub fn ready(&self) {
        self.send("READY=1\nSTATUS=serving");
    }

    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", creds::monotonic_usec()));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

/// Control listeners passed by socket activation, with whether each is an
/// implicit-TLS one (FileDescriptorName=implicit-tls). `Ok(None)`: none were
/// passed to this process. The variables are unset; call before other threads start.
pub fn listen_fds() -> io::Result<Option<Vec<(mio::net::TcpListener, bool)>>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        creds::unset_env(v);
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None); // meant for another process (e.g. our parent)
    }
    let n: usize =
        count.trim().parse().ok().filter(|n| (1..=MAX_LISTEN_FDS).contains(n)).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("LISTEN_FDS={count:?}: expected 1-64"))
        })?;
    let names: Vec<&str> = names.as_deref().map_or_else(Vec::new, |s| s.split(':').collect());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let fd = LISTEN_FDS_START + i as i32;
        let what = |e: io::Error| io::Error::new(e.kind(), format!("socket activation: fd {fd}: {e}"));
        let sock = Socket::from(creds::adopt_fd(fd).map_err(what)?);
        let addr = listening_tcp_addr(&sock).map_err(what)?;
        let implicit = names.get(i) == Some(&IMPLICIT_TLS_NAME);
        crate::log::info(format_args!("socket activation: fd {fd} listens on {addr}"));
        out.push((mio::net::TcpListener::from_std(std::net::TcpListener::from(sock)), implicit));
    }
    Ok(Some(out))
}

/// The local address of a listening TCP socket; an error for anything else.
fn listening_tcp_addr(sock: &Socket) -> io::Result<SocketAddr> {
    let not = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("not a listening TCP socket ({why})"));
    if sock.r#type()? != Type::STREAM {
        return Err(not("not a stream socket"));
    }
    let addr = sock.local_addr()?.as_socket().ok_or_else(|| not("not IPv4/IPv6"))?;
    if !sock.is_listener()? {
        return Err(not("listen() was not called"));
    }
    Ok(addr)
}
