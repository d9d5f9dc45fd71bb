//! What a session may do once logged in (identity, base permissions, jail),
//! and the `Auth` bundle loaded at start-up from --users, --rules, --deny.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use super::perms::Perms;
use super::rules::{Deny, Rules};
use super::users::Users;
use crate::fs::jail::Jail;

/// Accounts and rules, shared read-only by every worker and helper thread.
#[derive(Debug, Default)]
pub struct Auth {
    pub users: Users,
    pub rules: Rules,
    pub deny: Arc<Deny>,
    /// Every account's home, opened at start-up (before a chroot or the
    /// privilege drop could put its path out of reach); logins duplicate it.
    pub homes: HashMap<String, Jail>,
}

/// The current accounts and rules, swapped whole on SIGHUP: new commands
/// and logins see the new ones, nothing running is dropped.
pub struct AuthCell(std::sync::RwLock<Arc<Auth>>);

impl AuthCell {
    pub fn new(auth: Auth) -> AuthCell {
        AuthCell(std::sync::RwLock::new(Arc::new(auth)))
    }

    pub fn get(&self) -> Arc<Auth> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, auth: Auth) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(auth);
    }
}

#[derive(Debug)]
pub struct AuthError(pub String);

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuthError {}

/// The settings accounts and rules are loaded from (the config's
/// `auth_sources()`).
pub struct Sources<'a> {
    /// --users.
    pub users: Option<&'a Path>,
    /// --rules.
    pub rules: Option<&'a Path>,
    /// --deny patterns.
    pub deny: &'a [String],
    pub atomic_uploads: bool,
    pub deny_dotfiles: bool,
    pub anonymous: bool,
}

impl Auth {
    /// Loads the files named by the config; a malformed line stops start-up
    /// with its line number, and every account's home must open as a jail.
    pub fn load(cfg: &Sources) -> Result<Auth, AuthError> {
        let users = match cfg.users {
            Some(p) => Users::load(p).map_err(|e| AuthError(format!("--users: {e}")))?,
            None => Users::default(),
        };
        let rules = match cfg.rules {
            Some(p) => Rules::load(p).map_err(|e| AuthError(format!("--rules: {e}")))?,
            None => Rules::default(),
        };
        let mut patterns = cfg.deny.to_vec();
        if cfg.atomic_uploads {
            // Uploads in progress are the server's own, even under --serve-dotfiles.
            patterns.push(crate::fs::write::TEMP_PATTERN.to_string());
        }
        let deny = Deny::new(&patterns).map_err(|e| AuthError(format!("--deny: {e}")))?;
        let mut homes = HashMap::with_capacity(users.len());
        for a in users.iter() {
            let jail = Jail::open(&a.home, cfg.deny_dotfiles)
                .map_err(|e| AuthError(format!("--users: home of {}: {}: {e}", a.name, a.home.display())))?;
            homes.insert(a.name.clone(), jail);
        }
        if !cfg.anonymous && users.is_empty() {
            return Err(AuthError("--no-anonymous without --users leaves nobody able to log in".into()));
        }
        Ok(Auth { users, rules, deny: Arc::new(deny), homes })
    }
}

/// The logged-in identity of a session.
#[derive(Debug)]
pub struct Access {
    pub user: String,
    pub anonymous: bool,
    /// Permissions before per-folder rules.
    pub base: Perms,
    /// The account's own jail (its home); `None`: the server root.
    pub jail: Option<Jail>,
}

impl Access {
    pub fn anonymous() -> Access {
        Access { user: "anonymous".into(), anonymous: true, base: Perms::READONLY, jail: None }
    }

    /// Permissions at a virtual path, after the rules; anonymous sessions
    /// never get a write permission whatever the rules say.
    pub fn at(&self, auth: &Auth, path: &[u8]) -> Perms {
        let user = if self.anonymous { None } else { Some(self.user.as_str()) };
        auth.rules.effective(user, self.base, path)
    }

    /// The check every protocol makes before using a client's path: a `--deny` name
    /// anywhere in it hides it, then the permissions at it must meet `need`. Returns them.
    pub fn check(&self, auth: &Auth, path: &[u8], need: Need) -> Result<Perms, Refusal> {
        if auth.deny.hides_path(path) {
            return Err(Refusal::Hidden);
        }
        let have = self.at(auth, path);
        if need.met_by(have) { Ok(have) } else { Err(Refusal::Denied) }
    }
}

/// What a command needs at its path.
#[derive(Copy, Clone, Debug)]
pub enum Need {
    /// Any permission at all (CWD).
    Any,
    /// Every bit of these.
    All(Perms),
    /// At least one bit of these (SIZE: list or read; APPE: append or write).
    OneOf(Perms),
}

impl Need {
    pub fn met_by(self, have: Perms) -> bool {
        match self {
            Need::Any => have != Perms::NONE,
            Need::All(n) => have.contains(n),
            Need::OneOf(n) => have.intersects(n),
        }
    }
}

/// Why [`Access::check`] refused a path.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A `--deny` pattern matches a component: answered as if it did not exist.
    Hidden,
    /// The permissions there do not meet the need.
    Denied,
}
