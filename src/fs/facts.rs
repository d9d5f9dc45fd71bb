//! RFC 3659 facts: the set a session selects with `OPTS MLST` (§7.9), and how the OPTS reply
//! and FEAT name them. MLST and MLSD write only the selected facts (see `listing.rs`).

/// A set of the facts this server can give, one bit each.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Facts(u8);

impl Facts {
    pub const NONE: Facts = Facts(0);
    pub const TYPE: Facts = Facts(1);
    pub const SIZE: Facts = Facts(1 << 1);
    pub const MODIFY: Facts = Facts(1 << 2);
    pub const PERM: Facts = Facts(1 << 3);
    pub const UNIQUE: Facts = Facts(1 << 4);
    pub const UNIX_MODE: Facts = Facts(1 << 5);
    /// Every fact: the selection before any `OPTS MLST`.
    pub const ALL: Facts = Facts((1 << 6) - 1);

    pub fn contains(self, f: Facts) -> bool {
        self.0 & f.0 == f.0
    }

    fn with(self, f: Facts) -> Facts {
        Facts(self.0 | f.0)
    }
}

impl Default for Facts {
    fn default() -> Facts {
        Facts::ALL
    }
}

/// The facts in the order FEAT, the OPTS reply and listings give them, as this server
/// spells them (fact names are case-insensitive on input).
const NAMES: [(Facts, &str); 6] = [
    (Facts::TYPE, "type"),
    (Facts::SIZE, "size"),
    (Facts::MODIFY, "modify"),
    (Facts::PERM, "perm"),
    (Facts::UNIQUE, "unique"),
    (Facts::UNIX_MODE, "UNIX.mode"),
];

/// Parses the fact list of `OPTS MLST` (what follows "MLST "): `fact;fact;...`. Facts this
/// server does not know are ignored and an empty list selects none (RFC 3659 §7.9). `None`
/// is a syntax error (a space inside the list), which must leave the selection unchanged.
pub fn parse_selection(list: &[u8]) -> Option<Facts> {
    if list.contains(&b' ') {
        return None;
    }
    let mut set = Facts::NONE;
    for name in list.split(|&b| b == b';') {
        if let Some((f, _)) = NAMES.iter().find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name)) {
            set = set.with(*f);
        }
    }
    Some(set)
}

/// Appends the selected facts as `type;size;` (the `200 MLST OPTS` reply's list).
pub fn push_selected(out: &mut Vec<u8>, set: Facts) {
    for (f, name) in NAMES {
        if set.contains(f) {
            out.extend_from_slice(name.as_bytes());
            out.push(b';');
        }
    }
}

/// Appends every fact for FEAT's MLST line, the selected ones marked `*`: `type*;size;...`.
pub fn push_feat(out: &mut Vec<u8>, set: Facts) {
    for (f, name) in NAMES {
        out.extend_from_slice(name.as_bytes());
        if set.contains(f) {
            out.push(b'*');
        }
        out.push(b';');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selected(set: Facts) -> String {
        let mut out = Vec::new();
        push_selected(&mut out, set);
        String::from_utf8(out).expect("ASCII")
    }

    fn feat(set: Facts) -> String {
        let mut out = Vec::new();
        push_feat(&mut out, set);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn selection_ignores_unknown_facts_and_case() {
        assert_eq!(parse_selection(b"type;"), Some(Facts::TYPE));
        assert_eq!(parse_selection(b"TyPe;"), Some(Facts::TYPE));
        assert_eq!(parse_selection(b"fish;Size;cakes;unix.MODE;"), Some(Facts::SIZE.with(Facts::UNIX_MODE)));
        assert_eq!(parse_selection(b"lang;charset;create;"), Some(Facts::NONE));
        assert_eq!(parse_selection(b""), Some(Facts::NONE));
        assert_eq!(parse_selection(b"type"), Some(Facts::TYPE), "a missing last ';' is tolerated");
        assert_eq!(parse_selection(b"unique;perm;modify;size;type;UNIX.mode;"), Some(Facts::ALL));
        assert_eq!(parse_selection(b"type;type;;"), Some(Facts::TYPE));
        assert_eq!(parse_selection(b"\xff\0;size;"), Some(Facts::SIZE));
    }

    #[test]
    fn a_space_in_the_list_is_a_syntax_error() {
        assert_eq!(parse_selection(b"unique type;"), None);
        assert_eq!(parse_selection(b"type ;"), None);
        assert_eq!(parse_selection(b" type;"), None);
    }

    #[test]
    fn reply_and_feat_name_the_selection() {
        assert_eq!(selected(Facts::ALL), "type;size;modify;perm;unique;UNIX.mode;");
        assert_eq!(selected(Facts::NONE), "");
        assert_eq!(selected(Facts::UNIX_MODE.with(Facts::TYPE)), "type;UNIX.mode;");
        assert_eq!(feat(Facts::ALL), "type*;size*;modify*;perm*;unique*;UNIX.mode*;");
        assert_eq!(feat(Facts::NONE), "type;size;modify;perm;unique;UNIX.mode;");
        assert_eq!(feat(Facts::SIZE), "type;size*;modify;perm;unique;UNIX.mode;");
        assert_eq!(Facts::default(), Facts::ALL);
        assert!(Facts::ALL.contains(Facts::UNIQUE) && !Facts::TYPE.contains(Facts::SIZE));
    }
}
