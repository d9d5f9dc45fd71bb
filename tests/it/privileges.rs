//! Privileges and systemd: the drop to --run-as (every thread, no way back),
//! the root policy (a root start drops to `nobody` unless --allow-root),
//! --chroot with account homes, --active-from-port-20 (data from the control
//! port minus one, CAP_NET_BIND_SERVICE only), sd_notify and socket activation.
//! These tests need root (as CI runs them): without it they panic under CI=1
//! and print a loud notice otherwise.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::{UP_HASH, UP_PASS, UP_USER};
use crate::util::{Ftp, IO_TIMEOUT, Server, require_tool, temp_dir};

const BIN: &str = env!("CARGO_BIN_EXE_mirrorftpd");
const NOBODY: &str = "nobody";

/// True when running as root. Otherwise panics under CI, else prints a loud
/// notice and returns false (the caller returns).
fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test} needs root (CI runs the tests as root)");
    }
    let _ = writeln!(io::stderr(), "SKIPPED-LOUDLY: {test} needs root; run the tests as root");
    false
}

/// uid and primary gid of `name` from /etc/passwd.
fn ids_of(name: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name) && f.len() > 3)
        .map(|f| (f[2].parse().expect("uid"), f[3].parse().expect("gid")))
        .unwrap_or_else(|| panic!("no user {name} in /etc/passwd"))
}

/// Every thread's status file of process `pid`: (thread name, contents).
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir(format!("/proc/{pid}/task")).expect("reading /proc/PID/task") {
        let status = fs::read_to_string(e.expect("task entry").path().join("status")).expect("task status");
        let name = field(&status, "Name:").to_string();
        out.push((name, status));
    }
    out
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(key)).map_or("", str::trim)
}

fn ids(status: &str, key: &str) -> Vec<u32> {
    field(status, key).split_whitespace().map(|x| x.parse().expect("id")).collect()
}

/// Asserts that every thread of `pid` runs as uid/gid with no other groups.
fn assert_all_threads(pid: u32, uid: u32, gid: u32) -> Vec<(String, String)> {
    // A thread names itself once it first runs: on a loaded machine the
    // workers may exist a moment before their names do.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ts = threads(pid);
    while !(ts.iter().any(|(n, _)| n.starts_with("auth-")) && ts.iter().any(|(n, _)| n.starts_with("worker-")))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        ts = threads(pid);
    }
    assert!(ts.iter().any(|(n, _)| n.starts_with("auth-")), "the password helper threads exist: {ts:?}");
    assert!(ts.iter().any(|(n, _)| n.starts_with("worker-")), "the workers exist: {ts:?}");
    for (name, st) in &ts {
        assert_eq!(ids(st, "Uid:"), [uid; 4], "thread {name}:\n{st}");
        assert_eq!(ids(st, "Gid:"), [gid; 4], "thread {name}:\n{st}");
        assert_eq!(ids(st, "Groups:"), [gid], "thread {name}:\n{st}");
        assert_eq!(field(st, "NoNewPrivs:"), "1", "thread {name}:\n{st}");
    }
    ts
}

/// Logs in as the uploader account of `users_file`.
fn login_up(addr: SocketAddr) -> Ftp {
    let mut ftp = Ftp::connect(addr);
    assert_eq!(ftp.cmd(&format!("USER {UP_USER}")).0, 331);
    let pass = ftp.cmd(&format!("PASS {UP_PASS}"));
    assert_eq!(pass.0, 230, "PASS: {pass:?}");
    assert_eq!(ftp.cmd("TYPE I").0, 200);
    ftp
}

/// STOR over EPSV; the final reply (or the refusal).
fn stor(ftp: &mut Ftp, path: &str, bytes: &[u8]) -> (u16, String) {
    let mut data = ftp.pasv_connect();
    let start = ftp.cmd(&format!("STOR {path}"));
    if start.0 != 150 && start.0 != 125 {
        return start;
    }
    data.write_all(bytes).expect("writing upload data");
    drop(data);
    ftp.reply()
}

fn users_file(dir: &Path, home: &Path) -> std::path::PathBuf {
    let f = dir.join("users");
    fs::write(&f, format!("{UP_USER}:{UP_HASH}:{}:all\n", home.display())).expect("writing users file");
    f
}

#[test]
fn run_as_nobody_reaches_every_thread_and_the_kernel_refuses_root_owned_dirs() {
    if !require_root("run_as_nobody_reaches_every_thread") {
        return;
    }
    let (uid, gid) = ids_of(NOBODY);
    let root = temp_dir("privs-runas");
    let conf = temp_dir("privs-runas-conf");
    fs::create_dir(root.join("locked")).expect("mkdir locked");
    fs::set_permissions(root.join("locked"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir(root.join("incoming")).expect("mkdir incoming");
    chown(root.join("incoming"), Some(uid), Some(gid)).expect("chown incoming");
    fs::write(root.join("locked/file.txt"), b"root's file").expect("write");
    let users = users_file(&conf, &root);
    let server = Server::start(&root, &["--run-as", NOBODY, "--users", users.to_str().expect("utf-8")]);
    assert!(server.wait_log("running as nobody", IO_TIMEOUT), "{}", server.log());

    let ts = assert_all_threads(server.pid(), uid, gid);
    for (name, st) in &ts {
        assert_eq!(field(st, "CapEff:"), "0000000000000000", "thread {name} keeps capabilities:\n{st}");
        assert_eq!(field(st, "CapPrm:"), "0000000000000000", "thread {name} keeps capabilities:\n{st}");
    }

    let mut ftp = login_up(server.addr);
    assert_eq!(ftp.retr_bytes("/locked/file.txt").expect("download as nobody"), b"root's file");
    let refused = stor(&mut ftp, "/locked/new.txt", b"nope");
    assert!(matches!(refused.0, 550 | 553), "upload into a root-owned 0755 dir: {refused:?}");
    assert!(!root.join("locked/new.txt").exists(), "nothing was created");
    let ok = stor(&mut ftp, "/incoming/new.txt", b"yes");
    assert_eq!(ok.0, 226, "upload into nobody's own dir: {ok:?}");
    let meta = fs::metadata(root.join("incoming/new.txt")).expect("uploaded file");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), uid, "the file belongs to nobody");
}

#[test]
fn root_start_drops_to_nobody_unless_allow_root() {
    if !require_root("root_start_drops_to_nobody_unless_allow_root") {
        return;
    }
    let (uid, gid) = ids_of(NOBODY);
    let root = temp_dir("privs-default");
    fs::write(root.join("f"), b"x").expect("write");
    // No --run-as, no --allow-root: what a newcomer's quick start does as root.
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(root.path()).args(["--listen", "127.0.0.1:0", "--workers", "2"]);
    let server = Server::spawn(cmd, &root, 1);
    assert!(server.wait_log("running as nobody", IO_TIMEOUT), "{}", server.log());
    assert!(
        server.wait_log("started as root without --run-as: dropping to nobody", std::time::Duration::from_secs(5)),
        "{}",
        server.log()
    );
    assert_all_threads(server.pid(), uid, gid);
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("/f").expect("RETR"), b"x");

    // --allow-root keeps root, and says so.
    let kept = Server::start(&root, &["--allow-root"]);
    assert!(kept.wait_log("running as root (--allow-root)", IO_TIMEOUT), "{}", kept.log());
    assert_eq!(ids(&threads(kept.pid())[0].1, "Uid:"), [0; 4]);
}

/// Runs the binary to completion (it must exit within 10 s).
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning mirrorftpd");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} kept running; it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_run_as_values_stop_start_up_with_a_clear_error() {
    if !require_root("bad_run_as_values_stop_start_up_with_a_clear_error") {
        return;
    }
    let root = temp_dir("privs-bad");
    let base = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(root.path()).args(["--listen", "127.0.0.1:0"]).args(extra);
        c
    };
    let cases: [(&[&str], i32, &str); 5] = [
        (&["--run-as", "no-such-user-mirrorftpd"], 1, "no such user \"no-such-user-mirrorftpd\""),
        (&["--run-as", "nobody:no-such-group-mirrorftpd"], 1, "no such group"),
        (&["--run-as", "root"], 1, "use --allow-root"),
        (&["--run-as", "nobody:"], 1, "expected USER or USER:GROUP"),
        (&["--run-as", "nobody", "--allow-root"], 2, "cannot be used with"),
    ];
    for (args, code, msg) in cases {
        let (got, stderr) = run_to_exit(&mut base(args));
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(msg), "{args:?}: expected {msg:?} in {stderr:?}");
        assert!(!stderr.contains("listening on"), "{args:?}: it bound before refusing: {stderr}");
    }
}

#[test]
fn non_root_start_accepts_only_its_own_user() {
    if !require_root("non_root_start_accepts_only_its_own_user") {
        return;
    }
    let (uid, gid) = ids_of(NOBODY);
    // A copy of the binary that nobody may run, whatever the checkout's modes.
    let bin_dir = temp_dir("privs-bin");
    fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = bin_dir.join("mirrorftpd");
    fs::copy(BIN, &bin).expect("copying the binary");
    let root = temp_dir("privs-nonroot");
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(root.join("f"), b"x").expect("write");
    let as_nobody = |run_as: &str| {
        let mut c = Command::new(&bin);
        c.arg("--root").arg(root.path()).args(["--listen", "127.0.0.1:0", "--workers", "1", "--run-as", run_as]);
        c.uid(uid).gid(gid);
        c
    };
    let (code, stderr) = run_to_exit(&mut as_nobody("daemon"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not as root: only root can switch users"), "{stderr}");
    let (code, stderr) = run_to_exit(as_nobody(NOBODY).arg("--chroot"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--chroot needs root or CAP_SYS_CHROOT (started as nobody)"), "{stderr}");
    assert!(!stderr.contains("listening on"), "it refused before binding: {stderr}");

    let server = Server::spawn(as_nobody(NOBODY), &root, 1);
    assert!(server.wait_log("running as nobody", IO_TIMEOUT), "{}", server.log());
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("/f").expect("RETR"), b"x");
}

#[test]
fn chroot_confines_the_process_and_account_homes_still_work() {
    if !require_root("chroot_confines_the_process_and_account_homes_still_work") {
        return;
    }
    let root = temp_dir("privs-chroot");
    let conf = temp_dir("privs-chroot-conf");
    fs::create_dir_all(root.join("homes/up/docs")).expect("mkdir home");
    fs::write(root.join("pub.txt"), b"public").expect("write");
    fs::write(root.join("homes/up/docs/mine.txt"), b"private").expect("write");
    // The users file lives outside the root and names the home by its path
    // outside the chroot: the home must be opened before the chroot.
    let users = users_file(&conf, &root.join("homes/up"));
    let server = Server::start(&root, &["--chroot", "--run-as", NOBODY, "--users", users.to_str().expect("utf-8")]);
    assert!(server.wait_log("chrooted to", IO_TIMEOUT), "{}", server.log());
    let link = fs::read_link(format!("/proc/{}/root", server.pid())).expect("readlink /proc/PID/root");
    assert_eq!(link, root.canonicalize().expect("canonical root"), "the process's root directory");
    let mut anon = Ftp::connect(server.addr);
    anon.login_anon();
    assert_eq!(anon.retr_bytes("/pub.txt").expect("anonymous RETR"), b"public");
    let mut up = login_up(server.addr);
    assert_eq!(up.retr_bytes("/docs/mine.txt").expect("RETR in the home"), b"private");
    let listing = up.list("NLST /docs");
    assert_eq!(String::from_utf8_lossy(&listing).trim(), "mine.txt");
    assert!(up.retr_bytes("/../pub.txt").is_err(), "the home is a jail of its own");
}

#[test]
fn chroot_warns_about_reloadable_files_outside_the_root() {
    if !require_root("chroot_warns_about_reloadable_files_outside_the_root") || !crate::util::require_tool("openssl") {
        return;
    }
    let root = temp_dir("privs-chroot-tls");
    let conf = temp_dir("privs-chroot-tls-conf");
    let (cert, key) = crate::ftps::make_cert(&conf, "chroot");
    let args = ["--chroot", "--tls-cert", cert.to_str().expect("utf-8"), "--tls-key", key.to_str().expect("utf-8")];
    let server = Server::start(&root, &args);
    assert!(server.wait_log("chrooted to", IO_TIMEOUT), "{}", server.log());
    let log = server.log();
    assert!(log.contains("--chroot: --tls-cert") && log.contains("SIGHUP cannot reload it"), "{log}");
    assert!(log.contains("--chroot: --tls-key"), "{log}");
    // SIGHUP re-reads nothing by name inside the chroot (only the logs reopen).
    server.signal(libc::SIGHUP);
    assert!(server.wait_log("SIGHUP under --chroot", IO_TIMEOUT), "{}", server.log());
    assert!(!server.log().contains("TLS certificate reloaded"), "{}", server.log());
}

/// A free port P whose P-1 is free too (the data source port).
fn port_pair() -> u16 {
    // Below the kernel's ephemeral range (32768 and up by default), so no
    // outgoing connection of a parallel test can take the port between this
    // check and the server's bind.
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    for i in 0..200u64 {
        let p = 20_000 + ((seed.wrapping_mul(6364136223846793005).wrapping_add(i * 7919)) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", p - 1)).is_ok() && TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free pair of ports");
}

/// PORT to a fresh listener, RETR `path`; (data source address, bytes).
fn active_retr(ftp: &mut Ftp, path: &str) -> (SocketAddr, Vec<u8>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind data listener");
    let port = l.local_addr().expect("addr").port();
    let port_cmd = format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff);
    assert_eq!(ftp.cmd(&port_cmd).0, 200, "{port_cmd}");
    ftp.send(&format!("RETR {path}"));
    let mark = ftp.reply();
    assert_eq!(mark.0, 150, "RETR: {mark:?}");
    l.set_nonblocking(false).expect("blocking");
    let (mut data, from) = l.accept().expect("accepting the active data connection");
    data.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).expect("reading data");
    assert_eq!(ftp.reply().0, 226);
    (from, bytes)
}

#[test]
fn active_data_comes_from_the_control_port_minus_one_after_the_drop() {
    if !require_root("active_data_comes_from_the_control_port_minus_one_after_the_drop") {
        return;
    }
    let (uid, gid) = ids_of(NOBODY);
    let root = temp_dir("privs-port20");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("f.bin"), &body).expect("write");
    let p = port_pair();
    let listen = format!("127.0.0.1:{p}");
    let server = Server::start(&root, &["--run-as", NOBODY, "--active-from-port-20", "--listen", &listen]);
    assert!(server.wait_log("keeping only CAP_NET_BIND_SERVICE", IO_TIMEOUT), "{}", server.log());
    for (name, st) in assert_all_threads(server.pid(), uid, gid) {
        // Threads started before the drop (password, disk and listing helpers, logger) keep no capability.
        let helper =
            name.starts_with("auth-") || name.starts_with("disk-") || name.starts_with("list-") || name == "logger";
        let want = if helper { "0000000000000000" } else { "0000000000000400" };
        assert_eq!(field(&st, "CapEff:"), want, "thread {name}:\n{st}");
        assert_eq!(field(&st, "CapPrm:"), want, "thread {name}:\n{st}");
    }
    // Two sessions, several transfers each: the source port is shared
    // (SO_REUSEADDR) and reused while earlier connections sit in TIME_WAIT.
    let mut a = Ftp::connect(server.addr);
    let mut b = Ftp::connect(server.addr);
    a.login_anon();
    b.login_anon();
    for i in 0..4 {
        let ftp = if i % 2 == 0 { &mut a } else { &mut b };
        let (from, bytes) = active_retr(ftp, "/f.bin");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], p - 1)), "data source address");
        assert!(bytes == body, "transfer content ({} bytes)", bytes.len());
    }
}

/// Waits for the next datagram on `sock` (bounded).
fn next_msg(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("no sd_notify message within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; pid is our own child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0, "kill");
}

#[test]
fn sd_notify_reports_ready_reloading_and_stopping() {
    if !require_root("sd_notify_reports_ready_reloading_and_stopping") {
        return;
    }
    let root = temp_dir("privs-notify");
    let dir = temp_dir("privs-notify-sock");
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).expect("binding the notify socket");
    sock.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    // Chrooted and dropped: the socket was connected before either.
    let server = Server::start_env(
        &root,
        &["--chroot", "--run-as", NOBODY],
        &[("NOTIFY_SOCKET", path.to_str().expect("utf-8"))],
    );
    assert!(next_msg(&sock).starts_with("READY=1"), "first message");
    assert!(server.wait_log("running as nobody", IO_TIMEOUT), "the drop is logged: {}", server.log());
    signal(server.pid(), libc::SIGHUP);
    let reloading = next_msg(&sock);
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading:?}");
    assert!(next_msg(&sock).starts_with("READY=1"), "READY=1 after the reload");
    signal(server.pid(), libc::SIGTERM);
    assert_eq!(next_msg(&sock), "STOPPING=1");

    // An abstract socket, written with a leading '@'.
    let name = format!("mirrorftpd-it-notify-{}", std::process::id());
    let addr = <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(&name)
        .expect("abstract name");
    let abs = UnixDatagram::bind_addr(&addr).expect("binding the abstract socket");
    abs.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let _s2 = Server::start_env(&root, &[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    assert!(next_msg(&abs).starts_with("READY=1"), "READY=1 on the abstract socket");

    // A socket that is not there: a warning, not a failure (as sd_notify).
    let missing = dir.join("missing");
    let s3 = Server::start_env(&root, &[], &[("NOTIFY_SOCKET", missing.to_str().expect("utf-8"))]);
    assert!(s3.wait_log("not notifying the service manager", IO_TIMEOUT), "{}", s3.log());
}

/// Starts the server as systemd would: `listener` as fd 3, LISTEN_PID set to
/// the server's own pid (by the shell that execs it), LISTEN_FDS=1.
fn activated(root: &Path, listener: &TcpListener, extra: &[&str]) -> Server {
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"").arg(BIN);
    cmd.arg("--root").arg(root).args(["--workers", "2", "--allow-root"]).args(extra);
    pass_as_fd3(&mut cmd, fd);
    Server::spawn(cmd, root, 1)
}

/// Makes `fd` the child's fd 3, without FD_CLOEXEC.
fn pass_as_fd3(cmd: &mut Command, fd: i32) {
    // SAFETY: only dup2/fcntl (async-signal-safe) run between fork and exec.
    // dup2 onto itself would keep FD_CLOEXEC, so fd 3 is handled with fcntl.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
            if rc == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
        });
    }
}

fn reuseport_listener(reuse: bool) -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_reuse_address(true).expect("SO_REUSEADDR");
    s.set_reuse_port(reuse).expect("SO_REUSEPORT");
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    s.listen(128).expect("listen");
    s.into()
}

fn sessions_work(server: &Server, n: usize) {
    for i in 0..n {
        let mut ftp = Ftp::connect(server.addr);
        ftp.login_anon();
        assert_eq!(ftp.retr_bytes("/f").expect("RETR"), b"activated", "session {i}");
    }
}

#[test]
fn socket_activation_serves_on_the_inherited_socket() {
    if !require_root("socket_activation_serves_on_the_inherited_socket") {
        return;
    }
    let root = temp_dir("privs-activation");
    fs::write(root.join("f"), b"activated").expect("write");
    // ReusePort=yes: worker 1 binds its own socket on the same address.
    let listener = reuseport_listener(true);
    let addr = listener.local_addr().expect("addr");
    let server = activated(&root, &listener, &[]);
    drop(listener); // the server's copy stays open
    assert_eq!(server.addr, addr, "it serves on the inherited socket, not --listen's default");
    assert!(
        server.wait_log("socket activation: fd 3 listens on", std::time::Duration::from_secs(5)),
        "{}",
        server.log()
    );
    assert!(!server.log().contains("share the inherited sockets"), "{}", server.log());
    sessions_work(&server, 6);

    // Without SO_REUSEPORT the other workers share the inherited socket.
    let plain = reuseport_listener(false);
    let server = activated(&root, &plain, &[]);
    drop(plain);
    assert!(
        server.wait_log("workers share the inherited sockets", std::time::Duration::from_secs(5)),
        "{}",
        server.log()
    );
    sessions_work(&server, 6);
}

#[test]
fn socket_activation_refuses_an_fd_that_is_not_a_listener() {
    if !require_root("socket_activation_refuses_an_fd_that_is_not_a_listener") {
        return;
    }
    let root = temp_dir("privs-activation-bad");
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let unlistened: TcpStream = s.into();
    let fd = unlistened.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"").arg(BIN);
    cmd.arg("--root").arg(root.path()).arg("--allow-root");
    pass_as_fd3(&mut cmd, fd);
    let (code, stderr) = run_to_exit(&mut cmd);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("socket activation: fd 3: not a listening TCP socket"), "{stderr}");
}

/// Started as nobody with an ambient CAP_SYS_CHROOT (as systemd's
/// AmbientCapabilities= gives it): --chroot works, and afterwards the
/// threads that serve clients hold no capability at all; above all not
/// CAP_SYS_CHROOT, the classic way out of a chroot.
#[test]
fn non_root_start_sheds_its_capabilities_after_chroot() {
    if !require_root("non_root_start_sheds_its_capabilities_after_chroot") {
        return;
    }
    if !require_tool("setpriv") {
        return;
    }
    let (uid, gid) = ids_of(NOBODY);
    let bin_dir = temp_dir("privs-caps-bin");
    fs::set_permissions(bin_dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = bin_dir.join("mirrorftpd");
    fs::copy(BIN, &bin).expect("copying the binary");
    let root = temp_dir("privs-caps");
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(root.join("f"), b"caps").expect("write");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--inh-caps=+sys_chroot",
        "--ambient-caps=+sys_chroot",
        "--",
    ]);
    cmd.arg(&bin).arg("--root").arg(root.path()).args(["--listen", "127.0.0.1:0", "--workers", "2", "--chroot"]);
    let server = Server::spawn(cmd, &root, 1);
    assert!(server.wait_log(&format!("running as uid {uid}"), IO_TIMEOUT), "{}", server.log());
    let root_link = fs::read_link(format!("/proc/{}/root", server.pid())).expect("readlink root");
    assert_eq!(root_link, root.path().canonicalize().unwrap(), "the process is chrooted");
    let mut ftp = Ftp::connect(server.addr);
    ftp.login_anon();
    assert_eq!(ftp.retr_bytes("/f").expect("RETR"), b"caps");
    for (name, st) in threads(server.pid()) {
        if !name.starts_with("worker-") && name != "mirrorftpd" {
            continue; // helpers started before the chroot keep what they had (not reachable from the network)
        }
        for key in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
            assert_eq!(field(&st, key), "0000000000000000", "thread {name} {key}\n{st}");
        }
    }
}
