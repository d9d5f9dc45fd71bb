//! Command-line flags (clap derive): the server's flags, the `bench` and
//! `passwd` subcommands, and the checks that turn the flags into the
//! validated `Config` every layer reads.

use crate::cidr::Cidr;
use crate::config::{
    Config, ConfigError, PasvAddress, ProxyDataCheck, SessionReuse, TlsRequire, parse_port_range, read_ban_list,
};
use crate::limits;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

fn err<T>(msg: String) -> Result<T, ConfigError> {
    Err(ConfigError(msg))
}

/// mirrorftpd: an FTP server for large public mirror trees.
///
/// Without a subcommand it serves --root read-only to anonymous users (USER
/// anonymous or ftp, any password) over plain FTP, with one event-loop thread
/// per core and zero-copy downloads.
#[derive(Parser, Debug)]
#[command(name = "mirrorftpd", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: Flags,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load generator: drive many FTP sessions against a server and report
    /// throughput, transfers/s, latency percentiles and errors.
    Bench(Box<crate::bench::BenchArgs>),
    /// Print an Argon2id hash of a password for the --users file (asked twice
    /// on a terminal, without echo; otherwise read from the first line of
    /// standard input).
    Passwd(crate::auth::passwd::PasswdArgs),
}

/// The server's flags.
#[derive(Args, Debug)]
pub struct Flags {
    /// Directory served as the FTP root (every path resolves inside it).
    #[arg(long, value_name = "DIR", required = true)]
    pub root: Option<PathBuf>,

    /// After binding its ports and opening the root, certificates and log
    /// files, drop to this user (and its primary group, or GROUP) for good.
    /// Started as root without --run-as or --allow-root, mirrorftpd drops to
    /// `nobody`.
    #[arg(long, value_name = "USER[:GROUP]", conflicts_with = "allow_root")]
    pub run_as: Option<String>,

    /// Keep running as root when started as root (not recommended).
    #[arg(long)]
    pub allow_root: bool,

    /// chroot the whole process into --root once everything is open (needs
    /// root or CAP_SYS_CHROOT); SIGHUP cannot reload files outside the root.
    #[arg(long)]
    pub chroot: bool,

    /// Open active-mode (PORT/EPRT) data connections from the control port
    /// minus one (RFC 959's L-1: port 20 when serving on 21); keeps only
    /// CAP_NET_BIND_SERVICE after the privilege drop.
    #[arg(long)]
    pub active_from_port_20: bool,

    /// Control address to listen on; repeat for several (IPv4 and IPv6).
    /// [default: 0.0.0.0:2121 and [::]:2121]
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// Worker threads, each with its own event loop and listening sockets.
    /// [default: number of CPUs]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Passive data port range, split between the workers. [default: the
    /// ports above the kernel's ephemeral range, 61000-65535 on a stock
    /// Linux; see README]
    #[arg(long, value_name = "LOW-HIGH")]
    pub pasv_ports: Option<String>,

    /// IPv4 address announced in PASV replies (for servers behind NAT or a
    /// load balancer), or a DNS name resolved to its first IPv4 address at
    /// start and again on SIGHUP. [default: the address the client
    /// connected to]
    #[arg(long, value_name = "IP|NAME")]
    pub pasv_address: Option<String>,

    /// SO_SNDBUF of data connections in bytes; 0 keeps kernel autotuning.
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_SNDBUF)]
    pub sndbuf: usize,

    /// SO_RCVBUF of data connections in bytes; 0 keeps kernel autotuning.
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_RCVBUF)]
    pub rcvbuf: usize,

    /// Listen backlog of the control sockets.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_BACKLOG)]
    pub backlog: i32,

    /// Disable TCP_NODELAY on control connections (replies are small; Nagle
    /// delays them).
    #[arg(long)]
    pub no_nodelay: bool,

    /// Seconds of control-channel silence before a session is closed with 421
    /// (never while a transfer is running).
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_IDLE_TIMEOUT_SECS)]
    pub idle_timeout: u64,

    /// Seconds a data connection may make no progress (or a passive port wait
    /// for its connection) before the transfer fails.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_DATA_TIMEOUT_SECS)]
    pub data_timeout: u64,

    /// Seconds a client has to log in after connecting.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_LOGIN_TIMEOUT_SECS)]
    pub login_timeout: u64,

    /// On SIGTERM/SIGINT: seconds running transfers may take to finish after
    /// the server stops accepting; then it exits. A second signal exits at once.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_DRAIN_TIMEOUT_SECS)]
    pub drain_timeout: u64,

    /// Text file shown as the 220 greeting (multi-line; re-read on SIGHUP).
    #[arg(long, value_name = "FILE")]
    pub banner_file: Option<PathBuf>,

    /// Do not show a directory's `.message` file in the reply to CWD (the
    /// mirror convention, on by default).
    #[arg(long)]
    pub no_dir_messages: bool,

    /// Most sessions at once across all workers; over it new clients get 421.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CLIENTS)]
    pub max_clients: usize,

    /// Most sessions at once from one IP address; over it 421.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_PER_IP)]
    pub max_per_ip: usize,

    /// Most bytes per second one session's transfers may move, e.g. 500K,
    /// 10M, 1G (binary suffixes); 0 is unlimited. Downloads are paced by the
    /// kernel, uploads by a token bucket.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = crate::rate::parse_rate)]
    pub max_rate: u64,

    /// Most bytes per second all sessions together may move (shared by
    /// every worker), with the same syntax; 0 is unlimited.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = crate::rate::parse_rate)]
    pub max_rate_total: u64,

    /// Addresses refused with 421 on connect: one IP or CIDR block a line,
    /// `#` comments; re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub ban_list: Option<PathBuf>,

    /// Show times in LIST, MLSD and MDTM in the server's local time zone
    /// instead of UTC.
    #[arg(long)]
    pub local_time: bool,

    /// Memory for formatted listings (LIST, NLST, MLSD of whole directories),
    /// e.g. 64M, 1G; least recently used out; 0 disables. A listing larger
    /// than an eighth of it is streamed instead.
    #[arg(long, value_name = "SIZE", default_value = limits::DEFAULT_LISTING_CACHE,
          value_parser = crate::lists::cache::parse_size)]
    pub listing_cache: u64,

    /// Validate the flags, the files they name and the root, print the
    /// result, and exit (0 when everything is usable) without serving.
    #[arg(long)]
    pub check_config: bool,

    /// Serve names starting with '.' (`.git/`, rsync's `.name.XXXXXX` temporaries): without
    /// it they are unreachable by every command and never listed. `.message` is shown on CWD
    /// either way.
    #[arg(long)]
    pub serve_dotfiles: bool,

    /// Deprecated: dot files are unreachable by default now; accepted and ignored.
    #[arg(long, hide = true, conflicts_with = "serve_dotfiles")]
    pub deny_dotfiles: bool,

    /// Allow PORT/EPRT to addresses other than the client's own (FXP); off by
    /// default as FTP bounce protection.
    #[arg(long)]
    pub allow_foreign_port: bool,

    /// Accept passive data connections from addresses other than the control
    /// connection's; off by default as data-theft protection.
    #[arg(long)]
    pub allow_foreign_pasv: bool,

    /// Every control connection starts with a PROXY protocol header (v1 or
    /// v2, HAProxy's send-proxy/send-proxy-v2) carrying the client's real
    /// address; needs --proxy-from. The greeting follows the header.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Address block (CIDR or one address) of a load balancer allowed to
    /// connect with --proxy-protocol; repeatable. Others are refused.
    #[arg(long = "proxy-from", value_name = "CIDR")]
    pub proxy_from: Vec<Cidr>,

    /// With --proxy-protocol, passive data connections must come from the
    /// client's real address (strict), or may also come from the proxy's
    /// (relaxed: for proxies that carry data connections too).
    #[arg(long, value_name = "MODE", default_value = "strict")]
    pub proxy_data_check: ProxyDataCheck,

    /// Log nothing but errors on stderr.
    #[arg(long)]
    pub quiet: bool,

    /// Transfer log in the wu-ftpd/vsftpd xferlog format: one line per file
    /// transfer (RETR, STOR, APPE, STOU) that ended, complete or not.
    #[arg(long, value_name = "FILE")]
    pub xferlog: Option<PathBuf>,

    /// Write the session log (connects, logins, errors, transfers,
    /// disconnects) to this file instead of stderr. SIGHUP or SIGUSR1 reopens it.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Session log format: text lines, or one JSON object per line.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub log_format: crate::log::LogFormat,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (from worker 0's
    /// event loop). [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,

    /// Accounts file: one `name:hash:home:permissions` a line (see README).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Per-folder permission rules: `WHO PERMS FOLDER` a line (see README).
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Names matching this glob (`*`, `?`) are invisible and unreachable,
    /// e.g. rsync's temp files; repeatable.
    #[arg(long = "deny", value_name = "PATTERN")]
    pub deny: Vec<String>,

    /// Refuse anonymous logins (USER anonymous / ftp).
    #[arg(long)]
    pub no_anonymous: bool,

    /// Failed logins from one IP within --ban-window before that IP is
    /// refused (421 on connect) for --ban-time; 0 disables.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_BAN_AFTER)]
    pub ban_after: u32,

    /// Window in seconds over which failed logins are counted for --ban-after.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_BAN_WINDOW_SECS)]
    pub ban_window: u64,

    /// Seconds a banned IP is refused.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_BAN_TIME_SECS)]
    pub ban_time: u64,

    /// Failed logins one session may make before it is closed with 421.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_LOGIN_ATTEMPTS)]
    pub max_login_attempts: u32,

    /// Write uploads to a hidden temporary name (`.NAME.part`) and rename on
    /// success, so readers never see a half-written file.
    #[arg(long)]
    pub atomic_uploads: bool,

    /// fsync every upload before replying 226.
    #[arg(long)]
    pub fsync_uploads: bool,

    /// File-creation mask for uploads and new directories (octal).
    #[arg(long, value_name = "OCTAL", default_value = "022")]
    pub umask: String,

    /// Helper threads for password verification (kept off the event loops).
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_AUTH_THREADS)]
    pub auth_threads: usize,

    /// Helper threads that read file ranges not in the page cache, so the
    /// event loops never wait for the disk.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_DISK_THREADS)]
    pub disk_threads: usize,

    /// How downloads learn whether the next range is in the page cache:
    /// `cachestat` (cachestat(2) and preadv2 RWF_NOWAIT; misses go to the
    /// disk threads) or `none` (read on the event loop, as without kernel support).
    #[arg(long, value_name = "MODE", value_enum, default_value = "cachestat")]
    pub disk_check: crate::disk::DiskCheck,

    /// Most of a worker's time, in percent, that transfers past 1 MiB may
    /// take while smaller operations (commands, small files, listings) are
    /// active on it; they get the rest. Binds only when the CPU is short;
    /// 100 lets big transfers take all but one slice per turn.
    #[arg(long, value_name = "PERCENT", default_value_t = limits::DEFAULT_BULK_SHARE)]
    pub bulk_share: u8,

    /// TLS certificate chain (PEM) for FTPS; enables AUTH TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Implicit FTPS address (TLS from the first byte, port 990 style);
    /// repeatable.
    #[arg(long = "implicit-tls-listen", value_name = "ADDR:PORT")]
    pub implicit_tls_listen: Vec<SocketAddr>,

    /// What must be encrypted: none, login (USER/PASS), data (transfers), or
    /// all.
    #[arg(long, value_name = "WHAT", default_value = "none")]
    pub tls_require: TlsRequire,

    /// Anonymous sessions are exempt from --tls-require.
    #[arg(long)]
    pub tls_exempt_anonymous: bool,

    /// Honour CCC (back to a plaintext control connection after login, for
    /// NAT helpers); refused by default, and always under --tls-require
    /// login/all.
    #[arg(long)]
    pub allow_ccc: bool,

    /// SFTP (SSH) address to listen on; repeatable (IPv4 and IPv6). Needs
    /// --sftp-host-key. [default: off]
    #[arg(long = "sftp-listen", value_name = "ADDR:PORT", requires = "sftp_host_key")]
    pub sftp_listen: Vec<SocketAddr>,

    /// The SSH host key (OpenSSH Ed25519 private key): created with mode
    /// 0600 when missing, its fingerprint logged at start; a file that is
    /// present but unreadable or not an Ed25519 key stops the start.
    #[arg(long, value_name = "FILE")]
    pub sftp_host_key: Option<PathBuf>,

    /// Directory of public keys for SFTP logins: USER.keys in authorized_keys
    /// form, for accounts of --users; reloaded on SIGHUP.
    #[arg(long, value_name = "DIR")]
    pub authorized_keys: Option<PathBuf>,

    /// Allow anonymous read-only SFTP logins (user `anonymous`, any password).
    #[arg(long)]
    pub sftp_anonymous: bool,

    /// Lowest TLS version accepted: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", default_value = "1.2")]
    pub tls_min_version: String,

    /// Data connections resuming the control connection's TLS session:
    /// required (refuse others: the data-hijack defence), preferred (log
    /// others), off.
    #[arg(long, value_name = "POLICY", default_value = "preferred")]
    pub tls_session_reuse: SessionReuse,
}

impl Flags {
    /// Checks the flags and builds the validated `Config` from them.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let f = self;
        let Some(root) = f.root else {
            return err("--root DIR is required".into());
        };
        let meta = std::fs::metadata(&root).map_err(|e| ConfigError(format!("--root {}: {e}", root.display())))?;
        if !meta.is_dir() {
            return err(format!("--root {}: not a directory", root.display()));
        }
        let listen_is_default = f.listen.is_empty();
        let listen = if listen_is_default {
            vec![
                SocketAddr::from(([0, 0, 0, 0], limits::DEFAULT_PORT)),
                SocketAddr::from(([0u16; 8], limits::DEFAULT_PORT)),
            ]
        } else {
            f.listen
        };
        let workers = match f.workers {
            Some(0) => return err("--workers must be at least 1".into()),
            Some(n) if n > 1024 => return err("--workers must be at most 1024".into()),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let pasv_ports = match f.pasv_ports.as_deref() {
            Some(s) => crate::pasv_ports::PasvPorts::Flag(parse_port_range(s)?),
            None => crate::pasv_ports::PasvPorts::from_kernel(),
        };
        let pasv_address = f.pasv_address.as_deref().map(PasvAddress::from_flag).transpose().map_err(ConfigError)?;
        if f.max_clients == 0 || f.max_per_ip == 0 {
            return err("--max-clients and --max-per-ip must be at least 1".into());
        }
        if f.idle_timeout == 0 || f.data_timeout == 0 || f.login_timeout == 0 {
            return err("timeouts must be at least 1 second".into());
        }
        let umask = u32::from_str_radix(f.umask.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| ConfigError(format!("--umask {:?}: an octal mode 000-777 is expected", f.umask)))?;
        if f.max_login_attempts == 0 {
            return err("--max-login-attempts must be at least 1".into());
        }
        if f.auth_threads == 0 || f.auth_threads > 64 {
            return err("--auth-threads must be 1-64".into());
        }
        if f.disk_threads == 0 || f.disk_threads > limits::MAX_DISK_THREADS {
            return err(format!("--disk-threads must be 1-{}", limits::MAX_DISK_THREADS));
        }
        if f.bulk_share == 0 || f.bulk_share > 100 {
            return err("--bulk-share must be 1-100 (percent)".into());
        }
        let tls13_only = match f.tls_min_version.as_str() {
            "1.2" => false,
            "1.3" => true,
            v => return err(format!("--tls-min-version {v:?}: 1.2 or 1.3")),
        };
        if f.tls_cert.is_none() && (!f.implicit_tls_listen.is_empty() || f.tls_require != TlsRequire::None) {
            return err("--implicit-tls-listen and --tls-require need --tls-cert and --tls-key".into());
        }
        if f.proxy_protocol && f.proxy_from.is_empty() {
            return err("--proxy-protocol needs --proxy-from CIDR (the load balancers allowed to send headers)".into());
        }
        if !f.proxy_protocol && (!f.proxy_from.is_empty() || f.proxy_data_check != ProxyDataCheck::Strict) {
            return err("--proxy-from and --proxy-data-check need --proxy-protocol".into());
        }
        if f.sftp_listen.is_empty() && (f.sftp_host_key.is_some() || f.authorized_keys.is_some() || f.sftp_anonymous) {
            return err("--sftp-host-key, --authorized-keys and --sftp-anonymous need --sftp-listen".into());
        }
        if let Some(a) =
            f.sftp_listen.iter().find(|a| a.port() != 0 && (listen.contains(a) || f.implicit_tls_listen.contains(a)))
        {
            return err(format!("--sftp-listen {a} is also an FTP address"));
        }
        if f.backlog < 1 {
            return err("--backlog must be at least 1".into());
        }
        if f.xferlog.is_some() && f.xferlog == f.log_file {
            return err("--xferlog and --log-file must be different files".into());
        }
        if let Some(m) = f.metrics_listen.filter(|m| m.port() != 0 && listen.contains(m)) {
            return err(format!("--metrics-listen {m} is also a --listen address"));
        }
        Ok(Config {
            root,
            run_as: f.run_as,
            allow_root: f.allow_root,
            chroot: f.chroot,
            active_from_port_20: f.active_from_port_20,
            listen,
            listen_is_default,
            workers,
            pasv_ports,
            pasv_address,
            sndbuf: f.sndbuf,
            rcvbuf: f.rcvbuf,
            backlog: f.backlog,
            nodelay: !f.no_nodelay,
            idle_timeout: Duration::from_secs(f.idle_timeout),
            data_timeout: Duration::from_secs(f.data_timeout),
            login_timeout: Duration::from_secs(f.login_timeout),
            drain_timeout: Duration::from_secs(f.drain_timeout),
            banner_file: f.banner_file,
            dir_messages: !f.no_dir_messages,
            max_clients: f.max_clients,
            max_per_ip: f.max_per_ip,
            max_rate: f.max_rate,
            max_rate_total: f.max_rate_total,
            ban_cidrs: match &f.ban_list {
                Some(p) => read_ban_list(p)?,
                None => Vec::new(),
            },
            ban_list: f.ban_list,
            local_time: f.local_time,
            listing_cache: f.listing_cache,
            check_config: f.check_config,
            deny_dotfiles: !f.serve_dotfiles,
            allow_foreign_port: f.allow_foreign_port,
            allow_foreign_pasv: f.allow_foreign_pasv,
            proxy_protocol: f.proxy_protocol,
            proxy_from: f.proxy_from,
            proxy_data_check: f.proxy_data_check,
            quiet: f.quiet,
            xferlog: f.xferlog,
            log_file: f.log_file,
            log_format: f.log_format,
            metrics_listen: f.metrics_listen,
            users: f.users,
            rules: f.rules,
            deny: f.deny,
            anonymous: !f.no_anonymous,
            ban_after: f.ban_after,
            ban_window: Duration::from_secs(f.ban_window),
            ban_time: Duration::from_secs(f.ban_time),
            max_login_attempts: f.max_login_attempts,
            atomic_uploads: f.atomic_uploads,
            fsync_uploads: f.fsync_uploads,
            umask,
            auth_threads: f.auth_threads,
            disk_threads: f.disk_threads,
            bulk_share: f.bulk_share,
            disk_check: f.disk_check,
            tls_cert: f.tls_cert,
            tls_key: f.tls_key,
            implicit_tls_listen: f.implicit_tls_listen,
            tls_require: f.tls_require,
            tls_exempt_anonymous: f.tls_exempt_anonymous,
            allow_ccc: f.allow_ccc,
            tls13_only,
            tls_session_reuse: f.tls_session_reuse,
            sftp_listen: f.sftp_listen,
            sftp_host_key: f.sftp_host_key,
            authorized_keys: f.authorized_keys,
            sftp_anonymous: f.sftp_anonymous,
        })
    }
}
