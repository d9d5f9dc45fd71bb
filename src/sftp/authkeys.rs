//! Public keys a user may log in with over SFTP: OpenSSH `authorized_keys`
//! lines, read from `--authorized-keys DIR`, one file `USER.keys` per user.
//!
//! A line with options is taken only when every option is one that grants
//! nothing we serve anyway (`restrict`, `no-pty`, `no-port-forwarding`,
//! `no-agent-forwarding`, `no-x11-forwarding`, `no-user-rc`). Any other option
//! (`command=`, `from=`, `expiry-time=`, `cert-authority`, ...) restricts the
//! key in a way we do not enforce, so that line is skipped rather than
//! granting more than the operator wrote. Key types sunset cannot verify are
//! skipped too (with this build: everything but `ssh-ed25519`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, PublicKey};
use sunset::sshwire::read_ssh;

use crate::limits::MAX_AUTHORIZED_KEYS_FILE;

/// Options that only take away what we never offer (pty, forwarding, rc).
const HARMLESS_OPTIONS: &[&str] =
    &["restrict", "no-pty", "no-port-forwarding", "no-agent-forwarding", "no-x11-forwarding", "no-user-rc"];

/// The keys one user may log in with, as SSH wire blobs (`string type, ...`),
/// the form a client presents them in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuthorizedKeys {
    blobs: Vec<Vec<u8>>,
}

/// A line that was not taken, and why: for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    pub why: String,
}

/// Why a user's keys file could not be read.
#[derive(Debug)]
pub enum AuthKeysError {
    Read(PathBuf, io::Error),
    TooLarge(PathBuf),
}

impl fmt::Display for AuthKeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(p, e) => write!(f, "authorized keys {}: {e}", p.display()),
            Self::TooLarge(p) => {
                write!(f, "authorized keys {}: larger than {MAX_AUTHORIZED_KEYS_FILE} bytes", p.display())
            }
        }
    }
}

impl std::error::Error for AuthKeysError {}

impl AuthorizedKeys {
    /// Whether `blob` (a public key in SSH wire form, as the client presented
    /// it) is one of these keys.
    pub fn contains(&self, blob: &[u8]) -> bool {
        self.blobs.iter().any(|b| b.as_slice() == blob)
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// Parses the text of an `authorized_keys` file. Blank lines and `#` comments
/// are ignored; every other line not taken is reported in the second value.
pub fn parse(text: &str) -> (AuthorizedKeys, Vec<Skipped>) {
    let mut keys = AuthorizedKeys::default();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Ok(blob) if !keys.contains(&blob) => keys.blobs.push(blob),
            Ok(_) => {}
            Err(why) => skipped.push(Skipped { line: i + 1, why }),
        }
    }
    (keys, skipped)
}

fn parse_line(line: &str) -> Result<Vec<u8>, String> {
    // As sshd does: the line is a key, or options then a key.
    let key = match PublicKey::from_openssh(line) {
        Ok(key) => key,
        Err(_) => {
            let (opts, rest) = split_options(line);
            for opt in split_unquoted(opts, |c| c == ',') {
                let name = opt.split('=').next().unwrap_or(opt);
                if !HARMLESS_OPTIONS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    return Err(format!("option {name} is not enforced by this server; line ignored"));
                }
            }
            PublicKey::from_openssh(rest).map_err(|e| format!("not an authorized_keys line ({e})"))?
        }
    };
    let blob = key.to_bytes().map_err(|e| format!("cannot encode the key ({e})"))?;
    match read_ssh::<sunset::PubKey>(&blob, None) {
        Ok((sunset::PubKey::Unknown(_), _)) | Err(_) => Err(format!("key type {} is not supported", key.algorithm())),
        Ok(_) => Ok(blob),
    }
}

/// Splits `options key...` at the first whitespace outside double quotes.
fn split_options(line: &str) -> (&str, &str) {
    let opts = split_unquoted(line, char::is_whitespace).next().unwrap_or("");
    (opts, line[opts.len()..].trim_start())
}

/// Splits at each `sep` outside double quotes (a `\"` inside quotes does not
/// end them).
fn split_unquoted(s: &str, sep: impl Fn(char) -> bool) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in s.char_indices() {
            match c {
                '\\' if quoted => escaped = !escaped,
                '"' if !escaped => quoted = !quoted,
                c if sep(c) && !quoted => {
                    rest = Some(&s[i + c.len_utf8()..]);
                    return Some(&s[..i]);
                }
                _ => escaped = false,
            }
            if c != '\\' {
                escaped = false;
            }
        }
        rest = None;
        Some(s)
    })
}

/// Reads `DIR/USER.keys`. A missing file means no keys; a user name that
/// cannot be a file name in DIR (empty, `/`, leading `.`) has no keys.
pub fn load(dir: &Path, user: &str) -> Result<(AuthorizedKeys, Vec<Skipped>), AuthKeysError> {
    if user.is_empty() || user.starts_with('.') || user.contains(['/', '\0']) {
        return Ok((AuthorizedKeys::default(), Vec::new()));
    }
    let path = dir.join(format!("{user}.keys"));
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((AuthorizedKeys::default(), Vec::new())),
        Err(e) => return Err(AuthKeysError::Read(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_AUTHORIZED_KEYS_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| AuthKeysError::Read(path.clone(), e))?;
    if bytes.len() as u64 > MAX_AUTHORIZED_KEYS_FILE {
        return Err(AuthKeysError::TooLarge(path));
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

/// OpenSSH's SHA256 fingerprint of a key blob, for the log of a key login.
pub fn fingerprint(blob: &[u8]) -> Option<String> {
    PublicKey::from_bytes(blob).ok().map(|k| k.fingerprint(HashAlg::Sha256).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sunset::sshwire::ssh_push_vec;

    // Two ssh-ed25519 keys (ssh-keygen -t ed25519) and an RSA one.
    const ED1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALcGKUVjG4a4vpges3NCDck1Nn49Sb2URdTccJuc/XY";
    const ED2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBcQEkvmCHXN+0oc+JUh2HjC0Yy4t82TWY/tyhHahjH2";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCww0QfHCJAyn3kSAS4dW0AhHQ8p0jhg3XY5FOVQOwCRJ0gAAyTpq2cKnBVYZr6SXduZAcYG2BJtQvwoH8CSt6/PjGxlRdHJq6uF6ZlLZgTI2yYDTINZ7zE88JnAqVabL0cTS+QSUQtwdUM+XOGtoHOr265PCiKI7q/UFD10E30xw==";

    fn blob(line: &str) -> Vec<u8> {
        PublicKey::from_openssh(line).unwrap().to_bytes().unwrap()
    }

    #[test]
    fn keys_comments_and_blank_lines() {
        let text = format!("# comment\n\n{ED1} alice@laptop\n   {ED2}\n{ED1} duplicate with spaces\n");
        let (keys, skipped) = parse(&text);
        assert_eq!(skipped, vec![]);
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&blob(ED1)));
        assert!(keys.contains(&blob(ED2)));
        assert!(!keys.contains(&blob(ED2)[..20]));
        assert!(!AuthorizedKeys::default().contains(&blob(ED1)));
    }

    #[test]
    fn the_blob_is_what_sunset_presents() {
        let b = blob(ED1);
        let (pk, used) = read_ssh::<sunset::PubKey>(&b, None).unwrap();
        assert_eq!(used, b.len());
        let mut again = Vec::new();
        ssh_push_vec(&mut again, &pk).unwrap();
        assert_eq!(again, b);
    }

    #[test]
    fn restricting_options_skip_the_line_harmless_ones_do_not() {
        let text = format!(
            "command=\"/bin/echo a, b\" {ED1}\nfrom=\"10.0.0.0/8\" {ED2} a comment\nrestrict,no-pty,No-Port-Forwarding {ED2}\n\
             expiry-time=\"20300101\" {ED1}\nno-pty,command=\"x \\\" y\" {ED1}\n"
        );
        let (keys, skipped) = parse(&text);
        assert_eq!(keys.len(), 1, "{skipped:?}");
        assert!(keys.contains(&blob(ED2)));
        assert!(!keys.contains(&blob(ED1)));
        let lines: Vec<usize> = skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![1, 2, 4, 5]);
        assert!(skipped[0].why.contains("command"), "{:?}", skipped[0]);
        assert!(skipped[3].why.contains("command"), "{:?}", skipped[3]);
    }

    #[test]
    fn unsupported_types_and_garbage_are_reported() {
        let text = format!("{RSA} rsa\nssh-ed25519 not-base64\nhello\n");
        let (keys, skipped) = parse(&text);
        assert!(keys.is_empty());
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped[0].why.contains("ssh-rsa"), "{:?}", skipped[0]);
    }

    #[test]
    fn load_reads_user_files_and_refuses_odd_names() {
        let d = std::env::temp_dir().join(format!("mirrorftpd-authkeys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("alice.keys"), format!("{ED1}\n")).unwrap();
        std::fs::write(d.join(".keys"), format!("{ED2}\n")).unwrap();
        let (keys, _) = load(&d, "alice").unwrap();
        assert!(keys.contains(&blob(ED1)));
        assert!(load(&d, "bob").unwrap().0.is_empty());
        assert!(load(&d, "").unwrap().0.is_empty());
        assert!(load(&d, "../alice").unwrap().0.is_empty());
        std::fs::write(d.join("big.keys"), vec![b'#'; MAX_AUTHORIZED_KEYS_FILE as usize + 1]).unwrap();
        assert!(matches!(load(&d, "big"), Err(AuthKeysError::TooLarge(_))));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fingerprint_is_openssh_style() {
        let f = fingerprint(&blob(ED1)).unwrap();
        assert!(f.starts_with("SHA256:") && f.len() == 50, "{f}");
        assert_eq!(fingerprint(b"junk"), None);
    }
}
