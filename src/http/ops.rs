//! Operations endpoints: `GET /_/health` and `GET /_/metrics` (admin key
//! on the public listener, open on `server.metrics_listen`).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::{AppState, tagged};

pub async fn health() -> Response {
    tagged(
        "health",
        ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response(),
    )
}

/// On the public listener: the admin key, as for the admin API.
pub async fn metrics_guarded(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = super::refuse_non_admin(&app, &headers, "metrics") {
        return refused;
    }
    metrics(State(app)).await
}

/// On the metrics listener, which the operator keeps private.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let body = metrics_text(&app).await;
    tagged(
        "metrics",
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

/// The Prometheus text, cache sizes brought up to date first (`/_/metrics`
/// and the status page read the same numbers).
pub async fn metrics_text(app: &AppState) -> String {
    app.pipeline.cache().record_sizes().await;
    app.metrics.as_ref().map(|h| h.render()).unwrap_or_default()
}
