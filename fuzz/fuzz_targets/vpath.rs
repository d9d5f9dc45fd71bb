//! Fuzz target: the virtual-path resolver. Whatever a client sends as a path argument, with
//! whatever current directory, the joined path is absolute and normalised (no `.`, `..` or
//! empty components), stays under the root, respects the length limits, and is a fixed
//! point (joining it again, from anywhere, gives it back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorftpd::fs::vpath::{MAX_NAME, MAX_PATH, PathError, VPath};

fn check(p: &VPath) {
    let b = p.as_bytes();
    assert_eq!(b.first(), Some(&b'/'));
    assert!(b.len() <= MAX_PATH);
    assert!(!b.contains(&0));
    assert!(p.is_root() || !b.ends_with(b"/"));
    for c in b[1..].split(|&x| x == b'/') {
        if p.is_root() {
            break;
        }
        assert!(!c.is_empty() && c != b"." && c != b"..", "component {c:?} in {b:?}");
        assert!(c.len() <= MAX_NAME);
    }
    // Fixed point: an absolute path is where it says, from any directory.
    assert_eq!(VPath::root().join(b).as_ref(), Ok(p));
    assert_eq!(p.join(b).as_ref(), Ok(p));
    assert_eq!(p.join(b"").as_ref(), Ok(p));
    assert_eq!(p.join(b".").as_ref(), Ok(p));
    // The relative form resolves back to the same place from the root.
    assert_eq!(VPath::root().join(p.relative()).as_ref(), Ok(p));
    // `..` never climbs above the root.
    let mut up = p.clone();
    for _ in 0..=p.components().count() {
        up = up.join(b"..").expect("going up cannot fail");
    }
    assert!(up.is_root());
    assert_eq!(p.parent(), p.join(b"..").expect("parent"));
    let joined = p.parent().join(p.file_name()).expect("parent + name");
    assert_eq!(&joined, p);
}

fuzz_target!(|data: &[u8]| {
    // First part: the current directory (as a client would reach it with CWD); the rest: the argument.
    let (cwd_arg, arg) = match data.iter().position(|&b| b == 0xFE) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let cwd = match VPath::root().join(cwd_arg) {
        Ok(c) => c,
        Err(_) => VPath::root(),
    };
    check(&cwd);
    match cwd.join(arg) {
        Ok(p) => {
            check(&p);
            // Lexical model: a stack of components.
            let mut stack: Vec<&[u8]> = if arg.first() == Some(&b'/') { Vec::new() } else { cwd.components().collect() };
            for c in arg.split(|&b| b == b'/') {
                match c {
                    b"" | b"." => {}
                    b".." => {
                        stack.pop();
                    }
                    name => stack.push(name),
                }
            }
            let model: Vec<u8> = if stack.is_empty() { b"/".to_vec() } else { stack.iter().flat_map(|c| [&b"/"[..], c].concat()).collect() };
            assert_eq!(p.as_bytes(), &model[..]);
        }
        Err(PathError::Nul) => assert!(arg.contains(&0)),
        Err(PathError::TooLong) => assert!(!arg.contains(&0)),
    }
});
