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
    // A name no filesystem can hold is simply not there.
    let (status, body) = raw_get(&s.base, &format!("/{}", "n".repeat(300))).await;
    assert_eq!((status, body.as_str()), (404, "Not Found"));
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
