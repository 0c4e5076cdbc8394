//! The transform query parser: any query string either parses into a
//! variant within the configured limits or is refused with a message, and
//! the order of the parameters changes neither the outcome nor the cache
//! key (the variant's canonical string).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mediaedge::config::Config;
use mediaedge::variant::{VariantLimits, VariantRequest};

static CFG: LazyLock<VariantLimits> = LazyLock::new(|| {
    Config::embedded_default()
        .expect("the embedded default is valid")
        .transform
        .variants
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Query, then optionally an Accept header after a newline.
    let (query, accept) = match text.split_once('\n') {
        Some((q, a)) => (q, Some(a)),
        None => (text, None),
    };
    let cfg = &*CFG;
    match VariantRequest::parse(Some(query), cfg) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(None) => {}
        Ok(Some(req)) => {
            let v = req.resolve(accept, cfg);
            for side in [v.width, v.height].into_iter().flatten() {
                assert!((1..=cfg.max_dimension).contains(&side), "{v:?}");
            }
            assert!((1..=100).contains(&v.quality));
            // The same parameters in the opposite order: the same cache key.
            let reversed: Vec<&str> = query.split('&').rev().collect();
            let again = VariantRequest::parse(Some(&reversed.join("&")), cfg)
                .expect("reordered parameters parse")
                .expect("reordered parameters are there")
                .resolve(accept, cfg);
            assert_eq!(again.canonical(), v.canonical());
        }
    }
});
