//! Where a content-aware crop (`g=auto`) centres, and the `focus` of the
//! media information: the point of the image most worth keeping.
//!
//! The approach of libvips' `attention` crop and smartcrop.js, without a
//! model file: the image is sampled onto a grid of at most [`GRID`] cells a
//! side, and each cell scores
//!
//! * **detail**: the Laplacian of the luma of a box-averaged analysis image
//!   twice the grid's size (edges and texture at the scale of the subject;
//!   a blurred or flat background scores low), relative to the image's most
//!   detailed pixel;
//! * **saturation**: HSL saturation above 0.4 at a mid lightness (colourful
//!   subjects against sky, walls, fog);
//! * **skin**: closeness of the colour's direction to a skin tone at a
//!   usable lightness (smartcrop.js' test, weighted higher: people matter).
//!
//! The score map is blurred (a box blur three times, about a tenth of the
//! grid: a subject, not a single speck, wins) and the focus is the centroid
//! of the blurred map around its maximum. An image with no clear maximum (a
//! flat or evenly textured one) keeps the centre. The analysis image is the
//! same whether it is made from a 100-pixel decode (`fmt=json`) or the
//! shrunk decode of a transform, so the `focus` a backend stores is where
//! `g=auto` crops. Cost: one strided pass over the decoded pixels (at most
//! about 400 × 400 samples) and a few passes over the grid — about a
//! millisecond for the shrunk image a transform already has.

use super::pixels::{Channels, Pixels, Samples};

/// Cells along the longer side of the analysis grid.
pub const GRID: usize = 48;
/// Samples per analysis pixel along each axis, at most.
const SAMPLES_PER_CELL: usize = 4;
/// A maximum this far above the mean, at least, counts as a subject.
const CLEAR_PEAK: f32 = 1.15;
/// A blurred score below this is nothing to centre on.
const MIN_PEAK: f32 = 0.01;
/// The Laplacian below which there is no detail (a few levels of 255).
const MIN_DETAIL: f32 = 0.02;
const SKIN: [f32; 3] = [0.78, 0.57, 0.44];
const SKIN_WEIGHT: f32 = 1.8;
const SATURATION_WEIGHT: f32 = 1.0;

/// The most salient point, as fractions (x, y) of the buffer's width and
/// height (in the buffer's own orientation).
pub fn focus(p: &Pixels) -> (f64, f64) {
    let (w, h) = (p.width as usize, p.height as usize);
    if w == 0 || h == 0 {
        return (0.5, 0.5);
    }
    // The analysis image: twice the grid, box-averaged from strided samples,
    // so a 100-pixel placeholder decode and a 1000-pixel transform decode
    // of one photo are looked at the same way (one focus for both).
    let side = 2 * GRID;
    // Never larger than the image (every analysis pixel gets samples).
    let scale = (side as f64 / w.max(h) as f64).min(1.0);
    let aw = ((w as f64 * scale).round() as usize).clamp(1, side);
    let ah = ((h as f64 * scale).round() as usize).clamp(1, side);
    let step_x = (w / (aw * SAMPLES_PER_CELL)).max(1);
    let step_y = (h / (ah * SAMPLES_PER_CELL)).max(1);
    let channels = p.channels.count();
    let mut colour = vec![[0f32; 3]; aw * ah];
    let mut weight = vec![0f32; aw * ah];
    let mut count = vec![0f32; aw * ah];
    let value = |i: usize| -> f32 {
        match &p.samples {
            Samples::U8(d) => d.get(i).copied().unwrap_or(0) as f32 / 255.0,
            Samples::U16(d) => d.get(i).copied().unwrap_or(0) as f32 / 65535.0,
        }
    };
    let mut y = 0;
    while y < h {
        let ay = (y * ah / h).min(ah - 1);
        let mut x = 0;
        while x < w {
            let ax = (x * aw / w).min(aw - 1);
            let i = (y * w + x) * channels;
            let (c, a) = match p.channels {
                Channels::Gray => ([value(i); 3], 1.0),
                Channels::Rgb => ([value(i), value(i + 1), value(i + 2)], 1.0),
                Channels::Rgba => ([value(i), value(i + 1), value(i + 2)], value(i + 3)),
            };
            let cell = ay * aw + ax;
            for (s, v) in colour[cell].iter_mut().zip(c) {
                *s += v * a;
            }
            weight[cell] += a;
            count[cell] += 1.0;
            x += step_x;
        }
        y += step_y;
    }
    let luma = |c: [f32; 3]| 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    let mean: Vec<[f32; 3]> = colour
        .iter()
        .zip(&weight)
        .map(|(c, &wt)| {
            if wt > 0.0 {
                c.map(|v| v / wt)
            } else {
                [0.0; 3]
            }
        })
        .collect();
    let opacity: Vec<f32> = weight
        .iter()
        .zip(&count)
        .map(|(&wt, &n)| if n > 0.0 { wt / n } else { 0.0 })
        .collect();
    let l: Vec<f32> = mean.iter().map(|&c| luma(c)).collect();
    // Detail: the Laplacian of the analysis image's luma.
    let at = |x: isize, y: isize| {
        l[y.clamp(0, ah as isize - 1) as usize * aw + x.clamp(0, aw as isize - 1) as usize]
    };
    let detail: Vec<f32> = (0..aw * ah)
        .map(|i| {
            let (x, y) = ((i % aw) as isize, (i / aw) as isize);
            (4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1)).abs()
        })
        .collect();
    // Relative to the most detailed pixel, but a whisper (rounding, a flat
    // field) is not detail.
    let max_detail = detail.iter().copied().fold(MIN_DETAIL, f32::max);

    // Pooled onto the grid (2×2 analysis pixels a cell).
    let (gw, gh) = (aw.div_ceil(2), ah.div_ceil(2));
    let mut score = vec![0f32; gw * gh];
    for i in 0..aw * ah {
        let d = detail[i] / max_detail;
        let c = mean[i];
        let s = (d + SATURATION_WEIGHT * saturation(c) + SKIN_WEIGHT * skin(c, l[i])) * opacity[i];
        score[(i / aw / 2) * gw + (i % aw) / 2] += s / 4.0;
    }
    let radius = (gw.max(gh) / 10).max(1);
    for _ in 0..3 {
        box_blur(&mut score, gw, gh, radius);
    }
    let (best, peak) = score
        .iter()
        .copied()
        .enumerate()
        .fold(
            (0, f32::MIN),
            |(bi, bv), (i, v)| if v > bv { (i, v) } else { (bi, v.max(bv)) },
        );
    let mean = score.iter().sum::<f32>() / score.len() as f32;
    if peak < MIN_PEAK || peak < mean * CLEAR_PEAK {
        return (0.5, 0.5);
    }
    // Centroid of the map within the blur radius of the peak: sub-cell precision.
    let (bx, by) = ((best % gw) as isize, (best / gw) as isize);
    let r = radius as isize;
    let (mut sx, mut sy, mut sw) = (0f64, 0f64, 0f64);
    for yy in (by - r).max(0)..=(by + r).min(gh as isize - 1) {
        for xx in (bx - r).max(0)..=(bx + r).min(gw as isize - 1) {
            let v = score[yy as usize * gw + xx as usize] as f64;
            sx += (xx as f64 + 0.5) * v;
            sy += (yy as f64 + 0.5) * v;
            sw += v;
        }
    }
    if sw <= 0.0 {
        return (0.5, 0.5);
    }
    (
        (sx / sw / gw as f64).clamp(0.0, 1.0),
        (sy / sw / gh as f64).clamp(0.0, 1.0),
    )
}

/// HSL saturation over 0.4 at a lightness from 0.05 to 0.9, as 0..=1
/// (smartcrop.js' thresholds).
fn saturation(c: [f32; 3]) -> f32 {
    let max = c[0].max(c[1]).max(c[2]);
    let min = c[0].min(c[1]).min(c[2]);
    let lightness = (max + min) / 2.0;
    if !(0.05..=0.9).contains(&lightness) || max == min {
        return 0.0;
    }
    let d = max - min;
    let s = if lightness > 0.5 {
        d / (2.0 - max - min)
    } else {
        d / (max + min)
    };
    ((s - 0.4) / 0.6).max(0.0)
}

/// How close the colour's direction is to a skin tone, over a threshold, as
/// 0..=1 (smartcrop.js' test).
fn skin(c: [f32; 3], lightness: f32) -> f32 {
    let mag = (c[0] * c[0] + c[1] * c[1] + c[2] * c[2]).sqrt();
    if mag <= 0.0 || !(0.2..=1.0).contains(&lightness) {
        return 0.0;
    }
    let d = c
        .iter()
        .zip(SKIN)
        .map(|(v, s)| (v / mag - s).powi(2))
        .sum::<f32>()
        .sqrt();
    ((1.0 - d - 0.8) / 0.2).max(0.0)
}

/// One separable box blur of `radius` cells; outside the grid counts as
/// zero (dividing by the cells inside instead would favour the edges).
fn box_blur(map: &mut [f32], w: usize, h: usize, radius: usize) {
    let mut tmp = vec![0f32; map.len()];
    for y in 0..h {
        for x in 0..w {
            let (lo, hi) = (x.saturating_sub(radius), (x + radius).min(w - 1));
            let sum: f32 = map[y * w + lo..=y * w + hi].iter().sum();
            tmp[y * w + x] = sum / (2 * radius + 1) as f32;
        }
    }
    for x in 0..w {
        for y in 0..h {
            let (lo, hi) = (y.saturating_sub(radius), (y + radius).min(h - 1));
            let sum: f32 = (lo..=hi).map(|yy| tmp[yy * w + x]).sum();
            map[y * w + x] = sum / (2 * radius + 1) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat grey field with a saturated, detailed square at (x, y)..+side.
    fn field(w: u32, h: u32, x: u32, y: u32, side: u32) -> Pixels {
        let mut d = vec![128u8; (w * h * 3) as usize];
        for yy in y..(y + side).min(h) {
            for xx in x..(x + side).min(w) {
                let i = ((yy * w + xx) * 3) as usize;
                let on = (xx / 4 + yy / 4) % 2 == 0;
                d[i..i + 3].copy_from_slice(if on { &[220, 30, 30] } else { &[40, 160, 40] });
            }
        }
        Pixels::new_u8(w, h, Channels::Rgb, d)
    }

    #[test]
    fn finds_an_off_centre_subject() {
        let (x, y) = focus(&field(400, 200, 300, 20, 60));
        assert!(
            (x - 0.825).abs() < 0.06 && (y - 0.25).abs() < 0.08,
            "{x} {y}"
        );
        let (x, y) = focus(&field(200, 400, 10, 330, 50));
        assert!(
            (x - 0.175).abs() < 0.08 && (y - 0.89).abs() < 0.06,
            "{x} {y}"
        );
    }

    #[test]
    fn flat_and_empty_images_keep_the_centre() {
        assert_eq!(
            focus(&Pixels::new_u8(
                64,
                32,
                Channels::Rgb,
                vec![90; 64 * 32 * 3]
            )),
            (0.5, 0.5)
        );
        assert_eq!(
            focus(&Pixels::new_u8(0, 0, Channels::Rgb, Vec::new())),
            (0.5, 0.5)
        );
        // Fully transparent: nothing to see.
        assert_eq!(
            focus(&Pixels::new_u8(8, 8, Channels::Rgba, vec![0; 256])),
            (0.5, 0.5)
        );
    }

    #[test]
    fn corpus_subject_off_centre() {
        let src = crate::test_support::corpus("offcentre_subject_2400x1200.jpg");
        let job = crate::transform::Job::unbounded();
        let info =
            super::super::source::probe(&src, crate::media_type::MediaType::Jpeg, u64::MAX, &job)
                .unwrap();
        let px = super::super::source::decode(&src, &info, 8, &job, u64::MAX, 0).unwrap();
        let (x, y) = focus(&px);
        assert!((x - 0.81).abs() < 0.06 && (y - 0.5).abs() < 0.1, "{x} {y}");
    }

    /// The focus `fmt=json` reports (from a 100-pixel decode) is where
    /// g=auto crops (from the transform's shrunk decode).
    #[test]
    fn placeholder_and_transform_decodes_agree() {
        use crate::media_type::MediaType;
        let job = crate::transform::Job::unbounded();
        for name in [
            "photo_4032x3024_orient1.jpg",
            "offcentre_subject_2400x1200.jpg",
            "progressive_2560x1600.jpg",
        ] {
            let src = crate::test_support::corpus(name);
            let info = super::super::source::probe(&src, MediaType::Jpeg, u64::MAX, &job).unwrap();
            let px = super::super::source::decode(&src, &info, 4, &job, u64::MAX, 0).unwrap();
            let (x, y) = focus(&px);
            let d =
                super::super::describe(&src, MediaType::Jpeg, u64::MAX, &job, false, 0).unwrap();
            assert!(
                (x - d.focus.x).abs() < 0.08 && (y - d.focus.y).abs() < 0.08,
                "{name}: ({x}, {y}) vs {:?}",
                d.focus
            );
        }
    }
}
