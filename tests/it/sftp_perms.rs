//! The permission matrix of the FTP tests (`accounts.rs`: the same users,
//! rules, folders and expectations) repeated over SFTP with paramiko: list,
//! get, put, append, rm, mkdir, rmdir, rename, setstat times and chmod, each
//! allowed or refused with PERMISSION_DENIED exactly as over FTP, and its
//! effect on disk there or not.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use crate::accounts::{
    ALICE, BOB_HASH, CAROL_HASH, EXPECTED, RULES, SESSIONS, acct_fx, argon2id, fill_matrix, has, local, mode_of,
    mtime_of, vpath,
};
use crate::sftp::sftp_addr;
use crate::sftp_interop::{paramiko, python};
use crate::util::temp_dir;

/// Each session logs in and runs every operation in every folder; one line
/// per operation: `who|folder|op|ok` or `...|denied` or `...|error: why`.
const MATRIX_SCRIPT: &str = r#"
import errno
port = int(sys.argv[1])
folders = sys.argv[2].split(',')
for cred in sys.argv[3:]:
    who, pw = cred.split(':', 1)
    t = login(port, who, pw)
    s = sftp(t)
    def path(folder, name):
        return '/' + name if folder == '/' else folder + '/' + name
    for folder in folders:
        def run(op, fn):
            try:
                r = fn()
                print('%s|%s|%s|ok%s' % (who, folder, op, '' if r is None else ':' + r))
            except PermissionError:
                print('%s|%s|%s|denied' % (who, folder, op))
            except Exception as e:
                print('%s|%s|%s|error: %r' % (who, folder, op, e))
        def get():
            with s.open(path(folder, 'f.txt'), 'r') as f:
                return f.read().decode()
        def put():
            with s.open(path(folder, 'new-%s.txt' % who), 'w') as f:
                f.write(b'stored')
        def append():
            with s.open(path(folder, 'app-%s.txt' % who), 'a') as f:
                f.write(b'+more')
        run('list', lambda: ','.join(sorted(n for n in s.listdir(folder) if n == 'f.txt')))
        run('get', get)
        run('put', put)
        run('append', append)
        run('rm', lambda: s.remove(path(folder, 'del-%s.txt' % who)))
        run('mkdir', lambda: s.mkdir(path(folder, 'mkd-%s' % who)))
        run('rmdir', lambda: s.rmdir(path(folder, 'rmd-%s' % who)))
        run('rename', lambda: s.rename(path(folder, 'ren-%s.txt' % who), path(folder, 'renamed-%s.txt' % who)))
        run('settime', lambda: s.utime(path(folder, 'mt-%s.txt' % who), (1577934245, 1577934245)))
        run('chmod', lambda: s.chmod(path(folder, 'ch-%s.txt' % who), 0o600))
    s.close()
    t.close()
print('done=1')
"#;

/// The FTP matrix's users, rules and folders over SFTP: every operation of
/// every session in every folder answers and acts as the rules say.
#[test]
fn sftp_permission_matrix_users_folders_operations() {
    let Some(py) = paramiko() else { return };
    let alice = argon2id(ALICE);
    let users = [
        ("alice", alice.as_str(), "", "all"),
        ("bob", BOB_HASH, "", "readonly"),
        ("carol", CAROL_HASH, "", "list,read,write,append"),
    ];
    let keys = temp_dir("sftp-matrix-keys");
    let hk = keys.join("host_key").display().to_string();
    let args = ["--sftp-listen", "127.0.0.1:0", "--sftp-host-key", &hk, "--sftp-anonymous"];
    let f = acct_fx("sftp-matrix", &users, Some(RULES), &args, fill_matrix);
    let addr = sftp_addr(&f.server);
    let folders: Vec<&str> = EXPECTED.iter().map(|(folder, _)| *folder).collect();
    let mut argv = vec![addr.port().to_string(), folders.join(",")];
    for who in SESSIONS {
        let pw = match who {
            "alice" => ALICE,
            "bob" => "bob-pw",
            "carol" => "carol-pw",
            _ => "guest@example.org",
        };
        argv.push(format!("{who}:{pw}"));
    }
    let ran = python(&py, &keys, MATRIX_SCRIPT, &argv, Duration::from_secs(120));
    assert!(ran.status.success() && ran.stdout.contains("done=1"), "script failed:\n{}\n{}", ran.stdout, ran.stderr);
    let mut outcome = BTreeMap::new();
    for line in ran.stdout.lines().filter(|l| l.contains('|')) {
        let mut it = line.splitn(4, '|');
        let (who, folder, op, what) = (it.next(), it.next(), it.next(), it.next());
        if let (Some(who), Some(folder), Some(op), Some(what)) = (who, folder, op, what) {
            outcome.insert((who.to_string(), folder.to_string(), op.to_string()), what.to_string());
        }
    }
    let mut bad = Vec::new();
    for (col, who) in SESSIONS.iter().enumerate() {
        for (folder, perms) in EXPECTED {
            check_folder(&f.root, who, folder, perms[col], &outcome, &mut bad);
        }
    }
    assert!(bad.is_empty(), "{} mismatches:\n{}", bad.len(), bad.join("\n"));
}

/// Compares the script's outcomes for `who` in `folder` (permissions
/// `perms`) with the rules, and the disk with what each outcome implies.
fn check_folder(
    root: &std::path::Path,
    who: &str,
    folder: &str,
    perms: &str,
    outcome: &BTreeMap<(String, String, String), String>,
    bad: &mut Vec<String>,
) {
    let file = |name: &str| local(root, folder, name);
    let mut check = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("{who} in {folder} [{perms}]: {what}"));
        }
    };
    let mut op = |op: &str, allowed: bool, ok_value: &str| {
        let got = outcome.get(&(who.to_string(), folder.to_string(), op.to_string())).cloned();
        let want = if allowed { format!("ok{ok_value}") } else { "denied".to_string() };
        check(
            got.as_deref() == Some(want.as_str()),
            format!("{op} ({}) -> {got:?}, expected {want}", vpath(folder, "")),
        );
    };
    op("list", has(perms, "list"), ":f.txt");
    op("get", has(perms, "read"), &format!(":content of {folder}/f.txt"));
    op("put", has(perms, "write"), "");
    op("append", has(perms, "append") || has(perms, "write"), "");
    op("rm", has(perms, "delete"), "");
    op("mkdir", has(perms, "mkdir"), "");
    op("rmdir", has(perms, "rmdir"), "");
    op("rename", has(perms, "rename"), "");
    op("settime", has(perms, "settime"), "");
    op("chmod", has(perms, "write"), "");

    // The disk, as in the FTP matrix.
    let new = fs::read(file(&format!("new-{who}.txt"))).ok();
    check(new == has(perms, "write").then(|| b"stored".to_vec()), format!("after put: on disk {new:?}"));
    let app = fs::read(file(&format!("app-{who}.txt"))).unwrap_or_default();
    let want: &[u8] = if has(perms, "append") || has(perms, "write") { b"app+more" } else { b"app" };
    check(app == want, format!("after append: on disk {:?}", String::from_utf8_lossy(&app)));
    let gone = !file(&format!("del-{who}.txt")).exists();
    check(gone == has(perms, "delete"), format!("after rm: gone = {gone}"));
    let made = file(&format!("mkd-{who}")).is_dir();
    check(made == has(perms, "mkdir"), format!("after mkdir: is_dir = {made}"));
    let gone = !file(&format!("rmd-{who}")).exists();
    check(gone == has(perms, "rmdir"), format!("after rmdir: gone = {gone}"));
    let (from, to) = (file(&format!("ren-{who}.txt")), file(&format!("renamed-{who}.txt")));
    let moved = !from.exists() && to.exists();
    check(moved == has(perms, "rename") && from.exists() != to.exists(), format!("after rename: moved = {moved}"));
    let mt = mtime_of(&file(&format!("mt-{who}.txt")));
    let want = if has(perms, "settime") { 1_577_934_245 } else { 1_000_000_000 };
    check(mt == want, format!("after settime: mtime {mt}, expected {want}"));
    let mode = mode_of(&file(&format!("ch-{who}.txt")));
    let want = if has(perms, "write") { 0o600 } else { 0o644 };
    check(mode == want, format!("after chmod: mode {mode:o}, expected {want:o}"));
}
