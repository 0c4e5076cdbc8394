//! SPEC "Delivery" keys: decoded, validated, reserved prefix — sent raw so
//! no client-side normalisation hides what the server does.

mod common;

use common::{Server, raw_get};

#[tokio::test]
async fn invalid_keys_are_400() {
    let s = Server::start();
    s.put("secret.txt", b"x");
    for target in [
        "/a/../secret.txt",
        "/a/%2e%2e/secret.txt",
        "/a/%2E%2e/secret.txt",
        "/./secret.txt",
        "/%2e/secret.txt",
        "/a//secret.txt",
        "/a%2F%2Fsecret.txt",
        "/secret.txt/",
        "/a%00b",
        "/a%5Cb",
        "/a\\b",
        "/%FF%FE",
        "/a%0Ab",
        "/",
    ] {
        let (status, body) = raw_get(&s.base, target).await;
        assert_eq!(status, 400, "{target}: {body}");
        assert!(!body.contains('\n'), "one line: {body:?}");
        assert!(body.starts_with("invalid key"), "{target}: {body}");
    }
}

#[tokio::test]
async fn key_length_limit_is_1024_decoded_bytes() {
    let s = Server::start();
    // Segments at most 255 bytes (the filesystem's name limit), 1024 in all.
    let seg = "a".repeat(255);
    let key = format!("b/{seg}/{seg}/{seg}/{}", &seg[..254]);
    assert_eq!(key.len(), 1024);
    s.put(&key, b"longest key");
    let (status, body) = raw_get(&s.base, &format!("/{key}")).await;
    assert_eq!((status, body.as_str()), (200, "longest key"));
    let (status, body) = raw_get(&s.base, &format!("/{key}c")).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "invalid key: longer than 1024 bytes")
    );
    // A name no filesystem can hold is not a key (issue 14, item 13).
    let (status, body) = raw_get(&s.base, &format!("/{}", "n".repeat(300))).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "invalid key: a segment is longer than 255 bytes")
    );
}

/// Issue 14, items 9 and 13: a key must be one every backend stores as
/// itself. `name#digits` is a multipart part to object_store's local
/// backend (publishing `orphan/a.jpg#1` once answered 502 and left a file
/// nobody could read or delete); a key not in NFC is a second spelling of
/// another key on stores that normalise names. Both are 400 on reads, and
/// refused at presign, so nothing is ever stored under them.
#[tokio::test]
async fn keys_no_backend_can_keep_are_400_everywhere() {
    let s = Server::builder().uploads().start();
    for (target, body) in [
        (
            "/orphan/a.jpg%231",
            "invalid key: a segment may not end in '#' followed by digits",
        ),
        (
            "/cafe%CC%81.jpg",
            "invalid key: not in Unicode normalization form C (NFC)",
        ),
    ] {
        let (status, got) = raw_get(&s.base, target).await;
        assert_eq!((status, got.as_str()), (400, body), "{target}");
    }
    for key in ["orphan/a.jpg#1", "cafe\u{301}.jpg"] {
        let req = s.admin_request(reqwest::Method::POST, "/_/uploads");
        let res = req
            .json(&serde_json::json!({ "key": key }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{key}");
        assert!(res.text().await.unwrap().contains("invalid key"), "{key}");
    }
    // A signature forged for such a key changes nothing: the path is refused first.
    let res = s
        .client
        .put(s.url("/_/uploads/orphan/a.jpg%231?exp=9999999999&max_bytes=10&type=any&sig=x"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(!s.data().join("orphan").exists());
    // The NFC spelling of the same name is an ordinary key.
    s.put("caf\u{e9}.jpg", b"composed");
    let (status, body) = raw_get(&s.base, "/caf%C3%A9.jpg").await;
    assert_eq!((status, body.as_str()), (200, "composed"));
}

#[tokio::test]
async fn percent_decoding_reaches_the_same_object() {
    let s = Server::start();
    s.put("dir/a b.txt", b"spaced");
    s.put("ü.txt", b"umlaut");
    s.put("odd#1?%.txt", b"odd");
    for target in [
        "/dir/a%20b.txt",
        "/dir%2Fa%20b.txt",
        "/%C3%BC.txt",
        "/odd%231%3F%25.txt",
    ] {
        let (status, _) = raw_get(&s.base, target).await;
        assert_eq!(status, 200, "{target}");
    }
}

#[tokio::test]
async fn reserved_prefix() {
    let s = Server::start();
    std::fs::create_dir_all(s.data().join("_")).unwrap();
    s.put("_/health", b"shadow");
    // Control routes answer; other `_/` paths are not objects.
    let (status, body) = raw_get(&s.base, "/_/health").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, _) = raw_get(&s.base, "/_/nothing").await;
    assert_eq!(status, 404);
    let (status, body) = raw_get(&s.base, "/%5F/health").await;
    assert_eq!(status, 400, "{body}");
}
