//! The SSH keys of the SFTP service: the host key (loaded or created at
//! start, never replaced) and every user's authorized public keys from
//! `--authorized-keys DIR` (`USER.keys`), read at start and on SIGHUP, so a
//! public key login costs a hash-map lookup on the reactor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::authkeys::{self, AuthorizedKeys};
use super::hostkey::HostKey;

/// What the workers share for SSH: the host key and the authorized keys.
pub struct SftpKeys {
    pub host: Arc<HostKey>,
    dir: Option<PathBuf>,
    users: RwLock<Arc<HashMap<String, AuthorizedKeys>>>,
}

impl SftpKeys {
    /// Loads (or creates) the host key and reads the authorized keys.
    pub fn load(host_key: &Path, dir: Option<&Path>) -> Result<SftpKeys, String> {
        let host = HostKey::load_or_create(host_key).map_err(|e| format!("--sftp-host-key: {e}"))?;
        let users = match dir {
            Some(d) => read_dir(d)?,
            None => HashMap::new(),
        };
        Ok(SftpKeys { host: Arc::new(host), dir: dir.map(Path::to_path_buf), users: RwLock::new(Arc::new(users)) })
    }

    /// --check-config: the host key loaded (never created: a missing one is
    /// reported as "would be created", after checking that its directory
    /// exists) and the authorized keys counted. Returns the summary.
    pub fn check(host_key: &Path, dir: Option<&Path>) -> Result<String, String> {
        let host = match std::fs::symlink_metadata(host_key) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = host_key.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                match std::fs::metadata(parent) {
                    Ok(m) if m.is_dir() => format!("{} would be created", host_key.display()),
                    Ok(_) => return Err(format!("--sftp-host-key: {} is not a directory", parent.display())),
                    Err(e) => return Err(format!("--sftp-host-key: {}: {e}", parent.display())),
                }
            }
            _ => HostKey::load(host_key).map_err(|e| format!("--sftp-host-key: {e}"))?.fingerprint().to_string(),
        };
        let users = match dir {
            Some(d) => read_dir(d)?,
            None => HashMap::new(),
        };
        let n: usize = users.values().map(AuthorizedKeys::len).sum();
        Ok(format!("host key {host}, {n} authorized keys"))
    }

    /// SIGHUP: reads the authorized keys again; on an error the old ones stay.
    pub fn reload(&self) -> Result<String, String> {
        let Some(dir) = &self.dir else { return Ok("no --authorized-keys".into()) };
        let users = read_dir(dir)?;
        let n: usize = users.values().map(AuthorizedKeys::len).sum();
        let msg = format!("--authorized-keys {}: {n} keys for {} users", dir.display(), users.len());
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
        Ok(msg)
    }

    /// Whether `user` may log in with the key `blob` (SSH wire form).
    pub fn allows(&self, user: &str, blob: &[u8]) -> bool {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner()).clone();
        users.get(user).is_some_and(|k| k.contains(blob))
    }

    /// Keys known, over all users.
    pub fn count(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).values().map(AuthorizedKeys::len).sum()
    }
}

/// Every `USER.keys` in `dir`; skipped lines are logged.
fn read_dir(dir: &Path) -> Result<HashMap<String, AuthorizedKeys>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("--authorized-keys {}: {e}", dir.display()))?;
    let mut users = HashMap::new();
    for entry in entries.take(crate::limits::MAX_AUTHORIZED_KEY_FILES) {
        let entry = entry.map_err(|e| format!("--authorized-keys {}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(user) = name.to_str().and_then(|n| n.strip_suffix(".keys")) else { continue };
        let (keys, skipped) = authkeys::load(dir, user).map_err(|e| format!("--authorized-keys: {e}"))?;
        for s in skipped {
            crate::log::warn(format_args!("{}/{user}.keys line {}: skipped: {}", dir.display(), s.line, s.why));
        }
        if !keys.is_empty() {
            users.insert(user.to_string(), keys);
        }
    }
    Ok(users)
}
