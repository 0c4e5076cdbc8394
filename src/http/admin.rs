//! The admin API (admin key): `DELETE /_/objects/{key}` removes an original
//! and everything cached from it; `POST /_/purge` drops cached entries by
//! key or prefix (the whole variant family of an original in one call).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::upload::read_json;
use super::{AppState, json, tagged};
use crate::auth;
use crate::cache::{Purge, PurgeCounts};
use crate::http::error::Error;
use crate::key::ObjectKey;
use crate::metrics;
use crate::upload::UploadError;

#[derive(Debug, Serialize)]
struct Purged {
    /// Cached entries removed from memory (metadata not counted).
    memory: u64,
    disk: u64,
}

impl From<PurgeCounts> for Purged {
    fn from(c: PurgeCounts) -> Self {
        Self {
            memory: c.memory,
            disk: c.disk,
        }
    }
}

#[derive(Debug, Serialize)]
struct Deleted {
    key: String,
    /// 1 if the original existed and was removed, else 0.
    deleted: u64,
    purged: Purged,
}

pub async fn delete_object(State(app): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let result = async {
        auth::check_admin(&headers, app.config.secrets.admin_key.as_deref())?;
        let path = uri.path().strip_prefix("/_/objects").unwrap_or("");
        let key = ObjectKey::from_request_path(path)?;
        let (deleted, purged) = app.pipeline.delete(&key).await?;
        Ok::<_, Error>(Deleted {
            key: key.as_str().to_owned(),
            deleted: u64::from(deleted),
            purged: purged.into(),
        })
    }
    .await;
    finish("delete", result)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    prefix: Option<String>,
    keys: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct PurgeAnswer {
    purged: Purged,
}

pub async fn purge(State(app): State<AppState>, req: Request) -> Response {
    let result = async {
        auth::check_admin(req.headers(), app.config.secrets.admin_key.as_deref())?;
        let body: PurgeRequest = read_json(req.into_body()).await?;
        let bad = |m: &str| Error::from(UploadError::BadRequest(m.to_owned()));
        let targets = match (body.prefix, body.keys) {
            (Some(p), None) => vec![Purge::Prefix(p.trim_start_matches('/').to_owned())],
            (None, Some(keys)) => keys
                .iter()
                .map(|k| ObjectKey::parse(k.trim_start_matches('/')).map(Purge::Key))
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(bad(
                    "give exactly one of {\"prefix\": \"...\"} or {\"keys\": [...]}",
                ));
            }
        };
        let mut total = PurgeCounts::default();
        for t in &targets {
            let c = app.pipeline.purge(t).await;
            total.memory += c.memory;
            total.disk += c.disk;
        }
        Ok::<_, Error>(PurgeAnswer {
            purged: total.into(),
        })
    }
    .await;
    finish("purge", result)
}

fn finish<T: Serialize>(op: &'static str, result: Result<T, Error>) -> Response {
    let res = match result {
        Ok(body) => json(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    };
    metrics::admin_op(op, res.status().as_u16());
    tagged(op, res)
}
