//! The engine's test client: builds packets, feeds them, splits and decodes the answers,
//! over a temporary tree with a root to serve and an `outside` beside it.

use super::attrs::Attrs;
use super::engine::{DirectDisk, Engine, Options, Step};
use super::proto::*;
use crate::auth::access::{Access, Auth};
use crate::auth::perms::Perms;
use crate::fs::jail::Jail;
use crate::fs::testdir::TempDir;

/// A client of one engine over `t/root` (with `t/outside` beside it).
pub(super) struct Client {
    pub eng: Engine,
    pub auth: Auth,
    pub t: TempDir,
    next_id: u32,
}

/// One response packet.
#[derive(Debug)]
pub(super) struct Resp {
    pub kind: u8,
    pub id: u32,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn status(&self) -> (u32, String) {
        assert_eq!(self.kind, FXP_STATUS, "not a STATUS: {self:?}");
        let mut r = Reader::new(&self.body);
        let code = r.u32().expect("code");
        let msg = String::from_utf8(r.string().expect("msg").to_vec()).expect("utf8");
        (code, msg)
    }

    pub fn code(&self) -> u32 {
        self.status().0
    }

    pub fn handle(&self) -> Vec<u8> {
        assert_eq!(self.kind, FXP_HANDLE, "not a HANDLE: {self:?}");
        Reader::new(&self.body).string().expect("handle").to_vec()
    }

    pub fn data(&self) -> Vec<u8> {
        assert_eq!(self.kind, FXP_DATA, "not DATA: {self:?}");
        Reader::new(&self.body).string().expect("data").to_vec()
    }

    pub fn attrs(&self) -> Attrs {
        assert_eq!(self.kind, FXP_ATTRS, "not ATTRS: {self:?}");
        Attrs::parse(&mut Reader::new(&self.body)).expect("attrs")
    }

    /// (name, long name, attrs) of a NAME response.
    pub fn names(&self) -> Vec<(Vec<u8>, Vec<u8>, Attrs)> {
        assert_eq!(self.kind, FXP_NAME, "not NAME: {self:?}");
        let mut r = Reader::new(&self.body);
        let n = r.u32().expect("count");
        (0..n)
            .map(|_| {
                let name = r.string().expect("name").to_vec();
                let long = r.string().expect("long").to_vec();
                (name, long, Attrs::parse(&mut r).expect("attrs"))
            })
            .collect()
    }

    pub fn u64s(&self) -> Vec<u64> {
        assert_eq!(self.kind, FXP_EXTENDED_REPLY, "not EXTENDED_REPLY: {self:?}");
        self.body.chunks(8).map(|c| u64::from_be_bytes(c.try_into().expect("u64"))).collect()
    }
}

pub(super) fn s(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    put_str(&mut v, b);
    v
}

pub(super) fn u32b(x: u32) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}

pub(super) fn u64b(x: u64) -> Vec<u8> {
    x.to_be_bytes().to_vec()
}

pub(super) fn attrs_bytes(a: &Attrs) -> Vec<u8> {
    let mut v = Vec::new();
    a.encode(&mut v);
    v
}

/// A framed packet.
pub(super) fn packet(kind: u8, id: Option<u32>, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let start = begin(&mut v, kind, id);
    v.extend_from_slice(body);
    end(&mut v, start);
    v
}

/// Splits framed responses.
pub(super) fn split(mut out: &[u8]) -> Vec<Resp> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let len = u32::from_be_bytes(out[..4].try_into().expect("len")) as usize;
        let p = &out[4..4 + len];
        let (id, body) = if p[0] == FXP_VERSION {
            (0, p[1..].to_vec())
        } else {
            (u32::from_be_bytes(p[1..5].try_into().expect("id")), p[5..].to_vec())
        };
        v.push(Resp { kind: p[0], id, body });
        out = &out[4 + len..];
    }
    v
}

/// The standard tree: a root to serve and an `outside` that must stay unreachable.
pub(super) fn fixture() -> TempDir {
    let t = TempDir::new("sftp");
    t.dir(b"root/pub/dir");
    t.dir(b"root/private");
    t.dir(b"outside");
    t.file(b"outside/secret", b"outside");
    t.file(b"root/pub/file.txt", b"hello world");
    t.file(b"root/.hidden", b"dot");
    t.file(b"root/pub/skip.iso", b"denied");
    t.symlink(b"file.txt", b"root/pub/alias");
    t.symlink(b"../../", b"root/esc");
    t.symlink(b"/etc", b"root/abs");
    t.symlink(b"../outside", b"root/out");
    t
}

impl Client {
    pub fn with(perms: Perms, anonymous: bool, opts: Options, auth: Auth) -> Client {
        Client::on(fixture(), perms, anonymous, opts, auth)
    }

    pub fn on(t: TempDir, perms: Perms, anonymous: bool, opts: Options, auth: Auth) -> Client {
        let root = Jail::open(&t.at(b"root"), false).expect("jail");
        let access = Access {
            user: if anonymous { "anonymous".into() } else { "alice".into() },
            anonymous,
            base: perms,
            jail: None,
        };
        let eng = Engine::new(access, &root, opts).expect("engine");
        let mut c = Client { eng, auth, t, next_id: 1 };
        c.feed(&packet(FXP_INIT, None, &u32b(3)));
        let r = c.run();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, FXP_VERSION);
        c
    }

    pub fn assemble(eng: Engine, auth: Auth, t: TempDir) -> Client {
        Client { eng, auth, t, next_id: 1 }
    }

    pub fn new(perms: Perms) -> Client {
        Client::with(perms, false, Options::default(), Auth::default())
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        assert_eq!(self.eng.feed(bytes), bytes.len(), "input refused");
    }

    /// Processes everything, drains and splits the output.
    pub fn run(&mut self) -> Vec<Resp> {
        let mut disk = DirectDisk;
        let mut all = Vec::new();
        loop {
            let step = self.eng.process(&self.auth, &mut disk);
            let out = self.eng.output().to_vec();
            self.eng.consume_output(out.len());
            all.extend_from_slice(&out);
            match step {
                Step::Yield | Step::OutputFull => continue,
                _ => break,
            }
        }
        split(&all)
    }

    /// One request; its one response (with the right id).
    pub fn req(&mut self, kind: u8, body: &[u8]) -> Resp {
        let id = self.next_id;
        self.next_id += 1;
        self.feed(&packet(kind, Some(id), body));
        let mut r = self.run();
        assert_eq!(r.len(), 1, "{r:?}");
        let r = r.remove(0);
        assert_eq!(r.id, id);
        r
    }

    pub fn path_req(&mut self, kind: u8, path: &[u8]) -> Resp {
        self.req(kind, &s(path))
    }

    pub fn open(&mut self, path: &[u8], pflags: u32, attrs: &Attrs) -> Resp {
        self.req(FXP_OPEN, &[s(path), u32b(pflags), attrs_bytes(attrs)].concat())
    }

    pub fn open_ok(&mut self, path: &[u8], pflags: u32) -> Vec<u8> {
        self.open(path, pflags, &Attrs::default()).handle()
    }

    pub fn read(&mut self, h: &[u8], off: u64, len: u32) -> Resp {
        self.req(FXP_READ, &[s(h), u64b(off), u32b(len)].concat())
    }

    pub fn write(&mut self, h: &[u8], off: u64, data: &[u8]) -> Resp {
        self.req(FXP_WRITE, &[s(h), u64b(off), s(data)].concat())
    }

    pub fn close(&mut self, h: &[u8]) -> Resp {
        self.req(FXP_CLOSE, &s(h))
    }

    pub fn ext(&mut self, name: &[u8], data: &[u8]) -> Resp {
        self.req(FXP_EXTENDED, &[s(name), data.to_vec()].concat())
    }

    pub fn two(&mut self, kind: u8, a: &[u8], b: &[u8]) -> Resp {
        self.req(kind, &[s(a), s(b)].concat())
    }

    pub fn setstat(&mut self, path: &[u8], a: &Attrs) -> Resp {
        self.req(FXP_SETSTAT, &[s(path), attrs_bytes(a)].concat())
    }

    pub fn readdir_all(&mut self, path: &[u8]) -> Vec<(Vec<u8>, Vec<u8>, Attrs)> {
        let h = self.path_req(FXP_OPENDIR, path).handle();
        let mut all = Vec::new();
        loop {
            let r = self.req(FXP_READDIR, &s(&h));
            if r.kind == FXP_STATUS {
                assert_eq!(r.code(), FX_EOF);
                break;
            }
            let batch = r.names();
            assert!(!batch.is_empty() && batch.len() <= 100, "{}", batch.len());
            all.extend(batch);
        }
        assert_eq!(self.close(&h).code(), FX_OK);
        all
    }

    pub fn disk(&self, rel: &[u8]) -> Vec<u8> {
        std::fs::read(self.t.at(rel)).expect("read back")
    }
}
