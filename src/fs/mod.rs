//! The served tree: virtual paths, kernel-enforced jail resolution, listings, globbing, time.
//!
//! Nothing here resolves a path against the process's own working directory: every client
//! path is a [`vpath::VPath`] resolved under the root fd held by a [`jail::Jail`].

pub mod facts;
pub mod glob;
pub mod jail;
pub mod links;
pub mod listing;
pub mod time;
pub mod vpath;
pub mod write;

pub use jail::{FileKind, FsError, Jail, Stat};
pub use vpath::{PathError, VPath};

/// Temporary directories for the unit tests of this module: unique, removed on drop.
#[cfg(test)]
pub(crate) mod testdir {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A fresh directory under `std::env::temp_dir()`, deleted with everything in it on drop.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> TempDir {
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("mirrorftpd-{tag}-{}-{n}-{nanos}", std::process::id());
            let path = std::env::temp_dir().join(name);
            std::fs::create_dir(&path).expect("create temp dir");
            TempDir(path)
        }

        #[allow(dead_code)]
        pub fn path(&self) -> &Path {
            &self.0
        }

        /// `rel` (raw bytes) under this directory.
        pub fn at(&self, rel: &[u8]) -> PathBuf {
            self.0.join(OsStr::from_bytes(rel))
        }

        pub fn file(&self, rel: &[u8], contents: &[u8]) -> PathBuf {
            let p = self.at(rel);
            std::fs::write(&p, contents).expect("write file");
            p
        }

        pub fn dir(&self, rel: &[u8]) -> PathBuf {
            let p = self.at(rel);
            std::fs::create_dir_all(&p).expect("create dir");
            p
        }

        pub fn symlink(&self, target: &[u8], rel: &[u8]) -> PathBuf {
            let p = self.at(rel);
            std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).expect("symlink");
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
