//! The control state machine: one transition per (login state, command).
//! Path commands live in `files.rs`, data-connection setup in `conn.rs`.

use crate::fs::facts;
use crate::proto::addr::{self, TransferType};
use crate::proto::command::{self, ParseError, Verb};
use crate::proto::reply;

use super::transfer::Job;
use super::upload::Put;
use super::{CtrlState, Cx, Session};
use crate::auth::access::Access;
use crate::config::TlsRequire;
use crate::pool::LoginJob;

/// Verbs that are parsed but not offered: kept out of HELP. The TLS verbs
/// are offered only when a certificate is configured.
fn offered(v: Verb, tls: bool) -> bool {
    match v {
        Verb::Smnt | Verb::Host => false,
        Verb::Auth | Verb::Pbsz | Verb::Prot | Verb::Ccc => tls,
        _ => true,
    }
}

/// Names accepted for the anonymous account.
fn is_anonymous(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"anonymous") || name.eq_ignore_ascii_case(b"ftp")
}

const FEATURES: &[&[u8]] = &[
    b"EPRT",
    b"EPSV",
    b"MDTM",
    b"MFMT",
    // Followed by the session's facts (see `Verb::Feat`).
    b"MLST",
    b"PASV",
    b"REST STREAM",
    b"SIZE",
    b"TVFS",
    b"UTF8",
];

impl Session {
    pub(super) fn execute(&mut self, line: &[u8], cx: &mut Cx<'_>) {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(ParseError::Empty) => return self.protocol_error(reply::SYNTAX_ERROR, "Empty command.", cx),
            // RFC 959: 500 for a verb nobody defined; 502 stays for known
            // commands this server does not implement.
            Err(ParseError::Unknown) => {
                return self.protocol_error(reply::SYNTAX_ERROR, "Syntax error, command unrecognized.", cx);
            }
            Err(ParseError::MissingArg(_) | ParseError::UnexpectedArg(_)) => {
                return self.protocol_error(reply::BAD_ARGUMENTS, "Syntax error in parameters or arguments.", cx);
            }
        };
        let logged_in = matches!(self.state, CtrlState::LoggedIn { .. });
        if command::info(cmd.verb).needs_login && !logged_in {
            return self.reply(reply::NOT_LOGGED_IN, "Please login with USER and PASS.");
        }
        let arg = cmd.arg;
        // RNTO must come right after RNFR.
        let rename_from = self.rename_from.take();
        // A restart marker (REST) stays until the next RETR, STOR, APPE or
        // STOU takes it, whatever comes between (PASV, TYPE, SIZE, ...); REST
        // 0, REIN and a login clear it. Dropping it on the way would turn a
        // resume into a full download or a truncated upload.
        match cmd.verb {
            Verb::User => self.cmd_user(arg, cx),
            Verb::Pass => self.cmd_pass(arg, cx),
            Verb::Acct => self.reply(reply::NOT_IMPLEMENTED, "ACCT not needed: no accounts here."),
            Verb::Rein => {
                self.reinit(cx);
                // RFC 959: REIN resets every parameter to its default (AUTH's
                // reinitialisation keeps the client's OPTS MLST choice).
                self.facts = crate::fs::facts::Facts::ALL;
                self.reply(reply::SERVICE_READY, "Service ready for new user.");
            }
            // During a transfer QUIT waits for its end (held.rs).
            Verb::Quit => self.close_with(reply::GOODBYE, "Goodbye.", cx.now),
            Verb::Cwd => self.cmd_cwd(arg, cx),
            Verb::Cdup => self.cmd_cwd(b"..", cx),
            Verb::Pwd => {
                let mut text = Vec::with_capacity(self.cwd.as_bytes().len() + 32);
                reply::push_quoted_path(&mut text, self.cwd.as_bytes());
                text.extend_from_slice(b" is the current directory.");
                self.reply_bytes(reply::PATH_CREATED, &text);
            }
            Verb::Port => self.cmd_port(arg, cx),
            Verb::Eprt => self.cmd_eprt(arg, cx),
            Verb::Pasv => self.cmd_pasv(cx),
            Verb::Epsv => self.cmd_epsv(arg, cx),
            Verb::Type => match addr::parse_type(arg) {
                Some(TransferType::Ascii) => {
                    self.ttype = TransferType::Ascii;
                    self.reply(reply::COMMAND_OK, "Switching to ASCII mode.");
                }
                Some(TransferType::Image) => {
                    self.ttype = TransferType::Image;
                    self.reply(reply::COMMAND_OK, "Switching to Binary mode.");
                }
                None if matches!(arg.first().map(u8::to_ascii_uppercase), Some(b'A' | b'E' | b'I' | b'L')) => {
                    self.reply(reply::NOT_IMPLEMENTED_PARAM, "Type not supported.")
                }
                None => self.reply(reply::BAD_ARGUMENTS, "Unrecognised TYPE command."),
            },
            Verb::Stru => self.one_letter(arg, b'F', b"FRP", "Structure set to F."),
            Verb::Mode => self.one_letter(arg, b'S', b"SBC", "Mode set to S."),
            Verb::Retr => self.cmd_retr(arg, cx),
            Verb::Rest => match addr::parse_u64(arg) {
                Some(n) => {
                    self.rest = n;
                    self.reply(reply::PENDING_MORE, &format!("Restart position accepted ({n})."));
                }
                None => self.reply(reply::BAD_ARGUMENTS, "Bad REST offset: a decimal byte count is expected."),
            },
            Verb::Abor => self.cmd_abor(cx),
            Verb::List => self.cmd_list(crate::fs::listing::ListFormat::List, arg, cx),
            Verb::Nlst => self.cmd_list(crate::fs::listing::ListFormat::Nlst, arg, cx),
            Verb::Mlsd => self.cmd_list(crate::fs::listing::ListFormat::Mlsd, arg, cx),
            Verb::Mlst => self.cmd_mlst(arg, cx),
            Verb::Syst => self.reply(reply::SYSTEM_TYPE, "UNIX Type: L8"),
            Verb::Stat => self.cmd_stat(arg, cx),
            Verb::Help => self.cmd_help(arg, cx.shared.tls().is_some()),
            Verb::Noop => self.reply(reply::COMMAND_OK, "NOOP ok."),
            Verb::Allo => self.reply(reply::NOT_IMPLEMENTED_SUPERFLUOUS, "ALLO command ignored."),
            Verb::Site => self.cmd_site(arg, cx),
            Verb::Feat => {
                let tls = cx.shared.tls().is_some();
                // RFC 3659 §7.9: the facts OPTS MLST selected carry a '*'.
                let mut mlst = b"MLST ".to_vec();
                facts::push_feat(&mut mlst, self.facts);
                let out = self.out();
                let mut m = reply::Multi::begin(out, reply::SYSTEM_STATUS, b"Features:");
                if tls {
                    m.line(b"AUTH TLS");
                    m.line(b"AUTH SSL");
                }
                for f in FEATURES {
                    m.line(if *f == b"MLST" { &mlst } else { f });
                }
                if tls {
                    m.line(b"PBSZ");
                    m.line(b"PROT");
                }
                m.end(b"End");
            }
            Verb::Opts => self.cmd_opts(arg),
            Verb::Size => self.cmd_size(arg, cx),
            Verb::Mdtm => self.cmd_mdtm(arg, cx),
            Verb::Stor => self.cmd_put(Put::Stor, arg, cx),
            Verb::Appe => self.cmd_put(Put::Appe, arg, cx),
            Verb::Stou => self.cmd_put(Put::Stou, arg, cx),
            Verb::Dele => self.cmd_dele(arg, cx),
            Verb::Mkd => self.cmd_mkd(arg, cx),
            Verb::Rmd => self.cmd_rmd(arg, cx),
            Verb::Rnfr => self.cmd_rnfr(arg, cx),
            Verb::Rnto => self.cmd_rnto(arg, rename_from, cx),
            Verb::Mfmt => self.cmd_mfmt(arg, cx),
            Verb::Auth => self.cmd_auth(arg, cx),
            Verb::Pbsz => self.cmd_pbsz(),
            Verb::Prot => self.cmd_prot(arg, cx),
            Verb::Ccc => {
                if self.tls.is_some()
                    && cx.cfg.allow_ccc
                    && !self.must_encrypt(TlsRequire::Login, self.access.anonymous, cx)
                {
                    self.reply(reply::COMMAND_OK, "CCC ok: the control connection continues in the clear.");
                    self.ccc = super::Ccc::Reply;
                } else if self.tls.is_some() {
                    self.reply(reply::REQUEST_DENIED, "CCC refused: the control connection stays encrypted.")
                } else {
                    self.reply(reply::BAD_SEQUENCE, "CCC needs a TLS control connection.")
                }
            }
            Verb::Smnt | Verb::Host => self.reply(reply::NOT_IMPLEMENTED, "Command not implemented."),
        }
    }

    fn cmd_user(&mut self, name: &[u8], cx: &mut Cx<'_>) {
        if let CtrlState::LoggedIn { .. } = self.state {
            return self.reply(reply::NOT_LOGGED_IN, "Already logged in; cannot change user.");
        }
        let anonymous = is_anonymous(name) && cx.cfg.anonymous;
        if self.tls.is_none() && self.must_encrypt(TlsRequire::Login, anonymous, cx) {
            return self.reply(reply::NOT_LOGGED_IN, "Log in over TLS: send AUTH TLS first.");
        }
        if anonymous {
            self.state = CtrlState::NeedPass { user: "anonymous".into() };
            self.user_name = "anonymous".into();
            return self.reply(reply::NEED_PASSWORD, "Anonymous login ok, send your e-mail address as password.");
        }
        if cx.shared.auth().users.is_empty() {
            self.state = CtrlState::NeedUser;
            return self.reply(reply::NOT_LOGGED_IN, "This server accepts anonymous logins only.");
        }
        // Every other name, known or not, gets the same answer.
        let user = String::from_utf8_lossy(name).into_owned();
        // For the logs only: a name with CR, ESC or other control bytes must
        // not forge log lines or drive a terminal.
        self.user_name = user.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        self.state = CtrlState::NeedPass { user };
        self.reply(reply::NEED_PASSWORD, "Please specify the password.");
    }

    /// Whether --tls-require demands encryption of `what` for this login.
    pub(super) fn must_encrypt(&self, what: TlsRequire, anonymous: bool, cx: &Cx<'_>) -> bool {
        let req = cx.cfg.tls_require;
        if req == TlsRequire::None || (anonymous && cx.cfg.tls_exempt_anonymous) {
            return false;
        }
        req == TlsRequire::All || req == what
    }

    fn cmd_auth(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let Some(sc) = cx.shared.tls() else {
            return self.reply(reply::NOT_IMPLEMENTED, "TLS is not configured on this server.");
        };
        if !(arg.eq_ignore_ascii_case(b"TLS") || arg.eq_ignore_ascii_case(b"SSL") || arg.eq_ignore_ascii_case(b"TLS-C"))
        {
            return self.reply(reply::NOT_IMPLEMENTED_PARAM, "Only AUTH TLS (or SSL) is supported.");
        }
        if self.tls.is_some() {
            return self.reply(reply::BAD_SEQUENCE, "Already using TLS.");
        }
        match crate::tls::accept(&sc.control) {
            Ok(tls) => {
                // RFC 2228: an accepted AUTH requires the user to log in
                // again; a login made in the clear does not carry over.
                self.reinit(cx);
                self.reply(reply::AUTH_OK, "Proceed with negotiation.");
                self.begin_tls(tls);
            }
            Err(e) => {
                crate::log::error(format_args!("session {}: TLS setup: {e}", self.id));
                self.reply(reply::LOCAL_ERROR_TLS, "TLS is unavailable right now.");
            }
        }
    }

    fn cmd_pbsz(&mut self) {
        if self.tls.is_none() {
            return self.reply(reply::BAD_SEQUENCE, "PBSZ needs a TLS control connection (AUTH TLS first).");
        }
        self.pbsz = true;
        self.reply(reply::COMMAND_OK, "PBSZ=0");
    }

    fn cmd_prot(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        if self.tls.is_none() || !self.pbsz {
            return self.reply(reply::BAD_SEQUENCE, "PROT needs AUTH TLS and PBSZ first.");
        }
        match arg.first().map(u8::to_ascii_uppercase) {
            Some(b'P') if arg.len() == 1 => {
                self.prot_private = true;
                self.reply(reply::COMMAND_OK, "PROT now Private.");
            }
            Some(b'C') if arg.len() == 1 => {
                if self.must_encrypt(TlsRequire::Data, self.access.anonymous, cx) {
                    return self.reply(reply::REQUEST_DENIED, "PROT C refused: data connections must be encrypted.");
                }
                self.prot_private = false;
                self.reply(reply::COMMAND_OK, "PROT now Clear.");
            }
            Some(b'S' | b'E') if arg.len() == 1 => {
                self.reply(reply::PROT_NOT_SUPPORTED, "Only PROT P and PROT C are supported.")
            }
            _ => self.reply(reply::BAD_ARGUMENTS, "Unrecognised PROT level."),
        }
    }

    fn cmd_pass(&mut self, password: &[u8], cx: &mut Cx<'_>) {
        let user = match &self.state {
            CtrlState::NeedPass { user } => user.clone(),
            CtrlState::LoggedIn { .. } => return self.reply(reply::BAD_SEQUENCE, "Already logged in."),
            _ => return self.reply(reply::BAD_SEQUENCE, "Login with USER first."),
        };
        if user == "anonymous" && cx.cfg.anonymous {
            self.log_login("anonymous");
            self.access = Access::anonymous();
            self.rest = 0;
            self.state = CtrlState::LoggedIn { user };
            return self.reply(reply::LOGGED_IN, "Login successful.");
        }
        // Hashing takes tens of milliseconds: a helper thread does it and
        // the verdict comes back through the worker's waker.
        let job = LoginJob {
            slot: cx.slot,
            user: user.clone(),
            password: password.to_vec(),
            done: cx.verdicts.clone(),
            waker: cx.waker.clone(),
        };
        match cx.shared.pool.submit(job) {
            Ok(()) => self.state = CtrlState::Verifying { user },
            Err(mut job) => {
                job.password.iter_mut().for_each(|b| *b = 0);
                self.close_with(reply::SERVICE_UNAVAILABLE, "Server busy, try again later.", cx.now);
            }
        }
    }

    /// STRU and MODE: one letter, of which only `ok` is supported.
    fn one_letter(&mut self, arg: &[u8], ok: u8, known: &[u8], text: &str) {
        match arg {
            [c] if c.to_ascii_uppercase() == ok => self.reply(reply::COMMAND_OK, text),
            [c] if known.contains(&c.to_ascii_uppercase()) => {
                self.reply(reply::NOT_IMPLEMENTED_PARAM, "Only the default is supported.")
            }
            _ => self.reply(reply::BAD_ARGUMENTS, "Unrecognised parameter."),
        }
    }

    fn cmd_abor(&mut self, cx: &mut Cx<'_>) {
        if self.data.busy() {
            if let Some(job) = self.data.reset(cx.registry) {
                self.bytes_sent += job.sent();
                self.log_transfer(&job, "aborted");
            }
            self.reply(reply::TRANSFER_ABORTED, "Transfer aborted.");
            self.reply(reply::TRANSFER_OK, "ABOR successful.");
            self.last_command = cx.now;
        } else {
            self.data.reset(cx.registry);
            self.reply(reply::DATA_OPEN, "No transfer to abort.");
        }
    }

    /// REIN (RFC 959): ends the login and returns to the state after the
    /// greeting. Run between transfers only (during one it waits, held.rs).
    /// TLS on the control connection stays, and PBSZ/PROT with it: going
    /// back to plaintext would be a CCC that --allow-ccc did not allow.
    /// The failed-login count stays too (no fresh tries by REIN).
    pub(super) fn reinit(&mut self, cx: &mut Cx<'_>) {
        if let Some(job) = self.data.reset(cx.registry) {
            self.log_transfer(&job, "REIN");
        }
        if matches!(self.state, CtrlState::LoggedIn { .. }) {
            // A new login window; before any login REIN gives none (it
            // must not lengthen the login timeout).
            self.login_since = cx.now;
        }
        self.state = CtrlState::NeedUser;
        self.access = Access::anonymous();
        self.user_name.clear();
        self.cwd = crate::fs::vpath::VPath::root();
        self.ttype = TransferType::Ascii;
        self.rest = 0;
        self.epsv_all = false;
        self.rename_from = None;
        self.seen_dirs.clear();
    }

    fn cmd_stat(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        if let Some(job) = self.data.job() {
            let line = match job {
                Job::Retr(r) => format!(
                    "Sending {}: {} of {} bytes",
                    String::from_utf8_lossy(r.path.as_bytes()),
                    r.pos - r.start,
                    r.end - r.start
                ),
                Job::List(l) => {
                    format!("Listing {}: {} bytes sent", String::from_utf8_lossy(l.path.as_bytes()), l.sent)
                }
                Job::Stor(u) => {
                    format!("Receiving {}: {} bytes received", String::from_utf8_lossy(u.path.as_bytes()), u.received)
                }
            };
            reply::push_multi(
                self.out(),
                reply::FILE_STATUS,
                b"Status of the transfer:",
                &[line.as_bytes()],
                b"End of status.",
            );
            return;
        }
        if !arg.is_empty() {
            return self.cmd_stat_path(arg, cx);
        }
        let lines = [
            format!("Connected to {} from {}", self.local, self.peer),
            format!("Logged in as {}", self.user()),
            format!(
                "TYPE: {}, STRUcture: File, MODE: Stream",
                if self.ttype == TransferType::Ascii { "ASCII" } else { "BINARY" }
            ),
            format!("Session {}: {} transfers, {} bytes sent", self.id, self.transfers, self.bytes_sent),
            format!("Data connection: {}", self.data.describe()),
        ];
        let refs: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        reply::push_multi(self.out(), reply::SYSTEM_STATUS, b"mirrorftpd status:", &refs, b"End of status.");
    }

    fn cmd_help(&mut self, arg: &[u8], tls: bool) {
        if arg.is_empty() {
            let names: Vec<&str> = command::VERBS
                .iter()
                .filter(|i| offered(i.verb, tls))
                .flat_map(|i| std::iter::once(i.name).chain(i.aliases.iter().copied()))
                .collect();
            let out = self.out();
            let mut m = reply::Multi::begin(out, reply::HELP, b"The following commands are recognized:");
            for chunk in names.chunks(8) {
                let row: Vec<String> = chunk.iter().map(|n| format!("{n:<5}")).collect();
                m.line(row.join(" ").trim_end().as_bytes());
            }
            m.end(b"Help OK.");
            return;
        }
        // HELP itself is fine: an argument that names no command is a bad
        // argument (501); a known command not offered here is 502, as it
        // would be if sent.
        match command::lookup(arg) {
            Some(v) if offered(v, tls) => {
                let help = command::info(v).help;
                self.reply(reply::HELP, &format!("Syntax: {help}"));
            }
            Some(v) => self.reply(reply::NOT_IMPLEMENTED, &format!("{} is not implemented.", command::info(v).name)),
            None => self.reply(reply::BAD_ARGUMENTS, "Unknown command."),
        }
    }

    fn cmd_site(&mut self, arg: &[u8], cx: &mut Cx<'_>) {
        let word_end = arg.iter().position(|&b| b == b' ').unwrap_or(arg.len());
        let word = &arg[..word_end];
        let rest = arg.get(word_end + 1..).unwrap_or_default();
        if word.eq_ignore_ascii_case(b"HELP") {
            reply::push_multi(self.out(), reply::HELP, b"SITE commands recognized:", &[b"HELP", b"CHMOD"], b"Help OK.");
        } else if word.eq_ignore_ascii_case(b"CHMOD") {
            self.cmd_chmod(rest, cx);
        } else {
            // RFC 959 lists 500 (not 502) among SITE's replies.
            self.reply(reply::SYNTAX_ERROR, "Unknown SITE command (SITE HELP lists them).");
        }
    }

    fn cmd_opts(&mut self, arg: &[u8]) {
        let upper = arg.to_ascii_uppercase();
        if upper == b"UTF8 ON" || upper == b"UTF-8 ON" || upper == b"UTF8" {
            self.reply(reply::COMMAND_OK, "Always in UTF8 mode.");
        } else if upper == b"UTF8 OFF" {
            self.reply(reply::NOT_IMPLEMENTED_PARAM, "UTF8 cannot be turned off: names are sent as stored.");
        } else if upper == b"MLST" || upper.starts_with(b"MLST ") {
            // RFC 3659 §7.9: "OPTS MLST fact;fact;" selects what MLST and
            // MLSD return; the reply names the facts now selected.
            match facts::parse_selection(arg.get(5..).unwrap_or_default()) {
                Some(set) => {
                    self.facts = set;
                    let mut text = b"MLST OPTS".to_vec();
                    if set != facts::Facts::NONE {
                        text.push(b' ');
                        facts::push_selected(&mut text, set);
                    }
                    self.reply_bytes(reply::COMMAND_OK, &text);
                }
                None => self.reply(reply::BAD_ARGUMENTS, "Invalid MLST options: no space inside the fact list."),
            }
        } else {
            self.reply(reply::BAD_ARGUMENTS, "Option not understood.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_verbs_are_offered_only_with_a_certificate() {
        assert!(offered(Verb::Stor, false));
        assert!(!offered(Verb::Auth, false));
        assert!(offered(Verb::Auth, true));
        assert!(offered(Verb::Retr, false));
        assert!(!offered(Verb::Host, true));
    }
}
