//! Where a content-aware crop (`g=auto`) centres, and the `focus` of the
//! media information: the point of the image most worth keeping.
//!
//! The approach of libvips' `attention` crop and smartcrop.js, without a
//! model file: the image is sampled onto a grid of at most [`GRID`] cells a
//! side, and each cell scores
//!
//! * **detail**: the mean gradient of its samples (sharp texture and edges;
//!   a blurred or flat background scores low), relative to the image's most
//!   detailed cell;
//! * **saturation**: HSL saturation above 0.4 at a mid lightness (colourful
//!   subjects against sky, walls, fog);
//! * **skin**: closeness of the colour's direction to a skin tone at a
//!   usable lightness (smartcrop.js' test, weighted higher: people matter).
//!
//! The score map is blurred (a box blur three times, about a tenth of the
//! grid: a subject, not a single speck, wins) and the focus is the centroid
//! of the blurred map around its maximum. An image with no clear maximum (a
//! flat or evenly textured one) keeps the centre. Cost: one strided pass
//! over the decoded pixels (at most about 200 × 200 samples) and a few passes
//! over the grid — well under a millisecond for the shrunk image a transform
//! already has.

use super::pixels::{Channels, Pixels, Samples};

/// Cells along the longer side of the analysis grid.
pub const GRID: usize = 48;
/// Samples per cell along each axis, at most.
const SAMPLES_PER_CELL: usize = 4;
/// A maximum this far above the mean, at least, counts as a subject.
const CLEAR_PEAK: f32 = 1.15;
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
    let scale = GRID as f64 / w.max(h) as f64;
    let gw = ((w as f64 * scale).round() as usize).clamp(1, GRID);
    let gh = ((h as f64 * scale).round() as usize).clamp(1, GRID);
    let step_x = (w / (gw * SAMPLES_PER_CELL)).max(1);
    let step_y = (h / (gh * SAMPLES_PER_CELL)).max(1);
    let channels = p.channels.count();

    // Per cell: summed colour, detail, alpha weight and sample count.
    let mut colour = vec![[0f32; 3]; gw * gh];
    let mut detail = vec![0f32; gw * gh];
    let mut weight = vec![0f32; gw * gh];
    let mut count = vec![0f32; gw * gh];
    let sample = |x: usize, y: usize| -> ([f32; 3], f32) {
        let i = (y * w + x) * channels;
        let v = |c: usize| -> f32 {
            match &p.samples {
                Samples::U8(d) => d.get(i + c).copied().unwrap_or(0) as f32 / 255.0,
                Samples::U16(d) => d.get(i + c).copied().unwrap_or(0) as f32 / 65535.0,
            }
        };
        match p.channels {
            Channels::Gray => {
                let g = v(0);
                ([g, g, g], 1.0)
            }
            Channels::Rgb => ([v(0), v(1), v(2)], 1.0),
            Channels::Rgba => ([v(0), v(1), v(2)], v(3)),
        }
    };
    let luma = |c: [f32; 3]| 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    let mut y = 0;
    while y < h {
        let cy = (y * gh / h).min(gh - 1);
        let mut x = 0;
        while x < w {
            let cx = (x * gw / w).min(gw - 1);
            let cell = cy * gw + cx;
            let (c, a) = sample(x, y);
            let l = luma(c);
            // Gradient to the next samples right and down (at sample spacing).
            let lr = if x + step_x < w {
                luma(sample(x + step_x, y).0)
            } else {
                l
            };
            let ld = if y + step_y < h {
                luma(sample(x, y + step_y).0)
            } else {
                l
            };
            detail[cell] += ((lr - l).abs() + (ld - l).abs()) * a;
            for (s, v) in colour[cell].iter_mut().zip(c) {
                *s += v * a;
            }
            weight[cell] += a;
            count[cell] += 1.0;
            x += step_x;
        }
        y += step_y;
    }

    let max_detail = detail
        .iter()
        .zip(&count)
        .map(|(d, n)| if *n > 0.0 { d / n } else { 0.0 })
        .fold(0f32, f32::max);
    let mut score = vec![0f32; gw * gh];
    for i in 0..gw * gh {
        if count[i] == 0.0 {
            continue;
        }
        let d = if max_detail > 0.0 {
            detail[i] / count[i] / max_detail
        } else {
            0.0
        };
        let (c, opacity) = if weight[i] > 0.0 {
            (colour[i].map(|s| s / weight[i]), weight[i] / count[i])
        } else {
            ([0.0; 3], 0.0)
        };
        score[i] =
            (d + SATURATION_WEIGHT * saturation(c) + SKIN_WEIGHT * skin(c, luma(c))) * opacity;
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
    if peak <= 0.0 || peak < mean * CLEAR_PEAK {
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
}
