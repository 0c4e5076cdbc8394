//! The one middleware: per-request observation — request id (accepted or
//! generated, echoed), a span every log line of the request carries, one
//! log line at the end, the request metrics — around the early refusals
//! that need no handler. One layer, not one per concern: axum clones the
//! service and boxes a future for every layer on every request.
//!
//! The request id is written into log lines as is, so it is only ever one
//! of ours or a client's `X-Request-Id` made of `[A-Za-z0-9._:-]{1,128}`:
//! text with spaces, quotes or `=` could forge fields in the text format.
//! Any other client id gets a generated one (that is what the answer's
//! `X-Request-Id` carries then), and the client's text is logged as its own
//! field, `client_request_id`, quoted and escaped (a string in JSON).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::AppState;
use super::error::Error;
use super::response::RequestInfo;
use crate::metrics;
use crate::variant::Ask;

const REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID: usize = 128;
/// At most this much of a client id we do not use is logged: the header may
/// be kilobytes, and it would be repeated on every line of the request.
const MAX_LOGGED_CLIENT_ID: usize = 256;

pub async fn observe(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let _in_flight = metrics::InFlight::http();
    let (id, client_id) = match req.headers().get(REQUEST_ID).map(HeaderValue::as_bytes) {
        Some(v) => match safe_id(v) {
            Some(safe) => (safe.to_owned(), None),
            None => (generate_id(), Some(loggable(v))),
        },
        None => (generate_id(), None),
    };
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        client_request_id = tracing::field::Empty
    );
    if let Some(client_id) = &client_id {
        // A `&str` value: the text format quotes and escapes it (Debug).
        span.record("client_request_id", client_id.as_str());
    }

    let mut res = match refuse_oversized(&app, &req) {
        Some(refused) => refused,
        None => next.run(req).instrument(span.clone()).await,
    };

    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let info = res
        .extensions_mut()
        .remove::<RequestInfo>()
        .unwrap_or(RequestInfo {
            route: "other",
            ..Default::default()
        });
    let status = res.status().as_u16();
    let bytes = res
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    let cache = info.cache.map_or("", |c| c.as_str());
    // What a range request was served (a player's seeks, in the log).
    let range = res
        .headers()
        .get(axum::http::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let elapsed = started.elapsed();
    metrics::http_request(info.route, status, cache, elapsed, bytes);
    tracing::info!(
        parent: &span,
        %method,
        path = uri.path(),
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        route = info.route,
        cache,
        variant = info.variant.as_ref().map(Ask::canonical).as_deref().unwrap_or(""),
        access = info.access,
        denied = info.denied.unwrap_or(""),
        bytes,
        range,
        "request"
    );
    res
}

/// The HTTP layer's own limits: a path and query over `server.max_url_bytes`
/// answers 414; a request announcing more than any upload may carry is
/// answered 413 before routing, without reading a byte.
/// (Handlers bound what they read too: uploads by their signed limit,
/// JSON bodies by `body::MAX_JSON_BODY`.) Checked here, in the one
/// middleware, so the refusal is logged like any answer.
fn refuse_oversized(app: &AppState, req: &Request) -> Option<Response> {
    let max_url = app.config.server.max_url_bytes;
    if req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > max_url {
        return Some(Error::UriTooLong.into_response());
    }
    let limit = app.config.upload.max_bytes;
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_none_or(|n| n <= limit) {
        return None;
    }
    let mut res = Error::from(crate::upload::UploadError::TooLarge(limit)).into_response();
    res.headers_mut().insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("close"),
    );
    Some(res)
}

/// A client's id, if it is safe to write into a log line as is:
/// `[A-Za-z0-9._:-]{1,128}` (UUIDs, hex, ULIDs, dotted and colon-separated
/// trace ids all fit).
fn safe_id(v: &[u8]) -> Option<&str> {
    let safe = !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !safe {
        return None;
    }
    // All ASCII, so this never fails.
    std::str::from_utf8(v).ok()
}

/// A client id we do not use, as text for its own log field (the logger
/// quotes and escapes it): at most [`MAX_LOGGED_CLIENT_ID`] bytes, bytes
/// that are not UTF-8 replaced.
fn loggable(v: &[u8]) -> String {
    String::from_utf8_lossy(&v[..v.len().min(MAX_LOGGED_CLIENT_ID)]).into_owned()
}

/// A new request id: 32 hex digits, a random per-process half and a counter
/// half. Unique like a UUID v4 without a `getrandom` call per request (that
/// call was 2.5 % of a cache hit's CPU time).
fn generate_id() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let bits = (u128::from(process) << 64) | u128::from(n);
    (0..32)
        .rev()
        .map(|i| char::from(HEX[((bits >> (i * 4)) & 0xf) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_distinct_hex() {
        let (a, b) = (generate_id(), generate_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..16], b[..16]);
        assert_eq!(safe_id(a.as_bytes()), Some(a.as_str()));
    }

    #[test]
    fn only_plain_client_ids_are_used() {
        for ok in [
            "test-123",
            "0f8c4f5e-1b2a-4c3d-9e8f-7a6b5c4d3e2f",
            "01HZX3J6Q9.trace:span_7",
        ] {
            assert_eq!(safe_id(ok.as_bytes()), Some(ok), "{ok}");
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for bad in [
            "",
            "a b",
            "a\"b",
            "a=b",
            "x\"route=\"admin",
            "caf\u{e9}",
            "a/b",
            "a\tb",
            long.as_str(),
        ] {
            assert_eq!(safe_id(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(safe_id(b"\xff\xfe"), None);
    }

    #[test]
    fn logged_client_ids_are_bounded_text() {
        assert_eq!(loggable(b"a\" b=c"), "a\" b=c");
        assert_eq!(loggable(b"ok\xff"), "ok\u{fffd}");
        assert_eq!(loggable(&[b'x'; 10_000]).len(), MAX_LOGGED_CLIENT_ID);
    }
}
