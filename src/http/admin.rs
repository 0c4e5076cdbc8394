//! The admin API (behind the admin-key layer): `DELETE /_/objects/{key}`
//! removes an original and everything cached from it; `POST /_/purge` drops
//! cached entries by key or prefix (the whole variant family of an original
//! in one call).

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::body::{BodyError, read_json};
use super::error::Error;
use super::response::json;
use crate::cache::{Purge, PurgeCounts};
use crate::key::ObjectKey;

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

pub async fn delete_object(State(app): State<AppState>, uri: Uri) -> Result<Response, Error> {
    let path = uri.path().strip_prefix("/_/objects").unwrap_or("");
    let key = ObjectKey::from_request_path(path)?;
    let (deleted, purged) = app.pipeline.delete(&key).await?;
    let body = Deleted {
        key: key.as_str().to_owned(),
        deleted: u64::from(deleted),
        purged: purged.into(),
    };
    Ok(json(StatusCode::OK, &body))
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

pub async fn purge(State(app): State<AppState>, req: Request) -> Result<Response, Error> {
    let body: PurgeRequest = read_json(req.into_body()).await?;
    let targets = match (body.prefix, body.keys) {
        (Some(p), None) => vec![Purge::Prefix(p.trim_start_matches('/').to_owned())],
        (None, Some(keys)) => keys
            .iter()
            .map(|k| ObjectKey::parse(k.trim_start_matches('/')).map(Purge::Key))
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(BodyError::NotExpected(
                "give exactly one of {\"prefix\": \"...\"} or {\"keys\": [...]}".to_owned(),
            )
            .into());
        }
    };
    let body = PurgeAnswer {
        purged: app.pipeline.purge(&targets).await.into(),
    };
    Ok(json(StatusCode::OK, &body))
}
