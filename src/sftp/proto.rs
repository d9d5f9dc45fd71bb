//! SFTP version 3 wire format (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it): packet
//! types, status codes, the framer over the channel's byte stream, a bounds-checked reader,
//! the request parser, and the writers of responses. Pure functions over bytes, fuzzable.

use super::attrs::Attrs;
use crate::limits;

/// The only protocol version served.
pub const VERSION: u32 = 3;

// Packet types (filexfer-02 §3).
pub const FXP_INIT: u8 = 1;
pub const FXP_VERSION: u8 = 2;
pub const FXP_OPEN: u8 = 3;
pub const FXP_CLOSE: u8 = 4;
pub const FXP_READ: u8 = 5;
pub const FXP_WRITE: u8 = 6;
pub const FXP_LSTAT: u8 = 7;
pub const FXP_FSTAT: u8 = 8;
pub const FXP_SETSTAT: u8 = 9;
pub const FXP_FSETSTAT: u8 = 10;
pub const FXP_OPENDIR: u8 = 11;
pub const FXP_READDIR: u8 = 12;
pub const FXP_REMOVE: u8 = 13;
pub const FXP_MKDIR: u8 = 14;
pub const FXP_RMDIR: u8 = 15;
pub const FXP_REALPATH: u8 = 16;
pub const FXP_STAT: u8 = 17;
pub const FXP_RENAME: u8 = 18;
pub const FXP_READLINK: u8 = 19;
pub const FXP_SYMLINK: u8 = 20;
pub const FXP_STATUS: u8 = 101;
pub const FXP_HANDLE: u8 = 102;
pub const FXP_DATA: u8 = 103;
pub const FXP_NAME: u8 = 104;
pub const FXP_ATTRS: u8 = 105;
pub const FXP_EXTENDED: u8 = 200;
pub const FXP_EXTENDED_REPLY: u8 = 201;

// Status codes (filexfer-02 §7).
pub const FX_OK: u32 = 0;
pub const FX_EOF: u32 = 1;
pub const FX_NO_SUCH_FILE: u32 = 2;
pub const FX_PERMISSION_DENIED: u32 = 3;
pub const FX_FAILURE: u32 = 4;
pub const FX_BAD_MESSAGE: u32 = 5;
pub const FX_OP_UNSUPPORTED: u32 = 8;

// OPEN pflags.
pub const FXF_READ: u32 = 0x01;
pub const FXF_WRITE: u32 = 0x02;
pub const FXF_APPEND: u32 = 0x04;
pub const FXF_CREAT: u32 = 0x08;
pub const FXF_TRUNC: u32 = 0x10;
pub const FXF_EXCL: u32 = 0x20;

/// The OpenSSH extensions advertised in VERSION, with their version strings.
pub const EXTENSIONS: [(&str, &str); 5] = [
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
];

/// What the framer sees at the head of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole packet yet.
    Incomplete,
    /// A whole packet: its payload (type byte on) is `buf[4..4 + len]`.
    Packet(usize),
    /// A length the session cannot accept (over [`limits::SFTP_MAX_PACKET`], or too short to hold
    /// a type and a request id): the byte stream can no longer be trusted, the session ends.
    Bad(u32),
}

/// Looks at the `uint32 length` framing at the start of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let Some(head) = buf.get(..4) else { return Frame::Incomplete };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let ulen = len as usize;
    if !(5..=limits::SFTP_MAX_PACKET).contains(&ulen) {
        return Frame::Bad(len);
    }
    if buf.len() - 4 < ulen { Frame::Incomplete } else { Frame::Packet(ulen) }
}

/// A packet ran out before a field ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

/// A bounds-checked cursor over a payload.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.buf.len() < n {
            return Err(Short);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    /// An SSH `string`: `uint32 length` then that many bytes.
    pub fn string(&mut self) -> Result<&'a [u8], Short> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// One client request, borrowing the packet's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Init {
        version: u32,
    },
    Open {
        id: u32,
        path: &'a [u8],
        pflags: u32,
        attrs: Attrs,
    },
    Close {
        id: u32,
        handle: &'a [u8],
    },
    Read {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        len: u32,
    },
    Write {
        id: u32,
        handle: &'a [u8],
        offset: u64,
        data: &'a [u8],
    },
    Lstat {
        id: u32,
        path: &'a [u8],
    },
    Fstat {
        id: u32,
        handle: &'a [u8],
    },
    Setstat {
        id: u32,
        path: &'a [u8],
        attrs: Attrs,
    },
    Fsetstat {
        id: u32,
        handle: &'a [u8],
        attrs: Attrs,
    },
    Opendir {
        id: u32,
        path: &'a [u8],
    },
    Readdir {
        id: u32,
        handle: &'a [u8],
    },
    Remove {
        id: u32,
        path: &'a [u8],
    },
    Mkdir {
        id: u32,
        path: &'a [u8],
        attrs: Attrs,
    },
    Rmdir {
        id: u32,
        path: &'a [u8],
    },
    Realpath {
        id: u32,
        path: &'a [u8],
    },
    Stat {
        id: u32,
        path: &'a [u8],
    },
    Rename {
        id: u32,
        from: &'a [u8],
        to: &'a [u8],
    },
    Readlink {
        id: u32,
        path: &'a [u8],
    },
    /// Fields in the order OpenSSH sends them (the draft's order reversed); refused anyway.
    Symlink {
        id: u32,
        first: &'a [u8],
        second: &'a [u8],
    },
    /// An extended request: its name and the bytes after it (parsed by [`Extended::parse`]).
    Extended {
        id: u32,
        name: &'a [u8],
        data: &'a [u8],
    },
    /// A packet type this server does not know (answered OP_UNSUPPORTED).
    Unknown {
        id: u32,
        kind: u8,
    },
}

/// A packet whose fields do not parse: `id` when the request id could be read (the answer is a
/// BAD_MESSAGE status), `None` otherwise (nothing can be answered: the session ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    pub id: Option<u32>,
}

impl<'a> Request<'a> {
    /// The request id (INIT has none: 0).
    pub fn id(&self) -> u32 {
        match *self {
            Request::Init { .. } => 0,
            Request::Open { id, .. }
            | Request::Close { id, .. }
            | Request::Read { id, .. }
            | Request::Write { id, .. }
            | Request::Lstat { id, .. }
            | Request::Fstat { id, .. }
            | Request::Setstat { id, .. }
            | Request::Fsetstat { id, .. }
            | Request::Opendir { id, .. }
            | Request::Readdir { id, .. }
            | Request::Remove { id, .. }
            | Request::Mkdir { id, .. }
            | Request::Rmdir { id, .. }
            | Request::Realpath { id, .. }
            | Request::Stat { id, .. }
            | Request::Rename { id, .. }
            | Request::Readlink { id, .. }
            | Request::Symlink { id, .. }
            | Request::Extended { id, .. }
            | Request::Unknown { id, .. } => id,
        }
    }

    /// Parses one packet's payload (type byte first). Bytes after the last field are ignored,
    /// as OpenSSH does (REALPATH's optional v6 fields, for one).
    pub fn parse(payload: &'a [u8]) -> Result<Request<'a>, Malformed> {
        let mut r = Reader::new(payload);
        let none = Malformed { id: None };
        let kind = r.u8().map_err(|_| none)?;
        if kind == FXP_INIT {
            return Ok(Request::Init { version: r.u32().map_err(|_| none)? });
        }
        let id = r.u32().map_err(|_| none)?;
        Request::body(kind, id, &mut r).map_err(|Short| Malformed { id: Some(id) })
    }

    fn body(kind: u8, id: u32, r: &mut Reader<'a>) -> Result<Request<'a>, Short> {
        Ok(match kind {
            FXP_OPEN => Request::Open { id, path: r.string()?, pflags: r.u32()?, attrs: Attrs::parse(r)? },
            FXP_CLOSE => Request::Close { id, handle: r.string()? },
            FXP_READ => Request::Read { id, handle: r.string()?, offset: r.u64()?, len: r.u32()? },
            FXP_WRITE => Request::Write { id, handle: r.string()?, offset: r.u64()?, data: r.string()? },
            FXP_LSTAT => Request::Lstat { id, path: r.string()? },
            FXP_FSTAT => Request::Fstat { id, handle: r.string()? },
            FXP_SETSTAT => Request::Setstat { id, path: r.string()?, attrs: Attrs::parse(r)? },
            FXP_FSETSTAT => Request::Fsetstat { id, handle: r.string()?, attrs: Attrs::parse(r)? },
            FXP_OPENDIR => Request::Opendir { id, path: r.string()? },
            FXP_READDIR => Request::Readdir { id, handle: r.string()? },
            FXP_REMOVE => Request::Remove { id, path: r.string()? },
            FXP_MKDIR => Request::Mkdir { id, path: r.string()?, attrs: Attrs::parse(r)? },
            FXP_RMDIR => Request::Rmdir { id, path: r.string()? },
            FXP_REALPATH => Request::Realpath { id, path: r.string()? },
            FXP_STAT => Request::Stat { id, path: r.string()? },
            FXP_RENAME => Request::Rename { id, from: r.string()?, to: r.string()? },
            FXP_READLINK => Request::Readlink { id, path: r.string()? },
            FXP_SYMLINK => Request::Symlink { id, first: r.string()?, second: r.string()? },
            FXP_EXTENDED => Request::Extended { id, name: r.string()?, data: r.rest() },
            kind => Request::Unknown { id, kind },
        })
    }
}

/// The extended requests this server knows, parsed from [`Request::Extended`]'s data.
#[derive(Debug, PartialEq, Eq)]
pub enum Extended<'a> {
    PosixRename {
        from: &'a [u8],
        to: &'a [u8],
    },
    Statvfs {
        path: &'a [u8],
    },
    Fstatvfs {
        handle: &'a [u8],
    },
    Fsync {
        handle: &'a [u8],
    },
    Limits,
    /// Known but refused (OP_UNSUPPORTED): hardlink@openssh.com, and every other name.
    Unsupported,
}

impl<'a> Extended<'a> {
    pub fn parse(name: &[u8], data: &'a [u8]) -> Result<Extended<'a>, Short> {
        let mut r = Reader::new(data);
        Ok(match name {
            b"posix-rename@openssh.com" => Extended::PosixRename { from: r.string()?, to: r.string()? },
            b"statvfs@openssh.com" => Extended::Statvfs { path: r.string()? },
            b"fstatvfs@openssh.com" => Extended::Fstatvfs { handle: r.string()? },
            b"fsync@openssh.com" => Extended::Fsync { handle: r.string()? },
            b"limits@openssh.com" => Extended::Limits,
            _ => Extended::Unsupported,
        })
    }
}

// ---- writers ----

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// An SSH `string`. Callers keep strings far below 4 GiB (paths, names, bounded data).
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

/// Starts a packet of type `kind` (with the request id unless VERSION); returns where it starts,
/// for [`end`].
pub fn begin(out: &mut Vec<u8>, kind: u8, id: Option<u32>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, kind]);
    if let Some(id) = id {
        put_u32(out, id);
    }
    start
}

/// Writes the length of the packet begun at `start`.
pub fn end(out: &mut [u8], start: usize) {
    let len = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A STATUS response.
pub fn put_status(out: &mut Vec<u8>, id: u32, code: u32, message: &str) {
    let start = begin(out, FXP_STATUS, Some(id));
    put_u32(out, code);
    put_str(out, message.as_bytes());
    put_str(out, b"");
    end(out, start);
}

/// The VERSION response with our extensions.
pub fn put_version(out: &mut Vec<u8>) {
    let start = begin(out, FXP_VERSION, None);
    put_u32(out, VERSION);
    for (name, data) in EXTENSIONS {
        put_str(out, name.as_bytes());
        put_str(out, data.as_bytes());
    }
    end(out, start);
}

/// A HANDLE response.
pub fn put_handle(out: &mut Vec<u8>, id: u32, handle: &[u8]) {
    let start = begin(out, FXP_HANDLE, Some(id));
    put_str(out, handle);
    end(out, start);
}

/// An ATTRS response.
pub fn put_attrs(out: &mut Vec<u8>, id: u32, attrs: &Attrs) {
    let start = begin(out, FXP_ATTRS, Some(id));
    attrs.encode(out);
    end(out, start);
}

/// A NAME response with one name (REALPATH, READLINK): long name = name, no attributes.
pub fn put_one_name(out: &mut Vec<u8>, id: u32, name: &[u8]) {
    let start = begin(out, FXP_NAME, Some(id));
    put_u32(out, 1);
    put_str(out, name);
    put_str(out, name);
    Attrs::default().encode(out);
    end(out, start);
}

/// The status text the draft gives each code, for STATUS messages without a better one.
pub fn status_text(code: u32) -> &'static str {
    match code {
        FX_OK => "Success",
        FX_EOF => "End of file",
        FX_NO_SUCH_FILE => "No such file",
        FX_PERMISSION_DENIED => "Permission denied",
        FX_BAD_MESSAGE => "Bad message",
        FX_OP_UNSUPPORTED => "Operation unsupported",
        _ => "Failure",
    }
}
