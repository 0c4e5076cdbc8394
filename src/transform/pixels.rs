//! The decoded image as it moves through the pipeline: one contiguous buffer,
//! 8 or 16 bits per channel, gray / RGB / RGBA, sRGB once `color` is done.
//! Conversions here are the small per-pixel loops the stages share.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Gray,
    Rgb,
    Rgba,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb => 3,
            Channels::Rgba => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Samples {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    pub samples: Samples,
}

impl Pixels {
    pub fn new_u8(width: u32, height: u32, channels: Channels, data: Vec<u8>) -> Self {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * channels.count()
        );
        Self {
            width,
            height,
            channels,
            samples: Samples::U8(data),
        }
    }

    /// The 8-bit samples; 16-bit images are rounded down to 8 bits first.
    pub fn into_u8(self) -> (u32, u32, Channels, Vec<u8>) {
        let data = match self.samples {
            Samples::U8(v) => v,
            // v * 255 / 65535, rounded
            Samples::U16(v) => v
                .iter()
                .map(|&s| ((s as u32 * 255 + 32767) / 65535) as u8)
                .collect(),
        };
        (self.width, self.height, self.channels, data)
    }

    /// 8-bit RGBA (gray and RGB made opaque), for the placeholder encoders.
    pub fn into_rgba8(self) -> (u32, u32, Vec<u8>) {
        let (w, h, channels, data) = self.into_u8();
        let rgba = match channels {
            Channels::Rgba => data,
            Channels::Rgb => data
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect(),
            Channels::Gray => data.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        };
        (w, h, rgba)
    }

    pub fn into_8bit(self) -> Self {
        let (w, h, c, data) = self.into_u8();
        Self::new_u8(w, h, c, data)
    }

    /// Whether any pixel is not fully opaque (8-bit images only; others: has an alpha channel).
    pub fn uses_alpha(&self) -> bool {
        match (&self.samples, self.channels) {
            (Samples::U8(v), Channels::Rgba) => v.chunks_exact(4).any(|p| p[3] != 255),
            (Samples::U16(_), Channels::Rgba) => true,
            _ => false,
        }
    }
}

/// RGBA → RGB composited over white (for formats without alpha).
pub fn flatten_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        let a = p[3] as u32;
        for &c in &p[..3] {
            out.push(((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

/// Gray → RGB, for encoders that need colour input.
pub fn gray_to_rgb(gray: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(gray.len() * 3);
    for &g in gray {
        out.extend_from_slice(&[g, g, g]);
    }
    out
}

/// RGBA → RGB dropping alpha (only when alpha is known to be fully opaque).
pub fn drop_alpha(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for p in rgba.chunks_exact(4) {
        out.extend_from_slice(&p[..3]);
    }
    out
}

/// CMYK as libjpeg returns it → RGB without a colour profile (the naive
/// conversion browsers use). Adobe (Photoshop) files store the channels
/// inverted, so 255 means no ink.
pub fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let (c, m, y, k) = if adobe_inverted {
            (p[0] as u32, p[1] as u32, p[2] as u32, p[3] as u32)
        } else {
            (
                255 - p[0] as u32,
                255 - p[1] as u32,
                255 - p[2] as u32,
                255 - p[3] as u32,
            )
        };
        out.extend_from_slice(&[
            ((c * k + 127) / 255) as u8,
            ((m * k + 127) / 255) as u8,
            ((y * k + 127) / 255) as u8,
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_to_eight_bits_rounds() {
        let p = Pixels {
            width: 3,
            height: 1,
            channels: Channels::Gray,
            samples: Samples::U16(vec![0, 65535, 32896]),
        };
        assert_eq!(p.into_u8().3, vec![0, 255, 128]);
    }

    #[test]
    fn flatten() {
        assert_eq!(
            flatten_on_white(&[0, 0, 0, 0, 10, 20, 30, 255, 0, 0, 0, 128]),
            vec![255, 255, 255, 10, 20, 30, 127, 127, 127]
        );
    }

    #[test]
    fn cmyk() {
        // No ink is white, full black ink is black, both encodings.
        assert_eq!(
            cmyk_to_rgb(&[255, 255, 255, 255], true),
            vec![255, 255, 255]
        );
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0], false), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0], true), vec![0, 0, 0]);
        // Full cyan is (0, 255, 255).
        assert_eq!(cmyk_to_rgb(&[0, 255, 255, 255], true), vec![0, 255, 255]);
    }

    #[test]
    fn alpha_use() {
        assert!(!Pixels::new_u8(1, 1, Channels::Rgba, vec![1, 2, 3, 255]).uses_alpha());
        assert!(Pixels::new_u8(1, 1, Channels::Rgba, vec![1, 2, 3, 254]).uses_alpha());
        assert!(!Pixels::new_u8(1, 1, Channels::Rgb, vec![1, 2, 3]).uses_alpha());
    }
}
