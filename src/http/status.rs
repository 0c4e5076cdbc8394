//! `GET /_/status`: the operator's page (admin key on the public listener,
//! open on `server.metrics_listen`).

use std::time::SystemTime;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::{AppState, tagged};
use crate::status::{Snapshot, page};

/// On the public listener: the admin key, as for the admin API.
pub async fn guarded(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = super::refuse_non_admin(&app, &headers, "status") {
        return refused;
    }
    open(State(app)).await
}

/// On the metrics listener, which the operator keeps private.
pub async fn open(State(app): State<AppState>) -> Response {
    let text = super::ops::metrics_text(&app).await;
    let html = page::render(
        &Snapshot::from_prometheus(&text),
        &app.config.presets,
        &httpdate::fmt_http_date(SystemTime::now()),
    );
    let headers = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (CACHE_CONTROL, "no-store"),
    ];
    tagged("status", (headers, html).into_response())
}
