//! EXIF orientation, applied: turn the resized image upright (the tag is
//! read by `exif.rs`). Applied after the resize, where the image is smallest.

use super::pixels::{Pixels, Samples};

/// Rotates/flips an 8-bit image so that it displays upright.
///
/// Hand-written because it is a single index mapping over a buffer we
/// already own; the `image` crate's helpers would need a copy into its types.
pub fn apply(pixels: Pixels, orientation: u8) -> Pixels {
    if !(2..=8).contains(&orientation) {
        return pixels;
    }
    let Samples::U8(src) = &pixels.samples else {
        return pixels;
    };
    let (w, h) = (pixels.width as usize, pixels.height as usize);
    let bpp = pixels.channels.count();
    let swap = super::plan::swaps_axes(orientation);
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; src.len()];
    for dy in 0..oh {
        for dx in 0..ow {
            // Source pixel that lands on (dx, dy).
            let (sx, sy) = match orientation {
                2 => (w - 1 - dx, dy),
                3 => (w - 1 - dx, h - 1 - dy),
                4 => (dx, h - 1 - dy),
                5 => (dy, dx),
                6 => (dy, h - 1 - dx),
                7 => (w - 1 - dy, h - 1 - dx),
                _ => (w - 1 - dy, dx), // 8
            };
            let s = (sy * w + sx) * bpp;
            let d = (dy * ow + dx) * bpp;
            out[d..d + bpp].copy_from_slice(&src[s..s + bpp]);
        }
    }
    Pixels::new_u8(ow as u32, oh as u32, pixels.channels, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::pixels::Channels;

    /// 3x2 gray image:  1 2 3
    ///                  4 5 6
    fn img() -> Pixels {
        Pixels::new_u8(3, 2, Channels::Gray, vec![1, 2, 3, 4, 5, 6])
    }

    fn run(o: u8) -> (u32, u32, Vec<u8>) {
        let p = apply(img(), o);
        let (w, h, _, d) = p.into_u8();
        (w, h, d)
    }

    #[test]
    fn all_eight_orientations() {
        assert_eq!(run(1), (3, 2, vec![1, 2, 3, 4, 5, 6]));
        assert_eq!(run(2), (3, 2, vec![3, 2, 1, 6, 5, 4]));
        assert_eq!(run(3), (3, 2, vec![6, 5, 4, 3, 2, 1]));
        assert_eq!(run(4), (3, 2, vec![4, 5, 6, 1, 2, 3]));
        assert_eq!(run(5), (2, 3, vec![1, 4, 2, 5, 3, 6]));
        // 6: rotate 90° clockwise.
        assert_eq!(run(6), (2, 3, vec![4, 1, 5, 2, 6, 3]));
        assert_eq!(run(7), (2, 3, vec![6, 3, 5, 2, 4, 1]));
        // 8: rotate 90° counter-clockwise.
        assert_eq!(run(8), (2, 3, vec![3, 6, 2, 5, 1, 4]));
    }

    #[test]
    fn multi_byte_pixels_move_together() {
        let p = Pixels::new_u8(2, 1, Channels::Rgb, vec![1, 2, 3, 4, 5, 6]);
        let (w, h, _, d) = apply(p, 6).into_u8();
        assert_eq!((w, h, d), (1, 2, vec![1, 2, 3, 4, 5, 6]));
    }
}
