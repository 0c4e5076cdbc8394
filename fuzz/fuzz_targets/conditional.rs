//! Range and conditional headers: whatever the headers say, the outcome is
//! one of the five answers and a partial range lies inside the body.
#![no_main]

#[path = "request.rs"]
mod request;

use std::time::{Duration, UNIX_EPOCH};

use hyper::Method;
use libfuzzer_sys::fuzz_target;
use mediaedge::http::conditional::{Outcome, Validators, evaluate};

fuzz_target!(|data: &[u8]| {
    let Some((first, headers)) = request::parse(data) else {
        return;
    };
    // First line: `METHOD LEN`.
    let mut words = first.split(' ');
    let method = match words.next() {
        Some("HEAD") => Method::HEAD,
        Some("PUT") => Method::PUT,
        _ => Method::GET,
    };
    let len = words.next().and_then(|w| w.parse().ok()).unwrap_or(1000u64);
    let v = Validators {
        etag: "\"abc123\"",
        last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        len,
    };
    match evaluate(&method, &headers, &v) {
        Outcome::Partial(r) => {
            assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
            assert!(method == Method::GET, "a range on {method}");
        }
        Outcome::NotModified => assert!(method == Method::GET || method == Method::HEAD),
        Outcome::Unsatisfiable => assert!(method == Method::GET),
        Outcome::Full | Outcome::PreconditionFailed => {}
    }
});
