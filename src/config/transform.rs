//! `[transform]`: what a transform may read and make (source limits, the
//! variant limits a request is checked against) and the pool that runs it.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, in_range};
use crate::variant::{SizeSpec, VariantLimits};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTransform {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    pub max_dimension: u32,
    pub default_quality: u8,
    pub allowed_sizes: Vec<String>,
    pub allowed_formats: Vec<String>,
    pub allowed_qualities: Vec<u64>,
    pub workers: usize,
    pub queue: usize,
    pub timeout_secs: f64,
    pub refusal_delay_ms: u64,
    pub memory_mb: u64,
    pub miss_rate_per_ip: u64,
    pub miss_burst_per_ip: u64,
    pub presets_only: bool,
    pub max_frames: u64,
    pub reencode_queue: usize,
}

impl Default for RawTransform {
    fn default() -> Self {
        Self {
            max_source_pixels: 100_000_000,
            max_source_bytes: 64 * 1024 * 1024,
            max_dimension: 4096,
            default_quality: 80,
            allowed_sizes: Vec::new(),
            allowed_formats: Vec::new(),
            allowed_qualities: Vec::new(),
            workers: 0,
            queue: 32,
            timeout_secs: 30.0,
            refusal_delay_ms: 100,
            memory_mb: 512,
            miss_rate_per_ip: 10,
            miss_burst_per_ip: 100,
            presets_only: false,
            max_frames: 500,
            reencode_queue: 64,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TransformConfig {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    /// What a request may ask for (`max_dimension`, `default_quality`,
    /// the allow-lists).
    pub variants: VariantLimits,
    pub workers: usize,
    pub queue: usize,
    pub timeout: Duration,
    /// How long a refused transform's 503 is held back (see `transform::pool`).
    pub refusal_delay: Duration,
    /// Memory all running transforms may hold together (see `transform::job`).
    pub memory_bytes: u64,
    /// Transforms one client address may start a second (0: no limit), and
    /// how many it may start at once before that rate applies.
    pub miss_rate_per_ip: u32,
    pub miss_burst_per_ip: u32,
    /// Frames an animated source may have to be made into an animation.
    pub max_frames: u32,
    /// Derivatives waiting for their high-effort re-encode (0: none are).
    pub reencode_queue: usize,
}

/// For unit tests of modules that take a transform config.
#[cfg(test)]
impl Default for TransformConfig {
    fn default() -> Self {
        validate_transform(&RawTransform::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

pub(super) fn validate_transform(raw: &RawTransform) -> Result<TransformConfig, ConfigError> {
    let max_dimension = in_range(
        "transform.max_dimension",
        raw.max_dimension as u64,
        1,
        16383,
    )? as u32;
    let allowed_sizes = raw
        .allowed_sizes
        .iter()
        .map(|s| {
            SizeSpec::parse(s, max_dimension)
                .map_err(|m| ConfigError::key("transform.allowed_sizes", format!("'{s}': {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_formats = raw
        .allowed_formats
        .iter()
        .map(|f| match f.to_ascii_lowercase().as_str() {
            "webp" => Ok("webp"),
            "avif" => Ok("avif"),
            "jpeg" | "jpg" => Ok("jpeg"),
            "png" => Ok("png"),
            _ => Err(ConfigError::key(
                "transform.allowed_formats",
                format!("'{f}' is not one of webp, avif, jpeg, png"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_qualities = raw
        .allowed_qualities
        .iter()
        .map(|&q| in_range("transform.allowed_qualities", q, 1, 100).map(|q| q as u8))
        .collect::<Result<Vec<_>, _>>()?;
    let default_quality = in_range(
        "transform.default_quality",
        raw.default_quality as u64,
        1,
        100,
    )? as u8;
    if !allowed_qualities.is_empty() && !allowed_qualities.contains(&default_quality) {
        return Err(ConfigError::key(
            "transform.allowed_qualities",
            format!("must include transform.default_quality ({default_quality})"),
        ));
    }
    let workers = if raw.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        in_range("transform.workers", raw.workers as u64, 1, 1024)? as usize
    };
    if !(raw.timeout_secs.is_finite() && raw.timeout_secs > 0.0 && raw.timeout_secs <= 3600.0) {
        return Err(ConfigError::key(
            "transform.timeout_secs",
            format!(
                "must be more than 0 and at most 3600 (got {})",
                raw.timeout_secs
            ),
        ));
    }
    Ok(TransformConfig {
        max_source_pixels: in_range(
            "transform.max_source_pixels",
            raw.max_source_pixels,
            1,
            1 << 40,
        )?,
        max_source_bytes: in_range(
            "transform.max_source_bytes",
            raw.max_source_bytes,
            1,
            1 << 34,
        )?,
        variants: VariantLimits {
            max_dimension,
            default_quality,
            allowed_sizes,
            allowed_formats,
            allowed_qualities,
            // Filled in once the `[[preset]]`s are checked (config/mod.rs).
            presets: std::sync::Arc::new([]),
            presets_only: raw.presets_only,
        },
        workers,
        queue: in_range("transform.queue", raw.queue as u64, 0, 1 << 20)? as usize,
        timeout: Duration::from_secs_f64(raw.timeout_secs),
        refusal_delay: Duration::from_millis(in_range(
            "transform.refusal_delay_ms",
            raw.refusal_delay_ms,
            0,
            10_000,
        )?),
        memory_bytes: in_range("transform.memory_mb", raw.memory_mb, 16, 1 << 20)? << 20,
        miss_rate_per_ip: in_range(
            "transform.miss_rate_per_ip",
            raw.miss_rate_per_ip,
            0,
            100_000,
        )? as u32,
        miss_burst_per_ip: in_range(
            "transform.miss_burst_per_ip",
            raw.miss_burst_per_ip,
            1,
            1_000_000,
        )? as u32,
        max_frames: in_range("transform.max_frames", raw.max_frames, 1, 100_000)? as u32,
        reencode_queue: in_range(
            "transform.reencode_queue",
            raw.reencode_queue as u64,
            0,
            100_000,
        )? as usize,
    })
}
