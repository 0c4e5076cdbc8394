//! Operations endpoints: `GET /_/health` (the process runs), `GET
//! /_/ready` (and its store answers: for load balancers and readiness
//! probes), and `GET /_/metrics` (behind the admin-key layer on the public
//! listener, open on `server.metrics_listen`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::AppState;

pub async fn health() -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

pub async fn ready(State(app): State<AppState>) -> Response {
    let text = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
    if app.pipeline.ready().await {
        (text, "ok").into_response()
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            text,
            "storage unavailable",
        )
            .into_response()
    }
}

pub async fn metrics(State(app): State<AppState>) -> Response {
    let body = metrics_text(&app).await;
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The Prometheus text, cache sizes brought up to date first (`/_/metrics`
/// and the status page read the same numbers).
pub async fn metrics_text(app: &AppState) -> String {
    app.pipeline.record_cache_sizes().await;
    app.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}
