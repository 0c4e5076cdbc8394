//! SPEC "Access control", `signed` routes: `?exp=&sig=` over the canonical
//! string the README documents, signed here by an independent HMAC
//! implementation (Python's `hmac`) and by `mediaedge sign`.

mod common;

use common::Server;
use common::auth::now;
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const SECRET: &str = "test-signing-secret-0123456789";

fn signed_server() -> Server {
    let s = Server::builder()
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .config("[[route]]\nprefix = \"/signed/\"\naccess = \"signed\"\n")
        .start();
    s.put_corpus(PHOTO, "signed/cat one.jpg");
    s
}

/// base64url(HMAC-SHA256(secret, canonical)) computed by Python, following the README.
fn python_sig(canonical: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,hmac,hashlib,base64;print(base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(),sys.argv[2].encode(),hashlib.sha256).digest()).rstrip(b'=').decode())",
            SECRET,
            canonical,
        ])
        .output()
        .expect("python3");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn status_of(s: &Server, path: &str) -> StatusCode {
    s.get(path).await.status()
}

#[tokio::test]
async fn readme_canonical_string_signs_urls() {
    let s = signed_server();
    let exp = now() + 600;
    // The original: "/<key>?exp=<exp>".
    let sig = python_sig(&format!("/signed/cat one.jpg?exp={exp}"));
    let res = s
        .get(&format!("/signed/cat%20one.jpg?exp={exp}&sig={sig}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(
        res.bytes().await.unwrap().len(),
        common::corpus_bytes(PHOTO).len()
    );

    // With transform parameters, signed in the order w h fit fmt q dpr, whatever the URL order.
    let sig = python_sig(&format!(
        "/signed/cat one.jpg?w=150&h=150&fmt=webp&exp={exp}"
    ));
    let url =
        format!("/signed/cat%20one.jpg?fmt=webp&h=150&exp={exp}&w=150&sig={sig}&utm_source=x");
    let res = s.get(&url).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/webp");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (150, 150));
    // HEAD uses the same signature; a hit still needs it.
    let res = s.client.head(s.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let hit = s.get(&url).await;
    assert_eq!(hit.headers()["x-cache"], "HIT");
}

#[tokio::test]
async fn missing_wrong_or_expired_is_403() {
    let s = signed_server();
    let exp = now() + 600;
    let sig = python_sig(&format!("/signed/cat one.jpg?w=150&exp={exp}"));
    let good = format!("/signed/cat%20one.jpg?w=150&exp={exp}&sig={sig}");
    assert_eq!(status_of(&s, &good).await, StatusCode::OK);

    let past = now() - 1;
    let expired_sig = python_sig(&format!("/signed/cat one.jpg?w=150&exp={past}"));
    let other_secret = {
        // Same string, different key: computed by Python with another secret.
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import hmac,hashlib,base64,sys;print(base64.urlsafe_b64encode(hmac.new(b'another-secret-0123456789',sys.argv[1].encode(),hashlib.sha256).digest()).rstrip(b'=').decode())",
                &format!("/signed/cat one.jpg?w=150&exp={exp}"),
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    for (what, url) in [
        ("no signature", "/signed/cat%20one.jpg".to_owned()),
        ("no sig", format!("/signed/cat%20one.jpg?w=150&exp={exp}")),
        ("no exp", format!("/signed/cat%20one.jpg?w=150&sig={sig}")),
        (
            "expired",
            format!("/signed/cat%20one.jpg?w=150&exp={past}&sig={expired_sig}"),
        ),
        (
            "exp moved",
            format!("/signed/cat%20one.jpg?w=150&exp={}&sig={sig}", exp + 1),
        ),
        (
            "w changed",
            format!("/signed/cat%20one.jpg?w=1500&exp={exp}&sig={sig}"),
        ),
        (
            "w removed",
            format!("/signed/cat%20one.jpg?exp={exp}&sig={sig}"),
        ),
        ("fmt added", format!("{good}&fmt=png")),
        ("w given twice", format!("{good}&w=150")),
        (
            "other key",
            format!(
                "/signed/cat%20one.jpg?w=150&exp={exp}&sig={}",
                "A".repeat(43)
            ),
        ),
        (
            "other secret",
            format!("/signed/cat%20one.jpg?w=150&exp={exp}&sig={other_secret}"),
        ),
        (
            "sig not base64",
            format!("/signed/cat%20one.jpg?w=150&exp={exp}&sig=***"),
        ),
        (
            "other object",
            format!("/signed/dog.jpg?w=150&exp={exp}&sig={sig}"),
        ),
        ("missing object, no sig", "/signed/nothing.jpg".to_owned()),
    ] {
        let res = s.get(&url).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(res.headers().get("x-cache").is_none(), "{what}");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty() && !body.contains('\n'), "{what}: {body:?}");
    }
    for reason in [
        "signature_missing",
        "signature_invalid",
        "signature_expired",
    ] {
        assert!(
            s.metric(
                "mediaedge_auth_failures_total",
                &[("access", "signed"), ("reason", reason)]
            )
            .await
                >= 1.0,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn cli_sign_prints_a_working_url() {
    let s = signed_server();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args([
            "sign",
            "/signed/cat one.jpg",
            "--exp",
            "600",
            "--w",
            "150",
            "--h",
            "150",
            "--base-url",
            &s.base,
        ])
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let res = s.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!((img.width(), img.height()), (150, 150));
    // Without a secret, or with a bad parameter, the CLI refuses.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(["sign", "/signed/a.jpg"])
        .env_remove("MEDIAEDGE_SIGNING_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDIAEDGE_SIGNING_SECRET"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(["sign", "/signed/a.jpg", "--w", "zero"])
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn signed_route_without_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[[route]]\nprefix = \"/s/\"\naccess = \"signed\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("MEDIAEDGE_SIGNING_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDIAEDGE_SIGNING_SECRET"));
}
