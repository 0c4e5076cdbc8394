//! `GET /_/status`: the operator's page (behind the admin-key layer on the
//! public listener, open on `server.metrics_listen`).

use std::time::SystemTime;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::dashboard::{Snapshot, page};

pub async fn show(State(app): State<AppState>) -> Response {
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
    (headers, html).into_response()
}
