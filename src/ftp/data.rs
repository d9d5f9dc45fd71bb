//! The data channel of one session: passive listener or active target, the
//! connection, and the transfer job running over it. Driven by readiness and
//! by the command that asked for the transfer, in whichever order they come.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};

use std::sync::Arc;

use rustls::ServerConfig;

use super::sink::{self, Conn};
use super::transfer::{Failure, Job, Pump};
use crate::config::SessionReuse;
use crate::disk::DiskCx;
use crate::io::Status;
use crate::io::net;
use crate::limits;
use crate::rate::throttle::{Budget, Throttle};
use crate::services::{Role, Slot};

/// Where the data connection stands.
pub enum DataState {
    /// No PASV/EPSV/PORT/EPRT yet (or the last transfer consumed it).
    Idle,
    /// Passive listener open, no transfer command yet.
    Listening { listener: TcpListener, port: u16 },
    /// PORT/EPRT target remembered; connected when the command arrives.
    PortSet(SocketAddr),
    /// The client connected to the passive port before sending the command.
    Ready { conn: Conn },
    /// Transfer command received; waiting for the client to connect.
    WaitAccept { listener: TcpListener, job: Job },
    /// Transfer command received; active connect in progress.
    Connecting { stream: TcpStream, job: Job },
    /// Bytes are moving.
    Running { conn: Conn, job: Job },
}

/// The data channel with the readiness seen on its current socket.
pub struct DataChan {
    pub state: DataState,
    /// Readiness of the current socket (listener: acceptable; stream: writable).
    pub ready: bool,
    /// Last progress on the channel (for the data timeout).
    pub since: Instant,
    /// When the running transfer started (for logs and STAT).
    pub started: Instant,
    /// PROT P: the TLS configuration new data connections use.
    pub secure: Option<Arc<crate::tls::Configs>>,
    /// The control session's id (binds data TLS sessions to it).
    pub session: u64,
    pub reuse: SessionReuse,
    /// Rate limits (--max-rate, --max-rate-total) and their state.
    pub throttle: Throttle,
    /// The worker's disk helpers (None: `--disk-check none`).
    pub disk: Option<Arc<crate::disk::DiskLink>>,
    /// Numbers this session's disk helper jobs.
    disk_seq: u64,
    /// Bytes the running transfer has moved so far (bulk past BULK_AFTER).
    moved: u64,
}

/// What the channel reports back to the control side after a turn.
pub enum DataEvent {
    Nothing,
    /// The connection is up and the job starts: send 150.
    Started,
    /// Budget used up while still writable: drive again next turn.
    Yield,
    Finished(Job),
    Failed(Job, Failure),
    /// The data connection could not be established (425).
    NoConnection(Job, io::Error),
}

/// Transfer commands need a data connection set up first.
#[derive(Debug)]
pub enum BeginError {
    NoDataChannel,
    Connect(io::Error),
}

impl DataChan {
    pub fn new(now: Instant, session: u64) -> DataChan {
        DataChan {
            state: DataState::Idle,
            ready: false,
            since: now,
            started: now,
            secure: None,
            session,
            reuse: SessionReuse::Preferred,
            throttle: Throttle::new(0, None),
            disk: None,
            disk_seq: 0,
            moved: 0,
        }
    }

    /// When the running transfer must be looked at again: the end of a rate
    /// limit's wait (the data timeout does not run meanwhile), else the data
    /// timeout.
    pub fn deadline(&self, data_timeout: std::time::Duration) -> Instant {
        self.throttle.until.unwrap_or(self.since + data_timeout)
    }

    /// A transfer that has moved more than `limits::BULK_AFTER` bytes: it
    /// takes its turns from the run queue, after the sessions with little to
    /// do (see `turns.rs`).
    pub fn bulk(&self) -> bool {
        matches!(self.state, DataState::Running { .. }) && self.moved >= limits::BULK_AFTER
    }

    /// True when a rate limit's wait is over (the deadline that fired was
    /// not a timeout).
    pub fn throttle_due(&self, now: Instant) -> bool {
        self.throttle.until.is_some_and(|t| t <= now)
    }

    /// Applies --tls-session-reuse to a finished data handshake.
    fn check_reuse(&self, conn: &Conn) -> Result<(), String> {
        if conn.tls.is_none() || self.reuse == SessionReuse::Off || conn.resumed_from == Some(self.session) {
            return Ok(());
        }
        let why = match conn.resumed_from {
            None => "the data connection did not resume the control connection's TLS session".to_string(),
            Some(other) => format!("the data connection resumed another session's TLS session ({other})"),
        };
        if self.reuse == SessionReuse::Required {
            crate::log::warn(format_args!("session {}: refused data connection: {why}", self.session));
            return Err(why);
        }
        crate::log::info(format_args!("session {}: {why} (allowed: --tls-session-reuse preferred)", self.session));
        Ok(())
    }

    /// True while the running transfer waits for a disk helper (explicit:
    /// neither readiness nor the run queue drives it, only the completion).
    pub fn disk_waiting(&self) -> bool {
        matches!(&self.state, DataState::Running { job, .. } if job.disk_waiting())
    }

    /// A disk helper finished job `seq` of this session. True when the
    /// running transfer was waiting for it (drive it now); a completion for a
    /// transfer that ended (ABOR, timeout) is dropped here.
    pub fn disk_done(&mut self, seq: u64, outcome: crate::disk::Outcome, now: Instant) -> bool {
        let waiting = self.disk_waiting();
        let DataState::Running { job, .. } = &mut self.state else { return false };
        if !job.disk_done(seq, outcome) {
            return false;
        }
        if waiting {
            // The disk was slow, not the client.
            self.since = now;
        }
        waiting
    }

    /// Hands `work` on `file` to a disk helper for the session in `slot`
    /// (numbered like the transfers' jobs); `None` without helpers
    /// (`--disk-check none`) or with their queue full: do it here.
    pub fn submit_disk(
        &mut self,
        slot: Slot,
        file: &std::fs::File,
        work: crate::disk::Work,
    ) -> Option<crate::disk::Ticket> {
        self.disk.as_ref()?.submit(slot, &mut self.disk_seq, file, work).ok()
    }

    /// True while a transfer command owns the channel.
    pub fn busy(&self) -> bool {
        matches!(self.state, DataState::WaitAccept { .. } | DataState::Connecting { .. } | DataState::Running { .. })
    }

    pub fn job(&self) -> Option<&Job> {
        match &self.state {
            DataState::WaitAccept { job, .. } | DataState::Connecting { job, .. } | DataState::Running { job, .. } => {
                Some(job)
            }
            _ => None,
        }
    }

    /// Closes whatever is open; returns the job that was pending, if any.
    pub fn reset(&mut self, registry: &Registry) -> Option<Job> {
        self.throttle.end();
        match mem::replace(&mut self.state, DataState::Idle) {
            DataState::Idle | DataState::PortSet(_) => None,
            DataState::Listening { mut listener, .. } => {
                let _ = registry.deregister(&mut listener);
                None
            }
            DataState::Ready { mut conn } => {
                let _ = registry.deregister(&mut conn.stream);
                None
            }
            DataState::WaitAccept { mut listener, job } => {
                let _ = registry.deregister(&mut listener);
                Some(job)
            }
            DataState::Connecting { mut stream, job } => {
                let _ = registry.deregister(&mut stream);
                Some(job)
            }
            DataState::Running { mut conn, job } => {
                let _ = registry.deregister(&mut conn.stream);
                Some(job)
            }
        }
    }

    /// PASV/EPSV: opens a fresh listener (closing any previous one) and
    /// returns its port.
    pub fn open_passive(
        &mut self,
        slot: Slot,
        registry: &Registry,
        ip: IpAddr,
        ports: &mut crate::pasv_ports::PasvSlice,
        now: Instant,
    ) -> io::Result<u16> {
        self.reset(registry);
        let mut listener = ports.listen(ip)?;
        let port = listener.local_addr()?.port();
        registry.register(&mut listener, slot.token(Role::Listener), Interest::READABLE)?;
        self.state = DataState::Listening { listener, port };
        self.ready = true; // a client may already be queued
        self.since = now;
        Ok(port)
    }

    /// PORT/EPRT: remembers the target (closing any previous channel).
    pub fn set_port(&mut self, registry: &Registry, to: SocketAddr) {
        self.reset(registry);
        self.state = DataState::PortSet(to);
    }

    /// A transfer command was accepted: attach its job to the channel.
    // The job comes back with the error so the caller can log it and answer 425.
    #[allow(clippy::result_large_err)]
    pub fn begin(
        &mut self,
        job: Job,
        slot: Slot,
        registry: &Registry,
        local_ip: IpAddr,
        from_port: Option<u16>,
        now: Instant,
    ) -> Result<(), (Job, BeginError)> {
        self.since = now;
        match mem::replace(&mut self.state, DataState::Idle) {
            DataState::Listening { listener, .. } => {
                self.state = DataState::WaitAccept { listener, job };
                Ok(())
            }
            DataState::Ready { mut conn } => {
                if let Some(c) = &self.secure {
                    if let Err(e) = conn.attach_tls(&sink::config_for(c, &job)) {
                        let _ = registry.deregister(&mut conn.stream);
                        return Err((job, BeginError::Connect(io::Error::other(format!("TLS setup: {e}")))));
                    }
                }
                self.state = DataState::Running { conn, job };
                self.ready = true;
                self.started = now;
                self.moved = 0;
                Ok(())
            }
            DataState::PortSet(to) => {
                let mut stream = match net::active_connect(local_ip, from_port, to) {
                    Ok(s) => s,
                    Err(e) => return Err((job, BeginError::Connect(e))),
                };
                if let Err(e) =
                    registry.register(&mut stream, slot.token(Role::Data), Interest::WRITABLE | Interest::READABLE)
                {
                    return Err((job, BeginError::Connect(e)));
                }
                self.ready = false;
                self.state = DataState::Connecting { stream, job };
                Ok(())
            }
            other => {
                self.state = other;
                Err((job, BeginError::NoDataChannel))
            }
        }
    }

    /// Gives the channel one turn. `peer_ips` are the addresses passive
    /// connections may come from: the control connection's client (and its
    /// load balancer with --proxy-data-check relaxed); others are refused
    /// unless `allow_foreign`.
    #[allow(clippy::too_many_arguments)]
    pub fn drive(
        &mut self,
        slot: Slot,
        registry: &Registry,
        peer_ips: &[IpAddr],
        allow_foreign: bool,
        sndbuf: usize,
        rcvbuf: usize,
        now: Instant,
    ) -> DataEvent {
        if !self.ready {
            return DataEvent::Nothing;
        }
        match mem::replace(&mut self.state, DataState::Idle) {
            DataState::Listening { listener, port } => {
                match self.accept(&listener, slot, registry, peer_ips, allow_foreign, sndbuf, rcvbuf, None) {
                    Ok(Some(conn)) => {
                        let mut listener = listener;
                        let _ = registry.deregister(&mut listener);
                        self.state = DataState::Ready { conn };
                        self.ready = true;
                        self.since = now;
                        DataEvent::Nothing
                    }
                    Ok(None) => {
                        self.state = DataState::Listening { listener, port };
                        DataEvent::Nothing
                    }
                    Err(_) => {
                        self.state = DataState::Listening { listener, port };
                        DataEvent::Nothing
                    }
                }
            }
            DataState::WaitAccept { listener, job } => {
                let sc = self.secure.as_ref().map(|c| sink::config_for(c, &job));
                match self.accept(&listener, slot, registry, peer_ips, allow_foreign, sndbuf, rcvbuf, sc) {
                    Ok(Some(conn)) => {
                        let mut listener = listener;
                        let _ = registry.deregister(&mut listener);
                        self.state = DataState::Running { conn, job };
                        self.ready = true;
                        self.since = now;
                        self.started = now;
                        self.moved = 0;
                        DataEvent::Started
                    }
                    Ok(None) => {
                        self.state = DataState::WaitAccept { listener, job };
                        DataEvent::Nothing
                    }
                    Err(e) => {
                        let mut listener = listener;
                        let _ = registry.deregister(&mut listener);
                        DataEvent::NoConnection(job, e)
                    }
                }
            }
            DataState::Connecting { mut stream, job } => {
                // Writable after a non-blocking connect: success or failure.
                let failed = match stream.take_error() {
                    Ok(Some(e)) | Err(e) => Some(e),
                    Ok(None) => match stream.peer_addr() {
                        Ok(_) => None,
                        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                            self.ready = false;
                            self.state = DataState::Connecting { stream, job };
                            return DataEvent::Nothing;
                        }
                        Err(e) => Some(e),
                    },
                };
                if let Some(e) = failed {
                    let _ = registry.deregister(&mut stream);
                    return DataEvent::NoConnection(job, e);
                }
                let _ = net::tune_data(&stream, sndbuf, rcvbuf, self.throttle.pacing_rate());
                let sc = self.secure.as_ref().map(|c| sink::config_for(c, &job));
                let conn = match Conn::new(stream, sc.as_ref(), self.session) {
                    Ok(c) => c,
                    Err(e) => return DataEvent::Failed(job, Failure::Tls(format!("TLS setup: {e}"))),
                };
                self.state = DataState::Running { conn, job };
                self.since = now;
                self.started = now;
                self.moved = 0;
                DataEvent::Started
            }
            DataState::Running { conn, job } if job.disk_waiting() => {
                // Waiting for a disk helper: its completion drives us again.
                self.state = DataState::Running { conn, job };
                DataEvent::Nothing
            }
            DataState::Running { mut conn, mut job } => {
                if !conn.verified {
                    match conn.handshake() {
                        Status::Done(_) => {
                            if let Err(why) = self.check_reuse(&conn) {
                                let _ = registry.deregister(&mut conn.stream);
                                return DataEvent::Failed(job, Failure::Tls(why));
                            }
                            conn.verified = true;
                            self.since = now;
                        }
                        Status::WouldBlock => {
                            self.ready = false;
                            self.state = DataState::Running { conn, job };
                            return DataEvent::Nothing;
                        }
                        Status::Closed => {
                            let _ = registry.deregister(&mut conn.stream);
                            return DataEvent::Failed(
                                job,
                                Failure::Tls("client closed during the TLS handshake".into()),
                            );
                        }
                        Status::Error(e) => {
                            let _ = registry.deregister(&mut conn.stream);
                            return DataEvent::Failed(job, Failure::Tls(format!("TLS handshake failed: {e}")));
                        }
                    }
                }
                let upload = matches!(job, Job::Stor(_));
                if self.throttle_due(now) {
                    // The wait was ours: the data timeout starts afresh.
                    self.since = now;
                }
                let budget = match self.throttle.budget(upload, job.left(), now) {
                    Budget::Bytes(b) => b,
                    Budget::Wait(_) => {
                        self.state = DataState::Running { conn, job };
                        return DataEvent::Nothing;
                    }
                };
                let mut moved = 0u64;
                let mut disk = DiskCx { link: self.disk.as_ref(), slot, seq: &mut self.disk_seq };
                let pump = job.pump(&mut conn, &mut moved, budget, &mut disk);
                self.throttle.used(moved);
                self.moved = self.moved.saturating_add(moved);
                if moved > 0 {
                    self.since = now;
                }
                match pump {
                    Pump::Finished => {
                        let _ = registry.deregister(&mut conn.stream);
                        drop(conn);
                        DataEvent::Finished(job)
                    }
                    Pump::Blocked => {
                        self.ready = false;
                        self.state = DataState::Running { conn, job };
                        DataEvent::Nothing
                    }
                    Pump::Disk => {
                        // The socket's readiness is kept for the completion.
                        self.state = DataState::Running { conn, job };
                        DataEvent::Nothing
                    }
                    Pump::Yield => {
                        let left = job.left();
                        self.state = DataState::Running { conn, job };
                        // Out of credit: reserve the next chunk now, and wait
                        // for it on the timer when it is not due yet.
                        match self.throttle.budget(upload, left, now) {
                            Budget::Wait(_) => DataEvent::Nothing,
                            Budget::Bytes(_) => DataEvent::Yield,
                        }
                    }
                    Pump::Failed(f) => {
                        let _ = registry.deregister(&mut conn.stream);
                        DataEvent::Failed(job, f)
                    }
                }
            }
            other => {
                self.state = other;
                self.ready = false;
                DataEvent::Nothing
            }
        }
    }

    /// Accepts the client's data connection, dropping connections from any
    /// other address (passive port theft). `Ok(None)`: nothing (more) queued.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &mut self,
        listener: &TcpListener,
        slot: Slot,
        registry: &Registry,
        peer_ips: &[IpAddr],
        allow_foreign: bool,
        sndbuf: usize,
        rcvbuf: usize,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<Option<Conn>> {
        for _ in 0..limits::ACCEPTS_PER_TURN {
            match listener.accept() {
                Ok((stream, from)) => {
                    if !allow_foreign && !peer_ips.contains(&net::canonical_ip(from.ip())) {
                        crate::log::warn(format_args!(
                            "refused data connection from {from}: control connection is from {}",
                            peer_ips.first().map_or(String::new(), |ip| ip.to_string())
                        ));
                        continue;
                    }
                    let _ = net::tune_data(&stream, sndbuf, rcvbuf, self.throttle.pacing_rate());
                    let conn = Conn::new(stream, tls.as_ref(), self.session)
                        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
                    let mut conn = conn;
                    registry.register(
                        &mut conn.stream,
                        slot.token(Role::Data),
                        Interest::WRITABLE | Interest::READABLE,
                    )?;
                    return Ok(Some(conn));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready = false;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNABORTED) | Some(libc::EPROTO)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

impl DataChan {
    /// One line for STAT.
    pub fn describe(&self) -> String {
        match &self.state {
            DataState::Idle => "none".into(),
            DataState::Listening { port, .. } => format!("passive, listening on port {port}"),
            DataState::PortSet(a) => format!("active, to {a}"),
            DataState::Ready { .. } => "passive, connected".into(),
            DataState::WaitAccept { .. } => "passive, waiting for the client".into(),
            DataState::Connecting { .. } => "active, connecting".into(),
            DataState::Running { .. } if self.disk_waiting() => "transferring (waiting for the disk)".into(),
            DataState::Running { .. } => "transferring".into(),
        }
    }
}
