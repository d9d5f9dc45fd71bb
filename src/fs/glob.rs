//! The arguments of LIST/NLST: `ls`-style option words, and shell-style name matching for
//! `LIST *.iso` (`*` and `?` only, never exponential).
//!
//! The matcher is the classic two-pointer algorithm with a single backtrack point (the last
//! `*`), so it is O(len(pattern) × len(name)) in the worst case, never exponential, never
//! recursive. `[` is an ordinary byte. Like a shell, a name starting with `.` is matched only
//! by a pattern that starts with `.`.

/// Longest pattern accepted; longer ones match nothing.
pub const MAX_PATTERN: usize = 255;

/// Whether `s` contains a wildcard byte (`*`, `?` or `[`).
pub fn is_pattern(s: &[u8]) -> bool {
    s.iter().any(|&b| matches!(b, b'*' | b'?' | b'['))
}

/// Whether `name` matches `pattern` (`*` = any run of bytes, `?` = any one byte).
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    if pattern.len() > MAX_PATTERN {
        return false;
    }
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0usize, 0usize);
    // Position in the pattern just after the last `*`, and the name position it resumes at.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, n));
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A `hide` that hides nothing.
pub fn hide_nothing(_: &[u8]) -> bool {
    false
}

/// A `hide` for `deny_dotfiles`: dot files are left out even with `-a`.
pub fn hide_dotfiles(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// The `ls`-style options a client put before the path.
#[derive(Clone, Debug, Default)]
pub struct ListFlags {
    /// `-a` or `-A`: show dot files (never `.` and `..`).
    pub all: bool,
    /// `-l`: long lines (makes `NLST -l` answer like LIST).
    pub long: bool,
}

/// Splits `LIST -la some path` into its flags and its path (possibly empty, spaces kept).
/// Every leading word that starts with `-` (other than a lone `-`) is an option word; unknown
/// letters are ignored (`-R` never recurses); `--` ends the options.
pub fn parse_list_args(arg: &[u8]) -> (ListFlags, &[u8]) {
    let mut flags = ListFlags::default();
    let mut rest = arg;
    loop {
        let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.len() < 2 || word[0] != b'-' {
            break;
        }
        let skip = rest[end..].iter().take_while(|&&b| b == b' ').count();
        rest = &rest[end + skip..];
        if word == b"--" {
            break;
        }
        for &c in &word[1..] {
            match c {
                b'a' | b'A' => flags.all = true,
                b'l' => flags.long = true,
                _ => {}
            }
        }
    }
    (flags, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_args() {
        let p = |a: &'static [u8]| {
            let (f, rest) = parse_list_args(a);
            (f.all, f.long, rest)
        };
        assert_eq!(p(b""), (false, false, &b""[..]));
        assert_eq!(p(b"-la"), (true, true, &b""[..]));
        assert_eq!(p(b"-al /pub"), (true, true, &b"/pub"[..]));
        assert_eq!(p(b"-A"), (true, false, &b""[..]));
        assert_eq!(p(b"-lA my dir"), (true, true, &b"my dir"[..]));
        assert_eq!(p(b"-F -R -t  x"), (false, false, &b"x"[..]));
        assert_eq!(p(b"-l -- -a"), (false, true, &b"-a"[..]));
        assert_eq!(p(b"-"), (false, false, &b"-"[..]));
        assert_eq!(p(b"pub -la"), (false, false, &b"pub -la"[..]));
        assert_eq!(p(b"-\xff\n"), (false, false, &b""[..]));
    }

    #[test]
    fn detects_patterns() {
        assert!(is_pattern(b"*.iso"));
        assert!(is_pattern(b"a?c"));
        assert!(is_pattern(b"[ab]"));
        assert!(!is_pattern(b"plain-name.txt"));
        assert!(!is_pattern(b""));
    }

    #[test]
    fn star_and_question() {
        assert!(matches(b"*.iso", b"debian-12.iso"));
        assert!(!matches(b"*.iso", b"debian-12.iso.sig"));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"*", b""));
        assert!(matches(b"", b""));
        assert!(!matches(b"", b"x"));
        assert!(matches(b"a?c", b"abc"));
        assert!(!matches(b"a?c", b"ac"));
        assert!(matches(b"a*b*c", b"aXXbYYc"));
        assert!(matches(b"a*b*c", b"abbbc"));
        assert!(!matches(b"a*b*c", b"acb"));
        assert!(matches(b"**a**", b"bab"));
        assert!(matches(b"*ab", b"aab"));
        assert!(matches(b"*a*", b"\xe9a\n"));
        assert!(matches(b"Release*", b"Release.gpg"));
    }

    #[test]
    fn bracket_is_literal() {
        assert!(matches(b"[ab]", b"[ab]"));
        assert!(!matches(b"[ab]", b"a"));
    }

    #[test]
    fn dot_files_need_an_explicit_dot() {
        assert!(!matches(b"*", b".hidden"));
        assert!(!matches(b"?hidden", b".hidden"));
        assert!(matches(b".*", b".hidden"));
        assert!(matches(b".h*", b".hidden"));
        assert!(hide_dotfiles(b".hidden") && !hide_dotfiles(b"a.b") && !hide_nothing(b".x"));
        assert!(matches(b"*.txt", b"a.txt"));
    }

    #[test]
    fn overlong_pattern_matches_nothing() {
        let p = vec![b'*'; MAX_PATTERN + 1];
        assert!(!matches(&p, b"x"));
        assert!(matches(&p[..MAX_PATTERN], b"x"));
    }

    #[test]
    fn pathological_pattern_finishes() {
        let name = vec![b'a'; 10_000];
        assert!(!matches(b"*a*a*a*a*a*a*a*b", &name));
        let mut name_b = name.clone();
        name_b.push(b'b');
        assert!(matches(b"*a*a*a*a*a*a*a*b", &name_b));
    }
}
