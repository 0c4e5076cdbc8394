//! Per-request observation: request id (accepted or generated, echoed),
//! a span every log line of the request carries, one log line at the end,
//! and the request metrics.

use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::RequestInfo;
use crate::metrics;

const REQUEST_ID: &str = "x-request-id";
const MAX_REQUEST_ID: usize = 128;

pub async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let _in_flight = metrics::InFlight::http();
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let span = tracing::info_span!("request", request_id = %id);

    let mut res = next.run(req).instrument(span.clone()).await;

    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let info = res
        .extensions()
        .get::<RequestInfo>()
        .cloned()
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
    let elapsed = started.elapsed();
    metrics::http_request(info.route, status, cache, elapsed, bytes);
    tracing::info!(
        parent: &span,
        %method,
        path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        route = info.route,
        cache,
        variant = info.variant.as_deref().unwrap_or(""),
        access = info.access,
        denied = info.denied.unwrap_or(""),
        bytes,
        "request"
    );
    res
}
