//! SPEC "Delivery" for originals: byte-identical bodies, HEAD, validators,
//! conditional requests, ranges, sniffed content types, streaming.

mod common;

use common::{Server, corpus_bytes};
use reqwest::StatusCode;

const VIDEO: &str = "video_1280x720_5s.mp4";
const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn bodies_are_byte_identical() {
    let s = Server::start();
    for (file, key) in [
        (PHOTO, "p.jpg"),
        (VIDEO, "v/clip.mp4"),
        ("rgba_1200x1200.png", "deep/er/x.png"),
    ] {
        s.put_corpus(file, key);
        let res = s.get(&format!("/{key}")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "accept-ranges"), "bytes");
        assert_eq!(res.content_length(), Some(corpus_bytes(file).len() as u64));
        assert_eq!(res.bytes().await.unwrap(), corpus_bytes(file), "{file}");
    }
}

#[tokio::test]
async fn content_type_is_sniffed_not_taken_from_the_name() {
    let s = Server::start();
    s.put_corpus(PHOTO, "misnamed.png");
    s.put_corpus(PHOTO, "no-extension");
    s.put_corpus(VIDEO, "clip.jpg");
    s.put("page.jpg", b"<html><script>alert(1)</script></html>");
    for (key, want) in [
        ("misnamed.png", "image/jpeg"),
        ("no-extension", "image/jpeg"),
        ("clip.jpg", "video/mp4"),
        ("page.jpg", "application/octet-stream"),
    ] {
        let res = s.get(&format!("/{key}")).await;
        assert_eq!(header(&res, "content-type"), want, "{key}");
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    }
}

#[tokio::test]
async fn head_has_the_get_headers_and_no_body() {
    let s = Server::start();
    s.put_corpus(VIDEO, "v.mp4");
    let get = s.get("/v.mp4").await;
    let head = s.client.head(s.url("/v.mp4")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    for h in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "accept-ranges",
        "cache-control",
    ] {
        assert_eq!(header(&head, h), header(&get, h), "{h}");
    }
    assert!(head.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn strong_etag_and_last_modified() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    let res = s.get("/p.jpg").await;
    let etag = header(&res, "etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{etag}"
    );
    let lm = httpdate::parse_http_date(header(&res, "last-modified")).unwrap();
    let mtime = std::fs::metadata(s.data().join("p.jpg"))
        .unwrap()
        .modified()
        .unwrap();
    assert!(mtime.duration_since(lm).unwrap().as_secs() < 1);
    // Stable across requests.
    assert_eq!(header(&s.get("/p.jpg").await, "etag"), etag);
}

#[tokio::test]
async fn conditional_requests() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    let first = s.get("/p.jpg").await;
    let etag = header(&first, "etag").to_owned();
    let lm = header(&first, "last-modified").to_owned();
    let future = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";

    let res = s.get_with("/p.jpg", &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&res, "etag"), etag);
    assert_eq!(header(&res, "last-modified"), lm);
    assert_eq!(
        header(&res, "cache-control"),
        header(&first, "cache-control")
    );
    // Nothing that would relabel the cached image.
    assert!(
        res.headers().get("content-type").is_none(),
        "{:?}",
        res.headers()
    );
    assert!(res.bytes().await.unwrap().is_empty());

    let res = s
        .get_with(
            "/p.jpg",
            &[("if-none-match", &format!("\"other\", {etag}"))],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = s.get_with("/p.jpg", &[("if-modified-since", &lm)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = s.get_with("/p.jpg", &[("if-modified-since", past)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    // RFC 9110: If-None-Match takes precedence over If-Modified-Since.
    let res = s
        .get_with(
            "/p.jpg",
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &future),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .get_with(
            "/p.jpg",
            &[("if-none-match", &etag), ("if-modified-since", past)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // HEAD too.
    let res = s
        .client
        .head(s.url("/p.jpg"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    // If-Match / If-Unmodified-Since fail with 412.
    let res = s.get_with("/p.jpg", &[("if-match", "\"other\"")]).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert!(
        res.headers().get("cache-control").is_none(),
        "an error answer is not for shared caches"
    );
    let res = s.get_with("/p.jpg", &[("if-unmodified-since", past)]).await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn an_overwritten_original_gets_a_new_etag() {
    let s = Server::builder()
        .config("[cache]\nrevalidate_secs = 0\n")
        .start();
    s.put_corpus(PHOTO, "p.jpg");
    let etag = header(&s.get("/p.jpg").await, "etag").to_owned();
    std::thread::sleep(std::time::Duration::from_millis(20));
    s.put_corpus(VIDEO, "p.jpg");
    let res = s.get_with("/p.jpg", &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(header(&res, "etag"), etag);
    assert_eq!(res.bytes().await.unwrap(), corpus_bytes(VIDEO));
}

#[tokio::test]
async fn single_ranges() {
    let s = Server::start();
    s.put_corpus(VIDEO, "v.mp4");
    let all = corpus_bytes(VIDEO);
    let len = all.len();
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len - 1),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=100-99999999", 100, len - 1),
        ("bytes=-99999999", 0, len - 1),
    ] {
        let res = s.get_with("/v.mp4", &[("range", range)]).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(res.content_length(), Some((end - start + 1) as u64));
        assert_eq!(res.bytes().await.unwrap(), &all[start..=end], "{range}");
    }
}

#[tokio::test]
async fn ranges_of_small_cached_originals_too() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    let all = corpus_bytes(PHOTO);
    let _warm = s.get("/p.jpg").await.bytes().await.unwrap();
    let res = s.get_with("/p.jpg", &[("range", "bytes=10-19")]).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap(), &all[10..20]);
}

#[tokio::test]
async fn unsatisfiable_and_multi_ranges() {
    let s = Server::start();
    s.put_corpus(VIDEO, "v.mp4");
    let len = corpus_bytes(VIDEO).len();
    for range in [
        format!("bytes={len}-"),
        "bytes=-0".to_owned(),
        format!("bytes={}-{}", len + 10, len + 20),
    ] {
        let res = s.get_with("/v.mp4", &[("range", &range)]).await;
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(header(&res, "content-range"), format!("bytes */{len}"));
        assert!(res.headers().get("cache-control").is_none());
    }
    let res = s.get_with("/v.mp4", &[("range", "bytes=0-1,5-9")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().len(), len);
    // A range whose If-Range no longer matches gets the whole body.
    let res = s
        .get_with(
            "/v.mp4",
            &[("range", "bytes=0-1"), ("if-range", "\"stale\"")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Conditional beats range.
    let etag = header(&s.get("/v.mp4").await, "etag").to_owned();
    let res = s
        .get_with(
            "/v.mp4",
            &[("range", "bytes=0-1"), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn empty_object() {
    let s = Server::start();
    s.put("empty.bin", b"");
    let res = s.get("/empty.bin").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.content_length(), Some(0));
    let res = s.get_with("/empty.bin", &[("range", "bytes=0-")]).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&res, "content-range"), "bytes */0");
}

/// A 1 GiB original is streamed: the server's peak memory stays far below it.
#[tokio::test]
async fn large_originals_stream_without_being_held_in_memory() {
    let s = Server::start();
    let f = std::fs::File::create(s.data().join("big.bin")).unwrap();
    f.set_len(1 << 30).unwrap(); // sparse: instant to create
    let mut res = s.get("/big.bin").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.content_length(), Some(1 << 30));
    let mut total = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        total += chunk.len() as u64;
    }
    assert_eq!(total, 1 << 30);
    let peak = s.peak_rss();
    assert!(
        peak < 200 << 20,
        "peak RSS {} MiB while streaming 1 GiB",
        peak >> 20
    );
    // A range in the middle is read with a ranged store read.
    let res = s
        .get_with("/big.bin", &[("range", "bytes=536870912-536870919")])
        .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap(), vec![0u8; 8]);
}

#[tokio::test]
async fn missing_keys_are_404_not_found() {
    let s = Server::start();
    let res = s.get("/nope.jpg").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.text().await.unwrap(), "Not Found");
    std::fs::create_dir_all(s.data().join("adir")).unwrap();
    assert_eq!(s.get("/adir").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("/nope.jpg?w=100").await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn only_get_and_head() {
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    for m in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let res = s
            .client
            .request(m.clone(), s.url("/p.jpg"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(header(&res, "allow"), "GET, HEAD");
    }
}

/// Media is never a document: `Content-Security-Policy: default-src 'none';
/// sandbox` keeps a stored HTML or SVG file from running script on our
/// origin even when opened directly, `Cross-Origin-Resource-Policy:
/// cross-origin` lets other origins embed public media, and what sniffs as
/// no known type is a download (`Content-Disposition: attachment`). The
/// headers are on 200, 206, HEAD and the 304 a cache refreshes its copy
/// from, and on 412/416.
#[tokio::test]
async fn media_answers_are_sandboxed_and_unknown_types_download() {
    const CSP: &str = "default-src 'none'; sandbox";
    let s = Server::start();
    s.put_corpus(PHOTO, "p.jpg");
    s.put("page.jpg", b"<html><script>alert(1)</script></html>");

    let page = s.get("/page.jpg").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "application/octet-stream");
    assert_eq!(header(&page, "content-disposition"), "attachment");
    assert_eq!(header(&page, "content-security-policy"), CSP);
    assert_eq!(
        header(&page, "cross-origin-resource-policy"),
        "cross-origin"
    );
    let head = s.client.head(s.url("/page.jpg")).send().await.unwrap();
    assert_eq!(header(&head, "content-disposition"), "attachment");
    assert_eq!(header(&head, "content-security-policy"), CSP);
    let part = s.get_with("/page.jpg", &[("range", "bytes=0-5")]).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&part, "content-disposition"), "attachment");
    assert_eq!(header(&part, "content-security-policy"), CSP);

    // An image is shown inline, sandboxed all the same.
    let photo = s.get("/p.jpg").await;
    assert_eq!(header(&photo, "content-type"), "image/jpeg");
    assert!(photo.headers().get("content-disposition").is_none());
    assert_eq!(header(&photo, "content-security-policy"), CSP);
    assert_eq!(
        header(&photo, "cross-origin-resource-policy"),
        "cross-origin"
    );
    let etag = header(&photo, "etag").to_owned();
    for (headers, status) in [
        ([("if-none-match", etag.as_str())], StatusCode::NOT_MODIFIED),
        ([("range", "bytes=0-9")], StatusCode::PARTIAL_CONTENT),
        ([("if-match", "\"other\"")], StatusCode::PRECONDITION_FAILED),
        (
            [("range", "bytes=999999999-")],
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
    ] {
        let res = s.get_with("/p.jpg", &headers).await;
        assert_eq!(res.status(), status, "{headers:?}");
        assert_eq!(header(&res, "content-security-policy"), CSP, "{status}");
        assert_eq!(
            header(&res, "cross-origin-resource-policy"),
            "cross-origin",
            "{status}"
        );
        assert!(res.headers().get("content-disposition").is_none());
    }
}
