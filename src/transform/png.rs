//! PNG through the `png` crate directly, row by row, shrunk on load.
//!
//! Row by row because a PNG is the easiest file to make expand: a 190 KB
//! 16-bit gray+alpha file can declare 50 MP, which decoded whole and widened
//! to RGBA16 is 800 MB. Here a non-interlaced image is never held at full
//! size: each row is box-averaged into the output (an integer shrink chosen
//! like JPEG's DCT scaling, so the final resize stays a small step), and
//! the job's deadline is checked between rows. An interlaced (Adam7) image
//! needs its passes assembled first, so it is decoded whole at its stored
//! depth and then shrunk; that buffer is in the memory estimate.
//!
//! Metadata is bounded too: text chunks are skipped, the decoder may buffer
//! at most [`META_BYTES`] of chunks (a compressed `iCCP` that would inflate
//! past it is dropped by the crate), and a profile over `MAX_ICC_BYTES` is
//! ignored.

use std::io::Cursor;

use png::{BitDepth, ColorType, Transformations};

use super::TransformError;
use super::color::MAX_ICC_BYTES;
use super::exif;
use super::job::Job;
use super::pixels::{Channels, Pixels, Samples};

/// Metadata chunks the decoder may hold (ICC profile, EXIF, palette…).
pub const META_BYTES: usize = MAX_ICC_BYTES + (2 << 20);

/// What the header (and the chunks before the image data) say.
#[derive(Debug, Clone)]
pub struct PngHeader {
    pub width: u32,
    pub height: u32,
    pub interlaced: bool,
    /// Channels we produce: gray, RGB, or RGBA (gray+alpha is widened, one
    /// output row at a time).
    pub channels: Channels,
    /// Samples per pixel as stored (after palette expansion): 1 to 4.
    pub source_channels: u8,
    /// Samples stay 16-bit for the resize.
    pub sixteen: bool,
    pub icc: Option<Vec<u8>>,
    pub orientation: u8,
}

impl PngHeader {
    /// Bytes the decoder and we hold besides the output: the whole image
    /// at its stored layout for an interlaced file (its passes must be
    /// assembled before it can be shrunk), else a few rows and the metadata.
    pub fn working_bytes(&self) -> u64 {
        let depth = if self.sixteen { 2 } else { 1 };
        let row = self.width as u64 * self.source_channels as u64 * depth;
        let whole = if self.interlaced {
            row * self.height as u64
        } else {
            0
        };
        whole + row * 4 + self.width as u64 * 4 * 8 + META_BYTES as u64
    }
}

fn decoder(src: &[u8], row_bytes: usize) -> png::Decoder<Cursor<&[u8]>> {
    let limits = png::Limits {
        bytes: META_BYTES.saturating_add(row_bytes),
    };
    let mut d = png::Decoder::new_with_limits(Cursor::new(src), limits);
    d.set_ignore_text_chunk(true);
    // Palette → RGB(A), tRNS → alpha, 1/2/4-bit gray → 8-bit; 16 bits kept.
    d.set_transformations(Transformations::EXPAND);
    d
}

fn undecodable(e: png::DecodingError) -> TransformError {
    match e {
        png::DecodingError::LimitsExceeded => {
            TransformError::TooManyPixels("PNG: metadata or rows over the decoder's limit".into())
        }
        e => TransformError::Undecodable(format!("PNG: {e}")),
    }
}

pub fn probe(src: &[u8]) -> Result<PngHeader, TransformError> {
    let reader = decoder(src, 0).read_info().map_err(undecodable)?;
    let info = reader.info();
    let (width, height) = (info.width, info.height);
    if width == 0 || height == 0 {
        return Err(TransformError::Undecodable("image has no pixels".into()));
    }
    let (color, depth) = reader.output_color_type();
    Ok(PngHeader {
        width,
        height,
        interlaced: info.interlaced,
        channels: match color {
            ColorType::Grayscale => Channels::Gray,
            ColorType::Rgb | ColorType::Indexed => Channels::Rgb,
            ColorType::GrayscaleAlpha | ColorType::Rgba => Channels::Rgba,
        },
        source_channels: color.samples() as u8,
        sixteen: depth == BitDepth::Sixteen,
        icc: info
            .icc_profile
            .as_deref()
            .filter(|p| p.len() <= MAX_ICC_BYTES)
            .map(<[u8]>::to_vec),
        orientation: info.exif_metadata.as_deref().map_or(1, exif::orientation),
    })
}

/// Decodes at `ceil(size / shrink)`.
pub fn decode(
    src: &[u8],
    header: &PngHeader,
    shrink: u32,
    job: &Job,
) -> Result<Pixels, TransformError> {
    let row_bytes = header.width as usize * 8 + 1;
    let mut reader = decoder(src, row_bytes.saturating_mul(4))
        .read_info()
        .map_err(undecodable)?;
    let (color, depth) = reader.output_color_type();
    let source_channels = color.samples();
    let sixteen = depth == BitDepth::Sixteen;
    if sixteen != header.sixteen {
        return Err(TransformError::Internal(
            "PNG changed between probe and decode".into(),
        ));
    }
    let mut out = Shrinker::new(header, shrink, source_channels);
    if !header.interlaced {
        while let Some(row) = reader.next_row().map_err(undecodable)? {
            job.check()?;
            out.push(row.data())?;
        }
    } else {
        let stride = reader
            .output_line_size(header.width)
            .ok_or_else(|| TransformError::TooManyPixels("PNG: rows too long".into()))?;
        let bits = (source_channels * if sixteen { 16 } else { 8 }) as u8;
        let mut whole = vec![0u8; stride * header.height as usize];
        while let Some(row) = reader.next_interlaced_row().map_err(undecodable)? {
            job.check()?;
            if let png::InterlaceInfo::Adam7(pass) = row.interlace() {
                png::expand_interlaced_row(&mut whole, stride, row.data(), pass, bits);
            }
        }
        for (i, row) in whole.chunks_exact(stride).enumerate() {
            if i % 64 == 0 {
                job.check()?;
            }
            out.push(row)?;
        }
    }
    out.finish()
}

/// Box-averages `shrink × shrink` blocks of source rows into output rows.
/// Colour is averaged premultiplied by alpha, so transparent pixels do not
/// bleed their (invisible) colour into the edge.
struct Shrinker {
    width: usize,
    height: usize,
    shrink: usize,
    source_channels: usize,
    channels: usize,
    sixteen: bool,
    out_width: usize,
    /// Sums for the output row being built (per output pixel and channel).
    sums: Vec<u64>,
    /// Source rows added to `sums` so far.
    rows_in_block: usize,
    rows_seen: usize,
    out: Out,
}

/// The output samples, at the stored depth.
enum Out {
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl Out {
    fn put(&mut self, v: u64) {
        match self {
            Out::U8(o) => o.push(v as u8),
            Out::U16(o) => o.push(v as u16),
        }
    }
}

impl Shrinker {
    fn new(header: &PngHeader, shrink: u32, source_channels: usize) -> Self {
        let shrink = shrink.max(1) as usize;
        let (w, h) = (header.width as usize, header.height as usize);
        let out_width = w.div_ceil(shrink);
        let channels = header.channels.count();
        Self {
            width: w,
            height: h,
            shrink,
            source_channels,
            channels,
            sixteen: header.sixteen,
            out_width,
            sums: vec![0; out_width * channels],
            rows_in_block: 0,
            rows_seen: 0,
            out: {
                let len = out_width * h.div_ceil(shrink) * channels;
                if header.sixteen {
                    Out::U16(Vec::with_capacity(len))
                } else {
                    Out::U8(Vec::with_capacity(len))
                }
            },
        }
    }

    fn sample(&self, row: &[u8], i: usize) -> u64 {
        if self.sixteen {
            u16::from_be_bytes([row[2 * i], row[2 * i + 1]]) as u64
        } else {
            row[i] as u64
        }
    }

    /// One source pixel as output channels (gray+alpha widened to RGBA).
    fn pixel(&self, row: &[u8], x: usize) -> [u64; 4] {
        let base = x * self.source_channels;
        let s = |k| self.sample(row, base + k);
        match self.source_channels {
            1 => [s(0), 0, 0, 0],
            2 => [s(0), s(0), s(0), s(1)],
            3 => [s(0), s(1), s(2), 0],
            _ => [s(0), s(1), s(2), s(3)],
        }
    }

    fn push(&mut self, row: &[u8]) -> Result<(), TransformError> {
        let needed = self.width * self.source_channels * if self.sixteen { 2 } else { 1 };
        if row.len() < needed || self.rows_seen >= self.height {
            return Err(TransformError::Undecodable("PNG: malformed rows".into()));
        }
        if self.shrink == 1 {
            self.copy_row(&row[..needed]);
            self.rows_seen += 1;
            return Ok(());
        }
        let alpha = self.channels == 4;
        for x in 0..self.width {
            let p = self.pixel(row, x);
            let o = (x / self.shrink) * self.channels;
            if alpha {
                let a = p[3];
                self.sums[o] += p[0] * a;
                self.sums[o + 1] += p[1] * a;
                self.sums[o + 2] += p[2] * a;
                self.sums[o + 3] += a;
            } else {
                for (sum, v) in self.sums[o..o + self.channels].iter_mut().zip(p) {
                    *sum += v;
                }
            }
        }
        self.rows_seen += 1;
        self.rows_in_block += 1;
        if self.rows_in_block == self.shrink || self.rows_seen == self.height {
            self.emit_row();
        }
        Ok(())
    }

    /// No shrink: the row as it is (16-bit samples to native order, gray
    /// and alpha widened to RGBA), without the box-average arithmetic.
    fn copy_row(&mut self, row: &[u8]) {
        let widen = self.source_channels == 2;
        match &mut self.out {
            Out::U8(o) if widen => {
                for ga in row.chunks_exact(2) {
                    o.extend_from_slice(&[ga[0], ga[0], ga[0], ga[1]]);
                }
            }
            Out::U8(o) => o.extend_from_slice(row),
            Out::U16(o) if widen => {
                for ga in row.chunks_exact(4) {
                    let g = u16::from_be_bytes([ga[0], ga[1]]);
                    o.extend_from_slice(&[g, g, g, u16::from_be_bytes([ga[2], ga[3]])]);
                }
            }
            Out::U16(o) => o.extend(
                row.chunks_exact(2)
                    .map(|b| u16::from_be_bytes([b[0], b[1]])),
            ),
        }
    }

    fn emit_row(&mut self) {
        let alpha = self.channels == 4;
        for ox in 0..self.out_width {
            let cols = (self.width - ox * self.shrink).min(self.shrink) as u64;
            let n = cols * self.rows_in_block as u64;
            let o = ox * self.channels;
            if alpha {
                let a_sum = self.sums[o + 3];
                for c in 0..3 {
                    let v = (self.sums[o + c] + a_sum / 2)
                        .checked_div(a_sum)
                        .unwrap_or(0);
                    self.out.put(v);
                }
                self.out.put((a_sum + n / 2) / n);
            } else {
                for c in 0..self.channels {
                    self.out.put((self.sums[o + c] + n / 2) / n);
                }
            }
        }
        self.sums.iter_mut().for_each(|s| *s = 0);
        self.rows_in_block = 0;
    }

    fn finish(self) -> Result<Pixels, TransformError> {
        if self.rows_seen != self.height {
            return Err(TransformError::Undecodable(
                "PNG: image data ends early".into(),
            ));
        }
        let channels = match self.channels {
            1 => Channels::Gray,
            3 => Channels::Rgb,
            _ => Channels::Rgba,
        };
        let (w, h) = (
            self.out_width as u32,
            self.height.div_ceil(self.shrink) as u32,
        );
        let samples = match self.out {
            Out::U8(o) => Samples::U8(o),
            Out::U16(o) => Samples::U16(o),
        };
        Ok(Pixels {
            width: w,
            height: h,
            channels,
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::corpus;

    fn encode(w: u32, h: u32, color: ColorType, depth: BitDepth, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(color);
        e.set_depth(depth);
        e.write_header().unwrap().write_image_data(data).unwrap();
        out
    }

    #[test]
    fn corpus_files_probe_and_decode() {
        let src = corpus("rgba_1200x1200.png");
        let h = probe(&src).unwrap();
        assert_eq!(
            (h.width, h.height, h.channels, h.sixteen),
            (1200, 1200, Channels::Rgba, false)
        );
        let p = decode(&src, &h, 4, &Job::unbounded()).unwrap();
        assert_eq!((p.width, p.height), (300, 300));
        let src = corpus("rgb16_1600x1067.png");
        let h = probe(&src).unwrap();
        assert!(h.sixteen && h.channels == Channels::Rgb);
        let p = decode(&src, &h, 3, &Job::unbounded()).unwrap();
        assert_eq!((p.width, p.height), (534, 356));
        assert!(matches!(p.samples, Samples::U16(_)));
    }

    #[test]
    fn box_average_weighs_colour_by_alpha() {
        // 2x1 RGBA: opaque red next to transparent green, shrunk 2×.
        let src = encode(
            2,
            1,
            ColorType::Rgba,
            BitDepth::Eight,
            &[255, 0, 0, 255, 0, 255, 0, 0],
        );
        let h = probe(&src).unwrap();
        let p = decode(&src, &h, 2, &Job::unbounded()).unwrap();
        assert_eq!(p.samples, Samples::U8(vec![255, 0, 0, 128]));
        // Gray + alpha comes out as RGBA; odd sizes keep the partial block.
        let src = encode(
            3,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Eight,
            &[10, 255, 20, 255, 90, 255],
        );
        let h = probe(&src).unwrap();
        let p = decode(&src, &h, 2, &Job::unbounded()).unwrap();
        assert_eq!((p.width, p.height), (2, 1));
        assert_eq!(
            p.samples,
            Samples::U8(vec![15, 15, 15, 255, 90, 90, 90, 255])
        );
    }

    #[test]
    fn shrink_one_is_the_image() {
        let data: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8 * 7).collect();
        let src = encode(4, 3, ColorType::Rgb, BitDepth::Eight, &data);
        let h = probe(&src).unwrap();
        let p = decode(&src, &h, 1, &Job::unbounded()).unwrap();
        assert_eq!(p.samples, Samples::U8(data));
        // Gray+alpha is widened to RGBA, 16-bit samples to native order.
        let src = encode(
            2,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Eight,
            &[10, 200, 20, 0],
        );
        let p = decode(&src, &probe(&src).unwrap(), 1, &Job::unbounded()).unwrap();
        assert_eq!(p.samples, Samples::U8(vec![10, 10, 10, 200, 20, 20, 20, 0]));
        let src = encode(
            1,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Sixteen,
            &[1, 2, 3, 4],
        );
        let p = decode(&src, &probe(&src).unwrap(), 1, &Job::unbounded()).unwrap();
        assert_eq!(p.samples, Samples::U16(vec![0x102, 0x102, 0x102, 0x304]));
        let src = encode(
            1,
            1,
            ColorType::Rgba,
            BitDepth::Sixteen,
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        let p = decode(&src, &probe(&src).unwrap(), 1, &Job::unbounded()).unwrap();
        assert_eq!(p.samples, Samples::U16(vec![0x102, 0x304, 0x506, 0x708]));
    }

    /// A huge compressed ICC profile is dropped, not inflated.
    #[test]
    fn oversized_icc_profiles_are_ignored() {
        let profile = vec![0u8; 8 << 20];
        let mut out = Vec::new();
        let mut info = png::Info::with_size(1, 1);
        info.icc_profile = Some(profile.into());
        let mut e = png::Encoder::with_info(&mut out, info).unwrap();
        e.set_color(ColorType::Grayscale);
        e.write_header().unwrap().write_image_data(&[7]).unwrap();
        let h = probe(&out).unwrap();
        assert!(h.icc.is_none());
        assert_eq!(
            decode(&out, &h, 1, &Job::unbounded()).unwrap().samples,
            Samples::U8(vec![7])
        );
    }

    #[test]
    fn truncated_is_an_error() {
        let mut src = corpus("rgba_1200x1200.png");
        src.truncate(src.len() / 3);
        let h = probe(&src).unwrap();
        assert!(decode(&src, &h, 2, &Job::unbounded()).is_err());
    }
}
