//! Every limit and default of the server in one place (vsftpd's defs.h idea).

use std::time::Duration;

/// Longest control line accepted, CRLF included. A longer line is a protocol
/// error (500), never a reason to grow the buffer.
pub const MAX_LINE: usize = 8192;
/// Consecutive protocol errors (bad lines, unknown commands) before the server
/// gives up on a session with 421.
pub const MAX_ERRORS: u32 = 50;
/// Upper bound on queued reply bytes; replies are small and no command is read
/// while replies are pending, so this is only a safety net.
pub const MAX_REPLY_BUF: usize = 1 << 20;
/// Bytes a writable data socket is given per turn of the event loop before the
/// session yields to the others (it is requeued, not forgotten): a bulk
/// transfer's quantum (see `turns.rs`). At least 256 KiB per sendfile call
/// keeps the throughput (DESIGN.md); 1 MiB keeps a turn short.
pub const SEND_BUDGET_PER_TURN: u64 = 1 << 20;
/// A transfer that has moved this many bytes is bulk: from then on it takes
/// its turns from the run queue, after the sessions with little to do.
pub const BULK_AFTER: u64 = 1 << 20;
/// How long the bulk part of a worker's turn runs (at least one quantum)
/// before the worker polls again for events; the rest stay queued.
pub const TURN_SLICE: Duration = Duration::from_micros(1000);
/// Default --bulk-share: bulk transfers may take this percent of a worker's
/// time while small operations are active (chosen by perf/disk_mix.sh and
/// perf/mirror.sh: see README "Fair turns").
pub const DEFAULT_BULK_SHARE: u8 = 30;
/// Nice steps the disk and listing helper threads run below the event loops
/// (which keep the process's): when the CPUs are short, the loops run first.
pub const HELPER_NICE: i32 = 10;
/// Size of one `sendfile` call. The kernel stops at the socket buffer anyway;
/// a large count makes each writable event move as much as it can.
pub const SENDFILE_CHUNK: usize = 4 << 20;
/// A rate-limited transfer reserves this much time's worth of its bucket's
/// rate at a time (split among the transfers sharing the bucket).
pub const RATE_SLICE: Duration = Duration::from_millis(50);
/// Smallest chunk a rate-limited transfer reserves (the largest is
/// SENDFILE_CHUNK).
pub const RATE_CHUNK_MIN: u64 = 16 << 10;
/// Highest --max-rate / --max-rate-total accepted (1 TiB/s).
pub const MAX_RATE: u64 = 1 << 40;
/// Bytes of a download checked for page-cache residency at a time, and
/// handed to a disk helper when they are not cached (one sendfile chunk).
pub const DISK_WINDOW: u64 = 4 << 20;
/// Where cachestat is refused, ranges up to this size are probed with
/// preadv2(RWF_NOWAIT) on the event loop; larger ones always go to a helper.
pub const DISK_PROBE_MAX: u64 = 256 << 10;
/// Ranges waiting for a disk helper, over all workers; when full, a range is
/// read on the event loop (each session has at most one range queued).
pub const DISK_QUEUE: usize = 4096;
/// A disk helper reads a range in pieces this big (its one buffer, kept in
/// the CPU cache), checking between pieces whether the transfer was cancelled.
pub const DISK_PIECE: u64 = 256 << 10;
/// Default --disk-threads.
pub const DEFAULT_DISK_THREADS: usize = 16;
/// Highest --disk-threads accepted.
pub const MAX_DISK_THREADS: usize = 256;
/// Buffer for the read+write fallback and for ASCII conversion.
pub const COPY_BUF: usize = 64 << 10;
/// The one buffer of an upload: socket reads land here, then a positioned
/// write puts them in the file.
pub const UPLOAD_BUF: usize = 256 << 10;
/// Soft size of one listing chunk written to the data socket.
pub const LIST_CHUNK: usize = 64 << 10;
/// --listing-cache default: memory for formatted listings (bodies and bookkeeping).
pub const DEFAULT_LISTING_CACHE: &str = "64M";
/// Largest --listing-cache accepted.
pub const LIST_CACHE_MAX: u64 = 64 << 30;
/// Oldest cached listing served: the bound on how long a file rewritten in place by
/// another program (its directory unchanged) can show its old size or date, and on the LIST
/// "recent" date rule's clock. A refill of 10,000 entries costs about 13 ms of a helper
/// thread (perf/results/2026-12-05-listing-cache.md), so a listed directory costs at most
/// that every this often.
pub const LIST_CACHE_MAX_AGE: Duration = Duration::from_secs(2);
/// A directory whose ctime is this close to a fill's start is not cached: a change in the
/// same timestamp tick (the kernel's coarse clock: at most 10 ms) could go unseen.
pub const LIST_CACHE_RACY: Duration = Duration::from_millis(100);
/// How long "too large for the cache" is remembered for an unchanged directory.
pub const LIST_CACHE_TOO_BIG_AGE: Duration = Duration::from_secs(30);
/// Helper threads that fill the listing cache.
pub const LIST_FILL_THREADS: usize = 2;
/// Fills queued for them at most; beyond it a session streams its listing itself.
pub const LIST_FILL_QUEUE: usize = 64;
/// Control-channel reads per turn (each up to MAX_LINE bytes) before yielding.
pub const READS_PER_TURN: usize = 16;
/// Commands read during a transfer that wait for its end, at most (ABOR
/// and STAT run at once; QUIT and REIN have two slots beyond this).
pub const MAX_HELD_COMMANDS: usize = 16;
/// Bytes of such waiting commands, at most; a line beyond either bound is
/// refused (503) and counts as a protocol error.
pub const MAX_HELD_BYTES: usize = 16 << 10;
/// Commands executed per turn for one session before yielding.
pub const COMMANDS_PER_TURN: usize = 32;
/// Entries shown by STAT <dir> over the control connection.
pub const STAT_MAX_ENTRIES: usize = 2000;
/// Events taken from the kernel per poll.
pub const EVENTS_CAPACITY: usize = 1024;
/// Connections accepted per listener per turn before yielding.
pub const ACCEPTS_PER_TURN: usize = 256;
/// How long accepting pauses after EMFILE/ENFILE before it is retried.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// How long a connection from a trusted load balancer has to deliver its
/// PROXY header (--proxy-protocol) before it is dropped; the spec asks for at
/// least 3 s, to cover a TCP retransmission.
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// What a client accepted through the spare descriptor hears (the server is out of descriptors).
pub const OUT_OF_FDS_REPLY: &str = "421 Server busy (out of file descriptors), try again later.\r\n";

pub const DEFAULT_PORT: u16 = 2121;
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_DATA_TIMEOUT_SECS: u64 = 120;
pub const DEFAULT_LOGIN_TIMEOUT_SECS: u64 = 60;
/// Time running transfers get to finish after SIGTERM.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 60;
/// Largest --banner-file and `.message` file shown (bytes; the rest is cut).
pub const MAX_MESSAGE_FILE: usize = 8 << 10;
/// Lines of a banner or `.message` shown at most.
pub const MAX_MESSAGE_LINES: usize = 100;
/// Name of the per-directory message file shown on CWD.
pub const DIR_MESSAGE_NAME: &std::ffi::CStr = c".message";
/// Directories whose `.message` one session has seen (each shown once).
pub const DIR_MESSAGES_REMEMBERED: usize = 32;
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
pub const DEFAULT_MAX_PER_IP: usize = 50;
pub const DEFAULT_BACKLOG: i32 = 1024;
/// Without --pasv-ports, passive ports come from outside the kernel's
/// ephemeral range (see `pasv_ports.rs`): the ports above it if there are at
/// least this many, else up to DEFAULT_PASV_BELOW ports just below it (never
/// under DEFAULT_PASV_FLOOR), else kernel-chosen ports.
pub const DEFAULT_PASV_MIN_PORTS: usize = 1024;
pub const DEFAULT_PASV_BELOW: u16 = 4096;
pub const DEFAULT_PASV_FLOOR: u16 = 1024;
/// 0 means: leave the kernel's autotuning alone.
pub const DEFAULT_SNDBUF: usize = 0;
pub const DEFAULT_RCVBUF: usize = 0;

pub const DEFAULT_BAN_AFTER: u32 = 10;
pub const DEFAULT_BAN_WINDOW_SECS: u64 = 600;
pub const DEFAULT_BAN_TIME_SECS: u64 = 900;
pub const DEFAULT_MAX_LOGIN_ATTEMPTS: u32 = 3;
pub const DEFAULT_AUTH_THREADS: usize = 2;
/// The delay before "530 Login incorrect" after the Nth failure of a session
/// is LOGIN_DELAY_BASE * 2^(N-1), capped at LOGIN_DELAY_MAX.
pub const LOGIN_DELAY_BASE: Duration = Duration::from_millis(500);
pub const LOGIN_DELAY_MAX: Duration = Duration::from_secs(8);
/// Login requests queued for the helper threads; beyond it logins get 421.
pub const AUTH_QUEUE: usize = 4096;
/// Largest Argon2 memory cost (KiB) a users-file hash may ask for: each helper
/// thread keeps one work area as large as the largest cost it has verified, so
/// the password checks hold at most `--auth-threads` times this. A hash asking
/// for more is refused when the file is loaded.
pub const ARGON2_MAX_MEMORY_KIB: u32 = 256 * 1024;
/// Tries at a unique name for STOU.
pub const STOU_TRIES: u32 = 100;

// ---- SFTP engine (src/sftp/) ----
/// Longest SFTP packet accepted (its `uint32 length`), and the largest sent: OpenSSH's
/// SFTP_MAX_MSG_LENGTH, which its client also enforces on what it receives. A longer length
/// ends the session (the byte stream can no longer be framed).
pub const SFTP_MAX_PACKET: usize = 256 << 10;
/// Largest READ served (longer ones are cut short) and WRITE announced, as OpenSSH's server:
/// room for the headers under [`SFTP_MAX_PACKET`].
pub const SFTP_MAX_READ: u32 = (256 << 10) - 1024;
/// Received bytes held per session before the engine stops taking channel data.
pub const SFTP_MAX_INPUT: usize = 1 << 20;
/// Whole requests held per session (OpenSSH pipelines 64) before it stops taking more.
pub const SFTP_MAX_QUEUED: usize = 128;
/// Queued response bytes above which no request is handled and no input wanted.
pub const SFTP_OUTPUT_HIGH: usize = 512 << 10;
/// Requests handled per `process` call before yielding to other sessions.
pub const SFTP_REQUESTS_PER_TURN: usize = 64;
/// Open file and directory handles per session.
pub const SFTP_MAX_HANDLES: usize = 256;
/// SFTP under --atomic-uploads: an OPEN for writing without TRUNC starts the temporary as a
/// copy of the published file, made in place on the event loop. Up to this size only (a few
/// ms); a larger file is refused (FAILURE) so that no client can make a reactor copy a huge
/// (or sparse) file. FTP's APPE/resume make the same copy on a disk helper.
pub const SFTP_INLINE_SEED_MAX: u64 = 16 << 20;
/// Entries per READDIR answer, and its soft size in bytes.
pub const SFTP_READDIR_ENTRIES: u32 = 100;
pub const SFTP_READDIR_BYTES: usize = 64 << 10;
/// `getdents64` buffer of one open directory handle.
pub const SFTP_DIR_BUF: usize = 8 << 10;
/// Log events a session keeps until its worker drains them.
pub const SFTP_MAX_EVENTS: usize = 64;
/// Passes of an SFTP session's pipeline (socket, SSH, engine) per worker turn.
pub const SFTP_STEPS_PER_TURN: usize = 32;
/// One socket read, and one channel read, of an SFTP session (the worker's scratch buffer).
pub const SFTP_READ_BUF: usize = 64 << 10;
/// Authorized-keys files read from --authorized-keys DIR (one per user).
pub const MAX_AUTHORIZED_KEY_FILES: usize = 100_000;
/// Addresses remembered for --ban-after before stale ones are swept.
pub const MAX_TRACKED_IPS: usize = 100_000;
/// TLS 1.2 sessions remembered by ID (tickets need no memory).
pub const TLS_SESSION_CACHE: usize = 4096;
/// TLS 1.3 tickets sent after a control handshake. Our tickets are
/// reusable; clients that use each once (rustls) get 4 more from every
/// download or listing.
pub const TLS13_TICKETS_CONTROL: usize = 8;
pub const TLS13_TICKETS_DATA: usize = 4;
/// Plaintext rustls may buffer per connection (one write's worth above a record).
pub const TLS_PLAINTEXT_BUFFER: usize = 64 << 10;
/// Plaintext read from the file per TLS write: four full 16 KiB records.
pub const TLS_FILE_CHUNK: usize = 64 << 10;

/// Log lines queued for the logger thread; beyond it lines are dropped (and counted).
pub const LOG_QUEUE: usize = 8192;
/// How long the logger thread lets lines gather once woken, before it writes
/// them as one batch (obs/sink.rs). LOG_QUEUE must hold this long's lines:
/// 8192 lines in 10 ms is 800,000 lines/s.
pub const LOG_LINGER: Duration = Duration::from_millis(10);
/// --metrics-listen: open scrape connections at most (a new one closes the oldest).
pub const METRICS_MAX_CONNS: usize = 8;
/// --metrics-listen: longest request head read.
pub const METRICS_REQUEST_MAX: usize = 4096;
/// --metrics-listen: a scrape connection must be done (request read, answer
/// written) within this time or it is dropped.
pub const METRICS_CONN_TIMEOUT: Duration = Duration::from_secs(5);

// --- SSH (SFTP's transport) ---

/// Receive window advertised for an SSH channel. sunset's default (1,000
/// bytes) made uploads crawl at ~77 MiB/s; 2 MiB with 32 KiB packets gave
/// ~550 MiB/s.
pub const SSH_CHANNEL_WINDOW: u32 = 2 << 20;
/// Largest channel data packet accepted (what OpenSSH uses for sessions).
pub const SSH_CHANNEL_MAX_PACKET: u32 = 32 << 10;
/// Largest host key file read (an Ed25519 key is about 400 bytes).
pub const MAX_HOST_KEY_FILE: u64 = 64 << 10;
/// Largest `authorized_keys` file read for one user.
pub const MAX_AUTHORIZED_KEYS_FILE: u64 = 1 << 20;
