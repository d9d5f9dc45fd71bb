//! Per-folder permission overrides (`--rules FILE`) and hidden names (`--deny PATTERN`).
//!
//! A rules file has one `WHO PERMS FOLDER` rule a line:
//!
//! ```text
//! # who      perms            folder
//! *          list,read        /pub
//! *          none             /private
//! alice      list,read,write  /incoming/alice
//! anonymous  list             /incoming
//! ```
//!
//! WHO is a user name, `anonymous` (anonymous sessions only) or `*` (everyone); PERMS is a
//! permission list without spaces (`list,read`, `all`, `none`, `all,-delete`,
//! `list,read,write,-settime`, ...; see `perms.rs`); FOLDER is an absolute
//! virtual path, the rest of the line (it may contain spaces; a trailing `/` is ignored; `.`
//! and `..` are refused). Blank lines and `#` comment lines are skipped.
//!
//! Precedence, for a session (a user, or anonymous) and a virtual path:
//! 1. Only rules that apply to the session count: those naming its user, `anonymous` for an
//!    anonymous session, and `*`.
//! 2. Among them, the rule whose FOLDER is the longest prefix of the path on a component
//!    boundary wins: `/pub` covers `/pub` and `/pub/x`, never `/public`; `/` covers everything.
//! 3. For the same folder, a rule naming the user beats an `anonymous` rule, which beats `*`.
//! 4. The winning rule's permissions REPLACE the session's own (they are not added to them);
//!    with no rule, the session keeps its own: the account's permissions from the users file,
//!    or `readonly` for anonymous sessions.
//! 5. Anonymous sessions never get a permission that changes the disk (write, append, delete,
//!    rename, mkdir, rmdir, settime), whatever the rules say.
//!
//! `--deny` patterns hide names: a path component matching any pattern (`*` and `?`, as in
//! `LIST *.iso`) is treated as if it did not exist. Like a shell glob, a pattern matches a name
//! starting with `.` only if the pattern starts with `.`: `*.part` does not hide `.x.part`
//! (add `.*.part` for that).

use crate::auth::perms::{Perms, WRITE_ANY};
use crate::auth::users::{LoadError, check_name, read_text};
use crate::fs::glob;
use std::collections::HashMap;
use std::path::Path;

/// The rules of one folder, by who they are for; each with the line it came from.
#[derive(Clone, Debug, Default)]
struct Group {
    users: HashMap<String, (Perms, usize)>,
    anonymous: Option<(Perms, usize)>,
    everyone: Option<(Perms, usize)>,
}

impl Group {
    /// The perms of the rule of this folder that applies to `user` (None = anonymous).
    fn pick(&self, user: Option<&str>) -> Option<Perms> {
        let own = match user {
            Some(name) => self.users.get(name),
            None => self.anonymous.as_ref(),
        };
        own.or(self.everyone.as_ref()).map(|&(p, _)| p)
    }
}

/// Who a rule is for.
enum Who {
    User(String),
    Anonymous,
    Everyone,
}

/// Every rule of a rules file, grouped by folder for a lookup per path prefix.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Folder (normalised: `/` or `/a/b`, no trailing `/`) → its rules.
    groups: HashMap<Vec<u8>, Group>,
    /// Length of the longest folder: longer prefixes of a path need no lookup.
    longest: usize,
    count: usize,
}

impl Rules {
    /// Reads and parses the rules file at `path`.
    pub fn load(path: &Path) -> Result<Rules, LoadError> {
        Rules::parse(&read_text(path)?).map_err(|e| e.in_file(path))
    }

    /// Parses the text of a rules file.
    pub fn parse(text: &str) -> Result<Rules, LoadError> {
        let mut rules = Rules::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.add_line(line, n).map_err(|msg| LoadError::at(n, msg))?;
        }
        Ok(rules)
    }

    fn add_line(&mut self, line: &str, n: usize) -> Result<(), String> {
        let (who, rest) = split_word(line);
        let (perms, folder) = split_word(rest);
        if perms.is_empty() || folder.is_empty() {
            return Err("expected WHO PERMS FOLDER".into());
        }
        let who = match who {
            "*" => Who::Everyone,
            "anonymous" => Who::Anonymous,
            name => {
                check_name(name).map_err(|e| format!("{e} (WHO is a user name, 'anonymous' or '*')"))?;
                Who::User(name.to_string())
            }
        };
        let perms = match Perms::parse(perms) {
            Err(_) if perms.ends_with(',') => {
                return Err(format!("PERMS '{perms}' ends with ',' (no spaces inside PERMS)"));
            }
            p => p.map_err(|e| e.to_string())?,
        };
        let folder = normalise(folder)?;
        self.longest = self.longest.max(folder.len());
        let shown = String::from_utf8_lossy(&folder).into_owned();
        let group = self.groups.entry(folder).or_default();
        let (slot, label) = match who {
            Who::User(name) => {
                let label = format!("'{name}'");
                (group.users.entry(name).or_insert((Perms::NONE, 0)), label)
            }
            Who::Anonymous => (group.anonymous.get_or_insert((Perms::NONE, 0)), "anonymous".to_string()),
            Who::Everyone => (group.everyone.get_or_insert((Perms::NONE, 0)), "*".to_string()),
        };
        if slot.1 != 0 {
            // Line numbers start at 1: 0 marks the slot just made.
            return Err(format!("second rule for {label} on {shown} (first on line {})", slot.1));
        }
        *slot = (perms, n);
        self.count += 1;
        Ok(())
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// What a session may do at `path` (a normalised absolute virtual path): the perms of the
    /// winning rule (see the module documentation), else `base`; never a write permission for
    /// an anonymous session (`user` None). No allocation: one map lookup per path prefix.
    pub fn effective(&self, user: Option<&str>, base: Perms, path: &[u8]) -> Perms {
        let perms = self.lookup(user, path).unwrap_or(base);
        if user.is_none() { perms.minus(WRITE_ANY) } else { perms }
    }

    fn lookup(&self, user: Option<&str>, path: &[u8]) -> Option<Perms> {
        if self.groups.is_empty() {
            return None;
        }
        // Drop trailing slashes, so that "/" becomes "" (the root, looked up as "/").
        let mut end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
        loop {
            let prefix = if end == 0 { &b"/"[..] } else { path.get(..end)? };
            let hit =
                if prefix.len() <= self.longest { self.groups.get(prefix).and_then(|g| g.pick(user)) } else { None };
            if hit.is_some() {
                return hit;
            }
            if end == 0 {
                return None;
            }
            end = prefix.iter().rposition(|&b| b == b'/').unwrap_or(0);
        }
    }
}

/// The first space-separated word of `s`, and the rest with its leading blanks removed.
fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (s, ""),
    }
}

/// `folder` as a key: starts with `/`, empty components dropped, no trailing `/`; `.` and `..`
/// refused.
fn normalise(folder: &str) -> Result<Vec<u8>, String> {
    if !folder.starts_with('/') {
        return Err(format!("folder '{folder}' is not absolute (it must start with '/')"));
    }
    let mut out = Vec::with_capacity(folder.len());
    for comp in folder.split('/').filter(|c| !c.is_empty()) {
        if comp == "." || comp == ".." {
            return Err(format!("folder '{folder}' contains '{comp}'"));
        }
        out.push(b'/');
        out.extend_from_slice(comp.as_bytes());
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

/// The `--deny` patterns: names that every session sees as nonexistent.
#[derive(Clone, Debug, Default)]
pub struct Deny {
    patterns: Vec<Vec<u8>>,
}

impl Deny {
    /// Checks and keeps `patterns`: each non-empty, without `/`, at most
    /// [`glob::MAX_PATTERN`] bytes.
    pub fn new(patterns: &[String]) -> Result<Deny, String> {
        for p in patterns {
            if p.is_empty() {
                return Err("empty --deny pattern".into());
            }
            if p.contains('/') {
                return Err(format!("--deny pattern '{p}' contains '/' (patterns match one name)"));
            }
            if p.len() > glob::MAX_PATTERN {
                return Err(format!("--deny pattern longer than {} bytes", glob::MAX_PATTERN));
            }
        }
        Ok(Deny { patterns: patterns.iter().map(|p| p.as_bytes().to_vec()).collect() })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the single path component `name` matches a pattern.
    pub fn hides_name(&self, name: &[u8]) -> bool {
        self.patterns.iter().any(|p| glob::matches(p, name))
    }

    /// Whether any component of `path` matches a pattern.
    pub fn hides_path(&self, path: &[u8]) -> bool {
        !self.is_empty() && path.split(|&b| b == b'/').any(|c| !c.is_empty() && self.hides_name(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(s: &str) -> Perms {
        Perms::parse(s).expect("perms")
    }

    fn err(text: &str) -> (Option<usize>, String) {
        match Rules::parse(text) {
            Ok(r) => panic!("parsed {text:?} into {r:?}"),
            Err(e) => (e.line, e.msg),
        }
    }

    const EXAMPLE: &str = "\
# everyone reads /pub; nobody lists /private; alice writes only /incoming/alice
*          list,read        /pub
*          none             /private/
alice      list,read,write  /incoming/alice

anonymous  list             /incoming
*          list,read        /incoming
bob        all              /pub/bob uploads
";

    #[test]
    fn example_table() {
        let rules = Rules::parse(EXAMPLE).expect("parses");
        assert_eq!(rules.len(), 6);
        let ro = Perms::READONLY;
        let alice_base = ro;
        let bob_base = Perms::ALL;
        let table: &[(Option<&str>, Perms, &str, Perms)] = &[
            // everyone reads /pub (and a rule replaces the base, it does not add to it)
            (Some("alice"), alice_base, "/pub", ro),
            (Some("alice"), alice_base, "/pub/debian/dists/x.iso", ro),
            (Some("bob"), bob_base, "/pub/debian", ro),
            (None, ro, "/pub/x", ro),
            // nobody lists /private
            (Some("alice"), alice_base, "/private", Perms::NONE),
            (Some("bob"), bob_base, "/private/deep/file", Perms::NONE),
            (None, ro, "/private", Perms::NONE),
            // alice writes only /incoming/alice
            (Some("alice"), alice_base, "/incoming/alice", perms("list,read,write")),
            (Some("alice"), alice_base, "/incoming/alice/sub/file.iso", perms("list,read,write")),
            (Some("alice"), alice_base, "/incoming/alicex", ro),
            (Some("alice"), alice_base, "/incoming/bob", ro),
            (Some("alice"), alice_base, "/incoming", ro),
            (Some("bob"), bob_base, "/incoming/alice", ro),
            (None, ro, "/incoming/alice", Perms::LIST),
            (None, ro, "/incoming", Perms::LIST),
            // a folder name with a space; the longest prefix wins
            (Some("bob"), bob_base, "/pub/bob uploads/f", Perms::ALL),
            (Some("bob"), bob_base, "/pub/bob", ro),
            (Some("alice"), alice_base, "/pub/bob uploads", ro),
            // no rule: the base
            (Some("alice"), alice_base, "/", alice_base),
            (Some("bob"), bob_base, "/", bob_base),
            (Some("bob"), bob_base, "/public", bob_base),
            (Some("bob"), bob_base, "/pu", bob_base),
            (Some("carol"), Perms::LIST, "/other/x", Perms::LIST),
            (None, ro, "/", ro),
            (None, ro, "/publicity", ro),
        ];
        for &(user, base, path, want) in table {
            assert_eq!(rules.effective(user, base, path.as_bytes()), want, "{user:?} {path}");
        }
    }

    #[test]
    fn same_folder_precedence() {
        let rules = Rules::parse("* list /x\nanonymous list,read /x\nalice all /x\n").expect("parses");
        assert_eq!(rules.effective(Some("alice"), Perms::NONE, b"/x/f"), Perms::ALL);
        assert_eq!(rules.effective(Some("bob"), Perms::ALL, b"/x/f"), Perms::LIST);
        assert_eq!(rules.effective(None, Perms::NONE, b"/x/f"), Perms::READONLY);
        let only_star = Rules::parse("* list /x\n").expect("parses");
        assert_eq!(only_star.effective(None, Perms::READONLY, b"/x"), Perms::LIST);
        // A longer folder with only other users' rules does not hide a shorter one.
        let rules = Rules::parse("* none /a\nbob all /a/b\n").expect("parses");
        assert_eq!(rules.effective(Some("alice"), Perms::ALL, b"/a/b/c"), Perms::NONE);
        assert_eq!(rules.effective(Some("bob"), Perms::NONE, b"/a/b/c"), Perms::ALL);
    }

    #[test]
    fn component_boundaries_and_root() {
        let rules = Rules::parse("* none /pub\n* list /\n").expect("parses");
        let e = |p: &str| rules.effective(Some("u"), Perms::ALL, p.as_bytes());
        assert_eq!(e("/pub"), Perms::NONE);
        assert_eq!(e("/pub/"), Perms::NONE);
        assert_eq!(e("/pub/x"), Perms::NONE);
        assert_eq!(e("/public"), Perms::LIST);
        assert_eq!(e("/pu"), Perms::LIST);
        assert_eq!(e("/"), Perms::LIST);
        assert_eq!(e(""), Perms::LIST);
        assert_eq!(e("/x/pub"), Perms::LIST);
        let root_only = Rules::parse("* list,read //\n").expect("parses");
        assert_eq!(root_only.effective(Some("u"), Perms::ALL, b"/a/b"), Perms::READONLY);
        assert_eq!(Rules::default().effective(Some("u"), Perms::ALL, b"/a"), Perms::ALL);
    }

    #[test]
    fn anonymous_never_writes() {
        let rules = Rules::parse("* all /\nanonymous all /upload\n").expect("parses");
        assert_eq!(rules.effective(None, Perms::READONLY, b"/upload/x"), Perms::READONLY);
        assert_eq!(rules.effective(None, Perms::READONLY, b"/"), Perms::READONLY);
        assert_eq!(rules.effective(Some("alice"), Perms::NONE, b"/upload"), Perms::ALL);
        assert_eq!(Rules::default().effective(None, Perms::ALL, b"/"), Perms::READONLY);
        assert_eq!(Rules::default().effective(None, Perms::LIST, b"/"), Perms::LIST);
    }

    #[test]
    fn folder_normalisation() {
        let rules = Rules::parse("* none //a//b///\n").expect("parses");
        assert_eq!(rules.effective(Some("u"), Perms::ALL, b"/a/b/c"), Perms::NONE);
        assert_eq!(rules.effective(Some("u"), Perms::ALL, b"/a"), Perms::ALL);
        assert!(Rules::parse("# only comments\n\n  # and blanks\n").expect("parses").is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases: [(&str, &str); 11] = [
            ("*", "expected WHO PERMS FOLDER"),
            ("* list", "expected WHO PERMS FOLDER"),
            ("* list,wrtie /pub", "unknown permission 'wrtie'"),
            ("* list, read /pub", "PERMS 'list,' ends with ',' (no spaces inside PERMS)"),
            ("* list pub", "folder 'pub' is not absolute (it must start with '/')"),
            ("* list /pub/../etc", "folder '/pub/../etc' contains '..'"),
            ("* list /pub/./x", "folder '/pub/./x' contains '.'"),
            (
                "al/ice list /pub",
                "user name contains '/' (allowed: letters, digits, '.', '_', '@', '-') (WHO is a user name, 'anonymous' or '*')",
            ),
            (
                "ftp list /pub",
                "user name 'ftp' is reserved for anonymous sessions (WHO is a user name, 'anonymous' or '*')",
            ),
            ("alice list /pub/\nalice read /pub", "second rule for 'alice' on /pub (first on line 3)"),
            ("* list /\n* none //", "second rule for * on / (first on line 3)"),
        ];
        for (bad, msg) in cases {
            let text = format!("# rules\n\n{bad}\n* list /ok\n");
            let line = if bad.contains('\n') { 4 } else { 3 };
            assert_eq!(err(&text), (Some(line), msg.to_string()), "{bad}");
        }
        assert_eq!(err("anonymous list /a\nanonymous read /a/").0, Some(2));
    }

    #[test]
    fn load_from_file() {
        let path = std::env::temp_dir().join(format!("mirrorftpd-rules-{}.txt", std::process::id()));
        std::fs::write(&path, "* list /a\n\n* lsit /b\n").expect("write");
        let e = Rules::load(&path).expect_err("bad perms");
        assert_eq!(e.to_string(), format!("{}:3: unknown permission 'lsit'", path.display()));
        std::fs::write(&path, "* list /a\n").expect("write");
        assert_eq!(Rules::load(&path).map(|r| r.len()), Ok(1));
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn deny_patterns() {
        let deny = Deny::new(&[".~tmp~*".to_string(), "*.part".to_string()]).expect("valid");
        assert!(!deny.is_empty());
        assert!(deny.hides_name(b"debian.iso.part"));
        assert!(!deny.hides_name(b".part"), "shell rule: '*' does not match a leading dot");
        assert!(deny.hides_name(b".~tmp~"));
        assert!(deny.hides_name(b".~tmp~abc"));
        assert!(!deny.hides_name(b"debian.iso"));
        assert!(!deny.hides_name(b"x.partial"));
        assert!(!deny.hides_name(b"~tmp~"));
        assert!(!deny.hides_name(b".x.part"), "shell rule: '*' does not match a leading dot");
        assert!(deny.hides_path(b"/pub/.~tmp~/debian.iso"));
        assert!(deny.hides_path(b"/pub/debian.iso.part"));
        assert!(deny.hides_path(b"/a.part/b"));
        assert!(!deny.hides_path(b"/pub/debian.iso"));
        assert!(!deny.hides_path(b"/"));
        assert!(!deny.hides_path(b""));
        let none = Deny::new(&[]).expect("valid");
        assert!(none.is_empty() && !none.hides_name(b"x.part") && !none.hides_path(b"/x.part"));
        assert!(Deny::new(&[String::new()]).is_err());
        assert!(Deny::new(&["a/b".to_string()]).is_err());
        assert!(Deny::new(&["*".repeat(glob::MAX_PATTERN + 1)]).is_err());
    }
}
