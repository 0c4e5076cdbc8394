//! Colour: convert pixels described by an embedded ICC profile to sRGB with
//! moxcms, so a Display-P3 phone photo or a profiled CMYK print file looks
//! the same after the metadata (profile included) is stripped.
//!
//! Runs after the resize on the small image (for RGB), which is where the
//! time is cheap. A profile that does not parse is ignored: the pixels are
//! then taken as sRGB, which is what browsers do too.

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use super::pixels::{Channels, Pixels, Samples};

/// Embedded profiles larger than this are ignored (the pixels are taken as
/// sRGB). Real profiles are a few hundred bytes to a few hundred KB (CMYK
/// print profiles); a larger one costs memory for nothing, and a PNG's
/// compressed `iCCP` can expand a thousandfold.
pub const MAX_ICC_BYTES: usize = 1 << 20;

/// Converts 8-bit RGB/RGBA pixels from `icc` to sRGB in place of the input.
/// Gray images and unusable profiles pass through unchanged.
pub fn rgb_to_srgb(pixels: Pixels, icc: &[u8]) -> Pixels {
    let layout = match pixels.channels {
        Channels::Rgb => Layout::Rgb,
        Channels::Rgba => Layout::Rgba,
        Channels::Gray => return pixels,
    };
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return pixels;
    };
    if profile.color_space != DataColorSpace::Rgb || is_srgb(&profile) {
        return pixels;
    }
    // A deep source (16-bit PNG, 10-bit HEIF) with a wide-gamut profile is
    // converted at 8 bits, which is what the encoders write.
    let pixels = pixels.into_8bit();
    let Samples::U8(src) = &pixels.samples else {
        return pixels;
    };
    let srgb = ColorProfile::new_srgb();
    let Ok(transform) =
        profile.create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
    else {
        return pixels;
    };
    let mut out = vec![0u8; src.len()];
    if transform.transform(src, &mut out).is_err() {
        return pixels;
    }
    Pixels::new_u8(pixels.width, pixels.height, pixels.channels, out)
}

/// CMYK samples (as libjpeg returns them; inverted when `adobe`) → sRGB
/// through a CMYK ICC profile. `None` when the profile cannot be used.
pub fn cmyk_to_srgb(cmyk: &[u8], icc: &[u8], adobe: bool) -> Option<Vec<u8>> {
    let profile = ColorProfile::new_from_slice(icc).ok()?;
    if profile.color_space != DataColorSpace::Cmyk {
        return None;
    }
    let srgb = ColorProfile::new_srgb();
    let transform = profile
        .create_transform_8bit(
            Layout::Rgba,
            &srgb,
            Layout::Rgb,
            TransformOptions::default(),
        )
        .ok()?;
    // ICC CMYK counts ink (0 = none); Adobe files store 255 − ink.
    let ink: Vec<u8> = if adobe {
        cmyk.iter().map(|v| 255 - v).collect()
    } else {
        cmyk.to_vec()
    };
    let mut out = vec![0u8; cmyk.len() / 4 * 3];
    transform.transform(&ink, &mut out).ok()?;
    Some(out)
}

/// A profile whose primaries and tone curves are sRGB's needs no work
/// (most Android photos carry exactly that profile).
fn is_srgb(profile: &ColorProfile) -> bool {
    let srgb = ColorProfile::new_srgb();
    let (a, b) = (profile.colorant_matrix(), srgb.colorant_matrix());
    let same_matrix =
        a.v.iter()
            .flatten()
            .zip(b.v.iter().flatten())
            .all(|(x, y)| (x - y).abs() < 1e-3);
    let same_curve = |ours: &Option<moxcms::ToneReprCurve>,
                      theirs: &Option<moxcms::ToneReprCurve>| {
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            return false;
        };
        let (Ok(o), Ok(t)) = (ours.make_linear_evaluator(), theirs.make_linear_evaluator()) else {
            return false;
        };
        (0..=16).all(|i| {
            let x = i as f32 / 16.0;
            (o.evaluate_value(x) - t.evaluate_value(x)).abs() < 1.0 / 512.0
        })
    };
    same_matrix
        && same_curve(&profile.red_trc, &srgb.red_trc)
        && same_curve(&profile.green_trc, &srgb.green_trc)
        && same_curve(&profile.blue_trc, &srgb.blue_trc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17: a 10-bit HEIF (here 16-bit samples) with a Display P3
    /// profile comes out converted, like the same colour at 8 bits.
    #[test]
    fn deep_pixels_with_a_wide_profile_are_converted() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let deep = Pixels {
            width: 1,
            height: 1,
            channels: Channels::Rgb,
            samples: Samples::U16(vec![128 * 257, 192 * 257, 64 * 257]),
        };
        let shallow = Pixels::new_u8(1, 1, Channels::Rgb, vec![128, 192, 64]);
        let (Samples::U8(a), Samples::U8(b)) = (
            rgb_to_srgb(deep, &p3).samples,
            rgb_to_srgb(shallow, &p3).samples,
        ) else {
            panic!("8-bit output expected");
        };
        assert_eq!(a, b);
        assert_ne!(a, vec![128, 192, 64], "converted");
    }

    #[test]
    fn display_p3_red_becomes_more_saturated_than_srgb_red_allows() {
        let p3 = ColorProfile::new_display_p3().encode().unwrap();
        let px = Pixels::new_u8(1, 1, Channels::Rgb, vec![255, 0, 0]);
        let out = rgb_to_srgb(px, &p3);
        let Samples::U8(v) = out.samples else {
            panic!()
        };
        // P3 red is outside sRGB: clipped to full red, green stays 0 ...
        assert_eq!(v[0], 255);
        // ... while a P3 mid-green maps to a different sRGB value.
        let g = rgb_to_srgb(
            Pixels::new_u8(1, 1, Channels::Rgb, vec![100, 180, 100]),
            &p3,
        );
        assert_ne!(g.samples, Samples::U8(vec![100, 180, 100]));
    }

    #[test]
    fn srgb_and_garbage_profiles_pass_through() {
        let srgb = ColorProfile::new_srgb().encode().unwrap();
        let px = Pixels::new_u8(1, 1, Channels::Rgb, vec![10, 20, 30]);
        assert_eq!(rgb_to_srgb(px.clone(), &srgb), px);
        assert_eq!(rgb_to_srgb(px.clone(), b"not a profile"), px);
        assert_eq!(cmyk_to_srgb(&[0, 0, 0, 0], b"nope", false), None);
    }
}
