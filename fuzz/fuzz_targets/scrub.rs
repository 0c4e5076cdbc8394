//! Metadata removal from uploads (`upload::scrub`) on any bytes as JPEG,
//! PNG, WebP and HEIF (HEIC/AVIF): an answer, never a panic; what it
//! rewrites is a fixed point (scrubbing it again changes nothing) and is
//! never larger than the input by more than the minimal orientation block
//! it may add (HEIF: exactly as large).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaedge::media_type::MediaType;
use mediaedge::upload::scrub::scrub;

fuzz_target!(|data: &[u8]| {
    for media in [
        MediaType::Jpeg,
        MediaType::Png,
        MediaType::Webp,
        MediaType::Heic,
    ] {
        if let Ok(Some(out)) = scrub(data, media) {
            assert!(out.len() <= data.len() + 64, "{media:?}");
            if media == MediaType::Heic {
                assert_eq!(out.len(), data.len(), "HEIF is rewritten in place");
            }
            assert!(matches!(scrub(&out, media), Ok(None)), "{media:?} not a fixed point");
        }
    }
});
