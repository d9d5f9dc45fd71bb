//! SFTP v3 file attributes (`ATTRS`): parsed from SETSTAT/FSETSTAT/OPEN/MKDIR, written from a
//! [`Stat`] for STAT/LSTAT/FSTAT/READDIR.
//!
//! Owners are not shown (LIST shows `ftp ftp`; the same policy here: no UIDGID flag). The
//! access time is given as the modification time, which is all `Stat` keeps. Times are v3's
//! unsigned 32-bit seconds, clamped.

use super::proto::{Reader, Short, put_u32, put_u64};
use crate::fs::jail::Stat;

pub const ATTR_SIZE: u32 = 0x01;
pub const ATTR_UIDGID: u32 = 0x02;
pub const ATTR_PERMISSIONS: u32 = 0x04;
pub const ATTR_ACMODTIME: u32 = 0x08;
pub const ATTR_EXTENDED: u32 = 0x8000_0000;

/// The attributes a packet carries (each present only if its flag was set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    /// Full mode as sent (type bits and permission bits).
    pub perms: Option<u32>,
    /// (atime, mtime), seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    /// Reads an ATTRS structure; extended pairs are read and ignored, as OpenSSH does.
    pub fn parse(r: &mut Reader<'_>) -> Result<Attrs, Short> {
        let flags = r.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(r.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((r.u32()?, r.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.perms = Some(r.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((r.u32()?, r.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            let count = r.u32()?;
            // Each pair is at least 8 bytes, so a huge count runs out of packet quickly.
            for _ in 0..count {
                r.string()?;
                r.string()?;
            }
        }
        Ok(a)
    }

    /// What a client sees of a file: size, permissions (with type bits), times.
    pub fn from_stat(st: &Stat) -> Attrs {
        let t = clamp_time(st.mtime);
        Attrs { size: Some(st.size), uid_gid: None, perms: Some(st.mode), times: Some((t, t)) }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = 0;
        for (present, bit) in [
            (self.size.is_some(), ATTR_SIZE),
            (self.uid_gid.is_some(), ATTR_UIDGID),
            (self.perms.is_some(), ATTR_PERMISSIONS),
            (self.times.is_some(), ATTR_ACMODTIME),
        ] {
            if present {
                flags |= bit;
            }
        }
        put_u32(out, flags);
        if let Some(s) = self.size {
            put_u64(out, s);
        }
        if let Some((u, g)) = self.uid_gid {
            put_u32(out, u);
            put_u32(out, g);
        }
        if let Some(p) = self.perms {
            put_u32(out, p);
        }
        if let Some((a, m)) = self.times {
            put_u32(out, a);
            put_u32(out, m);
        }
    }
}

/// Seconds since the epoch as v3's u32 (before 1970: 0; after 2106: the largest).
pub fn clamp_time(secs: i64) -> u32 {
    u32::try_from(secs.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::jail::FileKind;

    fn round(a: &Attrs) -> Attrs {
        let mut out = Vec::new();
        a.encode(&mut out);
        let mut r = Reader::new(&out);
        let back = Attrs::parse(&mut r).expect("parse");
        assert!(r.rest().is_empty());
        back
    }

    #[test]
    fn encode_parse_round_trip() {
        let a = Attrs { size: Some(5 << 32), uid_gid: Some((1, 2)), perms: Some(0o100644), times: Some((3, 4)) };
        assert_eq!(round(&a), a);
        assert_eq!(round(&Attrs::default()), Attrs::default());
        let mut out = Vec::new();
        Attrs::default().encode(&mut out);
        assert_eq!(out, [0, 0, 0, 0]);
    }

    #[test]
    fn extended_pairs_are_skipped_and_bounded() {
        let mut b = Vec::new();
        put_u32(&mut b, ATTR_PERMISSIONS | ATTR_EXTENDED);
        put_u32(&mut b, 0o755);
        put_u32(&mut b, 1);
        super::super::proto::put_str(&mut b, b"name");
        super::super::proto::put_str(&mut b, b"value");
        let a = Attrs::parse(&mut Reader::new(&b)).expect("parse");
        assert_eq!(a.perms, Some(0o755));
        let mut huge = Vec::new();
        put_u32(&mut huge, ATTR_EXTENDED);
        put_u32(&mut huge, u32::MAX);
        assert_eq!(Attrs::parse(&mut Reader::new(&huge)), Err(Short));
        assert_eq!(Attrs::parse(&mut Reader::new(&[0, 0, 0, ATTR_SIZE as u8, 1])), Err(Short));
    }

    #[test]
    fn from_stat_hides_owner_and_clamps_time() {
        let st =
            Stat { kind: FileKind::File, size: 7, mtime: -5, mode: 0o100600, nlink: 1, uid: 9, gid: 9, dev: 1, ino: 2 };
        let a = Attrs::from_stat(&st);
        assert_eq!(a, Attrs { size: Some(7), uid_gid: None, perms: Some(0o100600), times: Some((0, 0)) });
        assert_eq!(clamp_time(i64::MAX), u32::MAX);
        assert_eq!(clamp_time(1_700_000_000), 1_700_000_000);
    }
}
