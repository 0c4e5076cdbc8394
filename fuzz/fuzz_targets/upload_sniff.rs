//! Upload sniffing: the stored type is decided by the content, never the
//! client's word; HTML, SVG and scripts are refused by every upload class,
//! and an AVIF's size comes from its header within the pixel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaedge::media_type::MediaType;
use mediaedge::upload::{UploadClass, allowed};

fuzz_target!(|data: &[u8]| {
    let sniffed = MediaType::sniff(data);
    for class in [UploadClass::Image, UploadClass::Video, UploadClass::Any] {
        match allowed(data, class) {
            Ok(media) => {
                assert_eq!(media, sniffed);
                assert!(class.allows(media));
                assert!(
                    media.is_image() || media.mime().starts_with("video/"),
                    "{media:?}"
                );
            }
            Err(e) => assert!(!class.allows(sniffed), "{e}"),
        }
    }
});
