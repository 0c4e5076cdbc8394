//! Response header values of a cached entry (`ETag`, `Last-Modified`),
//! built once when the entry is made rather than formatted on every hit.

use std::time::SystemTime;

use axum::http::HeaderValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderValues {
    /// `None` if the tag is not a valid header value (then no `ETag` is sent).
    pub etag: Option<HeaderValue>,
    pub last_modified: HeaderValue,
}

impl HeaderValues {
    pub fn new(etag: &str, last_modified: SystemTime) -> Self {
        let date = httpdate::fmt_http_date(last_modified);
        Self {
            etag: HeaderValue::from_str(etag).ok(),
            // An HTTP date is always a valid header value.
            last_modified: HeaderValue::from_str(&date)
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn values_match_the_validators() {
        let h = HeaderValues::new("\"abc\"", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        assert_eq!(h.etag.unwrap(), "\"abc\"");
        assert_eq!(h.last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(HeaderValues::new("bad\ntag", UNIX_EPOCH).etag, None);
    }
}
