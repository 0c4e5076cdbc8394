//! Conditional requests and byte ranges (RFC 9110 §13 and §14), as a pure
//! function of the request headers and the representation's validators.
//!
//! Precedence follows RFC 9110 §13.2.2: `If-Match`, else
//! `If-Unmodified-Since` (412); then `If-None-Match`, else
//! `If-Modified-Since` (304); then `Range` gated by `If-Range`.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::Method;
use hyper::header::{self, HeaderMap};

/// What the validators say about the representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// Strong entity tag, quoted: `"abc"`.
    pub etag: &'a str,
    /// Whole seconds (HTTP dates have no finer resolution).
    pub last_modified: SystemTime,
    pub len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 412
    PreconditionFailed,
    /// 304
    NotModified,
    /// 200 with the whole body
    Full,
    /// 206 with this byte range (end exclusive)
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */LEN`
    Unsatisfiable,
}

pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators<'_>) -> Outcome {
    let is_get_or_head = method == Method::GET || method == Method::HEAD;

    if let Some(im) = header_str(headers, header::IF_MATCH) {
        if !etag_list_matches(im, v.etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(date) = header_date(headers, header::IF_UNMODIFIED_SINCE)
        && truncate(v.last_modified) > date
    {
        return Outcome::PreconditionFailed;
    }

    if let Some(inm) = header_str(headers, header::IF_NONE_MATCH) {
        if etag_list_matches(inm, v.etag, Comparison::Weak) {
            return if is_get_or_head {
                Outcome::NotModified
            } else {
                Outcome::PreconditionFailed
            };
        }
    } else if is_get_or_head
        && let Some(date) = header_date(headers, header::IF_MODIFIED_SINCE)
        && truncate(v.last_modified) <= date
    {
        return Outcome::NotModified;
    }

    // Range is defined for GET only (RFC 9110 §14.2).
    if method != Method::GET {
        return Outcome::Full;
    }
    let Some(range) = header_str(headers, header::RANGE) else {
        return Outcome::Full;
    };
    if let Some(if_range) = header_str(headers, header::IF_RANGE)
        && !if_range_matches(if_range, v)
    {
        return Outcome::Full;
    }
    single_range(range, v.len)
}

/// Interprets a `Range` value for a representation of `len` bytes (RFC 9110
/// §14.1.2). Hand-written because only the single-range form matters (a
/// multi-range request may be answered with the whole body) and the
/// `http-range-header` crate rejects the valid, unsatisfiable `bytes=-0` and
/// refuses a suffix longer than the body instead of serving it whole.
fn single_range(value: &str, len: u64) -> Outcome {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &value[6..])
    else {
        return Outcome::Full; // other units are ignored
    };
    if spec.contains(',') {
        return Outcome::Full; // multi-range: the whole body is a valid answer
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Outcome::Full;
    };
    // Digits only; a value too big for u64 is larger than any body.
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (first, number(first), number(last)) {
        ("", _, Some(0)) => Outcome::Unsatisfiable,
        ("", _, Some(_)) if len == 0 => Outcome::Unsatisfiable,
        ("", _, Some(suffix)) => Outcome::Partial(len.saturating_sub(suffix)..len),
        (_, Some(first), None) if last.is_empty() => {
            if first >= len {
                Outcome::Unsatisfiable
            } else {
                Outcome::Partial(first..len)
            }
        }
        (_, Some(first), Some(last)) if last >= first => {
            if first >= len {
                Outcome::Unsatisfiable
            } else {
                Outcome::Partial(first..last.saturating_add(1).min(len))
            }
        }
        _ => Outcome::Full, // syntactically invalid: ignored
    }
}

fn if_range_matches(value: &str, v: &Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        // Strong comparison; a weak tag never matches.
        return !value.starts_with("W/") && value == v.etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|d| d == truncate(v.last_modified))
}

#[derive(Clone, Copy)]
enum Comparison {
    Strong,
    Weak,
}

fn etag_list_matches(list: &str, etag: &str, cmp: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    list.split(',').map(str::trim).any(|candidate| match cmp {
        Comparison::Strong => {
            !candidate.starts_with("W/") && !etag.starts_with("W/") && candidate == etag
        }
        Comparison::Weak => candidate.strip_prefix("W/").unwrap_or(candidate) == ours,
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A date header; an invalid date is ignored, as RFC 9110 requires.
fn header_date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    header_str(headers, name).and_then(|s| httpdate::parse_http_date(s).ok())
}

/// Drops sub-second precision so comparisons match what `Last-Modified` said.
pub fn truncate(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const ETAG: &str = "\"abc\"";

    fn v(len: u64) -> Validators<'static> {
        Validators {
            etag: ETAG,
            last_modified: UNIX_EPOCH
                + Duration::from_secs(1_700_000_000)
                + Duration::from_millis(400),
            len,
        }
    }

    fn eval(method: Method, hs: &[(&'static str, &str)], len: u64) -> Outcome {
        let mut h = HeaderMap::new();
        for (k, val) in hs {
            h.insert(*k, HeaderValue::from_str(val).unwrap());
        }
        evaluate(&method, &h, &v(len))
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn if_none_match() {
        assert_eq!(
            eval(Method::GET, &[("if-none-match", ETAG)], 10),
            Outcome::NotModified
        );
        assert_eq!(
            eval(Method::HEAD, &[("if-none-match", "\"x\", W/\"abc\"")], 10),
            Outcome::NotModified
        );
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "*")], 10),
            Outcome::NotModified
        );
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "\"other\"")], 10),
            Outcome::Full
        );
    }

    #[test]
    fn if_modified_since_is_ignored_when_if_none_match_is_present() {
        let later = date(1_800_000_000);
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", &later)], 10),
            Outcome::NotModified
        );
        assert_eq!(
            eval(
                Method::GET,
                &[
                    ("if-none-match", "\"other\""),
                    ("if-modified-since", &later)
                ],
                10
            ),
            Outcome::Full
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("if-modified-since", &date(1_700_000_000))],
                10
            ),
            Outcome::NotModified
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("if-modified-since", &date(1_699_999_999))],
                10
            ),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("if-modified-since", "yesterday")], 10),
            Outcome::Full
        );
    }

    #[test]
    fn if_match_and_unmodified_since() {
        assert_eq!(
            eval(Method::GET, &[("if-match", "\"nope\"")], 10),
            Outcome::PreconditionFailed
        );
        assert_eq!(eval(Method::GET, &[("if-match", ETAG)], 10), Outcome::Full);
        assert_eq!(
            eval(Method::GET, &[("if-match", "W/\"abc\"")], 10),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("if-unmodified-since", &date(1_600_000_000))],
                10
            ),
            Outcome::PreconditionFailed
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("if-unmodified-since", &date(1_700_000_000))],
                10
            ),
            Outcome::Full
        );
        // If-Match wins over If-Unmodified-Since.
        assert_eq!(
            eval(
                Method::GET,
                &[
                    ("if-match", ETAG),
                    ("if-unmodified-since", &date(1_600_000_000))
                ],
                10
            ),
            Outcome::Full
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=0-3")], 10),
            Outcome::Partial(0..4)
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=5-")], 10),
            Outcome::Partial(5..10)
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=5-100")], 10),
            Outcome::Partial(5..10)
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=-3")], 10),
            Outcome::Partial(7..10)
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=-30")], 10),
            Outcome::Partial(0..10)
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=10-")], 10),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=-0")], 10),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=0-")], 0),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=-5")], 0),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=0-1,4-5")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=5-2")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "items=0-1")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=x")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=-")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=1-2-3")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=+1-2")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[("range", "Bytes=0-0")], 10),
            Outcome::Partial(0..1)
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("range", "bytes=99999999999999999999999-")],
                10
            ),
            Outcome::Unsatisfiable
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("range", "bytes=0-99999999999999999999999")],
                10
            ),
            Outcome::Partial(0..10)
        );
        assert_eq!(
            eval(Method::HEAD, &[("range", "bytes=0-3")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(
                Method::GET,
                &[("range", "bytes=0-18446744073709551615")],
                10
            ),
            Outcome::Partial(0..10)
        );
    }

    #[test]
    fn if_range() {
        let r = ("range", "bytes=0-1");
        assert_eq!(
            eval(Method::GET, &[r, ("if-range", ETAG)], 10),
            Outcome::Partial(0..2)
        );
        assert_eq!(
            eval(Method::GET, &[r, ("if-range", "\"old\"")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[r, ("if-range", "W/\"abc\"")], 10),
            Outcome::Full
        );
        assert_eq!(
            eval(Method::GET, &[r, ("if-range", &date(1_700_000_000))], 10),
            Outcome::Partial(0..2)
        );
        assert_eq!(
            eval(Method::GET, &[r, ("if-range", &date(1_600_000_000))], 10),
            Outcome::Full
        );
    }

    proptest::proptest! {
        /// Any header values: no panic, and a partial answer is a non-empty
        /// range inside the body.
        #[test]
        fn any_headers_give_a_sound_outcome(
            range in "(bytes|Bytes|items)=(-?[0-9]{0,21}-?[0-9]{0,21},?){1,3}",
            inm in proptest::option::of("(\"abc\"|\\*|W/\"abc\"|\"x\"|garbage)"),
            len in 0u64..5000,
        ) {
            let mut h = HeaderMap::new();
            h.insert("range", HeaderValue::from_str(&range).unwrap());
            if let Some(inm) = &inm {
                h.insert("if-none-match", HeaderValue::from_str(inm).unwrap());
            }
            if let Outcome::Partial(r) = evaluate(&Method::GET, &h, &v(len)) {
                proptest::prop_assert!(r.start < r.end && r.end <= len, "{:?} of {}", r, len);
            }
        }
    }

    #[test]
    fn not_modified_beats_range() {
        assert_eq!(
            eval(
                Method::GET,
                &[("range", "bytes=0-1"), ("if-none-match", ETAG)],
                10
            ),
            Outcome::NotModified
        );
    }
}
