//! The HTTP surface: the routes table and thin handlers. Handlers parse,
//! call the pipeline and shape headers; everything else lives below.

mod admin;
pub mod conditional;
pub mod error;
mod media;
mod observe;
mod ops;
mod status;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Access;
use crate::cache::CacheStatus;
use crate::config::Config;
use crate::http::error::Error;
use crate::pipeline::Pipeline;
use crate::upload::Uploads;

/// Everything a handler may use. Concrete types, no generics. One `Arc`:
/// axum clones the state for every request and middleware layer, and one
/// reference count is cheaper than five on the hit path.
#[derive(Clone)]
pub struct AppState(Arc<App>);

pub struct App {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub access: Arc<Access>,
    pub uploads: Arc<Uploads>,
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What a handler tells the request log and metrics (a response extension).
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub route: &'static str,
    pub cache: Option<CacheStatus>,
    pub variant: Option<crate::variant::Variant>,
    /// The route's access kind (`public`, `jwt`, `signed`).
    pub access: &'static str,
    /// Why access was refused, if it was.
    pub denied: Option<&'static str>,
}

/// The routes of `server.metrics_listen`: metrics, the status page and
/// health without the admin key; nothing else.
pub fn operator_router(state: AppState) -> Router {
    Router::new()
        .route("/_/health", get(ops::health))
        .route("/_/metrics", get(ops::metrics))
        .route("/_/status", get(status::open))
        .fallback(|| async { Error::RouteNotFound })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// The public listener's routes. The operator's pages (`/_/metrics`,
/// `/_/status`) need the admin key here: their numbers (auth failures by
/// reason, errors by kind) would tell an attacker what a forged request ran
/// into.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/_/health", get(ops::health))
        .route("/_/metrics", get(ops::metrics_guarded))
        .route("/_/status", get(status::guarded))
        .route("/_/uploads", post(upload::presign))
        .route("/_/uploads/{*key}", put(upload::receive))
        .route("/_/objects/{*key}", delete(admin::delete_object))
        .route("/_/purge", post(admin::purge))
        .route("/_/{*rest}", any(|| async { Error::RouteNotFound }))
        .fallback(media::serve)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// Names the route of a response for the request log and metrics.
fn tagged(route: &'static str, mut res: Response) -> Response {
    res.extensions_mut().insert(RequestInfo {
        route,
        ..Default::default()
    });
    res
}

/// The refusal for a request without the admin key, if it has none.
fn refuse_non_admin(
    app: &AppState,
    headers: &axum::http::HeaderMap,
    route: &'static str,
) -> Option<Response> {
    crate::auth::check_admin(headers, app.config.secrets.admin_key.as_deref())
        .err()
        .map(|e| tagged(route, Error::from(e).into_response()))
}

/// A JSON answer.
fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
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

/// The HTTP layer's own limits: a path and query over `server.max_url_bytes`
/// answers 414; a request announcing more than any upload may carry is
/// answered 413 before routing, without reading a byte.
/// (Handlers bound what they read too: uploads by their signed limit,
/// JSON bodies by `upload::MAX_JSON_BODY`.) Called by the one middleware,
/// [`observe::observe`], so the refusal is logged like any answer.
fn refuse_oversized(app: &AppState, req: &axum::extract::Request) -> Option<Response> {
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
