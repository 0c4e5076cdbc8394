//! WebP through libwebp: header probe, scaled decode (libwebp shrinks while
//! decoding, like libvips' `webpload shrink`), first frame of an animation,
//! and lossy/alpha encode via the `webp` crate.
//!
//! The decode side uses `libwebp-sys` directly because the `webp` crate
//! exposes neither scaled decoding nor single-frame animation access; it is
//! the same libwebp build the `webp` crate links, so there is one copy.
//!
//! Stills are decoded incrementally, [`STEP`] bytes of input at a time, so
//! the job's deadline is checked while libwebp works (it has no callback of
//! its own for that).

use libwebp_sys as sys;

use super::TransformError;
use super::color::MAX_ICC_BYTES;
use super::exif;
use super::job::Job;
use super::pixels::{Channels, Pixels};

/// Input fed to the incremental decoder between two deadline checks.
const STEP: usize = 32 << 10;

#[derive(Debug, Clone, Default)]
pub struct WebpHeader {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub animated: bool,
    /// VP8L: libwebp holds the whole image as 32-bit ARGB while decoding,
    /// whatever the output scale.
    pub lossless: bool,
    pub icc: Option<Vec<u8>>,
    /// EXIF orientation, 1..=8.
    pub orientation: u8,
}

impl WebpHeader {
    /// Bytes libwebp allocates for itself while decoding (output excluded):
    /// for an animation, its canvas and the previous one; for a lossless
    /// still, the full-size ARGB buffer; for a lossy still, rows.
    pub fn working_bytes(&self) -> u64 {
        let px = self.width as u64 * self.height as u64;
        if self.animated {
            px * 4 * 3
        } else if self.lossless {
            px * 4 + self.width as u64 * 64
        } else {
            self.width as u64 * 64 + (1 << 20)
        }
    }
}

pub fn probe(src: &[u8]) -> Result<WebpHeader, TransformError> {
    let mut f = sys::WebPBitstreamFeatures {
        width: 0,
        height: 0,
        has_alpha: 0,
        has_animation: 0,
        format: 0,
        pad: [0; 5],
    };
    // SAFETY: libwebp reads at most `src.len()` bytes and writes `f`.
    let status = unsafe { sys::WebPGetFeatures(src.as_ptr(), src.len(), &mut f) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK || f.width <= 0 || f.height <= 0 {
        return Err(undecodable(status));
    }
    Ok(WebpHeader {
        width: f.width as u32,
        height: f.height as u32,
        has_alpha: f.has_alpha != 0,
        animated: f.has_animation != 0,
        lossless: f.format == 2,
        icc: riff_chunk(src, b"ICCP")
            .filter(|p| p.len() <= MAX_ICC_BYTES)
            .map(<[u8]>::to_vec),
        orientation: riff_chunk(src, b"EXIF").map_or(1, exif::orientation),
    })
}

/// Decodes a still image at `ceil(size / shrink)`, or the first frame of an
/// animation at full size.
pub fn decode(
    src: &[u8],
    header: &WebpHeader,
    shrink: u32,
    job: &Job,
) -> Result<Pixels, TransformError> {
    if header.animated {
        return first_frame(src, header);
    }
    let shrink = shrink.max(1);
    let (w, h) = (
        header.width.div_ceil(shrink),
        header.height.div_ceil(shrink),
    );
    let channels = if header.has_alpha {
        Channels::Rgba
    } else {
        Channels::Rgb
    };
    let stride = w as usize * channels.count();
    let mut buf = vec![0u8; stride * h as usize];

    // SAFETY: config is initialised by libwebp; the output buffer is ours
    // (external memory), sized stride × height as declared, and outlives the
    // incremental decoder, which is deleted on every path out of the block.
    // `src` outlives it too: WebPIUpdate is given its first `fed` bytes.
    unsafe {
        let mut config: sys::WebPDecoderConfig = std::mem::zeroed();
        if !sys::WebPInitDecoderConfig(&mut config) {
            return Err(TransformError::Internal("libwebp version mismatch".into()));
        }
        if shrink > 1 {
            config.options.use_scaling = 1;
            config.options.scaled_width = w as i32;
            config.options.scaled_height = h as i32;
        }
        config.output.colorspace = if header.has_alpha {
            sys::WEBP_CSP_MODE::MODE_RGBA
        } else {
            sys::WEBP_CSP_MODE::MODE_RGB
        };
        config.output.is_external_memory = 1;
        config.output.u.RGBA = sys::WebPRGBABuffer {
            rgba: buf.as_mut_ptr(),
            stride: stride as i32,
            size: buf.len(),
        };
        let idec = sys::WebPIDecode(std::ptr::null(), 0, &mut config);
        if idec.is_null() {
            return Err(TransformError::Internal(
                "libwebp: no incremental decoder".into(),
            ));
        }
        let mut fed = 0usize;
        let outcome = loop {
            if let Err(e) = job.check() {
                break Err(e);
            }
            fed = src.len().min(fed + STEP);
            match sys::WebPIUpdate(idec, src.as_ptr(), fed) {
                sys::VP8StatusCode::VP8_STATUS_OK => break Ok(()),
                sys::VP8StatusCode::VP8_STATUS_SUSPENDED if fed < src.len() => {}
                status => break Err(undecodable(status)),
            }
        };
        sys::WebPIDelete(idec);
        sys::WebPFreeDecBuffer(&mut config.output);
        outcome?;
    }
    Ok(Pixels::new_u8(w, h, channels, buf))
}

fn first_frame(src: &[u8], header: &WebpHeader) -> Result<Pixels, TransformError> {
    let (w, h) = (header.width, header.height);
    // SAFETY: the decoder borrows `src` only until it is deleted below; the
    // frame buffer it returns is canvas_width × canvas_height × 4 bytes and is
    // copied before the decoder is deleted.
    unsafe {
        let mut opts: sys::WebPAnimDecoderOptions = std::mem::zeroed();
        if sys::WebPAnimDecoderOptionsInit(&mut opts) == 0 {
            return Err(TransformError::Internal("libwebp version mismatch".into()));
        }
        opts.color_mode = sys::WEBP_CSP_MODE::MODE_RGBA;
        opts.use_threads = 0;
        let data = sys::WebPData {
            bytes: src.as_ptr(),
            size: src.len(),
        };
        let dec = sys::WebPAnimDecoderNew(&data, &opts);
        if dec.is_null() {
            return Err(TransformError::Undecodable(
                "WebP: invalid animation".into(),
            ));
        }
        let mut frame: *mut u8 = std::ptr::null_mut();
        let mut timestamp = 0;
        let ok =
            sys::WebPAnimDecoderGetNext(dec, &mut frame, &mut timestamp) != 0 && !frame.is_null();
        let pixels =
            ok.then(|| std::slice::from_raw_parts(frame, w as usize * h as usize * 4).to_vec());
        sys::WebPAnimDecoderDelete(dec);
        let pixels = pixels.ok_or_else(|| {
            TransformError::Undecodable("WebP: first frame does not decode".into())
        })?;
        Ok(Pixels::new_u8(w, h, Channels::Rgba, pixels))
    }
}

/// Lossy WebP at `quality`, libwebp method 4 (sharp's default effort).
pub fn encode(
    data: &[u8],
    channels: Channels,
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, TransformError> {
    let layout = match channels {
        Channels::Rgb => webp::PixelLayout::Rgb,
        Channels::Rgba => webp::PixelLayout::Rgba,
        Channels::Gray => {
            return Err(TransformError::Internal(
                "WebP encoder needs RGB input".into(),
            ));
        }
    };
    let mut config =
        webp::WebPConfig::new().map_err(|()| TransformError::Internal("libwebp config".into()))?;
    config.quality = quality as f32;
    config.method = 4;
    let out = webp::Encoder::new(data, layout, width, height)
        .encode_advanced(&config)
        .map_err(|e| TransformError::Internal(format!("WebP encode: {e:?}")))?;
    Ok(out.to_vec())
}

/// The payload of the first chunk `fourcc` of a RIFF/WEBP file. A dozen lines
/// of bounds-checked parsing instead of libwebp's demux API over FFI.
fn riff_chunk<'a>(src: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    riff_chunks(src)
        .find(|(id, _)| *id == fourcc)
        .map(|(_, body)| body)
}

/// The frames of an animated WebP (its `ANMF` chunks); 1 for a still image.
pub fn frames(src: &[u8]) -> u32 {
    let n = riff_chunks(src).filter(|(id, _)| *id == b"ANMF").count();
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// The top-level chunks of a WebP, in order, up to the first that does not
/// fit in the file.
fn riff_chunks(src: &[u8]) -> impl Iterator<Item = (&[u8; 4], &[u8])> {
    let riff = src.len() >= 12 && &src[0..4] == b"RIFF" && &src[8..12] == b"WEBP";
    let mut pos = if riff { 12usize } else { src.len() };
    std::iter::from_fn(move || {
        let id: &[u8; 4] = src.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        let size = u32::from_le_bytes(src.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        let start = pos + 8;
        let end = start.checked_add(size)?;
        let body = src.get(start..end)?;
        pos = end.checked_add(size & 1)?; // chunks are padded to even sizes
        Some((id, body))
    })
}

fn undecodable(status: sys::VP8StatusCode) -> TransformError {
    TransformError::Undecodable(format!("WebP: decoder status {}", status as i32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    #[test]
    fn probe_and_scaled_decode() {
        let src = corpus("photo_4272x2848.webp");
        let h = probe(&src).unwrap();
        assert_eq!(
            (h.width, h.height, h.has_alpha, h.animated),
            (4272, 2848, false, false)
        );
        let p = decode(&src, &h, 4, &Job::unbounded()).unwrap();
        assert_eq!((p.width, p.height, p.channels), (1068, 712, Channels::Rgb));
    }

    #[test]
    fn encode_round_trip_with_alpha() {
        let rgba: Vec<u8> = (0..16 * 16)
            .flat_map(|i| [i as u8, 0, 255 - i as u8, (i % 256) as u8])
            .collect();
        let out = encode(&rgba, Channels::Rgba, 16, 16, 80).unwrap();
        let h = probe(&out).unwrap();
        assert_eq!((h.width, h.height, h.has_alpha), (16, 16, true));
        let p = decode(&out, &h, 1, &Job::unbounded()).unwrap();
        assert_eq!(p.channels, Channels::Rgba);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(probe(b"RIFF\0\0\0\0WEBPVP8 ").is_err());
        let mut src = corpus("photo_4272x2848.webp");
        src.truncate(src.len() / 2);
        if let Ok(h) = probe(&src) {
            assert!(decode(&src, &h, 8, &Job::unbounded()).is_err());
        }
    }

    #[test]
    fn riff_chunks_are_bounds_checked() {
        assert_eq!(
            riff_chunk(b"RIFF\0\0\0\0WEBPICCP\x02\0\0\0ab", b"ICCP"),
            Some(&b"ab"[..])
        );
        assert_eq!(
            riff_chunk(b"RIFF\0\0\0\0WEBPICCP\xff\xff\xff\xffab", b"ICCP"),
            None
        );
        assert_eq!(
            riff_chunk(b"RIFF\0\0\0\0WEBPVP8X\x01\0\0\0a\0ICCP\x01\0\0\0z", b"ICCP"),
            Some(&b"z"[..])
        );
        assert_eq!(riff_chunk(b"short", b"ICCP"), None);
    }
}
