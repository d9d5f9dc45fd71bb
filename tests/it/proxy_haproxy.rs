//! Two mirrorftpd nodes behind Debian's HAProxy (TCP mode, send-proxy-v2,
//! tcp-check health checks) on the loopback; the client connects from
//! 127.0.0.2 so its real address differs from the proxy's (127.0.0.1).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::proxy::{bytes_until_close, connect_from, free_port, pasv, retr_pasv_from, try_connect_from};
use crate::util::{Ftp, IO_TIMEOUT, Server, require_tool, temp_dir};

/// Passive port ranges of the two nodes (distinct, so a PASV reply says
/// which node answered).
const RANGES: [(u16, u16); 2] = [(23300, 23309), (23310, 23319)];

/// HAProxy running in the foreground; killed by PID on drop.
struct HaProxy {
    child: Child,
    log: std::path::PathBuf,
}

impl HaProxy {
    fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- haproxy output ----\n{}---- end ----", self.output());
        }
    }
}

fn config(front: u16, nodes: &[SocketAddr]) -> String {
    let mut cfg = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
         frontend ftp\n    bind 127.0.0.1:{front}\n    default_backend nodes\n\
         backend nodes\n    balance roundrobin\n    option tcp-check\n\
         \x20   tcp-check expect rstring ^220\n    tcp-check send QUIT\\r\\n\n"
    );
    for (i, n) in nodes.iter().enumerate() {
        cfg.push_str(&format!("    server node{i} {n} send-proxy-v2 check inter 300ms\n"));
    }
    cfg
}

/// Starts HAProxy in front of `nodes` on a free port; returns it and the
/// first session through it (from 127.0.0.2), which shows it is up.
fn start_haproxy(dir: &Path, nodes: &[SocketAddr]) -> (HaProxy, SocketAddr, Ftp) {
    for attempt in 0..5 {
        let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let cfg = dir.join(format!("haproxy-{attempt}.cfg"));
        fs::write(&cfg, config(front.port(), nodes)).expect("writing haproxy.cfg");
        let log = dir.join(format!("haproxy-{attempt}.log"));
        let out = fs::File::create(&log).expect("haproxy log");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&cfg)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("spawning haproxy");
        let mut hp = HaProxy { child, log };
        let deadline = Instant::now() + IO_TIMEOUT;
        while Instant::now() < deadline {
            if hp.child.try_wait().ok().flatten().is_some() {
                break; // exited: the port was taken meanwhile; try another
            }
            if let Ok(s) = try_connect_from("127.0.0.2", front) {
                return (hp, front, Ftp::over(s, front));
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("haproxy attempt {attempt} did not come up:\n{}", hp.output());
    }
    panic!("haproxy did not start");
}

fn node_of(at: SocketAddr) -> usize {
    RANGES
        .iter()
        .position(|(lo, hi)| (*lo..=*hi).contains(&at.port()))
        .unwrap_or_else(|| panic!("passive port {at} in no node's range"))
}

#[test]
fn two_nodes_behind_haproxy_see_the_real_client() {
    if !require_tool("haproxy") {
        return;
    }
    let dir = temp_dir("haproxy");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    fs::write(dir.join("f.bin"), &body).unwrap();
    let logs = temp_dir("haproxy-logs");
    let xferlogs: Vec<String> =
        (0..RANGES.len()).map(|i| logs.join(format!("xferlog.{i}")).display().to_string()).collect();
    let nodes: Vec<Server> = RANGES
        .iter()
        .zip(&xferlogs)
        .map(|((lo, hi), xferlog)| {
            let range = format!("{lo}-{hi}");
            Server::start(
                dir.path(),
                &[
                    "--xferlog",
                    xferlog,
                    "--proxy-protocol",
                    "--proxy-from",
                    "127.0.0.1/32",
                    "--pasv-ports",
                    &range,
                    "--pasv-address",
                    "127.0.0.1",
                ],
            )
        })
        .collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let (hp, front, mut first) = start_haproxy(&dir, &addrs);

    // (b) passive downloads through the proxy, sessions spread over both
    // nodes; the data connection goes straight to the node.
    let mut served = [0usize; 2];
    first.login_anon();
    let mut sessions = vec![first];
    for _ in 0..3 {
        let mut ftp = Ftp::over(connect_from("127.0.0.2", front), front);
        ftp.login_anon();
        sessions.push(ftp);
    }
    for ftp in &mut sessions {
        let at = pasv(ftp);
        assert_eq!(at.ip(), std::net::IpAddr::from([127, 0, 0, 1]), "--pasv-address is announced");
        served[node_of(at)] += 1;
        assert_eq!(retr_pasv_from(ftp, "127.0.0.2", "f.bin"), body, "content through node");
    }
    assert!(served.iter().all(|&n| n > 0), "both nodes served sessions: {served:?}");

    // (a) both nodes log the real client, not the proxy.
    for (i, n) in nodes.iter().enumerate() {
        assert!(n.wait_log("connect from 127.0.0.2:", IO_TIMEOUT), "node {i} log:\n{}", n.log());
        assert!(
            n.wait_log("login anonymous from 127.0.0.2:", std::time::Duration::from_secs(5)),
            "node {i} log:\n{}",
            n.log()
        );
        // HAProxy's health checks arrive as PROXY v2 LOCAL: the proxy itself.
        assert!(n.wait_log("the proxy's own connection", IO_TIMEOUT), "node {i} log:\n{}", n.log());
        // The xferlog's remote-host field (the 7th) is the real client.
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        let lines = loop {
            let text = fs::read_to_string(&xferlogs[i]).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= served[i] || std::time::Instant::now() >= deadline {
                break lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(lines.len(), served[i], "node {i}: one xferlog line per download: {lines:?}");
        for l in &lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.get(6), Some(&"127.0.0.2"), "node {i} xferlog remote-host: {l}");
            assert_eq!(f.get(7), Some(&body.len().to_string().as_str()), "node {i} xferlog bytes: {l}");
        }
    }

    // (c) PORT: to the real client is allowed (and works), to the proxy's
    // address is foreign.
    let ftp = &mut sessions[0];
    assert_eq!(ftp.cmd("PORT 127,0,0,1,100,100").0, 504, "PORT to the proxy's address");
    let listener = TcpListener::bind("127.0.0.2:0").expect("listening on 127.0.0.2");
    let p = listener.local_addr().unwrap().port();
    assert_eq!(ftp.cmd(&format!("PORT 127,0,0,2,{},{}", p >> 8, p & 0xff)).0, 200, "PORT to the real client");
    assert_eq!(ftp.cmd("RETR f.bin").0, 150);
    let (mut data, from) = listener.accept().expect("the node connects back");
    assert_eq!(from.ip(), std::net::IpAddr::from([127, 0, 0, 1]), "active data comes from the node");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(got, body);
    assert_eq!(ftp.reply().0, 226);
    for ftp in &mut sessions {
        assert_eq!(ftp.cmd("QUIT").0, 221);
    }

    // (d) straight to a node: from an untrusted address, 421; from the
    // trusted one without a header, dropped without a greeting.
    for n in &nodes {
        let mut s = connect_from("127.0.0.2", n.addr);
        let got = bytes_until_close(&mut s, IO_TIMEOUT);
        assert!(got.starts_with(b"421 "), "{:?}", String::from_utf8_lossy(&got));
        let mut s = connect_from("127.0.0.1", n.addr);
        s.write_all(b"USER anonymous\r\n").unwrap();
        assert_eq!(bytes_until_close(&mut s, IO_TIMEOUT), b"", "no greeting without a header");
    }
    let out = hp.output();
    assert!(!out.contains("is DOWN"), "health checks failed:\n{out}");
}
