//! Arguments of the data-connection commands: PORT, EPRT, EPSV, TYPE, REST, and the PASV/EPSV reply text.
//!
//! All parsers are strict (no signs, no spaces, no trailing bytes) and overflow-safe: they
//! return `None` for anything a well-behaved client would not send.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Parses a strict decimal: one or more ASCII digits, no sign, no spaces; `None` on overflow.
pub fn parse_u64(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() {
        return None;
    }
    arg.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn parse_u8(field: &[u8]) -> Option<u8> {
    parse_u64(field).and_then(|n| u8::try_from(n).ok())
}

/// Parses a PORT argument `h1,h2,h3,h4,p1,p2`: six decimals 0..=255; port 0 is refused.
pub fn parse_port(arg: &[u8]) -> Option<SocketAddrV4> {
    let mut f = [0u8; 6];
    let mut fields = arg.split(|&b| b == b',');
    for slot in &mut f {
        *slot = parse_u8(fields.next()?)?;
    }
    if fields.next().is_some() {
        return None;
    }
    let port = u16::from_be_bytes([f[4], f[5]]);
    if port == 0 {
        return None;
    }
    Some(SocketAddrV4::new(Ipv4Addr::new(f[0], f[1], f[2], f[3]), port))
}

/// Parses an EPRT argument (RFC 2428) `<d>proto<d>address<d>port<d>`, where `<d>` is the first
/// byte, any of ASCII 33..=126. Protocol 1 takes dotted IPv4 text, 2 takes IPv6 text; the port
/// is 1..=65535.
pub fn parse_eprt(arg: &[u8]) -> Option<SocketAddr> {
    let (&d, rest) = arg.split_first()?;
    if !(33..=126).contains(&d) {
        return None;
    }
    let mut parts = rest.split(|&b| b == d);
    let (proto, host, port, tail) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !tail.is_empty() || parts.next().is_some() {
        return None;
    }
    let port = parse_u64(port).and_then(|p| u16::try_from(p).ok()).filter(|&p| p != 0)?;
    let host = std::str::from_utf8(host).ok()?;
    match proto {
        b"1" => Some(SocketAddr::V4(SocketAddrV4::new(host.parse::<Ipv4Addr>().ok()?, port))),
        b"2" => Some(SocketAddr::V6(SocketAddrV6::new(host.parse::<Ipv6Addr>().ok()?, port, 0, 0))),
        _ => None,
    }
}

/// Appends a decimal number.
fn push_dec(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends the 227 reply text `Entering Passive Mode (h1,h2,h3,h4,p1,p2).`
pub fn push_pasv_text(out: &mut Vec<u8>, ip: Ipv4Addr, port: u16) {
    out.extend_from_slice(b"Entering Passive Mode (");
    for b in ip.octets().into_iter().chain(port.to_be_bytes()) {
        push_dec(out, u16::from(b));
        out.push(b',');
    }
    out.pop();
    out.extend_from_slice(b").");
}

/// Appends the 229 reply text `Entering Extended Passive Mode (|||port|)`.
pub fn push_epsv_text(out: &mut Vec<u8>, port: u16) {
    out.extend_from_slice(b"Entering Extended Passive Mode (|||");
    push_dec(out, port);
    out.extend_from_slice(b"|)");
}

/// The argument of EPSV.
#[derive(Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: any protocol.
    Any,
    /// `EPSV ALL`: from now on only EPSV may set up data connections.
    All,
    /// A network protocol (an IANA address family number: 1 is IPv4, 2 is
    /// IPv6); the session answers one it does not serve with 522.
    Proto(u16),
}

/// Parses an EPSV argument: `""` → Any, `ALL` (any case) → All, a protocol number → Proto.
pub fn parse_epsv(arg: &[u8]) -> Option<EpsvArg> {
    match arg {
        b"" => Some(EpsvArg::Any),
        _ if arg.eq_ignore_ascii_case(b"ALL") => Some(EpsvArg::All),
        _ => parse_protocol(arg).map(EpsvArg::Proto),
    }
}

/// An RFC 2428 network protocol number: decimal, no leading zero, at most 65535.
pub fn parse_protocol(arg: &[u8]) -> Option<u16> {
    if arg.first() == Some(&b'0') {
        return None;
    }
    parse_u64(arg).and_then(|n| u16::try_from(n).ok())
}

/// The protocol field of an EPRT argument (`<d>proto<d>...`), when it is a number, so that
/// a protocol the connection does not serve is answered with 522 before the rest is parsed.
pub fn eprt_protocol(arg: &[u8]) -> Option<u16> {
    let (&d, rest) = arg.split_first()?;
    let end = memchr::memchr(d, rest)?;
    parse_protocol(&rest[..end])
}

/// The representation type set by TYPE.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TransferType {
    Ascii,
    Image,
}

/// Parses a TYPE argument, case-insensitively: `A`, `A N` → Ascii; `I`, `L 8` → Image.
/// EBCDIC, Telnet or ASA format control, and other byte sizes are refused.
pub fn parse_type(arg: &[u8]) -> Option<TransferType> {
    let mut up = [0u8; 3];
    if arg.len() > up.len() {
        return None;
    }
    for (dst, &b) in up.iter_mut().zip(arg) {
        *dst = b.to_ascii_uppercase();
    }
    match &up[..arg.len()] {
        b"A" | b"A N" => Some(TransferType::Ascii),
        b"I" | b"L 8" => Some(TransferType::Image),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_strict() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"007"), Some(7));
        assert_eq!(parse_u64(b"10000000000"), Some(10_000_000_000));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"1a", b"0x10", b"\0", b"\xff", b"1\x00"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        assert_eq!(parse_u64(&[b'9'; 100_000]), None);
        assert_eq!(parse_u64(&[b'0'; 100_000]), Some(0));
    }

    #[test]
    fn port_valid() {
        assert_eq!(parse_port(b"192,168,1,2,4,1"), Some("192.168.1.2:1025".parse().unwrap()));
        assert_eq!(parse_port(b"127,0,0,1,255,255"), Some("127.0.0.1:65535".parse().unwrap()));
        assert_eq!(parse_port(b"10,0,0,001,0,21"), Some("10.0.0.1:21".parse().unwrap()));
    }

    #[test]
    fn port_invalid() {
        for bad in [
            &b""[..],
            b"1,2,3,4,5",
            b"1,2,3,4,5,6,7",
            b"1,2,3,4,0,0",
            b"256,0,0,1,4,1",
            b"1,2,3,4,5,256",
            b"1, 2,3,4,5,6",
            b"1,2,3,4,5,6 ",
            b"1,2,3,4,5,6,",
            b",1,2,3,4,5",
            b"1,2,3,,5,6",
            b"-1,2,3,4,5,6",
            b"99999999999999999999,0,0,1,4,1",
            b"1,2,3,4,5,99999999999999999999999999",
            b"1.2.3.4,5,6",
            b"\xff,\xff,\xff,\xff,\xff,\xff",
            b"\0",
        ] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
        let mut huge = b"1,2,3,4,5,6".to_vec();
        huge.extend(std::iter::repeat_n(b',', 100_000));
        assert_eq!(parse_port(&huge), None);
    }

    #[test]
    fn eprt_valid() {
        assert_eq!(parse_eprt(b"|1|132.235.1.2|6275|"), Some("132.235.1.2:6275".parse().unwrap()));
        assert_eq!(
            parse_eprt(b"|2|1080::8:800:200C:417A|5282|"),
            Some("[1080::8:800:200c:417a]:5282".parse().unwrap())
        );
        assert_eq!(parse_eprt(b"|2|::1|65535|"), Some("[::1]:65535".parse().unwrap()));
        assert_eq!(parse_eprt(b"!1!10.0.0.1!21!"), Some("10.0.0.1:21".parse().unwrap()));
        assert_eq!(parse_eprt(b"~2~::ffff:1.2.3.4~21~"), Some("[::ffff:1.2.3.4]:21".parse().unwrap()));
    }

    #[test]
    fn eprt_invalid() {
        for bad in [
            &b""[..],
            b"|",
            b"||||",
            b"|1|1.2.3.4|0|",
            b"|1|1.2.3.4|65536|",
            b"|1|1.2.3.4|99999999999999999999999|",
            b"|1|1.2.3.4|21",
            b"|1|1.2.3.4|21||",
            b"|1|1.2.3.4|21|x",
            b"|1|::1|21|",
            b"|2|1.2.3.4|21|",
            b"|3|1.2.3.4|21|",
            b"|01|1.2.3.4|21|",
            b"|1|1.2.3.4 |21|",
            b"|1| 1.2.3.4|21|",
            b"|1|1.2.3|21|",
            b"|1|1.2.3.256|21|",
            b"|2|fe80::1%eth0|21|",
            b"|1|1.2.3.4|+21|",
            b" 1 1.2.3.4 21 ",
            b"\x7f1\x7f1.2.3.4\x7f21\x7f",
            b"\xff1\xff1.2.3.4\xff21\xff",
            b"|1|\xff\xfe|21|",
            b"|1|1.2.3.4\0|21|",
            b".1.1.2.3.4.21.",
        ] {
            assert_eq!(parse_eprt(bad), None, "{bad:?}");
        }
        let mut huge = b"|2|".to_vec();
        huge.extend(std::iter::repeat_n(b':', 100_000));
        huge.extend_from_slice(b"|21|");
        assert_eq!(parse_eprt(&huge), None);
    }

    #[test]
    fn pasv_and_epsv_text() {
        let mut out = Vec::new();
        push_pasv_text(&mut out, Ipv4Addr::new(192, 168, 0, 10), 50_001);
        assert_eq!(out, b"Entering Passive Mode (192,168,0,10,195,81).");
        let mut out = Vec::new();
        push_pasv_text(&mut out, Ipv4Addr::UNSPECIFIED, 0);
        assert_eq!(out, b"Entering Passive Mode (0,0,0,0,0,0).");
        let mut out = b"229 ".to_vec();
        push_epsv_text(&mut out, 65_535);
        assert_eq!(out, b"229 Entering Extended Passive Mode (|||65535|)");
        let mut out = Vec::new();
        push_epsv_text(&mut out, 7);
        assert_eq!(out, b"Entering Extended Passive Mode (|||7|)");
    }

    #[test]
    fn pasv_text_round_trips_through_port_parser() {
        for port in [1u16, 255, 256, 21, 50_000, 65_535] {
            let ip = Ipv4Addr::new(10, 1, 2, 3);
            let mut out = Vec::new();
            push_pasv_text(&mut out, ip, port);
            let open = out.iter().position(|&b| b == b'(').unwrap();
            let close = out.iter().position(|&b| b == b')').unwrap();
            assert_eq!(parse_port(&out[open + 1..close]), Some(SocketAddrV4::new(ip, port)));
        }
    }

    #[test]
    fn epsv_args() {
        assert_eq!(parse_epsv(b""), Some(EpsvArg::Any));
        assert_eq!(parse_epsv(b"ALL"), Some(EpsvArg::All));
        assert_eq!(parse_epsv(b"aLl"), Some(EpsvArg::All));
        assert_eq!(parse_epsv(b"1"), Some(EpsvArg::Proto(1)));
        assert_eq!(parse_epsv(b"2"), Some(EpsvArg::Proto(2)));
        assert_eq!(parse_epsv(b"3"), Some(EpsvArg::Proto(3)));
        assert_eq!(parse_epsv(b"12"), Some(EpsvArg::Proto(12)));
        assert_eq!(parse_epsv(b"65535"), Some(EpsvArg::Proto(65_535)));
        for bad in [&b"0"[..], b"01", b"65536", b"-1", b"+1", b"1 ", b"ALL ", b" ALL", b"ALLX", b"\xff", b"\0"] {
            assert_eq!(parse_epsv(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn eprt_protocol_field() {
        assert_eq!(eprt_protocol(b"|1|1.2.3.4|21|"), Some(1));
        assert_eq!(eprt_protocol(b"!3!x!21!"), Some(3));
        assert_eq!(eprt_protocol(b"|47|"), Some(47));
        for bad in [&b""[..], b"|", b"|1", b"||1.2.3.4|21|", b"|x|1.2.3.4|21|", b"|01|a|1|", b"|99999|a|1|"] {
            assert_eq!(eprt_protocol(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn type_args() {
        assert_eq!(parse_type(b"A"), Some(TransferType::Ascii));
        assert_eq!(parse_type(b"a"), Some(TransferType::Ascii));
        assert_eq!(parse_type(b"A N"), Some(TransferType::Ascii));
        assert_eq!(parse_type(b"a n"), Some(TransferType::Ascii));
        assert_eq!(parse_type(b"I"), Some(TransferType::Image));
        assert_eq!(parse_type(b"i"), Some(TransferType::Image));
        assert_eq!(parse_type(b"L 8"), Some(TransferType::Image));
        assert_eq!(parse_type(b"l 8"), Some(TransferType::Image));
        for bad in [
            &b""[..],
            b"E",
            b"A T",
            b"A C",
            b"L 7",
            b"L",
            b"L8",
            b"I N",
            b"A  N",
            b"AN",
            b"I ",
            b"\xff",
            b"A\0N",
            b"L 88",
        ] {
            assert_eq!(parse_type(bad), None, "{bad:?}");
        }
        assert_eq!(parse_type(&[b'I'; 100_000]), None);
    }
}
