//! Micro-benchmarks of the pure hot-path functions (`cargo bench --bench micro`), one criterion group per module.
//!
//! Bench ids are `area/case` (`parse/retr`, `telnet/strip`, …) so runs archived in `perf/` stay
//! comparable. Each module keeps its own `fn` and its own `criterion_group!`; add a new module's
//! group in the marked spot at the bottom.

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, criterion_group, criterion_main};
use mirrorftpd::proto::{addr, command, reply};

// ---- proto: command lines, replies, addresses ----

fn proto_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.bench_function("retr", |b| {
        let line: &[u8] = b"RETR /pub/debian/dists/bookworm/main/binary-amd64/Packages.xz\r";
        b.iter(|| command::parse(black_box(line)))
    });
    g.bench_function("noop", |b| b.iter(|| command::parse(black_box(b"NOOP"))));
    g.bench_function("alias_lowercase", |b| b.iter(|| command::parse(black_box(b"xpwd"))));
    g.bench_function("unknown", |b| b.iter(|| command::parse(black_box(b"GET /index.html HTTP/1.1"))));
    g.bench_function("lookup", |b| b.iter(|| command::lookup(black_box(b"mlsd"))));
    g.bench_function("port", |b| b.iter(|| addr::parse_port(black_box(b"192,168,100,200,195,81"))));
    g.bench_function("eprt_v4", |b| b.iter(|| addr::parse_eprt(black_box(b"|1|192.168.100.200|50001|"))));
    g.bench_function("eprt_v6", |b| b.iter(|| addr::parse_eprt(black_box(b"|2|2001:db8::8:800:200c:417a|50001|"))));
    g.bench_function("rest", |b| b.iter(|| addr::parse_u64(black_box(b"10000000000"))));
    g.bench_function("type", |b| b.iter(|| addr::parse_type(black_box(b"I"))));
    g.finish();
}

fn proto_telnet(c: &mut Criterion) {
    let mut g = c.benchmark_group("telnet");
    // The common case: no IAC at all, so the buffer is unchanged and can be reused.
    g.bench_function("strip", |b| {
        let mut line = *b"RETR /pub/debian/dists/bookworm/main/binary-amd64/Packages.xz";
        b.iter(|| command::strip_telnet(black_box(&mut line)))
    });
    // An urgent ABOR: IAC IP IAC DM ABOR, copied fresh each time since stripping rewrites it.
    g.bench_function("strip_abor", |b| {
        const SYNCH: [u8; 8] = *b"\xff\xf4\xff\xf2ABOR";
        b.iter(|| {
            let mut line = black_box(SYNCH);
            let n = command::strip_telnet(&mut line);
            black_box(line[..n].len())
        })
    });
    g.finish();
}

fn proto_reply(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply");
    let mut out = Vec::with_capacity(4096);
    g.bench_function("push", |b| {
        b.iter(|| {
            out.clear();
            reply::push(&mut out, reply::TRANSFER_OK, black_box(b"Transfer complete."));
            black_box(out.len())
        })
    });
    g.bench_function("pasv", |b| {
        b.iter(|| {
            out.clear();
            addr::push_pasv_text(&mut out, black_box(Ipv4Addr::new(192, 168, 0, 10)), black_box(50_001));
            black_box(out.len())
        })
    });
    g.bench_function("quoted_path", |b| {
        b.iter(|| {
            out.clear();
            reply::push_quoted_path(&mut out, black_box(b"/pub/debian/dists/\"stable\""));
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(proto, proto_parse, proto_telnet, proto_reply);

fn sample_stat() -> mirrorftpd::fs::jail::Stat {
    mirrorftpd::fs::jail::Stat {
        kind: mirrorftpd::fs::jail::FileKind::File,
        size: 4_700_000_000,
        mtime: 1_700_000_000,
        mode: 0o100644,
        nlink: 1,
        uid: 0,
        gid: 0,
        dev: 0x803,
        ino: 123_456,
    }
}

/// One LIST line and one MLSD line, as produced per directory entry.
fn listing_format(c: &mut Criterion) {
    use mirrorftpd::fs::listing;
    let st = sample_stat();
    let mut out = Vec::with_capacity(256);
    let mut g = c.benchmark_group("listing");
    g.bench_function("list_line", |b| {
        b.iter(|| {
            out.clear();
            listing::push_list_line(
                &mut out,
                black_box(b"debian-13.2.0-amd64-DVD-1.iso"),
                &st,
                None,
                1_763_900_000,
                false,
            );
            black_box(out.len())
        })
    });
    let mlsd = listing::ListOptions::new(listing::ListFormat::Mlsd, 1_763_900_000);
    g.bench_function("mlsd_line", |b| {
        b.iter(|| {
            out.clear();
            listing::push_mlsx_facts(&mut out, black_box(&st), None, &mlsd);
            out.extend_from_slice(b"debian-13.2.0-amd64-DVD-1.iso\r\n");
            black_box(out.len())
        })
    });
    g.finish();
}

/// Virtual path joins (every command with a path) and the glob matcher.
fn path_resolve(c: &mut Criterion) {
    use mirrorftpd::fs::{glob, vpath::VPath};
    let cwd = VPath::root().join(b"/pub/debian/dists/trixie").unwrap_or_default();
    let mut g = c.benchmark_group("path");
    g.bench_function("join_relative", |b| b.iter(|| black_box(cwd.join(black_box(b"main/binary-amd64/Packages.xz")))));
    g.bench_function("join_dotdot", |b| b.iter(|| black_box(cwd.join(black_box(b"../../../../../etc/./passwd")))));
    // The kernel-enforced resolution itself: openat2(RESOLVE_BENEATH) + fstat.
    let dir = std::env::temp_dir().join(format!("mirrorftpd-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("pub/debian"));
    let _ = std::fs::write(dir.join("pub/debian/README"), b"x");
    if let Ok(jail) = mirrorftpd::fs::jail::Jail::open(&dir, false) {
        let p = VPath::root().join(b"/pub/debian/README").unwrap_or_default();
        g.bench_function("jail_stat", |b| b.iter(|| black_box(jail.stat(black_box(&p)).is_ok())));
    }
    g.bench_function("glob_match", |b| {
        b.iter(|| black_box(glob::matches(black_box(b"*amd64*.iso"), black_box(b"debian-13.2.0-amd64-DVD-1.iso"))))
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a cached listing saves and what revalidating one costs, on a 10,000-entry
/// directory: the whole fill (getdents64 + fstatat + LIST lines), a stat-only pass
/// (getdents64 + fstatat, what a per-entry revalidation would cost), and the hit path's
/// check (resolve + fstat of the directory).
fn listing_cache(c: &mut Criterion) {
    use mirrorftpd::fs::jail::Jail;
    use mirrorftpd::fs::listing::{ListFormat, ListOptions, Lister};
    use mirrorftpd::fs::vpath::VPath;
    let dir = std::env::temp_dir().join(format!("mirrorftpd-bench-lc-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("d"));
    for i in 0..10_000 {
        let _ = std::fs::write(dir.join(format!("d/f{i:05}.bin")), b"x");
    }
    let Ok(jail) = Jail::open(&dir, false) else { return };
    let p = VPath::root().join(b"/d").unwrap_or_default();
    let mut g = c.benchmark_group("listing_cache");
    g.sample_size(20);
    g.bench_function("fill_10k", |b| {
        b.iter(|| {
            let Ok(fd) = jail.open_dir(&p) else { return 0 };
            let Ok(lister) = Lister::new(fd, ListOptions::new(ListFormat::List, 1_763_900_000)) else { return 0 };
            match mirrorftpd::lists::fill::fill(lister, 64 << 20) {
                Ok(mirrorftpd::lists::fill::Filled::Whole(v)) => black_box(v.len()),
                _ => 0,
            }
        })
    });
    g.bench_function("stat_only_10k", |b| {
        use mirrorftpd::io::fsys;
        b.iter(|| {
            let Ok(fd) = jail.open_dir(&p) else { return 0 };
            let mut ds = fsys::DirStream::new(fd, 32 << 10);
            let mut n = 0;
            while let Ok(Some((dfd, name))) = ds.next_entry() {
                n += usize::from(fsys::fstatat(dfd, name, libc::AT_SYMLINK_NOFOLLOW).is_ok());
            }
            black_box(n)
        })
    });
    g.bench_function("hit_check", |b| b.iter(|| black_box(jail.stat(black_box(&p)).is_ok())));
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(listing, listing_format, listing_cache);
criterion_group!(path, path_resolve);

criterion_main!(proto, listing, path, disk);

/// The page-cache probes of the download path (src/io/cache.rs), on a 4 MiB
/// range that is cached: what a reactor pays before each sendfile chunk, and
/// what a disk helper pays to warm a range that turns out to be warm (a
/// sendfile to /dev/null instead measured 329 µs against pread's 92).
fn disk_cache(c: &mut Criterion) {
    use mirrorftpd::io::cache;
    use std::io::Write;
    use std::os::fd::AsFd;
    const LEN: usize = 4 << 20;
    let path = std::env::temp_dir().join(format!("mirrorftpd-bench-cache-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(&vec![1u8; LEN]).expect("write");
    drop(f);
    let f = std::fs::File::open(&path).expect("open");
    let mut buf = vec![0u8; 256 << 10];
    let mut g = c.benchmark_group("disk_cache");
    g.bench_function("cachestat_4MiB", |b| b.iter(|| cache::cachestat(f.as_fd(), 0, LEN as u64)));
    g.bench_function("probe_nowait_4MiB", |b| b.iter(|| cache::probe(f.as_fd(), 0, LEN as u64)));
    g.bench_function("pread_nowait_64KiB", |b| b.iter(|| cache::pread_nowait(f.as_fd(), &mut buf[..64 << 10], 0)));
    g.bench_function("warm_pread_4MiB", |b| {
        b.iter(|| {
            let mut off = 0;
            while off < LEN {
                off += cache::pread(f.as_fd(), &mut buf, off as u64).expect("pread").max(1);
            }
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(disk, disk_cache);
