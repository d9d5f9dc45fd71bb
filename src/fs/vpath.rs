//! The client's virtual path: absolute, normalised bytes, resolved later under the jail root.
//!
//! A `VPath` never touches the file system. Joining is purely lexical: `.` is dropped, `..`
//! pops a component and is clamped at the root, repeated `/` collapse. Bytes other than `/`
//! and NUL (including `\`, CR, LF and non-UTF-8 bytes) are ordinary name bytes.

use std::fmt;

/// Longest virtual path accepted, in bytes (Linux `PATH_MAX`).
pub const MAX_PATH: usize = 4096;
/// Longest single path component accepted, in bytes (Linux `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// An absolute, normalised virtual path: starts with `/`, has no `.`, `..` or empty
/// components, and no trailing `/` except for the root itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VPath(Vec<u8>);

/// Why a client's path argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The argument contains a NUL byte.
    Nul,
    /// The result is longer than [`MAX_PATH`], or a component is longer than [`MAX_NAME`].
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Nul => "File name not allowed",
            PathError::TooLong => "File name too long",
        })
    }
}

impl std::error::Error for PathError {}

impl VPath {
    /// The root, `/`.
    pub fn root() -> VPath {
        VPath(b"/".to_vec())
    }

    /// The path's bytes, always starting with `/`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Resolves `arg` (absolute, or relative to `self`) lexically into a new normalised path.
    pub fn join(&self, arg: &[u8]) -> Result<VPath, PathError> {
        if memchr::memchr(0, arg).is_some() {
            return Err(PathError::Nul);
        }
        let mut out: Vec<u8> = Vec::with_capacity(self.0.len() + arg.len() + 1);
        if arg.first() != Some(&b'/') && !self.is_root() {
            out.extend_from_slice(&self.0);
        }
        for comp in arg.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => {
                    let cut = memchr::memrchr(b'/', &out).unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    if name.len() > MAX_NAME {
                        return Err(PathError::TooLong);
                    }
                    out.push(b'/');
                    out.extend_from_slice(name);
                }
            }
        }
        if out.is_empty() {
            out.push(b'/');
        }
        if out.len() > MAX_PATH {
            return Err(PathError::TooLong);
        }
        Ok(VPath(out))
    }

    /// The directory containing this path; the root is its own parent.
    pub fn parent(&self) -> VPath {
        match memchr::memrchr(b'/', &self.0) {
            Some(0) | None => VPath::root(),
            Some(i) => VPath(self.0[..i].to_vec()),
        }
    }

    /// The last component; empty for the root.
    pub fn file_name(&self) -> &[u8] {
        match memchr::memrchr(b'/', &self.0) {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// The path without its leading `/` (`.` for the root): what `openat2` gets under the root fd.
    pub fn relative(&self) -> &[u8] {
        if self.is_root() { b"." } else { &self.0[1..] }
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0.len() <= 1
    }

    /// The components, root first; empty for the root.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }
}

impl Default for VPath {
    fn default() -> VPath {
        VPath::root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(base: &[u8], arg: &[u8]) -> Vec<u8> {
        VPath::root().join(base).expect("base").join(arg).expect("join").as_bytes().to_vec()
    }

    #[test]
    fn joins_relative_and_absolute() {
        assert_eq!(j(b"/", b"pub"), b"/pub");
        assert_eq!(j(b"/pub", b"debian/dists"), b"/pub/debian/dists");
        assert_eq!(j(b"/pub", b"/etc"), b"/etc");
        assert_eq!(j(b"/pub", b""), b"/pub");
        assert_eq!(j(b"/pub", b"/"), b"/");
    }

    #[test]
    fn dots_and_slashes_normalise() {
        assert_eq!(j(b"/a/b", b"./c/./d/"), b"/a/b/c/d");
        assert_eq!(j(b"/a/b", b".."), b"/a");
        assert_eq!(j(b"/a/b", b"../../.."), b"/");
        assert_eq!(j(b"/", b"/../../etc"), b"/etc");
        assert_eq!(j(b"/a", b"..//..//x//y"), b"/x/y");
        assert_eq!(j(b"/", b"//a///b//"), b"/a/b");
        assert_eq!(j(b"/a", b"..."), b"/a/...");
        assert_eq!(j(b"/a", b".hidden/x"), b"/a/.hidden/x");
    }

    #[test]
    fn odd_bytes_are_plain_name_bytes() {
        assert_eq!(j(b"/", b"a\\..\\b"), b"/a\\..\\b");
        assert_eq!(j(b"/", b"caf\xe9"), b"/caf\xe9");
        assert_eq!(j(b"/", b"two\nlines\r"), b"/two\nlines\r");
        assert_eq!(j(b"/", b" spaced name "), b"/ spaced name ");
    }

    #[test]
    fn nul_and_length_limits() {
        let r = VPath::root();
        assert_eq!(r.join(b"a\0b"), Err(PathError::Nul));
        assert_eq!(r.join(&[b'x'; 256]), Err(PathError::TooLong));
        assert!(r.join(&[b'x'; 255]).is_ok());
        let mut long = Vec::new();
        for _ in 0..20 {
            long.extend_from_slice(&[b'y'; 250]);
            long.push(b'/');
        }
        assert_eq!(r.join(&long), Err(PathError::TooLong));
        // Long but popped back below the limit is fine.
        let mut popped = long.clone();
        for _ in 0..20 {
            popped.extend_from_slice(b"../");
        }
        popped.extend_from_slice(b"ok");
        assert_eq!(r.join(&popped).expect("popped").as_bytes(), b"/ok");
        assert_eq!(PathError::TooLong.to_string(), "File name too long");
    }

    #[test]
    fn parent_name_relative() {
        let p = VPath::root().join(b"/a/b/c").expect("join");
        assert_eq!(p.parent().as_bytes(), b"/a/b");
        assert_eq!(p.file_name(), b"c");
        assert_eq!(p.relative(), b"a/b/c");
        assert!(!p.is_root());
        let a = VPath::root().join(b"a").expect("join");
        assert_eq!(a.parent(), VPath::root());
        let r = VPath::root();
        assert!(r.is_root());
        assert_eq!(r.parent(), VPath::root());
        assert_eq!(r.file_name(), b"");
        assert_eq!(r.relative(), b".");
        assert_eq!(p.components().collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(r.components().count(), 0);
    }
}
