//! Password hashes: verify Argon2 PHC strings and SHA-crypt (`$6$`, `$5$`) hashes, check at
//! load time that a stored hash is one of those, make new Argon2id ones, and spend the same
//! time on unknown users.
//!
//! Both comparisons are constant-time (argon2 through the PHC `Output` type's `PartialEq`,
//! sha-crypt with `ct_eq`), so nothing here compares secrets itself. Verifying is slow on
//! purpose (tens of milliseconds): call it from a helper thread, never from a reactor.
//!
//! Memory: Argon2 needs a work area of its memory cost (19 MiB at the default parameters).
//! Each helper thread owns one [`WorkArea`], grown to the largest cost it has verified (at
//! most `limits::ARGON2_MAX_MEMORY_KIB`, which [`check`] enforces when the users file is
//! loaded) and reused for every later check, so the password checks hold at most
//! `--auth-threads` areas however many logins fail. SHA-crypt needs a few hundred bytes.

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use sha_crypt::{PasswordHashRef, PasswordVerifier, ShaCrypt};

use crate::limits;

/// What a users file's hash field may be, for error messages.
pub const SUPPORTED: &str = "supported: an Argon2 PHC string ($argon2id$, $argon2i$, $argon2d$; \
     `mirrorftpd passwd` prints one), a SHA-crypt hash ($6$ or $5$; `mkpasswd -m sha-512`, \
     `openssl passwd -6`), or '!' to disable the account";

/// Argon2id, default parameters (v19, m=19456, t=2, p=1) and a fixed salt, of the password
/// `mirrorftpd dummy password`: [`verify_dummy`] verifies against it.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bWlycm9yZnRwZC1kdW1teQ$5CXIVOo/oFLYkc+EA1Cb+A3tDkvl+4atCz2rtulVBfE";

/// Why a new hash could not be made.
#[derive(Debug)]
pub enum HashError {
    /// The system's random number generator failed (no salt).
    Random(String),
    /// The hashing itself failed (for example a password beyond Argon2's length limit).
    Hash(String),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Random(e) => write!(f, "cannot get random bytes for a salt: {e}"),
            HashError::Hash(e) => write!(f, "cannot hash the password: {e}"),
        }
    }
}

impl std::error::Error for HashError {}

/// One helper thread's Argon2 work area: allocated at the first Argon2 check, grown only when a
/// hash asks for more memory than any before (up to `limits::ARGON2_MAX_MEMORY_KIB`), and
/// reused by every check after that. Not shared: each helper thread owns one.
#[derive(Default)]
pub struct WorkArea {
    blocks: Vec<Block>,
}

impl WorkArea {
    /// An empty area (nothing allocated until the first Argon2 check).
    pub const fn new() -> WorkArea {
        WorkArea { blocks: Vec::new() }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.blocks.len() * Block::SIZE
    }

    /// The first `n` blocks, growing the area to `n` if it is smaller; `None` when `n` is over
    /// the limit or the memory cannot be had.
    fn blocks(&mut self, n: usize) -> Option<&mut [Block]> {
        if n > limits::ARGON2_MAX_MEMORY_KIB as usize {
            return None;
        }
        if self.blocks.len() < n {
            // The old area goes back before the new one is taken.
            self.blocks = Vec::new();
            let mut grown = Vec::new();
            grown.try_reserve_exact(n).ok()?;
            grown.resize(n, Block::new());
            self.blocks = grown;
        }
        self.blocks.get_mut(..n)
    }
}

impl fmt::Debug for WorkArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkArea({} KiB)", self.bytes() / 1024)
    }
}

/// Checks that `stored`, a users file's hash field, is a hash [`verify`] can match (or `!`/`*`,
/// a disabled account). The error says what is wrong and lists what is supported.
pub fn check(stored: &str) -> Result<(), String> {
    if stored == "!" || stored == "*" {
        Ok(())
    } else if is_argon2(stored) {
        parse_argon2(stored).map(|_| ()).map_err(|e| format!("{e} ({SUPPORTED})"))
    } else if is_sha_crypt(stored) {
        check_sha_crypt(stored).map_err(|e| format!("{e} ({SUPPORTED})"))
    } else {
        Err(format!("{} is not a supported password hash ({SUPPORTED})", describe(stored)))
    }
}

/// What an unsupported hash field looks like, for [`check`]'s message (never the field itself:
/// it may be a plaintext password).
fn describe(stored: &str) -> &'static str {
    let known: [(&str, &str); 7] = [
        ("$1$", "an MD5-crypt hash ($1$)"),
        ("$2a$", "a bcrypt hash ($2a$)"),
        ("$2b$", "a bcrypt hash ($2b$)"),
        ("$2y$", "a bcrypt hash ($2y$)"),
        ("$y$", "a yescrypt hash ($y$)"),
        ("$7$", "an scrypt hash ($7$)"),
        ("$argon2", "an Argon2 hash of an unknown variant"),
    ];
    match known.iter().find(|(prefix, _)| stored.starts_with(prefix)) {
        Some(&(_, what)) => what,
        None if stored.starts_with('$') => "a hash of an unknown '$id$' format",
        None => "plain text or an unknown format",
    }
}

fn is_argon2(stored: &str) -> bool {
    ["$argon2id$", "$argon2i$", "$argon2d$"].iter().any(|p| stored.starts_with(p))
}

fn is_sha_crypt(stored: &str) -> bool {
    stored.starts_with("$6$") || stored.starts_with("$5$")
}

/// Whether `password` matches `stored`: an Argon2 PHC string (`$argon2id$`, `$argon2i$`,
/// `$argon2d$`), or a SHA-512/SHA-256 crypt hash (`$6$...`, `$5$...`, with or without
/// `rounds=`). Anything else (empty, `*`, `!`, `x`, a malformed or truncated hash, an Argon2
/// cost over the limit) is `false`. Argon2 works in `area`.
pub fn verify(area: &mut WorkArea, password: &[u8], stored: &str) -> bool {
    if is_argon2(stored) {
        parse_argon2(stored).is_ok_and(|h| verify_argon2(area, password, &h))
    } else if is_sha_crypt(stored) {
        ShaCrypt::default().verify_password(password, stored).is_ok()
    } else {
        false
    }
}

/// A parsed Argon2 PHC string: everything a verification needs.
struct Argon2Hash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Salt,
    output: Output,
}

/// Parses an Argon2 PHC string the way [`verify`] uses it; the error says why it cannot be
/// verified.
fn parse_argon2(stored: &str) -> Result<Argon2Hash, String> {
    let hash = PasswordHash::new(stored).map_err(|e| format!("malformed Argon2 hash: {e}"))?;
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| format!("malformed Argon2 hash: {e}"))?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(|e| format!("Argon2 version {v}: {e}"))?,
        None => Version::default(),
    };
    let params = Params::try_from(&hash).map_err(|e| format!("bad Argon2 parameters: {e}"))?;
    if params.m_cost() > limits::ARGON2_MAX_MEMORY_KIB {
        return Err(format!(
            "Argon2 memory cost m={} KiB is over the limit of {} KiB",
            params.m_cost(),
            limits::ARGON2_MAX_MEMORY_KIB
        ));
    }
    let salt = hash.salt.ok_or("Argon2 hash without a salt")?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(format!("Argon2 salt shorter than {} bytes", argon2::MIN_SALT_LEN));
    }
    let output = hash.hash.ok_or("Argon2 hash without its hash value")?;
    Ok(Argon2Hash { algorithm, version, params, salt, output })
}

fn verify_argon2(area: &mut WorkArea, password: &[u8], h: &Argon2Hash) -> bool {
    let Some(memory) = area.blocks(h.params.block_count()) else {
        return false;
    };
    let mut buf = [0u8; Output::MAX_LENGTH];
    let Some(out) = buf.get_mut(..h.output.len()) else {
        return false;
    };
    // The algorithm, version and parameters come from the stored hash.
    let argon2 = Argon2::new(h.algorithm, h.version, h.params.clone());
    if argon2.hash_password_into_with_memory(password, &h.salt, out, memory).is_err() {
        return false;
    }
    Output::new(out).is_ok_and(|computed| computed == h.output)
}

/// Checks the shape of a `$6$`/`$5$` hash as the sha-crypt crate reads it:
/// `$id$[rounds=N$]salt$hash`, N in 1000..=999999999, a hash of 86 (SHA-512) or 43 (SHA-256)
/// characters of `./0-9A-Za-z`.
fn check_sha_crypt(stored: &str) -> Result<(), String> {
    let bad = |why: &str| format!("malformed SHA-crypt hash: {why}");
    let shape = "expected $6$[rounds=N$]salt$hash";
    let h = PasswordHashRef::new(stored).map_err(|_| bad(shape))?;
    let len = if h.id() == "6" { 86 } else { 43 };
    let mut fields = h.fields();
    let mut next = fields.next().ok_or_else(|| bad(shape))?;
    if next.as_str().starts_with("rounds=") {
        sha_crypt::Params::from_str(next.as_str()).map_err(|_| bad("rounds must be 1000 to 999999999"))?;
        next = fields.next().ok_or_else(|| bad(shape))?;
    }
    if next.as_str().is_empty() {
        return Err(bad("empty salt"));
    }
    let hash = fields.next().ok_or_else(|| bad(shape))?.as_str();
    if hash.len() != len || !hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/') {
        return Err(bad(&format!("the hash part must be {len} characters of ./0-9A-Za-z")));
    }
    if fields.next().is_some() {
        return Err(bad(shape));
    }
    Ok(())
}

/// A new Argon2id PHC string for `password`, with a fresh random 16-byte salt and the argon2
/// crate's recommended parameters (Argon2id v19, m=19456 KiB, t=2, p=1).
pub fn hash_argon2id(password: &[u8]) -> Result<String, HashError> {
    hash_argon2id_with(password, Params::default())
}

/// [`hash_argon2id`] with explicit parameters (cheap ones keep the unit tests fast).
fn hash_argon2id_with(password: &[u8], params: Params) -> Result<String, HashError> {
    let salt = argon2::password_hash::try_generate_salt().map_err(|e| HashError::Random(e.to_string()))?;
    let argon2 = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = argon2.hash_password_with_salt(password, &salt).map_err(|e| HashError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Spends the time (and the work area) of verifying a default-parameter Argon2id hash: it
/// verifies `password` against a fixed one, so that a login for an unknown user or a disabled
/// account costs what a known one does.
pub fn verify_dummy(area: &mut WorkArea, password: &[u8]) {
    std::hint::black_box(verify(area, std::hint::black_box(password), DUMMY_HASH));
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `mkpasswd -m sha-512 -S saltsalt secret` (openssl passwd -6 -salt saltsalt
    // secret gives the same), `mkpasswd -m sha-256 ...`, `-R 10000`, `-R 1000`, and
    // `openssl passwd -6 -salt 'rounds=2000$saltsalt' secret`.
    const SHA512: &str =
        "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA256: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";
    const SHA512_ROUNDS: &str = "$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8aUe9p55hcAxeGcu58sm3u.";
    const SHA512_ROUNDS_2000: &str = "$6$rounds=2000$saltsalt$GBImuhotpiUgeciq/ZS6UaMklAGJMK25wd5Tacv1I0CcSmxHOQQLpmVKYRPIU6LoFrr4iPAAmsqUTjBoZ.Fwr/";
    const SHA512_ROUNDS_5000: &str = "$6$rounds=5000$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const SHA256_ROUNDS: &str = "$5$rounds=1000$saltsalt$eKLZU9t9OoPWrqOQsoTIKG0aYkZ5rGOoOQhiIvoSWX2";

    // Made with the reference implementation (Debian's `argon2` tool):
    // `echo -n secret | argon2 saltsaltsalt -id -t 1 -k 64 -p 1 -e` (and -i, -d, -v 10,
    // -p 2 -l 16).
    const ARGON2ID: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78";
    const ARGON2I: &str = "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$7TaUmW3HZOQXgkKGk4zbBF3bZq2R5kfOnhUsl/jH4Vs";
    const ARGON2D: &str = "$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$jJTr27naLk3313s0KHIB/FP6hZ+Z4l0HAhQgLAD/m+M";
    const ARGON2ID_V16: &str =
        "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$yvW9LC6br+BmljUmNoiIXJ6woZc408UQ3iOrw49e3uc";
    const ARGON2ID_SHORT: &str = "$argon2id$v=19$m=64,t=1,p=2$c2FsdHNhbHRzYWx0$RxT10kPc1HvILiGwBOZRTQ";

    /// `verify` with a fresh work area.
    fn verify_new(password: &[u8], stored: &str) -> bool {
        verify(&mut WorkArea::new(), password, stored)
    }

    /// Cheap Argon2id parameters for tests: 64 KiB, one pass.
    fn cheap() -> Params {
        Params::new(64, 1, 1, None).expect("valid params")
    }

    #[test]
    fn sha_crypt_vectors() {
        for h in [SHA512, SHA256, SHA512_ROUNDS, SHA512_ROUNDS_2000, SHA512_ROUNDS_5000, SHA256_ROUNDS] {
            assert!(verify_new(b"secret", h), "{h}");
            assert!(!verify_new(b"secret\n", h), "{h}");
        }
    }

    #[test]
    fn argon2_vectors() {
        for h in [ARGON2ID, ARGON2I, ARGON2D, ARGON2ID_V16, ARGON2ID_SHORT] {
            assert!(verify_new(b"secret", h), "{h}");
            assert!(!verify_new(b"secreT", h), "{h}");
            assert!(!verify_new(b"", h), "{h}");
        }
    }

    #[test]
    fn round_trip_cheap() {
        let h = hash_argon2id_with(b"correct horse", cheap()).expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_new(b"correct horse", &h));
        assert!(!verify_new(b"correct horsf", &h));
        assert!(!verify_new(b"", &h));
        let again = hash_argon2id_with(b"correct horse", cheap()).expect("hash");
        assert_ne!(h, again, "fresh salt each time");
        let empty = hash_argon2id_with(b"", cheap()).expect("hash");
        assert!(verify_new(b"", &empty) && !verify_new(b"x", &empty));
    }

    /// The one test that pays for default parameters (about 2 s each in a debug build).
    #[test]
    fn default_parameters() {
        let h = hash_argon2id(b"hunter42").expect("hash");
        let parsed = PasswordHash::new(&h).expect("PHC string");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(parsed.salt.map(|s| s.as_ref().len()), Some(16));
        assert!(verify_new(b"hunter42", &h));
        // The dummy hash uses the crate's current defaults, so verify_dummy costs what a real
        // verification does; and it is a real hash of its password.
        let dummy = PasswordHash::new(DUMMY_HASH).expect("PHC string");
        let (d, def) = (Params::try_from(&dummy).expect("params"), Params::default());
        assert_eq!((d.m_cost(), d.t_cost(), d.p_cost()), (def.m_cost(), def.t_cost(), def.p_cost()));
        assert_eq!((def.m_cost(), def.t_cost(), def.p_cost()), (19456, 2, 1));
        assert!(verify_new(b"mirrorftpd dummy password", DUMMY_HASH));
    }

    /// Hash fields no login can match (`*`, `!` and `!!` are disabled accounts).
    fn malformed() -> Vec<String> {
        let cut = |h: &str, n: usize| h[..h.len() - n].to_string();
        vec![
            String::new(),
            "*".into(),
            "!".into(),
            "!!".into(),
            "x".into(),
            "secret".into(),
            "$".into(),
            "$$".into(),
            "$6$".into(),
            "$6$$".into(),
            "$6$saltsalt".into(),
            "$6$saltsalt$".into(),
            "$5$".into(),
            "$6$rounds=10$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1".into(),
            "$6$rounds=abc$saltsalt$x".into(),
            "$6$saltsalt$TVLl!!!!".into(),
            format!("{SHA512}$extra"),
            format!("!{SHA512}"),
            cut(SHA512, 1),
            cut(SHA256, 10),
            "$1$saltsalt$abcdefghijklmnopqrstuv".into(),
            "$2b$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234".into(),
            "$argon2id$".into(),
            "$argon2id$v=19$".into(),
            "$argon2id$v=19$m=64,t=1,p=1$".into(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0".into(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$".into(),
            "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=19$m=64,t=1,p=1$c2Fs$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3M!!!!".into(),
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            "$argon2id$v=19$m=2097152,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
            cut(ARGON2ID, 1),
            format!(" {ARGON2ID}"),
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78$x".into(),
            "$6$\u{e9}\u{e9}$\u{e9}".into(),
            "$argon2id$\u{e9}".into(),
            // Over limits::ARGON2_MAX_MEMORY_KIB (512 MiB).
            "$argon2id$v=19$m=524288,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78".into(),
        ]
    }

    #[test]
    fn malformed_is_false() {
        for h in &malformed() {
            assert!(!verify_new(b"secret", h), "{h:?}");
            assert!(!verify_new(b"", h), "{h:?}");
        }
    }

    #[test]
    fn check_accepts_what_verify_can_match() {
        for h in [SHA512, SHA256, SHA512_ROUNDS, SHA512_ROUNDS_2000, SHA512_ROUNDS_5000, SHA256_ROUNDS] {
            assert_eq!(check(h), Ok(()), "{h}");
        }
        for h in [ARGON2ID, ARGON2I, ARGON2D, ARGON2ID_V16, ARGON2ID_SHORT, DUMMY_HASH] {
            assert_eq!(check(h), Ok(()), "{h}");
        }
        let made = hash_argon2id_with(b"pw", cheap()).expect("hash");
        assert_eq!(check(&made), Ok(()));
        assert_eq!(check("!"), Ok(()), "a disabled account");
        assert_eq!(check("*"), Ok(()), "a disabled account");
    }

    #[test]
    fn check_refuses_what_no_password_matches() {
        for h in malformed().iter().filter(|h| *h != "!" && *h != "*") {
            let e = check(h).expect_err(h);
            assert!(e.ends_with(&format!("({SUPPORTED})")), "{h:?}: {e}");
        }
    }

    #[test]
    fn check_says_what_is_wrong_without_echoing_the_field() {
        let e = |h: &str| check(h).expect_err(h);
        assert!(e("hunter2").starts_with("plain text or an unknown format is not a supported password hash"));
        assert!(!e("hunter2").contains("hunter2"), "a plaintext password is never repeated");
        assert!(e("$1$saltsalt$abcdefghijklmnopqrstuv").starts_with("an MD5-crypt hash ($1$) is not"));
        assert!(e("$2b$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234").starts_with("a bcrypt hash ($2b$)"));
        assert!(e("$y$j9T$abc$def").starts_with("a yescrypt hash ($y$)"));
        let big = "$argon2id$v=19$m=524288,t=1,p=1$c2FsdHNhbHRzYWx0$Sm3MnLdCFk0Af+croKgebRoqqmhbKd88iiW3yUOXn78";
        assert!(e(big).starts_with("Argon2 memory cost m=524288 KiB is over the limit of 262144 KiB"), "{}", e(big));
        assert!(e("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0").starts_with("Argon2 hash without its hash value"));
        assert!(e(&SHA512[..SHA512.len() - 1]).starts_with("malformed SHA-crypt hash: the hash part must be 86"));
        assert!(e("$6$rounds=10$s$x").starts_with("malformed SHA-crypt hash: rounds must be"));
        assert!(SUPPORTED.contains("$argon2id$") && SUPPORTED.contains("$6$") && SUPPORTED.contains("'!'"));
    }

    /// One area per thread: it grows to the largest cost seen and is reused, never regrown for
    /// a smaller one; a cost over the limit takes nothing.
    #[test]
    fn work_area_is_reused() {
        let mut area = WorkArea::new();
        assert_eq!(area.bytes(), 0);
        let m128 = hash_argon2id_with(b"pw", Params::new(128, 1, 1, None).expect("params")).expect("hash");
        assert!(verify(&mut area, b"secret", ARGON2ID));
        assert_eq!(area.bytes(), 64 << 10);
        assert!(verify(&mut area, b"pw", &m128) && !verify(&mut area, b"px", &m128));
        assert_eq!(area.bytes(), 128 << 10);
        let ptr = area.blocks.as_ptr();
        for _ in 0..3 {
            assert!(verify(&mut area, b"secret", ARGON2ID) && !verify(&mut area, b"x", ARGON2ID));
            assert!(verify(&mut area, b"secret", ARGON2ID_SHORT));
        }
        assert_eq!((area.bytes(), area.blocks.as_ptr()), (128 << 10, ptr), "the same area, not a new one");
        assert!(area.blocks(limits::ARGON2_MAX_MEMORY_KIB as usize + 1).is_none());
        assert_eq!(area.bytes(), 128 << 10);
        // Leftovers of an earlier check change nothing.
        assert!(verify(&mut area, b"pw", &m128) && verify(&mut area, b"secret", ARGON2ID));
    }

    #[test]
    fn dummy_never_panics() {
        verify_dummy(&mut WorkArea::new(), &[0xff; 300]);
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            HashError::Random("no entropy".into()).to_string(),
            "cannot get random bytes for a salt: no entropy"
        );
        assert!(HashError::Hash("x".into()).to_string().starts_with("cannot hash"));
    }
}
