//! `mirrorftpd passwd`: read a password and print its Argon2id hash for the `--users` file.
//!
//! On a terminal it asks twice on standard error with echo off (and Ctrl-C read as a byte, so
//! the terminal is always restored); otherwise it hashes the first line of standard input.
//! The password itself is never printed or logged.

use crate::auth::hash::{self, HashError};
use crate::io::sys;
use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

/// Longest password accepted: the longest one a client can send in `PASS` on one control line.
pub const MAX_PASSWORD: usize = crate::limits::MAX_LINE - "PASS \r\n".len();

/// Prints the Argon2id hash of a password, for the hash field of the --users file. On a
/// terminal the password is asked twice and not echoed; otherwise the first line of standard
/// input is read.
#[derive(clap::Args, Debug)]
pub struct PasswdArgs {
    /// Read the first line of standard input even when it is a terminal (echoed, asked once).
    #[arg(long)]
    pub stdin: bool,
}

/// Why no hash was printed.
#[derive(Debug)]
pub enum PasswdError {
    /// Standard input ended before a password was read.
    NoInput,
    /// The password is empty.
    Empty,
    /// The two passwords typed differ.
    Mismatch,
    /// The password is longer than [`MAX_PASSWORD`] bytes.
    TooLong,
    /// Ctrl-C was typed at the prompt.
    Interrupted,
    /// Reading standard input, or switching the terminal's echo, failed.
    Io(io::Error),
    /// Hashing failed.
    Hash(HashError),
}

impl fmt::Display for PasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswdError::NoInput => f.write_str("no password given (end of input)"),
            PasswdError::Empty => f.write_str("empty password refused"),
            PasswdError::Mismatch => f.write_str("the passwords do not match"),
            PasswdError::TooLong => write!(f, "password longer than {MAX_PASSWORD} bytes"),
            PasswdError::Interrupted => f.write_str("interrupted"),
            PasswdError::Io(e) => write!(f, "cannot read the password: {e}"),
            PasswdError::Hash(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PasswdError {}

impl From<io::Error> for PasswdError {
    fn from(e: io::Error) -> PasswdError {
        PasswdError::Io(e)
    }
}

/// Runs the subcommand: the hash on standard output and exit 0; a refused password (empty,
/// mismatched, too long, none) is a message and exit 1 (130 for Ctrl-C); I/O and hashing
/// failures are errors.
pub fn run(args: PasswdArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let stdin = io::stdin();
    let password = if !args.stdin && stdin.is_terminal() { ask_twice() } else { first_line(&mut stdin.lock()) };
    let password = match password {
        Ok(p) => p,
        Err(PasswdError::Io(e)) => return Err(Box::new(PasswdError::Io(e))),
        Err(refused) => {
            eprintln!("mirrorftpd passwd: {refused}");
            let code = if matches!(refused, PasswdError::Interrupted) { 130 } else { 1 };
            return Ok(ExitCode::from(code));
        }
    };
    let phc = hash::hash_argon2id(&password).map_err(PasswdError::Hash)?;
    let mut out = io::stdout().lock();
    writeln!(out, "{phc}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The first line of `input` without its `\n` or `\r\n`; refused when missing, empty or too
/// long.
fn first_line(input: &mut impl BufRead) -> Result<Vec<u8>, PasswdError> {
    let line = read_line(input, false)?.ok_or(PasswdError::NoInput)?;
    check(line)
}

/// Asks on standard error, twice, reading the terminal on standard input with echo off.
fn ask_twice() -> Result<Vec<u8>, PasswdError> {
    let _echo = EchoOff::new()?;
    let first = check(prompt("Password: ")?)?;
    let again = prompt("Again: ")?;
    if again != first {
        return Err(PasswdError::Mismatch);
    }
    Ok(first)
}

/// Writes `label` to standard error and reads one line; Ctrl-C (the VEOL byte while signal
/// keys are off) interrupts at once.
fn prompt(label: &str) -> Result<Vec<u8>, PasswdError> {
    let mut err = io::stderr().lock();
    err.write_all(label.as_bytes())?;
    err.flush()?;
    let line = match read_line(&mut io::stdin().lock(), true)? {
        Some(line) if !line.contains(&CTRL_C) => return Ok(line),
        Some(_) => PasswdError::Interrupted,
        None => PasswdError::NoInput,
    };
    // Echo is off and no Enter was typed: end the prompt's line before the message.
    err.write_all(b"\n")?;
    Err(line)
}

/// `line` if it is an acceptable password.
fn check(line: Vec<u8>) -> Result<Vec<u8>, PasswdError> {
    if line.is_empty() {
        Err(PasswdError::Empty)
    } else if line.len() > MAX_PASSWORD {
        Err(PasswdError::TooLong)
    } else {
        Ok(line)
    }
}

/// One line of `input` without its `\n` or `\r\n`; None at end of input. With `ctrl_c` a
/// 0x03 byte also ends the line (and is kept, for [`prompt`] to see). Reads at most
/// [`MAX_PASSWORD`] + 2 bytes: a longer line comes back too long (and is refused by `check`).
fn read_line(input: &mut impl BufRead, ctrl_c: bool) -> io::Result<Option<Vec<u8>>> {
    let limit = MAX_PASSWORD + 2;
    let mut line = Vec::new();
    let mut ended = false;
    while !ended && line.len() < limit {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            break;
        }
        let end = buf.iter().position(|&b| b == b'\n' || (ctrl_c && b == CTRL_C));
        let take = end.map_or(buf.len(), |i| i + 1);
        let keep = take.min(limit - line.len());
        line.extend_from_slice(buf.get(..keep).unwrap_or_default());
        input.consume(take);
        ended = end.is_some();
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(Some(line))
}

/// The byte Ctrl-C sends.
const CTRL_C: u8 = 0x03;

/// Turns off echo and signal keys on the terminal on standard input, and makes Ctrl-C end the
/// line instead (VEOL), so the process is never killed with echo off; restores the saved state
/// when dropped, on every path out of [`ask_twice`].
struct EchoOff {
    saved: libc::termios,
}

impl EchoOff {
    fn new() -> io::Result<EchoOff> {
        let stdin = io::stdin();
        let saved = sys::tc_getattr(stdin.as_fd())?;
        let mut quiet = saved;
        // No echo, but the Enter key still shows as a new line.
        quiet.c_lflag &= !(libc::ECHO | libc::ISIG);
        quiet.c_lflag |= libc::ECHONL | libc::ICANON;
        if let Some(eol) = quiet.c_cc.get_mut(libc::VEOL) {
            *eol = CTRL_C;
        }
        sys::tc_setattr(stdin.as_fd(), &quiet)?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let stdin = io::stdin();
        if sys::tc_setattr(stdin.as_fd(), &self.saved).is_err() {
            eprintln!("mirrorftpd passwd: could not restore the terminal (type `stty sane`)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn first(input: &[u8]) -> Result<Vec<u8>, String> {
        first_line(&mut Cursor::new(input)).map_err(|e| e.to_string())
    }

    #[test]
    fn first_line_of_input() {
        assert_eq!(first(b"secret\n"), Ok(b"secret".to_vec()));
        assert_eq!(first(b"secret\r\n"), Ok(b"secret".to_vec()));
        assert_eq!(first(b"secret"), Ok(b"secret".to_vec()));
        assert_eq!(first(b"two words \nsecond line\n"), Ok(b"two words ".to_vec()));
        assert_eq!(first(b"\xff\xfe\n"), Ok(b"\xff\xfe".to_vec()));
        assert_eq!(first(b"a\rb\n"), Ok(b"a\rb".to_vec()));
    }

    #[test]
    fn refusals() {
        assert_eq!(first(b""), Err("no password given (end of input)".into()));
        assert_eq!(first(b"\n"), Err("empty password refused".into()));
        assert_eq!(first(b"\r\nsecret\n"), Err("empty password refused".into()));
        let max = vec![b'x'; MAX_PASSWORD];
        assert_eq!(first(&[&max[..], b"\r\n"].concat()), Ok(max.clone()));
        assert_eq!(first(&[&max[..], b"x\n"].concat()), Err(format!("password longer than {MAX_PASSWORD} bytes")));
        assert!(first(&vec![b'x'; 3 * MAX_PASSWORD]).is_err());
        assert!(first(&[&vec![b'x'; 3 * MAX_PASSWORD][..], b"\n"].concat()).is_err());
    }

    #[test]
    fn ctrl_c_ends_a_terminal_line() {
        let mut input = Cursor::new(&b"sec\x03ret\n"[..]);
        assert_eq!(read_line(&mut input, true).ok().flatten(), Some(b"sec\x03".to_vec()));
        let mut input = Cursor::new(&b"sec\x03ret\n"[..]);
        assert_eq!(read_line(&mut input, false).ok().flatten(), Some(b"sec\x03ret".to_vec()));
    }

    #[test]
    fn errors_display() {
        assert_eq!(PasswdError::Mismatch.to_string(), "the passwords do not match");
        assert_eq!(PasswdError::Interrupted.to_string(), "interrupted");
        assert!(PasswdError::Io(io::Error::other("boom")).to_string().ends_with("boom"));
    }
}
