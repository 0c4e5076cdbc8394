//! Video inputs: the facts a feed needs (display size, duration, codec,
//! audio) and the frame at a time, through libav — Debian's FFmpeg 5.1
//! libraries in-process via `ffmpeg-next` (why in-process rather than the
//! `ffmpeg` program: README, "Video").
//!
//! Hostile bytes meet libav here, so it is fenced in: input only from the
//! bytes we hand it (our read/seek callbacks over a slice: no file name, no
//! protocol, no network), only the QuickTime/MP4 and Matroska/WebM
//! demuxers, only the H.264, HEVC, VP9 and AV1 (dav1d) decoders, one
//! decoding thread, the pixel limit checked on the container's size before
//! a decoder opens and given to the decoder as `max_pixels` (a stream that
//! grows mid-way meets it too), every single allocation capped
//! (`av_max_alloc`), the job's deadline polled by the demuxer (interrupt
//! callback), by our read callback and between packets, and no
//! `avformat_find_stream_info` (it would decode with limits of its own).
//!
//! `input` is the fence (how libav reads our bytes); this file what is
//! read: the header's facts, the frame at a time, its conversion to RGB.

mod input;

use std::ffi::c_int;

use ffmpeg_next as av;
use ffmpeg_next::ffi;

use super::TransformError;
use super::job::Job;
use super::pixels::{Channels, Pixels};
use input::{IO_BUFFER, open, undecodable};

/// Packets the decoder may refuse before the video counts as undecodable.
const MAX_BAD_PACKETS: u32 = 64;

/// The video codecs we decode, by the names `fmt=json` and
/// `upload.video_codecs` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
    Vp9,
    Av1,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::Av1 => "av1",
        }
    }

    /// libav's decoder for it: AV1 through dav1d (libav's own AV1 decoder
    /// needs a hardware accelerator).
    fn decoder(self) -> &'static str {
        match self {
            VideoCodec::Av1 => "libdav1d",
            other => other.name(),
        }
    }

    /// Frames the decoder may hold at once (reference frames, reordering,
    /// the one being made), as the memory estimate counts them.
    fn frames_held(self) -> u64 {
        match self {
            VideoCodec::H264 => 18,
            VideoCodec::Hevc | VideoCodec::Vp9 | VideoCodec::Av1 => 11,
        }
    }

    /// Bytes per sample the estimate assumes (10-bit phone HEVC and AV1 are common).
    fn sample_bytes(self) -> u64 {
        match self {
            VideoCodec::H264 => 1,
            VideoCodec::Hevc | VideoCodec::Vp9 | VideoCodec::Av1 => 2,
        }
    }
}

/// What the container says, before any frame is decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoHeader {
    /// Stored size (before the display matrix).
    pub width: u32,
    pub height: u32,
    /// The display matrix's rotation as an EXIF orientation (1, 3, 6 or 8).
    pub orientation: u8,
    pub duration_ms: u64,
    /// `None`: a codec we do not decode; `codec_name` says which.
    pub codec: Option<VideoCodec>,
    /// libav's name of the video codec (`h264`, `hevc`, `vp9`, `av1`, …).
    pub codec_name: String,
    pub audio: bool,
}

impl VideoHeader {
    /// The decoder's own memory, from the container's size.
    pub fn working_bytes(&self) -> u64 {
        let codec = self.codec.unwrap_or(VideoCodec::H264);
        let frame = decoder_pixels(self.width, self.height) * 3 / 2 * codec.sample_bytes();
        frame * codec.frames_held() + IO_BUFFER as u64
    }
}

/// The frame size the decoder may allocate for a `w`×`h` container size:
/// coded sizes are padded to whole macroblocks / superblocks and strides aligned.
fn decoder_pixels(w: u32, h: u32) -> u64 {
    (w as u64 + 128) * (h as u64 + 64)
}

/// The container's facts about `src`, refused over `max_pixels` before any
/// decoder exists.
pub fn probe(src: &[u8], max_pixels: u64, job: &Job) -> Result<VideoHeader, TransformError> {
    let mut opened = open(src, job)?;
    let (header, _) = header_of(opened.input()?, max_pixels)?;
    Ok(header)
}

/// The header and the index of the video stream.
fn header_of(
    input: &av::format::context::Input,
    max_pixels: u64,
) -> Result<(VideoHeader, usize), TransformError> {
    let stream = input
        .streams()
        .best(av::media::Type::Video)
        .ok_or_else(|| TransformError::Undecodable("no video stream".into()))?;
    let par = stream.parameters();
    // SAFETY: a stream's codec parameters are valid while the input is open.
    let (w, h) = unsafe { ((*par.as_ptr()).width, (*par.as_ptr()).height) };
    let (width, height) = match (u32::try_from(w), u32::try_from(h)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => return Err(TransformError::Undecodable("video has no size".into())),
    };
    if width as u64 * height as u64 > max_pixels {
        return Err(TransformError::TooManyPixels(format!(
            "{width}x{height} is over transform.max_source_pixels ({max_pixels})"
        )));
    }
    let id = par.id();
    let codec = match id {
        av::codec::Id::H264 => Some(VideoCodec::H264),
        // Patent-encumbered: decoded only with the default `hevc` feature,
        // as HEIC is (README).
        av::codec::Id::HEVC if cfg!(feature = "hevc") => Some(VideoCodec::Hevc),
        av::codec::Id::VP9 => Some(VideoCodec::Vp9),
        av::codec::Id::AV1 => Some(VideoCodec::Av1),
        _ => None,
    };
    // libav's names are ours for the four (`h264`, `hevc`, `vp9`, `av1`).
    let codec_name = codec.map_or_else(|| id.name().to_owned(), |c| c.name().to_owned());
    let duration_ms = duration_ms(input, &stream);
    let audio = input
        .streams()
        .any(|s| s.parameters().medium() == av::media::Type::Audio);
    let header = VideoHeader {
        width,
        height,
        orientation: orientation(&stream),
        duration_ms,
        codec,
        codec_name,
        audio,
    };
    Ok((header, stream.index()))
}

/// The longest of what the container says (its duration, else the video
/// stream's) and where the video's sample index ends: the header's
/// durations are plain numbers a crafted file can set to anything, the
/// index (MP4's sample tables, WebM's cues) is what a player follows, so
/// `upload.max_video_secs` cannot be passed by lying in the header. 0 when
/// nothing says.
fn duration_ms(input: &av::format::context::Input, stream: &av::format::stream::Stream) -> u64 {
    let tb = stream.time_base();
    let to_ms = |ts: i64| -> u64 {
        if ts <= 0 || tb.denominator() <= 0 || tb.numerator() <= 0 {
            return 0;
        }
        // SAFETY: pure arithmetic.
        let ms = unsafe { ffi::av_rescale_q(ts, tb.into(), ffi::AVRational { num: 1, den: 1000 }) };
        ms.max(0) as u64
    };
    let whole = input.duration();
    let header = if whole > 0 {
        (whole / (ffi::AV_TIME_BASE as i64 / 1000)) as u64
    } else {
        to_ms(stream.duration())
    };
    let start = match stream.start_time() {
        ffi::AV_NOPTS_VALUE => 0,
        t => t,
    };
    // SAFETY: the stream is valid while the input is open; the entry
    // pointer is read at once, before any other libav call.
    let indexed = unsafe {
        let st = stream.as_ptr() as *mut ffi::AVStream;
        let n = ffi::avformat_index_get_entries_count(st);
        let last = if n > 0 {
            ffi::avformat_index_get_entry(st, n - 1)
        } else {
            std::ptr::null()
        };
        if last.is_null() {
            0
        } else {
            to_ms((*last).timestamp.saturating_sub(start))
        }
    };
    header.max(indexed)
}

/// The display matrix's rotation as an EXIF orientation, as the `ffmpeg`
/// program applies it (quarter turns; a mirrored matrix is not applied).
fn orientation(stream: &av::format::stream::Stream) -> u8 {
    let mut size = 0usize;
    // SAFETY: the stream is valid while the input is open; the side data,
    // when present, is `size` bytes, and a display matrix is nine i32s.
    let theta = unsafe {
        let data = ffi::av_stream_get_side_data(
            stream.as_ptr(),
            ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
            &mut size,
        );
        if data.is_null() || size < 9 * 4 {
            return 1;
        }
        -ffi::av_display_rotation_get(data as *const i32)
    };
    if !theta.is_finite() {
        return 1;
    }
    let quarter = ((theta / 90.0).round() as i64).rem_euclid(4);
    match quarter {
        1 => 6,
        2 => 3,
        3 => 8,
        _ => 1,
    }
}

/// The frame shown at `at_ms` (the last one when the video is shorter),
/// converted to 8-bit RGB at `size` (the stored orientation; the caller
/// turns it upright).
pub fn decode(
    src: &[u8],
    header: &VideoHeader,
    at_ms: u64,
    max_pixels: u64,
    size: (u32, u32),
    job: &Job,
) -> Result<Pixels, TransformError> {
    let codec = header.codec.ok_or_else(|| {
        TransformError::Undecodable(format!(
            "video codec {} is not decoded here",
            header.codec_name
        ))
    })?;
    let mut opened = open(src, job)?;
    let input = opened.input()?;
    let (found, index) = header_of(input, max_pixels)?;
    if found != *header {
        return Err(TransformError::Undecodable(
            "video changed while read".into(),
        ));
    }
    let stream = input
        .stream(index)
        .ok_or_else(|| TransformError::Internal("video stream vanished".into()))?;
    let time_base = stream.time_base();
    let start = stream.start_time();
    let mut decoder = open_decoder(codec, &stream, header, max_pixels)?;

    // SAFETY: pure arithmetic.
    let offset = unsafe {
        ffi::av_rescale_q(
            at_ms as i64,
            ffi::AVRational { num: 1, den: 1000 },
            time_base.into(),
        )
    };
    let target = if start == ffi::AV_NOPTS_VALUE {
        0
    } else {
        start
    }
    .saturating_add(offset);
    if at_ms > 0 {
        // SAFETY: the input is open; seeking to the key frame at or before
        // `target` (a failed seek leaves the position at the start).
        unsafe {
            ffi::av_seek_frame(
                input.as_mut_ptr(),
                index as c_int,
                target,
                ffi::AVSEEK_FLAG_BACKWARD,
            );
        }
    }

    let mut chosen: Option<av::frame::Video> = None;
    let mut frame = av::frame::Video::empty();
    let mut bad = 0u32;
    let mut reached = false;
    let take = |decoder: &mut av::decoder::Video,
                chosen: &mut Option<av::frame::Video>,
                frame: &mut av::frame::Video|
     -> Result<bool, TransformError> {
        while decoder.receive_frame(frame).is_ok() {
            job.check()?;
            let pts = frame.timestamp().unwrap_or(i64::MIN);
            let shown = std::mem::replace(frame, av::frame::Video::empty());
            // Before the target keep the latest; the first at or after it ends the search.
            *chosen = Some(shown);
            if pts >= target {
                return Ok(true);
            }
        }
        Ok(false)
    };
    while !reached {
        job.check()?;
        // A fresh packet each time: `av_read_frame` does not release the
        // one it is given, so reusing it would leak every packet's buffer
        // (found by the image_decode fuzz target's leak check).
        let mut packet = av::Packet::empty();
        match packet.read(input) {
            Ok(()) => {}
            // The end, or a truncated or broken container: what decoded so far counts.
            Err(_) => break,
        }
        if packet.stream() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            bad += 1;
            if bad > MAX_BAD_PACKETS {
                break;
            }
            continue;
        }
        reached = take(&mut decoder, &mut chosen, &mut frame)?;
    }
    if !reached && decoder.send_eof().is_ok() {
        take(&mut decoder, &mut chosen, &mut frame)?;
    }
    job.check()?;
    let frame =
        chosen.ok_or_else(|| TransformError::Undecodable("no video frame decodes".into()))?;
    to_rgb(&frame, size)
}

fn open_decoder(
    codec: VideoCodec,
    stream: &av::format::stream::Stream,
    header: &VideoHeader,
    max_pixels: u64,
) -> Result<av::decoder::Video, TransformError> {
    let found = av::decoder::find_by_name(codec.decoder())
        .ok_or_else(|| TransformError::Undecodable(format!("no {} decoder", codec.decoder())))?;
    let mut ctx = av::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| undecodable("parameters", e))?;
    let limit = decoder_pixels(header.width, header.height).min(max_pixels);
    // SAFETY: fields of a context not opened yet.
    unsafe {
        let raw = ctx.as_mut_ptr();
        (*raw).thread_count = 1;
        (*raw).max_pixels = limit as i64;
        (*raw).pkt_timebase = stream.time_base().into();
    }
    ctx.decoder()
        .open_as(found)
        .and_then(|d| d.video())
        .map_err(|e| undecodable("decoder", e))
}

/// libswscale's colour matrix for the frame's, as the `ffmpeg` program
/// picks it (BT.601 when the stream does not say).
fn sws_colorspace(space: av::color::Space) -> c_int {
    match space {
        av::color::Space::BT709 => ffi::SWS_CS_ITU709 as c_int,
        av::color::Space::FCC => ffi::SWS_CS_FCC as c_int,
        av::color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M as c_int,
        av::color::Space::BT2020NCL | av::color::Space::BT2020CL => ffi::SWS_CS_BT2020 as c_int,
        _ => ffi::SWS_CS_ITU601 as c_int,
    }
}

/// The frame as 8-bit RGB at `size`, scaled by area averaging.
fn to_rgb(frame: &av::frame::Video, size: (u32, u32)) -> Result<Pixels, TransformError> {
    let (w, h) = (size.0.max(1), size.1.max(1));
    let mut scaler = av::software::scaling::Context::get(
        frame.format(),
        frame.width(),
        frame.height(),
        av::format::Pixel::RGB24,
        w,
        h,
        av::software::scaling::Flags::AREA,
    )
    .map_err(|e| undecodable("pixel format", e))?;
    let full = frame.color_range() == av::color::Range::JPEG;
    // SAFETY: the coefficient tables are libswscale's static ones; the
    // context is ours. (Refused for RGB input, where it does not apply.)
    unsafe {
        let table = ffi::sws_getCoefficients(sws_colorspace(frame.color_space()));
        let rgb = ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT as c_int);
        ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            table,
            full as c_int,
            rgb,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
    let mut out = av::frame::Video::empty();
    scaler
        .run(frame, &mut out)
        .map_err(|e| undecodable("conversion", e))?;
    let stride = out.stride(0);
    let row = w as usize * 3;
    let plane = out.data(0);
    let mut rgb = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        let line = plane
            .get(y * stride..y * stride + row)
            .ok_or_else(|| TransformError::Internal("short RGB plane".into()))?;
        rgb.extend_from_slice(line);
    }
    Ok(Pixels::new_u8(w, h, Channels::Rgb, rgb))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    const MAX: u64 = 100_000_000;

    #[test]
    fn headers_of_the_corpus_videos() {
        let job = Job::unbounded();
        let mp4 = probe(&corpus("video_1280x720_5s.mp4"), MAX, &job).unwrap();
        assert_eq!((mp4.width, mp4.height, mp4.orientation), (1280, 720, 1));
        assert_eq!(
            (mp4.codec, mp4.duration_ms / 100),
            (Some(VideoCodec::H264), 50)
        );
        let mov = probe(&corpus("video_1280x720_rot90_hevc_3s.mov"), MAX, &job).unwrap();
        assert_eq!((mov.width, mov.height, mov.orientation), (1280, 720, 6));
        assert_eq!((mov.codec, mov.audio), (Some(VideoCodec::Hevc), true));
        let webm = probe(&corpus("video_1280x720_vp9_3s.webm"), MAX, &job).unwrap();
        assert_eq!(
            (webm.codec, webm.audio, webm.duration_ms / 100),
            (Some(VideoCodec::Vp9), false, 30)
        );
        let last = probe(&corpus("video_1280x720_moovlast_3s.mp4"), MAX, &job).unwrap();
        assert_eq!(last.codec, Some(VideoCodec::H264));
    }

    #[test]
    fn a_header_that_lies_about_the_duration_does_not_shorten_the_video() {
        let mut src = corpus("video_1280x720_5s.mp4");
        // Every duration field the header has (mvhd, tkhd, mdhd, version 0) set to 1.
        for (name, at) in [(&b"mvhd"[..], 16), (b"tkhd", 20), (b"mdhd", 16)] {
            let mut from = 0;
            while let Some(i) = src[from..].windows(4).position(|w| w == name) {
                let field = from + i + 4 + at;
                src[field..field + 4].copy_from_slice(&1u32.to_be_bytes());
                from = from + i + 4;
            }
        }
        let h = probe(&src, MAX, &Job::unbounded()).unwrap();
        assert!(h.duration_ms >= 4900, "{} ms", h.duration_ms);
    }

    #[test]
    fn pixel_limit_before_any_decoder() {
        let e = probe(
            &corpus("video_1280x720_5s.mp4"),
            1280 * 720 - 1,
            &Job::unbounded(),
        )
        .unwrap_err();
        assert!(matches!(e, TransformError::TooManyPixels(_)), "{e:?}");
    }

    #[test]
    fn frames_at_times_and_past_the_end() {
        let src = corpus("video_1280x720_5s.mp4");
        let job = Job::unbounded();
        let h = probe(&src, MAX, &job).unwrap();
        let a = decode(&src, &h, 0, MAX, (160, 90), &job).unwrap();
        let b = decode(&src, &h, 4000, MAX, (160, 90), &job).unwrap();
        let end = decode(&src, &h, 86_400_000, MAX, (160, 90), &job).unwrap();
        assert_eq!((a.width, a.height), (160, 90));
        assert_ne!(a.samples, b.samples, "the video pans: 4 s differs from 0 s");
        assert_ne!(end.samples, a.samples);
    }

    #[test]
    fn a_passed_deadline_stops_the_demuxer_and_the_decoder() {
        let src = corpus("video_1280x720_5s.mp4");
        let h = probe(&src, MAX, &Job::unbounded()).unwrap();
        let over = Job::new(
            std::time::Instant::now(),
            crate::transform::job::MemoryBudget::new(1 << 30),
        );
        assert!(matches!(
            probe(&src, MAX, &over),
            Err(TransformError::TimedOut)
        ));
        let e = decode(&src, &h, 4000, MAX, (32, 18), &over).unwrap_err();
        assert!(matches!(e, TransformError::TimedOut), "{e:?}");
    }

    /// Every packet read is released: decoding to the last frame over and
    /// over leaves glibc's heap (where libav allocates) where it was. The
    /// leak this guards against kept ~200 KB per decode of this clip.
    #[test]
    fn decoding_leaks_no_packet() {
        let src = corpus("video_1280x720_5s.mp4");
        let job = Job::unbounded();
        let h = probe(&src, MAX, &job).unwrap();
        let in_use = || unsafe { libc::mallinfo2() }.uordblks as i64;
        for _ in 0..3 {
            decode(&src, &h, 4900, MAX, (32, 18), &job).unwrap();
        }
        let before = in_use();
        for _ in 0..15 {
            decode(&src, &h, 4900, MAX, (32, 18), &job).unwrap();
        }
        let grew = in_use() - before;
        assert!(
            grew < 1 << 20,
            "libav's heap grew {grew} bytes over 15 decodes"
        );
    }

    #[test]
    fn only_the_four_codecs_decode() {
        let src = corpus("video_1280x720_5s.mp4");
        let mut h = probe(&src, MAX, &Job::unbounded()).unwrap();
        h.codec = None;
        h.codec_name = "mpeg4".into();
        let e = decode(&src, &h, 0, MAX, (32, 18), &Job::unbounded()).unwrap_err();
        assert_eq!(
            e,
            TransformError::Undecodable("video codec mpeg4 is not decoded here".into())
        );
    }

    #[test]
    fn garbage_and_truncation_are_undecodable_not_crashes() {
        let job = Job::unbounded();
        let mut fake = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
        fake.extend(std::iter::repeat_n(0xAB, 4096));
        assert!(matches!(
            probe(&fake, MAX, &job),
            Err(TransformError::Undecodable(_))
        ));
        let src = corpus("video_1280x720_5s.mp4");
        for cut in [16, 1000, src.len() / 2] {
            let part = &src[..cut];
            if let Ok(h) = probe(part, MAX, &job) {
                let _ = decode(part, &h, 1000, MAX, (32, 18), &job);
            }
        }
    }
}
