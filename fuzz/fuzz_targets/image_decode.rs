//! The image probe and decode path with its limits on, as an upload's check
//! and a transform run it: the type is sniffed from the bytes (as the server
//! does), `verify` probes, checks the pixel limit and decodes (giving the
//! media information); a source that passes is then described as
//! `fmt=json` does (a HEIF's thumbnail may stand in) and transformed.
//! Nothing may panic, hang or allocate beyond the limits (libFuzzer's
//! -rss_limit_mb catches the last).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediaedge::media_type::MediaType;
use std::time::{Duration, Instant};

use mediaedge::transform::job::MemoryBudget;
use mediaedge::transform::{self, Job, TransformSpec};
use mediaedge::variant::{Fit, OutputFormat};

/// Smaller than the server's default so each run stays fast; the limit
/// logic is the same.
const MAX_PIXELS: u64 = 4_000_000;

fuzz_target!(|data: &[u8]| {
    let media = MediaType::sniff(data);
    if !media.is_transformable() {
        return;
    }
    // A budget as the server has one (smaller, like the pixel limit), and
    // a deadline far enough away that only a hang reaches it.
    let job = Job::new(Instant::now() + Duration::from_secs(20), MemoryBudget::new(256 << 20));
    let Ok(info) = transform::verify(data, media, MAX_PIXELS, &job) else {
        return;
    };
    let (w, h) = (info.width, info.height);
    assert!(w > 0 && h > 0 && (w as u64) * (h as u64) <= MAX_PIXELS);
    assert!(info.color.len() == 7 && !info.thumbhash.is_empty());
    if let Ok(small) = transform::describe(data, media, MAX_PIXELS, &job, false, 0) {
        assert_eq!((small.width, small.height), (w, h));
    }
    // The output format from the input's length: cheap variety, AVIF rarely
    // (its encoder dominates the time otherwise).
    let format = match data.len() % 16 {
        0 => OutputFormat::Avif,
        1..=7 => OutputFormat::Webp,
        _ => OutputFormat::JpegOrPng,
    };
    let spec = TransformSpec {
        width: Some(48),
        height: Some(32),
        fit: if data.len() % 2 == 0 {
            Fit::Cover
        } else {
            Fit::Inside
        },
        format,
        quality: 70,
        max_dimension: 4096,
        max_source_pixels: MAX_PIXELS,
        at_ms: 0,
        // Every other input takes the content-aware crop and stays animated.
        gravity: if data.len() % 3 == 0 {
            mediaedge::variant::Gravity::Auto
        } else {
            mediaedge::variant::Gravity::CENTER
        },
        anim: true,
        max_frames: 64,
    };
    // Half the inputs may borrow a second thread, as on an idle server
    // (animations decode on it while the encoder runs here).
    let job = if data.len() % 4 < 2 {
        job.sharing(std::sync::Arc::new(tokio::sync::Semaphore::new(1)))
    } else {
        job
    };
    if let Ok(out) = transform::process(data, media, &spec, &job) {
        assert!(!out.bytes.is_empty());
        assert!(
            out.width <= 48 && out.height <= 32,
            "{}x{}",
            out.width,
            out.height
        );
    }
});
