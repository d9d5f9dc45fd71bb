//! Fuzz target: the SFTP packet parser (src/sftp/proto.rs, attrs.rs). Whatever bytes arrive,
//! the framer gives a length within bounds or refuses, the request parser never reads past the
//! packet, a parsed request keeps its id, and attributes survive an encode/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorftpd::limits;
use mirrorftpd::sftp::attrs::Attrs;
use mirrorftpd::sftp::proto::{self, Extended, Frame, Reader, Request};

fuzz_target!(|data: &[u8]| {
    match proto::frame(data) {
        Frame::Incomplete => assert!(
            data.len() < 4 || data.len() - 4 < u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize
        ),
        Frame::Packet(len) => assert!((5..=limits::SFTP_MAX_PACKET).contains(&len) && 4 + len <= data.len()),
        Frame::Bad(len) => assert!(len < 5 || len as usize > limits::SFTP_MAX_PACKET),
    }
    match Request::parse(data) {
        Ok(Request::Init { .. }) => assert_eq!(data[0], proto::FXP_INIT),
        Ok(req) => {
            assert!(data.len() >= 5);
            assert_eq!(req.id(), u32::from_be_bytes([data[1], data[2], data[3], data[4]]));
            match req {
                Request::Write { data: d, .. } => assert!(d.len() < data.len()),
                Request::Extended { name, data: rest, .. } => {
                    assert!(name.len() + rest.len() < data.len());
                    let _ = Extended::parse(name, rest);
                }
                _ => {}
            }
        }
        Err(m) => {
            if let Some(id) = m.id {
                assert!(data.len() >= 5);
                assert_eq!(id, u32::from_be_bytes([data[1], data[2], data[3], data[4]]));
            }
        }
    }
    if let Ok(a) = Attrs::parse(&mut Reader::new(data)) {
        let mut out = Vec::new();
        a.encode(&mut out);
        let back = Attrs::parse(&mut Reader::new(&out)).expect("our own encoding parses");
        assert_eq!(back, a);
    }
});
