//! The import graph points down only (DESIGN.md "Layers"): every module of
//! src/ is given a layer here, and no `crate::` path (or `super::` reaching the
//! crate root) may name a module of a higher layer. The two protocols never
//! name each other; the bench names only io and proto, and only the command
//! line names the bench. A new top-level module must be placed here.

use std::path::Path;

/// Top-level modules and their layer (higher imports lower, never the other
/// way; modules of one layer may import each other, except the protocols).
const LAYERS: &[(&str, u8)] = &[
    // The command line: clap flags, the bench's and passwd's arguments.
    ("flags", 6),
    // The per-core loop: poll, accept, dispatch by token, timers.
    ("worker", 5),
    // The protocols: siblings (see PROTOCOLS).
    ("ftp", 4),
    ("sftp", 4),
    // Services the loop and sessions share: what a session needs from its
    // loop (slot, roles, shared admission state), the helper pools, the
    // validated settings and what they are built from.
    ("services", 3),
    ("pool", 3),
    ("disk", 3),
    ("lists", 3),
    ("turns", 3),
    ("config", 3),
    ("pasv_address", 3),
    ("pasv_ports", 3),
    ("privs", 3),
    ("systemd", 3),
    // Base services: they take the settings they need as values, never the
    // whole Config, and know nothing of slots or admission.
    ("auth", 2),
    ("fs", 2),
    ("obs", 2),
    ("log", 2),
    ("tls", 2),
    ("rate", 2),
    ("cidr", 2),
    ("limits", 2),
    // The bottom: syscalls, sockets, rustls I/O; pure protocol parsers.
    ("io", 1),
    ("proto", 1),
];

/// Same layer, yet they must not import each other.
const PROTOCOLS: &[&str] = &["ftp", "sftp"];
/// The bench is apart: it uses only these, and only `flags` names it.
const BENCH: &str = "bench";
const BENCH_USES: &[&str] = &["io", "proto"];
const BENCH_USED_BY: &[&str] = &["flags"];

/// The crate-root modules a file's source names: `crate::x`, `crate::{x, y::z}`,
/// and `super::` chains that climb to the root (`depth` is the file's module
/// depth: 1 for src/x.rs and src/x/mod.rs, 2 for src/x/y.rs). Line comments
/// are skipped.
fn named_roots(src: &str, depth: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let code = line.find("//").map_or(line, |i| &line[..i]);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `mycrate::` (`$crate::` is the root, and counted)
            }
            if rest.starts_with('{') {
                // The group may run over several lines: read on in `src`.
                let at = line_start + (code.len() - rest.len()) + 1;
                out.extend(group_heads(&src[at..]));
            } else {
                out.push(ident(rest));
            }
        }
        let mut rest = code;
        while let Some(i) = rest.find("super::") {
            let before = rest[..i].chars().last();
            rest = &rest[i..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                rest = &rest["super::".len()..];
                continue;
            }
            let mut k = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
                k += 1;
            }
            if k >= depth {
                out.push(ident(rest));
            }
        }
    }
    out.retain(|s| !s.is_empty() && s != "self");
    out
}

fn ident(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The first identifier of each top-level item of the `{...}` group that
/// `text` starts inside (just after its `{`).
fn group_heads(text: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut level, mut at_item) = (0usize, true);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => level += 1,
            '}' if level == 0 => break,
            '}' => level -= 1,
            ',' if level == 0 => at_item = true,
            c if at_item && level == 0 && (c.is_alphanumeric() || c == '_') => {
                heads.push(ident(&text[i..]));
                at_item = false;
            }
            _ => {}
        }
        if let Some((_, '/')) = chars.peek() {
            if c == '/' {
                // A comment inside the group: skip to the end of the line.
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
        }
    }
    heads
}

fn rank(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r)
}

/// Every `.rs` file under `dir`, with its path relative to src/.
fn rust_files(dir: &Path, rel: &str, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if p.is_dir() {
            rust_files(&p, &rel, out);
        } else if name.ends_with(".rs") {
            out.push((rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

/// What is wrong with the imports of the file at `rel` (relative to src/).
fn violations(rel: &str, src: &str) -> Vec<String> {
    if rel == "lib.rs" || rel == "main.rs" {
        return Vec::new(); // the root and the binary sit above everything
    }
    let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
    let module = parts[0];
    let depth = if parts.last() == Some(&"mod") { parts.len() - 1 } else { parts.len() };
    let mut bad = Vec::new();
    if module != BENCH && rank(module).is_none() {
        bad.push(format!("src/{rel}: module `{module}` has no layer in tests/it/layers.rs"));
        return bad;
    }
    for to in named_roots(src, depth) {
        if to == module {
            continue;
        }
        let why = if module == BENCH {
            (!BENCH_USES.contains(&to.as_str())).then(|| "the bench uses only io and proto".to_string())
        } else if to == BENCH {
            (!BENCH_USED_BY.contains(&module)).then(|| "only the command line names the bench".to_string())
        } else if PROTOCOLS.contains(&module) && PROTOCOLS.contains(&to.as_str()) {
            Some("the protocols are siblings that never import each other".to_string())
        } else {
            match (rank(module), rank(&to)) {
                (Some(a), Some(b)) if b > a => Some(format!("layer {b} is above `{module}`'s layer {a}")),
                (_, None) => Some(format!("`{to}` has no layer")),
                _ => None,
            }
        };
        if let Some(why) = why {
            bad.push(format!("src/{rel}: names crate::{to}: {why}"));
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn imports_point_down_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, "", &mut files);
    assert!(files.len() > 50, "src/ read: {} files", files.len());
    let bad: Vec<String> = files.iter().flat_map(|(rel, src)| violations(rel, src)).collect();
    assert!(bad.is_empty(), "upward or sideways imports (see DESIGN.md \"Layers\"):\n{}", bad.join("\n"));
}

#[test]
fn the_scanner_sees_every_form_of_path() {
    let src = "use crate::fs::jail::Jail;\n\
               // use crate::worker::Slot; (a comment)\n\
               use crate::{\n    limits,\n    // obs, in a comment\n    services::{Shared, slot::Slot},\n};\n\
               fn f() { crate::worker::go(); super::super::ftp::x(); super::sibling(); }\n\
               macro_rules! m { () => { $crate::log::info() } }\n";
    let mut got = named_roots(src, 2);
    got.sort();
    assert_eq!(got, ["fs", "ftp", "limits", "log", "services", "worker"]);
    // Depth 1 (src/x.rs): `super::` is already the crate root.
    assert_eq!(named_roots("use super::worker::Slot;", 1), ["worker"]);
}

#[test]
fn an_upward_import_is_reported() {
    assert_eq!(violations("fs/jail.rs", "use crate::limits;\nuse crate::worker::Slot;\n").len(), 1);
    assert_eq!(violations("obs/metrics.rs", "fn f(_: crate::services::Refusal) {}").len(), 1);
    assert_eq!(violations("io/tlsio.rs", "use crate::tls::with_session;").len(), 1);
    assert_eq!(violations("auth/access.rs", "use crate::config::Config;").len(), 1);
    assert_eq!(violations("config.rs", "Bench(crate::bench::BenchArgs)").len(), 1);
    assert_eq!(violations("ftp/mod.rs", "use crate::worker::Slot;").len(), 1);
    assert_eq!(violations("sftp/ssh.rs", "use crate::ftp::Session;").len(), 1);
    assert_eq!(violations("ftp/mod.rs", "use crate::sftp::Engine;").len(), 1);
    assert_eq!(violations("bench/tls.rs", "crate::tls::provider()").len(), 1);
    assert_eq!(violations("newthing.rs", "").len(), 1, "an unplaced module");
    assert!(violations("ftp/mod.rs", "use crate::services::Slot; use crate::io::net;").is_empty());
    assert!(violations("flags.rs", "Bench(crate::bench::BenchArgs)").is_empty());
}
