//! Uploads stored safe to publish: EXIF (all but the orientation), GPS,
//! XMP, IPTC, comments and trailing data removed by rewriting the container
//! around the untouched compressed image data — the decoded pixels are
//! identical — while the colour profile stays. JPEG, PNG and WebP here;
//! HEIC/HEIF and AVIF by overwriting their metadata items in place
//! ([`heif`]).
//!
//! Hand-written, on purpose: the crate for this (img-parts) keeps everything
//! after a JPEG's first scan verbatim — later scans' comments and APPn
//! segments, and the trailers after EOI where phones put a second JPEG
//! with its own EXIF and GPS (MPF, motion photos). These walks are linear,
//! allocate at most the output, and refuse what does not parse.

mod heif;

use super::UploadError;
use crate::media_type::MediaType;
use crate::transform::TransformError;
use crate::transform::exif;

/// The rewritten file, or `None` when there was nothing to remove.
pub fn scrub(src: &[u8], media: MediaType) -> Result<Option<Vec<u8>>, UploadError> {
    let out = match media {
        MediaType::Jpeg => jpeg(src),
        MediaType::Png => png(src),
        MediaType::Webp => webp(src),
        MediaType::Heic | MediaType::Heif | MediaType::Avif => heif::scrub(src),
        _ => return Ok(None),
    }
    .map_err(|why| TransformError::Undecodable(format!("metadata removal: {why}")))?;
    Ok((out != src).then_some(out))
}

/// A minimal EXIF block (TIFF structure) holding only the orientation; for
/// upright (1) an empty IFD0, as nothing of the original may remain.
fn orientation_exif(orientation: u8) -> Vec<u8> {
    if orientation == 1 {
        return b"MM\0\x2a\0\0\0\x08\0\0\0\0\0\0".to_vec();
    }
    let mut t = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    t.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1, 0, orientation, 0, 0]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    t
}

fn be16(b: &[u8], at: usize) -> Result<usize, &'static str> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
        .ok_or("truncated")
}

/// JPEG: keeps APP0 (JFIF), APP2 `ICC_PROFILE`, APP14 (Adobe: needed to
/// decode CMYK) and every coding segment and scan; drops every other APPn
/// and COM wherever they stand, and anything after EOI. An orientation
/// other than 1 is kept in a minimal EXIF segment.
fn jpeg(src: &[u8]) -> Result<Vec<u8>, &'static str> {
    if !src.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG");
    }
    let mut kept: Vec<u8> = Vec::with_capacity(src.len());
    let mut orientation = 1;
    let mut i = 2;
    loop {
        if src.get(i) != Some(&0xFF) {
            return Err("marker expected");
        }
        while src.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *src.get(i).ok_or("truncated")?;
        i += 1;
        match marker {
            0xD9 => break,
            // A stuffed byte after fill bytes ("FF FF 00" at the end of a
            // scan) is not a marker; guessing a length for it would make
            // the output depend on how many fill bytes came before.
            0x00 => return Err("invalid marker"),
            0x01 | 0xD0..=0xD7 => {
                kept.extend_from_slice(&[0xFF, marker]);
                continue;
            }
            _ => {}
        }
        let len = be16(src, i)?;
        let end = i
            .checked_add(len)
            .filter(|&e| len >= 2 && e <= src.len())
            .ok_or("truncated")?;
        let body = &src[i + 2..end];
        let keep = match marker {
            0xE1 if body.starts_with(b"Exif\0\0") => {
                orientation = exif::orientation(body);
                false
            }
            0xE2 => body.starts_with(b"ICC_PROFILE\0"),
            0xE0 | 0xEE => true,
            0xE1 | 0xE3..=0xED | 0xEF | 0xFE => false,
            _ => true,
        };
        if keep {
            kept.extend_from_slice(&src[i - 2..end]);
        }
        i = end;
        if marker == 0xDA {
            // Entropy-coded data runs to the next marker that is neither a
            // stuffed 0xFF00 nor a restart marker.
            let start = i;
            while i + 1 < src.len()
                && !(src[i] == 0xFF && src[i + 1] != 0 && !(0xD0..=0xD7).contains(&src[i + 1]))
            {
                i += 1;
            }
            if i + 1 >= src.len() {
                return Err("scan runs past the end");
            }
            kept.extend_from_slice(&src[start..i]);
        }
    }
    let mut out = Vec::with_capacity(kept.len() + 40);
    out.extend_from_slice(&[0xFF, 0xD8]);
    if orientation != 1 {
        let exif = [b"Exif\0\0".as_slice(), &orientation_exif(orientation)].concat();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&exif);
    }
    out.extend_from_slice(&kept);
    out.extend_from_slice(&[0xFF, 0xD9]);
    Ok(out)
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// PNG: drops `eXIf` (an orientation other than 1 is kept in a minimal one
/// after IHDR), `tEXt`, `zTXt`, `iTXt` (XMP lives there) and `tIME`, and
/// anything after IEND; every other chunk, `iCCP` and the IDATs included,
/// is copied byte for byte.
fn png(src: &[u8]) -> Result<Vec<u8>, &'static str> {
    if !src.starts_with(PNG_SIGNATURE) {
        return Err("not a PNG");
    }
    let mut orientation = 1;
    let mut chunks: Vec<(&[u8; 4], &[u8])> = Vec::new();
    let mut i = PNG_SIGNATURE.len();
    loop {
        let head = src.get(i..i + 8).ok_or("truncated")?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind: &[u8; 4] = head[4..8].try_into().map_err(|_| "truncated")?;
        let end = (i + 8)
            .checked_add(len)
            .and_then(|e| e.checked_add(4))
            .filter(|&e| e <= src.len())
            .ok_or("truncated")?;
        let data = &src[i + 8..end - 4];
        match kind {
            b"eXIf" => orientation = exif::orientation(data),
            b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => {}
            _ => chunks.push((kind, &src[i..end])),
        }
        i = end;
        if kind == b"IEND" {
            break;
        }
    }
    let mut out = Vec::with_capacity(src.len());
    out.extend_from_slice(PNG_SIGNATURE);
    for (n, (_, whole)) in chunks.iter().enumerate() {
        out.extend_from_slice(whole);
        if n == 0 && orientation != 1 {
            png_chunk(&mut out, b"eXIf", &orientation_exif(orientation));
        }
    }
    Ok(out)
}

/// WebP: drops the `EXIF` and `XMP ` chunks and clears their VP8X flags
/// (an orientation other than 1 is kept in a minimal `EXIF` chunk), and
/// anything after the RIFF size; `ICCP`, `ANIM`/`ANMF`, `ALPH` and the
/// bitstream are copied byte for byte. A simple (non-VP8X) WebP has no
/// metadata to remove.
fn webp(src: &[u8]) -> Result<Vec<u8>, &'static str> {
    if src.len() < 12 || &src[0..4] != b"RIFF" || &src[8..12] != b"WEBP" {
        return Err("not a WebP");
    }
    let riff_end = (u32::from_le_bytes([src[4], src[5], src[6], src[7]]) as usize)
        .checked_add(8)
        .filter(|&e| e <= src.len())
        .ok_or("truncated")?;
    let mut orientation = 1;
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut i = 12;
    while i + 8 <= riff_end {
        let kind = &src[i..i + 4];
        let len = u32::from_le_bytes([src[i + 4], src[i + 5], src[i + 6], src[i + 7]]) as usize;
        let end = (i + 8)
            .checked_add(len + (len & 1))
            .filter(|&e| e <= riff_end)
            .ok_or("truncated")?;
        match kind {
            b"EXIF" => orientation = exif::orientation(&src[i + 8..i + 8 + len]),
            b"XMP " => {}
            _ => chunks.push(&src[i..end]),
        }
        i = end;
    }
    let mut body: Vec<u8> = Vec::with_capacity(riff_end);
    for c in &chunks {
        if c.starts_with(b"VP8X") && c.len() >= 9 {
            let mut vp8x = c.to_vec();
            // Flags: 0x08 EXIF, 0x04 XMP.
            vp8x[8] &= !0x04;
            if orientation == 1 {
                vp8x[8] &= !0x08;
            }
            body.extend_from_slice(&vp8x);
        } else {
            body.extend_from_slice(c);
        }
    }
    let has_vp8x = chunks.first().is_some_and(|c| c.starts_with(b"VP8X"));
    if orientation != 1 && has_vp8x {
        let exif = orientation_exif(orientation);
        body.extend_from_slice(b"EXIF");
        body.extend_from_slice(&(exif.len() as u32).to_le_bytes());
        body.extend_from_slice(&exif);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn jpeg_loses_exif_and_keeps_its_orientation_and_scans() {
        let src = corpus("photo_4032x3024_orient6.jpg");
        let out = scrub(&src, MediaType::Jpeg).unwrap().expect("rewritten");
        assert!(out.len() < src.len());
        assert_eq!(crate::transform::exif::orientation(&out[6..]), 6);
        // One EXIF block left, ours (34 bytes: no GPS, no thumbnail).
        assert_eq!(out.windows(6).filter(|w| w == b"Exif\0\0").count(), 1);
        assert_eq!(&out[2..6], &[0xFF, 0xE1, 0, 34]);
        // Scrubbing again changes nothing: the result is a fixed point.
        assert_eq!(scrub(&out, MediaType::Jpeg).unwrap(), None);
    }

    #[test]
    fn png_and_webp_lose_text_and_exif_and_keep_icc() {
        for (file, media, icc) in [
            ("png_gps_1200x750.png", MediaType::Png, b"iCCP".as_slice()),
            (
                "webp_gps_1600x1067.webp",
                MediaType::Webp,
                b"ICCP".as_slice(),
            ),
        ] {
            let src = corpus(file);
            let out = scrub(&src, media).unwrap().expect("rewritten");
            assert!(contains(&out, icc), "{file}: profile kept");
            for gone in [
                b"eXIf".as_slice(),
                b"EXIF",
                b"XMP ",
                b"iTXt",
                b"tEXt",
                b"City",
            ] {
                assert!(!contains(&out, gone), "{file}: {gone:?} left");
            }
            assert_eq!(scrub(&out, media).unwrap(), None, "{file}: fixed point");
        }
    }

    #[test]
    fn broken_files_are_refused_not_guessed() {
        let src = corpus("photo_4032x3024_orient1.jpg");
        assert!(scrub(&src[..src.len() / 2], MediaType::Jpeg).is_err());
        assert!(scrub(b"\xFF\xD8\xFF\xE1\xFF\xFF", MediaType::Jpeg).is_err());
        let png = corpus("png_gps_1200x750.png");
        assert!(scrub(&png[..100], MediaType::Png).is_err());
        assert!(scrub(b"RIFF\xFF\xFF\xFF\xFFWEBP", MediaType::Webp).is_err());
        assert_eq!(scrub(b"GIF89a", MediaType::Gif).unwrap(), None);
        // Fill bytes, then a stuffed zero where a marker must be (found by
        // the fuzz target scrub: it was kept as a segment, not a fixed point).
        let fuzzed = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/seeds/scrub/jpeg-fill-then-stuffed-zero"
        ))
        .unwrap();
        assert_eq!(jpeg(&fuzzed), Err("invalid marker"));
        assert!(scrub(&fuzzed, MediaType::Jpeg).is_err());
    }
}
