//! The one integration-test binary: each module drives the real `mirrorftpd`.

mod accounts;
mod bench;
mod faults;
mod flood;
mod ftps;
mod interop;
mod interop_upload;
mod options;
mod protocol;
mod security;
mod uploads;
mod util;
