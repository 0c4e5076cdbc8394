//! HEIC/HEIF and AVIF, as phones write them, through libheif: tiled grids,
//! `irot`/`imir` (applied by libheif, so the size it reports is the upright
//! one and the EXIF orientation, which Apple writes as well, is not applied
//! again), 8- and 10-bit, alpha, an ICC profile or an `nclx` colour box.
//!
//! Why libheif: it is what libvips, ImageMagick and GIMP read HEIF with, it
//! handles every HEIF variant phones produce, and since 1.19 it enforces
//! security limits (pixels, tiles, items, profile and memory block sizes)
//! while parsing — before any pixel buffer exists. `libheif-rs` builds it
//! from the sources `libheif-sys` embeds (Debian 12's 1.15 predates the
//! limits and the binding's minimum), linked against Debian's libde265
//! (HEVC) and libdav1d (AV1). libheif is LGPL-3.0, linked as a library.
//!
//! HEVC is patent-encumbered: HEVC-coded files are decoded only with the
//! default cargo feature `hevc`; without it they answer 415 (AVIF still
//! decodes).

use libheif_rs::{
    ColorPrimaries, ColorProfile as _, ColorSpace, DecodingOptions, HeifContext, ImageHandle,
    ItemId, LibHeif, RgbChroma, SecurityLimits, color_profile_types,
};

use super::TransformError;
use super::color::MAX_ICC_BYTES;
use super::pixels::{Channels, Pixels, Samples};
use crate::media_type::MediaType;

/// Tiles a grid image may have: an iPhone's 12 MP photo is 48 tiles of
/// 512x512, a 48 MP one 192; more is a file built to make us parse.
const MAX_TILES: u64 = 1024;
/// Items in a file (images, tiles, thumbnails, metadata).
const MAX_ITEMS: u32 = 4096;

#[derive(Debug, Clone)]
pub struct HeifHeader {
    /// Upright size (after `irot`/`imir`).
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    /// More than 8 bits per sample (decoded as 16-bit).
    pub deep: bool,
    /// The colour to convert from: an embedded ICC profile, or one made
    /// from an `nclx` box with primaries other than sRGB's.
    pub icc: Option<Vec<u8>>,
    /// The largest embedded thumbnail of the same shape (phones write a
    /// 320x240 one): a small request decodes it instead of the grid.
    pub thumbnail: Option<Thumbnail>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thumbnail {
    id: ItemId,
    /// Upright, like the primary's.
    pub width: u32,
    pub height: u32,
}

impl HeifHeader {
    /// The shrink factor decoding the thumbnail amounts to (rounded up, so
    /// a plan that accepts it has at least the pixels it asked for); 1
    /// without a thumbnail.
    pub fn thumbnail_shrink(&self) -> u32 {
        self.thumbnail.map_or(1, |t| {
            (self.width.div_ceil(t.width)).max(self.height.div_ceil(t.height))
        })
    }
}

impl HeifHeader {
    /// What libheif and its codec hold while decoding, beyond the output:
    /// the YCbCr planes of the image (4:2:0 at up to 16 bits) and a tile's
    /// reference frames.
    pub fn working_bytes(&self) -> u64 {
        let px = self.width as u64 * self.height as u64;
        px * if self.deep { 3 } else { 2 } + (4 << 20)
    }
}

/// A context on `src` under our limits; nothing is decoded yet.
fn open(src: &[u8], max_pixels: u64) -> Result<HeifContext<'_>, TransformError> {
    let bad = |e: libheif_rs::HeifError| TransformError::Undecodable(e.to_string());
    let mut ctx = HeifContext::new().map_err(bad)?;
    let mut limits = SecurityLimits::new();
    limits.set_max_image_size_pixels(max_pixels);
    limits.set_max_number_of_tiles(MAX_TILES);
    limits.set_max_items(MAX_ITEMS);
    limits.set_max_color_profile_size(MAX_ICC_BYTES as u32);
    ctx.set_security_limits(&limits).map_err(bad)?;
    ctx.read_bytes(src).map_err(|e| {
        let text = e.to_string();
        if text.contains("security limit") || text.contains("exceeds") {
            TransformError::TooManyPixels(text)
        } else {
            TransformError::Undecodable(text)
        }
    })?;
    Ok(ctx)
}

/// The header: size, alpha, depth and colour, within `max_pixels`.
pub fn probe(src: &[u8], media: MediaType, max_pixels: u64) -> Result<HeifHeader, TransformError> {
    refuse_hevc_without_feature(media)?;
    let ctx = open(src, max_pixels)?;
    let handle = ctx
        .primary_image_handle()
        .map_err(|e| TransformError::Undecodable(e.to_string()))?;
    let (width, height) = (handle.width(), handle.height());
    if width == 0 || height == 0 {
        return Err(TransformError::Undecodable("image has no pixels".into()));
    }
    if width as u64 * height as u64 > max_pixels {
        return Err(TransformError::TooManyPixels(format!(
            "{width}x{height} is over transform.max_source_pixels ({max_pixels})"
        )));
    }
    let icc = match handle.color_profile_raw() {
        Some(raw)
            if [color_profile_types::PROF, color_profile_types::R_ICC]
                .contains(&raw.profile_type())
                && raw.data.len() <= MAX_ICC_BYTES =>
        {
            Some(raw.data)
        }
        _ => handle
            .color_profile_nclx()
            .and_then(|nclx| icc_for_primaries(nclx.color_primaries())),
    };
    Ok(HeifHeader {
        width,
        height,
        has_alpha: handle.has_alpha_channel(),
        deep: handle.luma_bits_per_pixel() > 8,
        icc,
        thumbnail: thumbnail(&handle),
    })
}

/// The largest thumbnail whose aspect ratio is the primary image's (within
/// 2 %) and that has the same alpha: one that was cropped or rotated
/// differently would show another picture.
fn thumbnail(primary: &ImageHandle) -> Option<Thumbnail> {
    let mut ids = vec![0; primary.number_of_thumbnails().min(16)];
    let n = primary.thumbnail_ids(&mut ids);
    let aspect = primary.width() as f64 / primary.height() as f64;
    ids[..n.min(ids.len())]
        .iter()
        .filter_map(|&id| {
            let t = primary.thumbnail(id).ok()?;
            let (w, h) = (t.width(), t.height());
            let same = w > 0
                && h > 0
                && w < primary.width()
                && ((w as f64 / h as f64) / aspect - 1.0).abs() < 0.02
                && t.has_alpha_channel() == primary.has_alpha_channel()
                && t.luma_bits_per_pixel() == primary.luma_bits_per_pixel();
            same.then_some(Thumbnail {
                id,
                width: w,
                height: h,
            })
        })
        .max_by_key(|t| t.width)
}

/// An ICC profile for `nclx` primaries that are not sRGB's (phones write
/// Display P3 this way); the transfer curve is taken as sRGB's, which is
/// what P3 photos use. `None` for sRGB/BT.709 and unspecified primaries.
fn icc_for_primaries(primaries: ColorPrimaries) -> Option<Vec<u8>> {
    let profile = match primaries {
        ColorPrimaries::SMPTE_EG_432_1 | ColorPrimaries::SMPTE_RP_431_2 => {
            moxcms::ColorProfile::new_display_p3()
        }
        ColorPrimaries::ITU_R_BT_2020_2_and_2100_0 => moxcms::ColorProfile::new_bt2020(),
        _ => return None,
    };
    profile.encode().ok()
}

/// Without the `hevc` feature, HEVC-coded HEIF is not ours to decode.
fn refuse_hevc_without_feature(media: MediaType) -> Result<(), TransformError> {
    if cfg!(feature = "hevc") || media != MediaType::Heic {
        return Ok(());
    }
    Err(TransformError::Unsupported(
        "HEIC (HEVC) decoding is not built in (cargo feature `hevc`)".into(),
    ))
}

/// The primary image, upright, as 8-bit (or 16-bit for deeper sources)
/// RGB or RGBA — or, when `shrink` is the thumbnail's
/// ([`HeifHeader::thumbnail_shrink`]) or more, its thumbnail, as libvips
/// does for HEIF (the grid is then never decoded). `h` comes from
/// [`probe`], which already refused what this build may not decode.
pub fn decode(
    src: &[u8],
    h: &HeifHeader,
    max_pixels: u64,
    shrink: u32,
) -> Result<Pixels, TransformError> {
    let bad = |e: libheif_rs::HeifError| TransformError::Undecodable(e.to_string());
    let ctx = open(src, max_pixels)?;
    let primary = ctx.primary_image_handle().map_err(bad)?;
    if let Some(t) = h
        .thumbnail
        .filter(|_| shrink > 1 && shrink >= h.thumbnail_shrink())
        && let Ok(pixels) = primary
            .thumbnail(t.id)
            .map_err(bad)
            .and_then(|thumb| decode_handle(&thumb, h))
        && (pixels.width, pixels.height) == (t.width, t.height)
    {
        return Ok(pixels);
    }
    // No thumbnail, or a broken one: the image itself.
    decode_handle(&primary, h)
}

fn decode_handle(handle: &ImageHandle, h: &HeifHeader) -> Result<Pixels, TransformError> {
    let bad = |e: libheif_rs::HeifError| TransformError::Undecodable(e.to_string());
    let chroma = match (h.has_alpha, h.deep) {
        (false, false) => RgbChroma::Rgb,
        (true, false) => RgbChroma::Rgba,
        (false, true) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let mut options = DecodingOptions::new()
        .ok_or_else(|| TransformError::Internal("libheif decoding options".into()))?;
    // One decode at a time per pool worker: the pool owns the parallelism.
    options.set_num_library_threads(1);
    let image = LibHeif::new()
        .decode(handle, ColorSpace::Rgb(chroma), Some(options))
        .map_err(bad)?;
    let plane = image
        .planes()
        .interleaved
        .ok_or_else(|| TransformError::Undecodable("no interleaved plane".into()))?;
    let (w, hgt) = (plane.width, plane.height);
    let channels = if h.has_alpha {
        Channels::Rgba
    } else {
        Channels::Rgb
    };
    let n = channels.count();
    let bytes_per_sample = if h.deep { 2 } else { 1 };
    let row = w as usize * n * bytes_per_sample;
    if plane.stride < row || plane.data.len() < plane.stride * (hgt as usize - 1) + row {
        return Err(TransformError::Undecodable("short image plane".into()));
    }
    let rows = (0..hgt as usize).map(|y| &plane.data[y * plane.stride..y * plane.stride + row]);
    let samples = if h.deep {
        // Scale the source's bits (10 or 12) up to the full 16-bit range.
        let bits = plane.bits_per_pixel.clamp(9, 16) as u32;
        let (up, down) = (16 - bits, 2 * bits - 16);
        let mut out = Vec::with_capacity(w as usize * hgt as usize * n);
        for r in rows {
            out.extend(r.chunks_exact(2).map(|b| {
                let v = u16::from_le_bytes([b[0], b[1]]);
                (v << up) | (v >> down)
            }));
        }
        Samples::U16(out)
    } else {
        let mut out = Vec::with_capacity(w as usize * hgt as usize * n);
        rows.for_each(|r| out.extend_from_slice(r));
        Samples::U8(out)
    };
    Ok(Pixels {
        width: w,
        height: hgt,
        channels,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    #[test]
    fn phone_heic_is_upright_and_decodes() {
        let src = corpus("heic_4032x3024_orient6_gps.heic");
        let h = probe(&src, MediaType::Heic, 40_000_000).unwrap();
        assert_eq!((h.width, h.height), (3024, 4032), "irot applied: portrait");
        let px = decode(&src, &h, 40_000_000, 1).unwrap();
        assert_eq!((px.width, px.height), (3024, 4032));
        // Its 240x320 thumbnail (upright too) stands in for a small request.
        let t = h.thumbnail.expect("a thumbnail");
        assert_eq!((t.width, t.height), (240, 320));
        assert_eq!(h.thumbnail_shrink(), 13);
        let small = decode(&src, &h, 40_000_000, 13).unwrap();
        assert_eq!((small.width, small.height), (240, 320));
        assert_eq!(decode(&src, &h, 40_000_000, 12).unwrap().width, 3024);
    }

    #[test]
    fn hevc_is_decoded_only_with_its_feature() {
        assert_eq!(
            refuse_hevc_without_feature(MediaType::Heic).is_ok(),
            cfg!(feature = "hevc")
        );
        assert!(refuse_hevc_without_feature(MediaType::Avif).is_ok());
        assert!(refuse_hevc_without_feature(MediaType::Heif).is_ok());
    }

    #[test]
    fn avif_decodes_upright() {
        let src = corpus("avif_4032x3024_orient8.avif");
        let h = probe(&src, MediaType::Avif, 40_000_000).unwrap();
        assert_eq!((h.width, h.height), (3024, 4032));
        assert_eq!(h.thumbnail, None);
        assert!(decode(&src, &h, 40_000_000, 8).is_ok());
    }

    #[test]
    fn pixels_over_the_limit_are_refused_before_decoding() {
        let src = corpus("heic_4032x3024_orient6_gps.heic");
        assert!(matches!(
            probe(&src, MediaType::Heic, 1_000_000),
            Err(TransformError::TooManyPixels(_))
        ));
    }

    #[test]
    fn truncated_and_garbage_files_are_undecodable() {
        let src = corpus("heic_4032x3024_orient6_gps.heic");
        for bad in [
            &src[..src.len() / 2],
            &src[..200],
            b"\0\0\0\x18ftypheic\0\0\0\0".as_slice(),
        ] {
            let r = probe(bad, MediaType::Heic, 40_000_000)
                .and_then(|h| decode(bad, &h, 40_000_000, 1));
            assert!(r.is_err(), "{} bytes decoded", bad.len());
        }
    }
}
