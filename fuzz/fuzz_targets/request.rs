//! The text form the header-driven targets read: a first line (method and
//! length, or a request target), then `name: value` lines. Text rather than
//! `arbitrary` structs so the seeds in `fuzz/seeds/` are readable requests.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The first line and the headers that are valid HTTP (hyper would have
/// refused the others before our code saw them).
pub fn parse(data: &[u8]) -> Option<(&str, HeaderMap)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut lines = text.split('\n');
    let first = lines.next()?.trim_end_matches('\r');
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.trim_end_matches('\r').split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some((first, headers))
}
