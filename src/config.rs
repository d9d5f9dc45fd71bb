//! The validated settings every layer reads (`Config`), the types of its
//! values, and the parsers the flags and SIGHUP share. The command line that
//! fills it is `crate::flags`.

use crate::cidr::Cidr;
pub use crate::pasv_address::PasvAddress;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// --tls-require
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRequire {
    None,
    Login,
    Data,
    All,
}

/// --proxy-data-check
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyDataCheck {
    Strict,
    Relaxed,
}

/// --tls-session-reuse
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionReuse {
    Required,
    Preferred,
    Off,
}

/// A port range for passive listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
}

impl PortRange {
    /// The slice of the range owned by worker `index` of `count`.
    pub fn slice(self, index: usize, count: usize) -> PortRange {
        let len = (self.high - self.low) as usize + 1;
        let count = count.max(1);
        if len < count {
            // Fewer ports than workers: every worker shares the whole range;
            // binding without SO_REUSEPORT keeps ports exclusive anyway.
            return self;
        }
        let lo = self.low as usize + index * len / count;
        let hi = self.low as usize + (index + 1) * len / count - 1;
        PortRange { low: lo as u16, high: hi as u16 }
    }

    pub fn len(self) -> usize {
        (self.high - self.low) as usize + 1
    }

    /// Never: a range holds at least one port (LOW <= HIGH).
    pub fn is_empty(self) -> bool {
        false
    }
}

/// The validated configuration every worker reads (shared, immutable).
#[derive(Clone, Debug)]
pub struct Config {
    pub root: PathBuf,
    /// --run-as: the user (and optional group) to drop to.
    pub run_as: Option<String>,
    pub allow_root: bool,
    pub chroot: bool,
    /// Active data connections come from the control port minus one.
    pub active_from_port_20: bool,
    pub listen: Vec<SocketAddr>,
    /// No --listen given: the IPv6 default may be skipped where IPv6 is off.
    pub listen_is_default: bool,
    pub workers: usize,
    /// --pasv-ports, or the default range (`pasv_ports.rs`).
    pub pasv_ports: crate::pasv_ports::PasvPorts,
    /// Resolved at start; a name is resolved again on reload (the current
    /// value is `Shared::pasv_address`).
    pub pasv_address: Option<PasvAddress>,
    pub sndbuf: usize,
    pub rcvbuf: usize,
    pub backlog: i32,
    pub nodelay: bool,
    pub idle_timeout: Duration,
    pub data_timeout: Duration,
    pub login_timeout: Duration,
    pub drain_timeout: Duration,
    pub banner_file: Option<PathBuf>,
    pub dir_messages: bool,
    pub max_clients: usize,
    pub max_per_ip: usize,
    /// --max-rate in bytes/s; 0: unlimited.
    pub max_rate: u64,
    /// --max-rate-total in bytes/s; 0: unlimited.
    pub max_rate_total: u64,
    pub ban_list: Option<PathBuf>,
    /// The blocks of --ban-list as read at startup (SIGHUP re-reads the file).
    pub ban_cidrs: Vec<crate::cidr::Cidr>,
    pub local_time: bool,
    /// --listing-cache in bytes; 0: no cache.
    pub listing_cache: u64,
    pub check_config: bool,
    /// Names starting with '.' are unreachable (the default; off with --serve-dotfiles).
    pub deny_dotfiles: bool,
    pub allow_foreign_port: bool,
    pub allow_foreign_pasv: bool,
    pub proxy_protocol: bool,
    pub proxy_from: Vec<Cidr>,
    pub proxy_data_check: ProxyDataCheck,
    pub quiet: bool,
    pub xferlog: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub log_format: crate::log::LogFormat,
    pub metrics_listen: Option<SocketAddr>,
    pub users: Option<PathBuf>,
    pub rules: Option<PathBuf>,
    pub deny: Vec<String>,
    pub anonymous: bool,
    pub ban_after: u32,
    pub ban_window: Duration,
    pub ban_time: Duration,
    pub max_login_attempts: u32,
    pub atomic_uploads: bool,
    pub fsync_uploads: bool,
    pub umask: u32,
    pub auth_threads: usize,
    pub disk_threads: usize,
    pub disk_check: crate::disk::DiskCheck,
    /// --bulk-share: percent of a worker's time bulk transfers may take
    /// while small operations are active (`turns::BulkShare`).
    pub bulk_share: u8,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub implicit_tls_listen: Vec<SocketAddr>,
    pub tls_require: TlsRequire,
    pub tls_exempt_anonymous: bool,
    pub allow_ccc: bool,
    /// True: TLS 1.3 only.
    pub tls13_only: bool,
    pub tls_session_reuse: SessionReuse,
    /// --sftp-listen: SFTP (SSH) addresses; empty: SFTP is off.
    pub sftp_listen: Vec<SocketAddr>,
    pub sftp_host_key: Option<PathBuf>,
    /// --authorized-keys: USER.keys files for SFTP public key logins.
    pub authorized_keys: Option<PathBuf>,
    /// --sftp-anonymous: anonymous read-only logins over SFTP.
    pub sftp_anonymous: bool,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

pub fn parse_port_range(s: &str) -> Result<PortRange, ConfigError> {
    let Some((a, b)) = s.split_once('-') else {
        return err(format!("--pasv-ports {s:?}: expected LOW-HIGH"));
    };
    let (Ok(low), Ok(high)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
        return err(format!("--pasv-ports {s:?}: ports must be numbers 1-65535"));
    };
    if low == 0 || low > high {
        return err(format!("--pasv-ports {s:?}: need 1 <= LOW <= HIGH"));
    }
    Ok(PortRange { low, high })
}

/// Reads a --ban-list file (one IP or CIDR block a line, `#` comments).
pub fn read_ban_list(path: &std::path::Path) -> Result<Vec<crate::cidr::Cidr>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("--ban-list {}: {e}", path.display())))?;
    crate::cidr::parse_list(&text, &format!("--ban-list {}", path.display())).map_err(ConfigError)
}

impl Config {
    /// What the accounts and rules are loaded from.
    pub fn auth_sources(&self) -> crate::auth::access::Sources<'_> {
        crate::auth::access::Sources {
            users: self.users.as_deref(),
            rules: self.rules.as_deref(),
            deny: &self.deny,
            atomic_uploads: self.atomic_uploads,
            deny_dotfiles: self.deny_dotfiles,
            anonymous: self.anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_and_slices_without_overlap() {
        let r = parse_port_range("40000-40999").unwrap();
        assert_eq!(r.len(), 1000);
        let a = r.slice(0, 3);
        let b = r.slice(1, 3);
        let c = r.slice(2, 3);
        assert_eq!(a.low, 40000);
        assert_eq!(a.high + 1, b.low);
        assert_eq!(b.high + 1, c.low);
        assert_eq!(c.high, 40999);
        assert!(parse_port_range("5-1").is_err());
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("abc").is_err());
        assert!(parse_port_range("1-70000").is_err());
    }

    #[test]
    fn tiny_range_is_shared() {
        let r = parse_port_range("5000-5000").unwrap();
        assert_eq!(r.slice(1, 2), r);
    }
}
