//! Log lines on stderr: one per session start and end and per transfer.
//! Passwords are never passed here.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

pub fn set_quiet(q: bool) {
    QUIET.store(q, Ordering::Relaxed);
}

fn emit(level: &str, args: fmt::Arguments<'_>) {
    let now = crate::fs::time::now_secs();
    let p = crate::fs::time::utc_parts(now);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z {level} {args}",
        p.year, p.month, p.day, p.hour, p.min, p.sec
    );
}

/// Session and transfer events (suppressed by --quiet).
pub fn info(args: fmt::Arguments<'_>) {
    if !QUIET.load(Ordering::Relaxed) {
        emit("info", args);
    }
}

pub fn warn(args: fmt::Arguments<'_>) {
    emit("warn", args);
}

pub fn error(args: fmt::Arguments<'_>) {
    emit("error", args);
}
