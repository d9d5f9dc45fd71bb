//! mirrorftpd: an FTP server for large public mirror trees. One mio reactor
//! per core, hand-written session state machines in a slab, zero-copy RETR.

pub mod auth;
pub mod bench;
pub mod cidr;
pub mod config;
pub mod disk;
pub mod flags;
pub mod fs;
pub mod ftp;
pub mod io;
pub mod limits;
pub mod lists;
pub mod log;
pub mod obs;
pub mod pasv_address;
pub mod pasv_ports;
pub mod pool;
pub mod privs;
pub mod proto;
pub mod rate;
pub mod services;
pub mod sftp;
pub mod systemd;
pub mod tls;
pub mod turns;
pub mod worker;
