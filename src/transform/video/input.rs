//! The fence between hostile bytes and libav: the container opened over
//! a borrowed slice through our own read/seek callbacks (no file name, no
//! protocol), only the allowed demuxers, a bounded number of streams,
//! libav's allocations capped, and the job's deadline polled by the
//! demuxer (interrupt callback) and by every read.

use std::ffi::{c_int, c_void};
use std::sync::Once;
use std::time::Instant;

use ffmpeg_next as av;
use ffmpeg_next::ffi;

use crate::transform::TransformError;
use crate::transform::job::Job;

/// libav's read buffer.
pub(super) const IO_BUFFER: usize = 64 << 10;
/// The demuxers allowed (libav's names: `mov` is MP4/MOV, `matroska` WebM).
const DEMUXERS: &str = "mov,matroska";
/// Streams a container may declare (a phone's has four to six).
const MAX_STREAMS: &str = "32";
/// The largest single allocation libav may make (a 100 MP 16-bit plane fits).
const MAX_ALLOC: usize = 512 << 20;
fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // SAFETY: plain setters of libav's global state, before any other use.
        unsafe {
            ffi::av_log_set_level(ffi::AV_LOG_QUIET);
            ffi::av_max_alloc(MAX_ALLOC);
        }
    });
}

pub(super) fn undecodable(what: &str, e: impl std::fmt::Display) -> TransformError {
    TransformError::Undecodable(format!("video {what}: {e}"))
}

/// The bytes libav reads, and the deadline it stops at.
struct Source<'a> {
    data: &'a [u8],
    pos: usize,
    deadline: Option<Instant>,
}

impl Source<'_> {
    fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// libav's read callback over a [`Source`]. Never panics (it is called from C).
unsafe extern "C" fn read_source(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: `opaque` is the boxed `Source` of the `Opened` that owns this
    // AVIOContext, alive for as long as libav may call back.
    let source = unsafe { &mut *(opaque as *mut Source) };
    if source.expired() {
        return ffi::AVERROR_EXIT;
    }
    let rest = source.data.get(source.pos..).unwrap_or(&[]);
    let n = rest.len().min(size.max(0) as usize);
    if n == 0 {
        return ffi::AVERROR_EOF;
    }
    // SAFETY: libav hands a buffer of `size` bytes; `n <= size`.
    unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buf, n) };
    source.pos += n;
    n as c_int
}

/// libav's seek callback over a [`Source`] (`AVSEEK_SIZE` asks for the length).
unsafe extern "C" fn seek_source(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read_source`.
    let source = unsafe { &mut *(opaque as *mut Source) };
    let len = source.data.len() as i64;
    if whence & ffi::AVSEEK_SIZE != 0 {
        return len;
    }
    let base = match whence & !ffi::AVSEEK_FORCE {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => source.pos as i64,
        libc::SEEK_END => len,
        _ => return ffi::AVERROR(libc::EINVAL) as i64,
    };
    match base.checked_add(offset) {
        Some(p) if (0..=len).contains(&p) => {
            source.pos = p as usize;
            p
        }
        _ => ffi::AVERROR(libc::EINVAL) as i64,
    }
}

/// libav's interrupt callback over a [`Source`]: 1 once its deadline has passed.
unsafe extern "C" fn past_deadline(opaque: *mut c_void) -> c_int {
    // SAFETY: as in `read_source` (the same boxed `Source`).
    let source = unsafe { &*(opaque as *const Source) };
    source.expired() as c_int
}

/// An open container over borrowed bytes. Hand-written rather than the
/// binding's `input_from_stream`, which needs an owned `'static` stream and
/// always runs `avformat_find_stream_info` (a decode under libav's own limits).
pub(super) struct Opened<'a> {
    /// Dropped first (`avformat_close_input`; it leaves a custom `pb` alone).
    input: Option<av::format::context::Input>,
    pb: *mut ffi::AVIOContext,
    _source: Box<Source<'a>>,
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        self.input.take();
        if !self.pb.is_null() {
            // SAFETY: `pb` and its buffer were allocated by libav in `open`
            // and nothing uses them once the input is closed.
            unsafe {
                ffi::av_freep(&mut (*self.pb).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut self.pb);
            }
        }
    }
}

impl Opened<'_> {
    pub(super) fn input(&mut self) -> Result<&mut av::format::context::Input, TransformError> {
        self.input
            .as_mut()
            .ok_or_else(|| TransformError::Internal("video input closed".into()))
    }
}

pub(super) fn open<'a>(src: &'a [u8], job: &Job) -> Result<Opened<'a>, TransformError> {
    init();
    let mut opened = Opened {
        input: None,
        pb: std::ptr::null_mut(),
        _source: Box::new(Source {
            data: src,
            pos: 0,
            deadline: job.deadline(),
        }),
    };
    let options = {
        let mut d = av::Dictionary::new();
        d.set("format_whitelist", DEMUXERS);
        // Decoders libav itself may open while demuxing; ours are chosen below.
        d.set("codec_whitelist", "h264,hevc,vp9,libdav1d");
        // No protocol at all: a `dref` or playlist cannot open anything.
        d.set("protocol_whitelist", "none");
        d.set("max_streams", MAX_STREAMS);
        d
    };
    // SAFETY: the AVIOContext reads through the boxed source of `opened`
    // (freed only after the input is closed, in `Drop`); on failure
    // `avformat_open_input` frees the context but not our `pb`, which
    // `Drop` frees.
    unsafe {
        let buffer = ffi::av_malloc(IO_BUFFER) as *mut u8;
        if buffer.is_null() {
            return Err(TransformError::Internal("av_malloc failed".into()));
        }
        let opaque = &mut *opened._source as *mut Source as *mut c_void;
        opened.pb = ffi::avio_alloc_context(
            buffer,
            IO_BUFFER as c_int,
            0,
            opaque,
            Some(read_source),
            None,
            Some(seek_source),
        );
        if opened.pb.is_null() {
            ffi::av_free(buffer as *mut c_void);
            return Err(TransformError::Internal("avio_alloc_context failed".into()));
        }
        let mut ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            return Err(TransformError::Internal(
                "avformat_alloc_context failed".into(),
            ));
        }
        (*ctx).pb = opened.pb;
        (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
        (*ctx).interrupt_callback = ffi::AVIOInterruptCB {
            callback: Some(past_deadline),
            opaque,
        };
        let mut raw = options.disown();
        let r = ffi::avformat_open_input(&mut ctx, std::ptr::null(), std::ptr::null(), &mut raw);
        drop(av::Dictionary::own(raw));
        if r < 0 {
            job.check()?;
            return Err(undecodable("container", av::Error::from(r)));
        }
        opened.input = Some(av::format::context::Input::wrap(ctx));
    }
    Ok(opened)
}
