//! What a worker's slab holds: an FTP or an SFTP session (the two protocols
//! never see each other; only the loop knows both), what each listener
//! serves, and the admission of SFTP connections.

use std::net::SocketAddr;
use std::time::Instant;

use mio::{Interest, Registry};

use super::Worker;
use crate::config::Config;
use crate::ftp::Session;
use crate::io::net;
use crate::obs::metrics;
use crate::services::slot::GEN_MASK;
use crate::services::{Role, Shared, Slot};
use crate::sftp::session::SftpSession;

/// What a listening socket serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// FTP (explicit FTPS with AUTH TLS).
    Ftp,
    /// Implicit FTPS: TLS from the first byte.
    Implicit,
    /// SFTP over SSH.
    Sftp,
}

/// One session of either protocol. FTP sessions stay inline in the slab, as
/// before; an SFTP session (sunset's state is several KiB) is boxed.
#[allow(clippy::large_enum_variant)]
pub enum Conn {
    Ftp(Session),
    Sftp(Box<SftpSession>),
}

/// The context an SFTP session runs in, borrowed field by field from the
/// worker (as `session_cx!` does for FTP).
macro_rules! sftp_cx {
    ($w:ident, $keys:expr, $slot:expr, $now:expr) => {
        crate::sftp::session::Cx {
            slot: $slot,
            shared: &$w.shared,
            jail: &$w.jail,
            now: $now,
            waker: &$w.waker,
            verdicts: &$w.verdict_tx,
            disk: $w.disk_link.as_ref(),
            keys: $keys,
            buf: &mut $w.sftp_buf,
        }
    };
}
pub(super) use sftp_cx;

impl Conn {
    pub fn generation(&self) -> u16 {
        match self {
            Conn::Ftp(s) => s.generation,
            Conn::Sftp(s) => s.generation,
        }
    }

    pub fn armed(&mut self) -> &mut Option<Instant> {
        match self {
            Conn::Ftp(s) => &mut s.armed,
            Conn::Sftp(s) => &mut s.armed,
        }
    }

    /// A transfer past `limits::BULK_AFTER`: driven from the run queue
    /// (fair turns, `turns.rs`). SFTP sessions yield on their own budget.
    pub fn bulk(&self) -> bool {
        match self {
            Conn::Ftp(s) => s.data.bulk(),
            Conn::Sftp(_) => false,
        }
    }

    pub fn queued(&mut self) -> &mut bool {
        match self {
            Conn::Ftp(s) => &mut s.queued,
            Conn::Sftp(s) => &mut s.queued,
        }
    }

    pub fn deadline(&self, cfg: &Config) -> Instant {
        match self {
            Conn::Ftp(s) => s.deadline(cfg),
            Conn::Sftp(s) => s.deadline(cfg),
        }
    }

    /// Releases the session's sockets and its place in the limits.
    pub fn close(self, registry: &Registry, shared: &Shared) {
        match self {
            Conn::Ftp(mut s) => {
                s.close(registry);
                if s.admitted {
                    shared.release(s.peer.ip());
                }
            }
            Conn::Sftp(mut s) => {
                s.close(registry);
                if s.admitted {
                    shared.release(s.peer.ip());
                }
            }
        }
    }
}

impl Worker {
    /// A connection on an SFTP listener: counted against the same limits as
    /// FTP's (`Shared::admit`); a refused one is closed at once (SSH has no
    /// text reply before its version exchange), and logged.
    pub(super) fn admit_sftp(
        &mut self,
        mut stream: mio::net::TcpStream,
        peer: SocketAddr,
        now: Instant,
    ) -> Option<Slot> {
        let keys = self.sftp.clone()?;
        let ip = net::canonical_ip(peer.ip());
        // --proxy-protocol: admission waits for the header's real address
        // (as for FTP, see `ftp::proxied`); only --proxy-from may connect.
        let proxied = self.shared.config.proxy_protocol;
        let admitted = if !proxied {
            self.shared.admit(ip, now)
        } else if self.sessions.len() >= self.shared.config.max_clients {
            Err(crate::services::Refusal::MaxClients)
        } else {
            crate::ftp::proxied::screen(&self.shared.config, ip)
        };
        let id = match admitted {
            Ok(id) => id,
            Err(why) => {
                metrics::refused(self.metrics, why as usize);
                let hint = why.hint(&self.shared.config);
                let text = why.text();
                let mut ev = crate::log::Event::new(crate::log::Level::Info, "refused");
                (ev.peer, ev.port, ev.reason) = (Some(ip), Some(peer.port()), Some(text));
                crate::log::event(&ev, format_args!("refused sftp {peer}: {text}{hint}"));
                return None;
            }
        };
        let _ = net::tune_control(&stream, self.shared.config.nodelay);
        let entry = self.sessions.vacant_entry();
        let generation = self.next_gen;
        self.next_gen = (self.next_gen + 1) & GEN_MASK as u16;
        let slot = Slot { key: entry.key(), generation };
        let registered =
            self.poll.registry().register(&mut stream, slot.token(Role::Ctrl), Interest::READABLE | Interest::WRITABLE);
        let peer = SocketAddr::new(ip, peer.port());
        let session = registered.map_err(|e| e.to_string()).and_then(|()| {
            let s = if proxied {
                SftpSession::awaiting_proxy(generation, stream, peer, now, self.id, &keys)
            } else {
                SftpSession::new(id, generation, stream, peer, now, self.id, &keys)
            };
            s.map_err(|e| e.to_string())
        });
        match session {
            Ok(mut s) => {
                s.metrics = self.metrics;
                let (rate, total) = (self.shared.config.max_rate, &self.shared.total_rate);
                if rate > 0 || total.is_some() {
                    s.throttle = Some(crate::rate::throttle::Throttle::new(rate, total.clone()));
                }
                if !proxied {
                    // A proxied one becomes a session once its header is read.
                    metrics::add(&self.metrics.sessions[metrics::SFTP], 1);
                }
                entry.insert(Conn::Sftp(Box::new(s)));
                Some(slot)
            }
            Err(e) => {
                crate::log::warn(format_args!("sftp {peer}: {e}"));
                if !proxied {
                    self.shared.release(ip);
                }
                None
            }
        }
    }
}
