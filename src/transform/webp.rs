//! WebP through libwebp: header probe, scaled decode (libwebp shrinks while
//! decoding, like libvips' `webpload shrink`), an animation's frames one at
//! a time, lossy/alpha encode via the `webp` crate, and animations encoded
//! frame by frame.
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
    let mut frames = AnimFrames::new(src)?;
    let (w, h) = (header.width, header.height);
    let canvas = frames
        .next()?
        .ok_or_else(|| TransformError::Undecodable("WebP: first frame does not decode".into()))?
        .0;
    Ok(Pixels::new_u8(w, h, Channels::Rgba, canvas.to_vec()))
}

/// The frames of an animated WebP, composed on its canvas (blending and
/// disposal applied by libwebp's `WebPAnimDecoder`), one at a time: only
/// the canvas and the previous one are held.
pub struct AnimFrames<'a> {
    dec: std::ptr::NonNull<sys::WebPAnimDecoder>,
    pub info: sys::WebPAnimInfo,
    _src: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> AnimFrames<'a> {
    pub fn new(src: &'a [u8]) -> Result<Self, TransformError> {
        // SAFETY: the decoder borrows `src` (tied to 'a) until it is deleted
        // in Drop; options and info are plain structs libwebp fills.
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
            let dec = std::ptr::NonNull::new(sys::WebPAnimDecoderNew(&data, &opts))
                .ok_or_else(|| TransformError::Undecodable("WebP: invalid animation".into()))?;
            // Owned from here: dropped (deleted) on the error path too.
            let mut frames = Self {
                dec,
                info: sys::WebPAnimInfo::default(),
                _src: std::marker::PhantomData,
            };
            if sys::WebPAnimDecoderGetInfo(dec.as_ptr(), &mut frames.info) == 0 {
                return Err(TransformError::Undecodable(
                    "WebP: invalid animation".into(),
                ));
            }
            Ok(frames)
        }
    }

    /// The next composed frame (canvas width × height RGBA, valid until the
    /// next call) and the time it ends, in milliseconds from the start.
    pub fn next(&mut self) -> Result<Option<(&[u8], i32)>, TransformError> {
        let len = self.info.canvas_width as usize * self.info.canvas_height as usize * 4;
        // SAFETY: libwebp returns a pointer to its canvas of `len` bytes,
        // valid until the next GetNext or Delete; the borrow of `self` holds both off.
        unsafe {
            if sys::WebPAnimDecoderHasMoreFrames(self.dec.as_ptr()) == 0 {
                return Ok(None);
            }
            let mut frame: *mut u8 = std::ptr::null_mut();
            let mut timestamp = 0;
            if sys::WebPAnimDecoderGetNext(self.dec.as_ptr(), &mut frame, &mut timestamp) == 0
                || frame.is_null()
            {
                return Err(TransformError::Undecodable(
                    "WebP: a frame does not decode".into(),
                ));
            }
            Ok(Some((std::slice::from_raw_parts(frame, len), timestamp)))
        }
    }
}

impl Drop for AnimFrames<'_> {
    fn drop(&mut self) {
        // SAFETY: made by WebPAnimDecoderNew, deleted once.
        unsafe { sys::WebPAnimDecoderDelete(self.dec.as_ptr()) }
    }
}

/// An animated WebP written frame by frame through libwebp's
/// `WebPAnimEncoder`, which encodes each frame as it is added and keeps only
/// the previous canvas (the `webp` crate's wrapper holds every frame until
/// the end, which for a long animation is the whole decoded file again).
pub struct AnimEncoder {
    enc: std::ptr::NonNull<sys::WebPAnimEncoder>,
    config: sys::WebPConfig,
    width: u32,
    height: u32,
}

// SAFETY: the encoder is owned (no shared state) and used from one thread at a time.
unsafe impl Send for AnimEncoder {}

impl AnimEncoder {
    /// `loop_count`: plays this many times, 0 forever; `quality` and
    /// `method` as for stills.
    pub fn new(
        width: u32,
        height: u32,
        loop_count: u32,
        quality: u8,
        method: i32,
    ) -> Result<Self, TransformError> {
        let internal = |m: &str| TransformError::Internal(format!("libwebp animation: {m}"));
        let mut config = sys::WebPConfig::new().map_err(|()| internal("config"))?;
        config.quality = quality as f32;
        config.method = method;
        // SAFETY: plain structs initialised by libwebp; the encoder is
        // deleted in Drop.
        unsafe {
            let mut opts: sys::WebPAnimEncoderOptions = std::mem::zeroed();
            if sys::WebPAnimEncoderOptionsInitInternal(&mut opts, sys::WEBP_MUX_ABI_VERSION as _)
                == 0
            {
                return Err(internal("version mismatch"));
            }
            opts.anim_params.loop_count = loop_count.min(65535) as i32;
            // No forced key frames (as libvips and sharp do): each frame is
            // tried as a sub-rectangle of the previous one only.
            opts.kmax = i32::MAX;
            opts.kmin = i32::MAX - 1;
            let enc = sys::WebPAnimEncoderNewInternal(
                width as i32,
                height as i32,
                &opts,
                sys::WEBP_MUX_ABI_VERSION as _,
            );
            let enc = std::ptr::NonNull::new(enc).ok_or_else(|| internal("no encoder"))?;
            Ok(Self {
                enc,
                config,
                width,
                height,
            })
        }
    }

    /// Adds a frame of RGBA pixels shown from `timestamp_ms`.
    pub fn add(&mut self, rgba: &[u8], timestamp_ms: i32) -> Result<(), TransformError> {
        if rgba.len() != self.width as usize * self.height as usize * 4 {
            return Err(TransformError::Internal(
                "animation frame of the wrong size".into(),
            ));
        }
        // SAFETY: the picture is initialised by libwebp, imports a copy of
        // `rgba` (checked above to be width × height × 4) and is freed on every path.
        unsafe {
            let mut pic = sys::WebPPicture::new()
                .map_err(|()| TransformError::Internal("libwebp picture".into()))?;
            pic.use_argb = 1;
            pic.width = self.width as i32;
            pic.height = self.height as i32;
            let ok = sys::WebPPictureImportRGBA(&mut pic, rgba.as_ptr(), self.width as i32 * 4)
                != 0
                && sys::WebPAnimEncoderAdd(self.enc.as_ptr(), &mut pic, timestamp_ms, &self.config)
                    != 0;
            sys::WebPPictureFree(&mut pic);
            if !ok {
                return Err(self.error());
            }
        }
        Ok(())
    }

    /// The animation, its last frame ending at `end_ms`.
    pub fn finish(self, end_ms: i32) -> Result<Vec<u8>, TransformError> {
        // SAFETY: a null frame ends the animation; the assembled data is
        // libwebp's, copied and freed here.
        unsafe {
            if sys::WebPAnimEncoderAdd(
                self.enc.as_ptr(),
                std::ptr::null_mut(),
                end_ms,
                std::ptr::null(),
            ) == 0
            {
                return Err(self.error());
            }
            let mut data = sys::WebPData::default();
            if sys::WebPAnimEncoderAssemble(self.enc.as_ptr(), &mut data) == 0
                || data.bytes.is_null()
            {
                return Err(self.error());
            }
            let out = std::slice::from_raw_parts(data.bytes, data.size).to_vec();
            sys::WebPDataClear(&mut data);
            Ok(out)
        }
    }

    fn error(&self) -> TransformError {
        // SAFETY: libwebp returns a NUL-terminated string it owns (or null).
        let msg = unsafe {
            let p = sys::WebPAnimEncoderGetError(self.enc.as_ptr());
            if p.is_null() {
                String::new()
            } else {
                std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        TransformError::Internal(format!("libwebp animation encoder: {msg}"))
    }
}

impl Drop for AnimEncoder {
    fn drop(&mut self) {
        // SAFETY: made by WebPAnimEncoderNew, deleted once.
        unsafe { sys::WebPAnimEncoderDelete(self.enc.as_ptr()) }
    }
}

/// Lossy WebP at `quality` and libwebp `method` (4: sharp's default
/// effort, on a miss; 6: the most, in the background re-encode).
pub fn encode(
    data: &[u8],
    channels: Channels,
    width: u32,
    height: u32,
    quality: u8,
    method: i32,
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
    config.method = method;
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

/// An animation's loop count (its `ANIM` chunk: background colour, then
/// the count, little-endian; 0 plays forever), read without a decoder.
pub fn loop_count(src: &[u8]) -> u32 {
    riff_chunk(src, b"ANIM")
        .and_then(|anim| anim.get(4..6))
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as u32)
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
        let out = encode(&rgba, Channels::Rgba, 16, 16, 80, 4).unwrap();
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
