//! The image pipeline: probe (limits checked from the header) → decode
//! (shrink-on-load) → crop+resize → orientation → sRGB → encode.
//!
//! [`process`] is pure and synchronous; [`Transformer`] runs it on a bounded
//! blocking pool with a queue limit and a timeout.

mod animation;
mod color;
mod describe;
mod encode;
pub mod exif;
mod heif;
pub mod job;
mod jpeg;
mod orient;
mod pixels;
pub mod plan;
mod png;
pub mod polish;
mod pool;
mod resize;
pub mod saliency;
mod source;
pub mod verify;
mod video;
mod webp;

pub use describe::{Described, Focus, describe};
pub use job::Job;
pub use pool::{Admission, Transformer};
pub use verify::{UploadLimits, read_staged, verify};

use crate::media_type::MediaType;
use crate::variant::{Edge, Fit, Gravity, OutputFormat};

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
    /// A video's frame to show, in milliseconds (ignored for images).
    pub at_ms: u64,
    /// Where a `cover` crop is taken.
    pub gravity: Gravity,
    /// An animated GIF/WebP made into WebP stays animated.
    pub anim: bool,
    /// Frames an animation may have to stay animated (`transform.max_frames`).
    pub max_frames: u32,
}

impl TransformSpec {
    /// A still, centred transform to a box (tests, benchmarks, fuzzing).
    pub fn new(
        width: Option<u32>,
        height: Option<u32>,
        fit: Fit,
        format: OutputFormat,
        quality: u8,
    ) -> Self {
        Self {
            width,
            height,
            fit,
            format,
            quality,
            max_dimension: 4096,
            max_source_pixels: 100_000_000,
            at_ms: 0,
            gravity: Gravity::CENTER,
            anim: true,
            max_frames: 500,
        }
    }
}

/// An encoded derivative.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub media: MediaType,
    pub width: u32,
    pub height: u32,
    /// Size the decoder produced: smaller than the source when it shrank on load.
    pub decoded: (u32, u32),
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
    /// This client started more transforms than `transform.miss_rate_per_ip`
    /// allows (429); a new one is allowed after the given seconds.
    #[error("Too Many Requests: too many new transforms from this address, retry in {0} s")]
    RateLimited(u64),
    /// Our fault (500).
    #[error("internal transform error: {0}")]
    Internal(String),
}

/// Where one transform's time went (for the benchmark's per-stage profile).
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub probe: std::time::Duration,
    pub decode: std::time::Duration,
    pub resize: std::time::Duration,
    /// Orientation and colour conversion.
    pub post: std::time::Duration,
    pub encode: std::time::Duration,
}

/// The header, refused over `max_source_pixels` before any buffer exists.
fn probe_within(
    src: &[u8],
    media: MediaType,
    max_source_pixels: u64,
    job: &Job,
) -> Result<source::SourceInfo, TransformError> {
    let info = source::probe(src, media, max_source_pixels, job)?;
    if info.pixels() > max_source_pixels {
        return Err(TransformError::TooManyPixels(format!(
            "{}x{} is over transform.max_source_pixels ({max_source_pixels})",
            info.width, info.height
        )));
    }
    Ok(info)
}

/// Runs the whole pipeline on one source image, within `job`'s limits.
pub fn process(
    src: &[u8],
    media: MediaType,
    spec: &TransformSpec,
    job: &Job,
) -> Result<Encoded, TransformError> {
    process_profiled(src, media, spec, job).map(|(e, _)| e)
}

/// [`process`], also saying how long each stage took.
pub fn process_profiled(
    src: &[u8],
    media: MediaType,
    spec: &TransformSpec,
    job: &Job,
) -> Result<(Encoded, StageTimes), TransformError> {
    let mut times = StageTimes::default();
    if spec.anim
        && spec.format == OutputFormat::Webp
        && let Some(anim) = animation::probe(src, media, spec.max_source_pixels, job)?
    {
        let encoded = animation::process(src, media, &anim, spec, job, &mut times)?;
        return Ok((encoded, times));
    }
    let rendered = render(src, media, &Shape::of(spec), job, &mut times)?;
    // The reservation covers the encoder too: held until it has finished.
    let _reserved = rendered.reserved;
    let srgb = rendered.pixels;
    let clock = std::time::Instant::now();
    job.check()?;
    let media = encode::concrete(spec.format, srgb.uses_alpha());
    let (width, height) = (srgb.width, srgb.height);
    let bytes = encode::encode(srgb, media, spec.quality)?;
    times.encode = clock.elapsed();
    let encoded = Encoded {
        bytes,
        media,
        width,
        height,
        decoded: rendered.decoded,
    };
    Ok((encoded, times))
}

/// What [`render`] makes: the box, and the format it will be encoded to
/// (for the memory reservation).
struct Shape {
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    max_dimension: u32,
    max_source_pixels: u64,
    format: OutputFormat,
    /// May a HEIF's embedded thumbnail stand in for the image (false when
    /// the image itself must be proven to decode).
    thumbnails: bool,
    /// A video's frame, in milliseconds.
    at_ms: u64,
    gravity: Gravity,
}

impl Shape {
    /// The shape a transform to `spec` renders.
    fn of(spec: &TransformSpec) -> Self {
        Self {
            width: spec.width,
            height: spec.height,
            fit: spec.fit,
            max_dimension: spec.max_dimension,
            max_source_pixels: spec.max_source_pixels,
            format: spec.format,
            thumbnails: true,
            at_ms: spec.at_ms,
            gravity: spec.gravity,
        }
    }
}

/// What [`render`] gives.
struct Rendered {
    /// Upright, sRGB, the size of the shape.
    pixels: pixels::Pixels,
    /// The size the decoder produced (smaller than the source when it shrank).
    decoded: (u32, u32),
    /// The source's full size, upright.
    upright: (u32, u32),
    /// A video's container facts.
    video: Option<video::VideoHeader>,
    /// The memory reserved for the whole job, the encoder's share included:
    /// kept until the encoder is done.
    reserved: Option<job::Reservation>,
}

/// Probe (limits from the header) → reserve memory → decode (shrink-on-load)
/// → crop+resize → orientation → sRGB. What every transform and the media
/// information share, up to the encoder.
fn render(
    src: &[u8],
    media: MediaType,
    shape: &Shape,
    job: &Job,
    times: &mut StageTimes,
) -> Result<Rendered, TransformError> {
    let mut clock = std::time::Instant::now();
    let mut lap = |slot: &mut std::time::Duration| {
        let now = std::time::Instant::now();
        *slot = now - clock;
        clock = now;
    };
    let info = probe_within(src, media, shape.max_source_pixels, job)?;
    let plan = plan::Plan::new(
        (info.width, info.height),
        info.orientation,
        shape.width,
        shape.height,
        shape.fit,
        shape.max_dimension,
    );
    let shrink = info.shrink(&plan, shape.thumbnails);
    let memory = info.memory_needed(&plan, shrink, shape.format);
    let reserved = job.reserve(memory)?;
    lap(&mut times.probe);
    let decoded = source::decode(src, &info, shrink, job, memory, shape.at_ms)?;
    let decoded_size = (decoded.width, decoded.height);
    job.check()?;
    lap(&mut times.decode);
    let plan = anchor(
        plan,
        (info.width, info.height),
        info.orientation,
        shape.gravity,
        &decoded,
    );

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
    job.check()?;
    lap(&mut times.resize);
    let upright = orient::apply(resized, info.orientation);
    let srgb = match &info.icc {
        Some(icc) => color::rgb_to_srgb(upright, icc),
        None => upright,
    };
    lap(&mut times.post);
    let upright = if plan::swaps_axes(info.orientation) {
        (info.height, info.width)
    } else {
        (info.width, info.height)
    };
    let video = match info.codec {
        source::Codec::Video { header, .. } => Some(header),
        _ => None,
    };
    Ok(Rendered {
        pixels: srgb,
        decoded: decoded_size,
        upright,
        video,
        reserved,
    })
}

/// The plan's crop moved where `gravity` says (the centre stays as
/// planned); `g=auto` looks at the decoded pixels, which are in the stored
/// orientation. A crop of the whole image (no `cover` box, or one of the
/// image's own shape) has nowhere to move.
fn anchor(
    plan: plan::Plan,
    stored: (u32, u32),
    o: u8,
    gravity: Gravity,
    decoded: &pixels::Pixels,
) -> plan::Plan {
    if plan.crop.w >= stored.0 as f64 && plan.crop.h >= stored.1 as f64 {
        return plan;
    }
    match gravity {
        Gravity::Edge(Edge::Center) => plan,
        Gravity::Edge(e) => {
            let (x, y) = e.alignment();
            plan.anchored(stored, o, plan::Anchor::Align(x, y))
        }
        Gravity::Focus { x, y } => plan.anchored(
            stored,
            o,
            plan::Anchor::Focus(x as f64 / 1000.0, y as f64 / 1000.0),
        ),
        Gravity::Auto => {
            let (s, t) = saliency::focus(decoded);
            let (u, v) = plan::stored_to_upright(o, s, t);
            plan.anchored(stored, o, plan::Anchor::Focus(u, v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    fn spec(w: u32, h: u32) -> TransformSpec {
        TransformSpec::new(Some(w), Some(h), Fit::Cover, OutputFormat::Webp, 80)
    }

    /// A 12 MP JPEG is never decoded at full size for a preview.
    #[test]
    fn jpeg_and_webp_shrink_on_load() {
        let photo = corpus("photo_4032x3024_orient1.jpg");
        let out = process(&photo, MediaType::Jpeg, &spec(150, 150), &Job::unbounded()).unwrap();
        assert_eq!((out.width, out.height, out.decoded), (150, 150, (504, 378)));
        let out = process(&photo, MediaType::Jpeg, &spec(500, 700), &Job::unbounded()).unwrap();
        assert_eq!(
            (out.width, out.height, out.decoded),
            (500, 700, (1008, 756))
        );
        let webp = corpus("photo_4272x2848.webp");
        let out = process(&webp, MediaType::Webp, &spec(500, 700), &Job::unbounded()).unwrap();
        assert_eq!(
            (out.width, out.height, out.decoded),
            (500, 700, (1068, 712))
        );
    }

    #[test]
    fn pixel_limit_is_checked_before_decoding() {
        let bomb = corpus("bomb_20000x20000_1bit.png");
        let e = process(&bomb, MediaType::Png, &spec(10, 10), &Job::unbounded()).unwrap_err();
        assert!(matches!(e, TransformError::TooManyPixels(_)), "{e:?}");
    }
}
