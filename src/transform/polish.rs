//! The background re-encode: the same derivative at the encoder's highest
//! effort (`encode::Effort::Best`), kept only if it is smaller and scores at
//! least as well as the miss's fast encoding against the same pixels.
//!
//! The score is SSIMULACRA2 (the `ssimulacra2` crate) of each encoding,
//! decoded, against the pixels the encoder was given (upright, sRGB,
//! resized: what both encodings try to represent). The fast encoding's score
//! is the bar. Effort alone saves a few per cent (method 6, trellis); the
//! rest comes from asking a best-effort encoder for the lowest `q` whose
//! score still reaches the bar — a bisection over at most [`TRIES`] qualities
//! around the requested one, each encoded, decoded and scored. So the answer
//! is never worse than what the miss served, only smaller.
//!
//! Animations and PNG's lossless output are handled apart: an animation is
//! left as it is, a PNG is kept when best compression makes it smaller.

use ssimulacra2::{ColorPrimaries, Rgb, TransferCharacteristic, compute_frame_ssimulacra2};

use super::encode::{self, Effort};
use super::job::Job;
use super::pixels::{Channels, Pixels, flatten_on_white, gray_to_rgb};
use super::{Shape, StageTimes, TransformError, TransformSpec, animation, render, source};
use crate::media_type::MediaType;
use crate::variant::OutputFormat;

/// Qualities tried besides the requested one, at most.
const TRIES: u32 = 5;
/// How far below and above the requested quality the search goes.
const MAX_DROP: u8 = 30;
const MAX_RISE: u8 = 10;
/// SSIMULACRA2 needs at least 8×8 pixels.
const MIN_SIDE: u32 = 8;

/// A smaller encoding than the miss's, and the scores that allowed it.
#[derive(Debug, Clone)]
pub struct Polished {
    pub bytes: Vec<u8>,
    pub media: MediaType,
    pub quality: u8,
    pub score: f64,
    pub fast_score: f64,
}

/// The best-effort encoding of `spec` from `src`, if smaller than `fast`
/// (the miss's bytes) at an equal or better score; `None` when there is
/// none (or nothing to gain: animations, tiny images).
pub fn polish(
    src: &[u8],
    media: MediaType,
    spec: &TransformSpec,
    fast: &[u8],
    job: &Job,
) -> Result<Option<Polished>, TransformError> {
    if spec.anim
        && spec.format == OutputFormat::Webp
        && animation::probe(src, media, spec.max_source_pixels, job)?.is_some()
    {
        return Ok(None);
    }
    let rendered = render(
        src,
        media,
        &Shape::of(spec),
        job,
        &mut StageTimes::default(),
    )?;
    let _reserved = rendered.reserved;
    let reference = rendered.pixels;
    let out = encode::concrete(spec.format, reference.uses_alpha());
    if reference.width < MIN_SIDE || reference.height < MIN_SIDE {
        return Ok(None);
    }
    if out == MediaType::Png {
        // Lossless: the pixels are the same, only the compression differs.
        let bytes = encode::encode_with(reference, out, spec.quality, Effort::Best)?;
        return Ok((bytes.len() < fast.len()).then_some(Polished {
            bytes,
            media: out,
            quality: spec.quality,
            score: 100.0,
            fast_score: 100.0,
        }));
    }
    let target = linear_rgb(&reference)?;
    let fast_score = score(&target, &decode(fast, out, job)?)?;
    let attempt = |quality: u8| -> Result<Option<Polished>, TransformError> {
        job.check()?;
        let bytes = encode::encode_with(reference.clone(), out, quality, Effort::Best)?;
        job.check()?;
        let s = score(&target, &decode(&bytes, out, job)?)?;
        Ok((s >= fast_score).then_some(Polished {
            bytes,
            media: out,
            quality,
            score: s,
            fast_score,
        }))
    };
    // The lowest quality whose best-effort encoding still reaches the bar,
    // by bisection: below the requested one if that passes, above it (a
    // best-effort encoder may score a little lower at the same q) if not.
    let first = attempt(spec.quality)?;
    let (mut lo, mut hi) = if first.is_some() {
        (
            spec.quality.saturating_sub(MAX_DROP).max(1),
            spec.quality.saturating_sub(1),
        )
    } else {
        (
            spec.quality.saturating_add(1),
            spec.quality.saturating_add(MAX_RISE).min(100),
        )
    };
    let mut best = first;
    for _ in 0..TRIES {
        if lo > hi || hi == 0 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match attempt(mid)? {
            Some(p) => {
                if best.as_ref().is_none_or(|b| p.bytes.len() < b.bytes.len()) {
                    best = Some(p);
                }
                hi = mid.saturating_sub(1);
            }
            None => lo = mid.saturating_add(1),
        }
    }
    let Some(best) = best else {
        return Ok(None);
    };
    Ok((best.bytes.len() < fast.len()).then_some(best))
}

/// Decodes an encoding of ours back to pixels.
fn decode(bytes: &[u8], media: MediaType, job: &Job) -> Result<Pixels, TransformError> {
    let info = source::probe(bytes, media, u64::MAX, job)?;
    source::decode(bytes, &info, 1, job, u64::MAX, 0)
}

/// The pixels as SSIMULACRA2 takes them: sRGB RGB (alpha flattened on
/// white, as the JPEG encoder does) in 0..=1.
fn linear_rgb(p: &Pixels) -> Result<Rgb, TransformError> {
    let (w, h, channels, data) = p.clone().into_u8();
    let rgb = match channels {
        Channels::Rgb => data,
        Channels::Rgba => flatten_on_white(&data),
        Channels::Gray => gray_to_rgb(&data),
    };
    let px: Vec<[f32; 3]> = rgb
        .chunks_exact(3)
        .map(|c| {
            [
                c[0] as f32 / 255.0,
                c[1] as f32 / 255.0,
                c[2] as f32 / 255.0,
            ]
        })
        .collect();
    Rgb::new(
        px,
        w as usize,
        h as usize,
        TransferCharacteristic::SRGB,
        ColorPrimaries::BT709,
    )
    .map_err(|e| TransformError::Internal(format!("ssimulacra2 input: {e:?}")))
}

fn score(target: &Rgb, decoded: &Pixels) -> Result<f64, TransformError> {
    compute_frame_ssimulacra2(target.clone(), linear_rgb(decoded)?)
        .map_err(|e| TransformError::Internal(format!("ssimulacra2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;
    use crate::transform::process;
    use crate::variant::Fit;

    #[test]
    fn best_effort_is_smaller_and_scores_no_lower() {
        let src = corpus("photo_4032x3024_orient1.jpg");
        let job = Job::unbounded();
        // mozjpeg's trellis and scans always find bytes; libwebp's method 6
        // may not at an equal score (then nothing is replaced).
        for (format, must) in [(OutputFormat::Jpeg, true), (OutputFormat::Webp, false)] {
            let spec = TransformSpec::new(Some(300), Some(400), Fit::Cover, format, 80);
            let fast = process(&src, MediaType::Jpeg, &spec, &job).unwrap();
            let Some(p) = polish(&src, MediaType::Jpeg, &spec, &fast.bytes, &job).unwrap() else {
                assert!(!must, "{format:?}: no smaller encoding");
                continue;
            };
            assert!(p.bytes.len() < fast.bytes.len(), "{format:?}");
            assert!(
                p.score >= p.fast_score,
                "{format:?}: {} < {}",
                p.score,
                p.fast_score
            );
            assert_eq!(p.media, fast.media);
            let back = decode(&p.bytes, p.media, &job).unwrap();
            assert_eq!((back.width, back.height), (fast.width, fast.height));
        }
    }

    /// Transparency is scored flattened on white, as JPEG shows it.
    #[test]
    fn alpha_images_are_scored() {
        let src = corpus("rgba_1200x1200.png");
        let job = Job::unbounded();
        let spec = TransformSpec::new(Some(200), Some(280), Fit::Cover, OutputFormat::Webp, 80);
        let fast = process(&src, MediaType::Png, &spec, &job).unwrap();
        if let Some(p) = polish(&src, MediaType::Png, &spec, &fast.bytes, &job).unwrap() {
            assert!(p.bytes.len() < fast.bytes.len() && p.score >= p.fast_score);
        }
    }

    #[test]
    fn animations_are_left_alone() {
        let src = corpus("anim_320x240_8f.gif");
        let spec = TransformSpec::new(Some(160), None, Fit::Cover, OutputFormat::Webp, 80);
        let job = Job::unbounded();
        let fast = process(&src, MediaType::Gif, &spec, &job).unwrap();
        assert!(
            polish(&src, MediaType::Gif, &spec, &fast.bytes, &job)
                .unwrap()
                .is_none()
        );
    }
}
