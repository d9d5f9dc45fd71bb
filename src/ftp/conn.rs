//! Data-connection setup commands: PASV, EPSV (and EPSV ALL), PORT, EPRT,
//! with FTP bounce and passive-port theft protection.

use std::net::{IpAddr, SocketAddr};

use crate::io::net;
use crate::proto::addr::{self, EpsvArg};
use crate::proto::reply;

use super::{Cx, Session};

/// Ports below this are never an active-mode target (bounce to services).
const MIN_ACTIVE_PORT: u16 = 1024;

impl Session {
    fn local_ip(&self) -> IpAddr {
        net::canonical_ip(self.local.ip())
    }

    /// RFC 2428 protocol number of the control connection: the only one its
    /// data connections can use (a data peer must be the control peer).
    fn family(&self) -> u16 {
        if self.local_ip().is_ipv4() { 1 } else { 2 }
    }

    /// 522 with the protocols this connection supports (RFC 2428 §2, §3).
    fn refuse_protocol(&mut self) {
        let text = format!("Network protocol not supported, use ({})", self.family());
        self.reply(reply::BAD_NETWORK_PROTOCOL, &text);
    }

    fn open_passive(&mut self, cx: &mut Cx<'_>) -> Option<u16> {
        self.arm_data_tls(cx);
        let ip = self.local_ip();
        match self.data.open_passive(cx.slot, cx.registry, ip, cx.pasv, cx.now) {
            Ok(port) => Some(port),
            Err(e) => {
                crate::log::warn(format_args!("session {}: passive listener on {ip}: {e}", self.id));
                self.reply(reply::CANT_OPEN_DATA, "Cannot open a passive port now; try again.");
                None
            }
        }
    }

    pub(super) fn cmd_pasv(&mut self, cx: &mut Cx<'_>) {
        if self.epsv_all {
            return self.reply(reply::BAD_SEQUENCE, "PASV not allowed after EPSV ALL.");
        }
        let IpAddr::V4(local) = self.local_ip() else {
            return self.reply(reply::BAD_NETWORK_PROTOCOL, "PASV is IPv4 only; use EPSV on IPv6.");
        };
        let announce = cx.shared.pasv_address().unwrap_or(local);
        if let Some(port) = self.open_passive(cx) {
            let mut text = Vec::with_capacity(64);
            addr::push_pasv_text(&mut text, announce, port);
            self.reply_bytes(reply::PASSIVE, &text);
        }
    }

    pub(super) fn cmd_epsv(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        match addr::parse_epsv(arg) {
            None => self.reply(reply::BAD_ARGUMENTS, "Bad EPSV argument."),
            Some(EpsvArg::All) => {
                self.epsv_all = true;
                self.reply(reply::COMMAND_OK, "EPSV ALL ok.");
            }
            Some(EpsvArg::Proto(p)) if p != self.family() => self.refuse_protocol(),
            Some(_) => {
                if let Some(port) = self.open_passive(cx) {
                    let mut text = Vec::with_capacity(64);
                    addr::push_epsv_text(&mut text, port);
                    self.reply_bytes(reply::EXTENDED_PASSIVE, &text);
                }
            }
        }
    }

    pub(super) fn cmd_port(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        if self.epsv_all {
            return self.reply(reply::BAD_SEQUENCE, "PORT not allowed after EPSV ALL.");
        }
        match addr::parse_port(arg) {
            Some(to) => self.set_active(SocketAddr::V4(to), cx),
            None => self.reply(reply::BAD_ARGUMENTS, "Illegal PORT command."),
        }
    }

    pub(super) fn cmd_eprt(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        if self.epsv_all {
            return self.reply(reply::BAD_SEQUENCE, "EPRT not allowed after EPSV ALL.");
        }
        // "|3|...|", or |2| on an IPv4 connection: 522, whatever follows.
        if addr::eprt_protocol(arg).is_some_and(|p| p != self.family()) {
            return self.refuse_protocol();
        }
        match addr::parse_eprt(arg) {
            Some(to) => self.set_active(to, cx),
            None => self.reply(reply::BAD_ARGUMENTS, "Illegal EPRT command."),
        }
    }

    /// Accepts an active-mode target only on the client's own address and an
    /// unprivileged port (FTP bounce protection), unless relaxed by flag.
    fn set_active(&mut self, to: SocketAddr, cx: &mut Cx<'_>) {
        let target = SocketAddr::new(net::canonical_ip(to.ip()), to.port());
        if target.ip().is_ipv4() != self.local_ip().is_ipv4() {
            return self.refuse_protocol();
        }
        if !cx.cfg.allow_foreign_port && (target.ip() != self.peer.ip() || target.port() < MIN_ACTIVE_PORT) {
            crate::log::warn(format_args!(
                "session {}: refused active target {target} (client is {})",
                self.id, self.peer
            ));
            return self.reply(
                reply::NOT_IMPLEMENTED_PARAM,
                "Refused: data connections go only to your own address on a port >= 1024.",
            );
        }
        self.data.set_port(cx.registry, target);
        self.reply(reply::COMMAND_OK, "PORT command successful. Consider using EPSV.");
    }
}
