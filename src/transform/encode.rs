//! Output encoding: pick the concrete format (resolving `fmt=auto` for
//! clients without WebP to PNG when alpha must survive, else JPEG), adapt the
//! channels to what the encoder takes, encode. Encoders never copy metadata:
//! EXIF, GPS and profiles are gone from every derivative by construction.

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};

use super::pixels::{Channels, Pixels, drop_alpha, flatten_on_white, gray_to_rgb};
use super::{TransformError, jpeg, webp};
use crate::media_type::MediaType;
use crate::variant::OutputFormat;

/// rav1e speed (1 slowest … 10 fastest). Measured on the corpus photo at
/// 500x700 q60 (docs/BENCHMARKS.md): speed 8 took 560 ms, 9 takes 280 ms
/// with SSIM 0.948 (sharp's libaom default: 0.947 in 1.1 s), 10 takes 110 ms
/// but falls below sharp's quality (0.945).
const AVIF_SPEED: u8 = 9;
/// rav1e speed of the background re-encode (`transform::polish`).
const AVIF_BEST_SPEED: u8 = 6;

/// How hard an encoder works: `Fast` on a miss (someone is waiting),
/// `Best` in the background re-encode — libwebp method 6, mozjpeg's trellis
/// quantisation and optimised progressive scans, a slower AVIF speed, PNG's
/// best compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Fast,
    Best,
}

/// The concrete format `format` means for this image.
pub fn concrete(format: OutputFormat, uses_alpha: bool) -> MediaType {
    match format {
        OutputFormat::Webp => MediaType::Webp,
        OutputFormat::Avif => MediaType::Avif,
        OutputFormat::Jpeg => MediaType::Jpeg,
        OutputFormat::Png => MediaType::Png,
        OutputFormat::JpegOrPng if uses_alpha => MediaType::Png,
        OutputFormat::JpegOrPng => MediaType::Jpeg,
    }
}

/// Encodes 8-bit pixels as `media` (one of JPEG, PNG, WebP, AVIF). The
/// bytes own no spare capacity: the caches weigh an entry by its length,
/// and an encoder's output buffer (grown by doubling, or sized from the
/// pixels for JPEG) can be several times longer, which the soak run showed
/// as memory growing past the configured cache size.
pub fn encode(pixels: Pixels, media: MediaType, quality: u8) -> Result<Vec<u8>, TransformError> {
    encode_with(pixels, media, quality, Effort::Fast)
}

/// [`encode`] at a chosen effort.
pub fn encode_with(
    pixels: Pixels,
    media: MediaType,
    quality: u8,
    effort: Effort,
) -> Result<Vec<u8>, TransformError> {
    let mut bytes = encode_with_spare(pixels, media, quality, effort)?;
    bytes.shrink_to_fit();
    Ok(bytes)
}

fn encode_with_spare(
    pixels: Pixels,
    media: MediaType,
    quality: u8,
    effort: Effort,
) -> Result<Vec<u8>, TransformError> {
    let best = effort == Effort::Best;
    let alpha = pixels.uses_alpha();
    let (w, h, channels, data) = pixels.into_u8();
    // Opaque RGBA is sent as RGB: smaller files, and JPEG needs it.
    let (channels, data) = match (channels, alpha) {
        (Channels::Rgba, false) => (Channels::Rgb, drop_alpha(&data)),
        _ => (channels, data),
    };
    match media {
        MediaType::Jpeg => match channels {
            Channels::Rgba => {
                jpeg::encode(&flatten_on_white(&data), Channels::Rgb, w, h, quality, best)
            }
            _ => jpeg::encode(&data, channels, w, h, quality, best),
        },
        MediaType::Webp => {
            let method = if best { 6 } else { 4 };
            match channels {
                Channels::Gray => {
                    webp::encode(&gray_to_rgb(&data), Channels::Rgb, w, h, quality, method)
                }
                _ => webp::encode(&data, channels, w, h, quality, method),
            }
        }
        MediaType::Png => encode_png(&data, channels, w, h, best),
        MediaType::Avif => {
            let speed = if best { AVIF_BEST_SPEED } else { AVIF_SPEED };
            match channels {
                Channels::Gray => {
                    encode_avif(&gray_to_rgb(&data), Channels::Rgb, w, h, quality, speed)
                }
                _ => encode_avif(&data, channels, w, h, quality, speed),
            }
        }
        other => Err(TransformError::Internal(format!(
            "no encoder for {}",
            other.mime()
        ))),
    }
}

fn encode_png(
    data: &[u8],
    channels: Channels,
    w: u32,
    h: u32,
    best: bool,
) -> Result<Vec<u8>, TransformError> {
    let color = match channels {
        Channels::Gray => image::ExtendedColorType::L8,
        Channels::Rgb => image::ExtendedColorType::Rgb8,
        Channels::Rgba => image::ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    let level = if best {
        CompressionType::Best
    } else {
        CompressionType::Default
    };
    PngEncoder::new_with_quality(&mut out, level, FilterType::Adaptive)
        .write_image(data, w, h, color)
        .map_err(|e| TransformError::Internal(format!("PNG encode: {e}")))?;
    Ok(out)
}

fn encode_avif(
    data: &[u8],
    channels: Channels,
    w: u32,
    h: u32,
    quality: u8,
    speed: u8,
) -> Result<Vec<u8>, TransformError> {
    use rgb::FromSlice;
    let encoder = ravif::Encoder::new()
        .with_quality(quality as f32)
        .with_alpha_quality(quality as f32)
        .with_speed(speed)
        .with_num_threads(Some(1));
    let (w, h) = (w as usize, h as usize);
    let result = match channels {
        Channels::Rgba => encoder.encode_rgba(ravif::Img::new(data.as_rgba(), w, h)),
        _ => encoder.encode_rgb(ravif::Img::new(data.as_rgb(), w, h)),
    };
    result
        .map(|e| e.avif_file)
        .map_err(|e| TransformError::Internal(format!("AVIF encode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_bytes_carry_no_spare_capacity() {
        for media in [MediaType::Jpeg, MediaType::Png, MediaType::Webp] {
            let data: Vec<u8> = (0..300 * 200 * 3).map(|i| (i % 251) as u8).collect();
            let pixels = Pixels::new_u8(300, 200, Channels::Rgb, data);
            let bytes = encode(pixels, media, 80).unwrap();
            assert!(!bytes.is_empty());
            assert_eq!(bytes.capacity(), bytes.len(), "{media:?}");
        }
    }
}
