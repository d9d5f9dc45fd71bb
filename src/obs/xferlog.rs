//! The wu-ftpd/vsftpd transfer log (xferlog(5)): one line per file transfer
//! that ended (complete or not), in the field order AWStats, goaccess and
//! other xferlog parsers expect.
//!
//! ```text
//! current-time transfer-time remote-host bytes-count filename transfer-type
//! special-action-flag direction access-mode username service-name
//! authentication-method authenticated-user-id completion-status
//! Tue Nov 24 01:02:03 2026 1 127.0.0.1 1048576 /pub/file.iso b _ o a anonymous ftp 0 * c
//! ```
//!
//! As vsftpd writes it: the time is `%a %b %e %H:%M:%S %Y` (day padded with a
//! space), the transfer time whole seconds and at least 1, spaces in the file
//! name become `_`, unprintable characters `?`. Unlike vsftpd, an anonymous
//! user's password (the e-mail address) is never written: the username field
//! holds `anonymous`. The file name is the absolute virtual path the client
//! sees (for an account with its own home, relative to that home).

use std::fmt::Write;
use std::net::IpAddr;

use crate::fs::time::Parts;

/// One finished, failed or aborted transfer.
pub struct Record<'a> {
    /// Seconds the transfer took.
    pub secs: f64,
    pub host: IpAddr,
    /// Bytes actually sent or received on the data connection.
    pub bytes: u64,
    pub path: &'a [u8],
    pub ascii: bool,
    pub upload: bool,
    pub anonymous: bool,
    /// The logged-in account (ignored for anonymous sessions).
    pub user: &'a str,
    pub complete: bool,
    /// The service-name field: `ftp` or `sftp`.
    pub service: &'a str,
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Day of the week, 0 = Sunday (Sakamoto's method, proleptic Gregorian).
fn weekday(year: i64, month: u32, day: u32) -> usize {
    const T: [i64; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let m = month.clamp(1, 12) as usize;
    let y = if m < 3 { year - 1 } else { year };
    (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + T[m - 1] + i64::from(day)).rem_euclid(7) as usize
}

/// Appends `Tue Nov 24 01:02:03 2026` (ctime's form, `%e` day).
pub fn push_time(out: &mut String, p: &Parts) {
    let _ = write!(
        out,
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[weekday(p.year, p.month, p.day)],
        MONTHS[(p.month.clamp(1, 12) - 1) as usize],
        p.day,
        p.hour,
        p.min,
        p.sec,
        p.year
    );
}

/// Appends a field that must stay one whitespace-free token: spaces become
/// `_`, control characters and bytes that are not UTF-8 become `?`.
pub fn push_token(out: &mut String, b: &[u8]) {
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                ' ' => out.push('_'),
                c if c.is_control() || c.is_whitespace() => out.push('?'),
                c => out.push(c),
            }
        }
        if !chunk.invalid().is_empty() {
            out.push('?');
        }
    }
    if b.is_empty() {
        out.push('-');
    }
}

/// The whole line (no newline), with `time` as the current time.
pub fn format(r: &Record<'_>, time: &Parts) -> String {
    let mut out = String::with_capacity(96 + r.path.len());
    push_time(&mut out, time);
    let secs = if r.secs.is_finite() { r.secs.round().max(1.0) as u64 } else { 1 };
    let _ = write!(out, " {secs} {} {} ", r.host, r.bytes);
    push_token(&mut out, r.path);
    out.push_str(if r.ascii { " a _ " } else { " b _ " });
    out.push_str(if r.upload { "i " } else { "o " });
    if r.anonymous {
        out.push_str("a anonymous");
    } else {
        out.push_str("r ");
        push_token(&mut out, r.user.as_bytes());
    }
    out.push(' ');
    out.push_str(r.service);
    out.push_str(" 0 * ");
    out.push(if r.complete { 'c' } else { 'i' });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::time::utc_parts;

    fn rec<'a>(path: &'a [u8]) -> Record<'a> {
        Record {
            secs: 0.2,
            host: "127.0.0.1".parse().unwrap(),
            bytes: 1_048_576,
            path,
            ascii: false,
            upload: false,
            anonymous: true,
            user: "anonymous",
            service: "ftp",
            complete: true,
        }
    }

    #[test]
    fn time_is_ctime_form_with_space_padded_day() {
        let mut s = String::new();
        push_time(&mut s, &utc_parts(1_795_482_123)); // 2026-11-24 01:02:03 UTC
        assert_eq!(s, "Tue Nov 24 01:02:03 2026");
        s.clear();
        push_time(&mut s, &utc_parts(0));
        assert_eq!(s, "Thu Jan  1 00:00:00 1970");
        s.clear();
        push_time(&mut s, &utc_parts(951_782_400)); // 2000-02-29
        assert_eq!(s, "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn anonymous_download_line_has_the_xferlog_field_order() {
        let line = format(&rec(b"/pub/file.iso"), &utc_parts(1_795_482_123));
        assert_eq!(line, "Tue Nov 24 01:02:03 2026 1 127.0.0.1 1048576 /pub/file.iso b _ o a anonymous ftp 0 * c");
        assert_eq!(line.split(' ').filter(|f| !f.is_empty()).count(), 18);
    }

    #[test]
    fn upload_by_account_incomplete_ascii() {
        let r = Record {
            secs: 2.6,
            host: "::1".parse().unwrap(),
            bytes: 5,
            upload: true,
            ascii: true,
            anonymous: false,
            user: "bob smith",
            complete: false,
            ..rec(b"/in/a b\nc\xff.txt")
        };
        let line = format(&r, &utc_parts(1_795_482_123));
        assert_eq!(line, "Tue Nov 24 01:02:03 2026 3 ::1 5 /in/a_b?c?.txt a _ i r bob_smith ftp 0 * i");
    }

    #[test]
    fn empty_fields_stay_one_token() {
        let mut s = String::new();
        push_token(&mut s, b"");
        assert_eq!(s, "-");
    }
}
