//! The HTTP surface: the routes table. Every route is named here, once
//! (the `route` of the request log and metrics); the operator's routes sit
//! behind one access layer (the admin key, [`admin_key`]), off the media
//! hit path; everything else is `media::serve`, which names itself
//! `original` or `derivative`. Handlers parse, call the domain and shape
//! headers, and return `Result<Response, Error>`; [`error`] turns an error
//! into its status.

mod admin;
mod admin_key;
mod body;
pub mod conditional;
mod dashboard;
pub mod error;
mod media;
mod observe;
mod ops;
mod response;
mod state;
mod upload;

use axum::Router;
use axum::response::Response;
use axum::routing::{MethodRouter, any, delete, get, post, put};
use tower::util::MapResponseLayer;

use error::Error;
pub use response::RequestInfo;
pub use state::{App, AppState};

/// The routes of `server.metrics_listen`: metrics, the status page and
/// health without the admin key; nothing else.
pub fn operator_router(state: AppState) -> Router {
    Router::new()
        .route("/_/health", named("health", get(ops::health)))
        .route("/_/ready", named("ready", get(ops::ready)))
        .route("/_/metrics", named("metrics", get(ops::metrics)))
        .route("/_/status", named("status", get(dashboard::show)))
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
    let admin = |route: MethodRouter<AppState>| {
        route.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            admin_key::require,
        ))
    };
    Router::new()
        .route("/_/health", named("health", get(ops::health)))
        .route("/_/ready", named("ready", get(ops::ready)))
        .route("/_/metrics", named("metrics", admin(get(ops::metrics))))
        .route("/_/status", named("status", admin(get(dashboard::show))))
        .route("/_/uploads", named("presign", admin(post(upload::presign))))
        .route(
            "/_/uploads/{*key}",
            named("upload", put(upload::receive))
                .layer(MapResponseLayer::new(upload::close_after_refusal)),
        )
        .route(
            "/_/objects/{*key}",
            named("delete", admin(delete(admin::delete_object))),
        )
        .route("/_/purge", named("purge", admin(post(admin::purge))))
        .route("/_/{*rest}", any(|| async { Error::RouteNotFound }))
        .fallback(media::serve)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .with_state(state)
}

/// A route with its name on every answer, refusals of its layers included.
fn named(name: &'static str, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer(MapResponseLayer::new(move |res: Response| {
        response::named(name, res)
    }))
}
