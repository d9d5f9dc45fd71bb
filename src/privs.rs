//! Privileges: started as root, mirrorftpd opens what it needs (listeners, the
//! root jail, account homes, TLS files), optionally chroots into --root, then
//! drops to --run-as USER[:GROUP] (or `nobody` when started as root without
//! --run-as or --allow-root) and verifies the drop reached every thread.
//!
//! Order: `prepare` (look-ups, PR_SET_NO_NEW_PRIVS, before any thread starts)
//! → open everything → `apply` (tzset, chroot, setgroups/setgid/setuid, the
//! capability kept for --active-from-port-20, verification) → start workers.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::io::creds::{self, CapSets};

/// The user a root start drops to when neither --run-as nor --allow-root is given.
pub const DEFAULT_USER: &str = "nobody";
/// CAP_NET_BIND_SERVICE, the only capability kept (for --active-from-port-20).
const CAP_NET_BIND_SERVICE: u32 = 10;
/// CAP_SYS_CHROOT, which --chroot needs when not started as root.
const CAP_SYS_CHROOT: u32 = 18;

#[derive(Debug)]
pub struct PrivError(pub String);

impl fmt::Display for PrivError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PrivError {}

fn fail<T>(msg: String) -> Result<T, PrivError> {
    Err(PrivError(msg))
}

/// Whom the process becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The spec as given (or `nobody`), for messages.
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// What `apply` will do to the credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Not root and no --run-as: nothing changes.
    Keep,
    /// Root with --allow-root: stays root.
    StayRoot,
    /// Not root, but already the --run-as user.
    AlreadyTarget(Target),
    /// Root dropping to this user.
    Drop(Target),
}

/// The decision made at start-up, carried to `apply`.
pub struct Privs {
    plan: Plan,
    chroot: Option<PathBuf>,
    keep_bind: bool,
}

/// Splits `USER[:GROUP]`.
pub fn parse_spec(spec: &str) -> Result<(&str, Option<&str>), PrivError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return fail(format!("--run-as {spec:?}: expected USER or USER:GROUP"));
    }
    Ok((user, group))
}

/// Looks up `USER[:GROUP]`; the group defaults to the user's primary group.
pub fn resolve(spec: &str) -> Result<Target, PrivError> {
    let (user, group) = parse_spec(spec)?;
    let (uid, primary) = match creds::user_by_name(user) {
        Ok(Some(ids)) => ids,
        Ok(None) => return fail(format!("--run-as {spec}: no such user {user:?}")),
        Err(e) => return fail(format!("--run-as {spec}: looking up user {user:?}: {e}")),
    };
    let gid = match group {
        None => primary,
        Some(g) => match creds::group_by_name(g) {
            Ok(Some(gid)) => gid,
            Ok(None) => return fail(format!("--run-as {spec}: no such group {g:?}")),
            Err(e) => return fail(format!("--run-as {spec}: looking up group {g:?}: {e}")),
        },
    };
    if uid == 0 || gid == 0 {
        return fail(format!("--run-as {spec}: that is root; use --allow-root to keep running as root"));
    }
    Ok(Target { name: spec.to_string(), uid, gid })
}

/// Decides what to become, before any thread starts (so PR_SET_NO_NEW_PRIVS,
/// set here, is inherited by every thread). Fails on an unknown user, on
/// --run-as of another user when not started as root, and on a root start
/// with no `nobody` to fall back to.
pub fn prepare(cfg: &Config) -> Result<Privs, PrivError> {
    creds::set_no_new_privs().map_err(|e| PrivError(format!("prctl(PR_SET_NO_NEW_PRIVS): {e}")))?;
    let euid = creds::geteuid();
    let plan = match (&cfg.run_as, euid == 0) {
        (Some(spec), true) => Plan::Drop(resolve(spec)?),
        (Some(spec), false) => {
            let t = resolve(spec)?;
            let ids = |r: (u32, u32, u32)| [r.0, r.1, r.2];
            let uids = creds::getresuid().map(ids).unwrap_or_default();
            let gids = creds::getresgid().map(ids).unwrap_or_default();
            if uids != [t.uid; 3] || gids != [t.gid; 3] {
                return fail(format!(
                    "--run-as {spec}: started as {} (uid {euid}, gid {}), not as root: only root can switch \
                     users (start as root, or as that user and group)",
                    creds::describe_uid(euid),
                    creds::getegid()
                ));
            }
            Plan::AlreadyTarget(t)
        }
        (None, true) if cfg.allow_root => Plan::StayRoot,
        (None, true) => match resolve(DEFAULT_USER) {
            Ok(t) => {
                crate::log::warn(format_args!(
                    "started as root without --run-as: dropping to {DEFAULT_USER} once the ports are open \
                     (--run-as USER to choose, --allow-root to stay root)"
                ));
                Plan::Drop(t)
            }
            Err(e) => {
                return fail(format!(
                    "started as root, which mirrorftpd does not keep without --allow-root, and the default \
                     user to drop to is unusable ({e}); give --run-as USER"
                ));
            }
        },
        (None, false) => Plan::Keep,
    };
    if cfg.chroot {
        let may = euid == 0 || creds::capget().is_ok_and(|c| c.effective & (1 << CAP_SYS_CHROOT) != 0);
        if !may {
            return fail(format!("--chroot needs root or CAP_SYS_CHROOT (started as {})", creds::describe_uid(euid)));
        }
        chroot_warnings(cfg, &plan);
    }
    if cfg.active_from_port_20 && euid != 0 {
        let has = creds::capget().is_ok_and(|c| c.effective & (1 << CAP_NET_BIND_SERVICE) != 0);
        if !has {
            crate::log::warn(format_args!(
                "--active-from-port-20 without root or CAP_NET_BIND_SERVICE: active data connections from a \
                 port below 1024 will fail with 425"
            ));
        }
    }
    Ok(Privs { plan, chroot: cfg.chroot.then(|| cfg.root.clone()), keep_bind: cfg.active_from_port_20 })
}

/// Files SIGHUP reads again by name. Under --chroot it does not: after the
/// chroot their paths would resolve inside the served tree, where anyone who
/// can write there could plant accounts, rules or a certificate.
fn reloadable_files(cfg: &Config) -> Vec<(&'static str, &Path)> {
    let named = [
        ("--users", &cfg.users),
        ("--rules", &cfg.rules),
        ("--ban-list", &cfg.ban_list),
        ("--banner-file", &cfg.banner_file),
        ("--tls-cert", &cfg.tls_cert),
        ("--tls-key", &cfg.tls_key),
    ];
    named.into_iter().filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p))).collect()
}

fn chroot_warnings(cfg: &Config, plan: &Plan) {
    if *plan == Plan::StayRoot {
        crate::log::warn(format_args!("--chroot with --allow-root: a chroot is no barrier to a root process"));
    }
    for (flag, path) in reloadable_files(cfg) {
        crate::log::warn(format_args!(
            "--chroot: {flag} {} is read at start only; SIGHUP cannot reload it (restart instead)",
            path.display()
        ));
    }
}

impl Privs {
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Chroots (with --chroot), drops to the target user and verifies the drop
    /// on this thread and, through /proc, on every other thread. Call after
    /// everything is opened and bound, before the worker threads start.
    /// Returns a line for the log.
    pub fn apply(self) -> Result<String, PrivError> {
        // glibc reads the zone file on first use; later it may be out of reach.
        creds::tzset();
        let threads = open_thread_status();
        let mut done = Vec::new();
        if let Some(dir) = &self.chroot {
            creds::chroot(dir).map_err(|e| {
                let hint = if e.raw_os_error() == Some(libc::EPERM) { " (needs root or CAP_SYS_CHROOT)" } else { "" };
                PrivError(format!("--chroot {}: {e}{hint}", dir.display()))
            })?;
            done.push(format!("chrooted to {}", dir.display()));
        }
        match &self.plan {
            Plan::Drop(t) => {
                drop_to(t, self.keep_bind)?;
                verify(t, self.keep_bind, threads.as_deref())?;
                done.push(format!("running as {} (uid {}, gid {})", t.name, t.uid, t.gid));
                if self.keep_bind {
                    done.push("keeping only CAP_NET_BIND_SERVICE".into());
                }
            }
            Plan::AlreadyTarget(t) => {
                shed_capabilities(self.keep_bind)?;
                done.push(format!("running as {} (uid {}, gid {})", t.name, t.uid, t.gid));
            }
            Plan::StayRoot => done.push("running as root (--allow-root)".into()),
            Plan::Keep => {
                shed_capabilities(self.keep_bind)?;
                done.push(format!("running as {}", creds::describe_uid(creds::geteuid())));
            }
        }
        Ok(done.join(", "))
    }
}

/// Started without root but with capabilities (systemd's
/// AmbientCapabilities=, file capabilities): once everything is bound and
/// chrooted, keep at most CAP_NET_BIND_SERVICE (with --active-from-port-20)
/// on this thread, which the workers are started from, and clear the ambient
/// set. CAP_SYS_CHROOT above all must not outlive the chroot.
fn shed_capabilities(keep_bind: bool) -> Result<(), PrivError> {
    let bad = |what: String| PrivError(format!("dropping capabilities: {what}"));
    let now = creds::capget().map_err(|e| bad(format!("capget: {e}")))?;
    let keep = if keep_bind { now.permitted & (1u64 << CAP_NET_BIND_SERVICE) } else { 0 };
    if now.permitted != keep || now.effective != keep || now.inheritable != 0 {
        creds::capset(CapSets { effective: keep, permitted: keep, inheritable: 0 })
            .map_err(|e| bad(format!("capset: {e}")))?;
    }
    // EINVAL: a kernel without ambient capabilities (before 4.3) has none to clear.
    if let Err(e) = creds::clear_ambient_caps() {
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(bad(format!("clearing the ambient set: {e}")));
        }
    }
    let after = creds::capget().map_err(|e| bad(format!("capget: {e}")))?;
    if after != (CapSets { effective: keep, permitted: keep, inheritable: 0 }) {
        return Err(bad(format!("capabilities are {after:?}, expected effective=permitted={keep:#x}")));
    }
    Ok(())
}

/// setgroups, setgid, setuid, in that order (each applied to every thread by
/// glibc); with `keep_bind`, CAP_NET_BIND_SERVICE survives as the only capability.
fn drop_to(t: &Target, keep_bind: bool) -> Result<(), PrivError> {
    let step =
        |what: &str, r: std::io::Result<()>| r.map_err(|e| PrivError(format!("dropping to {}: {what}: {e}", t.name)));
    if keep_bind {
        step("prctl(PR_SET_KEEPCAPS)", creds::set_keepcaps(true))?;
    }
    step("setgroups", creds::setgroups(&[t.gid]))?;
    step("setgid", creds::setgid(t.gid))?;
    step("setuid", creds::setuid(t.uid))?;
    // Also clears the inheritable set, which a change of uid leaves alone.
    let only = if keep_bind { 1u64 << CAP_NET_BIND_SERVICE } else { 0 };
    step("capset", creds::capset(CapSets { effective: only, permitted: only, inheritable: 0 }))?;
    if keep_bind {
        step("prctl(PR_SET_KEEPCAPS, 0)", creds::set_keepcaps(false))?;
    }
    Ok(())
}

/// Checks what the drop did; any difference aborts start-up.
fn verify(t: &Target, keep_bind: bool, threads: Option<&[(String, File)]>) -> Result<(), PrivError> {
    let bad = |what: String| PrivError(format!("privilege drop to {} incomplete: {what}", t.name));
    let uids = creds::getresuid().map_err(|e| bad(format!("getresuid: {e}")))?;
    if uids != (t.uid, t.uid, t.uid) {
        return Err(bad(format!("user ids are {uids:?}")));
    }
    let gids = creds::getresgid().map_err(|e| bad(format!("getresgid: {e}")))?;
    if gids != (t.gid, t.gid, t.gid) {
        return Err(bad(format!("group ids are {gids:?}")));
    }
    let groups = creds::getgroups().map_err(|e| bad(format!("getgroups: {e}")))?;
    if groups != [t.gid] {
        return Err(bad(format!("supplementary groups are {groups:?}")));
    }
    if creds::setuid(0).is_ok() {
        return Err(bad("setuid(0) still succeeds".into()));
    }
    if creds::setgid(0).is_ok() {
        return Err(bad("setgid(0) still succeeds".into()));
    }
    let caps = creds::capget().map_err(|e| bad(format!("capget: {e}")))?;
    let only = if keep_bind { 1u64 << CAP_NET_BIND_SERVICE } else { 0 };
    if caps != (CapSets { effective: only, permitted: only, inheritable: 0 }) {
        return Err(bad(format!("capabilities are {caps:?}, expected effective=permitted={only:#x}")));
    }
    match threads {
        Some(files) => {
            for (tid, f) in files {
                let status = read_status(f).map_err(|e| bad(format!("thread {tid}: reading its status: {e}")))?;
                let want_u = [t.uid; 4];
                let want_g = [t.gid; 4];
                if ids_line(&status, "Uid:") != Some(want_u) || ids_line(&status, "Gid:") != Some(want_g) {
                    return Err(bad(format!("thread {tid} still has other ids:\n{status}")));
                }
            }
        }
        None => crate::log::warn(format_args!("/proc/self/task unreadable: the drop was checked on one thread only")),
    }
    Ok(())
}

/// Every thread's /proc status file, opened now (before a chroot hides /proc)
/// and read after the drop (the kernel renders it at read time).
fn open_thread_status() -> Option<Vec<(String, File)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let tid = entry.ok()?.file_name().to_string_lossy().into_owned();
        let f = File::open(format!("/proc/self/task/{tid}/status")).ok()?;
        out.push((tid, f));
    }
    Some(out)
}

fn read_status(mut f: &File) -> std::io::Result<String> {
    let mut s = String::new();
    f.read_to_string(&mut s)?;
    Ok(s)
}

/// The four ids (real, effective, saved, file system) of a `Uid:`/`Gid:` line.
pub fn ids_line(status: &str, key: &str) -> Option<[u32; 4]> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let v: Vec<u32> = line[key.len()..].split_whitespace().filter_map(|x| x.parse().ok()).collect();
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(parse_spec("ftp").unwrap(), ("ftp", None));
        assert_eq!(parse_spec("ftp:www").unwrap(), ("ftp", Some("www")));
        assert!(parse_spec("").is_err());
        assert!(parse_spec(":g").is_err());
        assert!(parse_spec("u:").is_err());
    }

    #[test]
    fn root_and_unknown_users_are_refused() {
        assert!(resolve("root").unwrap_err().0.contains("--allow-root"));
        assert!(resolve("no-such-user-mirrorftpd").unwrap_err().0.contains("no such user"));
        assert!(resolve("root:no-such-group-mirrorftpd").unwrap_err().0.contains("no such group"));
    }

    #[test]
    fn status_id_lines_parse() {
        let s = "Name:\tx\nUid:\t65534\t65534\t65534\t65534\nGid:\t1\t2\t3\t4\n";
        assert_eq!(ids_line(s, "Uid:"), Some([65534; 4]));
        assert_eq!(ids_line(s, "Gid:"), Some([1, 2, 3, 4]));
        assert_eq!(ids_line(s, "Groups:"), None);
    }
}
