//! Entry point: flags → Config → workers (one reactor thread per core) →
//! wait for signals.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use mirrorftpd::auth::access::{Auth, AuthCell};
use mirrorftpd::config::Config;
use mirrorftpd::flags::{Cli, Command, Flags};
use mirrorftpd::ftp::messages;
use mirrorftpd::io::{net, sys};
use mirrorftpd::pool::Pool;
use mirrorftpd::services::Shared;
use mirrorftpd::sftp::keys::SftpKeys;
use mirrorftpd::systemd;
use mirrorftpd::worker::{Listen, Worker};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mirrorftpd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Bench(args)) => mirrorftpd::bench::run(*args),
        Some(Command::Passwd(args)) => mirrorftpd::auth::passwd::run(args),
        None => serve(cli.serve),
    }
}

fn serve(flags: Flags) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = flags.into_config()?;
    mirrorftpd::log::set_quiet(config.quiet);
    if config.check_config {
        return check_config(config);
    }
    // While this is the only thread: systemd's variables, the user to become,
    // PR_SET_NO_NEW_PRIVS (inherited by every thread started later).
    let notifier = systemd::Notifier::from_env();
    let activated = systemd::listen_fds()?;
    let privs = mirrorftpd::privs::prepare(&config)?;
    // Only the main thread takes signals; every thread started from here on
    // (logger, password helpers, workers) inherits the blocked mask.
    sys::block_signals()?;
    // Log files are opened here, before anything is bound, with O_APPEND.
    mirrorftpd::log::init(config.log_file.as_deref(), config.xferlog.as_deref(), config.log_format, config.local_time)?;
    // A file-size limit (RLIMIT_FSIZE) must give EFBIG to the upload, not
    // kill the server with SIGXFSZ.
    sys::ignore_sigxfsz()?;
    // Every session costs descriptors: use all the hard limit allows.
    if let Err(e) = sys::raise_nofile_limit() {
        mirrorftpd::log::warn(format_args!("cannot raise the open-file limit: {e}"));
    }
    let auth = Arc::new(AuthCell::new(Auth::load(&config.auth_sources())?));
    // Uploads and new directories get 0666/0777 minus this mask.
    mirrorftpd::io::fsys::set_umask(config.umask);
    let pool = Pool::start(config.auth_threads, auth.clone(), config.deny_dotfiles)?;
    let tls = mirrorftpd::tls::load(config.tls_cert.as_deref(), config.tls_key.as_deref(), config.tls13_only)?;
    let greeting = load_greeting(&config)?;
    let sftp = load_sftp_keys(&config)?;
    let shared = Arc::new(Shared::new(config, auth, pool, tls, greeting));
    let cfg = &shared.config;

    let mut wanted: Vec<(SocketAddr, Listen)> = cfg.listen.iter().map(|a| (*a, Listen::Ftp)).collect();
    wanted.extend(cfg.implicit_tls_listen.iter().map(|a| (*a, Listen::Implicit)));
    wanted.extend(cfg.sftp_listen.iter().map(|a| (*a, Listen::Sftp)));
    let socket_activated = activated.is_some();
    let first = match activated {
        Some(given) => {
            let mut given: Vec<_> =
                given.into_iter().map(|(l, tls)| (l, if tls { Listen::Implicit } else { Listen::Ftp })).collect();
            // The SFTP addresses are bound here even under socket activation.
            for a in &cfg.sftp_listen {
                let l =
                    net::control_listener(*a, cfg.backlog, net::Claim::First).map_err(|e| net::listen_error(*a, e))?;
                given.push((l, Listen::Sftp));
            }
            Worker::from_listeners(0, shared.clone(), given)?
        }
        None => bind_first(&shared, wanted)?,
    };
    let addrs = first.local_addrs()?;
    let mut workers = vec![first];
    for id in 1..cfg.workers {
        let w = match Worker::bind(id, shared.clone(), &addrs) {
            // Inherited sockets without SO_REUSEPORT (no ReusePort=yes): the
            // other workers share worker 0's sockets instead.
            Err(e) if socket_activated => {
                if id == 1 {
                    mirrorftpd::log::warn(format_args!("{e}; workers share the inherited sockets"));
                }
                Worker::from_listeners(id, shared.clone(), workers[0].try_clone_listeners()?)?
            }
            r => r?,
        };
        workers.push(w);
    }
    if let Some(m) = workers[0].metrics_addr() {
        eprintln!("mirrorftpd: metrics on http://{m}/metrics");
    }
    for (a, kind) in &addrs {
        match kind {
            Listen::Implicit => eprintln!("mirrorftpd: implicit TLS on {a}"),
            Listen::Sftp => eprintln!("mirrorftpd: SFTP on {a}"),
            Listen::Ftp => eprintln!("mirrorftpd: listening on {a}"),
        }
    }
    if let Some(keys) = &sftp {
        for w in &mut workers {
            w.set_sftp(keys.clone());
        }
    }
    mirrorftpd::log::info(format_args!(
        "serving {} with {} workers, open-file limit {}, passive ports {}",
        cfg.root.display(),
        cfg.workers,
        sys::nofile_limit(),
        cfg.pasv_ports
    ));
    if let mirrorftpd::pasv_ports::PasvPorts::Kernel { .. } = cfg.pasv_ports {
        mirrorftpd::log::warn(format_args!(
            "passive ports are {}: slow once many TIME_WAIT sockets exist",
            cfg.pasv_ports
        ));
    }
    // Everything that opens files or sockets by name happens above this line:
    // from here on the process may be chrooted and is no longer root.
    let who = privs.apply()?;
    mirrorftpd::log::info(format_args!("{who}"));
    for (id, w) in workers.into_iter().enumerate() {
        std::thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
            if let Err(e) = w.run() {
                mirrorftpd::log::error(format_args!("worker {id} stopped: {e}"));
                mirrorftpd::log::flush();
                std::process::exit(1);
            }
        })?;
    }
    if let Some(n) = &notifier {
        n.ready();
    }
    loop {
        let sig = sys::wait_signal()?;
        match sig {
            libc::SIGTERM | libc::SIGINT => {
                if let Some(n) = &notifier {
                    n.stopping();
                }
                let code = drain(&shared, sftp.as_deref(), sig);
                mirrorftpd::log::flush();
                return code;
            }
            libc::SIGHUP => reload(&shared, sftp.as_deref(), notifier.as_ref()),
            libc::SIGUSR1 => mirrorftpd::log::reopen(),
            _ => mirrorftpd::log::info(format_args!("signal {sig}: nothing to do")),
        }
    }
}

/// Binds worker 0 on the configured addresses. It binds first so that port 0
/// resolves to one port, which the other workers then share through SO_REUSEPORT.
fn bind_first(shared: &Arc<Shared>, mut wanted: Vec<(SocketAddr, Listen)>) -> std::io::Result<Worker> {
    match Worker::bind(0, shared.clone(), &wanted) {
        // An address in use is an error even for the default: only a host
        // without IPv6 falls back.
        Err(e) if shared.config.listen_is_default && e.kind() != std::io::ErrorKind::AddrInUse => {
            // The default includes [::]:2121; hosts without IPv6 still start.
            mirrorftpd::log::warn(format_args!("{e}; serving IPv4 only"));
            wanted.remove(1);
            Worker::bind(0, shared.clone(), &wanted)
        }
        r => r,
    }
}

/// SIGTERM/SIGINT: stop accepting, let running transfers finish for up to
/// --drain-timeout, then exit 0. A second SIGTERM/SIGINT exits at once.
fn drain(shared: &Shared, sftp: Option<&SftpKeys>, sig: i32) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let timeout = shared.config.drain_timeout;
    mirrorftpd::log::info(format_args!(
        "signal {sig}: draining {} sessions for up to {} s (a second signal exits now)",
        shared.session_count(),
        timeout.as_secs()
    ));
    shared.start_drain();
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = shared.session_count();
        if left == 0 {
            mirrorftpd::log::info(format_args!("drained: exiting"));
            return Ok(ExitCode::SUCCESS);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            mirrorftpd::log::warn(format_args!("drain timeout: exiting with {left} sessions still open"));
            return Ok(ExitCode::SUCCESS);
        }
        match sys::wait_signal_for((deadline - now).min(std::time::Duration::from_millis(50)))? {
            Some(s @ (libc::SIGTERM | libc::SIGINT)) => {
                mirrorftpd::log::warn(format_args!("signal {s} during drain: exiting with {left} sessions open"));
                return Ok(ExitCode::SUCCESS);
            }
            // systemd heard STOPPING=1: no RELOADING/READY any more.
            Some(libc::SIGHUP) => reload_files(shared, sftp),
            Some(libc::SIGUSR1) => mirrorftpd::log::reopen(),
            _ => {}
        }
    }
}

/// --check-config: everything `serve` would load, loaded and reported, and
/// the listen addresses checked to be free, then exit without keeping a port.
fn check_config(config: Config) -> Result<ExitCode, Box<dyn std::error::Error>> {
    // The user to become (--run-as) must exist; nothing is dropped here.
    mirrorftpd::privs::prepare(&config)?;
    // The log files must open (for appending).
    mirrorftpd::log::init(config.log_file.as_deref(), config.xferlog.as_deref(), config.log_format, config.local_time)?;
    let auth = Auth::load(&config.auth_sources())?;
    mirrorftpd::fs::jail::Jail::open(&config.root, config.deny_dotfiles)
        .map_err(|e| format!("--root {}: {e}", config.root.display()))?;
    let tls = mirrorftpd::tls::load(config.tls_cert.as_deref(), config.tls_key.as_deref(), config.tls13_only)?;
    load_greeting(&config)?;
    let sftp = match config.sftp_host_key.as_deref().filter(|_| !config.sftp_listen.is_empty()) {
        Some(path) => Some(SftpKeys::check(path, config.authorized_keys.as_deref())?),
        None => None,
    };
    let unchecked = check_listen_free(&config)?;
    println!("mirrorftpd: configuration OK");
    println!("  root {}", config.root.display());
    let listen: Vec<String> = config.listen.iter().map(|a| a.to_string()).collect();
    println!("  listen {} with {} workers", listen.join(", "), config.workers);
    for note in unchecked {
        println!("  {note}");
    }
    println!("  passive ports {}", config.pasv_ports);
    println!(
        "  anonymous {}, {} accounts, {} rules",
        if config.anonymous { "allowed (read-only)" } else { "refused" },
        auth.users.len(),
        auth.rules.len()
    );
    println!("  FTPS {}", if tls.is_some() { "on" } else { "off" });
    match &sftp {
        Some(summary) => {
            let listen: Vec<String> = config.sftp_listen.iter().map(|a| a.to_string()).collect();
            println!("  SFTP on {}, {summary}", listen.join(", "));
        }
        None => println!("  SFTP off"),
    }
    Ok(ExitCode::SUCCESS)
}

/// --check-config: each control address must be free, as start-up needs it
/// (nothing may listen there yet; see `io::net::control_listener`). Returns
/// notes for the addresses it could not check: a port below 1024 without
/// the privilege to bind it, the default IPv6 address on a host without IPv6.
fn check_listen_free(config: &Config) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut notes = Vec::new();
    for addr in config.listen.iter().chain(&config.implicit_tls_listen).chain(&config.sftp_listen) {
        match net::check_free(*addr) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                notes.push(format!("listen {addr}: not checked ({e}; a port below 1024 needs root)"));
            }
            Err(e) if config.listen_is_default && addr.is_ipv6() && e.kind() != std::io::ErrorKind::AddrInUse => {
                notes.push(format!("listen {addr}: {e}; start-up will serve IPv4 only"));
            }
            Err(e) => return Err(net::listen_error(*addr, e).into()),
        }
    }
    Ok(notes)
}

/// The 220 greeting: --banner-file's text, or the default line.
fn load_greeting(cfg: &Config) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    match &cfg.banner_file {
        Some(p) => messages::load_banner(p).map_err(|e| format!("--banner-file {}: {e}", p.display()).into()),
        None => Ok(messages::greeting(None)),
    }
}

/// SIGHUP: reloads what can be reloaded without dropping sessions: the
/// accounts and rules (new commands and logins use them), the banner, and
/// the TLS certificate (new handshakes use it). A file that fails to load
/// keeps the old version and is logged. systemd hears RELOADING=1 before
/// and READY=1 after.
fn reload(shared: &Shared, sftp: Option<&SftpKeys>, notifier: Option<&systemd::Notifier>) {
    if let Some(n) = notifier {
        n.reloading();
    }
    reload_files(shared, sftp);
    if let Some(n) = notifier {
        n.ready();
    }
}

fn reload_files(shared: &Shared, sftp: Option<&SftpKeys>) {
    // Log files are reopened (as SIGUSR1 does), for logrotate.
    mirrorftpd::log::reopen();
    if shared.config.chroot {
        // Inside the chroot these paths would name files in the served tree
        // (and a DNS lookup would read its etc/hosts): nothing is re-read.
        mirrorftpd::log::warn(format_args!(
            "SIGHUP under --chroot: log files reopened; accounts, rules, ban list, banner, TLS certificate and \
             --pasv-address are only read at start (restart to change them)"
        ));
        return;
    }
    // A --pasv-address name is resolved again (here, on the main thread).
    let _ = shared.refresh_pasv_address();
    match shared.reload_ban_list() {
        Ok(msg) => mirrorftpd::log::info(format_args!("SIGHUP: {msg}")),
        Err(e) => mirrorftpd::log::error(format_args!("SIGHUP: ban list not reloaded (the old one stays): {e}")),
    }
    if let Some(keys) = sftp {
        match keys.reload() {
            Ok(msg) => mirrorftpd::log::info(format_args!("SIGHUP: {msg}")),
            Err(e) => mirrorftpd::log::error(format_args!("SIGHUP: authorized keys not reloaded (the old stay): {e}")),
        }
    }
    let cfg = &shared.config;
    if cfg.users.is_some() || cfg.rules.is_some() {
        match Auth::load(&cfg.auth_sources()) {
            Ok(a) => {
                let n = a.users.len();
                shared.set_auth(a);
                mirrorftpd::log::info(format_args!("SIGHUP: {n} accounts and the permission rules reloaded"));
            }
            Err(e) => mirrorftpd::log::error(format_args!("SIGHUP: accounts/rules not reloaded: {e}")),
        }
    }
    if cfg.banner_file.is_some() {
        match load_greeting(cfg) {
            Ok(g) => shared.set_greeting(g),
            Err(e) => mirrorftpd::log::error(format_args!("SIGHUP: banner not reloaded: {e}")),
        }
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) {
        match mirrorftpd::tls::build(cert, key, cfg.tls13_only) {
            Ok(sc) => {
                shared.set_tls(sc);
                mirrorftpd::log::info(format_args!("SIGHUP: TLS certificate reloaded from {}", cert.display()));
            }
            Err(e) => mirrorftpd::log::error(format_args!("SIGHUP: TLS certificate not reloaded: {e}")),
        }
    }
}

/// --sftp-host-key and --authorized-keys, when SFTP is served: the host key
/// is created when missing (mode 0600) and its fingerprint logged.
fn load_sftp_keys(cfg: &Config) -> Result<Option<Arc<SftpKeys>>, Box<dyn std::error::Error>> {
    let Some(path) = cfg.sftp_host_key.as_deref().filter(|_| !cfg.sftp_listen.is_empty()) else {
        return Ok(None);
    };
    let keys = SftpKeys::load(path, cfg.authorized_keys.as_deref())?;
    mirrorftpd::log::info(format_args!(
        "SSH host key {} {}: {}",
        path.display(),
        if keys.host.created() { "created" } else { "loaded" },
        keys.host.fingerprint()
    ));
    Ok(Some(Arc::new(keys)))
}
