//! Geometry: from the source's stored size, its EXIF orientation and the
//! requested box, decide the crop, the resize target and how much the decoder
//! may shrink on load. Pure arithmetic, no pixels.
//!
//! Rules: never enlarge. When the box is larger than the (upright) source, it
//! is shrunk *keeping its aspect ratio* until it fits, so a square thumbnail
//! of a small picture is still square. Crops are centred by [`Plan::new`]
//! (the size is all the decoder needs to know); [`Plan::anchored`] moves
//! the crop to an edge, a corner or a focal point of the *upright* image and
//! maps it back to stored coordinates through the orientation.

use crate::variant::Fit;

/// A rectangle in source pixel units (fractional, as the resizer accepts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Source region to use, in stored (not yet rotated) coordinates.
    pub crop: Rect,
    /// Size to resize the crop to, in stored orientation.
    pub resize_to: (u32, u32),
    /// Final output size, upright (after the EXIF orientation is applied).
    pub output: (u32, u32),
}

/// Where a crop goes, in fractions of the upright image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// The crop's offset as a fraction of the room it leaves on each axis
    /// (0: left / top edge, 1: right / bottom edge).
    Align(f64, f64),
    /// Centred on this point as far as the image allows.
    Focus(f64, f64),
}

/// The stored-image fractions of an upright point, for EXIF orientation
/// `o` (the index mapping of `orient.rs`, as fractions).
pub fn upright_to_stored(o: u8, u: f64, v: f64) -> (f64, f64) {
    match o {
        2 => (1.0 - u, v),
        3 => (1.0 - u, 1.0 - v),
        4 => (u, 1.0 - v),
        5 => (v, u),
        6 => (v, 1.0 - u),
        7 => (1.0 - v, 1.0 - u),
        8 => (1.0 - v, u),
        _ => (u, v),
    }
}

/// The upright fractions of a stored-image point (the inverse of
/// [`upright_to_stored`]).
pub fn stored_to_upright(o: u8, s: f64, t: f64) -> (f64, f64) {
    match o {
        2 => (1.0 - s, t),
        3 => (1.0 - s, 1.0 - t),
        4 => (s, 1.0 - t),
        5 => (t, s),
        6 => (1.0 - t, s),
        7 => (1.0 - t, 1.0 - s),
        8 => (t, 1.0 - s),
        _ => (s, t),
    }
}

/// Whether an EXIF orientation swaps width and height (5..=8).
pub fn swaps_axes(orientation: u8) -> bool {
    (5..=8).contains(&orientation)
}

impl Plan {
    /// `width`/`height` are the requested box (already multiplied by `dpr`).
    pub fn new(
        stored: (u32, u32),
        orientation: u8,
        width: Option<u32>,
        height: Option<u32>,
        fit: Fit,
        max_dimension: u32,
    ) -> Self {
        let swap = swaps_axes(orientation);
        let (ow, oh) = if swap { (stored.1, stored.0) } else { stored };
        let (ow, oh) = (ow.max(1) as f64, oh.max(1) as f64);

        let (out, crop_w, crop_h) = match (width, height) {
            (Some(bw), Some(bh)) => match fit {
                Fit::Inside => (inside(ow, oh, bw, bh), ow, oh),
                Fit::Fill => (shrink_box_to_fit(ow, oh, bw, bh), ow, oh),
                Fit::Cover => {
                    let (cw, ch) = shrink_box_to_fit(ow, oh, bw, bh);
                    let s = (cw as f64 / ow).max(ch as f64 / oh);
                    ((cw, ch), (cw as f64 / s).min(ow), (ch as f64 / s).min(oh))
                }
            },
            (Some(bw), None) => (inside(ow, oh, bw, max_dimension), ow, oh),
            (None, Some(bh)) => (inside(ow, oh, max_dimension, bh), ow, oh),
            (None, None) => (inside(ow, oh, max_dimension, max_dimension), ow, oh),
        };

        let (sw, sh) = (stored.0.max(1) as f64, stored.1.max(1) as f64);
        let (cw, ch) = if swap {
            (crop_h, crop_w)
        } else {
            (crop_w, crop_h)
        };
        let crop = Rect {
            x: (sw - cw) / 2.0,
            y: (sh - ch) / 2.0,
            w: cw,
            h: ch,
        };
        let resize_to = if swap { (out.1, out.0) } else { out };
        Plan {
            crop,
            resize_to,
            output: out,
        }
    }

    /// The same crop size, moved to `anchor` of the upright image; the
    /// source is `stored` pixels with EXIF orientation `orientation`.
    pub fn anchored(mut self, stored: (u32, u32), orientation: u8, anchor: Anchor) -> Self {
        let (sw, sh) = (stored.0.max(1) as f64, stored.1.max(1) as f64);
        let swap = swaps_axes(orientation);
        let (uw, uh) = if swap { (sh, sw) } else { (sw, sh) };
        let (cw, ch) = if swap {
            (self.crop.h, self.crop.w)
        } else {
            (self.crop.w, self.crop.h)
        };
        let (room_x, room_y) = ((uw - cw).max(0.0), (uh - ch).max(0.0));
        let (ux, uy) = match anchor {
            Anchor::Align(ax, ay) => (room_x * ax.clamp(0.0, 1.0), room_y * ay.clamp(0.0, 1.0)),
            Anchor::Focus(fx, fy) => (
                (fx * uw - cw / 2.0).clamp(0.0, room_x),
                (fy * uh - ch / 2.0).clamp(0.0, room_y),
            ),
        };
        let a = upright_to_stored(orientation, ux / uw, uy / uh);
        let b = upright_to_stored(orientation, (ux + cw) / uw, (uy + ch) / uh);
        self.crop.x = (a.0.min(b.0) * sw).clamp(0.0, (sw - self.crop.w).max(0.0));
        self.crop.y = (a.1.min(b.1) * sh).clamp(0.0, (sh - self.crop.h).max(0.0));
        self
    }

    /// The largest of `factors` (denominators, e.g. 8, 4, 2, 1) by which the
    /// decoder may shrink the image so the crop still has at least as many
    /// pixels as the resize target on both axes — libvips' shrink-on-load.
    pub fn shrink_on_load(&self, factors: &[u32]) -> u32 {
        factors
            .iter()
            .copied()
            .filter(|&d| d >= 1)
            .find(|&d| {
                self.crop.w / d as f64 >= self.resize_to.0 as f64
                    && self.crop.h / d as f64 >= self.resize_to.1 as f64
            })
            .unwrap_or(1)
    }
}

/// Fit (ow, oh) inside (bw, bh) keeping the aspect ratio, never enlarging.
fn inside(ow: f64, oh: f64, bw: u32, bh: u32) -> (u32, u32) {
    let s = (bw as f64 / ow).min(bh as f64 / oh).min(1.0);
    (side(ow * s, bw), side(oh * s, bh))
}

/// The box itself when it fits in the source; otherwise the box scaled down
/// (aspect kept) until it does.
fn shrink_box_to_fit(ow: f64, oh: f64, bw: u32, bh: u32) -> (u32, u32) {
    let k = (ow / bw as f64).min(oh / bh as f64).min(1.0);
    (side(bw as f64 * k, bw), side(bh as f64 * k, bh))
}

fn side(v: f64, max: u32) -> u32 {
    (v.round() as u32).clamp(1, max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 4096;

    fn plan(stored: (u32, u32), o: u8, w: Option<u32>, h: Option<u32>, fit: Fit) -> Plan {
        Plan::new(stored, o, w, h, fit, MAX)
    }

    #[test]
    fn cover_crops_centre() {
        let p = plan((4032, 3024), 1, Some(150), Some(150), Fit::Cover);
        assert_eq!(p.output, (150, 150));
        assert_eq!(p.resize_to, (150, 150));
        assert_eq!((p.crop.w, p.crop.h), (3024.0, 3024.0));
        assert_eq!((p.crop.x, p.crop.y), (504.0, 0.0));
        let p = plan((4032, 3024), 1, Some(500), Some(700), Fit::Cover);
        assert_eq!(p.output, (500, 700));
        assert!((p.crop.w - 2160.0).abs() < 1e-6 && p.crop.h == 3024.0);
    }

    #[test]
    fn anchors_move_the_crop_in_the_upright_image() {
        let p = plan((4032, 3024), 1, Some(150), Some(150), Fit::Cover);
        let at = |o, a| p.anchored((4032, 3024), o, a).crop;
        // Landscape, upright: the crop is 3024 wide, 1008 of room.
        assert_eq!(at(1, Anchor::Align(0.0, 0.5)).x, 0.0);
        assert_eq!(at(1, Anchor::Align(1.0, 0.5)).x, 1008.0);
        assert_eq!(at(1, Anchor::Align(0.5, 0.5)), p.crop);
        // A focal point is clamped at the edges.
        assert_eq!(at(1, Anchor::Focus(0.9, 0.5)).x, 1008.0);
        assert_eq!(at(1, Anchor::Focus(0.5, 0.5)).x, 504.0);
        assert!((at(1, Anchor::Focus(0.45, 0.5)).x - (0.45 * 4032.0 - 1512.0)).abs() < 1e-6);
        // Stored landscape, shown portrait (6: turned 90° clockwise): upright
        // north is stored west; (8: counter-clockwise) upright north is east.
        let p = plan((4032, 3024), 6, Some(150), Some(150), Fit::Cover);
        assert_eq!(
            p.anchored((4032, 3024), 6, Anchor::Align(0.5, 0.0)).crop.x,
            0.0
        );
        assert_eq!(
            p.anchored((4032, 3024), 6, Anchor::Align(0.5, 1.0)).crop.x,
            1008.0
        );
        assert_eq!(
            p.anchored((4032, 3024), 8, Anchor::Align(0.5, 0.0)).crop.x,
            1008.0
        );
        // Mirrored (2): upright west is stored east.
        let p = plan((4032, 3024), 2, Some(150), Some(150), Fit::Cover);
        assert_eq!(
            p.anchored((4032, 3024), 2, Anchor::Align(0.0, 0.5)).crop.x,
            1008.0
        );
    }

    #[test]
    fn point_mappings_are_inverse() {
        for o in 1..=8 {
            let (s, t) = upright_to_stored(o, 0.2, 0.7);
            let (u, v) = stored_to_upright(o, s, t);
            assert!((u - 0.2).abs() < 1e-12 && (v - 0.7).abs() < 1e-12, "{o}");
        }
    }

    #[test]
    fn inside_keeps_aspect() {
        let p = plan((4032, 3024), 1, Some(500), Some(700), Fit::Inside);
        assert_eq!(p.output, (500, 375));
        assert_eq!(
            p.crop,
            Rect {
                x: 0.0,
                y: 0.0,
                w: 4032.0,
                h: 3024.0
            }
        );
    }

    #[test]
    fn fill_stretches() {
        assert_eq!(
            plan((4032, 3024), 1, Some(500), Some(700), Fit::Fill).output,
            (500, 700)
        );
    }

    #[test]
    fn one_side_scales_the_other() {
        assert_eq!(
            plan((4032, 3024), 1, Some(1000), None, Fit::Cover).output,
            (1000, 750)
        );
        assert_eq!(
            plan((4032, 3024), 1, None, Some(300), Fit::Cover).output,
            (400, 300)
        );
    }

    #[test]
    fn never_enlarges() {
        assert_eq!(
            plan((320, 240), 1, Some(1000), None, Fit::Cover).output,
            (320, 240)
        );
        assert_eq!(
            plan((320, 240), 1, Some(1000), Some(1000), Fit::Inside).output,
            (320, 240)
        );
        // Box bigger than the source: keep the box's aspect ratio, no scaling.
        let p = plan((320, 240), 1, Some(1000), Some(1000), Fit::Cover);
        assert_eq!(p.output, (240, 240));
        assert_eq!((p.crop.w, p.crop.h, p.crop.x), (240.0, 240.0, 40.0));
        assert_eq!(
            plan((320, 240), 1, Some(1000), Some(500), Fit::Fill).output,
            (320, 160)
        );
        // One side fits, the other does not.
        assert_eq!(
            plan((200, 100), 1, Some(150), Some(150), Fit::Cover).output,
            (100, 100)
        );
    }

    #[test]
    fn no_box_is_capped_by_max_dimension() {
        assert_eq!(
            plan((320, 240), 1, None, None, Fit::Cover).output,
            (320, 240)
        );
        assert_eq!(
            Plan::new((8000, 2000), 1, None, None, Fit::Cover, 4096).output,
            (4096, 1024)
        );
    }

    #[test]
    fn orientation_swaps_axes() {
        // Stored 4032x3024 landscape, displayed 3024x4032 portrait.
        let p = plan((4032, 3024), 6, Some(300), None, Fit::Cover);
        assert_eq!(p.output, (300, 400));
        assert_eq!(p.resize_to, (400, 300));
        let p = plan((4032, 3024), 8, Some(500), Some(700), Fit::Cover);
        assert_eq!(p.output, (500, 700));
        assert_eq!(p.resize_to, (700, 500));
        // Upright crop 2880x4032 → stored 4032x2880, centred vertically.
        assert!((p.crop.w - 4032.0).abs() < 1e-6 && (p.crop.h - 2880.0).abs() < 1e-6);
        assert!((p.crop.y - 72.0).abs() < 1e-6 && p.crop.x.abs() < 1e-6);
    }

    #[test]
    fn shrink_on_load_keeps_enough_pixels() {
        let factors = [8, 4, 2, 1];
        // 3024 / 8 = 378 ≥ 150: the 1/8 DCT scale suffices for a 150px thumb.
        assert_eq!(
            plan((4032, 3024), 1, Some(150), Some(150), Fit::Cover).shrink_on_load(&factors),
            8
        );
        // 500x700 from a 2160x3024 crop: 1/4 gives 540x756.
        assert_eq!(
            plan((4032, 3024), 1, Some(500), Some(700), Fit::Cover).shrink_on_load(&factors),
            4
        );
        assert_eq!(
            plan((4032, 3024), 1, None, None, Fit::Cover).shrink_on_load(&factors),
            1
        );
        assert_eq!(
            plan((4032, 3024), 1, Some(2100), None, Fit::Cover).shrink_on_load(&factors),
            1
        );
    }

    proptest::proptest! {
        /// Any source size, orientation and box: the output is non-empty, no
        /// larger than the box or the source, and the crop lies inside the source.
        #[test]
        fn plans_are_sound(
            sw in 1u32..20000, sh in 1u32..20000, o in 1u8..=8,
            w in proptest::option::of(1u32..=MAX), h in proptest::option::of(1u32..=MAX),
            fit in proptest::sample::select(vec![Fit::Cover, Fit::Inside, Fit::Fill]),
        ) {
            let p = Plan::new((sw, sh), o, w, h, fit, MAX);
            let (ow, oh) = if swaps_axes(o) { (sh, sw) } else { (sw, sh) };
            proptest::prop_assert!(p.output.0 >= 1 && p.output.1 >= 1);
            proptest::prop_assert!(p.output.0 <= ow.max(1) && p.output.1 <= oh.max(1), "enlarged: {:?}", p);
            proptest::prop_assert!(p.output.0 <= w.unwrap_or(MAX) && p.output.1 <= h.unwrap_or(MAX));
            let eps = 1e-6;
            proptest::prop_assert!(p.crop.x >= -eps && p.crop.y >= -eps);
            proptest::prop_assert!(p.crop.x + p.crop.w <= sw as f64 + eps && p.crop.y + p.crop.h <= sh as f64 + eps);
            proptest::prop_assert!(p.crop.w > 0.0 && p.crop.h > 0.0);
            let d = p.shrink_on_load(&[8, 4, 2, 1]);
            proptest::prop_assert!(d == 1 || (p.crop.w / d as f64 >= p.resize_to.0 as f64 && p.crop.h / d as f64 >= p.resize_to.1 as f64));
        }
    }

    #[test]
    fn degenerate_sizes_stay_positive() {
        let p = plan((10000, 1), 1, Some(10), Some(10), Fit::Cover);
        assert!(p.output.0 >= 1 && p.output.1 >= 1);
        let p = plan((1, 10000), 1, Some(5), None, Fit::Inside);
        assert_eq!(p.output, (1, 10000.min(MAX)));
        let p = plan((1, 1), 6, Some(1), Some(1), Fit::Fill);
        assert_eq!(p.output, (1, 1));
    }
}
