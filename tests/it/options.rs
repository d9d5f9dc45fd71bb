//! Server flags that shape replies: --pasv-ports (and the default passive
//! range), --pasv-address,
//! --local-time, and the IPv6 default fallback.

use std::fs;
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use crate::util::{Ftp, Server, temp_dir};

fn epsv_port(ftp: &mut Ftp) -> u16 {
    let (code, text) = ftp.cmd("EPSV");
    assert_eq!(code, 229, "EPSV: {text}");
    let inner = text.split("(|||").nth(1).and_then(|r| r.split('|').next()).expect("EPSV port");
    inner.parse().expect("numeric port")
}

fn pasv_reply(ftp: &mut Ftp) -> (String, u16) {
    let (code, text) = ftp.cmd("PASV");
    assert_eq!(code, 227, "PASV: {text}");
    let nums: Vec<u16> = text
        .split('(')
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("PASV tuple")
        .split(',')
        .map(|n| n.trim().parse().expect("number"))
        .collect();
    assert_eq!(nums.len(), 6, "{text}");
    (format!("{}.{}.{}.{}", nums[0], nums[1], nums[2], nums[3]), nums[4] * 256 + nums[5])
}

#[test]
fn passive_ports_stay_in_the_configured_range_across_workers() {
    let dir = temp_dir("opt-pasv-range");
    let server = Server::start(dir.path(), &["--pasv-ports", "23100-23109", "--workers", "2"]);
    let mut seen = Vec::new();
    for _ in 0..8 {
        let mut ftp = Ftp::connect(server.addr);
        ftp.login_anon();
        for _ in 0..3 {
            let p = epsv_port(&mut ftp);
            assert!((23100..=23109).contains(&p), "passive port {p} outside 23100-23109");
            seen.push(p);
        }
    }
    // Consecutive PASVs of one session move through the slice.
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() >= 2, "ports are cycled, not one fixed port: {seen:?}");
}

/// The default passive range as the README documents it, from this machine's
/// kernel settings: the ports above `ip_local_port_range` if at least 1,024,
/// else up to 4,096 ports just below it (not under 1024); None: kernel-chosen.
fn documented_default_range() -> (Option<(u16, u16)>, (u16, u16)) {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").expect("ip_local_port_range");
    let v: Vec<u16> = text.split_whitespace().map(|n| n.parse().expect("port")).collect();
    let (low, high) = (v[0], v[1]);
    let len = |a: u16, b: u16| usize::from(b) + 1 - usize::from(a);
    let range = if high < 65535 && len(high + 1, 65535) >= 1024 {
        Some((high + 1, 65535))
    } else if low > 1024 && len(low.saturating_sub(4096).max(1024), low - 1) >= 1024 {
        Some((low.saturating_sub(4096).max(1024), low - 1))
    } else {
        None
    };
    (range, (low, high))
}

#[test]
fn default_passive_ports_come_from_a_managed_range_outside_the_ephemeral_ports() {
    // Issue 11: without --pasv-ports every EPSV bound port 0, which costs
    // ~5 ms in the kernel once ~100,000 TIME_WAIT sockets exist.
    let dir = temp_dir("opt-pasv-default");
    fs::write(dir.path().join("f.txt"), b"default range\n").unwrap();
    let server = Server::start(dir.path(), &["--workers", "2"]);
    let (range, ephemeral) = documented_default_range();
    let Some((low, high)) = range else {
        // This kernel leaves no room: the server says it uses the kernel's ports.
        assert!(server.wait_log("passive ports kernel-chosen", Duration::from_secs(5)), "{}", server.log());
        panic!("ip_local_port_range {ephemeral:?} leaves no room for a default passive range on this machine");
    };
    // The two workers' slices, split as --pasv-ports is.
    let len = u32::from(high - low) + 1;
    let mid = low + (len / 2) as u16; // worker 1's first port, as PortRange::slice splits
    let slices = [(low, mid - 1), (mid, high)];
    for _ in 0..4 {
        let mut ftp = Ftp::connect(server.addr);
        ftp.login_anon();
        let ports: Vec<u16> = (0..5).map(|_| epsv_port(&mut ftp)).collect();
        for p in &ports {
            assert!((low..=high).contains(p), "EPSV port {p} outside the default range {low}-{high}: {ports:?}");
            assert!(
                !(ephemeral.0..=ephemeral.1).contains(p),
                "EPSV port {p} inside the kernel's ephemeral range {ephemeral:?}"
            );
        }
        let (a, b) = *slices.iter().find(|(a, b)| (*a..=*b).contains(&ports[0])).expect("in a slice");
        assert!(
            ports.iter().all(|p| (a..=b).contains(p)),
            "one session stays in its worker's slice {a}-{b}: {ports:?}"
        );
        // The cursor moves on (a busy port held by someone else is skipped).
        assert!(ports.windows(2).all(|w| w[1] > w[0]), "consecutive EPSVs move through the slice: {ports:?}");
        // And the port works.
        let mut data = TcpStream::connect(("127.0.0.1", ports[4])).expect("connect to the passive port");
        assert_eq!(ftp.cmd("TYPE I").0, 200);
        ftp.send("RETR f.txt");
        assert_eq!(ftp.reply().0, 150);
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut data, &mut got).unwrap();
        assert_eq!(got, b"default range\n");
        assert_eq!(ftp.reply().0, 226);
    }
    // The operator is told the range (for a firewall).
    let text = format!("passive ports {low}-{high} (default");
    assert!(server.wait_log(&text, Duration::from_secs(5)), "start-up line {text:?} missing:\n{}", server.log());
}

#[test]
fn exhausted_passive_range_gets_425_and_frees_on_close() {
    let dir = temp_dir("opt-pasv-one");
    let server = Server::start(dir.path(), &["--pasv-ports", "23120-23120", "--workers", "1"]);
    let mut a = Ftp::connect(server.addr);
    a.login_anon();
    assert_eq!(epsv_port(&mut a), 23120);
    let mut b = Ftp::connect(server.addr);
    b.login_anon();
    let (code, text) = b.cmd("EPSV");
    assert_eq!(code, 425, "the only passive port is taken: {text}");
    assert_eq!(b.cmd("NOOP").0, 200, "the refused session continues");
    assert_eq!(a.cmd("QUIT").0, 221);
    drop(a);
    // The listener is closed with its session; the port is free again.
    let mut ok = false;
    for _ in 0..50 {
        let (code, _) = b.cmd("EPSV");
        if code == 229 {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "port 23120 is reusable after its session ended");
}

#[test]
fn pasv_address_is_announced_and_data_still_flows() {
    let dir = temp_dir("opt-pasv-addr");
    fs::write(dir.path().join("f.txt"), b"natted\n").unwrap();
    let server = Server::start(dir.path(), &["--pasv-address", "192.0.2.7"]);
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    let (ip, port) = pasv_reply(&mut ftp);
    assert_eq!(ip, "192.0.2.7", "PASV announces --pasv-address");
    // The listener itself is on the address the client reached.
    let mut data = TcpStream::connect(("127.0.0.1", port)).expect("connect to the announced port locally");
    assert_eq!(ftp.cmd("TYPE I").0, 200);
    ftp.send("RETR f.txt");
    assert_eq!(ftp.reply().0, 150);
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut data, &mut got).unwrap();
    assert_eq!(got, b"natted\n");
    assert_eq!(ftp.reply().0, 226);
}

#[test]
fn pasv_address_must_be_ipv4() {
    let dir = temp_dir("opt-pasv-v6");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorftpd"))
        .args(["--root"])
        .arg(dir.path())
        .args(["--pasv-address", "::1", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("IPv4"));
}

#[test]
fn mdtm_is_utc_by_default_and_local_with_local_time() {
    let dir = temp_dir("opt-local-time");
    let path = dir.path().join("t.txt");
    fs::write(&path, b"x").unwrap();
    // 2001-01-02 03:04:05 UTC
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(978_404_645);
    fs::File::options().write(true).open(&path).unwrap().set_modified(t).unwrap();

    let utc = Server::start_env(dir.path(), &[], &[("TZ", "Asia/Tokyo")]);
    let mut ftp = Ftp::connect(utc.addr);
    ftp.login_anon();
    assert_eq!(ftp.cmd("MDTM t.txt"), (213, "20010102030405".to_string()));

    let local = Server::start_env(dir.path(), &["--local-time"], &[("TZ", "UTC-9")]);
    let mut ftp = Ftp::connect(local.addr);
    ftp.login_anon();
    // UTC-9 in POSIX TZ syntax is nine hours east of Greenwich (Tokyo time).
    assert_eq!(ftp.cmd("MDTM t.txt"), (213, "20010102120405".to_string()));
}
