//! Small JSON request bodies (presign and purge requests), read with a bound.

use axum::body::Body;

/// Largest JSON request body (a few short fields, or a list of keys).
pub const MAX_JSON_BODY: usize = 64 << 10;

/// Why a JSON request body was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BodyError {
    /// 413.
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    /// 400: not JSON, or not the fields the route takes.
    #[error("body is not the expected JSON: {0}")]
    NotExpected(String),
}

/// A small JSON body (an empty body is `{}`); 413 over [`MAX_JSON_BODY`].
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(
    body: Body,
) -> Result<T, BodyError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| BodyError::TooLarge(MAX_JSON_BODY))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| BodyError::NotExpected(e.to_string()))
}
