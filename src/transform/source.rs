//! The source image: probe its header (size, orientation, colour profile)
//! without touching pixel data, then decode it — shrunk on load where the
//! codec can (JPEG, WebP). PNG and GIF go through the `image` crate.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::TransformError;
use super::jpeg::{self, JpegHeader};
use super::orient::exif_orientation;
use super::pixels::{Channels, Pixels, Samples};
use super::plan::Plan;
use super::webp::{self, WebpHeader};
use crate::media_type::MediaType;

/// Shrink factors libjpeg decodes fast (scale 1/8, 1/4, 1/2, 1).
const JPEG_SHRINKS: [u32; 4] = [8, 4, 2, 1];
/// libwebp scales to any size while decoding; integer factors keep the
/// final resize a small, high-quality step.
const WEBP_SHRINKS: [u32; 7] = [16, 8, 6, 4, 3, 2, 1];

#[derive(Debug, Clone)]
pub enum Codec {
    Jpeg(JpegHeader),
    Webp(WebpHeader),
    Png,
    Gif,
}

/// What the header says, before any pixel buffer exists.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub codec: Codec,
    /// Stored size (before orientation).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1..=8.
    pub orientation: u8,
    /// RGB colour profile still to apply after the resize (CMYK profiles
    /// are applied during decode and not repeated here).
    pub icc: Option<Vec<u8>>,
}

impl SourceInfo {
    pub fn pixels(&self) -> u64 {
        self.width as u64 * self.height as u64
    }
}

pub fn probe(src: &[u8], media: MediaType) -> Result<SourceInfo, TransformError> {
    match media {
        MediaType::Jpeg => {
            let h = jpeg::probe(src)?;
            Ok(SourceInfo {
                width: h.width,
                height: h.height,
                orientation: h.exif.as_deref().map_or(1, exif_orientation),
                icc: if h.cmyk { None } else { h.icc.clone() },
                codec: Codec::Jpeg(h),
            })
        }
        MediaType::Webp => {
            let h = webp::probe(src)?;
            Ok(SourceInfo {
                width: h.width,
                height: h.height,
                orientation: h.exif.as_deref().map_or(1, exif_orientation),
                icc: h.icc.clone(),
                codec: Codec::Webp(h),
            })
        }
        MediaType::Png | MediaType::Gif => {
            let (format, codec) = if media == MediaType::Png {
                (ImageFormat::Png, Codec::Png)
            } else {
                (ImageFormat::Gif, Codec::Gif)
            };
            let mut decoder = reader(src, format, Limits::default())
                .into_decoder()
                .map_err(|e| TransformError::Undecodable(e.to_string()))?;
            let (width, height) = decoder.dimensions();
            if width == 0 || height == 0 {
                return Err(TransformError::Undecodable("image has no pixels".into()));
            }
            let icc = decoder.icc_profile().ok().flatten();
            let orientation = decoder
                .exif_metadata()
                .ok()
                .flatten()
                .as_deref()
                .map_or(1, exif_orientation);
            Ok(SourceInfo {
                codec,
                width,
                height,
                orientation,
                icc,
            })
        }
        other => Err(TransformError::Unsupported(format!(
            "cannot transform {}",
            other.mime()
        ))),
    }
}

/// Decodes, shrinking on load as far as `plan` allows. `max_alloc` bounds
/// what the `image` crate may allocate (the pixel limit was checked already).
pub fn decode(
    src: &[u8],
    info: &SourceInfo,
    plan: &Plan,
    max_alloc: u64,
) -> Result<Pixels, TransformError> {
    match &info.codec {
        Codec::Jpeg(h) => jpeg::decode(src, plan.shrink_on_load(&JPEG_SHRINKS), h),
        Codec::Webp(h) => webp::decode(src, h, plan.shrink_on_load(&WEBP_SHRINKS)),
        Codec::Png => decode_with_image(src, ImageFormat::Png, max_alloc),
        Codec::Gif => decode_with_image(src, ImageFormat::Gif, max_alloc),
    }
}

fn reader(src: &[u8], format: ImageFormat, limits: Limits) -> ImageReader<Cursor<&[u8]>> {
    let mut r = ImageReader::with_format(Cursor::new(src), format);
    r.limits(limits);
    r
}

/// PNG (8/16-bit, palette, alpha, interlaced) and GIF (first frame, composed
/// on its canvas) into our pixel layout, keeping 16-bit samples for the resize.
fn decode_with_image(
    src: &[u8],
    format: ImageFormat,
    max_alloc: u64,
) -> Result<Pixels, TransformError> {
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    let decoder = reader(src, format, limits)
        .into_decoder()
        .map_err(|e| TransformError::Undecodable(e.to_string()))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(l) => TransformError::TooManyPixels(l.to_string()),
        e => TransformError::Undecodable(e.to_string()),
    })?;
    let (w, h) = (img.width(), img.height());
    let u16s = |channels, v: Vec<u16>| Pixels {
        width: w,
        height: h,
        channels,
        samples: Samples::U16(v),
    };
    Ok(match img {
        DynamicImage::ImageLuma8(b) => Pixels::new_u8(w, h, Channels::Gray, b.into_raw()),
        DynamicImage::ImageRgb8(b) => Pixels::new_u8(w, h, Channels::Rgb, b.into_raw()),
        DynamicImage::ImageRgba8(b) => Pixels::new_u8(w, h, Channels::Rgba, b.into_raw()),
        DynamicImage::ImageLumaA8(_) => {
            Pixels::new_u8(w, h, Channels::Rgba, img.into_rgba8().into_raw())
        }
        DynamicImage::ImageRgb16(b) => u16s(Channels::Rgb, b.into_raw()),
        DynamicImage::ImageRgba16(b) => u16s(Channels::Rgba, b.into_raw()),
        DynamicImage::ImageLuma16(_) => u16s(Channels::Rgb, img.into_rgb16().into_raw()),
        DynamicImage::ImageLumaA16(_) => u16s(Channels::Rgba, img.into_rgba16().into_raw()),
        other => Pixels::new_u8(w, h, Channels::Rgba, other.into_rgba8().into_raw()),
    })
}
