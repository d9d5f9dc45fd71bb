//! The bench client's reply reader: frames the control stream into lines
//! (the server's bounded `LineBuf`), assembles multi-line replies, and parses
//! the few reply texts the client needs (227, 229, the size in 150).

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::io::linebuf::{Line, LineBuf};

/// One complete reply. `text` is the text of its last line (where 227/229
/// put their address), cut to `MAX_TEXT` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: Vec<u8>,
}

/// Bytes of reply text kept; the rest of a long line is dropped.
const MAX_TEXT: usize = 256;

/// What the reader found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Reply(Reply),
    /// More bytes are needed.
    Partial,
    /// Not FTP: a line without a 3-digit code, or one over the line limit.
    Bad,
}

/// Control-connection input of one client session.
///
/// Invariant: `multi` is the code of a multi-line reply whose closing
/// "ddd " line has not arrived yet.
pub struct ReplyReader {
    lines: LineBuf,
    multi: Option<u16>,
}

/// A 3-digit reply code 100..=599 at the start of `line`, and the byte after it.
fn code_of(line: &[u8]) -> Option<(u16, Option<u8>)> {
    let d = line.get(..3)?;
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = d.iter().fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
    (100..600).contains(&code).then(|| (code, line.get(3).copied()))
}

impl ReplyReader {
    pub fn new(max_line: usize) -> ReplyReader {
        ReplyReader { lines: LineBuf::new(max_line), multi: None }
    }

    /// Reads once from `r` (only after `next` returned `Partial`).
    pub fn read_from<R: std::io::Read>(&mut self, r: &mut R) -> std::io::Result<usize> {
        self.lines.read_from(r)
    }

    /// Nothing buffered: no partial line, no open multi-line reply (checked
    /// before TLS takes over the stream, as plaintext after 234 is suspect).
    pub fn is_empty(&self) -> bool {
        self.lines.pending() == 0 && self.multi.is_none()
    }

    /// The next complete reply among the bytes read so far.
    pub fn next_reply(&mut self) -> Next {
        loop {
            if self.lines.pending() == 0 {
                // Nothing buffered: an idle session keeps no input memory.
                self.lines.release_if_empty();
                return Next::Partial;
            }
            let (s, e) = match self.lines.next_line() {
                Line::Ready(s, e) => (s, e),
                Line::TooLong => return Next::Bad,
                Line::Partial => {
                    self.lines.release_if_empty();
                    return Next::Partial;
                }
            };
            let line = self.lines.line_mut(s, e);
            match (self.multi, code_of(line)) {
                // Inside a multi-line reply only "ddd " with the same code
                // ends it; every other line is text (RFC 959 §4.2).
                (Some(m), Some((c, sep))) if c == m && matches!(sep, Some(b' ') | None) => {
                    self.multi = None;
                    return Next::Reply(Reply { code: c, text: text_of(line) });
                }
                (Some(_), _) => continue,
                (None, Some((c, Some(b'-')))) => self.multi = Some(c),
                (None, Some((c, Some(b' ')) | (c, None))) => {
                    return Next::Reply(Reply { code: c, text: text_of(line) });
                }
                (None, _) => return Next::Bad,
            }
        }
    }
}

fn text_of(line: &[u8]) -> Vec<u8> {
    let t = line.get(4..).unwrap_or(b"");
    t[..t.len().min(MAX_TEXT)].to_vec()
}

/// The port of a 229 reply: `Entering Extended Passive Mode (|||port|)`
/// (any delimiter, RFC 2428).
pub fn parse_229(text: &[u8]) -> Option<u16> {
    let open = text.iter().position(|&b| b == b'(')?;
    let inner = &text[open + 1..];
    let &d = inner.first()?;
    let rest = inner.strip_prefix(&[d, d, d])?;
    let end = rest.iter().position(|&b| b == d)?;
    let port = crate::proto::addr::parse_u64(&rest[..end])?;
    u16::try_from(port).ok().filter(|&p| p != 0)
}

/// The address of a 227 reply: the first run of `h1,h2,h3,h4,p1,p2` in the
/// text, parenthesised or not.
pub fn parse_227(text: &[u8]) -> Option<SocketAddrV4> {
    let start = text.iter().position(u8::is_ascii_digit)?;
    let run = &text[start..];
    let len = run.iter().position(|b| !(b.is_ascii_digit() || *b == b',')).unwrap_or(run.len());
    crate::proto::addr::parse_port(&run[..len])
}

/// The size announced in a 150 reply, `... (12345 bytes).`, if any.
pub fn parse_150_size(text: &[u8]) -> Option<u64> {
    let open = text.iter().rposition(|&b| b == b'(')?;
    let inner = &text[open + 1..];
    let digits = inner.iter().position(|b| !b.is_ascii_digit())?;
    if !inner[digits..].starts_with(b" bytes") {
        return None;
    }
    crate::proto::addr::parse_u64(&inner[..digits])
}

/// `PORT h1,h2,h3,h4,p1,p2` for an IPv4 listener.
pub fn port_command(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!("PORT {a},{b},{c},{d},{},{}", port >> 8, port & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes in fixed-size pieces.
    struct Pieces<'a>(&'a [u8], usize);

    impl std::io::Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all_replies(bytes: &[u8], piece: usize) -> Vec<Next> {
        let mut r = ReplyReader::new(64);
        let mut src = Pieces(bytes, piece);
        let mut out = Vec::new();
        loop {
            match r.next_reply() {
                Next::Partial => {
                    if r.read_from(&mut src).unwrap() == 0 {
                        return out;
                    }
                }
                other => out.push(other),
            }
        }
    }

    fn reply(code: u16, text: &str) -> Next {
        Next::Reply(Reply { code, text: text.as_bytes().to_vec() })
    }

    #[test]
    fn single_and_multi_line_replies_split_anywhere() {
        let stream = b"220-Welcome\r\n220-to the\r\n 230 not the end\r\n220 ready\r\n331 Password?\r\n230 ok\n";
        for piece in 1..stream.len() {
            assert_eq!(
                all_replies(stream, piece),
                vec![reply(220, "ready"), reply(331, "Password?"), reply(230, "ok")],
                "piece size {piece}"
            );
        }
    }

    #[test]
    fn a_multi_line_reply_ends_only_on_its_own_code() {
        let stream = b"211-Features:\r\n MDTM\r\n211-also\r\n226 inside\r\n211 End\r\n";
        assert_eq!(all_replies(stream, 7), vec![reply(211, "End")]);
    }

    #[test]
    fn empty_means_nothing_buffered() {
        let mut r = ReplyReader::new(64);
        assert!(r.is_empty());
        r.read_from(&mut Pieces(b"234 go\r\n", 100)).unwrap();
        assert!(!r.is_empty());
        assert_eq!(r.next_reply(), reply(234, "go"));
        assert!(r.is_empty());
        r.read_from(&mut Pieces(b"234 go\r\n2", 100)).unwrap();
        assert_eq!(r.next_reply(), reply(234, "go"));
        assert!(!r.is_empty(), "a byte after the reply");
    }

    #[test]
    fn garbage_and_overlong_lines_are_bad() {
        assert_eq!(all_replies(b"hello\r\n", 100), vec![Next::Bad]);
        assert_eq!(all_replies(b"99 x\r\n", 100), vec![Next::Bad]);
        let long = [b'2'; 100];
        assert_eq!(all_replies(&long, 100)[0], Next::Bad);
        assert_eq!(all_replies(b"200\r\n", 100), vec![reply(200, "")]);
    }

    #[test]
    fn passive_replies_parse() {
        assert_eq!(parse_229(b"Entering Extended Passive Mode (|||40001|)"), Some(40001));
        assert_eq!(parse_229(b"ok (!!!21!)"), Some(21));
        assert_eq!(parse_229(b"Entering Extended Passive Mode (|||0|)"), None);
        assert_eq!(parse_229(b"Entering Extended Passive Mode (||1|)"), None);
        assert_eq!(parse_229(b"no parens"), None);
        assert_eq!(
            parse_227(b"Entering Passive Mode (127,0,0,1,156,65)."),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 156 * 256 + 65))
        );
        assert_eq!(parse_227(b"=10,1,2,3,0,21"), Some(SocketAddrV4::new(Ipv4Addr::new(10, 1, 2, 3), 21)));
        assert_eq!(parse_227(b"Entering Passive Mode (127,0,0,1,256,1)."), None);
    }

    #[test]
    fn size_in_150() {
        assert_eq!(parse_150_size(b"Opening BINARY mode data connection (1048576 bytes)."), Some(1 << 20));
        assert_eq!(parse_150_size(b"Opening BINARY mode data connection for x (3 bytes)"), Some(3));
        assert_eq!(parse_150_size(b"Here comes the directory listing."), None);
        assert_eq!(parse_150_size(b"Opening (abc bytes)"), None);
    }

    #[test]
    fn port_command_text() {
        assert_eq!(port_command(Ipv4Addr::new(127, 0, 0, 1), 40001), "PORT 127,0,0,1,156,65");
    }
}
