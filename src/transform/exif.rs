//! The one EXIF field the pipeline needs, the Orientation tag (0x0112),
//! read from IFD0 by a small bounded parser. Everything else in EXIF is
//! opaque to us.
//!
//! Hand-written on purpose: a general EXIF reader (kamadak-exif, which this
//! replaced) follows every `ExifIFDPointer`/`InteropIFDPointer` it finds,
//! and an 18 KB JPEG whose IFDs repeat those pointers hundreds of times made
//! its work and memory grow as N×M×K until the allocator aborted the
//! process. This parser reads one IFD, follows no pointer at all (so no IFD
//! is ever visited twice), looks at no more than [`MAX_ENTRIES`] entries and
//! [`MAX_BYTES`] bytes, and allocates nothing.

/// Entries of IFD0 looked at; real files have a few dozen.
pub const MAX_ENTRIES: usize = 512;
/// Bytes of the EXIF block looked at (a JPEG APP1 segment holds at most
/// 64 KiB; PNG and WebP chunks could be larger, the rest is ignored).
pub const MAX_BYTES: usize = 64 << 10;

const ORIENTATION: u16 = 0x0112;
const TYPE_SHORT: u16 = 3;
const TYPE_LONG: u16 = 4;

/// The Orientation (1..=8) in a raw EXIF block (TIFF structure, with or
/// without the JPEG-style `Exif\0\0` prefix); 1 when absent or invalid.
pub fn orientation(exif: &[u8]) -> u8 {
    let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(exif);
    let tiff = &tiff[..tiff.len().min(MAX_BYTES)];
    read_orientation(tiff).unwrap_or(1)
}

fn read_orientation(tiff: &[u8]) -> Option<u8> {
    let big_endian = match tiff.get(0..2)? {
        b"II" => false,
        b"MM" => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd0 = u32_at(4)? as usize;
    let count = (u16_at(ifd0)? as usize).min(MAX_ENTRIES);
    for i in 0..count {
        let entry = ifd0.checked_add(2 + i * 12)?;
        if u16_at(entry)? != ORIENTATION {
            continue;
        }
        // One SHORT (or, from some writers, one LONG) stored in the value field.
        let value = match (u16_at(entry + 2)?, u32_at(entry + 4)?) {
            (TYPE_SHORT, n) if n >= 1 => u16_at(entry + 8)? as u32,
            (TYPE_LONG, n) if n >= 1 => u32_at(entry + 8)?,
            _ => return None,
        };
        return (1..=8).contains(&value).then_some(value as u8);
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TIFF block: IFD0 with `entries` (tag, type, count, value bytes).
    pub fn tiff(big_endian: bool, entries: &[(u16, u16, u32, [u8; 4])]) -> Vec<u8> {
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut t = if big_endian {
            b"MM".to_vec()
        } else {
            b"II".to_vec()
        };
        t.extend_from_slice(&w16(42));
        t.extend_from_slice(&w32(8));
        t.extend_from_slice(&w16(entries.len() as u16));
        for (tag, ty, n, value) in entries {
            t.extend_from_slice(&w16(*tag));
            t.extend_from_slice(&w16(*ty));
            t.extend_from_slice(&w32(*n));
            t.extend_from_slice(value);
        }
        t.extend_from_slice(&w32(0));
        t
    }

    fn short(v: u16, big_endian: bool) -> [u8; 4] {
        let b = if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        [b[0], b[1], 0, 0]
    }

    #[test]
    fn both_byte_orders_and_the_prefix() {
        for be in [false, true] {
            let t = tiff(
                be,
                &[(0x010f, 2, 4, *b"Sony"), (ORIENTATION, 3, 1, short(6, be))],
            );
            assert_eq!(orientation(&t), 6);
            let mut prefixed = b"Exif\0\0".to_vec();
            prefixed.extend_from_slice(&t);
            assert_eq!(orientation(&prefixed), 6);
        }
        let long = tiff(false, &[(ORIENTATION, 4, 1, 8u32.to_le_bytes())]);
        assert_eq!(orientation(&long), 8);
    }

    #[test]
    fn invalid_or_absent_is_one() {
        assert_eq!(orientation(b""), 1);
        assert_eq!(orientation(b"garbage"), 1);
        assert_eq!(orientation(&tiff(false, &[])), 1);
        assert_eq!(
            orientation(&tiff(false, &[(ORIENTATION, 3, 1, short(9, false))])),
            1
        );
        assert_eq!(
            orientation(&tiff(false, &[(ORIENTATION, 3, 1, short(0, false))])),
            1
        );
        assert_eq!(
            orientation(&tiff(false, &[(ORIENTATION, 2, 1, short(6, false))])),
            1
        );
        // IFD0 offset past the end, entry count past the end.
        let mut t = tiff(false, &[(ORIENTATION, 3, 1, short(6, false))]);
        t[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(orientation(&t), 1);
        let mut t = tiff(false, &[(ORIENTATION, 3, 1, short(6, false))]);
        t[8..10].copy_from_slice(&[0xff, 0xff]);
        t.truncate(19);
        assert_eq!(orientation(&t), 1);
    }

    /// The shape that aborted the process through kamadak-exif: IFD0 made
    /// of hundreds of ExifIFDPointer entries that all point at one Exif IFD
    /// made of InteropIFDPointers. We read IFD0's entries and nothing more.
    #[test]
    fn nested_pointer_bomb_is_one_pass_over_ifd0() {
        let ptr = |tag| (tag, TYPE_LONG, 1, 8u32.to_le_bytes());
        let mut entries: Vec<_> = (0..500).map(|_| ptr(0x8769)).collect();
        entries.push((ORIENTATION, 3, 1, short(3, false)));
        assert_eq!(orientation(&tiff(false, &entries)), 3);
        // Past MAX_ENTRIES the tag is not looked for.
        let mut entries: Vec<_> = (0..MAX_ENTRIES).map(|_| ptr(0xa005)).collect();
        entries.push((ORIENTATION, 3, 1, short(3, false)));
        assert_eq!(orientation(&tiff(false, &entries)), 1);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_a_valid_orientation(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let o = orientation(&bytes);
            proptest::prop_assert!((1..=8).contains(&o));
        }
    }
}
