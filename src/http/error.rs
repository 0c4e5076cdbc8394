//! The HTTP face of every domain error: the one error type a request can
//! end in, and the one place it becomes a status code. The match in
//! [`Error::status`] has no catch-all arm, so a new variant forces a
//! decision. Bodies are one line of plain text.

use axum::response::{IntoResponse, Response};
use hyper::StatusCode;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use super::body::BodyError;
use crate::auth::AuthError;
use crate::key::KeyError;
use crate::pipeline::FetchError;
use crate::store::StoreError;
use crate::transform::TransformError;
use crate::upload::UploadError;
use crate::variant::VariantError;

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Upload(#[from] UploadError),
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("{0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    Variant(#[from] VariantError),
    #[error("transform parameters are only supported on images and videos")]
    NotAnImage,
    #[error("{0}")]
    Transform(#[from] TransformError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("Not Found")]
    RouteNotFound,
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    #[error("URI Too Long")]
    UriTooLong,
}

/// A fetch's failure is answered as what it is underneath.
impl From<FetchError> for Error {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Store(e) => Error::Store(e),
            FetchError::Transform(e) => Error::Transform(e),
            FetchError::NotAnImage => Error::NotAnImage,
            FetchError::Variant(e) => Error::Variant(e),
        }
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Auth(e) => match e {
                AuthError::MissingToken
                | AuthError::InvalidToken(_)
                | AuthError::AdminKeyMissing => StatusCode::UNAUTHORIZED,
                AuthError::ClaimMismatch | AuthError::Signature(_) | AuthError::AdminKeyInvalid => {
                    StatusCode::FORBIDDEN
                }
            },
            Error::Upload(e) => match e {
                UploadError::Signature(_) | UploadError::Used => StatusCode::FORBIDDEN,
                UploadError::Disabled => StatusCode::SERVICE_UNAVAILABLE,
                UploadError::BadRequest(_) | UploadError::Incomplete(_) => StatusCode::BAD_REQUEST,
                UploadError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                UploadError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                UploadError::Timeout => StatusCode::REQUEST_TIMEOUT,
                UploadError::VideoRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
                UploadError::Image(t) => Error::Transform(t.clone()).status(),
                UploadError::Store(s) => Error::Store(s.clone()).status(),
            },
            Error::Body(e) => match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::NotExpected(_) => StatusCode::BAD_REQUEST,
            },
            Error::Key(_) | Error::Variant(_) | Error::NotAnImage => StatusCode::BAD_REQUEST,
            Error::RouteNotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::Transform(e) => match e {
                TransformError::Undecodable(_) | TransformError::TooManyPixels(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                TransformError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                TransformError::Overloaded | TransformError::TimedOut => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                TransformError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                TransformError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Store(e) => match e {
                StoreError::NotFound => StatusCode::NOT_FOUND,
                StoreError::TooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
                StoreError::Changed => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::Exists => StatusCode::PRECONDITION_FAILED,
                StoreError::Unavailable(_) => StatusCode::BAD_GATEWAY,
                StoreError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            },
        }
    }

    /// Short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Auth(_) => "auth",
            Error::Upload(e) => e.outcome(),
            Error::Body(_) => "bad_body",
            Error::Key(_) => "bad_key",
            Error::Variant(_) => "bad_param",
            Error::NotAnImage => "not_an_image",
            Error::Transform(_) => "transform",
            Error::Store(_) => "store",
            Error::RouteNotFound => "no_route",
            Error::MethodNotAllowed => "method",
            Error::UriTooLong => "uri_too_long",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, kind = self.kind(), "request failed");
        }
        // Exactly one line, no trailing newline: SPEC bodies are compared verbatim.
        let body = self.to_string().replace(['\n', '\r'], " ");
        let mut res = (status, body).into_response();
        res.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
        }
        if let Error::Transform(TransformError::RateLimited(secs))
        | Error::Upload(UploadError::Image(TransformError::RateLimited(secs))) = &self
        {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from((*secs).max(1)));
        }
        if let Error::Auth(e) = &self {
            let challenge = match e {
                AuthError::MissingToken | AuthError::AdminKeyMissing => Some("Bearer"),
                AuthError::InvalidToken(_) => Some("Bearer error=\"invalid_token\""),
                AuthError::ClaimMismatch | AuthError::Signature(_) | AuthError::AdminKeyInvalid => {
                    None
                }
            };
            if let Some(c) = challenge {
                res.headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            // A refusal must not be cached in place of the media either.
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        res
    }
}
