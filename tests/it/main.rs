//! The one integration-test binary: each module drives the real `mirrorftpd`.

mod accounts;
mod bench;
mod control;
mod exactness;
mod faults;
mod flood;
mod ftps;
mod hidden;
mod interop;
mod interop_upload;
mod limits;
mod listen;
mod observability;
mod operations;
mod options;
mod passwords;
mod privileges;
mod protocol;
mod proxy;
mod proxy_haproxy;
mod readme;
mod security;
mod settime;
mod ssh_adapter;
mod uploads;
mod util;
