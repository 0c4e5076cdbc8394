//! HEIC/HEIF and AVIF: metadata lives in items of the top-level `meta` box
//! — `Exif` items (GPS, camera, dates) and `mime` items of type
//! `application/rdf+xml` (XMP) — whose bytes `iloc` places in an `mdat` or
//! in `idat`. Their bytes are overwritten in place with a minimal EXIF
//! (only the orientation) or an empty XMP packet, padded to the same
//! length: no box grows or shrinks and no `iloc` offset moves, so every
//! other byte of the file — image items, `irot`/`imir`, colour — is
//! untouched. An XMP `uuid` box at the top level is blanked the same way.
//!
//! Hand-written, on purpose: libheif (our decoder) can read metadata but
//! writes files only by encoding them again, and no crate edits HEIF items
//! in place. The walk reads only box headers and the two item tables,
//! bounded by [`MAX_ITEMS`] and [`MAX_EXTENTS`], and refuses a metadata item
//! whose bytes are not wholly inside `mdat`/`idat` or that share bytes with
//! any other item (overwriting them would change the picture).

use super::orientation_exif;
use crate::transform::exif;

/// Items looked at; the decoder refuses files with more (heif.rs).
pub const MAX_ITEMS: usize = 4096;
/// Extents over all items: an iPhone HEIC has about fifty; an extent may
/// take no bytes in `iloc`, so without this a small file could describe
/// billions.
pub const MAX_EXTENTS: usize = 16384;

/// XMP's `uuid` box type (Adobe's XMP specification, part 3).
const XMP_UUID: [u8; 16] = [
    0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC,
];
const EMPTY_XMP_HEAD: &[u8] =
    b"<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
const EMPTY_XMP_TAIL: &[u8] = b"<?xpacket end=\"w\"?>";

type Fault = &'static str;

/// One box: where its payload starts and where it ends.
#[derive(Debug, Clone, Copy)]
struct Bx {
    kind: [u8; 4],
    head: usize,
    body: usize,
    end: usize,
}

fn be(b: &[u8], at: usize, n: usize) -> Result<u64, Fault> {
    let s = b
        .get(at..at.checked_add(n).ok_or("truncated")?)
        .ok_or("truncated")?;
    Ok(s.iter().fold(0u64, |v, &x| (v << 8) | x as u64))
}

/// The boxes between `from` and `to`, in order.
fn boxes(b: &[u8], from: usize, to: usize) -> Result<Vec<Bx>, Fault> {
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let size = be(b, at, 4)?;
        let kind: [u8; 4] = b
            .get(at + 4..at + 8)
            .ok_or("truncated")?
            .try_into()
            .map_err(|_| "truncated")?;
        let (body, end) = match size {
            0 => (at + 8, to),
            1 => (
                at + 16,
                usize::try_from(be(b, at + 8, 8)?)
                    .map_err(|_| "box too large")?
                    .checked_add(at)
                    .ok_or("box too large")?,
            ),
            n => (
                at + 8,
                usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_add(at))
                    .ok_or("box too large")?,
            ),
        };
        if end < body || end > to {
            return Err("box runs past its parent");
        }
        out.push(Bx {
            kind,
            head: at,
            body,
            end,
        });
        if out.len() > MAX_ITEMS * 2 {
            return Err("too many boxes");
        }
        at = end;
    }
    Ok(out)
}

/// A NUL-terminated string at `at`, and where the next field starts.
fn cstr(b: &[u8], at: usize, end: usize) -> Result<(&[u8], usize), Fault> {
    let s = b.get(at..end).ok_or("truncated")?;
    let n = s
        .iter()
        .position(|&c| c == 0)
        .ok_or("unterminated string")?;
    Ok((&s[..n], at + n + 1))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Meta {
    Exif,
    Xmp,
}

/// `iinf`: the metadata items' IDs.
fn metadata_items(b: &[u8], iinf: Bx) -> Result<Vec<(u32, Meta)>, Fault> {
    let version = *b.get(iinf.body).ok_or("truncated")?;
    let first = iinf.body + 4 + if version == 0 { 2 } else { 4 };
    let mut found = Vec::new();
    for infe in boxes(b, first.min(iinf.end), iinf.end)? {
        if &infe.kind != b"infe" {
            continue;
        }
        let v = *b.get(infe.body).ok_or("truncated")?;
        let at = infe.body + 4;
        let (id, kind) = match v {
            0 | 1 => {
                let id = be(b, at, 2)? as u32;
                let (_, next) = cstr(b, at + 4, infe.end)?;
                let (content_type, _) = cstr(b, next, infe.end)?;
                (
                    id,
                    (content_type == b"application/rdf+xml").then_some(Meta::Xmp),
                )
            }
            _ => {
                let id_len = if v == 2 { 2 } else { 4 };
                let id = be(b, at, id_len)? as u32;
                let ty = b.get(at + id_len + 2..at + id_len + 6).ok_or("truncated")?;
                let (_, next) = cstr(b, at + id_len + 6, infe.end)?;
                let kind = match ty {
                    b"Exif" => Some(Meta::Exif),
                    b"mime" if cstr(b, next, infe.end)?.0 == b"application/rdf+xml" => {
                        Some(Meta::Xmp)
                    }
                    _ => None,
                };
                (id, kind)
            }
        };
        if let Some(kind) = kind {
            found.push((id, kind));
        }
    }
    Ok(found)
}

/// One item's bytes, as `iloc` places them: file ranges, or `None` for an
/// item built from other items (construction method 2).
struct Located {
    id: u32,
    ranges: Option<Vec<(usize, usize)>>,
}

/// `iloc`: every item's byte ranges in the file.
fn locations(b: &[u8], iloc: Bx, idat: Option<Bx>) -> Result<Vec<Located>, Fault> {
    let version = *b.get(iloc.body).ok_or("truncated")?;
    if version > 2 {
        return Err("unknown iloc version");
    }
    let sizes = be(b, iloc.body + 4, 2)? as usize;
    let (off_len, len_len, base_len) = (sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15);
    let idx_len = if version == 0 { 0 } else { sizes & 15 };
    for n in [off_len, len_len, base_len, idx_len] {
        if ![0, 4, 8].contains(&n) {
            return Err("bad iloc field size");
        }
    }
    let id_len = if version < 2 { 2 } else { 4 };
    let mut at = iloc.body + 6;
    let count = be(b, at, id_len)? as usize;
    at += id_len;
    if count > MAX_ITEMS {
        return Err("too many items");
    }
    let mut items = Vec::with_capacity(count);
    let mut extents = 0usize;
    let read = |at: &mut usize, n: usize| -> Result<u64, Fault> {
        if *at + n > iloc.end {
            return Err("truncated iloc");
        }
        let v = be(b, *at, n)?;
        *at += n;
        Ok(v)
    };
    for _ in 0..count {
        let id = read(&mut at, id_len)? as u32;
        let method = if version == 0 {
            0
        } else {
            read(&mut at, 2)? & 15
        };
        if read(&mut at, 2)? != 0 {
            return Err("item data in another file");
        }
        let base = read(&mut at, base_len)?;
        let n = read(&mut at, 2)? as usize;
        extents += n;
        if extents > MAX_EXTENTS {
            return Err("too many extents");
        }
        let origin = match (method, idat) {
            (0, _) => Some((0usize, b.len())),
            (1, Some(d)) => Some((d.body, d.end)),
            (1, None) => return Err("idat item without idat"),
            (2, _) => None,
            _ => return Err("unknown construction method"),
        };
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            read(&mut at, idx_len)?;
            let off = read(&mut at, off_len)?;
            let len = read(&mut at, len_len)?;
            if let Some((start, end)) = origin {
                let from = base
                    .checked_add(off)
                    .and_then(|o| usize::try_from(o).ok())
                    .and_then(|o| o.checked_add(start))
                    .ok_or("extent out of range")?;
                let to = match len {
                    0 => end,
                    l => usize::try_from(l)
                        .ok()
                        .and_then(|l| from.checked_add(l))
                        .ok_or("extent out of range")?,
                };
                if from > to || to > end {
                    return Err("extent outside the file");
                }
                ranges.push((from, to));
            }
        }
        items.push(Located {
            id,
            ranges: origin.map(|_| ranges),
        });
    }
    Ok(items)
}

/// The file with every metadata item blanked, or an error when its
/// structure does not allow that safely.
pub fn scrub(src: &[u8]) -> Result<Vec<u8>, Fault> {
    let top = boxes(src, 0, src.len())?;
    if top.first().map(|b| &b.kind) != Some(b"ftyp") {
        return Err("not an ISO-BMFF image");
    }
    let mut out = src.to_vec();
    for uuid in top.iter().filter(|b| &b.kind == b"uuid") {
        if src.get(uuid.body..uuid.body + 16) == Some(&XMP_UUID) {
            out[uuid.head + 4..uuid.head + 8].copy_from_slice(b"free");
            out[uuid.body..uuid.end].fill(0);
        }
    }
    let Some(meta) = top.iter().find(|b| &b.kind == b"meta") else {
        return Ok(out);
    };
    let children = boxes(src, (meta.body + 4).min(meta.end), meta.end)?;
    let child = |k: &[u8; 4]| children.iter().find(|b| &b.kind == k).copied();
    let (Some(iinf), Some(iloc)) = (child(b"iinf"), child(b"iloc")) else {
        return Ok(out);
    };
    let wanted = metadata_items(src, iinf)?;
    if wanted.is_empty() {
        return Ok(out);
    }
    let idat = child(b"idat");
    let located = locations(src, iloc, idat)?;
    let mdats: Vec<(usize, usize)> = top
        .iter()
        .filter(|b| &b.kind == b"mdat")
        .map(|b| (b.body, b.end))
        .collect();
    let inside_data = |(from, to): (usize, usize)| {
        mdats
            .iter()
            .chain(idat.map(|d| (d.body, d.end)).iter())
            .any(|&(s, e)| s <= from && to <= e)
    };
    let others: Vec<(usize, usize)> = located
        .iter()
        .filter(|l| !wanted.iter().any(|w| w.0 == l.id))
        .flat_map(|l| l.ranges.iter().flatten().copied())
        .collect();
    for (id, kind) in wanted {
        let Some(item) = located.iter().find(|l| l.id == id) else {
            continue; // no data
        };
        let ranges = item
            .ranges
            .as_ref()
            .ok_or("metadata built from other items")?;
        for &r in ranges {
            if !inside_data(r) {
                return Err("metadata outside mdat and idat");
            }
            if others.iter().any(|o| r.0 < o.1 && o.0 < r.1) {
                return Err("metadata shares bytes with another item");
            }
        }
        let total: usize = ranges.iter().map(|r| r.1 - r.0).sum();
        let blank = match kind {
            Meta::Exif => {
                let head: Vec<u8> = ranges
                    .iter()
                    .flat_map(|r| &src[r.0..r.1])
                    .take(exif::MAX_BYTES + 4)
                    .copied()
                    .collect();
                blank_exif(&head, total)
            }
            Meta::Xmp => blank_xmp(total),
        };
        let mut from = 0;
        for &(s, e) in ranges {
            out[s..e].copy_from_slice(&blank[from..from + (e - s)]);
            from += e - s;
        }
    }
    Ok(out)
}

/// An `Exif` item's payload (a 4-byte offset to the TIFF header, then
/// EXIF) replaced by one holding only its orientation (none when upright),
/// zero-padded to `len`.
fn blank_exif(old: &[u8], len: usize) -> Vec<u8> {
    let skip = be(old, 0, 4)
        .ok()
        .and_then(|o| usize::try_from(o).ok())
        .and_then(|o| o.checked_add(4));
    let orientation = skip.and_then(|s| old.get(s..)).map_or(1, exif::orientation);
    let mut new = vec![0u8; 4];
    new.extend_from_slice(&orientation_exif(orientation));
    if new.len() > len {
        new.clear();
    }
    new.resize(len, 0);
    new
}

/// An empty XMP packet padded with spaces to `len` (spaces only when even
/// the empty packet does not fit).
fn blank_xmp(len: usize) -> Vec<u8> {
    let bare = EMPTY_XMP_HEAD.len() + EMPTY_XMP_TAIL.len();
    if len < bare {
        return vec![b' '; len];
    }
    let mut new = EMPTY_XMP_HEAD.to_vec();
    new.resize(len - EMPTY_XMP_TAIL.len(), b' ');
    new.extend_from_slice(EMPTY_XMP_TAIL);
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type::MediaType;
    use crate::test_support::corpus;
    use crate::transform::{Job, TransformSpec, process};
    use crate::variant::{Fit, OutputFormat};

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        [
            &((body.len() + 8) as u32).to_be_bytes(),
            kind.as_slice(),
            body,
        ]
        .concat()
    }

    fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        bx(kind, &[&[version, 0, 0, 0], body].concat())
    }

    fn infe(id: u16, ty: &[u8; 4], content_type: &str) -> Vec<u8> {
        let mut b = id.to_be_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(ty);
        b.push(0);
        if ty == b"mime" {
            b.extend_from_slice(content_type.as_bytes());
            b.push(0);
        }
        full(b"infe", 2, &b)
    }

    const XMP: &[u8] = b"<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\
        <x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF><photoshop:City>Tokyo</photoshop:City>\
        </rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>";

    /// A HEIF-shaped file: item 1 (image data) in `mdat`, item 2 (EXIF with
    /// GPS-like text and orientation 6) and item 3 (XMP) in `idat`; `exif_at`
    /// moves item 2 to another offset of idat (construction method 1).
    fn heif_like(exif_method: u16, exif_off: u32) -> Vec<u8> {
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
        tiff.extend_from_slice(b"GPS 35.6586 N 139.7454 E");
        let exif = [&[0u8, 0, 0, 0][..], &tiff].concat();
        let idat_body = [exif.as_slice(), XMP].concat();
        let iinf = full(
            b"iinf",
            0,
            &[
                &3u16.to_be_bytes()[..],
                &infe(1, b"hvc1", ""),
                &infe(2, b"Exif", ""),
                &infe(3, b"mime", "application/rdf+xml"),
            ]
            .concat(),
        );
        let ftyp = bx(b"ftyp", b"heic\0\0\0\0mif1heic");
        // iloc v1: offset 4, length 4, base 0, index 0.
        let iloc_len = 4 + 2 + 2 + 3 * (2 + 2 + 2 + 2 + 8) as usize + 8;
        let meta_len = 12 + iinf.len() + iloc_len + 8 + idat_body.len();
        let mdat_start = ftyp.len() + meta_len;
        let mut iloc = vec![0x44, 0x00];
        iloc.extend_from_slice(&3u16.to_be_bytes());
        let mut item = |id: u16, method: u16, off: u32, len: u32| {
            iloc.extend_from_slice(&id.to_be_bytes());
            iloc.extend_from_slice(&method.to_be_bytes());
            iloc.extend_from_slice(&[0, 0, 0, 1]);
            iloc.extend_from_slice(&off.to_be_bytes());
            iloc.extend_from_slice(&len.to_be_bytes());
        };
        item(1, 0, mdat_start as u32 + 8, 96);
        item(2, exif_method, exif_off, exif.len() as u32);
        item(3, 1, exif.len() as u32, XMP.len() as u32);
        let iloc = full(b"iloc", 1, &iloc);
        assert_eq!(iloc.len(), iloc_len);
        let meta = full(b"meta", 0, &[iinf, iloc, bx(b"idat", &idat_body)].concat());
        assert_eq!(meta.len(), meta_len);
        [ftyp, meta, bx(b"mdat", &[7u8; 96])].concat()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn exif_and_xmp_items_are_blanked_in_place_keeping_the_orientation() {
        let src = heif_like(1, 0);
        let out = scrub(&src).unwrap();
        assert_eq!(out.len(), src.len());
        assert!(!contains(&out, b"GPS") && !contains(&out, b"Tokyo"));
        assert!(
            contains(&out, EMPTY_XMP_HEAD),
            "an empty packet in its place"
        );
        // The image item's bytes and every box header are unchanged.
        assert_eq!(out[out.len() - 40..], src[src.len() - 40..]);
        let exif_at = src.windows(4).position(|w| w == b"MM\0\x2a").unwrap();
        assert_eq!(exif::orientation(&out[exif_at..]), 6);
        assert_eq!(scrub(&out).unwrap(), out, "a fixed point");
    }

    /// An `iloc` listing more items than [`MAX_ITEMS`], or more extents in
    /// all than [`MAX_EXTENTS`] (which cost no bytes each with zero-size
    /// fields), is refused before anything is collected.
    #[test]
    fn item_and_extent_counts_are_bounded() {
        let with_iloc = |iloc: Vec<u8>| {
            let iinf = full(
                b"iinf",
                0,
                &[&1u16.to_be_bytes()[..], &infe(1, b"Exif", "")].concat(),
            );
            let meta = full(b"meta", 0, &[iinf, full(b"iloc", 1, &iloc)].concat());
            [bx(b"ftyp", b"heic\0\0\0\0mif1heic"), meta].concat()
        };
        // version 1, all field sizes 0, then the item count.
        let mut many_items = vec![0, 0];
        many_items.extend_from_slice(&(MAX_ITEMS as u16 + 1).to_be_bytes());
        assert_eq!(scrub(&with_iloc(many_items)), Err("too many items"));
        // Two items of 65535 zero-byte extents each: over MAX_EXTENTS.
        let mut many_extents = vec![0, 0, 0, 2];
        for id in 1..=2u16 {
            many_extents.extend_from_slice(&id.to_be_bytes());
            many_extents.extend_from_slice(&[0, 0, 0, 0, 0xFF, 0xFF]);
        }
        assert_eq!(scrub(&with_iloc(many_extents)), Err("too many extents"));
    }

    /// The fuzz seed with an XMP `uuid` box at the top level.
    #[test]
    fn a_top_level_xmp_box_becomes_free_space() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/seeds/scrub/heif-xmp-uuid"
        );
        let src = std::fs::read(path).unwrap();
        assert_eq!(src.windows(5).filter(|w| w == b"Tokyo").count(), 2);
        let out = scrub(&src).unwrap();
        assert!(!contains(&out, b"Tokyo") && contains(&out, b"free"));
        assert_eq!(out.len(), src.len());
    }

    #[test]
    fn metadata_over_image_bytes_or_outside_the_data_is_refused() {
        let src = heif_like(0, 0);
        // Item 2 at file offset 0: the ftyp box, outside mdat and idat.
        assert_eq!(scrub(&src), Err("metadata outside mdat and idat"));
        let mdat_data = (src.len() - 96) as u32;
        let src = heif_like(0, mdat_data);
        assert_eq!(scrub(&src), Err("metadata shares bytes with another item"));
        assert!(scrub(&src[..src.len() - 40]).is_err());
    }

    #[test]
    fn phone_heic_and_avif_lose_their_exif_and_decode_identically() {
        for (file, media) in [
            ("heic_4032x3024_orient6_gps.heic", MediaType::Heic),
            ("avif_4032x3024_orient8.avif", MediaType::Avif),
        ] {
            let src = corpus(file);
            let out = scrub(&src).unwrap();
            assert_eq!(out.len(), src.len());
            assert!(!contains(&out, b"CorpusPhone"), "{file}");
            assert!(contains(&src, b"CorpusPhone"), "{file}");
            assert_eq!(scrub(&out).unwrap(), out, "{file}: a fixed point");
            let spec = TransformSpec::new(Some(300), Some(300), Fit::Inside, OutputFormat::Png, 80);
            let job = Job::unbounded();
            let a = process(&src, media, &spec, &job).unwrap();
            let b = process(&out, media, &spec, &job).unwrap();
            assert_eq!((a.width, a.height), (225, 300), "{file}: upright");
            assert_eq!(a.bytes, b.bytes, "{file}: same pixels");
        }
    }
}
