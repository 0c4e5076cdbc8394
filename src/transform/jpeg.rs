//! JPEG through libjpeg-turbo (as built by `mozjpeg-sys`, SIMD with nasm):
//! header probe and DCT-scaled decode (1/8, 1/4, 1/2 — shrink-on-load).
//!
//! libjpeg reports fatal errors by calling `error_exit`, which the `mozjpeg`
//! crate turns into an unwind; every call here is wrapped in `catch_unwind`
//! and becomes a `TransformError`. We install our own error manager because
//! libjpeg only *warns* on a truncated file and fills the rest grey; we make
//! that warning fatal so a half-uploaded photo answers 422, not a grey image.

use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{Decompress, Format, Marker};
use mozjpeg_sys as ffi;

use super::TransformError;
use super::color;
use super::pixels::{Channels, Pixels, cmyk_to_rgb};

/// What the header says.
#[derive(Debug, Clone, Default)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub icc: Option<Vec<u8>>,
    /// Raw TIFF structure of the APP1 Exif segment (without `Exif\0\0`).
    pub exif: Option<Vec<u8>>,
    /// Adobe APP14 present: CMYK samples are stored inverted.
    pub adobe: bool,
    /// Stored as CMYK or YCCK (decoded to CMYK, converted to RGB here).
    pub cmyk: bool,
}

const MARKERS: &[Marker] = &[Marker::APP(1), Marker::APP(2), Marker::APP(14)];
const ICC_TAG: &[u8] = b"ICC_PROFILE\0";

pub fn probe(src: &[u8]) -> Result<JpegHeader, TransformError> {
    guarded(|| {
        let d = Decompress::with_err(error_manager())
            .with_markers(MARKERS)
            .from_mem(src)?;
        let (w, h) = d.size();
        let mut header = JpegHeader {
            width: w as u32,
            height: h as u32,
            cmyk: matches!(
                d.color_space(),
                ffi::J_COLOR_SPACE::JCS_CMYK | ffi::J_COLOR_SPACE::JCS_YCCK
            ),
            ..Default::default()
        };
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        for m in d.markers() {
            match m.marker {
                Marker::APP(1) if header.exif.is_none() => {
                    if let Some(tiff) = m.data.strip_prefix(b"Exif\0\0") {
                        header.exif = Some(tiff.to_vec());
                    }
                }
                Marker::APP(2) => {
                    if let Some(rest) = m.data.strip_prefix(ICC_TAG)
                        && rest.len() >= 2
                    {
                        icc_chunks.push((rest[0], &rest[2..]));
                    }
                }
                Marker::APP(14) => header.adobe |= m.data.starts_with(b"Adobe"),
                _ => {}
            }
        }
        // ICC profiles larger than 64 KB span several APP2 markers, numbered from 1.
        if !icc_chunks.is_empty() {
            icc_chunks.sort_by_key(|(seq, _)| *seq);
            header.icc = Some(
                icc_chunks
                    .iter()
                    .flat_map(|(_, d)| d.iter().copied())
                    .collect(),
            );
        }
        Ok(header)
    })
}

/// Decodes at `1/shrink` of full size (`shrink` ∈ {1, 2, 4, 8}). CMYK comes
/// out as sRGB: through its ICC profile when it has one, else naively.
pub fn decode(src: &[u8], shrink: u32, header: &JpegHeader) -> Result<Pixels, TransformError> {
    guarded(|| {
        let mut d = Decompress::with_err(error_manager()).from_mem(src)?;
        d.scale((8 / shrink.clamp(1, 8)) as u8);
        let pixels = match d.image()? {
            Format::RGB(mut s) => {
                let (w, h) = (s.width() as u32, s.height() as u32);
                Pixels::new_u8(w, h, Channels::Rgb, s.read_scanlines::<u8>()?)
            }
            Format::Gray(mut s) => {
                let (w, h) = (s.width() as u32, s.height() as u32);
                Pixels::new_u8(w, h, Channels::Gray, s.read_scanlines::<u8>()?)
            }
            Format::CMYK(mut s) => {
                let (w, h) = (s.width() as u32, s.height() as u32);
                let cmyk = s.read_scanlines::<u8>()?;
                let rgb = header
                    .icc
                    .as_deref()
                    .and_then(|icc| color::cmyk_to_srgb(&cmyk, icc, header.adobe))
                    .unwrap_or_else(|| cmyk_to_rgb(&cmyk, header.adobe));
                Pixels::new_u8(w, h, Channels::Rgb, rgb)
            }
        };
        Ok(pixels)
    })
}

/// Baseline JPEG as libjpeg-turbo writes it (sharp's defaults: 4:2:0,
/// optimised Huffman tables, no trellis), from 8-bit gray or RGB.
pub fn encode(
    data: &[u8],
    channels: Channels,
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, TransformError> {
    let color_space = match channels {
        Channels::Gray => mozjpeg::ColorSpace::JCS_GRAYSCALE,
        Channels::Rgb => mozjpeg::ColorSpace::JCS_RGB,
        Channels::Rgba => {
            return Err(TransformError::Internal(
                "JPEG encoder needs opaque input".into(),
            ));
        }
    };
    guarded(|| {
        let mut c = mozjpeg::Compress::new(color_space);
        c.set_fastest_defaults();
        c.set_quality(quality as f32);
        c.set_optimize_coding(true);
        c.set_size(width as usize, height as usize);
        let mut started = c.start_compress(Vec::with_capacity(data.len() / 8))?;
        started.write_scanlines(data)?;
        started.finish()
    })
    .map_err(|e| TransformError::Internal(e.to_string()))
}

/// Runs libjpeg code, turning its unwinds and I/O errors into `Undecodable`.
fn guarded<T>(f: impl FnOnce() -> std::io::Result<T>) -> Result<T, TransformError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(TransformError::Undecodable(format!("JPEG: {e}"))),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "decoder error".into());
            Err(TransformError::Undecodable(format!("JPEG: {msg}")))
        }
    }
}

fn error_manager() -> ffi::jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of a zeroed jpeg_error_mgr.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(unwind_on_error);
    err.emit_message = Some(unwind_on_truncation);
    err
}

extern "C-unwind" fn unwind_on_error(cinfo: &mut ffi::jpeg_common_struct) {
    let code = cinfo.err_code();
    std::panic::resume_unwind(Box::new(format!(
        "corrupt or unsupported data (libjpeg error {code})"
    )));
}

/// Level −1 is a warning. Premature end of data is the only warning we make
/// fatal; the others (extraneous bytes, …) are common in camera files that
/// every browser shows.
extern "C-unwind" fn unwind_on_truncation(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level == -1 && cinfo.err_code() == ffi::JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(
            "truncated file (premature end of data)".to_string(),
        ));
    }
}

trait ErrCode {
    fn err_code(&self) -> c_int;
}

impl ErrCode for ffi::jpeg_common_struct {
    fn err_code(&self) -> c_int {
        // SAFETY: libjpeg sets `err` before it can call any error hook.
        unsafe { self.err.as_ref().map(|e| e.msg_code).unwrap_or(-1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    #[test]
    fn probes_header_and_exif() {
        let h = probe(&corpus("photo_4032x3024_orient6.jpg")).unwrap();
        assert_eq!((h.width, h.height), (4032, 3024));
        assert!(h.exif.is_some());
    }

    #[test]
    fn scaled_decode_sizes() {
        let src = corpus("photo_4032x3024_orient1.jpg");
        for (shrink, w, h) in [(8, 504, 378), (4, 1008, 756), (2, 2016, 1512)] {
            let p = decode(&src, shrink, &JpegHeader::default()).unwrap();
            assert_eq!((p.width, p.height), (w, h), "1/{shrink}");
        }
    }

    #[test]
    fn truncated_is_an_error_not_grey() {
        let e = decode(
            &corpus("truncated_2560x1600.jpg"),
            8,
            &JpegHeader::default(),
        )
        .unwrap_err();
        assert!(matches!(e, TransformError::Undecodable(_)), "{e:?}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(probe(b"\xFF\xD8\xFF\xE0garbage").is_err());
        assert!(probe(b"").is_err());
        let mut src = corpus("progressive_2560x1600.jpg");
        src.truncate(2000);
        assert!(decode(&src, 8, &JpegHeader::default()).is_err());
    }

    #[test]
    fn cmyk_and_gray() {
        let src = corpus("cmyk_2560x1600.jpg");
        let header = probe(&src).unwrap();
        assert!(header.cmyk && header.adobe);
        let p = decode(&src, 8, &header).unwrap();
        assert_eq!(p.channels, Channels::Rgb);
        let p = decode(&corpus("gray_2560x1600.jpg"), 8, &JpegHeader::default()).unwrap();
        assert_eq!(p.channels, Channels::Gray);
    }
}
