//! The SFTP host key: an unencrypted OpenSSH Ed25519 private key file
//! (`--sftp-host-key`), created with mode 0600 when missing and never
//! regenerated when present but unreadable or corrupt.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::private::{Ed25519Keypair, KeypairData};
use ssh_key::public::{Ed25519PublicKey, KeyData};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey};
use sunset::ed25519_dalek::SigningKey;
use sunset::{KeyType, SignKey};
use zeroize::Zeroizing;

use crate::limits::MAX_HOST_KEY_FILE;

/// Comment written into a host key this server generates.
const GENERATED_COMMENT: &str = "mirrorftpd host key";

/// A loaded host key, ready to hand to every SSH session.
pub struct HostKey {
    key: SignKey,
    fingerprint: String,
    created: bool,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostKey").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// Why the host key could not be loaded or created.
#[derive(Debug)]
pub enum HostKeyError {
    /// The file exists but could not be read (permissions, I/O error).
    Read(PathBuf, io::Error),
    /// The file was missing and could not be created.
    Create(PathBuf, io::Error),
    /// Group or others may read the file (sshd refuses such keys too).
    Permissions(PathBuf, u32),
    /// Not an unencrypted OpenSSH Ed25519 private key.
    Format(PathBuf, String),
}

impl fmt::Display for HostKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(p, e) => write!(f, "host key {}: cannot read: {e}", p.display()),
            Self::Create(p, e) => write!(f, "host key {}: cannot create: {e}", p.display()),
            Self::Permissions(p, mode) => write!(
                f,
                "host key {}: permissions {mode:04o} are too open (others may read it); chmod 600 it",
                p.display()
            ),
            Self::Format(p, why) => write!(f, "host key {}: {why}", p.display()),
        }
    }
}

impl std::error::Error for HostKeyError {}

impl HostKey {
    /// Loads the key at `path`, or creates a new one there (mode 0600) when
    /// nothing is at that path. A file that is present but unreadable or not
    /// a usable key is an error: the key is never silently replaced.
    pub fn load_or_create(path: &Path) -> Result<HostKey, HostKeyError> {
        match fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(HostKeyError::Read(path.to_path_buf(), e)),
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<HostKey, HostKeyError> {
        let read_err = |e| HostKeyError::Read(path.to_path_buf(), e);
        let file = File::open(path).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(HostKeyError::Format(path.to_path_buf(), "not a regular file".into()));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(HostKeyError::Permissions(path.to_path_buf(), mode));
        }
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_HOST_KEY_FILE + 1).read_to_end(&mut text).map_err(read_err)?;
        if text.len() as u64 > MAX_HOST_KEY_FILE {
            return Err(HostKeyError::Format(path.to_path_buf(), "file too large for a key".into()));
        }
        let mut key = parse(&text).map_err(|why| HostKeyError::Format(path.to_path_buf(), why))?;
        key.created = false;
        Ok(key)
    }

    /// Generates a key and writes it to `path`, which must not exist: the
    /// text goes to a temporary file opened with O_EXCL and mode 0600, then
    /// is linked into place, which fails rather than replace anything.
    fn create(path: &Path) -> Result<HostKey, HostKeyError> {
        let create_err = |e| HostKeyError::Create(path.to_path_buf(), e);
        let (key, pem) = generate().map_err(|why| create_err(io::Error::other(why)))?;
        let name = path.file_name().ok_or_else(|| create_err(io::Error::other("not a file name")))?;
        let tmp = path.with_file_name(format!(".{}.tmp.{}", name.to_string_lossy(), std::process::id()));
        let written = write_exclusive(&tmp, pem.as_bytes()).map_err(create_err);
        let linked = written.and_then(|()| fs::hard_link(&tmp, path).map_err(create_err));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(key),
            // Someone else created it meanwhile: theirs is the key.
            Err(HostKeyError::Create(_, e)) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(e),
        }
    }

    /// The key for sunset's `ServHostkeys::hostkeys()`.
    pub fn sign_key(&self) -> &SignKey {
        &self.key
    }

    /// OpenSSH's fingerprint of the public key (`SHA256:` and unpadded base64),
    /// as `ssh-keygen -l` prints it: log it at start.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether this call created the file.
    pub fn created(&self) -> bool {
        self.created
    }
}

/// Parses the text of an OpenSSH private key file.
fn parse(text: &[u8]) -> Result<HostKey, String> {
    let pk = PrivateKey::from_openssh(text).map_err(|e| format!("not an OpenSSH private key ({e})"))?;
    if pk.is_encrypted() {
        return Err("passphrase-protected keys are not supported (ssh-keygen -p -N '' removes it)".into());
    }
    let KeypairData::Ed25519(pair) = pk.key_data() else {
        return Err(format!("{} keys are not supported, only ssh-ed25519", pk.algorithm()));
    };
    let seed = Zeroizing::new(pair.private.to_bytes());
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    if public != pair.public.0 {
        return Err("its public part does not match its private part".into());
    }
    Ok(HostKey { key: SignKey::Ed25519(signing), fingerprint: fingerprint_ed25519(public), created: true })
}

/// A new key and its OpenSSH private key text.
fn generate() -> Result<(HostKey, Zeroizing<String>), String> {
    let key = SignKey::generate(KeyType::Ed25519, None).map_err(|e| e.to_string())?;
    let SignKey::Ed25519(signing) = &key else {
        return Err("sunset generated a key of another type".into());
    };
    let public = signing.verifying_key().to_bytes();
    let mut both = Zeroizing::new([0u8; Ed25519Keypair::BYTE_SIZE]);
    both[..32].copy_from_slice(&signing.to_bytes());
    both[32..].copy_from_slice(&public);
    let pair = Ed25519Keypair::from_bytes(&both).map_err(|e| e.to_string())?;
    let pem = PrivateKey::new(KeypairData::Ed25519(pair), GENERATED_COMMENT)
        .and_then(|k| k.to_openssh(LineEnding::LF))
        .map_err(|e| e.to_string())?;
    Ok((HostKey { key, fingerprint: fingerprint_ed25519(public), created: true }, pem))
}

fn fingerprint_ed25519(public: [u8; 32]) -> String {
    PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(public)), "").fingerprint(HashAlg::Sha256).to_string()
}

fn write_exclusive(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mirrorftpd-hostkey-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_when_missing_then_loaded_unchanged() {
        let d = tempdir("create");
        let p = d.join("host_ed25519");
        let k1 = HostKey::load_or_create(&p).unwrap();
        assert!(k1.created());
        assert!(k1.fingerprint().starts_with("SHA256:"), "{}", k1.fingerprint());
        assert_eq!(k1.fingerprint().len(), 7 + 43);
        let meta = fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"), "{text}");
        // No temporary file left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);

        let k2 = HostKey::load_or_create(&p).unwrap();
        assert!(!k2.created());
        assert_eq!(k1.fingerprint(), k2.fingerprint());
        assert!(k1.sign_key() == k2.sign_key());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corrupt_or_open_keys_are_errors_and_left_alone() {
        let d = tempdir("corrupt");
        let p = d.join("key");
        fs::write(&p, "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let e = HostKey::load_or_create(&p).unwrap_err();
        assert!(matches!(e, HostKeyError::Format(..)), "{e}");
        assert!(fs::read_to_string(&p).unwrap().contains("garbage"), "the file was replaced");

        fs::write(&p, "").unwrap();
        assert!(matches!(HostKey::load_or_create(&p).unwrap_err(), HostKeyError::Format(..)));

        let good = d.join("good");
        HostKey::load_or_create(&good).unwrap();
        fs::set_permissions(&good, fs::Permissions::from_mode(0o644)).unwrap();
        let e = HostKey::load_or_create(&good).unwrap_err();
        assert!(matches!(e, HostKeyError::Permissions(_, 0o644)), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_directory_in_the_way_is_an_error() {
        let d = tempdir("dir");
        let e = HostKey::load_or_create(&d).unwrap_err();
        assert!(matches!(e, HostKeyError::Format(..)), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }
}
