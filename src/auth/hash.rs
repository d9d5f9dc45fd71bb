//! Password hashes: verify Argon2 PHC strings and SHA-crypt (`$6$`, `$5$`) hashes, make new
//! Argon2id ones, and spend the same time on unknown users.
//!
//! Both crates compare the computed hash with the stored one in constant time (argon2 through
//! the PHC `Output` type's `PartialEq`, sha-crypt with `ct_eq`), so nothing here compares
//! secrets itself. Verifying is slow on purpose (tens of milliseconds): call it from a helper
//! thread, never from a reactor.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, Params};
use sha_crypt::ShaCrypt;
use std::fmt;

/// Largest Argon2 memory cost (in KiB) that [`verify`] accepts: 1 GiB. A stored hash asking
/// for more is refused rather than letting one login allocate without bound.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;

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

/// Whether `password` matches `stored`: an Argon2 PHC string (`$argon2id$`, `$argon2i$`,
/// `$argon2d$`), or a SHA-512/SHA-256 crypt hash (`$6$...`, `$5$...`, with or without
/// `rounds=`). Anything else (empty, `*`, `!`, `x`, a malformed or truncated hash) is `false`.
pub fn verify(password: &[u8], stored: &str) -> bool {
    if stored.starts_with("$argon2id$") || stored.starts_with("$argon2i$") || stored.starts_with("$argon2d$") {
        verify_argon2(password, stored)
    } else if stored.starts_with("$6$") || stored.starts_with("$5$") {
        ShaCrypt::default().verify_password(password, stored).is_ok()
    } else {
        false
    }
}

fn verify_argon2(password: &[u8], stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    match Params::try_from(&hash) {
        Ok(params) if params.m_cost() <= MAX_ARGON2_MEMORY_KIB => {}
        _ => return false,
    }
    // The algorithm, version and parameters come from `hash`, not from this instance.
    Argon2::default().verify_password(password, &hash).is_ok()
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

/// Spends the time of verifying a default-parameter Argon2id hash (it verifies `password`
/// against a fixed one), so that a login for an unknown user costs what a known one does.
pub fn verify_dummy(password: &[u8]) {
    std::hint::black_box(verify(std::hint::black_box(password), DUMMY_HASH));
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

    /// Cheap Argon2id parameters for tests: 64 KiB, one pass.
    fn cheap() -> Params {
        Params::new(64, 1, 1, None).expect("valid params")
    }

    #[test]
    fn sha_crypt_vectors() {
        for h in [SHA512, SHA256, SHA512_ROUNDS, SHA512_ROUNDS_2000, SHA512_ROUNDS_5000, SHA256_ROUNDS] {
            assert!(verify(b"secret", h), "{h}");
            assert!(!verify(b"secret\n", h), "{h}");
        }
    }

    #[test]
    fn argon2_vectors() {
        for h in [ARGON2ID, ARGON2I, ARGON2D, ARGON2ID_V16, ARGON2ID_SHORT] {
            assert!(verify(b"secret", h), "{h}");
            assert!(!verify(b"secreT", h), "{h}");
            assert!(!verify(b"", h), "{h}");
        }
    }

    #[test]
    fn round_trip_cheap() {
        let h = hash_argon2id_with(b"correct horse", cheap()).expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify(b"correct horse", &h));
        assert!(!verify(b"correct horsf", &h));
        assert!(!verify(b"", &h));
        let again = hash_argon2id_with(b"correct horse", cheap()).expect("hash");
        assert_ne!(h, again, "fresh salt each time");
        let empty = hash_argon2id_with(b"", cheap()).expect("hash");
        assert!(verify(b"", &empty) && !verify(b"x", &empty));
    }

    /// The one test that pays for default parameters (about 2 s each in a debug build).
    #[test]
    fn default_parameters() {
        let h = hash_argon2id(b"hunter42").expect("hash");
        let parsed = PasswordHash::new(&h).expect("PHC string");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(parsed.salt.map(|s| s.as_ref().len()), Some(16));
        assert!(verify(b"hunter42", &h));
        // The dummy hash uses the crate's current defaults, so verify_dummy costs what a real
        // verification does; and it is a real hash of its password.
        let dummy = PasswordHash::new(DUMMY_HASH).expect("PHC string");
        let (d, def) = (Params::try_from(&dummy).expect("params"), Params::default());
        assert_eq!((d.m_cost(), d.t_cost(), d.p_cost()), (def.m_cost(), def.t_cost(), def.p_cost()));
        assert_eq!((def.m_cost(), def.t_cost(), def.p_cost()), (19456, 2, 1));
        assert!(verify(b"mirrorftpd dummy password", DUMMY_HASH));
    }

    #[test]
    fn malformed_is_false() {
        let cut = |h: &str, n: usize| h[..h.len() - n].to_string();
        let bad = [
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
        ];
        for h in &bad {
            assert!(!verify(b"secret", h), "{h:?}");
            assert!(!verify(b"", h), "{h:?}");
        }
    }

    #[test]
    fn dummy_never_panics() {
        verify_dummy(&[0xff; 300]);
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
