//! The container structure of an uploaded video or AVIF, checked beyond its
//! magic bytes: the sniff looks at the first bytes only, so an `ftyp` box or
//! an EBML header followed by HTML would otherwise be stored and served as
//! `video/mp4` or `video/webm`.
//!
//! * ISO BMFF (MP4, QuickTime, AVIF, HEIF): the top-level boxes are walked
//!   from the first byte to the last. Each has a sane size within the file
//!   (32-bit, 64-bit `largesize`, or 0 for "to the end"), a type of four
//!   printable ASCII characters, and the last one ends exactly at the end of
//!   the file. `ftyp` comes first (QuickTime may also start with `moov`,
//!   `mdat`, `wide`, `free`, `skip` or `pnot`, as old `.mov` files do, and as
//!   the sniff accepts). A video has exactly one `moov`, an image exactly one
//!   `meta`. The brands were already matched by the sniff.
//! * WebM: an EBML header of known, small size whose children tile it, with
//!   one DocType `webm` or `matroska`; then a Segment, of unknown size (live
//!   recordings, e.g. a browser's MediaRecorder) or ending exactly at the end
//!   of the file. The Segment's children are walked the same way: only
//!   Segment-level IDs (SeekHead, Info, Tracks, Cluster, Cues, Attachments,
//!   Chapters, Tags, Void, CRC-32), each within the Segment, until the end or
//!   the first Cluster of unknown size (whose end cannot be known without
//!   reading its blocks); Info and Tracks must be among them.
//!
//! Hand-written rather than a demuxer (mp4parse, matroska crates): we need
//! the top-level structure only, never the media, and a full demuxer reads
//! and allocates for everything in the file — a much larger attack surface
//! for a question that a few header reads answer. It reads the staged file
//! through small bounded reads and seeks (never the whole file), stops after
//! [`MAX_ELEMENTS`] boxes or elements, and returns an error, never panics, on
//! any input (fuzzed: `fuzz/fuzz_targets/container.rs`). It proves the file
//! is shaped like the container, not that its streams play: what is inside
//! `moov`, `mdat` or a Cluster is not read (a real probe of the streams
//! comes with the video work).
//!
//! A refusal is 422, "does not decode", not 415: the content did sniff as an
//! allowed type (SPEC's 415 is for content that does not), and a file whose
//! magic is right but whose body is not that format is an undecodable one,
//! as a JPEG whose magic is followed by garbage already is.

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::media_type::MediaType;

/// The most top-level boxes (ISO BMFF) or Segment children (Matroska) read.
/// Real files have a handful; fragmented MP4 from a recorder with short
/// time slices (a `moof` and an `mdat` per slice) can have thousands, so
/// the bound is on work (each costs a small read), not on a typical count.
pub const MAX_ELEMENTS: usize = 16_384;

/// The largest EBML header read into memory (real ones are 30-50 bytes).
const MAX_EBML_HEADER: u64 = 1024;

/// Why a structure check failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The content is not a well-formed container of its sniffed type.
    #[error("{0}")]
    Invalid(String),
    /// The file could not be read (our side).
    #[error("reading the upload: {0}")]
    Io(#[from] io::Error),
}

/// Whether [`check`] looks at this type (else it accepts it as is).
pub fn applies(media: MediaType) -> bool {
    matches!(
        media,
        MediaType::Mp4
            | MediaType::QuickTime
            | MediaType::Avif
            | MediaType::Heic
            | MediaType::Heif
            | MediaType::Webm
    )
}

/// One top-level box of an ISO BMFF file, as the walk found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopBox {
    pub ty: [u8; 4],
    /// Offset of its first byte.
    pub start: u64,
    /// Whole size, header included.
    pub size: u64,
    /// Header length (8, 16 with a 64-bit size; a `uuid`'s extended type included).
    pub header: u64,
}

impl TopBox {
    pub fn end(&self) -> u64 {
        self.start + self.size
    }
}

/// Checks the container structure of `src` (the whole upload) as the type it
/// sniffed as. Other types pass unchecked.
pub fn check<R: Read + Seek>(src: R, media: MediaType) -> Result<(), ContainerError> {
    walk(src, media).map(drop)
}

/// The top-level boxes of an MP4 or QuickTime file, checked as [`check`]
/// does (empty for other types).
pub fn movie_boxes<R: Read + Seek>(
    src: R,
    media: MediaType,
) -> Result<Vec<TopBox>, ContainerError> {
    match media {
        MediaType::Mp4 | MediaType::QuickTime => walk(src, media),
        _ => Ok(Vec::new()),
    }
}

fn walk<R: Read + Seek>(src: R, media: MediaType) -> Result<Vec<TopBox>, ContainerError> {
    let (name, kind) = match media {
        MediaType::Mp4 => ("MP4", Kind::Video),
        MediaType::QuickTime => ("QuickTime", Kind::QuickTime),
        MediaType::Avif => ("AVIF", Kind::Image),
        MediaType::Heic => ("HEIC", Kind::Image),
        MediaType::Heif => ("HEIF", Kind::Image),
        MediaType::Webm => ("WebM", Kind::Matroska),
        _ => return Ok(Vec::new()),
    };
    let mut src = Src::new(src)?;
    let outcome = match kind {
        Kind::Matroska => matroska(&mut src).map(|()| Vec::new()),
        _ => iso_bmff(&mut src, kind),
    };
    outcome.map_err(|e| match e {
        Fault::Invalid(why) => ContainerError::Invalid(format!("not a valid {name} file: {why}")),
        Fault::Io(e) => ContainerError::Io(e),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// MP4: `ftyp` first, one `moov`.
    Video,
    /// QuickTime: `ftyp` optional (first if there), one `moov`.
    QuickTime,
    /// AVIF/HEIF: `ftyp` first, one `meta`.
    Image,
    /// WebM (EBML).
    Matroska,
}

enum Fault {
    Invalid(String),
    Io(io::Error),
}

impl From<io::Error> for Fault {
    fn from(e: io::Error) -> Self {
        Fault::Io(e)
    }
}

macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(Fault::Invalid(format!($($arg)*)))
    };
}

/// The file, read in small pieces at known offsets. Forward skips within the
/// buffer cost nothing, so a file of many tiny boxes is one pass over it.
struct Src<R> {
    inner: BufReader<R>,
    pos: u64,
    len: u64,
}

impl<R: Read + Seek> Src<R> {
    fn new(mut r: R) -> io::Result<Self> {
        let len = r.seek(SeekFrom::End(0))?;
        r.seek(SeekFrom::Start(0))?;
        Ok(Self {
            inner: BufReader::with_capacity(8 << 10, r),
            pos: 0,
            len,
        })
    }

    /// Reads `buf.len()` bytes at `at`; the caller has checked that they are
    /// within the file.
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        if at != self.pos {
            let delta = i64::try_from(i128::from(at) - i128::from(self.pos))
                .map_err(|_| io::Error::other("seek out of range"))?;
            self.inner.seek_relative(delta)?;
        }
        // Unknown until the read succeeds (an error ends the check anyway).
        self.pos = u64::MAX;
        self.inner.read_exact(buf)?;
        self.pos = at + buf.len() as u64;
        Ok(())
    }
}

/// A box type for messages: printable as is, else in hex.
fn fourcc(ty: &[u8]) -> String {
    if ty.iter().all(|b| (0x20..=0x7E).contains(b)) {
        format!("'{}'", String::from_utf8_lossy(ty))
    } else {
        format!(
            "0x{}",
            ty.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

fn iso_bmff<R: Read + Seek>(src: &mut Src<R>, kind: Kind) -> Result<Vec<TopBox>, Fault> {
    let len = src.len;
    let (mut pos, mut count) = (0u64, 0usize);
    let mut boxes = Vec::new();
    let (mut moov, mut meta) = (0usize, 0usize);
    while pos < len {
        count += 1;
        if count > MAX_ELEMENTS {
            invalid!("more than {MAX_ELEMENTS} top-level boxes");
        }
        let left = len - pos;
        if left < 8 {
            invalid!("{left} bytes at offset {pos} after the last box, too few for a box");
        }
        let mut head = [0u8; 8];
        src.read_at(pos, &mut head)?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let ty = [head[4], head[5], head[6], head[7]];
        if !ty.iter().all(|b| (0x20..=0x7E).contains(b)) {
            invalid!(
                "the box at offset {pos} has type {} (not four printable characters)",
                fourcc(&ty)
            );
        }
        let (size, mut header) = match size32 {
            // To the end of the file: only the last box can say so, and it is
            // the last one by definition.
            0 => (left, 8u64),
            1 => {
                if left < 16 {
                    invalid!(
                        "box {} at offset {pos} is cut off in its 64-bit size",
                        fourcc(&ty)
                    );
                }
                let mut large = [0u8; 8];
                src.read_at(pos + 8, &mut large)?;
                (u64::from_be_bytes(large), 16)
            }
            n => (u64::from(n), 8),
        };
        if &ty == b"uuid" {
            header += 16; // the extended type
        }
        if size < header {
            invalid!(
                "box {} at offset {pos} declares {size} bytes, less than its {header}-byte header",
                fourcc(&ty)
            );
        }
        if size > left {
            invalid!(
                "box {} at offset {pos} declares {size} bytes, but only {left} are left",
                fourcc(&ty)
            );
        }
        if count == 1 && &ty != b"ftyp" {
            let quicktime_start = matches!(
                &ty,
                b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot"
            );
            if kind != Kind::QuickTime || !quicktime_start {
                invalid!("the first box is {}, not 'ftyp'", fourcc(&ty));
            }
        }
        match &ty {
            b"ftyp" => {
                if count != 1 {
                    invalid!("'ftyp' at offset {pos} is not the first box");
                }
                // Major brand, minor version, whole compatible brands.
                if size < header + 8 || (size - header) % 4 != 0 {
                    invalid!("'ftyp' of {size} bytes is not a brand list");
                }
            }
            b"moov" => moov += 1,
            b"meta" => meta += 1,
            _ => {}
        }
        boxes.push(TopBox {
            ty,
            start: pos,
            size,
            header,
        });
        pos += size;
    }
    if count == 0 {
        invalid!("the file is empty");
    }
    match kind {
        Kind::Video | Kind::QuickTime => {
            if moov != 1 {
                invalid!("{moov} top-level 'moov' boxes (the movie index), not one");
            }
        }
        Kind::Image => {
            if meta != 1 {
                invalid!("{meta} top-level 'meta' boxes (the image items), not one");
            }
        }
        Kind::Matroska => {}
    }
    Ok(boxes)
}

/// EBML element IDs.
const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const CLUSTER: u32 = 0x1F43_B675;
const CUES: u32 = 0x1C53_BB6B;
const ATTACHMENTS: u32 = 0x1941_A469;
const CHAPTERS: u32 = 0x1043_A770;
const TAGS: u32 = 0x1254_C367;
const VOID: u32 = 0xEC;
const CRC32: u32 = 0xBF;

/// An element's ID, header length (ID and size) and size (`None`: unknown).
#[derive(Debug, PartialEq, Eq)]
struct Element {
    id: u32,
    header: u64,
    size: Option<u64>,
}

/// Parses an element header at the start of `buf` (which holds what is left
/// of its parent, or the first 12 bytes of it). `Ok(None)`: cut off.
fn element(buf: &[u8]) -> Result<Option<Element>, String> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    // An ID is a VINT of 1 to 4 bytes, kept with its length marker.
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(format!(
            "element ID starting 0x{first:02x} is longer than 4 bytes"
        ));
    }
    let Some(id_bytes) = buf.get(..id_len) else {
        return Ok(None);
    };
    let id = id_bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b));
    let data_bits = 7 * id_len as u32;
    let data = id & ((1u32 << data_bits) - 1);
    if data == 0 || data == (1u32 << data_bits) - 1 {
        return Err(format!("element ID 0x{id:x} is reserved"));
    }
    // A size is a VINT of 1 to 8 bytes; all data bits set means unknown.
    let Some(&first) = buf.get(id_len) else {
        return Ok(None);
    };
    let size_len = first.leading_zeros() as usize + 1;
    if size_len > 8 {
        return Err(format!("element 0x{id:x} has a size longer than 8 bytes"));
    }
    let Some(size_bytes) = buf.get(id_len..id_len + size_len) else {
        return Ok(None);
    };
    let marker_cleared = u64::from(first) & ((1u64 << (8 - size_len)) - 1);
    let value = size_bytes[1..]
        .iter()
        .fold(marker_cleared, |v, &b| (v << 8) | u64::from(b));
    let all_ones = (1u64 << (7 * size_len)) - 1;
    Ok(Some(Element {
        id,
        header: (id_len + size_len) as u64,
        size: (value != all_ones).then_some(value),
    }))
}

/// Reads the element header at `pos`, which must end by `end`.
fn element_at<R: Read + Seek>(src: &mut Src<R>, pos: u64, end: u64) -> Result<Element, Fault> {
    let mut buf = [0u8; 12];
    let n = end.saturating_sub(pos).min(buf.len() as u64) as usize;
    src.read_at(pos, &mut buf[..n])?;
    match element(&buf[..n]) {
        Ok(Some(e)) => Ok(e),
        Ok(None) => invalid!("the element header at offset {pos} is cut off"),
        Err(why) => invalid!("at offset {pos}: {why}"),
    }
}

fn matroska<R: Read + Seek>(src: &mut Src<R>) -> Result<(), Fault> {
    let len = src.len;
    let mut magic = [0u8; 4];
    if len < 4 || {
        src.read_at(0, &mut magic)?;
        u32::from_be_bytes(magic) != EBML
    } {
        invalid!("it does not start with an EBML header");
    }
    let head = element_at(src, 0, len)?;
    let Some(size) = head.size else {
        invalid!("the EBML header has an unknown size");
    };
    if size > MAX_EBML_HEADER || head.header + size > len {
        invalid!("the EBML header declares {size} bytes");
    }
    let mut body = vec![0u8; size as usize];
    src.read_at(head.header, &mut body)?;
    let doc_type = ebml_header(&body).map_err(Fault::Invalid)?;
    if doc_type != b"webm" && doc_type != b"matroska" {
        invalid!(
            "the DocType is {:?}, not \"webm\"",
            String::from_utf8_lossy(&doc_type)
        );
    }

    let seg_pos = head.header + size;
    if seg_pos == len {
        invalid!("there is no Segment after the EBML header");
    }
    let seg = element_at(src, seg_pos, len)?;
    if seg.id != SEGMENT {
        invalid!(
            "the element after the EBML header is 0x{:x}, not a Segment",
            seg.id
        );
    }
    let start = seg_pos + seg.header;
    let end = match seg.size {
        None => len,
        Some(n) if n <= len - start => start + n,
        Some(n) => invalid!(
            "the Segment declares {n} bytes, but only {} are left",
            len - start
        ),
    };
    if end != len {
        invalid!("{} bytes after the Segment", len - end);
    }

    let (mut pos, mut count) = (start, 0usize);
    let (mut info, mut tracks) = (false, false);
    while pos < end {
        count += 1;
        if count > MAX_ELEMENTS {
            invalid!("more than {MAX_ELEMENTS} elements in the Segment");
        }
        let e = element_at(src, pos, end)?;
        match e.id {
            INFO => info = true,
            TRACKS => tracks = true,
            SEEK_HEAD | CLUSTER | CUES | ATTACHMENTS | CHAPTERS | TAGS | VOID | CRC32 => {}
            id => invalid!("element 0x{id:x} at offset {pos} does not belong in a Segment"),
        }
        let Some(size) = e.size else {
            // Live recordings: a Cluster runs to the next Cluster or the end,
            // which only its blocks tell. Nothing else may have no size.
            if e.id != CLUSTER {
                invalid!("element 0x{:x} at offset {pos} has an unknown size", e.id);
            }
            break;
        };
        if size > end - pos - e.header {
            invalid!(
                "element 0x{:x} at offset {pos} declares {size} bytes, but only {} are left",
                e.id,
                end - pos - e.header
            );
        }
        pos += e.header + size;
    }
    if !info || !tracks {
        invalid!(
            "the Segment has no {}",
            if info { "Tracks" } else { "Info" }
        );
    }
    Ok(())
}

/// The children of an EBML header (in memory, at most [`MAX_EBML_HEADER`]
/// bytes) tile it exactly; its one DocType, without trailing NULs.
fn ebml_header(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut doc_type = None;
    while !body.is_empty() {
        let e = element(body)?.ok_or("an element in the EBML header is cut off")?;
        let Some(size) = e.size else {
            return Err(format!(
                "element 0x{:x} in the EBML header has an unknown size",
                e.id
            ));
        };
        let data = usize::try_from(e.header + size)
            .ok()
            .and_then(|end| body.get(e.header as usize..end))
            .ok_or_else(|| format!("element 0x{:x} overruns the EBML header", e.id))?;
        if e.id == DOC_TYPE {
            if doc_type.is_some() {
                return Err("the EBML header has two DocTypes".into());
            }
            let text = data
                .iter()
                .rposition(|&b| b != 0)
                .map_or(&[][..], |i| &data[..=i]);
            doc_type = Some(text.to_vec());
        }
        body = &body[e.header as usize + data.len()..];
    }
    doc_type.ok_or_else(|| "the EBML header has no DocType".into())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::media_type::SNIFF_LEN;

    fn bx(ty: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        [&(payload.len() as u32 + 8).to_be_bytes()[..], ty, payload].concat()
    }

    fn check_bytes(bytes: &[u8], media: MediaType) -> Result<(), String> {
        check(Cursor::new(bytes), media).map_err(|e| e.to_string())
    }

    #[track_caller]
    fn refused(bytes: &[u8], media: MediaType, why: &str) {
        match check_bytes(bytes, media) {
            Ok(()) => panic!("accepted, expected a refusal containing {why:?}"),
            Err(e) => assert!(e.contains(why), "{e:?} does not contain {why:?}"),
        }
    }

    fn ftyp() -> Vec<u8> {
        bx(b"ftyp", b"isom\0\0\x02\0isomiso2avc1mp41")
    }

    fn avif_ftyp() -> Vec<u8> {
        bx(b"ftyp", b"avif\0\0\0\0avifmif1miaf")
    }

    fn mp4() -> Vec<u8> {
        [
            ftyp(),
            bx(b"moov", &bx(b"mvhd", &[0; 100])),
            bx(b"mdat", &[7; 300]),
        ]
        .concat()
    }

    fn avif() -> Vec<u8> {
        [avif_ftyp(), bx(b"meta", &[0; 40]), bx(b"mdat", &[7; 30])].concat()
    }

    const HTML: &[u8] = b"<html><script>alert(document.cookie)</script></html>";

    #[test]
    fn minimal_iso_files_pass() {
        check_bytes(&mp4(), MediaType::Mp4).unwrap();
        check_bytes(&avif(), MediaType::Avif).unwrap();
        check_bytes(&avif(), MediaType::Heif).unwrap();
        // moov last, and a 64-bit size, and size 0 (to the end) on the last box.
        let mut large = vec![0, 0, 0, 1];
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(16u64 + 5).to_be_bytes());
        large.extend_from_slice(&[1; 5]);
        let moov = bx(b"moov", &[0; 8]);
        check_bytes(
            &[ftyp(), large.clone(), moov.clone()].concat(),
            MediaType::Mp4,
        )
        .unwrap();
        let open_ended = [&[0u8, 0, 0, 0][..], b"mdat", &[9; 50]].concat();
        check_bytes(&[ftyp(), moov.clone(), open_ended].concat(), MediaType::Mp4).unwrap();
        // uuid boxes carry a 16-byte extended type.
        let uuid = bx(b"uuid", &[3; 16]);
        check_bytes(&[mp4(), uuid].concat(), MediaType::Mp4).unwrap();
    }

    #[test]
    fn quicktime_may_start_without_ftyp() {
        let qt_ftyp = bx(b"ftyp", b"qt  \0\0\x02\0qt  ");
        let moov = bx(b"moov", &[0; 16]);
        let mdat = bx(b"mdat", &[1; 16]);
        check_bytes(
            &[qt_ftyp, moov.clone(), mdat.clone()].concat(),
            MediaType::QuickTime,
        )
        .unwrap();
        for start in [b"wide", b"free", b"skip"] {
            let old = [bx(start, &[]), mdat.clone(), moov.clone()].concat();
            check_bytes(&old, MediaType::QuickTime).unwrap();
            refused(&old, MediaType::Mp4, "not 'ftyp'");
        }
        check_bytes(&[moov.clone(), mdat.clone()].concat(), MediaType::QuickTime).unwrap();
        refused(
            &[bx(b"junk", &[]), moov].concat(),
            MediaType::QuickTime,
            "not 'ftyp'",
        );
    }

    #[test]
    fn garbage_after_ftyp_is_refused() {
        refused(
            &[ftyp(), HTML.to_vec()].concat(),
            MediaType::Mp4,
            "but only",
        );
        refused(
            &[avif_ftyp(), HTML.to_vec()].concat(),
            MediaType::Avif,
            "but only",
        );
        // A good file, then a script.
        refused(&[mp4(), HTML.to_vec()].concat(), MediaType::Mp4, "but only");
        refused(
            &[avif(), HTML.to_vec()].concat(),
            MediaType::Avif,
            "but only",
        );
        // Non-printable box types: binary garbage.
        let mut bin = ftyp();
        bin.extend_from_slice(&[0, 0, 0, 16, 0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0, 0, 0, 0, 0]);
        refused(&bin, MediaType::Mp4, "not four printable characters");
    }

    #[test]
    fn trailing_bytes_are_refused() {
        for n in 1..8 {
            let bytes = [mp4(), vec![0; n]].concat();
            refused(&bytes, MediaType::Mp4, "after the last box");
        }
        // Eight or more zeros read as a box header (size 0: to the end), but
        // its type is not a type.
        refused(
            &[mp4(), vec![0; 9]].concat(),
            MediaType::Mp4,
            "not four printable",
        );
    }

    #[test]
    fn truncated_boxes_are_refused() {
        let whole = mp4();
        for cut in [whole.len() - 1, whole.len() - 300, 40, 33, 20, 9] {
            assert!(
                check_bytes(&whole[..cut], MediaType::Mp4).is_err(),
                "cut at {cut}"
            );
        }
        // A 64-bit size cut off.
        let mut bytes = ftyp();
        bytes.extend_from_slice(&[0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0]);
        refused(&bytes, MediaType::Mp4, "cut off in its 64-bit size");
    }

    #[test]
    fn sizes_out_of_range_are_refused() {
        // Under the header: 32-bit, 64-bit, and a uuid without its extended type.
        let mut under = ftyp();
        under.extend_from_slice(&[0, 0, 0, 7, b'm', b'o', b'o', b'v']);
        refused(&under, MediaType::Mp4, "less than its 8-byte header");
        let mut under64 = ftyp();
        under64.extend_from_slice(&[0, 0, 0, 1, b'm', b'o', b'o', b'v']);
        under64.extend_from_slice(&15u64.to_be_bytes());
        refused(&under64, MediaType::Mp4, "less than its 16-byte header");
        refused(
            &[mp4(), bx(b"uuid", &[0; 4])].concat(),
            MediaType::Mp4,
            "24-byte header",
        );
        // Over the file, up to u64::MAX (no overflow).
        for large in [1000u64, u64::MAX, u64::MAX - 7, 1 << 63] {
            let mut over = ftyp();
            over.extend_from_slice(&[0, 0, 0, 1, b'm', b'd', b'a', b't']);
            over.extend_from_slice(&large.to_be_bytes());
            over.extend_from_slice(&bx(b"moov", &[]));
            refused(&over, MediaType::Mp4, "but only");
        }
        let mut over32 = mp4();
        over32[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        refused(&over32, MediaType::Mp4, "but only");
        // ftyp too short for its brands, or with a partial brand.
        refused(
            &[bx(b"ftyp", b"isom"), bx(b"moov", &[])].concat(),
            MediaType::Mp4,
            "not a brand list",
        );
        refused(
            &[bx(b"ftyp", b"isom\0\0\0\0is"), bx(b"moov", &[])].concat(),
            MediaType::Mp4,
            "not a brand list",
        );
    }

    #[test]
    fn size_zero_swallows_the_rest() {
        // Size 0 in the middle: the `moov` after it is inside it, so missing.
        let bytes = [
            ftyp(),
            [&[0u8, 0, 0, 0][..], b"mdat", &[1; 20]].concat(),
            bx(b"moov", &[0; 8]),
        ]
        .concat();
        refused(&bytes, MediaType::Mp4, "0 top-level 'moov'");
        // On ftyp: the file is one ftyp.
        let bytes = [
            [&[0u8, 0, 0, 0][..], b"ftypisom\0\0\0\0"].concat(),
            bx(b"moov", &[]),
        ]
        .concat();
        refused(&bytes, MediaType::Mp4, "0 top-level 'moov'");
    }

    #[test]
    fn required_boxes() {
        let no_moov = [ftyp(), bx(b"mdat", &[1; 20])].concat();
        refused(&no_moov, MediaType::Mp4, "0 top-level 'moov'");
        refused(&no_moov, MediaType::QuickTime, "0 top-level 'moov'");
        let two = [mp4(), bx(b"moov", &[])].concat();
        refused(&two, MediaType::Mp4, "2 top-level 'moov'");
        // An AVIF has its items in `meta`; a movie is not an AVIF.
        refused(&mp4(), MediaType::Avif, "0 top-level 'meta'");
        refused(
            &[avif(), bx(b"meta", &[])].concat(),
            MediaType::Avif,
            "2 top-level 'meta'",
        );
        refused(
            &[avif_ftyp(), bx(b"mdat", &[])].concat(),
            MediaType::Avif,
            "0 top-level 'meta'",
        );
        // ftyp first, once.
        refused(
            &[bx(b"moov", &[]), ftyp()].concat(),
            MediaType::Mp4,
            "not 'ftyp'",
        );
        refused(
            &[ftyp(), ftyp(), bx(b"moov", &[])].concat(),
            MediaType::Mp4,
            "not the first box",
        );
        refused(&[], MediaType::Mp4, "empty");
        refused(&[], MediaType::Avif, "empty");
    }

    #[test]
    fn too_many_boxes() {
        let free = bx(b"free", &[]);
        let at = |n: usize| {
            let mut bytes = [ftyp(), bx(b"moov", &[])].concat();
            bytes.extend(free.repeat(n - 2));
            bytes
        };
        check_bytes(&at(MAX_ELEMENTS), MediaType::Mp4).unwrap();
        refused(
            &at(MAX_ELEMENTS + 1),
            MediaType::Mp4,
            "more than 16384 top-level boxes",
        );
    }

    // WebM: EBML elements with 1-byte sizes, or 8-byte ones.
    fn el(id: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 127);
        [id, &[0x80 | payload.len() as u8], payload].concat()
    }

    fn el8(id: &[u8], payload: &[u8]) -> Vec<u8> {
        let size = (payload.len() as u64 | 1 << 56).to_be_bytes();
        [id, &size[..], payload].concat()
    }

    const UNKNOWN: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

    fn ebml_header(doc_type: &[u8]) -> Vec<u8> {
        let body = [
            el(&[0x42, 0x86], &[1]),
            el(&[0x42, 0xF7], &[1]),
            el(&[0x42, 0x82], doc_type),
            el(&[0x42, 0x87], &[2]),
        ]
        .concat();
        el(&[0x1A, 0x45, 0xDF, 0xA3], &body)
    }

    fn segment_children() -> Vec<u8> {
        [
            el(&[0x11, 0x4D, 0x9B, 0x74], &[0; 10]),
            el(&[0xEC], &[0; 5]),
            el(&[0x15, 0x49, 0xA9, 0x66], &[0; 20]),
            el(&[0x16, 0x54, 0xAE, 0x6B], &[0; 30]),
            el(&[0x1F, 0x43, 0xB6, 0x75], &[0; 100]),
            el(&[0x1C, 0x53, 0xBB, 0x6B], &[0; 10]),
        ]
        .concat()
    }

    fn webm() -> Vec<u8> {
        [
            ebml_header(b"webm"),
            el8(&[0x18, 0x53, 0x80, 0x67], &segment_children()),
        ]
        .concat()
    }

    /// A live recording: Segment and Cluster of unknown size.
    fn live_webm() -> Vec<u8> {
        [
            ebml_header(b"webm"),
            vec![0x18, 0x53, 0x80, 0x67],
            UNKNOWN.to_vec(),
            el(&[0x15, 0x49, 0xA9, 0x66], &[0; 20]),
            el(&[0x16, 0x54, 0xAE, 0x6B], &[0; 30]),
            vec![0x1F, 0x43, 0xB6, 0x75, 0xFF],
            vec![0xA3; 200],
        ]
        .concat()
    }

    #[test]
    fn minimal_webm_passes() {
        check_bytes(&webm(), MediaType::Webm).unwrap();
        check_bytes(&live_webm(), MediaType::Webm).unwrap();
        let mkv = [
            ebml_header(b"matroska"),
            el8(&[0x18, 0x53, 0x80, 0x67], &segment_children()),
        ]
        .concat();
        check_bytes(&mkv, MediaType::Webm).unwrap();
        // DocType padded with NULs.
        let padded = [
            ebml_header(b"webm\0\0"),
            el8(&[0x18, 0x53, 0x80, 0x67], &segment_children()),
        ]
        .concat();
        check_bytes(&padded, MediaType::Webm).unwrap();
    }

    #[test]
    fn ebml_followed_by_html_is_refused() {
        refused(
            &[ebml_header(b"webm"), HTML.to_vec()].concat(),
            MediaType::Webm,
            "not a Segment",
        );
        let unknown_segment = [
            ebml_header(b"webm"),
            vec![0x18, 0x53, 0x80, 0x67],
            UNKNOWN.to_vec(),
        ]
        .concat();
        refused(
            &[unknown_segment.clone(), HTML.to_vec()].concat(),
            MediaType::Webm,
            "does not belong in a Segment",
        );
        refused(&unknown_segment, MediaType::Webm, "has no Info");
        refused(
            &[webm(), HTML.to_vec()].concat(),
            MediaType::Webm,
            "bytes after the Segment",
        );
        refused(&ebml_header(b"webm"), MediaType::Webm, "no Segment");
    }

    #[test]
    fn bad_vints_are_refused() {
        // An ID or size whose first byte is 0 (longer than 8 bytes / 4 bytes).
        let header = ebml_header(b"webm");
        let mut bad_size = header.clone();
        bad_size.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x00, 0xFF]);
        refused(&bad_size, MediaType::Webm, "size longer than 8 bytes");
        let mut bad_id = header.clone();
        bad_id.extend_from_slice(&[0x08, 0x53, 0x80, 0x67, 0x81, 0x00]);
        refused(&bad_id, MediaType::Webm, "longer than 4 bytes");
        // Reserved IDs (all data bits 0 or 1).
        refused(
            &[header.clone(), vec![0xFF, 0x80]].concat(),
            MediaType::Webm,
            "reserved",
        );
        refused(
            &[header.clone(), vec![0x80, 0x80]].concat(),
            MediaType::Webm,
            "reserved",
        );
        // A vint cut off at the end of the file.
        refused(
            &[header.clone(), vec![0x18, 0x53]].concat(),
            MediaType::Webm,
            "cut off",
        );
        refused(
            &[header.clone(), vec![0x18, 0x53, 0x80, 0x67, 0x01, 0, 0]].concat(),
            MediaType::Webm,
            "cut off",
        );
        // Inside the EBML header: a child with an unknown size, a child
        // past the header's end, and a bad ID.
        let hlen = header.len();
        let inner =
            |body: &[u8]| [el(&[0x1A, 0x45, 0xDF, 0xA3], body), webm()[hlen..].to_vec()].concat();
        refused(&inner(&[0x42, 0x82, 0xFF]), MediaType::Webm, "unknown size");
        refused(
            &inner(&[0x42, 0x82, 0x85, b'w', b'e', b'b', b'm']),
            MediaType::Webm,
            "overruns",
        );
        refused(
            &inner(&[0x00, 0x81, 0]),
            MediaType::Webm,
            "longer than 4 bytes",
        );
        refused(&inner(&[0x42]), MediaType::Webm, "cut off");
    }

    #[test]
    fn ebml_header_and_segment_sizes() {
        let hlen = ebml_header(b"webm").len();
        let body = &webm()[5..hlen];
        // The header itself: unknown size, too large, past the file.
        let unknown = [&[0x1A, 0x45, 0xDF, 0xA3, 0xFF][..], body].concat();
        refused(&unknown, MediaType::Webm, "unknown size");
        let huge = [
            &[0x1A, 0x45, 0xDF, 0xA3, 0x01, 0, 0, 0, 0, 0, 0x10, 0][..],
            body,
        ]
        .concat();
        refused(&huge, MediaType::Webm, "declares 4096 bytes");
        let over = [&[0x1A, 0x45, 0xDF, 0xA3, 0xFE][..], body].concat();
        refused(&over, MediaType::Webm, "declares 126 bytes");
        // The Segment past the end of the file, or short of it.
        let mut long = webm();
        long[hlen + 11] += 1;
        refused(&long, MediaType::Webm, "the Segment declares");
        let mut short = webm();
        short[hlen + 11] -= 1;
        refused(&short, MediaType::Webm, "1 bytes after the Segment");
        // A child past the Segment's end; an unknown size other than a Cluster.
        let cut = [
            ebml_header(b"webm"),
            el8(&[0x18, 0x53, 0x80, 0x67], &segment_children()[..150]),
        ]
        .concat();
        refused(&cut, MediaType::Webm, "but only");
        let unknown_info = [
            ebml_header(b"webm"),
            vec![0x18, 0x53, 0x80, 0x67],
            UNKNOWN.to_vec(),
            vec![0x15, 0x49, 0xA9, 0x66, 0xFF],
        ]
        .concat();
        refused(&unknown_info, MediaType::Webm, "unknown size");
        // No Tracks before the first (open-ended) Cluster.
        let no_tracks = [
            ebml_header(b"webm"),
            vec![0x18, 0x53, 0x80, 0x67],
            UNKNOWN.to_vec(),
            el(&[0x15, 0x49, 0xA9, 0x66], &[0; 20]),
            vec![0x1F, 0x43, 0xB6, 0x75, 0xFF],
            el(&[0x16, 0x54, 0xAE, 0x6B], &[0; 30]),
        ]
        .concat();
        refused(&no_tracks, MediaType::Webm, "no Tracks");
    }

    #[test]
    fn wrong_doc_type_is_refused() {
        let hlen = ebml_header(b"webm").len();
        for (doc, why) in [
            (&b"webmx"[..], "not \"webm\""),
            (b"html", "not \"webm\""),
            (b"", "not \"webm\""),
        ] {
            let bytes = [
                ebml_header(doc),
                el8(&[0x18, 0x53, 0x80, 0x67], &segment_children()),
            ]
            .concat();
            refused(&bytes, MediaType::Webm, why);
        }
        let no_doc = el(&[0x1A, 0x45, 0xDF, 0xA3], &el(&[0x42, 0x86], &[1]));
        refused(
            &[no_doc, webm()[hlen..].to_vec()].concat(),
            MediaType::Webm,
            "no DocType",
        );
        let two = el(
            &[0x1A, 0x45, 0xDF, 0xA3],
            &[el(&[0x42, 0x82], b"webm"), el(&[0x42, 0x82], b"webm")].concat(),
        );
        refused(
            &[two, webm()[hlen..].to_vec()].concat(),
            MediaType::Webm,
            "two DocTypes",
        );
        refused(
            &ftyp(),
            MediaType::Webm,
            "does not start with an EBML header",
        );
    }

    #[test]
    fn too_many_segment_children() {
        let at = |n: usize| {
            let mut children = [
                el(&[0x15, 0x49, 0xA9, 0x66], &[]),
                el(&[0x16, 0x54, 0xAE, 0x6B], &[]),
            ]
            .concat();
            children.extend(el(&[0xEC], &[]).repeat(n - 2));
            [
                ebml_header(b"webm"),
                el8(&[0x18, 0x53, 0x80, 0x67], &children),
            ]
            .concat()
        };
        check_bytes(&at(MAX_ELEMENTS), MediaType::Webm).unwrap();
        refused(
            &at(MAX_ELEMENTS + 1),
            MediaType::Webm,
            "more than 16384 elements",
        );
    }

    #[test]
    fn other_types_are_not_checked() {
        for media in [
            MediaType::Jpeg,
            MediaType::Png,
            MediaType::Gif,
            MediaType::Other,
        ] {
            assert!(!applies(media));
            check_bytes(HTML, media).unwrap();
        }
    }

    #[test]
    fn corpus_containers_pass_and_damaged_copies_do_not() {
        for (file, media) in [
            ("video_1280x720_5s.mp4", MediaType::Mp4),
            ("video_1280x720_moovlast_3s.mp4", MediaType::Mp4),
            ("video_1280x720_rot90_hevc_3s.mov", MediaType::QuickTime),
            ("video_1280x720_vp9_3s.webm", MediaType::Webm),
            ("avif_4032x3024_orient8.avif", MediaType::Avif),
            ("heic_4032x3024_orient6_gps.heic", MediaType::Heic),
        ] {
            let bytes = crate::test_support::corpus(file);
            assert_eq!(MediaType::sniff(&bytes[..SNIFF_LEN]), media, "{file}");
            assert!(applies(media));
            check_bytes(&bytes, media).unwrap_or_else(|e| panic!("{file}: {e}"));
            let cut = &bytes[..bytes.len() - 1];
            assert!(check_bytes(cut, media).is_err(), "{file} cut by one byte");
            let longer = [&bytes[..], HTML].concat();
            assert!(
                check_bytes(&longer, media).is_err(),
                "{file} with HTML after it"
            );
        }
    }

    #[test]
    fn reads_through_a_file_and_a_mutable_reference() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &webm()).unwrap();
        check(&mut file, MediaType::Webm).unwrap();
        check(file, MediaType::Mp4).unwrap_err();
    }
}
