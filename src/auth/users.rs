//! The `--users FILE` accounts: one `name:hash:home:permissions` line per account.
//!
//! ```text
//! # name : hash                     : home              : permissions
//! alice  : $argon2id$v=19$m=19456...: /srv/ftp/incoming : list,read,write,mkdir
//! bob    : $6$saltsalt$TVLl...      : homes/bob         : readonly
//! ```
//!
//! Blank lines and lines whose first non-blank character is `#` are skipped; whitespace around
//! fields is trimmed. The hash never contains `:` (it may contain `$`); the home is everything
//! between the second and the last `:`, so it may contain `:` itself. A relative home is taken
//! relative to the users file's directory; it is not checked here (the server does that at
//! start-up). Names are 1 to 64 bytes of `A-Z a-z 0-9 . _ @ -`, case-sensitive, and never
//! `anonymous` or `ftp` in any case (those log in anonymously).

use crate::auth::hash;
use crate::auth::perms::Perms;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Longest account name, in bytes.
pub const MAX_NAME: usize = 64;

/// Names that always mean an anonymous session (compared ignoring ASCII case).
pub const RESERVED: [&str; 2] = ["anonymous", "ftp"];

/// One account of the users file.
#[derive(Clone, Debug)]
pub struct Account {
    /// The login name (USER).
    pub name: String,
    /// The stored password hash, as `auth::hash::verify` reads it (`auth::hash::check`
    /// accepted it), or `!`/`*` for a disabled account.
    pub hash: String,
    /// The account's home folder on the real file system (absolute).
    pub home: PathBuf,
    /// What the account may do where no rule says otherwise.
    pub perms: Perms,
}

impl Account {
    /// Whether the account is disabled (`!` or `*` as its hash): no password logs it in.
    pub fn disabled(&self) -> bool {
        self.hash == "!" || self.hash == "*"
    }
}

/// Every account of a users file, by name.
#[derive(Clone, Debug, Default)]
pub struct Users {
    by_name: HashMap<String, Account>,
}

impl Users {
    /// Reads and parses the users file at `path`; relative homes are relative to its directory.
    pub fn load(path: &Path) -> Result<Users, LoadError> {
        let text = read_text(path)?;
        let base = base_dir(path);
        Users::parse(&text, &base).map_err(|e| e.in_file(path))
    }

    /// Parses the text of a users file; relative homes are joined to `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Users, LoadError> {
        let mut by_name: HashMap<String, Account> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let account = parse_line(line, base_dir).map_err(|msg| LoadError::at(n, msg))?;
            if let Some(first) = first_line.get(&account.name) {
                return Err(LoadError::at(n, format!("duplicate user '{}' (first on line {first})", account.name)));
            }
            first_line.insert(account.name.clone(), n);
            by_name.insert(account.name.clone(), account);
        }
        Ok(Users { by_name })
    }

    /// The account called `name` (case-sensitive).
    pub fn get(&self, name: &str) -> Option<&Account> {
        self.by_name.get(name)
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no accounts.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every account, in no particular order (for the start-up check of the homes).
    pub fn iter(&self) -> impl Iterator<Item = &Account> {
        self.by_name.values()
    }
}

/// One non-blank, non-comment line (already trimmed).
fn parse_line(line: &str, base_dir: &Path) -> Result<Account, String> {
    let mut parts = line.splitn(3, ':');
    let (Some(name), Some(hash), Some((home, perms))) =
        (parts.next(), parts.next(), parts.next().and_then(|rest| rest.rsplit_once(':')))
    else {
        let fields = line.split(':').count();
        return Err(format!("expected name:hash:home:permissions, found {fields} field(s)"));
    };
    let name = name.trim();
    check_name(name).map_err(|e| e.to_string())?;
    let hash = hash.trim();
    if hash.is_empty() {
        return Err("empty password hash (write '!' to disable the account)".into());
    }
    // A hash no password can match would be an account that silently never logs in.
    hash::check(hash)?;
    let home = home.trim();
    if home.is_empty() {
        return Err("empty home folder".into());
    }
    let perms = Perms::parse(perms).map_err(|e| e.to_string())?;
    Ok(Account { name: name.to_string(), hash: hash.to_string(), home: base_dir.join(home), perms })
}

/// Why an account name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME`] bytes.
    TooLong,
    /// The name contains this character, which is not in `A-Z a-z 0-9 . _ @ -`.
    BadChar(char),
    /// The name is `anonymous` or `ftp` (any case).
    Reserved(String),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty user name"),
            NameError::TooLong => write!(f, "user name longer than {MAX_NAME} bytes"),
            NameError::BadChar(c) => {
                write!(f, "user name contains {c:?} (allowed: letters, digits, '.', '_', '@', '-')")
            }
            NameError::Reserved(n) => write!(f, "user name '{n}' is reserved for anonymous sessions"),
        }
    }
}

impl std::error::Error for NameError {}

/// Whether `name` may name an account (and a rule's WHO).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))) {
        return Err(NameError::BadChar(c));
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong);
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// A users or rules file that could not be read or parsed: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// The file, when the text came from one.
    pub path: Option<PathBuf>,
    /// The 1-based line, when one line is at fault.
    pub line: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

impl LoadError {
    /// An error on line `line` of a text not yet tied to a file.
    pub(crate) fn at(line: usize, msg: impl Into<String>) -> LoadError {
        LoadError { path: None, line: Some(line), msg: msg.into() }
    }

    /// This error, said of the file `path`.
    pub(crate) fn in_file(self, path: &Path) -> LoadError {
        LoadError { path: Some(path.to_path_buf()), ..self }
    }
}

impl fmt::Display for LoadError {
    /// `users.txt:7: unknown permission 'wrtie'`; without a line `users.txt: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line) {
            (Some(p), Some(n)) => write!(f, "{}:{n}: {}", p.display(), self.msg),
            (Some(p), None) => write!(f, "{}: {}", p.display(), self.msg),
            (None, Some(n)) => write!(f, "line {n}: {}", self.msg),
            (None, None) => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for LoadError {}

/// The whole file at `path` as UTF-8 text; a non-UTF-8 byte is an error naming its line.
pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        path: Some(path.to_path_buf()),
        line: None,
        msg: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = e.as_bytes().get(..e.utf8_error().valid_up_to()).unwrap_or_default();
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
        LoadError::at(line, "not valid UTF-8").in_file(path)
    })
}

/// The directory relative homes are taken from: the file's own, made absolute.
fn base_dir(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/etc/mirrorftpd";
    /// `echo -n secret | argon2 saltsaltsalt -id -t 1 -k 64 -p 1 -e`.
    const ARGON2ID: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78";
    /// `mkpasswd -m sha-512 -S saltsalt secret`.
    const SHA512: &str =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    fn parse(text: &str) -> Result<Users, LoadError> {
        Users::parse(text, Path::new(BASE))
    }

    /// The line number and message of a failed parse.
    fn err(text: &str) -> (Option<usize>, String) {
        match parse(text) {
            Ok(u) => panic!("parsed {text:?} into {u:?}"),
            Err(e) => (e.line, e.msg),
        }
    }

    #[test]
    fn good_file() {
        let text = format!(
            "# accounts\n\
             \n\
             alice:{ARGON2ID}:/srv/incoming:list,read,write\n\
             \t  # indented comment\n\
             \x20 bob : {SHA512} : homes/bob : readonly \r\n\
             carol.o_k@x-y:!:/srv/c:d:none\n\
             \n"
        );
        let users = parse(&text).expect("parses");
        assert_eq!(users.len(), 3);
        assert!(!users.is_empty());
        let alice = users.get("alice").expect("alice");
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.hash, ARGON2ID);
        assert!(!alice.disabled());
        assert_eq!(alice.home, Path::new("/srv/incoming"));
        assert_eq!(alice.perms, Perms::parse("list,read,write").expect("perms"));
        let bob = users.get("bob").expect("bob");
        assert_eq!(bob.hash, SHA512);
        assert_eq!(bob.home, Path::new("/etc/mirrorftpd/homes/bob"), "relative home");
        assert_eq!(bob.perms, Perms::READONLY);
        let carol = users.get("carol.o_k@x-y").expect("carol");
        assert_eq!(carol.home, Path::new("/srv/c:d"), "a home may contain ':'");
        assert_eq!(carol.perms, Perms::NONE);
        assert!(carol.disabled());
        assert!(users.get("Alice").is_none(), "names are case-sensitive");
        assert!(users.get("dave").is_none());
        assert_eq!(users.iter().count(), 3);
    }

    #[test]
    fn empty_files() {
        assert!(parse("").expect("empty").is_empty());
        assert!(parse("# nothing\n\n   \n").expect("comments").is_empty());
        assert!(Users::default().is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let ok = "alice:!:/a:all\n";
        let cases: [(&str, &str); 14] = [
            ("alice", "expected name:hash:home:permissions, found 1 field(s)"),
            ("alice:!", "expected name:hash:home:permissions, found 2 field(s)"),
            ("alice:!:/a", "expected name:hash:home:permissions, found 3 field(s)"),
            (":!:/a:all", "empty user name"),
            ("al ice:!:/a:all", "user name contains ' ' (allowed: letters, digits, '.', '_', '@', '-')"),
            ("al/ice:!:/a:all", "user name contains '/' (allowed: letters, digits, '.', '_', '@', '-')"),
            ("élise:!:/a:all", "user name contains 'é' (allowed: letters, digits, '.', '_', '@', '-')"),
            ("bob::/a:all", "empty password hash (write '!' to disable the account)"),
            ("bob:!: :all", "empty home folder"),
            ("bob:!:/a:", "empty permission list (write 'none' for no permissions)"),
            ("bob:!:/a:list,wrtie", "unknown permission 'wrtie'"),
            ("bob:!:/a:list read", "unknown permission 'list read'"),
            ("anonymous:!:/a:all", "user name 'anonymous' is reserved for anonymous sessions"),
            ("FTP:!:/a:all", "user name 'FTP' is reserved for anonymous sessions"),
        ];
        for (bad, msg) in cases {
            let text = format!("# header\n{ok}\n{bad}\ncarol:!:/c:all\n");
            assert_eq!(err(&text), (Some(4), msg.to_string()), "{bad}");
        }
        let long = format!("{}:!:/a:all", "a".repeat(MAX_NAME + 1));
        assert_eq!(err(&long), (Some(1), "user name longer than 64 bytes".into()));
        assert!(parse(&format!("{}:!:/a:all", "a".repeat(MAX_NAME))).is_ok());
    }

    /// Issue 10: a hash that no password can match is refused with its line and what is
    /// supported, instead of an account that can never log in.
    #[test]
    fn unverifiable_hashes_name_their_line() {
        let cases = [
            ("hunter2", "plain text or an unknown format is not a supported password hash"),
            ("$1$saltsalt$abcdefghijklmnopqrstuv", "an MD5-crypt hash ($1$) is not a supported password hash"),
            ("$2b$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234", "a bcrypt hash ($2b$) is not"),
            ("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3M!!!!", "malformed Argon2 hash"),
            ("$6$saltsalt$TVLl", "malformed SHA-crypt hash"),
        ];
        for (hash, msg) in cases {
            let text = format!("alice:{ARGON2ID}:/a:all\n# comment\nbob:{hash}:/b:all\n");
            let (line, e) = err(&text);
            assert_eq!(line, Some(3), "{hash}");
            assert!(e.starts_with(msg), "{hash}: {e}");
            assert!(e.contains("supported: an Argon2 PHC string") && e.contains("$6$"), "{e}");
        }
        assert!(parse(&format!("a:{SHA512}:/a:all\nb:*:/b:all\nc:!:/c:all\n")).is_ok());
    }

    #[test]
    fn duplicate_names() {
        let text = "alice:!:/a:all\nbob:!:/b:all\n\n alice :*:/c:none\n";
        assert_eq!(err(text), (Some(4), "duplicate user 'alice' (first on line 1)".into()));
        assert!(parse("alice:!:/a:all\nAlice:!:/a:all\n").is_ok(), "case-sensitive");
    }

    #[test]
    fn error_display() {
        let e = LoadError { path: Some("users.txt".into()), line: Some(7), msg: "unknown permission 'wrtie'".into() };
        assert_eq!(e.to_string(), "users.txt:7: unknown permission 'wrtie'");
        let e = LoadError { path: Some("users.txt".into()), line: None, msg: "No such file".into() };
        assert_eq!(e.to_string(), "users.txt: No such file");
        assert_eq!(LoadError::at(3, "bad").to_string(), "line 3: bad");
    }

    #[test]
    fn load_from_file() {
        let dir = std::env::temp_dir().join(format!("mirrorftpd-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("users.txt");
        std::fs::write(&path, "alice:!:home/alice:readonly\n").expect("write");
        let users = Users::load(&path).expect("loads");
        assert_eq!(users.get("alice").map(|a| a.home.clone()), Some(dir.join("home/alice")));
        std::fs::write(&path, "alice:!:/a:readonly\n\nbob:!:/b:wrtie\n").expect("write");
        let e = Users::load(&path).expect_err("bad perms");
        assert_eq!(e.to_string(), format!("{}:3: unknown permission 'wrtie'", path.display()));
        std::fs::write(&path, b"alice:!:/a:readonly\nb\xffb:!:/b:all\n").expect("write");
        let e = Users::load(&path).expect_err("not UTF-8");
        assert_eq!((e.line, e.msg.as_str()), (Some(2), "not valid UTF-8"));
        let missing = dir.join("missing.txt");
        let e = Users::load(&missing).expect_err("missing");
        assert_eq!((e.path, e.line), (Some(missing), None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
