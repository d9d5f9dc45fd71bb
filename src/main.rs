//! Entry point: flags → Config → workers (one reactor thread per core) →
//! wait for signals.

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
    let auth = Arc::new(Auth::load(&config)?);
    // Uploads and new directories get 0666/0777 minus this mask.
    mirrorftpd::io::fsys::set_umask(config.umask);
    let pool = Pool::start(config.auth_threads, auth.clone(), config.deny_dotfiles)?;
    let shared = Arc::new(Shared::new(config, auth, pool));
    let cfg = &shared.config;

    // Worker 0 binds first so that port 0 resolves to one port, which the
    // other workers then share through SO_REUSEPORT.
    let first = match Worker::bind(0, shared.clone(), &cfg.listen) {
        Err(e) if cfg.listen_is_default => {
            // The default includes [::]:2121; hosts without IPv6 still start.
            mirrorftpd::log::warn(format_args!("{e}; serving IPv4 only"));
            Worker::bind(0, shared.clone(), &cfg.listen[..1])?
        }
        r => r?,
    };
    let addrs = first.local_addrs()?;
    let mut workers = vec![first];
    for id in 1..cfg.workers {
        workers.push(Worker::bind(id, shared.clone(), &addrs)?);
    }
    for a in &addrs {
        eprintln!("mirrorftpd: listening on {a}");
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
            _ => mirrorftpd::log::info(format_args!("signal {sig}: nothing to reload yet")),
        }
    }
}
