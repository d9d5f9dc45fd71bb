//! The one integration-test binary: each module drives the real `mirrorftpd`.

mod accounts;
mod bench;
mod disk;
mod faults;
mod flood;
mod ftps;
mod interop;
mod interop_upload;
mod limits;
mod observability;
mod operations;
mod options;
mod privileges;
mod protocol;
mod proxy;
mod proxy_haproxy;
mod security;
mod uploads;
mod util;
