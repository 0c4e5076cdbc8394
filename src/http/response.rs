//! What handlers share in shaping an answer: the bookkeeping a response
//! carries to the request log and metrics, the route's name on it, and JSON.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::cache::CacheStatus;

/// What a handler tells the request log and metrics (a response extension).
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub route: &'static str,
    pub cache: Option<CacheStatus>,
    pub variant: Option<crate::variant::Ask>,
    /// The route's access kind (`public`, `jwt`, `signed`).
    pub access: &'static str,
    /// Why access was refused, if it was.
    pub denied: Option<&'static str>,
}

/// Names the route of a response for the request log and metrics, unless
/// its handler named it more precisely (media: `original`, `derivative`,
/// `info`).
pub fn named(route: &'static str, mut res: Response) -> Response {
    match res.extensions_mut().get_mut::<RequestInfo>() {
        Some(info) if !info.route.is_empty() => {}
        Some(info) => info.route = route,
        None => {
            res.extensions_mut().insert(RequestInfo {
                route,
                ..Default::default()
            });
        }
    }
    res
}

/// A JSON answer.
pub fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut res = (status, bytes).into_response();
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
