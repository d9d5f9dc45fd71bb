//! Interop: real FTP clients (curl, wget, lftp, Python's ftplib) download
//! the whole generated tree from a freshly started server, and the copy
//! must match the source byte for byte (dot files excluded: the server
//! hides them).
//!
//! A missing client fails the test when `CI` is set and is skipped loudly
//! otherwise (`util::require_tool`). Every client run has a deadline
//! (`util::run`), so a hung server fails the test rather than hanging CI.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{
    BIG_FILE, Digest, Ran, Server, TempDir, file_digest, make_tree, require_tool, run_ok, temp_dir, tree_digest,
};

/// Deadline for one client run that moves the whole tree (100 MiB and more).
const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// A server over a fresh tree, and the digest that tree must come back as.
struct Fixture {
    server: Server,
    want: Digest,
    src: TempDir,
}

impl Fixture {
    fn new(name: &str, extra_args: &[&str]) -> Fixture {
        let src = temp_dir(&format!("{name}-src"));
        make_tree(&src);
        let want = tree_digest(&src);
        let server = Server::start(&src, extra_args);
        Fixture { server, want, src }
    }

    /// Every file a client should fetch, relative to the root.
    fn files(&self) -> Vec<&str> {
        self.want.keys().map(String::as_str).collect()
    }
}

/// A client command with a UTF-8 locale, so no client transliterates names.
fn tool(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C.UTF-8");
    cmd
}

/// Panics with a per-file account unless `dst` digests to `want`.
fn assert_tree(want: &Digest, dst: &Path, what: &str) {
    let got = tree_digest(dst);
    if &got == want {
        return;
    }
    let mut diff = String::new();
    for (path, w) in want {
        match got.get(path) {
            None => diff.push_str(&format!("  missing: {path}\n")),
            Some(g) if g.0 != w.0 => diff.push_str(&format!("  differs: {path}: {} bytes, want {}\n", g.0, w.0)),
            Some(g) if g.1 != w.1 => diff.push_str(&format!("  differs: {path}: same length, other bytes\n")),
            Some(_) => {}
        }
    }
    for path in got.keys().filter(|p| !want.contains_key(*p)) {
        diff.push_str(&format!("  extra:   {path}\n"));
    }
    panic!("{what}: the downloaded tree differs from the source:\n{diff}");
}

/// One curl run fetching `files` from `addr` into `dst`, reusing one
/// control connection for all of them.
fn curl(server: &Server, addr: SocketAddr, files: &[&str], dst: &Path, extra: &[&str]) -> Ran {
    let mut cmd = tool("curl");
    // -q (ignore ~/.curlrc) must come first.
    cmd.args(["-q", "--silent", "--show-error", "--globoff", "--create-dirs"]);
    cmd.args(["--connect-timeout", "10", "--speed-limit", "1", "--speed-time", "30"]);
    cmd.args(extra);
    for rel in files {
        cmd.arg("-o").arg(dst.join(rel)).arg(server.url_at(addr, rel));
    }
    run_ok(&mut cmd, TOOL_TIMEOUT)
}

#[test]
fn curl_epsv_whole_tree_and_nlst() {
    if !require_tool("curl") {
        return;
    }
    let fx = Fixture::new("curl-epsv", &[]);
    let dst = temp_dir("curl-epsv-dst");
    curl(&fx.server, fx.server.addr, &fx.files(), &dst, &[]);
    assert_tree(&fx.want, &dst, "curl (EPSV, --ftp-method multicwd)");

    // NLST (curl --list-only) of several directories, the empty one too.
    for dir in ["", "dir with space/", "ünïcødé/", "a/b/", "empty/"] {
        let mut cmd = tool("curl");
        cmd.args(["-q", "--silent", "--show-error", "--globoff", "--list-only"]);
        cmd.arg(fx.server.url(dir));
        let out = run_ok(&mut cmd, TOOL_TIMEOUT).stdout;
        let mut got: Vec<&str> =
            out.lines().map(str::trim_end).filter(|n| !n.is_empty() && !n.starts_with('.')).collect();
        got.sort_unstable();
        let mut want: Vec<String> = fs::read_dir(fx.src.join(dir))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want, "curl --list-only (NLST) of /{dir}");
    }
}

#[test]
fn curl_pasv_nocwd_whole_tree() {
    if !require_tool("curl") {
        return;
    }
    let fx = Fixture::new("curl-pasv", &[]);
    let dst = temp_dir("curl-pasv-dst");
    let extra = ["--disable-epsv", "--ftp-method", "nocwd"];
    curl(&fx.server, fx.server.addr, &fx.files(), &dst, &extra);
    assert_tree(&fx.want, &dst, "curl (PASV, --ftp-method nocwd)");
}

#[test]
fn curl_active_eprt_whole_tree_and_port() {
    if !require_tool("curl") {
        return;
    }
    let fx = Fixture::new("curl-active", &[]);
    let dst = temp_dir("curl-eprt-dst");
    let extra = ["--ftp-port", "127.0.0.1", "--ftp-method", "singlecwd"];
    curl(&fx.server, fx.server.addr, &fx.files(), &dst, &extra);
    assert_tree(&fx.want, &dst, "curl (active EPRT, --ftp-method singlecwd)");

    // Plain PORT on a few files.
    let few = ["one.bin", "dir with space/mib-plus-3.bin", "ünïcødé/Ω file.txt", "empty.txt"];
    let dst = temp_dir("curl-port-dst");
    curl(&fx.server, fx.server.addr, &few, &dst, &["--ftp-port", "127.0.0.1", "--disable-eprt"]);
    for rel in few {
        assert_eq!(file_digest(&dst.join(rel)), fx.want[rel], "curl (active PORT): {rel}");
    }
}

/// Writes the first `len` bytes of `src` to `dst`.
fn copy_prefix(src: &Path, dst: &Path, len: u64) {
    let mut head = Vec::new();
    File::open(src).expect("open").take(len).read_to_end(&mut head).expect("read");
    fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    File::create(dst).expect("create").write_all(&head).expect("write");
}

#[test]
fn curl_resume_with_rest() {
    if !require_tool("curl") {
        return;
    }
    let fx = Fixture::new("curl-resume", &[]);
    let dst = temp_dir("curl-resume-dst");
    // Half of the big file, and an odd, unaligned offset into a smaller one.
    let mib3 = "dir with space/mib-plus-3.bin";
    for (rel, have) in [(BIG_FILE, fx.want[BIG_FILE].0 / 2), (mib3, 12_345)] {
        copy_prefix(&fx.src.join(rel), &dst.join(rel), have);
        curl(&fx.server, fx.server.addr, &[rel], &dst, &["--continue-at", "-"]);
        assert_eq!(file_digest(&dst.join(rel)), fx.want[rel], "curl -C - (REST {have}) of {rel}");
    }
}

#[test]
fn wget_recursive_whole_tree() {
    if !require_tool("wget") {
        return;
    }
    let fx = Fixture::new("wget", &[]);
    let dst = temp_dir("wget-dst");
    let cut = fx.server.prefix.matches('/').count();
    let mut cmd = tool("wget");
    cmd.args(["--no-config", "--no-verbose", "--recursive", "--level=inf", "--no-host-directories"]);
    cmd.arg(format!("--cut-dirs={cut}"));
    // The default ("unix") escapes bytes 128-159, which occur inside UTF-8.
    cmd.args(["--restrict-file-names=nocontrol", "--timeout=30", "--tries=1"]);
    cmd.arg("--directory-prefix").arg(dst.path()).arg(fx.server.url(""));
    run_ok(&mut cmd, TOOL_TIMEOUT);
    assert_tree(&fx.want, &dst, "wget -r (PASV, LIST)");
}

/// `lftp mirror` of the whole tree with `settings`; returns lftp's debug log.
fn lftp_mirror(fx: &Fixture, dst: &Path, settings: &str) -> String {
    let debug = temp_dir("lftp-debug");
    let debug_log = debug.join("debug.log");
    let script = format!(
        "set cmd:fail-exit yes; set ftp:ssl-allow no; set net:max-retries 2; \
         set net:timeout 20; set net:reconnect-interval-base 1; set file:charset UTF-8; \
         {settings}; debug -o \"{log}\" 5; \
         open -u anonymous,it@example.com -p {port} {host}; \
         mirror --no-perms \"{remote}/\" \"{local}\"",
        log = debug_log.display(),
        port = fx.server.addr.port(),
        host = fx.server.addr.ip(),
        remote = fx.server.prefix,
        local = dst.display(),
    );
    let mut cmd = tool("lftp");
    cmd.arg("--norc").arg("-c").arg(&script);
    run_ok(&mut cmd, TOOL_TIMEOUT);
    fs::read_to_string(&debug_log).unwrap_or_default()
}

#[test]
fn lftp_mirror_mlsd_epsv() {
    if !require_tool("lftp") {
        return;
    }
    let fx = Fixture::new("lftp-mlsd", &[]);
    let dst = temp_dir("lftp-mlsd-dst");
    let log = lftp_mirror(&fx, &dst, "set ftp:use-mlsd on; set ftp:prefer-epsv yes");
    assert_tree(&fx.want, &dst, "lftp mirror (MLSD, EPSV)");
    assert!(log.contains("---> MLSD"), "lftp did not use MLSD; its debug log:\n{log}");
}

#[test]
fn lftp_mirror_list_pasv() {
    if !require_tool("lftp") {
        return;
    }
    let fx = Fixture::new("lftp-list", &[]);
    let dst = temp_dir("lftp-list-dst");
    let log = lftp_mirror(&fx, &dst, "set ftp:use-mlsd off; set ftp:prefer-epsv no");
    assert_tree(&fx.want, &dst, "lftp mirror (LIST, PASV)");
    assert!(log.contains("---> LIST"), "lftp did not use LIST; its debug log:\n{log}");
    assert!(!log.contains("---> MLSD"), "lftp used MLSD despite ftp:use-mlsd off");
}

/// Python ftplib driver: `MODE HOST PORT ROOT DST [FILE OFFSET]`.
/// mlsd: walk with MLSD, RETR each file, check SIZE and MDTM against the
///       facts. nlst: NLST + CWD (a failing CWD means a file) + PWD, RETR
///       relative names. one: RETR FILE to DST/whole and RETR FILE with
///       REST OFFSET to DST/rest.
const FTPLIB: &str = r#"
import ftplib, os, socket, sys

mode, host, port, root, dst = sys.argv[1:6]
ftp = ftplib.FTP(timeout=30)
ftp.connect(host, int(port))
ftp.login()

def fail(msg):
    sys.exit("ftplib %s: %s" % (mode, msg))

def fetch(remote, local, rest=None):
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with open(local, "wb") as f:
        ftp.retrbinary("RETR " + remote, f.write, rest=rest)
    return os.path.getsize(local)

def walk_mlsd(remote, local):
    os.makedirs(local, exist_ok=True)
    for name, facts in ftp.mlsd(remote):
        kind = facts.get("type", "").lower()
        if kind in ("cdir", "pdir") or name.startswith("."):
            continue
        path = remote.rstrip("/") + "/" + name
        if kind == "dir":
            walk_mlsd(path, os.path.join(local, name))
        elif kind == "file":
            got = fetch(path, os.path.join(local, name))
            if "size" in facts and int(facts["size"]) != got:
                fail("%s: size fact %s, RETR gave %d bytes" % (path, facts["size"], got))
            if ftp.size(path) != got:
                fail("%s: SIZE %s, RETR gave %d bytes" % (path, ftp.size(path), got))
            mdtm = ftp.voidcmd("MDTM " + path)[4:].strip()
            if "modify" in facts and facts["modify"][:14] != mdtm[:14]:
                fail("%s: modify fact %s, MDTM %s" % (path, facts["modify"], mdtm))
        else:
            fail("%s: unexpected type fact %r" % (path, kind))

def walk_nlst(local):
    os.makedirs(local, exist_ok=True)
    here = ftp.pwd()
    for entry in ftp.nlst():
        name = entry.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        try:
            ftp.cwd(name)
        except ftplib.error_perm:
            fetch(name, os.path.join(local, name))
            continue
        want = here.rstrip("/") + "/" + name
        if ftp.pwd() != want:
            fail("PWD after CWD %r is %r, want %r" % (name, ftp.pwd(), want))
        walk_nlst(os.path.join(local, name))
        ftp.cwd("..")
        if ftp.pwd() != here:
            fail("PWD after CWD .. is %r, want %r" % (ftp.pwd(), here))

if mode == "mlsd":
    walk_mlsd(root, dst)
elif mode == "nlst":
    ftp.cwd(root)
    walk_nlst(dst)
elif mode == "one":
    family = ftp.sock.family
    if ":" in host and family != socket.AF_INET6:
        fail("not connected over IPv6")
    path, rest = root.rstrip("/") + "/" + sys.argv[6], int(sys.argv[7])
    fetch(path, os.path.join(dst, "whole"))
    fetch(path, os.path.join(dst, "rest"), rest=rest)
else:
    fail("unknown mode")
ftp.quit()
"#;

fn ftplib(addr: SocketAddr, mode: &str, root: &str, dst: &Path, more: &[&str]) -> Ran {
    let mut cmd = tool("python3");
    cmd.arg("-c").arg(FTPLIB).args([mode, &addr.ip().to_string(), &addr.port().to_string(), root]);
    cmd.arg(dst).args(more);
    run_ok(&mut cmd, TOOL_TIMEOUT)
}

#[test]
fn ftplib_mlsd_walk() {
    if !require_tool("python3") {
        return;
    }
    let fx = Fixture::new("ftplib-mlsd", &[]);
    let dst = temp_dir("ftplib-mlsd-dst");
    ftplib(fx.server.addr, "mlsd", &fx.server.remote_path(""), &dst, &[]);
    assert_tree(&fx.want, &dst, "ftplib (MLSD walk, SIZE, MDTM)");
}

#[test]
fn ftplib_nlst_cwd_walk() {
    if !require_tool("python3") {
        return;
    }
    let fx = Fixture::new("ftplib-nlst", &[]);
    let dst = temp_dir("ftplib-nlst-dst");
    ftplib(fx.server.addr, "nlst", &fx.server.remote_path(""), &dst, &[]);
    assert_tree(&fx.want, &dst, "ftplib (NLST + CWD walk)");
}

#[test]
fn ipv6_dual_stack_curl_and_ftplib() {
    if !require_tool("curl") || !require_tool("python3") {
        return;
    }
    let fx = Fixture::new("ipv6", &["--listen", "127.0.0.1:0", "--listen", "[::1]:0"]);
    let (v4, v6) = (fx.server.addr_v(false), fx.server.addr_v(true));

    let dst = temp_dir("ipv6-curl-dst");
    curl(&fx.server, v6, &fx.files(), &dst, &[]);
    assert_tree(&fx.want, &dst, "curl over IPv6 (EPSV)");

    // Active mode over IPv6 (EPRT |2|::1|port|), and the IPv4 listener too.
    let few = ["dir with space/mib-plus-3.bin", "日本語.txt"];
    let dst = temp_dir("ipv6-eprt-dst");
    curl(&fx.server, v6, &few, &dst, &["--ftp-port", "::1"]);
    let dst4 = temp_dir("ipv6-v4-dst");
    curl(&fx.server, v4, &few, &dst4, &[]);
    for rel in few {
        assert_eq!(file_digest(&dst.join(rel)), fx.want[rel], "curl over IPv6 (EPRT): {rel}");
        assert_eq!(file_digest(&dst4.join(rel)), fx.want[rel], "curl over IPv4 beside IPv6: {rel}");
    }

    // ftplib over IPv6 (it always uses EPSV there), with a REST.
    let rel = "dir with space/mib-plus-3.bin";
    let offset = 4097;
    let dst = temp_dir("ipv6-ftplib-dst");
    ftplib(v6, "one", &fx.server.remote_path(""), &dst, &[rel, &offset.to_string()]);
    assert_eq!(file_digest(&dst.join("whole")), fx.want[rel], "ftplib over IPv6: {rel}");
    let src = fs::read(fx.src.join(rel)).expect("read source");
    let rest = fs::read(dst.join("rest")).expect("read rest");
    assert!(rest == src[offset..], "ftplib over IPv6: REST {offset} + RETR {rel} gave wrong bytes");
}
