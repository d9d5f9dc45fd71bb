//! FTP command lines: the verb table, verb lookup, line parsing, and Telnet stripping.
//!
//! The session hands [`strip_telnet`] the raw bytes of one line, then [`parse`] the result
//! without its line ending. The argument is returned byte-exact: it may hold spaces anywhere and
//! any byte but LF (a NUL or a CR inside it is left for the path layer to refuse).

use std::fmt;

use ArgRule::{None as NoArg, Optional as Opt, Required as Req};

/// Every command the server knows, in the order of [`VERBS`]: RFC 959 first, then the
/// extensions (RFC 2228, 2389, 2428, 3659, 7151, the MFMT draft).
#[rustfmt::skip]
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    // RFC 959
    User, Pass, Acct, Cwd, Cdup, Smnt, Quit, Rein, Port, Pasv, Type, Stru, Mode, Retr, Stor, Stou,
    Appe, Allo, Rest, Rnfr, Rnto, Abor, Dele, Rmd, Mkd, Pwd, List, Nlst, Site, Syst, Stat, Help,
    Noop,
    // RFC 2228, 2389, 2428, 3659, 7151, draft-somers-ftp-mfxx
    Auth, Pbsz, Prot, Ccc, Feat, Opts, Eprt, Epsv, Mdtm, Size, Mlst, Mlsd, Host, Mfmt,
}

/// Whether a verb takes an argument.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ArgRule {
    None,
    Required,
    Optional,
}

/// What the server knows about one verb.
#[derive(Debug)]
pub struct VerbInfo {
    pub verb: Verb,
    /// Canonical upper-case name, e.g. `"CWD"`.
    pub name: &'static str,
    /// Other names accepted for it, e.g. `["XCWD"]`.
    pub aliases: &'static [&'static str],
    pub arg: ArgRule,
    /// False for the few commands allowed before login.
    pub needs_login: bool,
    /// Syntax line for HELP, e.g. `"CWD <sp> pathname"`.
    pub help: &'static str,
}

const fn row(
    verb: Verb,
    name: &'static str,
    aliases: &'static [&'static str],
    arg: ArgRule,
    needs_login: bool,
    help: &'static str,
) -> VerbInfo {
    VerbInfo { verb, name, aliases, arg, needs_login, help }
}

#[rustfmt::skip]
const TABLE: [VerbInfo; 47] = [
    // RFC 959
    row(Verb::User, "USER", &[],       Req,   false, "USER <sp> username"),
    row(Verb::Pass, "PASS", &[],       Opt,   false, "PASS [<sp> password]"),
    row(Verb::Acct, "ACCT", &[],       Req,   false, "ACCT <sp> account-information"),
    row(Verb::Cwd,  "CWD",  &["XCWD"], Req,   true,  "CWD <sp> pathname"),
    row(Verb::Cdup, "CDUP", &["XCUP"], NoArg, true,  "CDUP"),
    row(Verb::Smnt, "SMNT", &[],       Req,   true,  "SMNT <sp> pathname"),
    row(Verb::Quit, "QUIT", &[],       NoArg, false, "QUIT"),
    row(Verb::Rein, "REIN", &[],       NoArg, false, "REIN"),
    row(Verb::Port, "PORT", &[],       Req,   true,  "PORT <sp> h1,h2,h3,h4,p1,p2"),
    row(Verb::Pasv, "PASV", &[],       NoArg, true,  "PASV"),
    row(Verb::Type, "TYPE", &[],       Req,   true,  "TYPE <sp> A [<sp> N] | I | L <sp> 8"),
    row(Verb::Stru, "STRU", &[],       Req,   true,  "STRU <sp> F"),
    row(Verb::Mode, "MODE", &[],       Req,   true,  "MODE <sp> S"),
    row(Verb::Retr, "RETR", &[],       Req,   true,  "RETR <sp> pathname"),
    row(Verb::Stor, "STOR", &[],       Req,   true,  "STOR <sp> pathname"),
    row(Verb::Stou, "STOU", &[],       Opt,   true,  "STOU [<sp> pathname]"),
    row(Verb::Appe, "APPE", &[],       Req,   true,  "APPE <sp> pathname"),
    row(Verb::Allo, "ALLO", &[],       Req,   true,  "ALLO <sp> decimal-integer [<sp> R <sp> decimal-integer]"),
    row(Verb::Rest, "REST", &[],       Req,   true,  "REST <sp> byte-offset"),
    row(Verb::Rnfr, "RNFR", &[],       Req,   true,  "RNFR <sp> pathname"),
    row(Verb::Rnto, "RNTO", &[],       Req,   true,  "RNTO <sp> pathname"),
    row(Verb::Abor, "ABOR", &[],       NoArg, true,  "ABOR"),
    row(Verb::Dele, "DELE", &[],       Req,   true,  "DELE <sp> pathname"),
    row(Verb::Rmd,  "RMD",  &["XRMD"], Req,   true,  "RMD <sp> pathname"),
    row(Verb::Mkd,  "MKD",  &["XMKD"], Req,   true,  "MKD <sp> pathname"),
    row(Verb::Pwd,  "PWD",  &["XPWD"], NoArg, true,  "PWD"),
    row(Verb::List, "LIST", &[],       Opt,   true,  "LIST [<sp> pathname]"),
    row(Verb::Nlst, "NLST", &[],       Opt,   true,  "NLST [<sp> pathname]"),
    row(Verb::Site, "SITE", &[],       Req,   true,  "SITE <sp> string"),
    row(Verb::Syst, "SYST", &[],       NoArg, false, "SYST"),
    row(Verb::Stat, "STAT", &[],       Opt,   true,  "STAT [<sp> pathname]"),
    row(Verb::Help, "HELP", &[],       Opt,   false, "HELP [<sp> command]"),
    row(Verb::Noop, "NOOP", &[],       Opt,   false, "NOOP"),
    // RFC 2228
    row(Verb::Auth, "AUTH", &[],       Req,   false, "AUTH <sp> mechanism-name"),
    row(Verb::Pbsz, "PBSZ", &[],       Req,   false, "PBSZ <sp> decimal-integer"),
    row(Verb::Prot, "PROT", &[],       Req,   false, "PROT <sp> C | S | E | P"),
    row(Verb::Ccc,  "CCC",  &[],       NoArg, true,  "CCC"),
    // RFC 2389
    row(Verb::Feat, "FEAT", &[],       NoArg, false, "FEAT"),
    row(Verb::Opts, "OPTS", &[],       Req,   false, "OPTS <sp> command-name [<sp> options]"),
    // RFC 2428
    row(Verb::Eprt, "EPRT", &[],       Req,   true,  "EPRT <sp> |proto|address|port|"),
    row(Verb::Epsv, "EPSV", &[],       Opt,   true,  "EPSV [<sp> 1 | 2 | ALL]"),
    // RFC 3659
    row(Verb::Mdtm, "MDTM", &[],       Req,   true,  "MDTM <sp> pathname"),
    row(Verb::Size, "SIZE", &[],       Req,   true,  "SIZE <sp> pathname"),
    row(Verb::Mlst, "MLST", &[],       Opt,   true,  "MLST [<sp> pathname]"),
    row(Verb::Mlsd, "MLSD", &[],       Opt,   true,  "MLSD [<sp> pathname]"),
    // RFC 7151
    row(Verb::Host, "HOST", &[],       Req,   false, "HOST <sp> hostname"),
    // draft-somers-ftp-mfxx
    row(Verb::Mfmt, "MFMT", &[],       Req,   true,  "MFMT <sp> YYYYMMDDHHMMSS <sp> pathname"),
];

// `info` indexes TABLE by `verb as usize`; this proves at compile time that it cannot miss.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].verb as usize == i, "TABLE rows must follow the Verb order");
        i += 1;
    }
};

/// One row per [`Verb`], in declaration order.
pub static VERBS: &[VerbInfo] = &TABLE;

/// The table row of a verb.
pub fn info(v: Verb) -> &'static VerbInfo {
    // In bounds: checked against the enum order at compile time above.
    &TABLE[v as usize]
}

/// Finds a verb by name, case-insensitively, aliases included. Names are 3 or 4 ASCII letters.
pub fn lookup(name: &[u8]) -> Option<Verb> {
    if name.is_empty() || name.len() > 4 {
        return None;
    }
    // Three-letter names are padded with NUL, which no accepted name byte can be.
    let mut up = [0u8; 4];
    for (dst, &b) in up.iter_mut().zip(name) {
        if !b.is_ascii_alphabetic() {
            return None;
        }
        *dst = b.to_ascii_uppercase();
    }
    Some(match &up {
        b"USER" => Verb::User,
        b"PASS" => Verb::Pass,
        b"ACCT" => Verb::Acct,
        b"CWD\0" | b"XCWD" => Verb::Cwd,
        b"CDUP" | b"XCUP" => Verb::Cdup,
        b"SMNT" => Verb::Smnt,
        b"QUIT" => Verb::Quit,
        b"REIN" => Verb::Rein,
        b"PORT" => Verb::Port,
        b"PASV" => Verb::Pasv,
        b"TYPE" => Verb::Type,
        b"STRU" => Verb::Stru,
        b"MODE" => Verb::Mode,
        b"RETR" => Verb::Retr,
        b"STOR" => Verb::Stor,
        b"STOU" => Verb::Stou,
        b"APPE" => Verb::Appe,
        b"ALLO" => Verb::Allo,
        b"REST" => Verb::Rest,
        b"RNFR" => Verb::Rnfr,
        b"RNTO" => Verb::Rnto,
        b"ABOR" => Verb::Abor,
        b"DELE" => Verb::Dele,
        b"RMD\0" | b"XRMD" => Verb::Rmd,
        b"MKD\0" | b"XMKD" => Verb::Mkd,
        b"PWD\0" | b"XPWD" => Verb::Pwd,
        b"LIST" => Verb::List,
        b"NLST" => Verb::Nlst,
        b"SITE" => Verb::Site,
        b"SYST" => Verb::Syst,
        b"STAT" => Verb::Stat,
        b"HELP" => Verb::Help,
        b"NOOP" => Verb::Noop,
        b"AUTH" => Verb::Auth,
        b"PBSZ" => Verb::Pbsz,
        b"PROT" => Verb::Prot,
        b"CCC\0" => Verb::Ccc,
        b"FEAT" => Verb::Feat,
        b"OPTS" => Verb::Opts,
        b"EPRT" => Verb::Eprt,
        b"EPSV" => Verb::Epsv,
        b"MDTM" => Verb::Mdtm,
        b"SIZE" => Verb::Size,
        b"MLST" => Verb::Mlst,
        b"MLSD" => Verb::Mlsd,
        b"HOST" => Verb::Host,
        b"MFMT" => Verb::Mfmt,
        _ => return None,
    })
}

/// One parsed command line. `arg` borrows from the line and is empty when there was none.
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub verb: Verb,
    pub arg: &'a [u8],
}

/// Why a line is not a command; each maps to a 500/501 reply.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Nothing before the first space (an empty line, or a leading space).
    Empty,
    /// Not a known verb, or not 1–4 ASCII letters.
    Unknown,
    MissingArg(Verb),
    UnexpectedArg(Verb),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty command"),
            ParseError::Unknown => f.write_str("unknown command"),
            ParseError::MissingArg(v) => write!(f, "{} needs an argument", info(*v).name),
            ParseError::UnexpectedArg(v) => write!(f, "{} takes no argument", info(*v).name),
        }
    }
}

impl std::error::Error for ParseError {}

/// Verbs whose argument, when it is only spaces, is dropped: real clients send `PASV ` and the like.
fn tolerates_blank_arg(v: Verb) -> bool {
    use Verb::*;
    matches!(v, Pasv | Epsv | Feat | Noop | Pwd | Cdup | Syst | Quit | Abor)
}

/// Parses one line given without its LF (a trailing CR is dropped too).
///
/// The verb runs up to the first space; the argument is everything after that single space,
/// byte-exact, and counts as absent when empty.
pub fn parse(line: &[u8]) -> Result<Command<'_>, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (name, mut arg) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &line[line.len()..]),
    };
    if name.is_empty() {
        return Err(ParseError::Empty);
    }
    let verb = lookup(name).ok_or(ParseError::Unknown)?;
    if tolerates_blank_arg(verb) && arg.iter().all(|&b| b == b' ') {
        arg = &arg[arg.len()..];
    }
    match info(verb).arg {
        ArgRule::Required if arg.is_empty() => Err(ParseError::MissingArg(verb)),
        ArgRule::None if !arg.is_empty() => Err(ParseError::UnexpectedArg(verb)),
        _ => Ok(Command { verb, arg }),
    }
}

/// Commands that change the file tree; refused on a read-only server.
pub fn is_write_verb(v: Verb) -> bool {
    use Verb::*;
    matches!(v, Stor | Stou | Appe | Dele | Mkd | Rmd | Rnfr | Rnto | Mfmt)
}

const IAC: u8 = 255;
const SE: u8 = 240;
const DM: u8 = 242;
const SB: u8 = 250;
const WILL: u8 = 251;
const DONT: u8 = 254;

/// Removes Telnet sequences from `buf` in place and returns the new length.
///
/// `IAC IAC` becomes one 0xFF; `IAC WILL|WONT|DO|DONT x` and `IAC SB … IAC SE` go; so does
/// `IAC` + any other command byte (240..=249: IP, DM, AYT, NOP…) and a lone IAC at the end.
/// An IAC followed by a byte below 240 is no command: only the IAC goes, so that
/// `IAC IP IAC ABOR` (DM taken out of band) still reads `ABOR`. A bare DM (0xF2) met before any
/// text, after a sequence was removed, is the inline urgent byte of a Synch and goes too.
pub fn strip_telnet(buf: &mut [u8]) -> usize {
    let len = buf.len();
    let (mut r, mut w) = (0, 0);
    let mut removed = false;
    while r < len {
        let b = buf[r];
        if b != IAC {
            if !(b == DM && w == 0 && removed) {
                buf[w] = b;
                w += 1;
            }
            r += 1;
            continue;
        }
        removed = true;
        match buf.get(r + 1).copied() {
            None => r += 1,
            Some(IAC) => {
                buf[w] = IAC;
                w += 1;
                r += 2;
            }
            Some(WILL..=DONT) => r += 3,
            Some(SB) => r = skip_subnegotiation(buf, r + 2),
            Some(SE..SB) => r += 2,
            Some(_) => r += 1,
        }
    }
    w
}

/// Index just past the `IAC SE` closing a subnegotiation whose body starts at `from`,
/// or `buf.len()` when it is not closed. `IAC IAC` inside the body is an escaped 0xFF.
fn skip_subnegotiation(buf: &[u8], mut from: usize) -> usize {
    while let Some(off) = buf.get(from..).and_then(|rest| memchr::memchr(IAC, rest)) {
        let at = from + off;
        match buf.get(at + 1) {
            Some(&SE) => return at + 2,
            Some(_) => from = at + 2,
            None => break,
        }
    }
    buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(input: &[u8]) -> Vec<u8> {
        let mut v = input.to_vec();
        let n = strip_telnet(&mut v);
        v.truncate(n);
        v
    }

    #[test]
    fn table_matches_enum_and_lookup() {
        assert_eq!(VERBS.len(), 47);
        for (i, row) in VERBS.iter().enumerate() {
            assert_eq!(row.verb as usize, i);
            assert_eq!(info(row.verb).name, row.name);
            assert_eq!(lookup(row.name.as_bytes()), Some(row.verb), "{}", row.name);
            assert_eq!(lookup(row.name.to_ascii_lowercase().as_bytes()), Some(row.verb));
            for alias in row.aliases {
                assert_eq!(lookup(alias.as_bytes()), Some(row.verb), "{alias}");
            }
            assert!(row.help.starts_with(row.name), "{}", row.help);
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_strict() {
        assert_eq!(lookup(b"retr"), Some(Verb::Retr));
        assert_eq!(lookup(b"ReTr"), Some(Verb::Retr));
        assert_eq!(lookup(b"xpwd"), Some(Verb::Pwd));
        assert_eq!(lookup(b"XCUP"), Some(Verb::Cdup));
        assert_eq!(lookup(b"XMKD"), Some(Verb::Mkd));
        assert_eq!(lookup(b"XRMD"), Some(Verb::Rmd));
        assert_eq!(lookup(b""), None);
        assert_eq!(lookup(b"RETRX"), None);
        assert_eq!(lookup(b"CWD\0"), None);
        assert_eq!(lookup(b"CW"), None);
        assert_eq!(lookup(b"R3TR"), None);
        assert_eq!(lookup(b"\xff\xff\xff\xff"), None);
        assert_eq!(lookup(b"RETR".map(|b| b | 0x80).as_slice()), None);
        assert_eq!(lookup(b"XXXX"), None);
    }

    fn ok(verb: Verb, arg: &[u8]) -> Result<Command<'_>, ParseError> {
        Ok(Command { verb, arg })
    }

    fn arg_of(line: &[u8]) -> Option<&[u8]> {
        parse(line).ok().map(|c| c.arg)
    }

    #[test]
    fn parse_basic_commands() {
        assert_eq!(parse(b"USER anonymous"), ok(Verb::User, b"anonymous"));
        assert_eq!(parse(b"retr /pub/a b.iso\r"), ok(Verb::Retr, b"/pub/a b.iso"));
        assert_eq!(parse(b"PWD"), ok(Verb::Pwd, b""));
        assert_eq!(parse(b"LIST"), ok(Verb::List, b""));
        assert_eq!(parse(b"LIST "), ok(Verb::List, b""));
        assert_eq!(parse(b"LIST -la"), ok(Verb::List, b"-la"));
        assert_eq!(parse(b"XCWD pub"), ok(Verb::Cwd, b"pub"));
    }

    #[test]
    fn parse_keeps_argument_byte_exact() {
        assert_eq!(arg_of(b"RETR  lead"), Some(&b" lead"[..]));
        assert_eq!(arg_of(b"RETR trail  "), Some(&b"trail  "[..]));
        assert_eq!(arg_of(b"CWD a\xff\x01b"), Some(&b"a\xff\x01b"[..]));
        // Only one trailing CR is the line ending; an inner one stays for the path layer to refuse.
        assert_eq!(arg_of(b"RETR a\rb\r\r"), Some(&b"a\rb\r"[..]));
        assert_eq!(arg_of(b"RETR a\0b"), Some(&b"a\0b"[..]));
        let mut line = b"RETR ".to_vec();
        line.extend_from_slice(&[b'x'; 100_000]);
        assert_eq!(arg_of(&line).map(<[u8]>::len), Some(100_000));
    }

    #[test]
    fn parse_errors() {
        use ParseError::*;
        assert_eq!(parse(b""), Err(Empty));
        assert_eq!(parse(b"\r"), Err(Empty));
        assert_eq!(parse(b" "), Err(Empty));
        assert_eq!(parse(b" USER bob"), Err(Empty));
        assert_eq!(parse(b"FOO"), Err(Unknown));
        assert_eq!(parse(b"RETRIEVE x"), Err(Unknown));
        assert_eq!(parse(b"\0"), Err(Unknown));
        assert_eq!(parse(b"\xff\xf4\xff\xf2ABOR"), Err(Unknown));
        assert_eq!(parse(b"USER\tbob"), Err(Unknown));
        assert_eq!(parse(&[b'A'; 10_000]), Err(Unknown));
        assert_eq!(parse(b"CWD"), Err(MissingArg(Verb::Cwd)));
        assert_eq!(parse(b"RETR "), Err(MissingArg(Verb::Retr)));
        assert_eq!(parse(b"RETR \r"), Err(MissingArg(Verb::Retr)));
        assert_eq!(parse(b"PORT"), Err(MissingArg(Verb::Port)));
        assert_eq!(parse(b"PWD /x"), Err(UnexpectedArg(Verb::Pwd)));
        assert_eq!(parse(b"REIN  "), Err(UnexpectedArg(Verb::Rein)));
        assert_eq!(parse(b"CCC x"), Err(UnexpectedArg(Verb::Ccc)));
    }

    #[test]
    fn parse_is_lenient_with_blank_args_where_clients_send_them() {
        let lines: [&[u8]; 10] =
            [b"PASV ", b"PASV   ", b"EPSV  ", b"FEAT ", b"NOOP ", b"PWD ", b"CDUP  ", b"SYST ", b"QUIT ", b"ABOR \r"];
        for line in lines {
            assert_eq!(arg_of(line), Some(&b""[..]), "{line:?}");
        }
        assert_eq!(parse(b"NOOP hello").map(|c| c.verb), Ok(Verb::Noop));
        assert_eq!(parse(b"PASV x"), Err(ParseError::UnexpectedArg(Verb::Pasv)));
    }

    #[test]
    fn pass_may_be_empty() {
        assert_eq!(parse(b"PASS"), ok(Verb::Pass, b""));
        assert_eq!(parse(b"PASS "), ok(Verb::Pass, b""));
        assert_eq!(parse(b"PASS  x "), ok(Verb::Pass, b" x "));
    }

    #[test]
    fn login_and_write_classes() {
        use Verb::*;
        for v in [User, Pass, Acct, Quit, Rein, Feat, Syst, Help, Noop, Opts, Auth, Pbsz, Prot, Host] {
            assert!(!info(v).needs_login, "{v:?}");
        }
        let need: Vec<Verb> = VERBS.iter().map(|r| r.verb).filter(|&v| info(v).needs_login).collect();
        assert_eq!(need.len(), VERBS.len() - 14);
        assert!(need.contains(&Stat) && need.contains(&Retr));
        let writes: Vec<Verb> = VERBS.iter().map(|r| r.verb).filter(|&v| is_write_verb(v)).collect();
        assert_eq!(writes, [Stor, Stou, Appe, Rnfr, Rnto, Dele, Rmd, Mkd, Mfmt]);
    }

    #[test]
    fn parse_error_display() {
        assert_eq!(ParseError::MissingArg(Verb::Cwd).to_string(), "CWD needs an argument");
        assert_eq!(ParseError::UnexpectedArg(Verb::Pasv).to_string(), "PASV takes no argument");
        assert_eq!(ParseError::Unknown.to_string(), "unknown command");
    }

    #[test]
    fn telnet_plain_text_untouched() {
        assert_eq!(strip(b"RETR a b"), b"RETR a b");
        assert_eq!(strip(b""), b"");
        assert_eq!(strip(b"\0\x01\xf2x"), b"\0\x01\xf2x");
    }

    #[test]
    fn telnet_commands_removed() {
        assert_eq!(strip(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(strip(b"RETR a\xff\xffb"), b"RETR a\xffb");
        assert_eq!(strip(b"\xff\xfb\x01NOOP"), b"NOOP");
        assert_eq!(strip(b"\xff\xfe\x22\xff\xfd\x03NOOP"), b"NOOP");
        assert_eq!(strip(b"\xff\xf1NO\xff\xf6OP"), b"NOOP");
        assert_eq!(strip(b"\xff\xfa\x18\x01\xff\xff\xff\xf0QUIT"), b"QUIT");
        assert_eq!(strip(b"QUIT\xff"), b"QUIT");
        assert_eq!(strip(b"QUIT\xff\xfb"), b"QUIT");
        assert_eq!(strip(b"QUIT\xff\xfa\x01\x02"), b"QUIT");
        assert_eq!(strip(b"\xff"), b"");
        assert_eq!(strip(b"\xff\xff"), b"\xff");
        assert_eq!(strip(b"\xff\xff\xff"), b"\xff");
    }

    #[test]
    fn telnet_synch_with_dm_out_of_band_or_bare() {
        // DM taken out of band: the stream holds IAC IP IAC then the text.
        assert_eq!(strip(b"\xff\xf4\xffABOR"), b"ABOR");
        // DM delivered inline as the urgent byte, without an IAC of its own.
        assert_eq!(strip(b"\xff\xf4\xf2ABOR"), b"ABOR");
        assert_eq!(strip(b"\xff\xf4\xff\xf2\xf2ABOR"), b"ABOR");
        // A bare 0xF2 in text, or with nothing removed before it, stays.
        assert_eq!(strip(b"\xf2ABOR"), b"\xf2ABOR");
        assert_eq!(strip(b"RETR \xff\xf1\xf2"), b"RETR \xf2");
        assert_eq!(parse(&strip(b"\xff\xf4\xf2ABOR\r")).map(|c| c.verb), Ok(Verb::Abor));
    }

    #[test]
    fn telnet_hostile_input_never_panics() {
        let mut v: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        assert!(strip_telnet(&mut v) <= 70_000);
        assert_eq!(strip(&[0xff; 1001]), vec![0xff; 500]);
    }

    #[test]
    fn random_bytes_never_panic() {
        // Deterministic xorshift so a failure reproduces; biased towards the bytes that matter.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"\xff\xfa\xf0\xf2\xf4\xfb \r\0UuSsEeRrPpAaWwDdCc";
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 12) as usize;
            let mut line: Vec<u8> = (0..len)
                .map(|i| {
                    let r = x.rotate_left(i as u32 * 5);
                    if r & 1 == 0 { alphabet[(r >> 1) as usize % alphabet.len()] } else { (r >> 8) as u8 }
                })
                .collect();
            let n = strip_telnet(&mut line);
            assert!(n <= len);
            if let Ok(cmd) = parse(&line[..n]) {
                assert!(cmd.arg.len() < len);
            }
        }
    }
}
