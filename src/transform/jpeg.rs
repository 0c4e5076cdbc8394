//! JPEG through libjpeg-turbo (as built by `mozjpeg-sys`, SIMD with nasm):
//! header probe and DCT-scaled decode (1/8, 1/4, 1/2 — shrink-on-load).
//!
//! libjpeg reports fatal errors by calling `error_exit`, which we turn into
//! an unwind; every call here is wrapped in `catch_unwind` and becomes a
//! `TransformError`. Our error manager also bounds what a hostile file can
//! cost, because libjpeg itself does not:
//!
//! * **Scans**: a progressive file may repeat scans without end, each one a
//!   pass over every block (168 KB of EOB-only scans cost 1.5 s of CPU). More
//!   than [`MAX_SCANS`] scans is an error; TurboJPEG uses 500, but no encoder
//!   we know writes more than a few dozen, and each scan of a 100 MP image
//!   costs tens of milliseconds.
//! * **Warnings** that mean the data is bogus are fatal: premature end of
//!   data (a truncated upload must answer 422, not a half-grey image) and
//!   bogus progression. Others (extraneous bytes…) are common in camera
//!   files every browser shows, but more than [`MAX_WARNINGS`] of them is an
//!   error too.
//! * **Time**: libjpeg's progress monitor runs once per row of blocks; it
//!   ends the decode when the job's deadline has passed, so a transform over
//!   its timeout stops using the CPU.
//! * **Memory**: `max_memory_to_use` is set to the job's reservation; the
//!   whole-image coefficient buffer a progressive file needs is refused
//!   beyond it (libjpeg would want a temporary file, which we do not give it).
//!
//! The hooks are installed from the first message libjpeg emits (the SOI
//! trace of every header read): the `mozjpeg` crate owns the decompress
//! struct, and the callbacks are the one place we see it. Their per-call
//! state lives in a thread-local, because a decode runs on one thread from
//! start to end and libjpeg's callbacks carry no pointer of ours; a decode
//! whose hooks did not install is refused.

use std::cell::Cell;
use std::os::raw::{c_int, c_long};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use mozjpeg::{Decompress, Format, Marker};
use mozjpeg_sys as ffi;

use super::TransformError;
use super::color::{self, MAX_ICC_BYTES};
use super::exif;
use super::job::Job;
use super::pixels::{Channels, Pixels, cmyk_to_rgb};

/// Scans a progressive JPEG may have.
pub const MAX_SCANS: u32 = 100;
/// Non-fatal warnings a JPEG may raise.
pub const MAX_WARNINGS: u32 = 1000;

/// What the header says.
#[derive(Debug, Clone, Default)]
pub struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub icc: Option<Vec<u8>>,
    /// EXIF orientation, 1..=8.
    pub orientation: u8,
    /// Adobe APP14 present: CMYK samples are stored inverted.
    pub adobe: bool,
    /// Stored as CMYK or YCCK (decoded to CMYK, converted to RGB here).
    pub cmyk: bool,
    /// Progressive (SOF2/6/10/14): libjpeg keeps every coefficient of the
    /// image in memory while it reads the scans.
    pub progressive: bool,
    /// Bytes of that coefficient buffer (0 for sequential files).
    pub coefficient_bytes: u64,
}

impl JpegHeader {
    /// Bytes libjpeg allocates for itself while decoding at `1/shrink`: the
    /// coefficient buffer of a progressive file, plus rows and tables.
    pub fn working_bytes(&self, shrink: u32) -> u64 {
        let rows = self.width as u64 / shrink.max(1) as u64 * 4 * 64;
        self.coefficient_bytes + rows + (2 << 20)
    }

    /// Output channels of a decode (CMYK comes out as 4, then RGB).
    pub fn decoded_channels(&self) -> u64 {
        if self.cmyk { 4 } else { 3 }
    }
}

const MARKERS: &[Marker] = &[Marker::APP(1), Marker::APP(2), Marker::APP(14)];
const ICC_TAG: &[u8] = b"ICC_PROFILE\0";

pub fn probe(src: &[u8]) -> Result<JpegHeader, TransformError> {
    guarded(&Job::unbounded(), 0, || {
        let d = Decompress::with_err(error_manager())
            .with_markers(MARKERS)
            .from_mem(src)?;
        hooks_installed()?;
        let (w, h) = d.size();
        let mut header = JpegHeader {
            width: w as u32,
            height: h as u32,
            orientation: 1,
            cmyk: matches!(
                d.color_space(),
                ffi::J_COLOR_SPACE::JCS_CMYK | ffi::J_COLOR_SPACE::JCS_YCCK
            ),
            progressive: CALL.with(|c| c.progressive.get()),
            ..Default::default()
        };
        if header.progressive {
            header.coefficient_bytes = coefficient_bytes(&d, w as u64, h as u64);
        }
        let mut exif_seen = false;
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        let mut icc_len = 0usize;
        for m in d.markers() {
            match m.marker {
                Marker::APP(1) if !exif_seen => {
                    if let Some(tiff) = m.data.strip_prefix(b"Exif\0\0") {
                        exif_seen = true;
                        header.orientation = exif::orientation(tiff);
                    }
                }
                Marker::APP(2) => {
                    if let Some(rest) = m.data.strip_prefix(ICC_TAG)
                        && rest.len() >= 2
                    {
                        icc_len += rest.len() - 2;
                        icc_chunks.push((rest[0], &rest[2..]));
                    }
                }
                Marker::APP(14) => header.adobe |= m.data.starts_with(b"Adobe"),
                _ => {}
            }
        }
        // ICC profiles larger than 64 KB span several APP2 markers, numbered
        // from 1. One larger than MAX_ICC_BYTES is ignored (sRGB assumed).
        if !icc_chunks.is_empty() && icc_len <= MAX_ICC_BYTES {
            icc_chunks.sort_by_key(|(seq, _)| *seq);
            let mut icc = Vec::with_capacity(icc_len);
            for (_, chunk) in &icc_chunks {
                icc.extend_from_slice(chunk);
            }
            header.icc = Some(icc);
        }
        Ok(header)
    })
}

/// Bytes of the whole-image coefficient buffer: 64 coefficients of 2 bytes
/// for every block of every component, rounded up to whole MCUs.
fn coefficient_bytes<R>(d: &Decompress<R>, w: u64, h: u64) -> u64 {
    let comps = d.components();
    let max_h = comps
        .iter()
        .map(|c| c.h_samp_factor.max(1) as u64)
        .max()
        .unwrap_or(1);
    let max_v = comps
        .iter()
        .map(|c| c.v_samp_factor.max(1) as u64)
        .max()
        .unwrap_or(1);
    let (mcus_x, mcus_y) = (w.div_ceil(8 * max_h), h.div_ceil(8 * max_v));
    comps
        .iter()
        .map(|c| {
            let blocks =
                mcus_x * c.h_samp_factor.max(1) as u64 * mcus_y * c.v_samp_factor.max(1) as u64;
            blocks * 64 * 2
        })
        .sum()
}

/// Decodes at `1/shrink` of full size (`shrink` ∈ {1, 2, 4, 8}). CMYK comes
/// out as sRGB: through its ICC profile when it has one, else naively.
/// libjpeg may use at most `max_memory` bytes of its own, and stops at the
/// job's deadline.
pub fn decode(
    src: &[u8],
    shrink: u32,
    header: &JpegHeader,
    job: &Job,
    max_memory: u64,
) -> Result<Pixels, TransformError> {
    guarded(job, max_memory, || {
        let mut d = Decompress::with_err(error_manager()).from_mem(src)?;
        hooks_installed()?;
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
    best: bool,
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
    guarded(&Job::unbounded(), 0, || {
        // mozjpeg's own defaults are its best effort (trellis quantisation,
        // progressive scans chosen for size); a miss takes libjpeg-turbo's.
        let mut c = mozjpeg::Compress::new(color_space);
        if !best {
            c.set_fastest_defaults();
        }
        c.set_quality(quality as f32);
        c.set_optimize_coding(true);
        c.set_size(width as usize, height as usize);
        let mut started = c.start_compress(Vec::with_capacity(data.len() / 8))?;
        started.write_scanlines(data)?;
        started.finish()
    })
    .map_err(|e| TransformError::Internal(e.to_string()))
}

/// Why a decode was ended from one of our hooks.
#[derive(Debug)]
enum Abort {
    TimedOut,
    Memory,
    Corrupt(&'static str),
}

/// The limits of the libjpeg call running on this thread, and what its
/// hooks have seen.
struct Call {
    deadline: Cell<Option<Instant>>,
    max_memory: Cell<u64>,
    scans: Cell<u32>,
    warnings: Cell<u32>,
    hooked: Cell<bool>,
    progressive: Cell<bool>,
}

thread_local! {
    static CALL: Call = const {
        Call {
            deadline: Cell::new(None),
            max_memory: Cell::new(0),
            scans: Cell::new(0),
            warnings: Cell::new(0),
            hooked: Cell::new(false),
            progressive: Cell::new(false),
        }
    };
}

/// Runs libjpeg code under `job`'s deadline and `max_memory` (0: no limit),
/// turning its unwinds and I/O errors into `TransformError`s.
fn guarded<T>(
    job: &Job,
    max_memory: u64,
    f: impl FnOnce() -> std::io::Result<T>,
) -> Result<T, TransformError> {
    CALL.with(|c| {
        c.deadline.set(job.deadline());
        c.max_memory.set(max_memory);
        c.scans.set(0);
        c.warnings.set(0);
        c.hooked.set(false);
        c.progressive.set(false);
    });
    let result = catch_unwind(AssertUnwindSafe(f));
    CALL.with(|c| c.deadline.set(None));
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(TransformError::Undecodable(format!("JPEG: {e}"))),
        Err(payload) => Err(match payload.downcast::<Abort>() {
            Ok(abort) => match *abort {
                Abort::TimedOut => TransformError::TimedOut,
                Abort::Memory => TransformError::TooManyPixels(
                    "JPEG: decoding needs more memory than the job may use".into(),
                ),
                Abort::Corrupt(why) => TransformError::Undecodable(format!("JPEG: {why}")),
            },
            Err(other) => {
                let msg = other
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| other.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "decoder error".into());
                TransformError::Undecodable(format!("JPEG: {msg}"))
            }
        }),
    }
}

/// A header was read without our hooks seeing it: refuse rather than decode unbounded.
fn hooks_installed() -> std::io::Result<()> {
    if CALL.with(|c| c.hooked.get()) {
        Ok(())
    } else {
        Err(std::io::Error::other("no start-of-image marker seen"))
    }
}

fn error_manager() -> ffi::jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of a zeroed jpeg_error_mgr.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(unwind_on_error);
    err.emit_message = Some(on_message);
    err
}

extern "C-unwind" fn unwind_on_error(cinfo: &mut ffi::jpeg_common_struct) {
    let code = cinfo.err_code();
    if code == ffi::JERR_NO_BACKING_STORE as c_int || code == ffi::JERR_OUT_OF_MEMORY as c_int {
        std::panic::resume_unwind(Box::new(Abort::Memory));
    }
    std::panic::resume_unwind(Box::new(format!(
        "corrupt or unsupported data (libjpeg error {code})"
    )));
}

/// Every trace message and warning passes here (libjpeg calls
/// `emit_message` whatever the trace level; the default one filters).
extern "C-unwind" fn on_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    install_hooks(cinfo);
    let code = cinfo.err_code();
    let abort = CALL.with(|c| {
        if c.deadline.get().is_some_and(|d| Instant::now() >= d) {
            return Some(Abort::TimedOut);
        }
        if level == -1 {
            if code == ffi::JWRN_JPEG_EOF as c_int {
                return Some(Abort::Corrupt("truncated file (premature end of data)"));
            }
            if code == ffi::JWRN_BOGUS_PROGRESSION as c_int {
                return Some(Abort::Corrupt("bogus progression of scans"));
            }
            c.warnings.set(c.warnings.get() + 1);
            if c.warnings.get() > MAX_WARNINGS {
                return Some(Abort::Corrupt("too many corrupt-data warnings"));
            }
        } else if code == ffi::JTRC_SOS as c_int {
            c.scans.set(c.scans.get() + 1);
            if c.scans.get() > MAX_SCANS {
                return Some(Abort::Corrupt("more scans than a JPEG may have (100)"));
            }
        } else if code == ffi::JTRC_SOF as c_int {
            // The SOF marker's code: 0xC2, 0xC6, 0xCA and 0xCE are progressive.
            // SAFETY: libjpeg set `err` (we are in its callback).
            let marker = unsafe {
                cinfo
                    .err
                    .as_ref()
                    .map_or(0, |e| e.msg_parm._bindgen_data_[0])
            };
            c.progressive
                .set(matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE));
        }
        None
    });
    if let Some(a) = abort {
        std::panic::resume_unwind(Box::new(a));
    }
}

/// Called by libjpeg once per row of blocks while it reads and decodes.
extern "C-unwind" fn on_progress(_cinfo: &mut ffi::jpeg_common_struct) {
    if CALL.with(|c| c.deadline.get().is_some_and(|d| Instant::now() >= d)) {
        std::panic::resume_unwind(Box::new(Abort::TimedOut));
    }
}

/// Once per decompress struct: our progress monitor (allocated from
/// libjpeg's own permanent pool, freed with the struct) and the memory cap.
fn install_hooks(cinfo: &mut ffi::jpeg_common_struct) {
    if cinfo.is_decompressor == 0 || !cinfo.progress.is_null() || cinfo.mem.is_null() {
        return;
    }
    // SAFETY: `mem` is libjpeg's memory manager for this struct, valid from
    // jpeg_create_decompress on; alloc_small either returns a block of the
    // requested size or exits through error_exit.
    unsafe {
        let mem = &mut *cinfo.mem;
        let Some(alloc) = mem.alloc_small else { return };
        let block = alloc(
            cinfo,
            ffi::JPOOL_PERMANENT,
            std::mem::size_of::<ffi::jpeg_progress_mgr>(),
        ) as *mut ffi::jpeg_progress_mgr;
        if block.is_null() {
            return;
        }
        block.write(ffi::jpeg_progress_mgr {
            progress_monitor: Some(on_progress),
            pass_counter: 0,
            pass_limit: 0,
            completed_passes: 0,
            total_passes: 0,
        });
        cinfo.progress = block;
        let max = CALL.with(|c| c.max_memory.get());
        (*cinfo.mem).max_memory_to_use = max.min(c_long::MAX as u64) as c_long;
    }
    CALL.with(|c| c.hooked.set(true));
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
        assert_eq!(h.orientation, 6);
        assert!(!h.progressive);
    }

    #[test]
    fn scaled_decode_sizes() {
        let src = corpus("photo_4032x3024_orient1.jpg");
        for (shrink, w, h) in [(8, 504, 378), (4, 1008, 756), (2, 2016, 1512)] {
            let p = decode(&src, shrink, &JpegHeader::default(), &Job::unbounded(), 0).unwrap();
            assert_eq!((p.width, p.height), (w, h), "1/{shrink}");
        }
    }

    #[test]
    fn truncated_is_an_error_not_grey() {
        let e = decode(
            &corpus("truncated_2560x1600.jpg"),
            8,
            &JpegHeader::default(),
            &Job::unbounded(),
            0,
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
        assert!(decode(&src, 8, &JpegHeader::default(), &Job::unbounded(), 0).is_err());
    }

    #[test]
    fn cmyk_and_gray() {
        let src = corpus("cmyk_2560x1600.jpg");
        let header = probe(&src).unwrap();
        assert!(header.cmyk && header.adobe);
        let p = decode(&src, 8, &header, &Job::unbounded(), 0).unwrap();
        assert_eq!(p.channels, Channels::Rgb);
        let p = decode(
            &corpus("gray_2560x1600.jpg"),
            8,
            &JpegHeader::default(),
            &Job::unbounded(),
            0,
        )
        .unwrap();
        assert_eq!(p.channels, Channels::Gray);
    }
}
