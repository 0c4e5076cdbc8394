//! The source image: probe its header (size, orientation, colour profile)
//! without touching pixel data, say how much memory decoding it will take,
//! then decode it — shrunk on load where the codec can (JPEG, WebP, PNG).
//! GIF goes through the `image` crate, HEIC/HEIF and AVIF through libheif,
//! video (a poster frame) through libav.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::TransformError;
use super::heif::{self, HeifHeader};
use super::job::Job;
use super::jpeg::{self, JpegHeader};
use super::pixels::{Channels, Pixels};
use super::plan::Plan;
use super::png::{self, PngHeader};
use super::video::{self, VideoHeader};
use super::webp::{self, WebpHeader};
use crate::media_type::MediaType;
use crate::variant::OutputFormat;

/// Shrink factors libjpeg decodes fast (scale 1/8, 1/4, 1/2, 1).
const JPEG_SHRINKS: [u32; 4] = [8, 4, 2, 1];
/// libwebp scales to any size while decoding, and PNG rows are box-averaged
/// by any factor; integer factors keep the final resize a small,
/// high-quality step.
const ANY_SHRINKS: [u32; 7] = [16, 8, 6, 4, 3, 2, 1];
/// What the `image` crate may allocate to read a GIF's header.
const PROBE_ALLOC: u64 = 16 << 20;

#[derive(Debug, Clone)]
pub enum Codec {
    Jpeg(JpegHeader),
    Webp(WebpHeader),
    Png(PngHeader),
    Gif,
    /// HEIC/HEIF or AVIF; opened again at decode under the same pixel limit.
    Heif {
        header: HeifHeader,
        max_pixels: u64,
    },
    /// MP4/MOV/WebM: one frame, opened again at decode under the same pixel limit.
    Video {
        header: VideoHeader,
        max_pixels: u64,
    },
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

    /// The factor the decoder will shrink by for `plan`. HEIF shrinks only
    /// by decoding its embedded thumbnail, which `thumbnails: false` (an
    /// upload's check, which must decode the image itself) rules out.
    pub fn shrink(&self, plan: &Plan, thumbnails: bool) -> u32 {
        match &self.codec {
            Codec::Jpeg(_) => plan.shrink_on_load(&JPEG_SHRINKS),
            Codec::Webp(h) if h.animated => 1,
            Codec::Webp(_) | Codec::Png(_) | Codec::Video { .. } => {
                plan.shrink_on_load(&ANY_SHRINKS)
            }
            Codec::Heif { header, .. } if thumbnails => {
                plan.shrink_on_load(&[header.thumbnail_shrink(), 1])
            }
            Codec::Gif | Codec::Heif { .. } => 1,
        }
    }

    /// Peak bytes a transform of this source to `plan` (decoded at
    /// `1/shrink`, encoded as `format`) holds, from the header alone: the
    /// decoded image, what the codec keeps for itself, the premultiplied
    /// copy and intermediate rows of the resize, the copies after it
    /// (orientation, colour, channels) and the encoder's working memory.
    /// An upper bound rather than an exact count: it is what the job
    /// reserves from the memory budget.
    pub fn memory_needed(&self, plan: &Plan, shrink: u32, format: OutputFormat) -> u64 {
        // HEIF: as if decoded whole, since a broken thumbnail falls back to
        // the image itself.
        let s = match self.codec {
            Codec::Heif { .. } => 1,
            _ => shrink.max(1) as u64,
        };
        let (dw, dh) = (
            (self.width as u64).div_ceil(s),
            (self.height as u64).div_ceil(s),
        );
        let (channels, depth, codec) = match &self.codec {
            Codec::Jpeg(h) => (
                h.decoded_channels(),
                1,
                h.working_bytes(shrink) + if h.cmyk { dw * dh * 3 } else { 0 },
            ),
            Codec::Webp(h) => (
                if h.has_alpha || h.animated { 4 } else { 3 },
                1,
                h.working_bytes(),
            ),
            Codec::Png(h) => (
                h.channels.count() as u64,
                if h.sixteen { 2 } else { 1 },
                h.working_bytes(),
            ),
            Codec::Gif => (4, 1, self.pixels() * 4 * 2),
            Codec::Heif { header, .. } => (
                if header.has_alpha { 4 } else { 3 },
                if header.deep { 2 } else { 1 },
                header.working_bytes(),
            ),
            // The decoder's frames, and libswscale's padded RGB frame
            // before it is copied out.
            Codec::Video { header, .. } => (3, 1, header.working_bytes() + dw * dh * 4),
        };
        let decoded = dw * dh * channels * depth;
        // fast_image_resize premultiplies alpha into a copy of the source,
        // and keeps one pass's result (output width × source height).
        let premultiplied = if channels == 4 { decoded } else { 0 };
        let (ow, oh) = (plan.resize_to.0 as u64, plan.resize_to.1 as u64);
        let rows = ow * dh * channels * depth;
        // The resized image at the source's depth, then at most two 8-bit
        // copies alive at once (orientation, colour, channel changes).
        let output = ow * oh * channels * (depth + 2);
        // Encoders' own buffers, per output pixel: rav1e's frames and
        // tiles, libwebp's YUV planes and analysis, PNG's filtered rows and
        // deflate output, libjpeg's output.
        let per_pixel = match format {
            OutputFormat::Avif => 12,
            OutputFormat::Webp => 4,
            OutputFormat::Png | OutputFormat::JpegOrPng => 2,
            OutputFormat::Jpeg => 1,
        };
        decoded + codec + premultiplied + rows + output + ow * oh * per_pixel
    }
}

/// The header of `src`; a HEIF container is parsed under `max_pixels`
/// (libheif's own limits refuse a bigger image or grid while parsing), a
/// video's under the job's deadline.
pub fn probe(
    src: &[u8],
    media: MediaType,
    max_pixels: u64,
    job: &Job,
) -> Result<SourceInfo, TransformError> {
    match media {
        MediaType::Mp4 | MediaType::QuickTime | MediaType::Webm => {
            let header = video::probe(src, max_pixels, job)?;
            Ok(SourceInfo {
                width: header.width,
                height: header.height,
                orientation: header.orientation,
                icc: None,
                codec: Codec::Video { header, max_pixels },
            })
        }
        MediaType::Heic | MediaType::Heif | MediaType::Avif => {
            let header = heif::probe(src, media, max_pixels)?;
            Ok(SourceInfo {
                width: header.width,
                height: header.height,
                // libheif applies `irot`/`imir`; the EXIF tag is not applied again.
                orientation: 1,
                icc: header.icc.clone(),
                codec: Codec::Heif { header, max_pixels },
            })
        }
        MediaType::Jpeg => {
            let h = jpeg::probe(src)?;
            Ok(SourceInfo {
                width: h.width,
                height: h.height,
                orientation: h.orientation,
                icc: if h.cmyk { None } else { h.icc.clone() },
                codec: Codec::Jpeg(h),
            })
        }
        MediaType::Webp => {
            let h = webp::probe(src)?;
            Ok(SourceInfo {
                width: h.width,
                height: h.height,
                orientation: h.orientation,
                icc: h.icc.clone(),
                codec: Codec::Webp(h),
            })
        }
        MediaType::Png => {
            let h = png::probe(src)?;
            Ok(SourceInfo {
                width: h.width,
                height: h.height,
                orientation: h.orientation,
                icc: h.icc.clone(),
                codec: Codec::Png(h),
            })
        }
        MediaType::Gif => {
            let decoder = gif_reader(src, PROBE_ALLOC)
                .into_decoder()
                .map_err(|e| TransformError::Undecodable(e.to_string()))?;
            let (width, height) = decoder.dimensions();
            if width == 0 || height == 0 {
                return Err(TransformError::Undecodable("image has no pixels".into()));
            }
            Ok(SourceInfo {
                codec: Codec::Gif,
                width,
                height,
                orientation: 1,
                icc: None,
            })
        }
        other => Err(TransformError::Unsupported(format!(
            "cannot transform {}",
            other.mime()
        ))),
    }
}

/// Decodes at `1/shrink`, within `memory` bytes (what the job reserved) and
/// the job's deadline; a video's frame at `at_ms`.
pub fn decode(
    src: &[u8],
    info: &SourceInfo,
    shrink: u32,
    job: &Job,
    memory: u64,
    at_ms: u64,
) -> Result<Pixels, TransformError> {
    match &info.codec {
        Codec::Jpeg(h) => jpeg::decode(src, shrink, h, job, h.working_bytes(shrink)),
        Codec::Webp(h) => webp::decode(src, h, shrink, job),
        Codec::Png(h) => png::decode(src, h, shrink, job),
        Codec::Gif => decode_gif(src, memory),
        Codec::Heif { header, max_pixels } => heif::decode(src, header, *max_pixels, shrink),
        Codec::Video { header, max_pixels } => {
            let s = shrink.max(1);
            let size = (info.width.div_ceil(s), info.height.div_ceil(s));
            video::decode(src, header, at_ms, *max_pixels, size, job)
        }
    }
}

fn gif_reader(src: &[u8], max_alloc: u64) -> ImageReader<Cursor<&[u8]>> {
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_alloc);
    let mut r = ImageReader::with_format(Cursor::new(src), ImageFormat::Gif);
    r.limits(limits);
    r
}

/// The first frame, composed on its canvas.
fn decode_gif(src: &[u8], max_alloc: u64) -> Result<Pixels, TransformError> {
    let decoder = gif_reader(src, max_alloc)
        .into_decoder()
        .map_err(|e| TransformError::Undecodable(e.to_string()))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        image::ImageError::Limits(l) => TransformError::TooManyPixels(l.to_string()),
        e => TransformError::Undecodable(e.to_string()),
    })?;
    let (w, h) = (img.width(), img.height());
    Ok(Pixels::new_u8(
        w,
        h,
        Channels::Rgba,
        img.into_rgba8().into_raw(),
    ))
}
