//! Key validation: an accepted key never escapes the store (no empty, `.`
//! or `..` segment, no backslash or control character, not reserved), and
//! its URL form parses back to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaedge::key::ObjectKey;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = ObjectKey::from_request_path(path) else {
        return;
    };
    let k = key.as_str();
    assert!(!k.is_empty());
    assert!(!k.starts_with("_/") && k != "_", "reserved: {k:?}");
    assert!(!k.chars().any(|c| c == '\\' || c.is_control()), "{k:?}");
    for seg in k.split('/') {
        assert!(!matches!(seg, "" | "." | ".."), "segment {seg:?} in {k:?}");
    }
    assert_eq!(key.store_path().as_ref(), k);
    let back = ObjectKey::from_request_path(&format!("/{}", key.url_path()))
        .expect("the URL form of a key parses");
    assert_eq!(back.as_str(), k);
});
