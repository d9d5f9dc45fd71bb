//! The PROXY protocol header a load balancer puts before a connection's
//! first byte (HAProxy's doc/proxy-protocol.txt): version 1 (one text line,
//! `PROXY TCP4|TCP6|UNKNOWN ...\r\n`, at most 107 bytes) and version 2
//! (binary: a 12-byte signature, version/command, family/protocol, length,
//! addresses, TLVs).
//!
//! `parse` is a pure function over the bytes received so far: call it again
//! with more bytes after `NeedMore`. It never looks past the end of the
//! header (`consumed` is exact: what follows is FTP or TLS), rejects as soon
//! as the prefix cannot start a valid header, and never panics (it is a fuzz
//! target).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest version 1 line, CRLF included (the spec's worst case).
pub const V1_MAX: usize = 107;
/// The version 2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a version 2 header: signature, version/command,
/// family/protocol, length.
pub const V2_FIXED: usize = 16;
/// Longest version 2 header accepted, fixed part included: room for the
/// largest address block (AF_UNIX, 216 bytes) and the TLVs load balancers
/// send (SSL facts, a unique id of up to 128 bytes, an authority).
pub const V2_MAX: usize = 1024;
/// The most bytes `parse` ever needs to decide.
pub const MAX_HEADER: usize = V2_MAX;

/// One parsing result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The bytes so far are a valid beginning of a header; read more.
    NeedMore,
    /// A complete header of `consumed` bytes. The addresses are `None` for
    /// a v2 LOCAL command (a health check by the proxy itself), v1 UNKNOWN
    /// and v2 UNSPEC/AF_UNIX: the connection's own addresses apply.
    Done { consumed: usize, source: Option<SocketAddr>, dest: Option<SocketAddr> },
    /// Not a valid header (the connection must be dropped).
    Invalid(&'static str),
}

/// Parses the header at the start of `buf` (the bytes received so far).
pub fn parse(buf: &[u8]) -> Parse {
    match buf.first() {
        None => Parse::NeedMore,
        Some(b'P') => v1(buf),
        Some(b'\r') => v2(buf),
        Some(_) => Parse::Invalid("not a PROXY protocol header"),
    }
}

// ---------------------------------------------------------------- version 1

const V1_PREFIX: &[u8] = b"PROXY ";

/// The protocol word of a v1 line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp4,
    Tcp6,
    Unknown,
}

fn v1(buf: &[u8]) -> Parse {
    let window = &buf[..buf.len().min(V1_MAX)];
    match memchr::memchr2(b'\r', b'\n', window) {
        Some(i) if window[i] == b'\n' => Parse::Invalid("v1: LF without CR"),
        Some(i) => {
            let line = &window[..i];
            if let Err(why) = check_v1_prefix(line) {
                return Parse::Invalid(why);
            }
            match window.get(i + 1) {
                Some(b'\n') => v1_line(line, i + 2),
                Some(_) => Parse::Invalid("v1: CR not followed by LF"),
                None if window.len() == V1_MAX => Parse::Invalid("v1: no CRLF in the first 107 bytes"),
                None => Parse::NeedMore,
            }
        }
        None => {
            if let Err(why) = check_v1_prefix(window) {
                return Parse::Invalid(why);
            }
            if window.len() == V1_MAX { Parse::Invalid("v1: no CRLF in the first 107 bytes") } else { Parse::NeedMore }
        }
    }
}

/// Checks that `part` (a line without CR/LF, complete or not) can begin a
/// valid v1 line; rejects garbage before the CRLF arrives.
fn check_v1_prefix(part: &[u8]) -> Result<(), &'static str> {
    let n = part.len().min(V1_PREFIX.len());
    if part[..n] != V1_PREFIX[..n] {
        return Err("v1: line does not start with \"PROXY \"");
    }
    let Some(rest) = part.get(V1_PREFIX.len()..) else { return Ok(()) };
    let (proto, fields) = match split_proto(rest) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(()), // the protocol word is still arriving
        Err(why) => return Err(why),
    };
    let allowed: fn(u8) -> bool = match proto {
        // Anything may follow UNKNOWN; the receiver ignores it.
        Proto::Unknown => return Ok(()),
        Proto::Tcp4 => |b| b.is_ascii_digit() || b == b'.' || b == b' ',
        Proto::Tcp6 => |b| b.is_ascii_hexdigit() || b == b':' || b == b'.' || b == b' ',
    };
    if !fields.iter().all(|&b| allowed(b)) {
        return Err("v1: unexpected character in an address or port");
    }
    if fields.iter().filter(|&&b| b == b' ').count() > 3 {
        return Err("v1: too many fields");
    }
    Ok(())
}

/// Splits the protocol word off what follows "PROXY ". `Ok(None)`: `rest`
/// is still a prefix of a protocol word.
fn split_proto(rest: &[u8]) -> Result<Option<(Proto, &[u8])>, &'static str> {
    const WORDS: [(&[u8], Proto); 3] = [(b"TCP4 ", Proto::Tcp4), (b"TCP6 ", Proto::Tcp6), (b"UNKNOWN", Proto::Unknown)];
    for (word, proto) in WORDS {
        if let Some(after) = rest.strip_prefix(word) {
            if proto == Proto::Unknown && !after.is_empty() && after[0] != b' ' {
                return Err("v1: unknown protocol");
            }
            return Ok(Some((proto, after)));
        }
        if word.starts_with(rest) {
            return Ok(None);
        }
    }
    Err("v1: unknown protocol")
}

/// Parses a complete line (without its CRLF) of `consumed` bytes.
fn v1_line(line: &[u8], consumed: usize) -> Parse {
    let Some(Ok(Some((proto, fields)))) = line.get(V1_PREFIX.len()..).map(split_proto) else {
        return Parse::Invalid("v1: unknown protocol");
    };
    if proto == Proto::Unknown {
        return Parse::Done { consumed, source: None, dest: None };
    }
    let mut parts = fields.split(|&b| b == b' ');
    let (Some(src), Some(dst), Some(sport), Some(dport), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Invalid("v1: expected source, destination and two ports");
    };
    let (src, dst) = match proto {
        Proto::Tcp4 => match (ipv4_text(src), ipv4_text(dst)) {
            (Some(s), Some(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
            _ => return Parse::Invalid("v1: bad IPv4 address"),
        },
        _ => match (ipv6_text(src), ipv6_text(dst)) {
            (Some(s), Some(d)) => (IpAddr::V6(s), IpAddr::V6(d)),
            _ => return Parse::Invalid("v1: bad IPv6 address"),
        },
    };
    let (Some(sport), Some(dport)) = (decimal(sport, 65535), decimal(dport, 65535)) else {
        return Parse::Invalid("v1: bad port");
    };
    Parse::Done {
        consumed,
        source: Some(SocketAddr::new(src, sport as u16)),
        dest: Some(SocketAddr::new(dst, dport as u16)),
    }
}

/// A decimal number `0..=max` with no sign and no leading zero (the spec
/// forbids them: octal confusion).
fn decimal(s: &[u8], max: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    (v <= max).then_some(v)
}

/// Exactly four decimal numbers 0-255 separated by single dots.
fn ipv4_text(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split(|&b| b == b'.');
    for o in &mut octets {
        let part = parts.next()?;
        if part.len() > 3 {
            return None;
        }
        *o = decimal(part, 255)? as u8;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Hex groups separated by colons, at most one "::", optionally ending in
/// a dotted IPv4 address (inet_ntop's form of mapped addresses); no zone.
fn ipv6_text(s: &[u8]) -> Option<Ipv6Addr> {
    if s.len() > 45 || !s.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let addr: Ipv6Addr = text.parse().ok()?;
    // std accepts what the spec allows; its dotted tail has no leading
    // zeros. Check that tail with our own rule anyway.
    if let Some(dot) = text.find('.') {
        let start = text[..dot].rfind(':').map_or(0, |c| c + 1);
        ipv4_text(&s[start..])?;
    }
    Some(addr)
}

// ---------------------------------------------------------------- version 2

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;
const UNIX_STREAM: u8 = 0x31;
const UNSPEC: u8 = 0x00;

fn v2(buf: &[u8]) -> Parse {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Parse::Invalid("v2: bad signature");
    }
    if let Some(&vc) = buf.get(12) {
        if vc >> 4 != 2 {
            return Parse::Invalid("v2: version is not 2");
        }
        if vc & 0xf > CMD_PROXY {
            return Parse::Invalid("v2: unknown command");
        }
    }
    let command = buf.get(12).map(|vc| vc & 0xf);
    if let (Some(CMD_PROXY), Some(&fam)) = (command, buf.get(13)) {
        match fam {
            UNSPEC | TCP_OVER_IPV4 | TCP_OVER_IPV6 | UNIX_STREAM => {}
            0x12 | 0x22 | 0x32 => return Parse::Invalid("v2: datagram protocol for a TCP service"),
            _ => return Parse::Invalid("v2: unknown address family or protocol"),
        }
    }
    if buf.len() < V2_FIXED {
        return Parse::NeedMore;
    }
    let (fam, len) = (buf[13], usize::from(u16::from_be_bytes([buf[14], buf[15]])));
    let total = V2_FIXED + len;
    if total > V2_MAX {
        return Parse::Invalid("v2: header too long");
    }
    let need = match (command, fam) {
        (Some(CMD_PROXY), TCP_OVER_IPV4) => 12,
        (Some(CMD_PROXY), TCP_OVER_IPV6) => 36,
        (Some(CMD_PROXY), UNIX_STREAM) => 216,
        _ => 0,
    };
    if len < need {
        return Parse::Invalid("v2: address block shorter than its family needs");
    }
    let Some(block) = buf.get(V2_FIXED..total) else { return Parse::NeedMore };
    if command == Some(CMD_LOCAL) || fam == UNSPEC {
        // LOCAL: the proxy's own connection (health check); the block,
        // family included, is ignored. UNSPEC: no address to use.
        return Parse::Done { consumed: total, source: None, dest: None };
    }
    let (addrs, tlvs) = block.split_at(need);
    if !tlvs_well_formed(tlvs) {
        return Parse::Invalid("v2: malformed TLV");
    }
    let (source, dest) = match fam {
        TCP_OVER_IPV4 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(addrs[at], addrs[at + 1], addrs[at + 2], addrs[at + 3]));
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            (SocketAddr::new(ip(0), port(8)), SocketAddr::new(ip(4), port(10)))
        }
        TCP_OVER_IPV6 => {
            let ip = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&addrs[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            (SocketAddr::new(ip(0), port(32)), SocketAddr::new(ip(16), port(34)))
        }
        // AF_UNIX stream: no IP address; fall back to the connection's
        // own addresses, as the spec asks of receivers without AF_UNIX.
        _ => return Parse::Done { consumed: total, source: None, dest: None },
    };
    Parse::Done { consumed: total, source: Some(source), dest: Some(dest) }
}

/// True when `tlvs` is a sequence of whole type-length-value records
/// (their contents are skipped).
fn tlvs_well_formed(mut tlvs: &[u8]) -> bool {
    while !tlvs.is_empty() {
        let [_, hi, lo, rest @ ..] = tlvs else { return false };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        match rest.get(len..) {
            Some(next) => tlvs = next,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
