//! Unit tests of the PROXY header parser: every valid form, every truncation
//! point of valid headers, the rejections the spec asks for, and properties
//! checked over mutated headers (no panic, exact `consumed`, monotonic).

use super::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn done(consumed: usize, src: &str, dst: &str) -> Parse {
    Parse::Done { consumed, source: Some(sa(src)), dest: Some(sa(dst)) }
}

fn no_addr(consumed: usize) -> Parse {
    Parse::Done { consumed, source: None, dest: None }
}

/// Every proper prefix of `h` needs more, and `h` itself parses to `want`
/// with `consumed == h.len()`, also when FTP bytes follow it.
fn check_valid(h: &[u8], want: Parse) {
    for k in 0..h.len() {
        assert_eq!(parse(&h[..k]), Parse::NeedMore, "prefix {k} of {:?}", String::from_utf8_lossy(h));
    }
    assert_eq!(parse(h), want, "{:?}", String::from_utf8_lossy(h));
    let Parse::Done { consumed, .. } = want else { panic!("want must be Done") };
    assert_eq!(consumed, h.len());
    for tail in [&b"USER anonymous\r\n"[..], b"\x16\x03\x01\x02\x00", b"\r\n", b"PROXY TCP4 1.1.1.1 1.1.1.1 1 1\r\n"] {
        let mut more = h.to_vec();
        more.extend_from_slice(tail);
        assert_eq!(parse(&more), want, "with a tail {tail:?}");
    }
}

fn invalid(h: &[u8]) -> &'static str {
    match parse(h) {
        Parse::Invalid(why) => why,
        other => panic!("{:?} parsed as {other:?}", String::from_utf8_lossy(h)),
    }
}

#[test]
fn v1_tcp4_tcp6_and_unknown_parse_with_every_truncation_needing_more() {
    let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\n";
    check_valid(h, done(h.len(), "192.0.2.7:56324", "198.51.100.1:21"));
    let h = b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n";
    check_valid(h, done(h.len(), "0.0.0.0:0", "255.255.255.255:65535"));
    let h = b"PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 4000 21\r\n";
    check_valid(h, done(h.len(), "[2001:db8::1]:4000", "[2001:db8::2]:21"));
    let h = b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1024 990\r\n";
    check_valid(h, done(h.len(), "[::ffff:192.0.2.7]:1024", "[::1]:990"));
    check_valid(b"PROXY UNKNOWN\r\n", no_addr(15));
    let h = b"PROXY UNKNOWN whatever the sender had \x01\xff\r\n";
    check_valid(h, no_addr(h.len()));
}

#[test]
fn v1_length_limit_is_107_bytes_crlf_included() {
    let f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let worst = format!("PROXY UNKNOWN {f} {f} 65535 65535\r\n");
    assert_eq!(worst.len(), 107);
    check_valid(worst.as_bytes(), no_addr(107));
    let tcp6 = format!("PROXY TCP6 {f} {f} 65535 65535\r\n");
    assert_eq!(tcp6.len(), 104);
    check_valid(tcp6.as_bytes(), done(104, &format!("[{f}]:65535"), &format!("[{f}]:65535")));
    // One byte more: the CRLF is not within the first 107 bytes.
    let over = format!("PROXY UNKNOWN {f} {f} 65535 655350\r\n");
    assert_eq!(invalid(over.as_bytes()), "v1: no CRLF in the first 107 bytes");
    assert_eq!(invalid(&over.as_bytes()[..107]), "v1: no CRLF in the first 107 bytes");
    assert_eq!(parse(&over.as_bytes()[..106]), Parse::NeedMore);
}

#[test]
fn v1_rejects_what_the_spec_forbids() {
    let bad: &[&[u8]] = &[
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\n",     // LF alone
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\rX",    // CR alone
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\r\n", // CR CR LF
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21 \r\n",  // trailing space
        b"PROXY TCP4 192.0.2.7  198.51.100.1 56324 21\r\n",  // two spaces
        b"PROXY  TCP4 192.0.2.7 198.51.100.1 56324 21\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",     // missing port
        b"PROXY TCP4 192.0.2.07 198.51.100.1 56324 21\r\n", // leading zero
        b"PROXY TCP4 192.0.2.7 198.51.100.1 056324 21\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 021\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 21\r\n",
        b"PROXY TCP4 192.0.2.7 198.51.100.1 +5 21\r\n",
        b"PROXY TCP4 192.0.2.256 198.51.100.1 5 21\r\n",
        b"PROXY TCP4 192.0.2 198.51.100.1 5 21\r\n",
        b"PROXY TCP4 192.0.2.7.1 198.51.100.1 5 21\r\n",
        b"PROXY TCP4 192.0.2..7 198.51.100.1 5 21\r\n",
        b"PROXY TCP4 0x7f.0.0.1 198.51.100.1 5 21\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.1 5 21\r\n", // family mismatch
        b"PROXY TCP6 192.0.2.7 2001:db8::1 5 21\r\n",
        b"PROXY TCP6 2001:db8::1%eth0 2001:db8::2 5 21\r\n", // zone id
        b"PROXY TCP6 2001:db8:::1 2001:db8::2 5 21\r\n",
        b"PROXY TCP6 2001:db8::1::2 2001:db8::2 5 21\r\n",
        b"PROXY TCP6 12345::1 2001:db8::2 5 21\r\n",
        b"PROXY TCP6 ::ffff:192.0.2.07 ::1 5 21\r\n",
        b"PROXY TCP6 [::1] ::1 5 21\r\n",
        b"PROXY TCP5 1.1.1.1 1.1.1.1 1 1\r\n",
        b"PROXY tcp4 1.1.1.1 1.1.1.1 1 1\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY TCP4\r\n",
        b"PROXY\r\n",
        b"PROX\r\n",
        b"proxy TCP4 1.1.1.1 1.1.1.1 1 1\r\n",
        b"PROXY TCP4 1.1.1.1 1.1.1.1 1 1 1\r\n",
        b"USER anonymous\r\n",
        b"\x16\x03\x01\x02\x00", // a TLS ClientHello
        b"GET / HTTP/1.0\r\n",
    ];
    for h in bad {
        invalid(h);
    }
}

#[test]
fn v1_garbage_is_rejected_before_the_line_ends() {
    // Early rejection: no need to wait for a CRLF that may never come.
    for h in [&b"PROXY TCP4 1.1.1.1 x"[..], b"PROXY TCP9", b"PROXY UNKNOWNa", b"PROXZ", b"PROXY TCP4 1 2 3 4 5", b"Q"] {
        invalid(h);
    }
    for h in
        [&b"P"[..], b"PROXY", b"PROXY ", b"PROXY T", b"PROXY UNKNO", b"PROXY TCP6 ::1 ::", b"PROXY TCP4 1.2.3.4 \r"]
    {
        assert_eq!(parse(h), Parse::NeedMore, "{:?}", String::from_utf8_lossy(h));
    }
}

/// A v2 header: version/command, family/protocol, then `body`.
fn v2h(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(ver_cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v4_block() -> Vec<u8> {
    let mut b = vec![192, 0, 2, 7, 198, 51, 100, 1];
    b.extend_from_slice(&56324u16.to_be_bytes());
    b.extend_from_slice(&21u16.to_be_bytes());
    b
}

fn v6_block() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&4000u16.to_be_bytes());
    b.extend_from_slice(&990u16.to_be_bytes());
    b
}

#[test]
fn v2_inet_inet6_local_and_unspec_parse_with_every_truncation_needing_more() {
    let h = v2h(0x21, 0x11, &v4_block());
    check_valid(&h, done(28, "192.0.2.7:56324", "198.51.100.1:21"));
    let h = v2h(0x21, 0x21, &v6_block());
    check_valid(&h, done(52, "[2001:db8::1]:4000", "[2001:db8::2]:990"));
    // LOCAL: a health check by the proxy; any block is skipped, the family
    // is ignored.
    check_valid(&v2h(0x20, 0x00, &[]), no_addr(16));
    check_valid(&v2h(0x20, 0x11, &v4_block()), no_addr(28));
    check_valid(&v2h(0x20, 0x77, &[1, 2, 3]), no_addr(19));
    // PROXY with UNSPEC: no usable address.
    check_valid(&v2h(0x21, 0x00, &[9; 7]), no_addr(23));
    // AF_UNIX stream: falls back to the connection's own addresses.
    check_valid(&v2h(0x21, 0x31, &[0; 216]), no_addr(232));
}

#[test]
fn v2_tlvs_are_skipped_and_must_be_whole() {
    let mut body = v4_block();
    body.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]); // NOOP, 3 bytes
    body.extend_from_slice(&[0x05, 0x00, 0x00]); // empty UNIQUE_ID
    body.extend_from_slice(&[0x02, 0x00, 0x0b]);
    body.extend_from_slice(b"example.org");
    let h = v2h(0x21, 0x11, &body);
    check_valid(&h, done(h.len(), "192.0.2.7:56324", "198.51.100.1:21"));
    for tail in [&[0x04u8][..], &[0x04, 0x00], &[0x04, 0x00, 0x02, 0x00]] {
        let mut body = v4_block();
        body.extend_from_slice(tail);
        assert_eq!(invalid(&v2h(0x21, 0x11, &body)), "v2: malformed TLV", "{tail:?}");
    }
}

#[test]
fn v2_length_is_bounded() {
    let mut body = v4_block();
    let pad = V2_MAX - V2_FIXED - body.len() - 3;
    body.extend_from_slice(&[0x04]);
    body.extend_from_slice(&(pad as u16).to_be_bytes());
    body.resize(body.len() + pad, 0);
    let h = v2h(0x21, 0x11, &body);
    assert_eq!(h.len(), V2_MAX);
    check_valid(&h, done(V2_MAX, "192.0.2.7:56324", "198.51.100.1:21"));
    body.push(0);
    // Refused from the fixed part alone, before the body arrives.
    let h = v2h(0x21, 0x11, &body);
    assert_eq!(invalid(&h[..16]), "v2: header too long");
    assert_eq!(invalid(&v2h(0x20, 0x00, &[0; 2000])[..16]), "v2: header too long");
}

#[test]
fn v2_rejects_bad_signature_version_command_family_and_short_blocks() {
    let good = v2h(0x21, 0x11, &v4_block());
    for i in 0..12 {
        let mut h = good.clone();
        h[i] ^= 0x40;
        invalid(&h);
        invalid(&h[..=i]); // as soon as the wrong byte arrives
    }
    for vc in [0x11, 0x31, 0x22, 0x2f, 0x01] {
        let h = v2h(vc, 0x11, &v4_block());
        invalid(&h);
        invalid(&h[..13]);
    }
    for fam in [0x12, 0x22, 0x32, 0x01, 0x10, 0x41, 0x13, 0xff] {
        let h = v2h(0x21, fam, &[0; 216]);
        invalid(&h);
        invalid(&h[..14]);
    }
    assert_eq!(invalid(&v2h(0x21, 0x11, &v4_block()[..11])), "v2: address block shorter than its family needs");
    assert_eq!(invalid(&v2h(0x21, 0x21, &v4_block())), "v2: address block shorter than its family needs");
    invalid(&v2h(0x21, 0x31, &[0; 100]));
}

/// xorshift: deterministic pseudo-random bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What must hold for any input: no panic; `Done` only for the exact
/// header (every shorter prefix needs more); `Invalid` stays invalid when
/// more bytes come.
fn check_properties(buf: &[u8]) {
    match parse(buf) {
        Parse::Done { consumed, .. } => {
            assert!(consumed <= buf.len() && consumed <= MAX_HEADER);
            assert_eq!(parse(&buf[..consumed]), parse(buf));
            if consumed > 0 {
                assert_eq!(parse(&buf[..consumed - 1]), Parse::NeedMore, "{buf:?}");
            }
        }
        Parse::Invalid(_) => {
            let mut more = buf.to_vec();
            more.extend_from_slice(b"\r\n\x00 1");
            assert!(matches!(parse(&more), Parse::Invalid(_)), "{buf:?} became valid with more bytes");
        }
        Parse::NeedMore => assert!(buf.len() < MAX_HEADER),
    }
}

#[test]
fn mutated_headers_never_panic_and_keep_the_properties() {
    let seeds: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 21\r\nUSER a\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 4000 21\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2h(0x21, 0x11, &v4_block()),
        v2h(0x21, 0x21, &v6_block()),
        v2h(0x20, 0x00, &[]),
        v2h(0x21, 0x11, &[v4_block(), vec![4, 0, 1, 0, 2, 0, 0]].concat()),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"PROXY TCP46UNKW0123456789abcdef:.\r\n\x00\x20\x21\x11";
    for round in 0..40_000 {
        let mut buf = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(buf.len() + 1);
            match rng.below(4) {
                0 if at < buf.len() => buf[at] = rng.next() as u8,
                1 if at < buf.len() => buf[at] = alphabet[rng.below(alphabet.len())],
                2 if at < buf.len() => {
                    buf.remove(at);
                }
                _ => buf.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        buf.truncate(rng.below(buf.len() + 1).max(buf.len() / 2));
        check_properties(&buf);
    }
    for len in 0..300 {
        let buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_properties(&buf);
        let mut sig = V2_SIGNATURE.to_vec();
        sig.extend_from_slice(&buf);
        check_properties(&sig);
    }
}
