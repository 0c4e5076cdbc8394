//! MP4/QuickTime metadata removal and fast start (`upload::movie::clean`)
//! on any bytes, as an upload's check runs it (after the container walk):
//! an answer, never a panic; a cleaned file keeps its length, still walks
//! as the same container, and cleaning it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaedge::media_type::MediaType;
use mediaedge::upload::{container, movie};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("v");
    for media in [MediaType::Mp4, MediaType::QuickTime] {
        std::fs::write(&path, data).expect("write the input");
        if container::check(std::fs::File::open(&path).expect("open"), media).is_err() {
            continue;
        }
        if movie::clean(&path, media, true).is_ok() {
            let out = std::fs::read(&path).expect("read the output");
            assert_eq!(out.len(), data.len(), "{media:?}: length changed");
            let file = std::fs::File::open(&path).expect("open");
            assert!(container::check(file, media).is_ok(), "{media:?}: no longer walks");
            let again = movie::clean(&path, media, true).expect("a cleaned file cleans again");
            assert_eq!(again, movie::Cleaned::default(), "{media:?}: not a fixed point");
        }
    }
});
