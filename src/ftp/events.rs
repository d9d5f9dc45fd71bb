//! What the data channel reports back to the control side: 150 when a
//! transfer starts, 226 or the failure's reply when it ends, 425 when no
//! data connection came.

use crate::proto::reply;

use super::data::DataEvent;
use super::transfer::{Failure, Job};
use super::{Cx, Session};

impl Session {
    /// Gives the data channel a turn. `None`: it yielded on its budget.
    pub(super) fn drive_data(&mut self, cx: &mut Cx<'_>) -> Option<bool> {
        let sources = self.data_sources(cx.cfg);
        let ev = self.data.drive(
            cx.slot,
            cx.registry,
            &sources,
            cx.cfg.allow_foreign_pasv,
            cx.cfg.sndbuf,
            cx.cfg.rcvbuf,
            cx.now,
        );
        match ev {
            DataEvent::Nothing => Some(false),
            DataEvent::Yield => None,
            DataEvent::Started => {
                self.reply_opening();
                Some(true)
            }
            DataEvent::Finished(job) => {
                self.bytes_sent += job.sent();
                self.transfers += 1;
                self.log_transfer(&job, "ok");
                self.reply(reply::TRANSFER_OK, "Transfer complete.");
                self.after_transfer(cx);
                Some(true)
            }
            DataEvent::Failed(job, f) => {
                self.bytes_sent += job.sent();
                let (code, text, why) = match &f {
                    Failure::PeerClosed => {
                        (reply::TRANSFER_ABORTED, "Connection closed; transfer aborted.", "client closed")
                    }
                    Failure::Network(_) => {
                        (reply::TRANSFER_ABORTED, "Network error; transfer aborted.", "network error")
                    }
                    Failure::Truncated => {
                        (reply::LOCAL_ERROR, "File changed during transfer; transfer aborted.", "file truncated")
                    }
                    Failure::Local(_) => (reply::LOCAL_ERROR, "Local read error; transfer aborted.", "read error"),
                    Failure::Write(e) => match e.raw_os_error() {
                        Some(libc::ENOSPC) => (
                            reply::INSUFFICIENT_STORAGE,
                            "No space left on device; bytes received so far are kept.",
                            "disk full",
                        ),
                        Some(libc::EDQUOT | libc::EFBIG) => {
                            (reply::EXCEEDED_STORAGE, "Quota or file size limit exceeded; upload stopped.", "quota")
                        }
                        _ => (reply::LOCAL_ERROR, "Local write error; upload stopped.", "write error"),
                    },
                    Failure::Tls(_) => (
                        reply::DATA_TLS_FAILED,
                        "TLS on the data connection failed (it must resume the control connection's TLS session).",
                        "tls",
                    ),
                };
                let why = match &f {
                    Failure::Network(e) | Failure::Local(e) | Failure::Write(e) => format!("{why}: {e}"),
                    Failure::Tls(t) => t.clone(),
                    _ => why.to_string(),
                };
                self.log_transfer(&job, &why);
                self.reply(code, text);
                self.after_transfer(cx);
                Some(true)
            }
            DataEvent::NoConnection(job, e) => {
                self.log_transfer(&job, &format!("no data connection: {e}"));
                self.reply(reply::CANT_OPEN_DATA, "Failed to establish data connection.");
                self.after_transfer(cx);
                Some(true)
            }
        }
    }

    pub(super) fn reply_opening(&mut self) {
        let text = match self.data.job() {
            Some(Job::Retr(r)) => {
                let mode = if r.ascii { "ASCII" } else { "BINARY" };
                format!("Opening {mode} mode data connection ({} bytes).", r.end - r.start)
            }
            Some(Job::List(_)) => "Here comes the directory listing.".to_string(),
            Some(Job::Stor(u)) if u.verb == "STOU" => {
                format!("FILE: {}", String::from_utf8_lossy(u.path.file_name()))
            }
            Some(Job::Stor(_)) => "Ok to send data.".to_string(),
            None => "Opening data connection.".to_string(),
        };
        self.reply(reply::OPENING_DATA, &text);
    }

    pub(super) fn after_transfer(&mut self, cx: &mut Cx<'_>) {
        self.data.reset(cx.registry);
        self.last_command = cx.now;
    }
}
