//! Upload container checks (MP4/QuickTime/AVIF/HEIF top-level boxes, WebM
//! EBML header and Segment): any bytes give an answer, never a panic, a
//! hang or a large allocation, whatever type they are checked as.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use mediaedge::media_type::MediaType;
use mediaedge::upload::container::{ContainerError, applies, check};

fuzz_target!(|data: &[u8]| {
    for media in [
        MediaType::Mp4,
        MediaType::QuickTime,
        MediaType::Avif,
        MediaType::Heif,
        MediaType::Webm,
    ] {
        assert!(applies(media));
        match check(Cursor::new(data), media) {
            Ok(()) => {
                // Accepted: a box walk that ends exactly at the end of the
                // data, or an EBML header first.
                assert!(!data.is_empty());
                if media == MediaType::Webm {
                    assert_eq!(&data[..4], b"\x1A\x45\xDF\xA3");
                } else if media != MediaType::QuickTime {
                    assert_eq!(&data[4..8], b"ftyp");
                }
            }
            Err(ContainerError::Invalid(why)) => assert!(!why.is_empty()),
            Err(ContainerError::Io(e)) => panic!("a Cursor never fails to read: {e}"),
        }
    }
});
