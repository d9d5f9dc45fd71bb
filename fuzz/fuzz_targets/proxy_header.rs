//! Fuzz target: the PROXY protocol v1/v2 header parser (src/proto/proxy.rs), fed the bytes a
//! trusted load balancer's connection starts with. Properties: no panic; a complete header
//! never claims more bytes than it was given nor more than MAX_HEADER; the verdict only depends
//! on the header's own bytes (appending data after it changes nothing); and every prefix of a
//! complete header asks for more rather than failing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorftpd::proto::proxy::{self, Parse};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(proxy::MAX_HEADER + 64)];
    match proxy::parse(data) {
        Parse::Done { consumed, source, dest } => {
            assert!(consumed > 0 && consumed <= data.len() && consumed <= proxy::MAX_HEADER);
            assert_eq!(source.is_some(), dest.is_some(), "addresses come in pairs");
            // The header alone gives the same verdict: nothing after it was read.
            match proxy::parse(&data[..consumed]) {
                Parse::Done { consumed: c, source: s, dest: d } => {
                    assert_eq!((c, s, d), (consumed, source, dest));
                }
                _ => panic!("the header alone is not a header"),
            }
            for cut in 0..consumed {
                assert!(
                    matches!(proxy::parse(&data[..cut]), Parse::NeedMore),
                    "a prefix of {cut} bytes of a valid header must need more"
                );
            }
        }
        Parse::NeedMore => assert!(data.len() < proxy::MAX_HEADER, "more than MAX_HEADER bytes is never incomplete"),
        Parse::Invalid(_) => {}
    }
});
