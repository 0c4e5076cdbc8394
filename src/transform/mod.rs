//! The image pipeline: probe (limits checked from the header) → decode
//! (shrink-on-load) → crop+resize → orientation → sRGB → encode.
//!
//! [`process`] is pure and synchronous; [`Transformer`] runs it on a bounded
//! blocking pool with a queue limit and a timeout.

mod color;
mod encode;
mod jpeg;
mod orient;
mod pixels;
pub mod plan;
mod pool;
mod resize;
mod source;
mod webp;

pub use pool::Transformer;

use crate::media_type::MediaType;
use crate::variant::{Fit, OutputFormat};

/// Everything a transform needs to know besides the source bytes.
#[derive(Debug, Clone)]
pub struct TransformSpec {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub format: OutputFormat,
    pub quality: u8,
    pub max_dimension: u32,
    pub max_source_pixels: u64,
}

/// An encoded derivative.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub media: MediaType,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// Corrupt, truncated or not what it claims to be (422).
    #[error("image cannot be decoded: {0}")]
    Undecodable(String),
    /// Over `max_source_pixels` or a decoder allocation limit (422).
    #[error("image too large: {0}")]
    TooManyPixels(String),
    /// An image type we do not transform (415).
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// Pool and queue full (503).
    #[error("too many transforms in progress, retry shortly")]
    Overloaded,
    /// The transform ran past its deadline (503).
    #[error("transform timed out, retry shortly")]
    TimedOut,
    /// Our fault (500).
    #[error("internal transform error: {0}")]
    Internal(String),
}

/// Runs the whole pipeline on one source image.
pub fn process(
    src: &[u8],
    media: MediaType,
    spec: &TransformSpec,
) -> Result<Encoded, TransformError> {
    let info = source::probe(src, media)?;
    if info.pixels() > spec.max_source_pixels {
        return Err(TransformError::TooManyPixels(format!(
            "{}x{} is over transform.max_source_pixels ({})",
            info.width, info.height, spec.max_source_pixels
        )));
    }
    let plan = plan::Plan::new(
        (info.width, info.height),
        info.orientation,
        spec.width,
        spec.height,
        spec.fit,
        spec.max_dimension,
    );
    // Decoders allocate the output image plus working rows; RGBA16 is 8 bytes a pixel.
    let max_alloc = info.pixels().saturating_mul(8).saturating_add(64 << 20);
    let decoded = source::decode(src, &info, &plan, max_alloc)?;

    // The plan's crop is in full-size stored coordinates; the decoder may have shrunk.
    let (sx, sy) = (
        decoded.width as f64 / info.width as f64,
        decoded.height as f64 / info.height as f64,
    );
    let crop = plan::Rect {
        x: plan.crop.x * sx,
        y: plan.crop.y * sy,
        w: plan.crop.w * sx,
        h: plan.crop.h * sy,
    };
    let resized = resize::resize(decoded, crop, plan.resize_to)?;
    let upright = orient::apply(resized, info.orientation);
    let srgb = match &info.icc {
        Some(icc) => color::rgb_to_srgb(upright, icc),
        None => upright,
    };
    let media = encode::concrete(spec.format, srgb.uses_alpha());
    let (width, height) = (srgb.width, srgb.height);
    let bytes = encode::encode(srgb, media, spec.quality)?;
    Ok(Encoded {
        bytes,
        media,
        width,
        height,
    })
}
