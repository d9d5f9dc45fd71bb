//! Helper threads for work that must not run on a reactor thread: password
//! verification (tens of milliseconds of CPU by design) and opening the
//! account's home. Results go back through a channel plus the worker's
//! `mio::Waker`; the session waits in `CtrlState::Verifying` meanwhile.
//!
//! Each thread owns one Argon2 work area (`hash::WorkArea`) for its whole
//! life, so the memory of password checks is at most `--auth-threads` areas,
//! however many logins arrive or fail.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::auth::access::{Access, Auth, AuthCell};
use crate::auth::hash::{self, WorkArea};
use crate::fs::jail::Jail;
use crate::limits;
use crate::services::Slot;

/// One login to check.
pub struct LoginJob {
    pub slot: Slot,
    pub user: String,
    pub password: Vec<u8>,
    pub done: Sender<LoginVerdict>,
    pub waker: Arc<Waker>,
}

/// The answer: `Some` on success.
pub struct LoginVerdict {
    pub slot: Slot,
    pub access: Option<Access>,
}

pub struct Pool {
    tx: SyncSender<LoginJob>,
}

impl Pool {
    pub fn start(threads: usize, auth: Arc<AuthCell>, deny_dotfiles: bool) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::sync_channel::<LoginJob>(limits::AUTH_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let auth = auth.clone();
            std::thread::Builder::new().name(format!("auth-{i}")).spawn(move || serve(&rx, &auth, deny_dotfiles))?;
        }
        Ok(Pool { tx })
    }

    /// Queues a login; `Err` gives it back when the queue is full.
    pub fn submit(&self, job: LoginJob) -> Result<(), LoginJob> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
        })
    }
}

fn serve(rx: &Mutex<Receiver<LoginJob>>, auth: &AuthCell, deny_dotfiles: bool) {
    let mut area = WorkArea::new();
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let LoginJob { slot, user, mut password, done, waker } = job;
        let access = check(&mut area, &auth.get(), &user, &password, deny_dotfiles);
        password.iter_mut().for_each(|b| *b = 0);
        if done.send(LoginVerdict { slot, access }).is_ok() {
            let _ = waker.wake();
        }
    }
}

/// Verifies a password in this thread's work area. An unknown user or a
/// disabled account (`!`) costs the same time as a known one (a dummy
/// verification), so timing does not tell them apart.
fn check(area: &mut WorkArea, auth: &Auth, user: &str, password: &[u8], deny_dotfiles: bool) -> Option<Access> {
    let Some(acct) = auth.users.get(user).filter(|a| !a.disabled()) else {
        hash::verify_dummy(area, password);
        return None;
    };
    if !hash::verify(area, password, &acct.hash) {
        return None;
    }
    account_access(auth, user, deny_dotfiles)
}

/// What an account may do once its identity is proven (a password here, a
/// public key over SFTP): its permissions and its home's jail. None for an
/// unknown or disabled account, or a home that cannot be opened.
pub fn account_access(auth: &Auth, user: &str, deny_dotfiles: bool) -> Option<Access> {
    let acct = auth.users.get(user).filter(|a| !a.disabled())?;
    // The home was opened at start-up: a path would not resolve after --chroot.
    let home = auth.homes.get(&acct.name).map(Jail::try_clone);
    match home.unwrap_or_else(|| Jail::open(&acct.home, deny_dotfiles)) {
        Ok(jail) => Some(Access { user: acct.name.clone(), anonymous: false, base: acct.perms, jail: Some(jail) }),
        Err(e) => {
            crate::log::error(format_args!("login {user}: home {}: {e}", acct.home.display()));
            None
        }
    }
}
