//! What a feed needs before the image arrives: the upright size, the frame
//! count of an animation, ThumbHash and BlurHash placeholders, the average
//! colour and the point a crop should keep — all from one small decode
//! (shrink-on-load to at most [`SIDE`] pixels a side, the resolution
//! ThumbHash itself works at), never the full image.
//!
//! The placeholders come from the formats' own crates: `thumbhash` is the
//! Rust port by ThumbHash's author, `blurhash` (whisperfish) follows Wolt's
//! reference; both are checked against the JavaScript reference decoders in
//! `tests/media_info.rs`.

use base64::Engine as _;
use serde::Serialize;

use super::job::Job;
use super::{Shape, StageTimes, TransformError, render, webp};
use crate::media_type::MediaType;
use crate::variant::{Fit, OutputFormat};

/// Longest side of the decode the placeholders are computed from
/// (ThumbHash accepts at most 100×100).
pub const SIDE: u32 = 100;

/// A point of the upright image, each coordinate 0..=1 from the left / top.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Focus {
    pub x: f64,
    pub y: f64,
}

/// The media information an image gives (`fmt=json`, the upload's 201).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Described {
    /// Upright (EXIF orientation / `irot` applied).
    pub width: u32,
    pub height: u32,
    /// Frames of an animation; absent for a still image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// A video's length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A video's codec: `h264`, `hevc`, `vp9`, `av1` (or libav's name of another).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<String>,
    /// Whether a video has a sound track.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// ThumbHash, standard base64.
    pub thumbhash: String,
    pub blurhash: String,
    /// The average colour, `#rrggbb` (transparent pixels count for nothing).
    pub color: String,
    /// Where a content-aware crop (`g=auto`) centres (`saliency.rs`).
    pub focus: Focus,
}

/// Describes `src` within `job`'s limits (the same probe, pixel limit and
/// memory reservation as a transform). `whole`: decode the image itself,
/// never a HEIF's embedded thumbnail (an upload's check). A video is
/// described by its container and, for the placeholders, its frame at `at_ms`.
pub fn describe(
    src: &[u8],
    media: MediaType,
    max_source_pixels: u64,
    job: &Job,
    whole: bool,
    at_ms: u64,
) -> Result<Described, TransformError> {
    let shape = Shape {
        width: Some(SIDE),
        height: Some(SIDE),
        fit: Fit::Inside,
        max_dimension: SIDE,
        max_source_pixels,
        format: OutputFormat::Png,
        thumbnails: !whole,
        at_ms,
        gravity: crate::variant::Gravity::CENTER,
    };
    let rendered = render(src, media, &shape, job, &mut StageTimes::default())?;
    let (width, height) = rendered.upright;
    let frames = match media {
        MediaType::Gif => super::animation::gif_facts(src, job)?.0,
        MediaType::Webp => webp::frames(src),
        _ => 1,
    };
    // Upright already: the point as a crop of the upright image takes it.
    let (fx, fy) = super::saliency::focus(&rendered.pixels);
    let (w, h, rgba) = rendered.pixels.into_rgba8();
    // The plan never exceeds its box; checked anyway, as `thumbhash` asserts it.
    if !(1..=SIDE).contains(&w) || !(1..=SIDE).contains(&h) {
        return Err(TransformError::Internal(format!(
            "placeholder from {w}x{h}"
        )));
    }
    let video = rendered.video.as_ref();
    Ok(Described {
        width,
        height,
        frames: (frames > 1).then_some(frames),
        duration_ms: video.map(|v| v.duration_ms),
        video_codec: video.map(|v| v.codec_name.clone()),
        audio: video.map(|v| v.audio),
        thumbhash: base64::engine::general_purpose::STANDARD
            .encode(thumbhash::rgba_to_thumb_hash(w as usize, h as usize, &rgba)),
        blurhash: blurhash(w, h, &rgba)?,
        color: average_color(&rgba),
        focus: Focus {
            x: (fx * 1000.0).round() / 1000.0,
            y: (fy * 1000.0).round() / 1000.0,
        },
    })
}

/// BlurHash with 4 components along the longer side and 3 along the
/// shorter (the reference's default for a landscape picture).
fn blurhash(w: u32, h: u32, rgba: &[u8]) -> Result<String, TransformError> {
    let (cx, cy) = if w >= h { (4, 3) } else { (3, 4) };
    blurhash::encode(cx, cy, w, h, rgba)
        .map_err(|e| TransformError::Internal(format!("blurhash: {e}")))
}

/// The alpha-weighted mean of the sRGB values, as `#rrggbb`.
fn average_color(rgba: &[u8]) -> String {
    let mut sum = [0u64; 3];
    let mut weight = 0u64;
    for p in rgba.chunks_exact(4) {
        let a = p[3] as u64;
        for (s, &c) in sum.iter_mut().zip(&p[..3]) {
            *s += c as u64 * a;
        }
        weight += a;
    }
    // Fully transparent: black.
    let mean = |s: u64| (s + weight / 2).checked_div(weight).unwrap_or(0);
    format!(
        "#{:02x}{:02x}{:02x}",
        mean(sum[0]),
        mean(sum[1]),
        mean(sum[2])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    fn describe_file(name: &str, media: MediaType) -> Described {
        describe(
            &corpus(name),
            media,
            100_000_000,
            &Job::unbounded(),
            false,
            0,
        )
        .unwrap()
    }

    #[test]
    fn sizes_are_upright_and_animations_counted() {
        let d = describe_file("photo_4032x3024_orient6.jpg", MediaType::Jpeg);
        assert_eq!((d.width, d.height, d.frames), (3024, 4032, None));
        let d = describe_file("heic_4032x3024_orient6_gps.heic", MediaType::Heic);
        assert_eq!((d.width, d.height), (3024, 4032));
        let d = describe_file("anim_320x240_8f.gif", MediaType::Gif);
        assert_eq!((d.width, d.height, d.frames), (320, 240, Some(8)));
        let d = describe_file("anim_480x300_6f.webp", MediaType::Webp);
        assert_eq!((d.width, d.height, d.frames), (480, 300, Some(6)));
    }

    /// The focus is where g=auto centres: on the corpus' off-centre subject.
    #[test]
    fn focus_is_on_the_subject() {
        let d = describe_file("offcentre_subject_2400x1200.jpg", MediaType::Jpeg);
        assert!(
            (d.focus.x - 0.81).abs() < 0.06 && (d.focus.y - 0.5).abs() < 0.1,
            "{:?}",
            d.focus
        );
    }

    /// A phone HEIC is described from its 240x320 thumbnail, and says the
    /// same as from its grid (the upload's check decodes the grid).
    #[test]
    fn heic_thumbnails_stand_in_for_the_grid() {
        let src = corpus("heic_4032x3024_orient6_gps.heic");
        let job = Job::unbounded();
        let small = describe(&src, MediaType::Heic, 100_000_000, &job, false, 0).unwrap();
        let whole = describe(&src, MediaType::Heic, 100_000_000, &job, true, 0).unwrap();
        assert_eq!((small.width, small.height), (whole.width, whole.height));
        let rgb = |d: &Described| u32::from_str_radix(&d.color[1..], 16).unwrap();
        for shift in [16, 8, 0] {
            let (a, b) = ((rgb(&small) >> shift) & 255, (rgb(&whole) >> shift) & 255);
            assert!(a.abs_diff(b) <= 4, "{} vs {}", small.color, whole.color);
        }
    }

    #[test]
    fn placeholders_decode_back_to_the_picture() {
        let d = describe_file("photo_4032x3024_orient1.jpg", MediaType::Jpeg);
        let hash = base64::engine::general_purpose::STANDARD
            .decode(&d.thumbhash)
            .unwrap();
        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
        assert!((ratio - 4.0 / 3.0).abs() < 0.1, "{ratio}");
        assert_eq!(a, 1.0);
        let rgb = u32::from_str_radix(&d.color[1..], 16).unwrap();
        let channel = |shift: u32| ((rgb >> shift) & 255) as f32 / 255.0;
        for (hashed, mean) in [(r, channel(16)), (g, channel(8)), (b, channel(0))] {
            assert!((hashed - mean).abs() < 0.06, "{hashed} vs {mean}");
        }
        // 4×3 components: 1 + 1 + 4 + 2 × (4 × 3 − 1) characters.
        assert_eq!(d.blurhash.len(), 28);
        let px = blurhash::decode(&d.blurhash, 4, 3, 1.0).unwrap();
        assert_eq!(px.len(), 4 * 3 * 4);
    }

    #[test]
    fn the_average_ignores_transparent_pixels() {
        assert_eq!(average_color(&[255, 0, 0, 255, 0, 0, 255, 0]), "#ff0000");
        assert_eq!(
            average_color(&[0, 0, 0, 255, 255, 255, 255, 255]),
            "#808080"
        );
        assert_eq!(average_color(&[9, 9, 9, 0]), "#000000");
    }
}
