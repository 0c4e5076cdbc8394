//! MP4/QuickTime uploads made safe to publish and quick to start, without
//! touching a stream (the media data is copied byte for byte, so `ffmpeg -f
//! framemd5` is identical before and after):
//!
//! * **Metadata**: every `udta` (user data: the `©xyz` location, make,
//!   model, software, dates), `meta` (QuickTime and iTunes metadata: the
//!   keys `com.apple.quicktime.location.ISO6709`, make, model) and `uuid`
//!   (XMP, vendor blobs) box at the top level, in `moov`, and in its tracks
//!   and their media becomes a zeroed `free` box of the same size. Nothing
//!   moves, so no offset changes; the display matrix (`tkhd`) and the colour
//!   description (in `stsd`) stay.
//! * **Fast start**: a file whose `moov` follows its media data is
//!   rewritten `ftyp`…, `moov`, then the rest in its order, each chunk
//!   offset (`stco`, `co64`) moved by the size of the `moov`, as
//!   `qt-faststart` and `ffmpeg -movflags +faststart` do.
//!
//! Only the `moov` is read into memory, up to [`MAX_MOOV`]; the media data
//! goes file to file in the kernel (`copy_file_range`). Hand-written: the
//! MP4 crates demux and remux whole files (samples in memory, every box
//! rewritten), and `ffmpeg -c copy` is a subprocess that rewrites every box
//! too; this needs a box walk and two tables patched. Every read is bounded
//! by its parent box, the walk by [`MAX_BOXES`]; any malformed shape is a
//! refusal (422), never a panic.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::container::{self, ContainerError, TopBox};
use crate::media_type::MediaType;

/// The largest `moov` read into memory (a phone's 10-minute video has a
/// few hundred KB; tables grow with the number of samples).
pub const MAX_MOOV: u64 = 64 << 20;
/// Boxes visited inside the `moov`.
const MAX_BOXES: usize = 100_000;
/// Boxes whose content is metadata, never needed to play.
const METADATA: [&[u8; 4]; 3] = [b"udta", b"meta", b"uuid"];
/// Boxes descended into (the ones that hold tracks, media and sample tables).
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

#[derive(Debug, thiserror::Error)]
pub enum MovieError {
    /// A shape we cannot rewrite safely (422).
    #[error("{0}")]
    Invalid(String),
    #[error("rewriting the upload: {0}")]
    Io(#[from] io::Error),
}

impl From<ContainerError> for MovieError {
    fn from(e: ContainerError) -> Self {
        match e {
            ContainerError::Invalid(why) => MovieError::Invalid(why),
            ContainerError::Io(e) => MovieError::Io(e),
        }
    }
}

fn invalid<T>(why: impl Into<String>) -> Result<T, MovieError> {
    Err(MovieError::Invalid(why.into()))
}

/// What [`clean`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Metadata boxes turned into `free`.
    pub freed: usize,
    /// The `moov` was moved in front of the media data.
    pub moved: bool,
}

/// Cleans the staged MP4/QuickTime file at `path` in place: metadata freed
/// when `scrub`, and the `moov` moved first when it follows the media data
/// (the file is then replaced by a rewritten one, atomically).
pub fn clean(path: &Path, media: MediaType, scrub: bool) -> Result<Cleaned, MovieError> {
    let mut file = File::options().read(true).write(true).open(path)?;
    let boxes = container::movie_boxes(&mut file, media)?;
    let Some(moov) = boxes.iter().find(|b| &b.ty == b"moov").copied() else {
        return invalid("no 'moov' box");
    };
    let split = boxes
        .iter()
        .take_while(|b| b.start < moov.start)
        .find(|b| &b.ty == b"mdat")
        .map(|b| b.start);
    let mut done = Cleaned::default();
    if !scrub && split.is_none() {
        return Ok(done);
    }
    if moov.size > MAX_MOOV {
        return invalid(format!(
            "the movie index ('moov') is {} bytes, more than {MAX_MOOV}",
            moov.size
        ));
    }
    let mut index = vec![0u8; moov.size as usize];
    file.read_exact_at(&mut index, moov.start)?;
    let mut walk = Walk::default();
    if scrub {
        walk.free_metadata(&mut index, moov.header as usize, moov.size as usize)?;
        done.freed = walk.freed;
        for b in boxes.iter().filter(|b| b.start != moov.start) {
            if METADATA.contains(&&b.ty) {
                free_in_file(&file, b)?;
                done.freed += 1;
            }
        }
    }
    match split {
        None => {
            if done.freed > 0 {
                file.write_all_at(&index, moov.start)?;
                file.sync_data()?;
            }
        }
        Some(split) => {
            if boxes.iter().any(|b| &b.ty == b"moof") {
                return invalid("a fragmented movie with its 'moov' after the media data");
            }
            let moved = Moved { split, moov };
            walk.move_offsets(&mut index, moov.header as usize, moov.size as usize, &moved)?;
            // A last box may say "to the end of the file" (size 0); moved
            // first it would swallow the media data, so its size is written
            // out (it fits: the index is at most MAX_MOOV bytes).
            if index.get(..4) == Some(&[0, 0, 0, 0]) {
                index[..4].copy_from_slice(&(moov.size as u32).to_be_bytes());
            }
            rewrite(&mut file, path, &index, &moved)?;
            done.moved = true;
        }
    }
    Ok(done)
}

/// Turns a top-level box into a zeroed `free` of the same size, in place.
fn free_in_file(file: &File, b: &TopBox) -> Result<(), MovieError> {
    file.write_all_at(b"free", b.start + 4)?;
    // A `uuid`'s extended type becomes payload of the `free`.
    let base = if &b.ty == b"uuid" {
        b.header - 16
    } else {
        b.header
    };
    let zeros = vec![0u8; 64 << 10];
    let mut at = b.start + base;
    while at < b.end() {
        let n = (b.end() - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Where the `moov` goes: the file is `[0, split)`, the `moov`, then
/// `[split, moov.start)` and what followed the `moov`.
struct Moved {
    split: u64,
    moov: TopBox,
}

impl Moved {
    /// The new position of the byte at `old` (a chunk offset).
    fn map(&self, old: u64) -> Result<u64, MovieError> {
        if old < self.split || old >= self.moov.end() {
            Ok(old)
        } else if old < self.moov.start {
            Ok(old + self.moov.size)
        } else {
            invalid(format!("a chunk offset ({old}) points into the 'moov'"))
        }
    }
}

/// Writes the file again with the `moov` first and replaces `path` with it
/// (a temporary file beside it, renamed over it).
fn rewrite(file: &mut File, path: &Path, index: &[u8], moved: &Moved) -> Result<(), MovieError> {
    let dir = path
        .parent()
        .ok_or_else(|| MovieError::Invalid("the upload has no directory".into()))?;
    let mut out = tempfile::Builder::new()
        .prefix("faststart-")
        .tempfile_in(dir)?;
    let len = file.metadata()?.len();
    let moov = moved.moov;
    copy_range(file, out.as_file_mut(), 0, moved.split)?;
    out.as_file_mut().write_all(index)?;
    copy_range(file, out.as_file_mut(), moved.split, moov.start)?;
    copy_range(file, out.as_file_mut(), moov.end(), len)?;
    out.as_file_mut().sync_data()?;
    out.persist(path).map_err(|e| MovieError::Io(e.error))?;
    Ok(())
}

/// Appends `[from, to)` of `src` to `dst` (file to file in the kernel).
fn copy_range(src: &mut File, dst: &mut File, from: u64, to: u64) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    src.seek(SeekFrom::Start(from))?;
    let copied = io::copy(&mut src.take(to - from), dst)?;
    if copied != to - from {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the upload shrank",
        ));
    }
    Ok(())
}

/// A box inside the `moov`, by its offsets in the in-memory copy.
#[derive(Debug, Clone, Copy)]
struct Child {
    ty: [u8; 4],
    start: usize,
    /// 8, or 16 with a 64-bit size (a `uuid`'s extended type not included).
    header: usize,
    size: usize,
}

/// The boxes of `buf[from..to]`. Up to 7 trailing bytes are allowed (QuickTime
/// ends some lists with a 4-byte zero).
fn children(buf: &[u8], from: usize, to: usize) -> Result<Vec<Child>, MovieError> {
    let mut out = Vec::new();
    let mut pos = from;
    while to.saturating_sub(pos) >= 8 {
        let head = buf
            .get(pos..pos + 8)
            .ok_or_else(|| MovieError::Invalid("a box runs past its parent".into()))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let ty = [head[4], head[5], head[6], head[7]];
        let (size, header) = match size32 {
            0 => (to - pos, 8),
            1 => {
                let large = buf
                    .get(pos + 8..pos + 16)
                    .filter(|_| pos + 16 <= to)
                    .ok_or_else(|| MovieError::Invalid("a box's 64-bit size is cut off".into()))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(large);
                (
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                    16,
                )
            }
            n => (n, 8),
        };
        if size < header || size > to - pos {
            return invalid(format!(
                "box '{}' in the 'moov' declares {size} bytes, {} are left",
                String::from_utf8_lossy(&ty),
                to - pos
            ));
        }
        out.push(Child {
            ty,
            start: pos,
            header,
            size,
        });
        pos += size;
    }
    Ok(out)
}

/// The walk over the in-memory `moov`, bounded by [`MAX_BOXES`].
#[derive(Default)]
struct Walk {
    visited: usize,
    freed: usize,
}

impl Walk {
    fn children(&mut self, buf: &[u8], from: usize, to: usize) -> Result<Vec<Child>, MovieError> {
        let kids = children(buf, from, to)?;
        self.visited += kids.len();
        if self.visited > MAX_BOXES {
            return invalid(format!("more than {MAX_BOXES} boxes in the 'moov'"));
        }
        Ok(kids)
    }

    /// Frees the metadata boxes in the containers of `buf[from..to]`.
    fn free_metadata(&mut self, buf: &mut [u8], from: usize, to: usize) -> Result<(), MovieError> {
        for c in self.children(buf, from, to)? {
            if METADATA.contains(&&c.ty) {
                buf[c.start + 4..c.start + 8].copy_from_slice(b"free");
                buf[c.start + c.header..c.start + c.size].fill(0);
                self.freed += 1;
            } else if CONTAINERS.contains(&&c.ty) {
                self.free_metadata(buf, c.start + c.header, c.start + c.size)?;
            }
        }
        Ok(())
    }

    /// Moves every chunk offset of the tables in `buf[from..to]`.
    fn move_offsets(
        &mut self,
        buf: &mut [u8],
        from: usize,
        to: usize,
        moved: &Moved,
    ) -> Result<(), MovieError> {
        for c in self.children(buf, from, to)? {
            let body = c.start + c.header..c.start + c.size;
            match &c.ty {
                b"stco" | b"co64" => patch_table(&mut buf[body], c.ty == *b"co64", moved)?,
                b"cmov" => return invalid("a compressed 'moov' ('cmov')"),
                // Offsets of auxiliary sample data (encryption): not moved here.
                b"saio" => return invalid("sample auxiliary offsets ('saio')"),
                _ if CONTAINERS.contains(&&c.ty) => {
                    self.move_offsets(buf, body.start, body.end, moved)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `stco` (32-bit) or `co64` (64-bit): version and flags, a count, the offsets.
fn patch_table(body: &mut [u8], wide: bool, moved: &Moved) -> Result<(), MovieError> {
    let width = if wide { 8 } else { 4 };
    let Some(count) = body.get(4..8) else {
        return invalid("a chunk offset table is cut off");
    };
    let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize;
    let entries = body
        .get_mut(8..)
        .filter(|e| count.checked_mul(width).is_some_and(|n| n <= e.len()))
        .ok_or_else(|| {
            MovieError::Invalid("a chunk offset table is shorter than its count".into())
        })?;
    for entry in entries.chunks_exact_mut(width).take(count) {
        if wide {
            let mut b = [0u8; 8];
            b.copy_from_slice(entry);
            let new = moved.map(u64::from_be_bytes(b))?;
            entry.copy_from_slice(&new.to_be_bytes());
        } else {
            let old = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let new = u32::try_from(moved.map(old.into())?).map_err(|_| {
                MovieError::Invalid("a 32-bit chunk offset would pass 4 GiB".into())
            })?;
            entry.copy_from_slice(&new.to_be_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    fn bx(ty: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(ty);
        v.extend_from_slice(body);
        v
    }

    fn stco(offsets: &[u32]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&(offsets.len() as u32).to_be_bytes());
        for o in offsets {
            body.extend_from_slice(&o.to_be_bytes());
        }
        bx(b"stco", &body)
    }

    fn movie(moov_last: bool, offsets: &[u32]) -> (Vec<u8>, usize) {
        let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isom");
        let udta = bx(
            b"udta",
            &bx(b"\xa9xyz", b"\0\x11\x15\xc7+37.5665+126.9780/"),
        );
        let stbl = bx(b"stbl", &stco(offsets));
        let trak = bx(b"trak", &bx(b"mdia", &bx(b"minf", &stbl)));
        let mut moov_body = trak;
        moov_body.extend(udta);
        let moov = bx(b"moov", &moov_body);
        let mdat = bx(b"mdat", b"FRAME-ONE.FRAME-TWO.");
        let mut file = ftyp.clone();
        if moov_last {
            file.extend(&mdat);
            file.extend(&moov);
        } else {
            file.extend(&moov);
            file.extend(&mdat);
        }
        (file, moov.len())
    }

    fn write(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.mp4");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn offsets_of(file: &[u8]) -> Vec<u32> {
        let at = file.windows(4).position(|w| w == b"stco").unwrap() + 8;
        let n = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| u32::from_be_bytes(file[at + 4 + 4 * i..at + 8 + 4 * i].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn moov_last_is_moved_first_with_its_offsets() {
        // ftyp is 20 bytes, mdat's header 8: the frames are at 28 and 38.
        let (src, moov_len) = movie(true, &[28, 38]);
        let (_dir, path) = write(&src);
        let done = clean(&path, MediaType::Mp4, true).unwrap();
        assert_eq!(
            done,
            Cleaned {
                freed: 1,
                moved: true
            }
        );
        let out = std::fs::read(&path).unwrap();
        assert_eq!(out.len(), src.len());
        assert_eq!(&out[24..28], b"moov");
        let offsets = offsets_of(&out);
        assert_eq!(offsets, vec![28 + moov_len as u32, 38 + moov_len as u32]);
        let at = offsets[0] as usize;
        assert_eq!(&out[at..at + 9], b"FRAME-ONE");
        assert!(!out.windows(8).any(|w| w == b"+37.5665"), "location freed");
        // A second pass has nothing left to do.
        assert_eq!(
            clean(&path, MediaType::Mp4, true).unwrap(),
            Cleaned::default()
        );
    }

    #[test]
    fn moov_first_is_freed_in_place() {
        let (src, _) = movie(false, &[100, 110]);
        let (_dir, path) = write(&src);
        let done = clean(&path, MediaType::Mp4, true).unwrap();
        assert_eq!(
            done,
            Cleaned {
                freed: 1,
                moved: false
            }
        );
        let out = std::fs::read(&path).unwrap();
        assert_eq!(out.len(), src.len());
        assert_eq!(offsets_of(&out), vec![100, 110]);
        assert!(out.windows(4).any(|w| w == b"free") && !out.windows(4).any(|w| w == b"udta"));
        // Without scrubbing, a moov-first file is left as it is.
        let (_dir2, path2) = write(&src);
        assert_eq!(
            clean(&path2, MediaType::Mp4, false).unwrap(),
            Cleaned::default()
        );
        assert_eq!(std::fs::read(&path2).unwrap(), src);
    }

    #[test]
    fn a_last_moov_sized_to_the_end_gets_its_size_when_moved() {
        // Found by the fuzz target `movie`: QuickTime without `ftyp`, an
        // empty `mdat`, then a `moov` of size 0 ("to the end of the file").
        let mut src = bx(b"mdat", b"");
        src.extend_from_slice(&[0, 0, 0, 0]);
        src.extend_from_slice(b"moov");
        src.extend(bx(b"free", b"trailing index bytes"));
        let (_dir, path) = write(&src);
        let done = clean(&path, MediaType::QuickTime, true).unwrap();
        assert!(done.moved);
        let out = std::fs::read(&path).unwrap();
        assert_eq!(&out[..8], &[0, 0, 0, 36, b'm', b'o', b'o', b'v']);
        assert_eq!(&out[36..44], &[0, 0, 0, 8, b'm', b'd', b'a', b't']);
        assert_eq!(
            clean(&path, MediaType::QuickTime, true).unwrap(),
            Cleaned::default()
        );
    }

    #[test]
    fn offsets_into_the_moov_and_broken_tables_are_refused() {
        let (src, _) = movie(true, &[60]);
        let (_dir, path) = write(&src);
        assert!(matches!(
            clean(&path, MediaType::Mp4, false),
            Err(MovieError::Invalid(_))
        ));
        let (mut src, _) = movie(true, &[28]);
        let at = src.windows(4).position(|w| w == b"stco").unwrap() + 8;
        src[at..at + 4].copy_from_slice(&1000u32.to_be_bytes());
        let (_dir, path) = write(&src);
        assert!(matches!(
            clean(&path, MediaType::Mp4, false),
            Err(MovieError::Invalid(_))
        ));
        // The file is left as it was on refusal.
        assert_eq!(std::fs::read(&path).unwrap(), src);
    }

    #[test]
    fn an_index_over_the_limit_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.mp4");
        let mut head = bx(b"ftyp", b"isom\0\0\x02\0isom");
        let moov = MAX_MOOV + 8;
        head.extend_from_slice(&(moov as u32).to_be_bytes());
        head.extend_from_slice(b"moov");
        std::fs::write(&path, &head).unwrap();
        // Sparse: the size is there, nothing is written.
        let f = File::options().write(true).open(&path).unwrap();
        f.set_len(head.len() as u64 - 8 + moov).unwrap();
        let e = clean(&path, MediaType::Mp4, true).unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn the_walk_is_bounded() {
        let mut body = Vec::new();
        for _ in 0..=MAX_BOXES {
            body.extend_from_slice(&bx(b"skip", b""));
        }
        let mut file = bx(b"ftyp", b"isom\0\0\x02\0isom");
        file.extend(bx(b"moov", &body));
        file.extend(bx(b"mdat", b""));
        let (_dir, path) = write(&file);
        let e = clean(&path, MediaType::Mp4, true).unwrap_err();
        assert!(e.to_string().contains("boxes in the 'moov'"), "{e}");
    }

    #[test]
    fn the_corpus_phone_video_loses_its_location_in_place() {
        let src = corpus("video_1280x720_rot90_hevc_3s.mov");
        let (_dir, path) = write(&src);
        let done = clean(&path, MediaType::QuickTime, true).unwrap();
        assert!(done.freed >= 2 && !done.moved, "{done:?}");
        let out = std::fs::read(&path).unwrap();
        assert_eq!(out.len(), src.len());
        for needle in [&b"+37.5665"[..], b"ISO6709", b"iPhone"] {
            assert!(src.windows(needle.len()).any(|w| w == needle));
            assert!(!out.windows(needle.len()).any(|w| w == needle));
        }
    }
}
