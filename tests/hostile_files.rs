//! Crafted files that are small on disk and expensive to decode (issue 14,
//! items 1–4): none may abort the process, hold memory beyond the budget,
//! or keep a core busy past its timeout — whether it arrives as an upload
//! or is already stored and asked for by an anonymous `?w=8`.

mod common;

use std::time::Duration;

use common::hostile::{self, cpu_seconds};
use common::{Server, corpus_bytes};
use reqwest::StatusCode;

fn server(config: &str) -> Server {
    Server::builder().uploads().config(config).start()
}

/// Item 1: the nested EXIF pointer bomb, in every container that carries
/// EXIF, uploaded and then transformed. The orientation in IFD0 is still
/// read (the JPEG has Orientation 6, so its preview is portrait).
#[tokio::test]
async fn exif_pointer_bombs_neither_abort_nor_grow_memory() {
    let s = server("");
    let bomb = hostile::exif_pointer_bomb(500, 6);
    assert!(bomb.len() < 20 << 10, "{} bytes", bomb.len());
    let files = [
        ("bomb.jpg", hostile::jpeg_with_exif(64, 32, &bomb)),
        ("bomb.png", hostile::png_with_exif(64, 32, &bomb)),
        ("bomb.webp", hostile::webp_with_exif(64, 32, &bomb)),
    ];
    for (key, bytes) in &files {
        let (status, body) = s.upload(key, bytes.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{key}: {body}");
        // Orientation 6 swaps the sides.
        assert_eq!(
            (body["width"].as_u64(), body["height"].as_u64()),
            (Some(32), Some(64)),
            "{key}"
        );
        let res = s.get(&format!("/{key}?w=8")).await;
        assert_eq!(res.status(), StatusCode::OK, "{key}");
        let img = common::decode(&res.bytes().await.unwrap());
        assert_eq!((img.width(), img.height()), (8, 16), "{key}");
    }
    // Stored straight into the data directory, asked for anonymously.
    s.put("stored/bomb.jpg", &files[0].1);
    assert_eq!(s.get("/stored/bomb.jpg?w=8").await.status(), StatusCode::OK);
    assert_eq!(s.get("/_/health").await.status(), StatusCode::OK);
    assert!(
        s.peak_rss() < 150 << 20,
        "peak RSS {} MiB",
        s.peak_rss() >> 20
    );
}

/// Item 3: a compressed ICC profile that inflates to 256 MiB inside an 8x8
/// PNG, and a 50 MP 16-bit gray+alpha PNG of 200 KB, each transformed:
/// the profile is dropped unread, the big PNG is shrunk row by row.
#[tokio::test]
async fn expanding_pngs_stay_small_in_memory() {
    let s = server("");
    let icc = hostile::png_iccp_bomb(256 << 20);
    assert!(icc.len() < 300 << 10, "{} bytes", icc.len());
    s.put("icc.png", &icc);
    let res = s.get("/icc.png?w=4").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(common::decode(&res.bytes().await.unwrap()).width(), 4);

    let ga16 = hostile::png_gray_alpha16(8000, 6250);
    assert!(ga16.len() < 400 << 10, "{} bytes", ga16.len());
    s.put("ga16.png", &ga16);
    let res = s.get("/ga16.png?w=4").await;
    assert_eq!(res.status(), StatusCode::OK);
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (4, 3));
    // Decoded whole and widened, the second alone is 400 MB.
    assert!(
        s.peak_rss() < 150 << 20,
        "peak RSS {} MiB",
        s.peak_rss() >> 20
    );
}

/// Item 3's burst target: 40 concurrent transforms of such files (the two
/// PNGs above, an animated WebP, the EXIF bomb) keep the process within
/// 256 MB, whatever order the pool takes them in.
#[tokio::test]
async fn forty_concurrent_expanding_files_stay_within_256_mb() {
    let s = server("");
    s.put("icc.png", &hostile::png_iccp_bomb(256 << 20));
    s.put("ga16.png", &hostile::png_gray_alpha16(8000, 6250));
    s.put("anim.webp", &corpus_bytes("anim_480x300_6f.webp"));
    s.put(
        "exif.jpg",
        &hostile::jpeg_with_exif(64, 32, &hostile::exif_pointer_bomb(500, 1)),
    );
    let keys = ["icc.png", "ga16.png", "anim.webp", "exif.jpg"];
    let mut running = Vec::new();
    for i in 0..40 {
        // Distinct widths: every request is a miss.
        let url = s.url(&format!("/{}?w={}", keys[i % 4], 4 + i));
        let client = s.client.clone();
        running.push(tokio::spawn(async move {
            client.get(url).send().await.unwrap().status()
        }));
    }
    for r in running {
        let status = r.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    assert!(
        s.peak_rss() < 256 << 20,
        "peak RSS {} MiB",
        s.peak_rss() >> 20
    );
}

/// Item 4: 300 identical end-of-band AC scans over an 8192x8192 image
/// (150 KB) are refused at the scan limit, before the CPU is spent; a real
/// progressive photo still decodes.
#[tokio::test]
async fn progressive_scan_bomb_is_refused_at_the_scan_limit() {
    let s = server("");
    let bomb = hostile::progressive_scan_bomb(8192, 8192, 300);
    assert!(bomb.len() < 200 << 10, "{} bytes", bomb.len());
    s.put("scans.jpg", &bomb);
    // Refused at scan 101 of 300, by the decoder's scan count (the message
    // says so): the work is bounded by the limit, not by the file.
    let res = s.get("/scans.jpg?w=8").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(body.contains("more scans than a JPEG may have"), "{body}");
    // Uploads are refused the same way, and nothing is stored.
    let (status, _) = s.upload("up/scans.jpg", bomb).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!s.data().join("up/scans.jpg").exists());
    s.put_corpus("progressive_2560x1600.jpg", "p.jpg");
    assert_eq!(s.get("/p.jpg?w=100").await.status(), StatusCode::OK);
}

/// Item 4: a transform past its timeout stops using the CPU (libjpeg's
/// progress monitor ends it) instead of finishing unobserved.
#[tokio::test]
async fn a_transform_past_its_timeout_stops_using_the_cpu() {
    let s = server("[transform]\ntimeout_secs = 0.3\nworkers = 1\nqueue = 0\n");
    // 99 scans (under the limit) over 96 MP: several seconds of decoding.
    s.put("slow.jpg", &hostile::progressive_scan_bomb(12000, 8000, 99));
    let res = s.get("/slow.jpg?w=8").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Give the job a moment to notice, then the server must be idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(s.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_seconds(s.pid()) - before;
    assert!(spent < 0.3, "{spent:.2} s of CPU after the timeout");
    // The only worker is free again (a small image: 0.3 s is short on a
    // loaded machine).
    let mut small = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut small)
        .encode_image(&common::images::pattern(64, 48))
        .unwrap();
    s.put("p.jpg", &small);
    assert_eq!(s.get("/p.jpg?w=32").await.status(), StatusCode::OK);
}

/// Item 2: an upload's image check runs under the transform pool's
/// admission, deadline and memory budget. While it runs, the pool's one
/// place is taken (a viewer's miss is refused); when it times out the
/// upload answers 503 and the decode stops with it, freeing the place.
#[tokio::test]
async fn upload_checks_hold_a_pool_slot_until_the_decode_ends() {
    let s =
        server("[transform]\ntimeout_secs = 1.0\nworkers = 1\nqueue = 0\nrefusal_delay_ms = 0\n");
    s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
    let slow = hostile::progressive_scan_bomb(12000, 8000, 99);
    let mut uploads = Vec::new();
    for i in 0..3 {
        let presigned = s
            .presign(serde_json::json!({ "key": format!("slow{i}.jpg") }))
            .await;
        let body = slow.clone();
        uploads.push(tokio::spawn(async move { presigned.put(body).await.0 }));
    }
    // While checks run, a transform finds the only place taken.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.get("/p.jpg?w=100").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    for u in uploads {
        // Each waited for the place (up to the timeout) or was checked and
        // timed out: never a decode running beside another.
        assert_eq!(u.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }
    for i in 0..3 {
        assert!(!s.data().join(format!("slow{i}.jpg")).exists());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(s.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = cpu_seconds(s.pid()) - before;
    assert!(
        spent < 0.3,
        "{spent:.2} s of CPU after the uploads were refused"
    );
    assert_eq!(s.get("/p.jpg?w=100").await.status(), StatusCode::OK);
}

/// The shapes above as fuzz seeds (`fuzz/seeds/image_decode/`, copied into
/// the corpus by `fuzz/seed.sh`), scaled down to fit the fuzzer's 256 KB
/// input limit. The committed files must be what these generators make, so
/// the fuzzer starts from the attacks the tests know;
/// `MEDIAEDGE_WRITE_SEEDS=1 cargo test --test hostile_files fuzz_seeds`
/// rewrites them after a generator changes.
#[test]
fn fuzz_seeds_match_the_generators() {
    let bomb = hostile::exif_pointer_bomb(500, 6);
    let seeds: [(&str, Vec<u8>); 9] = [
        // Animations: every GIF disposal, and more frames than the fuzz
        // target's max_frames (64).
        (
            "disposal.gif",
            common::animation::disposal_gif(8, Some(gif::Repeat::Infinite)).0,
        ),
        ("many-frames.gif", common::animation::many_frames_gif(100)),
        ("exif-bomb.jpg", hostile::jpeg_with_exif(64, 32, &bomb)),
        ("exif-bomb.png", hostile::png_with_exif(64, 32, &bomb)),
        ("exif-bomb.webp", hostile::webp_with_exif(64, 32, &bomb)),
        ("iccp-bomb.png", hostile::png_iccp_bomb(16 << 20)),
        ("gray-alpha16.png", hostile::png_gray_alpha16(2000, 1500)),
        (
            "scan-bomb.jpg",
            hostile::progressive_scan_bomb(2048, 2048, 300),
        ),
        (
            "slow-scans.jpg",
            hostile::progressive_scan_bomb(4000, 3000, 99),
        ),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/image_decode");
    let write = std::env::var_os("MEDIAEDGE_WRITE_SEEDS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds {
        assert!(bytes.len() <= 262_144, "{name}: {} bytes", bytes.len());
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(committed == bytes, "{name} differs from its generator");
    }
}
