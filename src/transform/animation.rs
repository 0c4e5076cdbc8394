//! Animated GIF and WebP made into an animated WebP: every frame composed
//! on its canvas (GIF through the `image` crate, which applies disposal and
//! transparency; WebP through libwebp's `WebPAnimDecoder`, which applies
//! blending and disposal), cropped and resized by the same plan, and added
//! to libwebp's animation encoder with its duration; the loop count kept.
//!
//! One frame at a time: the decoder's canvas, one resized frame and the
//! encoder's previous canvas are all that is held, whatever the length.
//! Bounded before the first frame is decoded: the canvas by
//! `max_source_pixels` (the caller's probe), the frame count by
//! `transform.max_frames`, and the frames' total decoded bytes by the
//! memory budget (`transform.memory_mb`) — over any, 422.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::codecs::gif::GifDecoder;
use image::{AnimationDecoder, ImageDecoder, Limits};

use super::job::Job;
use super::pixels::{Channels, Pixels};
use super::plan::Plan;
use super::{Encoded, StageTimes, TransformError, TransformSpec, anchor, resize, webp};
use crate::media_type::MediaType;

/// libwebp's method for animations made on a miss (sharp's default effort).
const METHOD: i32 = 4;
/// A GIF frame shorter than this plays for [`SHORT_GIF_FRAME_MS`], as
/// browsers play it (a delay of 0 or 1 hundredths of a second).
const MIN_GIF_FRAME_MS: u32 = 20;
const SHORT_GIF_FRAME_MS: u32 = 100;
/// Frames counted at most when only the count is wanted.
pub const MAX_COUNTED_FRAMES: u32 = 100_000;

/// An animated source's facts, from its header and block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Animation {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    /// As WebP counts it: plays this many times, 0 forever.
    pub loop_count: u32,
}

/// The animation in `src`, or `None` for a still image (one frame, or a
/// type that does not animate). The canvas must be within `max_pixels`.
pub fn probe(
    src: &[u8],
    media: MediaType,
    max_pixels: u64,
    job: &Job,
) -> Result<Option<Animation>, TransformError> {
    let anim = match media {
        MediaType::Gif => {
            let (frames, loop_count, (width, height)) = gif_facts(src, job)?;
            Animation {
                width,
                height,
                frames,
                loop_count,
            }
        }
        MediaType::Webp => {
            let h = webp::probe(src)?;
            if !h.animated {
                return Ok(None);
            }
            Animation {
                width: h.width,
                height: h.height,
                frames: webp::frames(src),
                // From the chunk: a decoder would allocate its canvases
                // before the job has reserved the memory.
                loop_count: webp::loop_count(src),
            }
        }
        _ => return Ok(None),
    };
    if anim.frames < 2 {
        return Ok(None);
    }
    if anim.width as u64 * anim.height as u64 > max_pixels {
        return Err(TransformError::TooManyPixels(format!(
            "{}x{} is over transform.max_source_pixels ({max_pixels})",
            anim.width, anim.height
        )));
    }
    Ok(Some(anim))
}

/// A GIF's frame count (up to [`MAX_COUNTED_FRAMES`]), its loop count as
/// WebP counts it and its canvas, from the block structure without
/// decompressing any frame (the `gif` crate skips the LZW data).
pub fn gif_facts(src: &[u8], job: &Job) -> Result<(u32, u32, (u32, u32)), TransformError> {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    if let Some(limit) = std::num::NonZeroU64::new(16 << 20) {
        options.set_memory_limit(gif::MemoryLimit::Bytes(limit));
    }
    let bad = |e: gif::DecodingError| TransformError::Undecodable(format!("GIF: {e}"));
    let mut decoder = options.read_info(Cursor::new(src)).map_err(bad)?;
    let canvas = (decoder.width() as u32, decoder.height() as u32);
    let mut frames = 0;
    while frames < MAX_COUNTED_FRAMES && decoder.next_frame_info().map_err(bad)?.is_some() {
        frames += 1;
        if frames % 256 == 0 {
            job.check()?;
        }
    }
    // No NETSCAPE loop block: plays once. A count N means N more plays
    // after the first (as browsers and gif2webp read it).
    let loop_count = match decoder.repeat() {
        gif::Repeat::Infinite => 0,
        gif::Repeat::Finite(0) => 1,
        gif::Repeat::Finite(n) => (n as u32 + 1).min(65535),
    };
    Ok((frames, loop_count, canvas))
}

/// Makes the animated WebP of `anim` (`src` of `media`) for `spec`.
pub fn process(
    src: &[u8],
    media: MediaType,
    anim: &Animation,
    spec: &TransformSpec,
    job: &Job,
    times: &mut StageTimes,
) -> Result<Encoded, TransformError> {
    if anim.frames > spec.max_frames {
        return Err(TransformError::TooManyPixels(format!(
            "{} frames is over transform.max_frames ({})",
            anim.frames, spec.max_frames
        )));
    }
    let canvas = (anim.width, anim.height);
    let frame_bytes = anim.width as u64 * anim.height as u64 * 4;
    let total = frame_bytes.saturating_mul(anim.frames as u64);
    if let Some(budget) = job.budget_total()
        && total > budget
    {
        return Err(TransformError::TooManyPixels(format!(
            "its {} frames decode to about {} MiB, more than transform.memory_mb ({} MiB)",
            anim.frames,
            total.div_ceil(1 << 20),
            budget >> 20
        )));
    }
    let plan = Plan::new(
        canvas,
        1,
        spec.width,
        spec.height,
        spec.fit,
        spec.max_dimension,
    );
    let out = plan.resize_to;
    let out_bytes = out.0 as u64 * out.1 as u64 * 4;
    // The decoder's canvas and previous canvas, our copy of a frame and its
    // premultiplied copy, the resizer's rows; the resized frames (one being
    // made, one handed over, one being encoded), libwebp's picture and its
    // previous canvas and candidate sub-frames.
    let _reserved =
        job.reserve(frame_bytes * 4 + out.0 as u64 * anim.height as u64 * 4 + out_bytes * 10)?;

    let mut encoder = webp::AnimEncoder::new(out.0, out.1, anim.loop_count, spec.quality, METHOD)?;
    let mut at_ms: u32 = 0;
    let mut encode_time = Duration::ZERO;
    let mut add = |rgba: &[u8], duration_ms: u32| {
        let clock = Instant::now();
        encoder.add(rgba, at_ms as i32)?;
        encode_time += clock.elapsed();
        at_ms = at_ms.saturating_add(duration_ms).min(i32::MAX as u32);
        job.check()
    };
    match job.spare_worker() {
        // Decoding and resizing on the borrowed thread, encoding here: the
        // encoder is the longer half, so the other costs little time.
        Some(helper) => {
            let (frames, encoding) = std::sync::mpsc::sync_channel::<(Vec<u8>, u32)>(1);
            let mut side = StageTimes::default();
            let (made, encoded) = helper.run(
                || {
                    // Owned here, so the encoder's loop ends when this does.
                    let frames = frames;
                    resized_frames(src, media, anim, spec, plan, job, &mut side, |rgba, ms| {
                        // Refused only once the encoder has stopped, whose
                        // own answer is the one reported.
                        frames
                            .send((rgba, ms))
                            .map_err(|_| TransformError::Internal("the encoder stopped".into()))
                    })
                },
                || {
                    for (rgba, ms) in encoding {
                        add(&rgba, ms)?;
                    }
                    Ok::<_, TransformError>(())
                },
            )?;
            encoded?;
            made?;
            times.decode += side.decode;
            times.resize += side.resize;
        }
        None => resized_frames(src, media, anim, spec, plan, job, times, |rgba, ms| {
            add(&rgba, ms)
        })?,
    }
    let clock = Instant::now();
    let bytes = encoder.finish(at_ms as i32)?;
    times.encode += encode_time + clock.elapsed();
    Ok(Encoded {
        bytes,
        media: MediaType::Webp,
        width: out.0,
        height: out.1,
        decoded: canvas,
    })
}

/// Calls `f` with each frame of `anim` cropped and resized by `plan` (the
/// crop anchored once, on the first frame) and its duration; decoding and
/// resizing timed into `times`.
#[allow(clippy::too_many_arguments)]
fn resized_frames(
    src: &[u8],
    media: MediaType,
    anim: &Animation,
    spec: &TransformSpec,
    plan: Plan,
    job: &Job,
    times: &mut StageTimes,
    mut f: impl FnMut(Vec<u8>, u32) -> Result<(), TransformError>,
) -> Result<(), TransformError> {
    let canvas = (anim.width, anim.height);
    let mut placed: Option<Plan> = None;
    let mut clock = Instant::now();
    each_frame(src, media, anim, job, |rgba, duration_ms| {
        times.decode += clock.elapsed();
        let resizing = Instant::now();
        let frame = Pixels::new_u8(anim.width, anim.height, Channels::Rgba, rgba);
        let plan = *placed.get_or_insert_with(|| anchor(plan, canvas, 1, spec.gravity, &frame));
        let resized = resize::resize(frame, plan.crop, plan.resize_to)?;
        let (_, _, channels, data) = resized.into_u8();
        if channels != Channels::Rgba {
            // The resizer keeps the channels it was given.
            return Err(TransformError::Internal(
                "animation frame lost its alpha".into(),
            ));
        }
        times.resize += resizing.elapsed();
        f(data, duration_ms)?;
        clock = Instant::now();
        Ok(())
    })
}

/// Calls `f` with each composed frame (canvas RGBA) and its duration in
/// milliseconds, at most `anim.frames` times.
fn each_frame(
    src: &[u8],
    media: MediaType,
    anim: &Animation,
    job: &Job,
    mut f: impl FnMut(Vec<u8>, u32) -> Result<(), TransformError>,
) -> Result<(), TransformError> {
    let frame_bytes = anim.width as u64 * anim.height as u64 * 4;
    if media == MediaType::Webp {
        let mut frames = webp::AnimFrames::new(src)?;
        let mut ended = 0;
        for _ in 0..anim.frames {
            job.check()?;
            let Some((canvas, end)) = frames.next()? else {
                break;
            };
            let duration = end.saturating_sub(ended).max(0) as u32;
            ended = end;
            f(canvas.to_vec(), duration)?;
        }
        return Ok(());
    }
    let mut decoder = GifDecoder::new(Cursor::new(src))
        .map_err(|e| TransformError::Undecodable(format!("GIF: {e}")))?;
    let mut limits = Limits::default();
    // Its canvas, one frame's buffer and the composed copy.
    limits.max_alloc = Some(frame_bytes * 3 + (1 << 20));
    decoder
        .set_limits(limits)
        .map_err(|e| TransformError::TooManyPixels(e.to_string()))?;
    for frame in decoder.into_frames().take(anim.frames as usize) {
        job.check()?;
        let frame = frame.map_err(|e| match e {
            image::ImageError::Limits(l) => TransformError::TooManyPixels(l.to_string()),
            e => TransformError::Undecodable(format!("GIF: {e}")),
        })?;
        let (num, den) = frame.delay().numer_denom_ms();
        let ms = num / den.max(1);
        let ms = if ms < MIN_GIF_FRAME_MS {
            SHORT_GIF_FRAME_MS
        } else {
            ms
        };
        let buffer = frame.into_buffer();
        if buffer.dimensions() != (anim.width, anim.height) {
            return Err(TransformError::Undecodable(
                "GIF: a frame is not the canvas size".into(),
            ));
        }
        f(buffer.into_raw(), ms)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;
    use crate::variant::{Fit, OutputFormat};
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn webp_spec(w: u32) -> TransformSpec {
        TransformSpec::new(Some(w), None, Fit::Cover, OutputFormat::Webp, 80)
    }

    #[test]
    fn corpus_animations_are_found_and_counted() {
        let job = Job::unbounded();
        let gif = corpus("anim_320x240_8f.gif");
        let a = probe(&gif, MediaType::Gif, u64::MAX, &job)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.width, a.height, a.frames, a.loop_count),
            (320, 240, 8, 0)
        );
        let webp = corpus("anim_480x300_6f.webp");
        let a = probe(&webp, MediaType::Webp, u64::MAX, &job)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.width, a.height, a.frames, a.loop_count),
            (480, 300, 6, 0)
        );
        assert!(
            probe(
                &corpus("photo_4272x2848.webp"),
                MediaType::Webp,
                u64::MAX,
                &job
            )
            .unwrap()
            .is_none()
        );
        // The canvas is held to the pixel limit before anything is decoded.
        assert!(matches!(
            probe(&gif, MediaType::Gif, 1000, &job),
            Err(TransformError::TooManyPixels(_))
        ));
    }

    #[test]
    fn frames_and_durations_survive() {
        let job = Job::unbounded();
        let webp = corpus("anim_480x300_6f.webp");
        let a = probe(&webp, MediaType::Webp, u64::MAX, &job)
            .unwrap()
            .unwrap();
        let out = process(
            &webp,
            MediaType::Webp,
            &a,
            &webp_spec(240),
            &job,
            &mut StageTimes::default(),
        )
        .unwrap();
        assert_eq!((out.width, out.height), (240, 150));
        let back = webp::AnimFrames::new(&out.bytes).unwrap();
        assert_eq!(
            (
                back.info.frame_count,
                back.info.canvas_width,
                back.info.loop_count
            ),
            (6, 240, 0)
        );
        let mut frames = webp::AnimFrames::new(&out.bytes).unwrap();
        let mut ends = Vec::new();
        while let Some((_, end)) = frames.next().unwrap() {
            ends.push(end);
        }
        assert_eq!(ends, [100, 250, 450, 700, 1000, 1350]);
    }

    fn shared(job: Job) -> (Job, Arc<Semaphore>) {
        let workers = Arc::new(Semaphore::new(1));
        (job.sharing(workers.clone()), workers)
    }

    /// Decoding on a borrowed worker's thread changes nothing in the output.
    #[test]
    fn a_borrowed_worker_makes_the_same_animation() {
        for (file, media) in [
            ("anim_320x240_8f.gif", MediaType::Gif),
            ("anim_480x300_6f.webp", MediaType::Webp),
        ] {
            let src = corpus(file);
            let a = probe(&src, media, u64::MAX, &Job::unbounded())
                .unwrap()
                .unwrap();
            let run = |job: &Job| {
                process(
                    &src,
                    media,
                    &a,
                    &webp_spec(160),
                    job,
                    &mut StageTimes::default(),
                )
                .unwrap()
            };
            let alone = run(&Job::unbounded());
            let (job, workers) = shared(Job::unbounded());
            assert!(job.spare_worker().is_some(), "the place is free");
            let beside = run(&job);
            assert_eq!(alone.bytes, beside.bytes, "{file}");
            assert_eq!(workers.available_permits(), 1, "the place is given back");
        }
    }

    /// A frame that fails to decode, or a deadline that passes, ends both
    /// threads with that answer (no hang on the hand-over between them).
    #[test]
    fn a_broken_frame_or_a_deadline_ends_both_threads() {
        let gif = corpus("anim_320x240_8f.gif");
        let a = probe(&gif, MediaType::Gif, u64::MAX, &Job::unbounded())
            .unwrap()
            .unwrap();
        let cut = &gif[..gif.len() * 2 / 3];
        let (job, workers) = shared(Job::unbounded());
        let e = process(
            cut,
            MediaType::Gif,
            &a,
            &webp_spec(160),
            &job,
            &mut StageTimes::default(),
        )
        .unwrap_err();
        assert!(matches!(e, TransformError::Undecodable(_)), "{e}");
        assert_eq!(workers.available_permits(), 1);
        let past = Job::new(
            Instant::now(),
            super::super::job::MemoryBudget::new(1 << 30),
        );
        let (job, _) = shared(past);
        let e = process(
            &gif,
            MediaType::Gif,
            &a,
            &webp_spec(160),
            &job,
            &mut StageTimes::default(),
        )
        .unwrap_err();
        assert_eq!(e, TransformError::TimedOut);
    }

    #[test]
    fn limits_answer_before_decoding() {
        let job = Job::unbounded();
        let gif = corpus("anim_320x240_8f.gif");
        let a = probe(&gif, MediaType::Gif, u64::MAX, &job)
            .unwrap()
            .unwrap();
        let spec = TransformSpec {
            max_frames: 7,
            ..webp_spec(160)
        };
        let e = process(
            &gif,
            MediaType::Gif,
            &a,
            &spec,
            &job,
            &mut StageTimes::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("transform.max_frames (7)"), "{e}");
        // 8 frames of 320x240 RGBA are 2.4 MiB: over a 2 MiB budget.
        let small = Job::new(
            std::time::Instant::now() + std::time::Duration::from_secs(30),
            super::super::job::MemoryBudget::new(2 << 20),
        );
        let e = process(
            &gif,
            MediaType::Gif,
            &a,
            &webp_spec(160),
            &small,
            &mut StageTimes::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("transform.memory_mb"), "{e}");
    }

    #[test]
    fn a_gif_is_counted_without_decoding_its_frames() {
        // A frame claiming 65535×65535 pixels and holding three bytes.
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        for _ in 0..3 {
            gif.extend_from_slice(b"\x2c\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02\x02\x44\x01\x00");
        }
        gif.push(0x3b);
        assert_eq!(gif_facts(&gif, &Job::unbounded()).unwrap().0, 3);
        assert!(gif_facts(b"GIF89a", &Job::unbounded()).is_err());
    }

    /// Counting stops at MAX_COUNTED_FRAMES, however many frames follow.
    #[test]
    fn frames_are_counted_up_to_a_bound() {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        for _ in 0..MAX_COUNTED_FRAMES + 10 {
            gif.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
        }
        gif.push(0x3b);
        assert_eq!(
            gif_facts(&gif, &Job::unbounded()).unwrap().0,
            MAX_COUNTED_FRAMES
        );
    }
}
