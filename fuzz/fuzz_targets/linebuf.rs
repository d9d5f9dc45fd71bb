//! Fuzz target: the control-line framer. Input arrives in arbitrary chunks (the first bytes
//! choose the capacity and the chunk sizes); the framed lines must be exactly what a simple
//! reference splitter finds: every line shorter than the capacity comes out whole (CR before
//! LF dropped), a longer one is reported once as too long and its tail is dropped.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use mirrorftpd::io::linebuf::{Line, LineBuf};

/// A reader that hands out at most `chunk` bytes per call.
struct Chunky<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let chunk = usize::from(self.sizes.get(self.i % self.sizes.len().max(1)).copied().unwrap_or(7)).max(1);
        self.i += 1;
        let n = chunk.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Debug, PartialEq)]
enum Ev {
    Line(Vec<u8>),
    TooLong,
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let cap = usize::from(data[0]) % 64 + 2;
    let sizes = &data[1..4];
    let input = &data[4..];

    let mut lb = LineBuf::new(cap);
    let mut r = Chunky { data: input, sizes, i: 0 };
    let mut got = Vec::new();
    let mut guard = 0;
    loop {
        guard += 1;
        assert!(guard < 10 * input.len() + 100, "framer does not progress");
        match lb.next_line() {
            Line::Ready(s, e) => {
                assert!(s <= e);
                let l = lb.line_mut(s, e).to_vec();
                assert!(!l.contains(&b'\n'));
                assert!(l.len() < cap);
                got.push(Ev::Line(l));
                if guard % 3 == 0 {
                    lb.release_if_empty();
                }
            }
            Line::TooLong => got.push(Ev::TooLong),
            Line::Partial => {
                assert!(lb.pending() < cap);
                if lb.read_from(&mut r).expect("read") == 0 {
                    break;
                }
            }
        }
    }

    // Reference: split on LF; a line whose bytes (with LF) do not fit in `cap` is too long.
    let mut want = Vec::new();
    let mut rest = input;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let raw = &rest[..i];
        if i + 1 > cap {
            want.push(Ev::TooLong);
        } else {
            want.push(Ev::Line(raw.strip_suffix(b"\r").unwrap_or(raw).to_vec()));
        }
        rest = &rest[i + 1..];
    }
    if rest.len() >= cap {
        want.push(Ev::TooLong);
    }
    assert_eq!(got, want);
});
