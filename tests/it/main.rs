//! The one integration-test binary: each module drives the real `mirrorftpd`.

mod interop;
mod util;
