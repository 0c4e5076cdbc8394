//! `POST /_/uploads` (admin key: presign) and `PUT /_/uploads/{key}`
//! (presigned: the upload). The signature is checked before any of the
//! body is read; the body is streamed by `upload::Uploads::receive`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{AppState, json, tagged};
use crate::auth;
use crate::client::Peer;
use crate::http::error::Error;
use crate::key::ObjectKey;
use crate::metrics;
use crate::upload::{PresignRequest, UploadError};

/// Largest presign request body (a few short JSON fields).
pub const MAX_JSON_BODY: usize = 64 << 10;

pub async fn presign(State(app): State<AppState>, req: Request) -> Response {
    let result = async {
        auth::check_admin(req.headers(), app.config.secrets.admin_key.as_deref())?;
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
        Ok::<_, Error>(app.uploads.presign(body, &base)?)
    }
    .await;
    let res = match result {
        Ok(p) => json(StatusCode::CREATED, &p),
        Err(e) => e.into_response(),
    };
    metrics::upload("presign", outcome(&res));
    tagged("presign", res)
}

pub async fn receive(State(app): State<AppState>, uri: Uri, req: Request) -> Response {
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
    let (res, outcome) = match result {
        Ok(u) => (json(StatusCode::CREATED, &u), "ok"),
        Err(e) => {
            let outcome = match &e {
                Error::Upload(u) => u.outcome(),
                other => other.kind(),
            };
            let mut res = e.into_response();
            // The body may be partly unread: tell the client this connection
            // ends here, so it does not send its next request on it.
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            (res, outcome)
        }
    };
    metrics::upload("put", outcome);
    tagged("upload", res)
}

/// A small JSON body (an empty body is `{}`); 413 over [`MAX_JSON_BODY`].
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(body: Body) -> Result<T, Error> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| UploadError::TooLarge(MAX_JSON_BODY as u64))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| UploadError::BadRequest(format!("body is not the expected JSON: {e}")).into())
}

fn outcome(res: &Response) -> &'static str {
    if res.status().is_success() {
        "ok"
    } else {
        "refused"
    }
}
