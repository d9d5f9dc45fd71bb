//! A session's open handles: files being read or written and directories being listed, in a
//! table of at most [`limits::SFTP_MAX_HANDLES`]. A handle on the wire is 8 bytes: the slot
//! index and a generation, so a closed handle's string never names the next file in its slot.

use std::fs::File;

use crate::fs::vpath::VPath;
use crate::fs::write::Upload;
use crate::io::fsys::DirStream;
use crate::limits;

/// Length of every handle string this server hands out.
pub const HANDLE_LEN: usize = 8;

/// A file open for writing (an upload; see `files.rs`).
pub struct Writer {
    pub up: Upload,
    /// Whether the handle may also be read (READ|WRITE).
    pub readable: bool,
    /// APPEND: every write lands at `end`, whatever offset the client names.
    pub append: bool,
    /// The end of the file as this handle knows it (it holds the upload lock).
    pub end: u64,
    /// Without the write permission (append only): no write or truncation below this offset,
    /// the size at OPEN, so existing bytes can only be added to.
    pub floor: Option<u64>,
}

/// What an open handle is.
pub enum Kind {
    Read(File),
    Write(Box<Writer>),
    Dir(Box<DirState>),
}

/// A directory being listed by READDIR.
pub struct DirState {
    pub stream: DirStream,
    /// `.` and `..` are sent first, once.
    pub dots_sent: bool,
}

/// One open handle.
pub struct Handle {
    pub kind: Kind,
    /// The virtual path it was opened with.
    pub path: VPath,
    /// Bytes read and written through it (for the transfer log).
    pub read: u64,
    pub written: u64,
    /// When it was opened (the transfer time of the transfer log).
    pub opened: std::time::Instant,
}

impl Handle {
    pub fn new(kind: Kind, path: VPath) -> Handle {
        Handle { kind, path, read: 0, written: 0, opened: std::time::Instant::now() }
    }

    /// The file behind a file handle (for reads: `NeedDisk`; for FSTAT).
    pub fn file(&self) -> Option<&File> {
        match &self.kind {
            Kind::Read(f) => Some(f),
            Kind::Write(w) => Some(&w.up.file),
            Kind::Dir(_) => None,
        }
    }
}

/// Index of a handle in its session's table (what [`super::engine::NeedDisk`] names).
pub type HandleId = u32;

struct Slot {
    generation: u32,
    handle: Option<Handle>,
}

/// The table.
#[derive(Default)]
pub struct Handles {
    slots: Vec<Slot>,
    free: Vec<u32>,
    open: usize,
}

impl Handles {
    /// Number of open handles.
    pub fn len(&self) -> usize {
        self.open
    }

    pub fn is_empty(&self) -> bool {
        self.open == 0
    }

    /// Stores `h` and returns its id and wire string; `Err(h)` when the table is full.
    pub fn insert(&mut self, h: Handle) -> Result<(HandleId, [u8; HANDLE_LEN]), Handle> {
        if self.open >= limits::SFTP_MAX_HANDLES {
            return Err(h);
        }
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                let Ok(i) = u32::try_from(self.slots.len()) else { return Err(h) };
                self.slots.push(Slot { generation: 0, handle: None });
                i
            }
        };
        let Some(slot) = self.slots.get_mut(idx as usize) else { return Err(h) };
        slot.generation = slot.generation.wrapping_add(1);
        slot.handle = Some(h);
        self.open += 1;
        let mut wire = [0u8; HANDLE_LEN];
        wire[..4].copy_from_slice(&idx.to_be_bytes());
        wire[4..].copy_from_slice(&slot.generation.to_be_bytes());
        Ok((idx, wire))
    }

    /// The id of the open handle a wire string names.
    pub fn find(&self, wire: &[u8]) -> Option<HandleId> {
        let (i, g) = wire.split_at_checked(4).filter(|_| wire.len() == HANDLE_LEN)?;
        let idx = u32::from_be_bytes(i.try_into().ok()?);
        let generation = u32::from_be_bytes(g.try_into().ok()?);
        let slot = self.slots.get(idx as usize)?;
        (slot.generation == generation && slot.handle.is_some()).then_some(idx)
    }

    pub fn get(&self, id: HandleId) -> Option<&Handle> {
        self.slots.get(id as usize)?.handle.as_ref()
    }

    pub fn get_mut(&mut self, id: HandleId) -> Option<&mut Handle> {
        self.slots.get_mut(id as usize)?.handle.as_mut()
    }

    /// Takes the handle out (CLOSE); its slot is reused with a new generation.
    pub fn remove(&mut self, id: HandleId) -> Option<Handle> {
        let h = self.slots.get_mut(id as usize)?.handle.take()?;
        self.free.push(id);
        self.open -= 1;
        Some(h)
    }

    /// Every open handle, emptied (the session ends).
    pub fn drain(&mut self) -> Vec<Handle> {
        self.open = 0;
        self.free.clear();
        let out: Vec<Handle> = self.slots.iter_mut().filter_map(|s| s.handle.take()).collect();
        self.free.extend((0..self.slots.len()).filter_map(|i| u32::try_from(i).ok()).rev());
        out
    }
}
