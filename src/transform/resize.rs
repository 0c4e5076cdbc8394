//! Crop + resize in one SIMD pass (fast_image_resize, Lanczos3 as sharp
//! uses), alpha premultiplied during the resize so edges get no dark fringe.
//! The result is always 8-bit: 16-bit sources are resampled at 16 bits and
//! rounded once, at the end.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::TransformError;
use super::pixels::{Channels, Pixels, Samples};
use super::plan::Rect;

pub fn resize(src: Pixels, crop: Rect, to: (u32, u32)) -> Result<Pixels, TransformError> {
    let whole = crop.x.abs() < 1e-9
        && crop.y.abs() < 1e-9
        && crop.w as u32 == src.width
        && crop.h as u32 == src.height;
    if whole && to == (src.width, src.height) {
        return Ok(src.into_8bit());
    }
    let (bytes, pixel_type): (&[u8], PixelType) = match (&src.samples, src.channels) {
        (Samples::U8(v), Channels::Gray) => (v, PixelType::U8),
        (Samples::U8(v), Channels::Rgb) => (v, PixelType::U8x3),
        (Samples::U8(v), Channels::Rgba) => (v, PixelType::U8x4),
        (Samples::U16(v), Channels::Gray) => (bytemuck::cast_slice(v), PixelType::U16),
        (Samples::U16(v), Channels::Rgb) => (bytemuck::cast_slice(v), PixelType::U16x3),
        (Samples::U16(v), Channels::Rgba) => (bytemuck::cast_slice(v), PixelType::U16x4),
    };
    let input = ImageRef::new(src.width, src.height, bytes, pixel_type).map_err(internal)?;
    let mut output = Image::new(to.0, to.1, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(
            crop.x.max(0.0),
            crop.y.max(0.0),
            crop.w.min(src.width as f64),
            crop.h.min(src.height as f64),
        );
    Resizer::new()
        .resize(&input, &mut output, &options)
        .map_err(internal)?;

    let buf = output.into_vec();
    let samples = match src.samples {
        Samples::U8(_) => Samples::U8(buf),
        Samples::U16(_) => Samples::U16(
            buf.chunks_exact(2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
                .collect(),
        ),
    };
    Ok(Pixels {
        width: to.0,
        height: to.1,
        channels: src.channels,
        samples,
    }
    .into_8bit())
}

fn internal(e: impl std::fmt::Display) -> TransformError {
    TransformError::Internal(format!("resize: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &Pixels) -> Rect {
        Rect {
            x: 0.0,
            y: 0.0,
            w: p.width as f64,
            h: p.height as f64,
        }
    }

    #[test]
    fn halves_a_gradient() {
        let data: Vec<u8> = (0..64 * 64).map(|i| (i % 64 * 4) as u8).collect();
        let p = Pixels::new_u8(64, 64, Channels::Gray, data);
        let out = resize(p.clone(), full(&p), (32, 32)).unwrap();
        assert_eq!((out.width, out.height), (32, 32));
    }

    #[test]
    fn transparent_pixels_do_not_darken_edges() {
        // Left half opaque white, right half fully transparent black.
        let data: Vec<u8> = (0..16 * 16)
            .flat_map(|i| {
                if i % 16 < 8 {
                    [255, 255, 255, 255]
                } else {
                    [0, 0, 0, 0]
                }
            })
            .collect();
        let p = Pixels::new_u8(16, 16, Channels::Rgba, data);
        let out = resize(p.clone(), full(&p), (4, 4)).unwrap();
        let Samples::U8(v) = out.samples else {
            panic!()
        };
        for px in v.chunks_exact(4).filter(|px| px[3] > 0) {
            assert!(px[0] > 250, "dark fringe: {px:?}");
        }
    }

    #[test]
    fn sixteen_bit_comes_out_eight_bit() {
        let p = Pixels {
            width: 4,
            height: 4,
            channels: Channels::Rgb,
            samples: Samples::U16(vec![65535; 48]),
        };
        let out = resize(p.clone(), full(&p), (2, 2)).unwrap();
        assert_eq!(out.samples, Samples::U8(vec![255; 12]));
    }

    #[test]
    fn crops() {
        let data: Vec<u8> = (0..8 * 8)
            .map(|i| if i % 8 < 4 { 0 } else { 200 })
            .collect();
        let p = Pixels::new_u8(8, 8, Channels::Gray, data);
        let right = Rect {
            x: 4.0,
            y: 0.0,
            w: 4.0,
            h: 8.0,
        };
        let out = resize(p, right, (2, 4)).unwrap();
        // Only the right (200) half is used; Lanczos may ring a little at the seam.
        let Samples::U8(v) = out.samples else {
            panic!()
        };
        assert!(v.iter().all(|&x| (180..=220).contains(&x)), "{v:?}");
    }
}
