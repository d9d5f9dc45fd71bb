//! The one integration-test binary: each module drives the real `mirrorftpd`.

mod bench;
mod faults;
mod interop;
mod options;
mod protocol;
mod security;
mod util;
