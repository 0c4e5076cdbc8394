//! SPEC "Delivery", the `g` and `fx`/`fy` rows of the parameter table:
//! "where a `cover` crop is taken: `center` (default), `n`, `s`, `e`, `w`,
//! `ne`, `nw`, `se`, `sw`, or `auto` (content-aware: the crop keeps the most
//! salient region)", "a focal point, each 0..=1 from the left / top edge of
//! the upright image; a `cover` crop is centred on it as far as the image
//! allows (overrides `g`)", "A bad value answers 400 with a plain-text
//! message that names the parameter", and `fmt=json`'s (and the upload's)
//! `"focus"`: "the point `g=auto` centres on".

mod common;

use common::images::mean_abs_diff;
use common::{Server, corpus_bytes, decode};
use image::{DynamicImage, GenericImageView, ImageFormat, RgbImage};
use reqwest::StatusCode;
use serde_json::Value;

/// Nine colours far apart, one per cell of a 3x3 grid (row-major).
const COLOURS: [[u8; 3]; 9] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [255, 0, 255],
    [0, 255, 255],
    [255, 255, 255],
    [0, 0, 0],
    [255, 128, 0],
];

/// A 3x3 grid of `cell`-pixel squares in [`COLOURS`].
fn grid(cell: u32) -> RgbImage {
    RgbImage::from_fn(3 * cell, 3 * cell, |x, y| {
        image::Rgb(COLOURS[(y / cell * 3 + x / cell) as usize])
    })
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
                .encode_image(img)
                .unwrap();
        }
        _ => img
            .write_to(&mut std::io::Cursor::new(&mut out), format)
            .unwrap(),
    }
    out
}

/// `jpeg` with an EXIF APP1 segment holding only Orientation = `o`.
fn with_orientation(jpeg: &[u8], o: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&o.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

async fn image_of(s: &Server, q: &str) -> DynamicImage {
    let (_, body) = s.get_ok(q).await;
    decode(&body)
}

/// The index of the grid colour nearest to the pixel at (x, y), which must
/// be within `tol` of it on every channel.
fn cell_at(img: &DynamicImage, x: u32, y: u32, tol: i32, palette: &[[u8; 3]; 9]) -> usize {
    let px = img.get_pixel(x, y).0;
    let dist = |c: &[u8; 3]| {
        (0..3)
            .map(|i| (px[i] as i32 - c[i] as i32).abs())
            .max()
            .unwrap()
    };
    let (i, c) = palette
        .iter()
        .enumerate()
        .min_by_key(|(_, c)| dist(c))
        .unwrap();
    assert!(dist(c) <= tol, "pixel ({x},{y}) {px:?} is no grid colour");
    i
}

/// The grid cells (row, col) seen at `points` of `img`.
fn cells(img: &DynamicImage, points: &[(u32, u32)], palette: &[[u8; 3]; 9]) -> Vec<(usize, usize)> {
    points
        .iter()
        .map(|&(x, y)| {
            let i = cell_at(img, x, y, 24, palette);
            (i / 3, i % 3)
        })
        .collect()
}

/// Row (of a 300x100 crop) and column (of a 100x300 crop) of the 3x3 grid
/// each gravity keeps, in the upright image.
const GRAVITIES: [(&str, usize, usize); 9] = [
    ("center", 1, 1),
    ("n", 0, 1),
    ("s", 2, 1),
    ("e", 1, 2),
    ("w", 1, 0),
    ("ne", 0, 2),
    ("nw", 0, 0),
    ("se", 2, 2),
    ("sw", 2, 0),
];

const WIDE: [(u32, u32); 3] = [(50, 50), (150, 50), (250, 50)];
const TALL: [(u32, u32); 3] = [(50, 50), (50, 150), (50, 250)];

#[tokio::test]
async fn gravity_anchors_the_cover_crop() {
    let s = Server::start();
    s.put("grid.png", &encode(&grid(100).into(), ImageFormat::Png));
    // No scaling (300x300 into 300x100 or 100x300): one row or column
    // of the grid, exactly.
    for (g, row, col) in GRAVITIES {
        for spelling in [g.to_owned(), g.to_uppercase()] {
            let wide = image_of(&s, &format!("/grid.png?w=300&h=100&g={spelling}&fmt=png")).await;
            assert_eq!(wide.dimensions(), (300, 100));
            assert_eq!(
                cells(&wide, &WIDE, &COLOURS),
                [(row, 0), (row, 1), (row, 2)],
                "g={spelling}, 300x100: row {row}"
            );
            let tall = image_of(
                &s,
                &format!("/grid.png?w=100&h=300&fit=cover&g={spelling}&fmt=png"),
            )
            .await;
            assert_eq!(
                cells(&tall, &TALL, &COLOURS),
                [(0, col), (1, col), (2, col)],
                "g={spelling}, 100x300: column {col}"
            );
        }
    }
    // The default is the centre.
    let wide = image_of(&s, "/grid.png?w=300&h=100&fmt=png").await;
    assert_eq!(cells(&wide, &WIDE, &COLOURS), [(1, 0), (1, 1), (1, 2)]);
    // A crop that keeps two of the three rows: n the top two, s the bottom two.
    for (g, rows) in [("n", [0, 1]), ("s", [1, 2]), ("Ne", [0, 1]), ("sW", [1, 2])] {
        let out = image_of(&s, &format!("/grid.png?w=300&h=200&g={g}&fmt=png")).await;
        assert_eq!(
            cells(&out, &[(150, 50), (150, 150)], &COLOURS),
            [(rows[0], 1), (rows[1], 1)],
            "g={g}, 300x200"
        );
    }
    // With scaling: 600x600 into 150x50 and 50x150.
    s.put("grid2.png", &encode(&grid(200).into(), ImageFormat::Png));
    let out = image_of(&s, "/grid2.png?w=150&h=50&g=s&fmt=png").await;
    assert_eq!(out.dimensions(), (150, 50));
    assert_eq!(
        cells(&out, &[(25, 25), (75, 25), (125, 25)], &COLOURS),
        [(2, 0), (2, 1), (2, 2)]
    );
    let out = image_of(&s, "/grid2.png?w=50&h=150&g=e&fmt=png").await;
    assert_eq!(
        cells(&out, &[(25, 25), (25, 75), (25, 125)], &COLOURS),
        [(0, 2), (1, 2), (2, 2)]
    );
}

/// `g` moves only a cover crop: with one dimension, `inside` or `fill`
/// there is nothing to anchor, and the answer is the one without it.
#[tokio::test]
async fn gravity_does_nothing_without_a_cover_crop() {
    let s = Server::start();
    s.put("grid.png", &encode(&grid(100).into(), ImageFormat::Png));
    for q in [
        "w=150",
        "h=120",
        "w=100&h=300&fit=inside",
        "w=100&h=300&fit=fill",
    ] {
        let (_, plain) = s.get_ok(&format!("/grid.png?{q}&fmt=png")).await;
        for g in ["se", "n", "auto"] {
            let (_, with_g) = s.get_ok(&format!("/grid.png?{q}&g={g}&fmt=png")).await;
            assert!(
                decode(&plain).to_rgb8() == decode(&with_g).to_rgb8(),
                "{q}&g={g} differs from {q}"
            );
        }
    }
}

#[tokio::test]
async fn a_focal_point_centres_the_crop_as_far_as_the_image_allows() {
    let s = Server::start();
    s.put("grid.png", &encode(&grid(100).into(), ImageFormat::Png));
    // 100x300 crops: columns. fx=0.25 centres on x 75 (crop 25..125),
    // fx=0.6 on x 180 (crop 130..230); near the edges the crop stops there.
    let tall: [(&str, [(u32, usize); 2]); 10] = [
        ("fx=0", [(5, 0), (95, 0)]),
        ("fx=0.05", [(5, 0), (95, 0)]),
        ("fx=0.5", [(5, 1), (95, 1)]),
        ("fx=0.25", [(10, 0), (90, 1)]),
        ("fx=0.6", [(35, 1), (85, 2)]),
        ("fx=0.95", [(5, 2), (95, 2)]),
        ("fx=1", [(5, 2), (95, 2)]),
        ("fx=1.0&fy=0.5", [(5, 2), (95, 2)]),
        // fy alone: fx is 0.5.
        ("fy=0", [(5, 1), (95, 1)]),
        // The focal point overrides g, auto included.
        ("fx=0&g=e", [(5, 0), (95, 0)]),
    ];
    for (q, expect) in tall {
        let out = image_of(&s, &format!("/grid.png?w=100&h=300&{q}&fmt=png")).await;
        assert_eq!(out.dimensions(), (100, 300), "{q}");
        for (x, col) in expect {
            assert_eq!(
                cells(&out, &[(x, 50), (x, 250)], &COLOURS),
                [(0, col), (2, col)],
                "{q}: column at x={x}"
            );
        }
    }
    // 300x100 crops: rows.
    let wide: [(&str, [(u32, usize); 2]); 7] = [
        ("fy=0", [(5, 0), (95, 0)]),
        ("fy=1", [(5, 2), (95, 2)]),
        ("fy=0.6", [(35, 1), (85, 2)]),
        // fx alone: fy is 0.5.
        ("fx=1", [(5, 1), (95, 1)]),
        ("fy=1&g=n", [(5, 2), (95, 2)]),
        ("fy=0&g=auto", [(5, 0), (95, 0)]),
        ("fx=0.3&fy=0.0", [(5, 0), (95, 0)]),
    ];
    for (q, expect) in wide {
        let out = image_of(&s, &format!("/grid.png?w=300&h=100&{q}&fmt=png")).await;
        assert_eq!(out.dimensions(), (300, 100), "{q}");
        for (y, row) in expect {
            assert_eq!(
                cells(&out, &[(50, y), (250, y)], &COLOURS),
                [(row, 0), (row, 2)],
                "{q}: row at y={y}"
            );
        }
    }
}

/// Gravity and focal points are in the upright image: a JPEG stored
/// sideways (EXIF Orientation 6) is cropped as it is shown.
#[tokio::test]
async fn gravity_and_focal_points_are_in_the_upright_image() {
    let s = Server::start();
    let stored = grid(100);
    let upright = image::imageops::rotate90(&stored);
    s.put(
        "side.jpg",
        &with_orientation(&encode(&stored.clone().into(), ImageFormat::Jpeg), 6),
    );
    // What each upright cell's colour is, as a 3x3 palette in upright order.
    let mut palette = [[0u8; 3]; 9];
    for (i, p) in palette.iter_mut().enumerate() {
        let (r, c) = (i as u32 / 3, i as u32 % 3);
        *p = upright.get_pixel(c * 100 + 50, r * 100 + 50).0;
    }
    for (q, points, want) in [
        ("w=300&h=100&g=n", WIDE, [(0, 0), (0, 1), (0, 2)]),
        ("w=300&h=100&g=sw", WIDE, [(2, 0), (2, 1), (2, 2)]),
        ("w=100&h=300&g=e", TALL, [(0, 2), (1, 2), (2, 2)]),
        ("w=100&h=300&g=nw", TALL, [(0, 0), (1, 0), (2, 0)]),
        ("w=100&h=300&fx=0", TALL, [(0, 0), (1, 0), (2, 0)]),
        ("w=300&h=100&fy=1", WIDE, [(2, 0), (2, 1), (2, 2)]),
    ] {
        let out = image_of(&s, &format!("/side.jpg?{q}&fmt=png")).await;
        assert_eq!(
            cells(&out, &points, &palette),
            want,
            "{q}: cells of the upright grid"
        );
    }
}

#[tokio::test]
async fn bad_gravity_and_focal_values_answer_400_naming_the_parameter() {
    let s = Server::start();
    s.put("grid.png", &encode(&grid(10).into(), ImageFormat::Png));
    for (q, param) in [
        ("g=middle", "g"),
        ("g=north", "g"),
        ("g=", "g"),
        ("g=nn", "g"),
        ("g=auto2", "g"),
        ("g=n&g=s", "g"),
        ("fx=1.5", "fx"),
        ("fx=-0.1", "fx"),
        ("fx=abc", "fx"),
        ("fx=nan", "fx"),
        ("fx=inf", "fx"),
        ("fx=", "fx"),
        ("fy=2", "fy"),
        ("fy=NaN", "fy"),
        ("fy=-1", "fy"),
        ("fx=0.5&fy=x", "fy"),
    ] {
        let res = s.get(&format!("/grid.png?w=10&h=5&{q}")).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        let body = res.text().await.unwrap();
        assert!(
            body.starts_with(&format!("invalid parameter {param}:")),
            "{q}: {body}"
        );
        assert!(!body.trim_end().contains('\n'), "{q}: one line");
    }
    assert_eq!(
        s.get("/missing.png?w=10&h=5&g=up").await.status(),
        StatusCode::BAD_REQUEST,
        "refused before any I/O"
    );
}

fn focus_of(v: &Value) -> (f64, f64) {
    let (x, y) = (v["focus"]["x"].as_f64(), v["focus"]["y"].as_f64());
    match (x, y) {
        (Some(x), Some(y)) => {
            assert!((0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y), "{v}");
            (x, y)
        }
        _ => panic!("no focus in {v}"),
    }
}

async fn json(s: &Server, q: &str) -> Value {
    let (h, body) = s.get_ok(q).await;
    assert_eq!(h["content-type"], "application/json");
    serde_json::from_slice(&body).unwrap()
}

const SUBJECT: &str = "offcentre_subject_2400x1200.jpg";

/// The corpus photo's ladybird sits at x 1700..2200 of 2400: `g=auto`
/// keeps it, where the centre crop cuts most of it. The square crop's
/// window is 1200 wide; kept, it is x 1200..2400 (the right edge).
#[tokio::test]
async fn g_auto_keeps_the_offcentre_subject() {
    let s = Server::start();
    s.put_corpus(SUBJECT, "subject.jpg");
    let (fx, fy) = focus_of(&json(&s, "/subject.jpg?fmt=json").await);
    assert!(fx > 0.7 && (fy - 0.5).abs() < 0.2, "focus ({fx}, {fy})");

    let source = decode(&corpus_bytes(SUBJECT));
    assert_eq!(source.dimensions(), (2400, 1200));
    let right = source.crop_imm(1200, 0, 1200, 1200);
    let centre = source.crop_imm(600, 0, 1200, 1200);
    // The window centred on the reported focus, clamped to the image.
    let left = ((fx * 2400.0).clamp(600.0, 1800.0) - 600.0).round() as u32;
    let around_focus = source.crop_imm(left, 0, 1200, 1200);

    // The comparison tells the two crops apart: the default is the centre.
    let plain = image_of(&s, "/subject.jpg?w=300&h=300&fmt=png").await;
    let (pc, pr) = (
        mean_abs_diff(&plain, &centre),
        mean_abs_diff(&plain, &right),
    );
    eprintln!("default crop: centre {pc:.2}, right {pr:.2}");
    assert!(
        pc < 4.0 && pr > 2.0 * pc,
        "default crop: centre {pc:.2}, right {pr:.2}"
    );

    for g in ["auto", "AUTO"] {
        let out = image_of(&s, &format!("/subject.jpg?w=300&h=300&g={g}&fmt=png")).await;
        assert_eq!(out.dimensions(), (300, 300));
        let (r, c, f) = (
            mean_abs_diff(&out, &right),
            mean_abs_diff(&out, &centre),
            mean_abs_diff(&out, &around_focus),
        );
        eprintln!("g={g}: focus ({fx}, {fy}); focus window {f:.2}, right {r:.2}, centre {c:.2}");
        assert!(
            f < 4.0 && r < 6.0 && c > 2.0 * r,
            "g={g}: focus window {f:.2}, right {r:.2}, centre {c:.2}"
        );
    }
    // The focus is the point g=auto centres on: the same crop as written out.
    let auto = image_of(&s, "/subject.jpg?w=300&h=300&g=auto&fmt=png").await;
    let written = image_of(
        &s,
        &format!("/subject.jpg?w=300&h=300&fx={fx}&fy={fy}&fmt=png"),
    )
    .await;
    let d = mean_abs_diff(&auto, &written);
    assert!(d < 1.5, "g=auto vs fx={fx}&fy={fy}: {d:.2}");
}

/// A flat grey field with one saturated, detailed square (red and yellow
/// 8-pixel checks) at `at` (its top-left corner), 80x80.
fn field_with_square(w: u32, h: u32, at: (u32, u32)) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let inside = x >= at.0 && x < at.0 + 80 && y >= at.1 && y < at.1 + 80;
        if !inside {
            image::Rgb([128, 128, 128])
        } else if ((x - at.0) / 8 + (y - at.1) / 8).is_multiple_of(2) {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([255, 255, 0])
        }
    })
}

/// Pixels of the red/yellow square: a mix of the two keeps red high and
/// blue low, which the grey field never has.
fn square_pixels(img: &DynamicImage) -> usize {
    img.to_rgb8()
        .pixels()
        .filter(|p| p[0] > 180 && p[2] < 90 && p[0] as i32 - p[2] as i32 > 120)
        .count()
}

#[tokio::test]
async fn g_auto_keeps_a_salient_square_wherever_it_is() {
    let s = Server::start();
    // (size, square's corner, format); the centre crop of each misses it.
    let cases = [
        ((600, 300), (20, 20), ImageFormat::Png),
        ((600, 300), (500, 200), ImageFormat::Png),
        ((300, 600), (20, 500), ImageFormat::Png),
        ((300, 600), (200, 20), ImageFormat::Jpeg),
        ((600, 300), (480, 30), ImageFormat::Jpeg),
    ];
    for (i, ((w, h), at, format)) in cases.into_iter().enumerate() {
        let img: DynamicImage = field_with_square(w, h, at).into();
        let ext = if format == ImageFormat::Png {
            "png"
        } else {
            "jpg"
        };
        let key = format!("square{i}.{ext}");
        s.put(&key, &encode(&img, format));
        let what = format!("{w}x{h}, square at {at:?} ({ext})");

        let centre = image_of(&s, &format!("/{key}?w=100&h=100&fmt=png")).await;
        assert_eq!(
            square_pixels(&centre),
            0,
            "{what}: the centre crop misses it"
        );
        let out = image_of(&s, &format!("/{key}?w=100&h=100&g=auto&fmt=png")).await;
        assert_eq!(out.dimensions(), (100, 100));
        // The square is 80/3 ≈ 27 pixels wide in the answer: ~700 pixels.
        let n = square_pixels(&out);
        assert!(n > 400, "{what}: g=auto kept {n} pixels of the square");

        let (fx, fy) = focus_of(&json(&s, &format!("/{key}?fmt=json")).await);
        let (x, y) = (fx * w as f64, fy * h as f64);
        eprintln!("{what}: g=auto kept {n} pixels; focus ({x:.0}, {y:.0}) px");
        assert!(
            x > at.0 as f64 - 40.0
                && x < at.0 as f64 + 120.0
                && y > at.1 as f64 - 40.0
                && y < at.1 as f64 + 120.0,
            "{what}: focus ({fx:.3}, {fy:.3}) = ({x:.0}, {y:.0}) px, not at the square"
        );
    }
}

/// Stored sideways (Orientation 6), the square in the stored top-left
/// corner is shown top-right: the focus and the crop are upright.
#[tokio::test]
async fn the_focus_is_in_the_upright_image() {
    let s = Server::start();
    let stored: DynamicImage = field_with_square(600, 300, (20, 20)).into();
    s.put(
        "side.jpg",
        &with_orientation(&encode(&stored, ImageFormat::Jpeg), 6),
    );
    let v = json(&s, "/side.jpg?fmt=json").await;
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(300), Some(600))
    );
    let (fx, fy) = focus_of(&v);
    // Upright, the square is at x 200..280, y 20..100 of 300x600.
    assert!(fx > 0.55 && fy < 0.25, "focus ({fx:.3}, {fy:.3})");
    let out = image_of(&s, "/side.jpg?w=100&h=100&g=auto&fmt=png").await;
    let n = square_pixels(&out);
    assert!(n > 400, "g=auto kept {n} pixels of the square");
}

/// The upload's 201 names the same focus as `fmt=json`.
#[tokio::test]
async fn the_upload_answers_the_focus() {
    let s = Server::builder().uploads().start();
    let (status, up) = s.upload("u/subject.jpg", corpus_bytes(SUBJECT)).await;
    assert_eq!(status, StatusCode::CREATED, "{up}");
    let (fx, fy) = focus_of(&up);
    assert!(fx > 0.7 && (fy - 0.5).abs() < 0.2, "focus ({fx}, {fy})");
    let v = json(&s, "/u/subject.jpg?fmt=json").await;
    assert_eq!(v["focus"], up["focus"]);
}
