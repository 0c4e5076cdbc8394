//! Background re-encoding ("smaller bytes"): after a transform is served,
//! the server re-encodes it when idle and replaces the cached copy only
//! when the new one is smaller at equal or better SSIM (metric
//! `mediaedge_reencode_total{outcome="smaller"|"kept"}`);
//! `transform.reencode_queue = 0` turns it off. Checks SPEC "Delivery"'s
//! promises under it: a hit is the same image (size, picture), and a
//! changed body has a changed ETag.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::images::mean_abs_diff;
use common::{Server, corpus_bytes, decode};
use image::GenericImageView;
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const WEBP: &str = "w=500&h=700&fmt=webp";
const JPEG: &str = "w=500&h=700&fmt=jpeg";

/// How long to wait for one re-encode to finish, whatever its outcome.
/// They run on an idle-priority thread, only when the CPU has nothing else
/// to do: on a quiet machine a 500x700 takes 1-3 s here; with both cores
/// kept busy it starved until the transform timeout (30 s) ended it with
/// outcome `error`. A bound, not a timing assert: the wait returns on the
/// event.
const REENCODE_WAIT: Duration = Duration::from_secs(45);

/// `mediaedge_reencode_total` by outcome.
async fn outcomes(s: &Server) -> BTreeMap<String, f64> {
    let text = s.metrics_text().await;
    let mut by = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("mediaedge_reencode_total{"))
    {
        let Some((_, rest)) = line.split_once("outcome=\"") else {
            continue;
        };
        let outcome = rest.split('"').next().unwrap().to_owned();
        let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *by.entry(outcome).or_insert(0.0) += n;
    }
    by
}

fn total(o: &BTreeMap<String, f64>) -> f64 {
    o.values().sum()
}

fn count(o: &BTreeMap<String, f64>, outcome: &str) -> f64 {
    o.get(outcome).copied().unwrap_or(0.0)
}

/// Waits until one more re-encode has finished (any outcome); the outcomes then.
async fn next_reencode(s: &Server, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let now = outcomes(s).await;
        if total(&now) > total(before) {
            eprintln!(
                "re-encoded after {:.2} s: {now:?}",
                started.elapsed().as_secs_f64()
            );
            return now;
        }
        assert!(
            started.elapsed() < REENCODE_WAIT,
            "no re-encode finished in {REENCODE_WAIT:?}; outcomes so far {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each miss is re-encoded once; the hit after it is the same picture at
/// the same size, never larger; a smaller one has a new ETag (and the old
/// validator no longer matches), a kept one is the same bytes. A re-encode
/// that ends otherwise (`error` when a busy machine starved it past the
/// transform timeout) must leave the cached copy alone, and the case is
/// tried again on a fresh key, up to three times.
#[tokio::test]
async fn an_idle_server_reencodes_misses_keeping_only_smaller_ones() {
    let s = Server::start();
    let source = decode(&corpus_bytes(PHOTO));
    // Cover 500x700 of 4032x3024: the full height, the middle 2160 columns.
    let window = source.crop_imm((4032 - 2160) / 2, 0, 2160, 3024);
    let mut smaller_seen = 0;
    for (params, mime) in [(WEBP, "image/webp"), (JPEG, "image/jpeg")] {
        let mut done = false;
        for attempt in 0..3 {
            let key = format!("{}-{attempt}.jpg", &params[params.len() - 4..]);
            s.put_corpus(PHOTO, &key);
            let q = format!("/{key}?{params}");
            let before = outcomes(&s).await;
            let (h, first) = s.get_ok(&q).await;
            assert_eq!(h["x-cache"], "MISS", "{q}");
            let etag = h["etag"].to_str().unwrap().to_owned();
            let after = next_reencode(&s, &before).await;
            assert_eq!(
                total(&after) - total(&before),
                1.0,
                "{q}: one miss, one re-encode"
            );
            let smaller = count(&after, "smaller") - count(&before, "smaller");
            let kept = count(&after, "kept") - count(&before, "kept");

            let (h, second) = s.get_ok(&q).await;
            assert_eq!(h["x-cache"], "HIT", "{q}");
            assert_eq!(h["content-type"], mime);
            assert_eq!(h["content-length"], second.len().to_string().as_str());
            let (a, b) = (decode(&first), decode(&second));
            assert_eq!(b.dimensions(), (500, 700), "{q}");
            assert!(
                second.len() <= first.len(),
                "{q}: {} > {}",
                second.len(),
                first.len()
            );
            if smaller == 1.0 {
                smaller_seen += 1;
                assert!(
                    second.len() < first.len(),
                    "{q}: outcome smaller, {} vs {} bytes",
                    second.len(),
                    first.len()
                );
                assert_ne!(h["etag"], etag.as_str(), "{q}: new bytes, new ETag");
                // The same picture, no further from the source than the first.
                let (da, db) = (mean_abs_diff(&a, &window), mean_abs_diff(&b, &window));
                let ab = mean_abs_diff(&a, &b);
                eprintln!("{q}: first vs re-encoded {ab:.2}; vs source {da:.2} then {db:.2}");
                assert!(
                    ab < 3.0 && db <= da + 0.5,
                    "{q}: first vs re-encoded {ab:.2}; vs source {da:.2} then {db:.2}"
                );
                let res = s.get_with(&q, &[("if-none-match", &etag)]).await;
                assert_eq!(res.status(), StatusCode::OK, "{q}: the old ETag is stale");
            } else {
                assert_eq!(second, first, "{q}: not smaller, the same bytes");
                assert_eq!(h["etag"], etag.as_str());
            }
            if smaller + kept == 1.0 {
                done = true;
                break;
            }
            eprintln!("{q}: attempt {attempt} ended neither smaller nor kept: {after:?}");
        }
        assert!(
            done,
            "{params}: three re-encodes, none smaller or kept: {:?}",
            outcomes(&s).await
        );
    }
    // A re-encoder that never finds anything smaller does nothing: of a
    // photo's WebP and JPEG details, at least one gets smaller.
    assert!(smaller_seen >= 1, "neither derivative was made smaller");
}

/// With `reencode_queue = 0` nothing is re-encoded. A server with it on,
/// given the same miss at the same time, shows how long is long enough.
#[tokio::test]
async fn reencode_queue_0_turns_it_off() {
    let off = Server::builder()
        .config("[transform]\nreencode_queue = 0\n")
        .start();
    let on = Server::start();
    for s in [&off, &on] {
        s.put_corpus(PHOTO, "photo.jpg");
    }
    let q = format!("/photo.jpg?{JPEG}");
    let (h, first) = off.get_ok(&q).await;
    assert_eq!(h["x-cache"], "MISS");
    on.get_ok(&q).await;
    next_reencode(&on, &BTreeMap::new()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(total(&outcomes(&off).await), 0.0);
    let (h2, second) = off.get_ok(&q).await;
    assert_eq!(h2["x-cache"], "HIT");
    assert_eq!(second, first);
    assert_eq!(h2["etag"], h["etag"]);
}
