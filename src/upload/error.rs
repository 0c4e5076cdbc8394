//! Why an upload (or a presign request) is refused: one variant per answer
//! the client can act on; `http::error` gives each its status.

use crate::auth::signed::SignatureFault;
use crate::store::StoreError;
use crate::transform::TransformError;

/// Why an upload (or a presign request) is refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    /// 403: missing, wrong or expired signature.
    #[error("Forbidden: missing, invalid or expired upload signature.")]
    Signature(SignatureFault),
    /// 403: a single-use URL that has published already.
    #[error("Forbidden: this upload URL has been used; ask for a new one.")]
    Used,
    /// 503: no signing secret configured.
    #[error("uploads are disabled: set MEDIAEDGE_SIGNING_SECRET")]
    Disabled,
    /// 400: a presign request we cannot honour.
    #[error("bad upload request: {0}")]
    BadRequest(String),
    /// 413: over the URL's `max_bytes`.
    #[error("upload is larger than {0} bytes")]
    TooLarge(u64),
    /// 415: not an allowed image or video type (by its bytes).
    #[error("unsupported media type: {0}")]
    Unsupported(String),
    /// 422 / 503: an image that does not decode or is too big; or no worker free.
    #[error("{0}")]
    Image(#[from] TransformError),
    /// 422: a video over `upload.max_video_secs` or in a codec outside
    /// `upload.video_codecs`.
    #[error("{0}")]
    VideoRefused(String),
    /// 408: the client stopped sending.
    #[error("upload body timed out")]
    Timeout,
    /// 400: the body ended early (client gone).
    #[error("upload body incomplete: {0}")]
    Incomplete(String),
    /// 502 / 500: storing failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl UploadError {
    /// The label of `mediaedge_uploads_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            UploadError::Signature(_) => "forbidden",
            UploadError::Used => "used",
            UploadError::Disabled => "disabled",
            UploadError::BadRequest(_) => "bad_request",
            UploadError::TooLarge(_) => "too_large",
            UploadError::Unsupported(_) => "unsupported",
            UploadError::Image(
                TransformError::Overloaded
                | TransformError::TimedOut
                | TransformError::RateLimited(_),
            ) => "overloaded",
            UploadError::Image(_) => "undecodable",
            UploadError::VideoRefused(_) => "video_refused",
            UploadError::Timeout => "timeout",
            UploadError::Incomplete(_) => "incomplete",
            UploadError::Store(_) => "store_error",
        }
    }
}
