//! The one access layer of the operator's routes (admin API, presign,
//! metrics and status page on the public listener): the admin key, checked
//! before the handler runs. The media routes never pass through it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::Error;
use crate::auth;

pub async fn require(State(app): State<AppState>, req: Request, next: Next) -> Response {
    match auth::check_admin(req.headers(), app.config.secrets.admin_key.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(e) => Error::from(e).into_response(),
    }
}
