//! FTP replies: the reply codes by meaning, and writers that can never emit a split or injected line.
//!
//! Every text byte passes through one sanitiser: LF becomes NUL (RFC 959's rule for a newline
//! inside a pathname) and CR becomes a space, so the only line endings in the output are the
//! ones these functions add. Continuation lines of a multi-line reply start with a space, so no
//! client text can look like the closing `NNN ` line.

// 1xx: positive preliminary.
pub const RESTART_MARKER: u16 = 110;
pub const SERVICE_READY_IN: u16 = 120;
pub const DATA_ALREADY_OPEN: u16 = 125;
pub const OPENING_DATA: u16 = 150;

// 2xx: positive completion.
pub const COMMAND_OK: u16 = 200;
pub const NOT_IMPLEMENTED_SUPERFLUOUS: u16 = 202;
pub const SYSTEM_STATUS: u16 = 211;
pub const DIRECTORY_STATUS: u16 = 212;
pub const FILE_STATUS: u16 = 213;
pub const HELP: u16 = 214;
pub const SYSTEM_TYPE: u16 = 215;
pub const SERVICE_READY: u16 = 220;
pub const GOODBYE: u16 = 221;
pub const DATA_OPEN: u16 = 225;
pub const TRANSFER_OK: u16 = 226;
/// Same code as [`TRANSFER_OK`]: closing the data connection.
pub const CLOSING_DATA: u16 = 226;
pub const PASSIVE: u16 = 227;
pub const LONG_PASSIVE: u16 = 228;
pub const EXTENDED_PASSIVE: u16 = 229;
pub const LOGGED_IN: u16 = 230;
pub const LOGGED_OUT: u16 = 231;
pub const AUTH_OK: u16 = 234;
pub const FILE_ACTION_OK: u16 = 250;
pub const PATH_CREATED: u16 = 257;

// 3xx: positive intermediate.
pub const NEED_PASSWORD: u16 = 331;
pub const NEED_ACCOUNT: u16 = 332;
pub const PENDING_MORE: u16 = 350;

// 4xx: transient negative.
pub const SERVICE_UNAVAILABLE: u16 = 421;
pub const CANT_OPEN_DATA: u16 = 425;
pub const TRANSFER_ABORTED: u16 = 426;
pub const INVALID_USERNAME_OR_PASSWORD: u16 = 430;
pub const FILE_BUSY: u16 = 450;
pub const LOCAL_ERROR: u16 = 451;
pub const INSUFFICIENT_STORAGE: u16 = 452;

// 5xx: permanent negative.
pub const SYNTAX_ERROR: u16 = 500;
pub const BAD_ARGUMENTS: u16 = 501;
pub const NOT_IMPLEMENTED: u16 = 502;
pub const BAD_SEQUENCE: u16 = 503;
pub const NOT_IMPLEMENTED_PARAM: u16 = 504;
pub const BAD_NETWORK_PROTOCOL: u16 = 522;
pub const NOT_LOGGED_IN: u16 = 530;
pub const NEED_ACCOUNT_FOR_STORE: u16 = 532;
pub const PROT_NOT_SUPPORTED: u16 = 536;
pub const FILE_UNAVAILABLE: u16 = 550;
pub const PAGE_TYPE_UNKNOWN: u16 = 551;
pub const EXCEEDED_STORAGE: u16 = 552;
pub const BAD_FILENAME: u16 = 553;
/// RFC 2228: TLS could not be set up on our side.
pub const LOCAL_ERROR_TLS: u16 = 431;
/// RFC 2228/4217: refused for policy reasons (CCC, PROT C under a policy).
pub const REQUEST_DENIED: u16 = 534;
/// RFC 4217: the data connection cannot be opened with this PROT setting.
pub const PROT_REQUIRED: u16 = 521;
/// RFC 4217: the data connection's TLS negotiation failed.
pub const DATA_TLS_FAILED: u16 = 522;
/// RFC 3659: the REST offset does not fit the file (e.g. past its end).
pub const BAD_REST_OFFSET: u16 = 554;

/// Appends `code` as exactly three digits (a code above 999 keeps its last three).
fn push_code(out: &mut Vec<u8>, code: u16) {
    out.extend_from_slice(&[b'0' + (code / 100 % 10) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8]);
}

/// Appends `text` with LF turned into NUL and CR into a space.
fn push_clean(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(at) = memchr::memchr2(b'\r', b'\n', rest) {
        out.extend_from_slice(&rest[..at]);
        out.push(if rest[at] == b'\n' { 0 } else { b' ' });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends a one-line reply: `"226 text\r\n"`.
pub fn push(out: &mut Vec<u8>, code: u16, text: &[u8]) {
    push_code(out, code);
    out.push(b' ');
    push_clean(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends a multi-line reply: `"211-first\r\n"`, each of `lines` as `" line\r\n"`, then
/// `"211 last\r\n"`.
pub fn push_multi(out: &mut Vec<u8>, code: u16, first: &[u8], lines: &[&[u8]], last: &[u8]) {
    let mut m = Multi::begin(out, code, first);
    for line in lines {
        m.line(line);
    }
    m.end(last);
}

/// Builds a long multi-line reply in place, one line at a time, with the same rules as
/// [`push_multi`]. A builder dropped without [`Multi::end`] leaves an unfinished reply behind.
#[must_use = "a multi-line reply must be closed with end()"]
pub struct Multi<'a> {
    out: &'a mut Vec<u8>,
    code: u16,
}

impl<'a> Multi<'a> {
    /// Appends the opening `"NNN-first\r\n"` line.
    pub fn begin(out: &'a mut Vec<u8>, code: u16, first: &[u8]) -> Multi<'a> {
        push_code(out, code);
        out.push(b'-');
        push_clean(out, first);
        out.extend_from_slice(b"\r\n");
        Multi { out, code }
    }

    /// Appends one continuation line, prefixed with a space.
    pub fn line(&mut self, text: &[u8]) -> &mut Self {
        self.out.push(b' ');
        push_clean(self.out, text);
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends the closing `"NNN last\r\n"` line.
    pub fn end(self, last: &[u8]) {
        push(self.out, self.code, last);
    }
}

/// Appends `"path"` with every `"` inside doubled (RFC 959's 257 reply), LF → NUL, CR → space.
pub fn push_quoted_path(out: &mut Vec<u8>, path: &[u8]) {
    out.push(b'"');
    for &b in path {
        match b {
            b'"' => out.extend_from_slice(b"\"\""),
            b'\n' => out.push(0),
            b'\r' => out.push(b' '),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(code: u16, text: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push(&mut out, code, text);
        out
    }

    /// Splits a reply stream into its CRLF-terminated lines, checking there is no other ending.
    fn lines(out: &[u8]) -> Vec<&[u8]> {
        let mut pieces: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
        assert_eq!(pieces.pop(), Some(&b""[..]), "reply must end with CRLF");
        pieces
            .into_iter()
            .map(|l| {
                let l = l.strip_suffix(b"\r").expect("every LF is preceded by CR");
                assert!(!l.contains(&b'\r'), "{l:?}");
                l
            })
            .collect()
    }

    #[test]
    fn single_line() {
        assert_eq!(one(TRANSFER_OK, b"Transfer complete."), b"226 Transfer complete.\r\n");
        assert_eq!(one(COMMAND_OK, b""), b"200 \r\n");
        assert_eq!(one(5, b"x"), b"005 x\r\n");
        assert_eq!(one(u16::MAX, b"x"), b"535 x\r\n");
    }

    #[test]
    fn single_line_cannot_be_split() {
        let out = one(FILE_UNAVAILABLE, b"a\r\n230 Logged in\rb\nc");
        assert_eq!(out, b"550 a \x00230 Logged in b\x00c\r\n");
        assert_eq!(lines(&out).len(), 1);
        assert_eq!(one(FILE_UNAVAILABLE, b"\xff\0\n"), b"550 \xff\0\0\r\n");
    }

    #[test]
    fn multi_line_shape() {
        let mut out = Vec::new();
        push_multi(&mut out, SYSTEM_STATUS, b"Features:", &[b"MDTM", b"SIZE"], b"End");
        assert_eq!(out, b"211-Features:\r\n MDTM\r\n SIZE\r\n211 End\r\n");
        let mut out = Vec::new();
        push_multi(&mut out, HELP, b"a", &[], b"b");
        assert_eq!(out, b"214-a\r\n214 b\r\n");
    }

    #[test]
    fn multi_line_hostile_lines_cannot_end_the_reply() {
        let mut out = Vec::new();
        push_multi(&mut out, DIRECTORY_STATUS, b"x\r\n212 fake", &[b"212 done", b"\n530 x\r", b""], b"end\n");
        let got = lines(&out);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], b"212-x \x00212 fake");
        // Only the last line starts with "212 ".
        for l in &got[..4] {
            assert!(!l.starts_with(b"212 "), "{l:?}");
        }
        assert_eq!(got[1], b" 212 done");
        assert_eq!(got[2], b" \x00530 x ");
        assert_eq!(got[4], b"212 end\x00");
    }

    #[test]
    fn multi_builder_matches_push_multi() {
        let mut a = Vec::new();
        let mut m = Multi::begin(&mut a, FILE_STATUS, b"Status of x:");
        m.line(b"one").line(b"two\n");
        m.end(b"End of status");
        let mut b = Vec::new();
        push_multi(&mut b, FILE_STATUS, b"Status of x:", &[b"one", b"two\n"], b"End of status");
        assert_eq!(a, b);
    }

    #[test]
    fn quoted_path() {
        let mut out = b"257 ".to_vec();
        push_quoted_path(&mut out, b"/pub/say \"hi\"");
        assert_eq!(out, b"257 \"/pub/say \"\"hi\"\"\"");
        let mut out = Vec::new();
        push_quoted_path(&mut out, b"");
        assert_eq!(out, b"\"\"");
        let mut out = Vec::new();
        push_quoted_path(&mut out, b"a\r\n\"\xff");
        assert_eq!(out, b"\"a \0\"\"\xff\"");
    }

    #[test]
    fn long_text_is_copied_whole() {
        let text = vec![b'\n'; 100_000];
        let out = one(LOCAL_ERROR, &text);
        assert_eq!(out.len(), 4 + 100_000 + 2);
        assert_eq!(lines(&out).len(), 1);
    }
}
