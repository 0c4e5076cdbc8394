//! The HTTP surface: the routes table and thin handlers. Handlers parse,
//! call the pipeline and shape headers; everything else lives below.

pub mod conditional;
mod media;
mod observe;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Access;
use crate::cache::CacheStatus;
use crate::config::Config;
use crate::error::Error;
use crate::pipeline::Pipeline;

/// Everything a handler may use. Concrete types, no generics.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub access: Arc<Access>,
    pub metrics: Option<PrometheusHandle>,
}

/// What a handler tells the request log and metrics (a response extension).
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub route: &'static str,
    pub cache: Option<CacheStatus>,
    pub variant: Option<String>,
    /// The route's access kind (`public`, `jwt`, `signed`).
    pub access: &'static str,
    /// Why access was refused, if it was.
    pub denied: Option<&'static str>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/_/health", get(ops::health))
        .route("/_/metrics", get(ops::metrics))
        .route("/_/{*rest}", any(|| async { Error::RouteNotFound }))
        .fallback(media::serve)
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}
