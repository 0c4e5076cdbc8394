//! Operations endpoints: `GET /_/health` and `GET /_/metrics`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::{AppState, RequestInfo};

pub async fn health() -> Response {
    with_route(
        "health",
        ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response(),
    )
}

pub async fn metrics(State(app): State<AppState>) -> Response {
    app.pipeline.cache().record_sizes().await;
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    with_route(
        "metrics",
        (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

fn with_route(route: &'static str, mut res: Response) -> Response {
    res.extensions_mut().insert(RequestInfo {
        route,
        ..Default::default()
    });
    res
}
