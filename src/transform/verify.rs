//! Upload verification: proving a staged upload is an image we can serve
//! before it is published — within the byte and pixel limits, and decoding
//! whole (HEIC/HEIF and AVIF too, through libheif). Runs as a job on the
//! transform pool, so untrusted bytes meet one bounded runner.

use std::path::Path;

use super::TransformError;
use super::describe::{Described, describe};
use super::job::Job;
use crate::media_type::MediaType;

/// The `[transform]` limits an uploaded image must meet.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
}

/// The staged image at `path`, read once (its check and its metadata
/// removal share the bytes), refused over `max_source_bytes` before reading.
pub fn read_staged(path: &Path, limits: UploadLimits) -> Result<Vec<u8>, TransformError> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len > limits.max_source_bytes {
        return Err(TransformError::Undecodable(format!(
            "image is larger than transform.max_source_bytes ({})",
            limits.max_source_bytes
        )));
    }
    std::fs::read(path).map_err(|e| TransformError::Internal(e.to_string()))
}

/// Checks that an uploaded image is one we can serve: the header parses,
/// the pixel count is within `max_source_pixels` (before any buffer), and
/// the whole image decodes (a truncated file fails here, not at the first
/// viewer). That one decode, at a small shrink-on-load scale (a 12 MP JPEG
/// costs an entropy pass, not a full-size bitmap), also gives the media
/// information the 201 carries (a HEIF's embedded thumbnail is not used:
/// the image itself must decode). Under `job`'s deadline and memory budget
/// like any transform.
pub fn verify(
    src: &[u8],
    media: MediaType,
    max_source_pixels: u64,
    job: &Job,
) -> Result<Described, TransformError> {
    describe(src, media, max_source_pixels, job, true, 0)
}
