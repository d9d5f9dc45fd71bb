//! Entry point: flags → Config → workers (one reactor thread per core) →
//! wait for signals.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use mirrorftpd::auth::access::Auth;
use mirrorftpd::config::{Cli, Command, Config, Flags};
use mirrorftpd::io::sys;
use mirrorftpd::pool::Pool;
use mirrorftpd::worker::{Shared, Worker};

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
        Some(Command::Bench(args)) => mirrorftpd::bench::run(args),
        Some(Command::Passwd(args)) => mirrorftpd::auth::passwd::run(args),
        None => serve(cli.serve),
    }
}

fn serve(flags: Flags) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let config = Config::from_flags(flags)?;
    mirrorftpd::log::set_quiet(config.quiet);
    // Only the main thread takes signals; workers inherit the blocked mask.
    sys::block_signals()?;
    // A file-size limit (RLIMIT_FSIZE) must give EFBIG to the upload, not
    // kill the server with SIGXFSZ.
    sys::ignore_sigxfsz()?;
    // Every session costs descriptors: use all the hard limit allows.
    if let Err(e) = sys::raise_nofile_limit() {
        mirrorftpd::log::warn(format_args!("cannot raise the open-file limit: {e}"));
    }
    let auth = Arc::new(Auth::load(&config)?);
    // Uploads and new directories get 0666/0777 minus this mask.
    mirrorftpd::io::fsys::set_umask(config.umask);
    let pool = Pool::start(config.auth_threads, auth.clone(), config.deny_dotfiles)?;
    let tls = mirrorftpd::tls::load(&config)?;
    let shared = Arc::new(Shared::new(config, auth, pool, tls));
    let cfg = &shared.config;

    // Worker 0 binds first so that port 0 resolves to one port, which the
    // other workers then share through SO_REUSEPORT.
    let mut wanted: Vec<(SocketAddr, bool)> = cfg.listen.iter().map(|a| (*a, false)).collect();
    wanted.extend(cfg.implicit_tls_listen.iter().map(|a| (*a, true)));
    let first = match Worker::bind(0, shared.clone(), &wanted) {
        Err(e) if cfg.listen_is_default => {
            // The default includes [::]:2121; hosts without IPv6 still start.
            mirrorftpd::log::warn(format_args!("{e}; serving IPv4 only"));
            wanted.remove(1);
            Worker::bind(0, shared.clone(), &wanted)?
        }
        r => r?,
    };
    let addrs = first.local_addrs()?;
    let mut workers = vec![first];
    for id in 1..cfg.workers {
        workers.push(Worker::bind(id, shared.clone(), &addrs)?);
    }
    for (a, implicit) in &addrs {
        if *implicit {
            eprintln!("mirrorftpd: implicit TLS on {a}");
        } else {
            eprintln!("mirrorftpd: listening on {a}");
        }
    }
    mirrorftpd::log::info(format_args!(
        "serving {} with {} workers, open-file limit {}",
        cfg.root.display(),
        cfg.workers,
        sys::nofile_limit()
    ));
    for (id, w) in workers.into_iter().enumerate() {
        std::thread::Builder::new().name(format!("worker-{id}")).spawn(move || {
            if let Err(e) = w.run() {
                mirrorftpd::log::error(format_args!("worker {id} stopped: {e}"));
                std::process::exit(1);
            }
        })?;
    }
    loop {
        let sig = sys::wait_signal()?;
        match sig {
            libc::SIGTERM | libc::SIGINT => {
                mirrorftpd::log::info(format_args!("signal {sig}: exiting ({} sessions open)", shared.session_count()));
                return Ok(ExitCode::SUCCESS);
            }
            libc::SIGHUP => reload(&shared),
            _ => mirrorftpd::log::info(format_args!("signal {sig}: nothing to do")),
        }
    }
}

/// SIGHUP: reloads what can be reloaded without dropping sessions (the TLS
/// certificate; new handshakes use it, running sessions keep theirs).
fn reload(shared: &Shared) {
    let cfg = &shared.config;
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
