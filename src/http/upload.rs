//! `POST /_/uploads` (behind the admin-key layer: presign) and
//! `PUT /_/uploads/{key}` (presigned: the upload). The signature is checked
//! before any of the body is read; the body is streamed by
//! `upload::Uploads::receive`.

use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use super::AppState;
use super::body::read_json;
use super::error::Error;
use super::response::json;
use crate::client::Peer;
use crate::key::ObjectKey;
use crate::metrics;
use crate::upload::{PresignRequest, Presigned};

pub async fn presign(State(app): State<AppState>, req: Request) -> Result<Response, Error> {
    let result = presigned(&app, req).await;
    metrics::upload("presign", if result.is_ok() { "ok" } else { "refused" });
    Ok(json(StatusCode::CREATED, &result?))
}

async fn presigned(app: &AppState, req: Request) -> Result<Presigned, Error> {
    let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let (scheme, host) = app
        .config
        .server
        .trusted_proxies
        .origin(peer, req.headers());
    let body: PresignRequest = read_json(req.into_body()).await?;
    let base = app.uploads.base_url(
        scheme,
        host.as_deref(),
        &app.config.server.listen.to_string(),
    );
    Ok(app.uploads.presign(body, &base)?)
}

pub async fn receive(
    State(app): State<AppState>,
    uri: Uri,
    req: Request,
) -> Result<Response, Error> {
    let result = async {
        let path = uri.path().strip_prefix("/_/uploads").unwrap_or("");
        let key = ObjectKey::from_request_path(path)?;
        let grant = app.uploads.authorize(key, uri.query())?;
        let length = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        Ok::<_, Error>(app.uploads.receive(&grant, length, req.into_body()).await?)
    }
    .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(Error::Upload(u)) => u.outcome(),
        Err(other) => other.kind(),
    };
    metrics::upload("put", outcome);
    Ok(json(StatusCode::CREATED, &result?))
}

/// On the upload route, a refusal ends the connection: the body may be
/// partly unread, and the client must not send its next request after it.
pub fn close_after_refusal(mut res: Response) -> Response {
    if !res.status().is_success() {
        res.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
