//! Fuzz target: one control line as the session sees it — Telnet stripping, then the command
//! parser, then the argument parsers a verb's argument can reach (PORT/EPRT/EPSV/TYPE/REST,
//! LIST options and the glob matcher).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorftpd::fs::glob;
use mirrorftpd::proto::addr;
use mirrorftpd::proto::command::{self, ArgRule};

fuzz_target!(|data: &[u8]| {
    // The framer hands over bytes up to (not including) the LF.
    let line = data.split(|&b| b == b'\n').next().unwrap_or(data);
    let mut buf = line.to_vec();
    let n = command::strip_telnet(&mut buf);
    assert!(n <= line.len(), "stripping never grows a line");
    if !line.contains(&0xFF) {
        assert_eq!(&buf[..n], line, "a line without IAC is left as it is");
    }
    let line = &buf[..n];
    let Ok(cmd) = command::parse(line) else { return };
    let info = command::info(cmd.verb);
    assert_eq!(command::lookup(info.name.as_bytes()), Some(cmd.verb));
    match info.arg {
        ArgRule::None => assert!(cmd.arg.is_empty()),
        ArgRule::Required => assert!(!cmd.arg.is_empty()),
        ArgRule::Optional => {}
    }
    // The argument is the line's tail, byte-exact (a final CR dropped).
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    assert!(cmd.arg.is_empty() || body.ends_with(cmd.arg));

    if let Some(a) = addr::parse_port(cmd.arg) {
        let [p1, p2] = a.port().to_be_bytes();
        let [h1, h2, h3, h4] = a.ip().octets();
        let text = format!("{h1},{h2},{h3},{h4},{p1},{p2}");
        assert_eq!(addr::parse_port(text.as_bytes()), Some(a));
        assert_ne!(a.port(), 0);
    }
    if let Some(a) = addr::parse_eprt(cmd.arg) {
        assert_ne!(a.port(), 0);
        let proto = if a.is_ipv4() { 1 } else { 2 };
        let text = format!("|{proto}|{}|{}|", a.ip(), a.port());
        assert_eq!(addr::parse_eprt(text.as_bytes()), Some(a));
    }
    if let Some(n) = addr::parse_u64(cmd.arg) {
        assert_eq!(addr::parse_u64(n.to_string().as_bytes()), Some(n));
    }
    let _ = addr::parse_epsv(cmd.arg);
    if let Some(p) = addr::eprt_protocol(cmd.arg) {
        // A parsed EPRT always names the protocol its field holds.
        if let Some(a) = addr::parse_eprt(cmd.arg) {
            assert_eq!(p, if a.is_ipv4() { 1 } else { 2 });
        }
    }
    let _ = addr::parse_type(cmd.arg);
    let (_flags, path) = glob::parse_list_args(cmd.arg);
    assert!(cmd.arg.ends_with(path));
    // Pattern and name: the two halves of the path around its first '/'.
    if let Some(mid) = path.iter().position(|&b| b == b'/') {
        let (pattern, name) = (&path[..mid], &path[mid + 1..]);
        let m = glob::matches(pattern, name);
        if !glob::is_pattern(pattern) && pattern.len() <= glob::MAX_PATTERN && name.first() != Some(&b'.') {
            assert_eq!(m, pattern == name, "a pattern without wildcards matches only itself");
        }
    }
});
