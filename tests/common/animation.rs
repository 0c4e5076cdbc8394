//! Animated test inputs built with the `gif` crate's encoder, and readers
//! for animated WebP answers that do not use the server's code: the RIFF
//! chunks walked by hand (`ANIM` loop count, `ANMF` frames and durations)
//! and the composed frames from the `image` crate's decoders.

use std::io::Cursor;

use image::{AnimationDecoder, RgbaImage};

/// One top-level chunk of a RIFF/WebP file: its FourCC and payload.
pub struct Chunk<'a> {
    pub fourcc: [u8; 4],
    pub data: &'a [u8],
}

/// The top-level chunks of a WebP file (`RIFF....WEBP` then chunks, each
/// padded to an even length). Panics on anything that is not well formed.
pub fn webp_chunks(bytes: &[u8]) -> Vec<Chunk<'_>> {
    assert!(
        bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        "not a RIFF/WEBP file"
    );
    let riff_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff_len + 8, bytes.len(), "RIFF size is the file's size");
    let mut chunks = Vec::new();
    let mut at = 12;
    while at < bytes.len() {
        assert!(at + 8 <= bytes.len(), "chunk header past the end");
        let fourcc: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let start = at + 8;
        assert!(
            start + len <= bytes.len(),
            "chunk {} runs past the end",
            String::from_utf8_lossy(&fourcc)
        );
        chunks.push(Chunk {
            fourcc,
            data: &bytes[start..start + len],
        });
        at = start + len + (len & 1);
    }
    chunks
}

/// What the container of an animated WebP says, read from its chunks.
#[derive(Debug)]
pub struct WebpAnimation {
    /// `ANIM`'s loop count (0 = forever).
    pub loop_count: u16,
    /// Each `ANMF`'s duration in milliseconds, in order.
    pub durations_ms: Vec<u32>,
    /// The canvas size from `VP8X`.
    pub canvas: (u32, u32),
}

fn u24(b: &[u8]) -> u32 {
    b[0] as u32 | (b[1] as u32) << 8 | (b[2] as u32) << 16
}

/// `None` for a WebP that is not animated (no `ANIM` chunk and no `ANMF`).
pub fn webp_animation(bytes: &[u8]) -> Option<WebpAnimation> {
    let chunks = webp_chunks(bytes);
    let anim = chunks.iter().find(|c| &c.fourcc == b"ANIM");
    let frames: Vec<&Chunk> = chunks.iter().filter(|c| &c.fourcc == b"ANMF").collect();
    let Some(anim) = anim else {
        assert!(frames.is_empty(), "ANMF chunks without an ANIM chunk");
        return None;
    };
    let vp8x = chunks
        .iter()
        .find(|c| &c.fourcc == b"VP8X")
        .expect("an animated WebP has a VP8X chunk");
    assert!(vp8x.data[0] & 0x02 != 0, "VP8X animation flag");
    assert!(anim.data.len() >= 6, "ANIM payload is 6 bytes");
    Some(WebpAnimation {
        loop_count: u16::from_le_bytes([anim.data[4], anim.data[5]]),
        durations_ms: frames.iter().map(|f| u24(&f.data[12..15])).collect(),
        canvas: (u24(&vp8x.data[4..7]) + 1, u24(&vp8x.data[7..10]) + 1),
    })
}

/// The composed frames of an animated WebP as the `image` crate decodes
/// them, each with its delay in milliseconds. Disposal to background
/// clears to transparent, as libwebp's own animation decoder (and every
/// browser) does; `image` leaves the rectangle as it was unless told.
pub fn webp_frames(bytes: &[u8]) -> Vec<(RgbaImage, u32)> {
    let mut dec = image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("answer is not a WebP: {e}"));
    assert!(dec.has_animation(), "the WebP is not animated");
    dec.set_background_color(image::Rgba([0, 0, 0, 0])).unwrap();
    collect(dec.into_frames())
}

/// The composed frames of a GIF as the `image` crate decodes them (disposal
/// to background clears to transparent, as browsers do).
pub fn gif_frames(bytes: &[u8]) -> Vec<(RgbaImage, u32)> {
    let dec = image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("not a GIF: {e}"));
    collect(dec.into_frames())
}

fn collect(frames: image::Frames<'_>) -> Vec<(RgbaImage, u32)> {
    frames
        .collect_frames()
        .unwrap_or_else(|e| panic!("frames do not decode: {e}"))
        .into_iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            (f.into_buffer(), n / d.max(1))
        })
        .collect()
}

pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 200, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];
pub const YELLOW: [u8; 3] = [255, 255, 0];

/// One frame of a generated GIF: its rectangle in cells, its cells'
/// colours (`None` = the transparent index), disposal and delay.
pub struct GifFrame {
    /// (left, top) in cells.
    pub at: (u32, u32),
    /// Rows of cells, each `None` (transparent) or a colour.
    pub cells: Vec<Vec<Option<[u8; 3]>>>,
    pub dispose: gif::DisposalMethod,
    /// In hundredths of a second, as GIF stores it.
    pub delay_cs: u16,
}

/// A GIF whose frames are rectangles of `cell`×`cell` squares, with one
/// global palette (transparent index 7), `repeat` written as a NETSCAPE2.0
/// extension when given.
pub fn gif_of_cells(
    canvas_cells: (u32, u32),
    cell: u32,
    frames: &[GifFrame],
    repeat: Option<gif::Repeat>,
) -> Vec<u8> {
    let palette: [[u8; 3]; 8] = [
        RED,
        GREEN,
        BLUE,
        YELLOW,
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
        [255, 0, 255], // index 7: transparent
    ];
    const TRANSPARENT: u8 = 7;
    let index = |c: Option<[u8; 3]>| match c {
        None => TRANSPARENT,
        Some(rgb) => palette
            .iter()
            .position(|p| *p == rgb)
            .expect("colour in the palette") as u8,
    };
    let flat: Vec<u8> = palette.iter().flatten().copied().collect();
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(
            &mut out,
            (canvas_cells.0 * cell) as u16,
            (canvas_cells.1 * cell) as u16,
            &flat,
        )
        .unwrap();
        if let Some(r) = repeat {
            enc.set_repeat(r).unwrap();
        }
        for f in frames {
            let rows = f.cells.len() as u32;
            let cols = f.cells[0].len() as u32;
            let (w, h) = (cols * cell, rows * cell);
            let mut buffer = Vec::with_capacity((w * h) as usize);
            for y in 0..h {
                for x in 0..w {
                    buffer.push(index(f.cells[(y / cell) as usize][(x / cell) as usize]));
                }
            }
            let frame = gif::Frame {
                delay: f.delay_cs,
                dispose: f.dispose,
                transparent: Some(TRANSPARENT),
                left: (f.at.0 * cell) as u16,
                top: (f.at.1 * cell) as u16,
                width: w as u16,
                height: h as u16,
                buffer: buffer.into(),
                ..gif::Frame::default()
            };
            enc.write_frame(&frame).unwrap();
        }
    }
    out
}

/// The colour of one cell of a composed frame (`None` = transparent).
pub type Cells = Vec<Vec<Option<[u8; 3]>>>;

/// A 4×3-cell GIF (cells of `cell` pixels) of four frames that exercise
/// every disposal, partial rectangles and transparency, and the frames a
/// browser composes from it (by hand, below; `image`'s decoder agrees —
/// tests/animation.rs checks that first).
///
/// ```text
/// frame 0  whole canvas, Keep, 100 ms:    R R R .     (. = transparent)
///                                         R R R .
///                                         R R R .
/// frame 1  cells (0,0)-(1,1), Background, 200 ms: G G / G . (shows R under .)
/// frame 2  cells (1,0)-(3,2), Previous, 300 ms:   . . B / B B . / B B B
/// frame 3  cells (0,1)-(1,2), Keep, 400 ms:       Y Y / . Y
/// ```
pub fn disposal_gif(cell: u32, repeat: Option<gif::Repeat>) -> (Vec<u8>, Vec<Cells>) {
    use gif::DisposalMethod::{Background, Keep, Previous};
    let (r, g, b, y, t) = (Some(RED), Some(GREEN), Some(BLUE), Some(YELLOW), None);
    let frames = [
        GifFrame {
            at: (0, 0),
            cells: vec![vec![r, r, r, t], vec![r, r, r, t], vec![r, r, r, t]],
            dispose: Keep,
            delay_cs: 10,
        },
        GifFrame {
            at: (0, 0),
            cells: vec![vec![g, g], vec![g, t]],
            dispose: Background,
            delay_cs: 20,
        },
        GifFrame {
            at: (1, 0),
            cells: vec![vec![t, t, b], vec![b, b, t], vec![b, b, b]],
            dispose: Previous,
            delay_cs: 30,
        },
        GifFrame {
            at: (0, 1),
            cells: vec![vec![y, y], vec![t, y]],
            dispose: Keep,
            delay_cs: 40,
        },
    ];
    let composed: Vec<Cells> = vec![
        // 0: red, right column transparent.
        vec![vec![r, r, r, t], vec![r, r, r, t], vec![r, r, r, t]],
        // 1: green over the top-left 2x2, red through its transparent cell.
        vec![vec![g, g, r, t], vec![g, r, r, t], vec![r, r, r, t]],
        // 2: frame 1's rectangle was cleared to transparent; blue on top.
        vec![vec![t, t, r, b], vec![t, b, b, t], vec![r, b, b, b]],
        // 3: frame 2 undone (Previous): back to 1's disposal, then yellow,
        //    red showing through the transparent cell.
        vec![vec![t, t, r, t], vec![y, y, r, t], vec![r, y, r, t]],
    ];
    (gif_of_cells((4, 3), cell, &frames, repeat), composed)
}

/// Checks that `frame`, a composition of a `cells`-grid image scaled to
/// `frame`'s size, has each expected colour at each cell's centre (lossy
/// tolerance), and is transparent where `None`. Returns the mismatches.
pub fn cell_mismatches(frame: &RgbaImage, expected: &Cells, tolerance: i32) -> Vec<String> {
    let rows = expected.len() as u32;
    let cols = expected[0].len() as u32;
    let mut bad = Vec::new();
    for (cy, row) in expected.iter().enumerate() {
        for (cx, want) in row.iter().enumerate() {
            let x = (2 * cx as u32 + 1) * frame.width() / (2 * cols);
            let y = (2 * cy as u32 + 1) * frame.height() / (2 * rows);
            let px = frame.get_pixel(x, y).0;
            let ok = match want {
                None => px[3] < 32,
                Some(rgb) => {
                    px[3] > 223 && (0..3).all(|c| (px[c] as i32 - rgb[c] as i32).abs() <= tolerance)
                }
            };
            if !ok {
                bad.push(format!(
                    "cell ({cx},{cy}) at ({x},{y}): want {want:?}, got {px:?}"
                ));
            }
        }
    }
    bad
}

/// `frames` resized to `w`×`h` (Triangle), for comparing with an answer.
pub fn resized(img: &RgbaImage, w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgba8(image::imageops::resize(
        img,
        w,
        h,
        image::imageops::FilterType::Triangle,
    ))
}

/// A looping GIF of `frames` one-cell frames (a 2×2-cell canvas, cells of
/// 4 pixels), each a different colour at a different place: many frames in
/// few bytes, for the frame limit (`transform.max_frames`).
pub fn many_frames_gif(frames: usize) -> Vec<u8> {
    let colours = [RED, GREEN, BLUE, YELLOW];
    let frames: Vec<GifFrame> = (0..frames)
        .map(|i| GifFrame {
            at: ((i % 2) as u32, ((i / 2) % 2) as u32),
            cells: vec![vec![Some(colours[i % 4])]],
            dispose: gif::DisposalMethod::Keep,
            delay_cs: 5,
        })
        .collect();
    gif_of_cells((2, 2), 4, &frames, Some(gif::Repeat::Infinite))
}
