//! What a session may do in a folder: a small bit set, its `--users`/`--rules` spelling
//! (`list,read,write`, `all,-delete`) and the RFC 3659 `perm` facts it implies.
//!
//! `write` includes `settime`: whoever may write a file may also set its modification time
//! (MFMT, MDTM with a time), which is how rclone and `lftp mirror -R` finish every upload.
//! `-settime` takes it away again (`list,read,write,-settime`).

use std::fmt;

/// A set of permissions. Copy, 2 bytes; combine with [`Perms::union`] and [`Perms::minus`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct Perms(u16);

/// Every permission in canonical order, with its spelling.
const WORDS: [(Perms, &str); 9] = [
    (Perms::LIST, "list"),
    (Perms::READ, "read"),
    (Perms::WRITE, "write"),
    (Perms::APPEND, "append"),
    (Perms::DELETE, "delete"),
    (Perms::RENAME, "rename"),
    (Perms::MKDIR, "mkdir"),
    (Perms::RMDIR, "rmdir"),
    (Perms::SETTIME, "settime"),
];

/// Shorthands accepted by [`Perms::parse`] besides the words of [`WORDS`].
const SHORTHANDS: [(Perms, &str); 3] = [(Perms::ALL, "all"), (Perms::READONLY, "readonly"), (Perms::NONE, "none")];

/// Every permission that changes the disk (write, append, delete, rename, mkdir, rmdir,
/// settime). Anonymous sessions never hold any of them.
pub const WRITE_ANY: Perms = Perms(
    Perms::WRITE.0
        | Perms::APPEND.0
        | Perms::DELETE.0
        | Perms::RENAME.0
        | Perms::MKDIR.0
        | Perms::RMDIR.0
        | Perms::SETTIME.0,
);

impl Perms {
    /// Nothing at all.
    pub const NONE: Perms = Perms(0);
    /// See a folder's contents (LIST, NLST, MLSD, STAT of a folder) and enter it (CWD).
    pub const LIST: Perms = Perms(1 << 0);
    /// Download files (RETR, SIZE, MDTM, MLST of a file).
    pub const READ: Perms = Perms(1 << 1);
    /// Create or overwrite files (STOR, STOU), SITE CHMOD. The word `write` grants
    /// [`Perms::SETTIME`] with it.
    pub const WRITE: Perms = Perms(1 << 2);
    /// Append to files (APPE; STOR with REST).
    pub const APPEND: Perms = Perms(1 << 3);
    /// Delete files (DELE).
    pub const DELETE: Perms = Perms(1 << 4);
    /// Rename files and folders (RNFR/RNTO).
    pub const RENAME: Perms = Perms(1 << 5);
    /// Create folders (MKD).
    pub const MKDIR: Perms = Perms(1 << 6);
    /// Remove empty folders (RMD).
    pub const RMDIR: Perms = Perms(1 << 7);
    /// Set modification times (MFMT, MDTM with a time); part of the word `write`.
    pub const SETTIME: Perms = Perms(1 << 8);
    /// Every permission.
    pub const ALL: Perms = Perms((1 << 9) - 1);
    /// `list,read`: what anonymous sessions get by default.
    pub const READONLY: Perms = Perms(Perms::LIST.0 | Perms::READ.0);

    /// Whether every permission in `p` is in `self`.
    pub const fn contains(self, p: Perms) -> bool {
        self.0 & p.0 == p.0
    }

    /// Whether at least one permission of `p` is in `self`.
    pub const fn intersects(self, p: Perms) -> bool {
        self.0 & p.0 != 0
    }

    /// The permissions in `self` or `p`.
    #[must_use]
    pub const fn union(self, p: Perms) -> Perms {
        Perms(self.0 | p.0)
    }

    /// The permissions in `self` but not in `p`.
    #[must_use]
    pub const fn minus(self, p: Perms) -> Perms {
        Perms(self.0 & !p.0)
    }

    /// Parses a comma-separated list of permission words (`list,read,write,append,delete,
    /// rename,mkdir,rmdir,settime`) and shorthands (`all`, `readonly`, `none`), ASCII case
    /// ignored, spaces around commas tolerated. Words apply left to right: a word adds what it
    /// grants, `-word` removes it (`all,-delete`, `list,read,write,-settime`). `write` grants
    /// `settime` too.
    pub fn parse(s: &str) -> Result<Perms, PermsError> {
        if s.trim().is_empty() {
            return Err(PermsError::Empty);
        }
        let mut perms = Perms::NONE;
        for word in s.split(',').map(str::trim) {
            if word.is_empty() {
                return Err(PermsError::EmptyWord);
            }
            let (minus, name) = match word.strip_prefix('-') {
                Some(name) => (true, name.trim_start()),
                None => (false, word),
            };
            let found = WORDS.iter().chain(SHORTHANDS.iter()).find(|(_, w)| w.eq_ignore_ascii_case(name));
            let Some(&(p, _)) = found else {
                return Err(PermsError::Unknown(shorten(word)));
            };
            let granted = if p == Perms::WRITE { p.union(Perms::SETTIME) } else { p };
            perms = if minus { perms.minus(granted) } else { perms.union(granted) };
        }
        Ok(perms)
    }

    /// The RFC 3659 `perm` fact of a file under these permissions: a subset of `radfw` in that
    /// order (`r` read, `a` append, `d` delete, `f` rename, `w` write).
    pub fn mlsx_file(self) -> &'static str {
        let bit = |p: Perms, b: usize| usize::from(self.contains(p)) << b;
        let i = bit(Perms::READ, 0)
            | bit(Perms::APPEND, 1)
            | bit(Perms::DELETE, 2)
            | bit(Perms::RENAME, 3)
            | bit(Perms::WRITE, 4);
        MLSX_FILE.get(i).copied().unwrap_or("")
    }

    /// The RFC 3659 `perm` fact of a folder under these permissions: a subset of `elcmpfd` in
    /// that order (`e` enter and `l` list from list, `c` create files from write, `m` mkdir,
    /// `p` purge entries from delete, `f` rename, `d` remove the folder from rmdir).
    pub fn mlsx_dir(self) -> &'static str {
        let bit = |p: Perms, b: usize| usize::from(self.contains(p)) << b;
        let i = bit(Perms::WRITE, 0)
            | bit(Perms::MKDIR, 1)
            | bit(Perms::DELETE, 2)
            | bit(Perms::RENAME, 3)
            | bit(Perms::RMDIR, 4);
        let with_el = MLSX_DIR.get(i).copied().unwrap_or("el");
        // Every entry starts with "el"; without LIST those two letters are dropped.
        if self.contains(Perms::LIST) { with_el } else { with_el.get(2..).unwrap_or("") }
    }
}

/// `mlsx_file` for every combination of r(1) a(2) d(4) f(8) w(16).
const MLSX_FILE: [&str; 32] = [
    "", "r", "a", "ra", "d", "rd", "ad", "rad", //
    "f", "rf", "af", "raf", "df", "rdf", "adf", "radf", //
    "w", "rw", "aw", "raw", "dw", "rdw", "adw", "radw", //
    "fw", "rfw", "afw", "rafw", "dfw", "rdfw", "adfw", "radfw",
];

/// `mlsx_dir` with list, for every combination of c(1) m(2) p(4) f(8) d(16).
const MLSX_DIR: [&str; 32] = [
    "el", "elc", "elm", "elcm", "elp", "elcp", "elmp", "elcmp", //
    "elf", "elcf", "elmf", "elcmf", "elpf", "elcpf", "elmpf", "elcmpf", //
    "eld", "elcd", "elmd", "elcmd", "elpd", "elcpd", "elmpd", "elcmpd", //
    "elfd", "elcfd", "elmfd", "elcmfd", "elpfd", "elcpfd", "elmpfd", "elcmpfd",
];

impl fmt::Display for Perms {
    /// The words in canonical order, comma-separated (`list,read`); `none` for the empty set;
    /// `write` without `settime` ends with `-settime`. [`Perms::parse`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Perms::NONE {
            return f.write_str("none");
        }
        let mut sep = "";
        for (p, word) in WORDS {
            if self.contains(p) {
                write!(f, "{sep}{word}")?;
                sep = ",";
            }
        }
        if self.contains(Perms::WRITE) && !self.contains(Perms::SETTIME) {
            f.write_str(",-settime")?;
        }
        Ok(())
    }
}

/// Why a permission list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermsError {
    /// Nothing at all was written.
    Empty,
    /// Two commas in a row, or a leading or trailing comma.
    EmptyWord,
    /// A word that is not a permission (shortened if very long).
    Unknown(String),
}

impl fmt::Display for PermsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermsError::Empty => f.write_str("empty permission list (write 'none' for no permissions)"),
            PermsError::EmptyWord => f.write_str("empty word in permission list"),
            PermsError::Unknown(w) => write!(f, "unknown permission '{w}'"),
        }
    }
}

impl std::error::Error for PermsError {}

/// `word`, cut to at most 40 characters for an error message.
fn shorten(word: &str) -> String {
    match word.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &word[..i]),
        None => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants() {
        assert_eq!(Perms::default(), Perms::NONE);
        assert_eq!(Perms::READONLY, Perms::LIST.union(Perms::READ));
        assert_eq!(Perms::ALL, WORDS.iter().fold(Perms::NONE, |a, &(p, _)| a.union(p)));
        assert_eq!(WRITE_ANY, Perms::ALL.minus(Perms::READONLY));
        assert!(Perms::ALL.contains(WRITE_ANY) && !Perms::READONLY.contains(Perms::WRITE));
        assert!(Perms::READ.contains(Perms::NONE));
        assert_eq!(Perms::ALL.minus(Perms::ALL), Perms::NONE);
    }

    #[test]
    fn parse_words_and_shorthands() {
        assert_eq!(Perms::parse("list,read"), Ok(Perms::READONLY));
        assert_eq!(Perms::parse(" list , read "), Ok(Perms::READONLY));
        assert_eq!(Perms::parse("readonly"), Ok(Perms::READONLY));
        assert_eq!(Perms::parse("all"), Ok(Perms::ALL));
        assert_eq!(Perms::parse("none"), Ok(Perms::NONE));
        assert_eq!(Perms::parse("none,read"), Ok(Perms::READ));
        assert_eq!(Perms::parse("READ,Write"), Ok(Perms::READ.union(Perms::WRITE).union(Perms::SETTIME)));
        assert_eq!(Perms::parse("readonly,mkdir"), Ok(Perms::READONLY.union(Perms::MKDIR)));
        assert_eq!(Perms::parse("read,read"), Ok(Perms::READ));
        for (p, w) in WORDS.into_iter().filter(|&(p, _)| p != Perms::WRITE) {
            assert_eq!(Perms::parse(w), Ok(p), "{w}");
        }
    }

    /// Issue 10: `write` without `settime` broke rclone and `lftp mirror -R`. The word `write`
    /// now grants settime; `-settime` (or any `-word`) takes a grant away, left to right.
    #[test]
    fn write_grants_settime_and_minus_words_remove() {
        let w = Perms::WRITE;
        assert_eq!(Perms::parse("write"), Ok(w.union(Perms::SETTIME)));
        assert_eq!(Perms::parse("write,-settime"), Ok(w));
        assert_eq!(Perms::parse("list,read,write, -settime"), Ok(Perms::READONLY.union(w)));
        assert_eq!(Perms::parse("-settime,write"), Ok(w.union(Perms::SETTIME)), "left to right");
        assert_eq!(Perms::parse("all,-delete"), Ok(Perms::ALL.minus(Perms::DELETE)));
        assert_eq!(Perms::parse("all,-write"), Ok(Perms::ALL.minus(w).minus(Perms::SETTIME)));
        assert_eq!(Perms::parse("all,-write,settime"), Ok(Perms::ALL.minus(w)));
        assert_eq!(Perms::parse("all,-readonly"), Ok(WRITE_ANY));
        assert_eq!(Perms::parse("readonly,-none"), Ok(Perms::READONLY));
        assert_eq!(Perms::parse("-settime"), Ok(Perms::NONE));
        assert_eq!(Perms::parse("write,-SETTIME"), Ok(w));
        assert_eq!(Perms::parse("write,-wrtie"), Err(PermsError::Unknown("-wrtie".into())));
        assert_eq!(Perms::parse("write,-"), Err(PermsError::Unknown("-".into())));
        assert_eq!(
            Perms::parse("list,read,write,-settime").map(|p| p.to_string()),
            Ok("list,read,write,-settime".into())
        );
        assert_eq!(Perms::parse("list,write").map(|p| p.to_string()), Ok("list,write,settime".into()));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(Perms::parse("list,wrtie"), Err(PermsError::Unknown("wrtie".into())));
        assert_eq!(Perms::parse("list,wrtie").map_err(|e| e.to_string()), Err("unknown permission 'wrtie'".into()));
        assert_eq!(Perms::parse(""), Err(PermsError::Empty));
        assert_eq!(Perms::parse("  "), Err(PermsError::Empty));
        assert_eq!(Perms::parse("list,,read"), Err(PermsError::EmptyWord));
        assert_eq!(Perms::parse("list,"), Err(PermsError::EmptyWord));
        assert_eq!(Perms::parse("list read"), Err(PermsError::Unknown("list read".into())));
        let long = "x".repeat(1000);
        assert_eq!(Perms::parse(&long), Err(PermsError::Unknown(format!("{}...", "x".repeat(40)))));
        assert!(Perms::parse("lïst").is_err());
    }

    #[test]
    fn display_round_trips() {
        assert_eq!(Perms::READONLY.to_string(), "list,read");
        assert_eq!(Perms::NONE.to_string(), "none");
        assert_eq!(Perms::READ.union(Perms::LIST).union(Perms::SETTIME).to_string(), "list,read,settime");
        assert_eq!(Perms::ALL.to_string(), "list,read,write,append,delete,rename,mkdir,rmdir,settime");
        for bits in 0..=Perms::ALL.0 {
            let p = Perms(bits);
            assert_eq!(Perms::parse(&p.to_string()), Ok(p), "{bits:#x}");
        }
    }

    /// The tables agree with building the strings letter by letter.
    #[test]
    fn mlsx_tables() {
        let file =
            [(Perms::READ, 'r'), (Perms::APPEND, 'a'), (Perms::DELETE, 'd'), (Perms::RENAME, 'f'), (Perms::WRITE, 'w')];
        let dir = [
            (Perms::LIST, 'e'),
            (Perms::LIST, 'l'),
            (Perms::WRITE, 'c'),
            (Perms::MKDIR, 'm'),
            (Perms::DELETE, 'p'),
            (Perms::RENAME, 'f'),
            (Perms::RMDIR, 'd'),
        ];
        let build = |p: Perms, table: &[(Perms, char)]| -> String {
            table.iter().filter(|(q, _)| p.contains(*q)).map(|&(_, c)| c).collect()
        };
        for bits in 0..=Perms::ALL.0 {
            let p = Perms(bits);
            assert_eq!(p.mlsx_file(), build(p, &file), "{p}");
            assert_eq!(p.mlsx_dir(), build(p, &dir), "{p}");
        }
    }

    #[test]
    fn mlsx_examples() {
        assert_eq!(Perms::READONLY.mlsx_file(), "r");
        assert_eq!(Perms::READONLY.mlsx_dir(), "el");
        assert_eq!(Perms::ALL.mlsx_file(), "radfw");
        assert_eq!(Perms::ALL.mlsx_dir(), "elcmpfd");
        assert_eq!(Perms::NONE.mlsx_file(), "");
        assert_eq!(Perms::NONE.mlsx_dir(), "");
        assert_eq!(Perms::parse("write,mkdir").map(Perms::mlsx_dir), Ok("cm"));
        assert_eq!(Perms::parse("list,read,write").map(Perms::mlsx_file), Ok("rw"));
    }
}
