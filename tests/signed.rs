//! SPEC "Access control", `signed` routes: `?v=2&exp=&sig=` over the
//! canonical string the README documents, signed here by the README's own
//! Python code (Python's `hmac` and `quote`, independent of ours) and by
//! `mediaedge sign`; and the v1 scheme (no `v`) through its transition window.

mod common;

use common::Server;
use common::auth::now;
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const SECRET: &str = "test-signing-secret-0123456789";

/// The default config plus a signed route.
fn signed_server() -> Server {
    signed_server_with("")
}

fn signed_server_with(config: &str) -> Server {
    let s = Server::builder()
        .env("MEDIAEDGE_SIGNING_SECRET", SECRET)
        .config(&format!(
            "{config}[[route]]\nprefix = \"/signed/\"\naccess = \"signed\"\n"
        ))
        .start();
    s.put_corpus(PHOTO, "signed/cat one.jpg");
    s
}

/// base64url(HMAC-SHA256(secret, canonical)) computed by Python: with a v1
/// canonical string, a v1 signature as the README described it.
fn python_sig(canonical: &str) -> String {
    python_sig_with(SECRET, canonical)
}

fn python_sig_with(secret: &str, canonical: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,hmac,hashlib,base64;print(base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(),sys.argv[2].encode(),hashlib.sha256).digest()).rstrip(b'=').decode())",
            secret,
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
    // The original: "v2\n/<key>\n\nexp=<exp>".
    let path = readme_signed_path(SECRET, "signed/cat one.jpg", &[], exp);
    assert!(
        path.starts_with(&format!("/signed/cat%20one.jpg?v=2&exp={exp}&sig=")),
        "{path}"
    );
    let res = s.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(
        res.bytes().await.unwrap().len(),
        common::corpus_bytes(PHOTO).len()
    );

    // With transform parameters, signed in the order w h fit fmt q dpr, whatever the URL order.
    let path = readme_signed_path(
        SECRET,
        "signed/cat one.jpg",
        &[("fmt", "webp"), ("h", "150"), ("w", "150")],
        exp,
    );
    assert!(
        path.starts_with(&format!(
            "/signed/cat%20one.jpg?w=150&h=150&fmt=webp&v=2&exp={exp}&sig="
        )),
        "{path}"
    );
    let sig = sig_of(&path);
    let url =
        format!("/signed/cat%20one.jpg?fmt=webp&h=150&exp={exp}&v=2&w=150&sig={sig}&utm_source=x");
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
    // v1 inside its window, so both schemes are checked here.
    let s = signed_server_with(&v1_window(&utc_date(30)));
    let exp = now() + 600;
    let past = now() - 1;
    let key = "signed/cat one.jpg";
    let w = [("w", "150")];
    let v1 = |secret: &str, exp: i64| {
        // As the v1 README described it: Python's HMAC over the raw string.
        let sig = python_sig_with(secret, &format!("/{key}?w=150&exp={exp}"));
        format!("/signed/cat%20one.jpg?w=150&exp={exp}&sig={sig}")
    };
    let v2 = |secret: &str, exp: i64| readme_signed_path(secret, key, &w, exp);
    let other_secret = "another-secret-0123456789";
    for (scheme, good, expired, other) in [
        (
            "v1",
            v1(SECRET, exp),
            v1(SECRET, past),
            v1(other_secret, exp),
        ),
        (
            "v2",
            v2(SECRET, exp),
            v2(SECRET, past),
            v2(other_secret, exp),
        ),
    ] {
        assert_eq!(status_of(&s, &good).await, StatusCode::OK, "{scheme}");
        let sig = sig_of(&good).to_owned();
        let unsigned = good.replace(&format!("&sig={sig}"), "");
        let mut cases = vec![
            ("no signature", "/signed/cat%20one.jpg".to_owned()),
            ("no sig", unsigned.clone()),
            ("no exp", good.replace(&format!("exp={exp}&"), "")),
            ("expired", expired),
            (
                "exp moved",
                good.replace(&format!("exp={exp}"), &format!("exp={}", exp + 1)),
            ),
            ("w changed", good.replace("w=150", "w=1500")),
            ("w removed", good.replace("w=150&", "")),
            ("fmt added", format!("{good}&fmt=png")),
            ("w given twice", format!("{good}&w=150")),
            ("other key", format!("{unsigned}&sig={}", "A".repeat(43))),
            ("other secret", other),
            ("sig not base64", format!("{unsigned}&sig=***")),
            ("other object", good.replace("cat%20one.jpg", "dog.jpg")),
            ("missing object, no sig", "/signed/nothing.jpg".to_owned()),
        ];
        if scheme == "v1" {
            cases.push(("v added", good.replace("&exp=", "&v=2&exp=")));
        } else {
            cases.push(("v removed", good.replace("v=2&", "")));
            cases.push(("v changed", good.replace("v=2", "v=3")));
            cases.push(("v given twice", format!("{good}&v=2")));
        }
        for (what, url) in cases {
            let res = s.get(&url).await;
            assert_eq!(
                res.status(),
                StatusCode::FORBIDDEN,
                "{scheme}: {what}: {url}"
            );
            assert!(res.headers().get("x-cache").is_none(), "{scheme}: {what}");
            let body = res.text().await.unwrap();
            assert!(
                !body.is_empty() && !body.contains('\n'),
                "{scheme}: {what}: {body:?}"
            );
        }
    }
    for reason in [
        "signature_missing",
        "signature_invalid",
        "signature_expired",
        "signature_version",
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
    // The one good v1 URL was counted.
    assert_eq!(s.metric("mediaedge_signed_urls_v1_total", &[]).await, 1.0);
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
    assert!(
        url.starts_with(&format!(
            "{}/signed/cat%20one.jpg?w=150&h=150&v=2&exp=",
            s.base
        )),
        "{url}"
    );
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

/// The README's Python signer (the ```python block under "### Signed
/// URLs"), run as written, then `signed_path(key, params, exp)`: the path
/// and query of a v2 URL. `params` are passed in the order given.
fn readme_signed_path(secret: &str, key: &str, params: &[(&str, &str)], exp: i64) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split_once("### Signed URLs")
        .expect("README has a Signed URLs section")
        .1;
    let block = section
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("a ```python block in Signed URLs")
        .0;
    let params = serde_json::Value::Object(
        params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect(),
    );
    let code = format!(
        "{block}\nimport json, sys\nprint(signed_path(sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])))\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &code, key, &params.to_string(), &exp.to_string()])
        .env("MEDIAEDGE_SIGNING_SECRET", secret)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.trim().lines().last().unwrap_or("").to_owned()
}

/// The `sig` of a path and query.
fn sig_of(path_and_query: &str) -> &str {
    path_and_query
        .rsplit_once("sig=")
        .map(|(_, s)| s.split('&').next().unwrap_or(""))
        .unwrap_or("")
}

/// `[signed_urls]` with the v1 window ending on `date`.
fn v1_window(date: &str) -> String {
    format!("[signed_urls]\naccept_v1_until = \"{date}\"\n")
}

/// A UTC date `days` from today, as `YYYY-MM-DD`.
fn utc_date(days: i64) -> String {
    chrono::DateTime::from_timestamp(now() + days * 86400, 0)
        .expect("a date")
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

/// Issue 14 item 10: v1 signed the decoded key and values raw, so a URL
/// signed for `w=150&h=100` also passed the signature check as
/// `w=150%26h%3D100` (answering 400 only later), and one signed for the
/// object `cat one.jpg?w=150` with `h=100` passed for `cat one.jpg` with
/// `w=150?h=100`. With the default config (v1 window open) every such URL
/// is 403 at the signature check; a key holding `?&=#` needs v2.
#[tokio::test]
async fn v1_ambiguous_replays_are_403() {
    let s = signed_server();
    s.put_corpus(PHOTO, "signed/cat one.jpg?w=150");
    let exp = now() + 600;
    let sig = python_sig(&format!("/signed/cat one.jpg?w=150&h=100&exp={exp}"));
    let sig_q = python_sig(&format!("/signed/cat one.jpg?w=150?h=100&exp={exp}"));
    for (what, url) in [
        (
            "w=150&h=100 as w=\"150&h=100\"",
            format!("/signed/cat%20one.jpg?w=150%26h%3D100&exp={exp}&sig={sig}"),
        ),
        (
            "\"cat one.jpg?w=150\" with h=100 as cat one.jpg with w=\"150?h=100\"",
            format!("/signed/cat%20one.jpg?w=150%3Fh%3D100&exp={exp}&sig={sig_q}"),
        ),
        (
            "the object \"cat one.jpg?w=150\" itself, under v1",
            format!("/signed/cat%20one.jpg%3Fw%3D150?h=100&exp={exp}&sig={sig_q}"),
        ),
    ] {
        let res = s.get(&url).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}: {url}");
        assert!(res.headers().get("x-cache").is_none(), "{what}");
    }
    // That object under v2.
    let path = readme_signed_path(SECRET, "signed/cat one.jpg?w=150", &[("h", "100")], exp);
    let res = s.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!(img.height(), 100);
}

/// v2 (`v=2`, the README's encoded canonical string): keys and values
/// with `& = ? # +`, spaces and non-ASCII round-trip; the same key signed
/// the v1 way is refused.
#[tokio::test]
async fn v2_round_trip_with_reserved_characters() {
    let s = signed_server();
    let key = "signed/tom & jerry=1?#2+ü.jpg";
    s.put_corpus(PHOTO, key);
    let exp = now() + 600;
    let path = readme_signed_path(SECRET, key, &[], exp);
    assert!(path.contains("v=2&"), "{path}");
    let res = s.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    assert_eq!(
        res.bytes().await.unwrap().len(),
        common::corpus_bytes(PHOTO).len()
    );
    let path = readme_signed_path(SECRET, key, &[("h", "100"), ("w", "150")], exp);
    let res = s.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let img = common::decode(&res.bytes().await.unwrap());
    assert_eq!(img.width().max(img.height()), 150);
    // v1 over the same key: ambiguous, refused.
    let v1 = python_sig(&format!("/{key}?exp={exp}"));
    let encoded = path.split_once('?').unwrap().0;
    let res = s.get(&format!("{encoded}?exp={exp}&sig={v1}")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// Only `v=2` (or no `v`: v1) is a scheme; anything else is 403, even with
/// a signature that is right for v1 or v2.
#[tokio::test]
async fn unknown_versions_are_403() {
    let s = signed_server_with(&v1_window(&utc_date(30)));
    let exp = now() + 600;
    let v1 = format!(
        "/signed/cat%20one.jpg?w=150&exp={exp}&sig={}",
        python_sig(&format!("/signed/cat one.jpg?w=150&exp={exp}"))
    );
    let v2 = readme_signed_path(SECRET, "signed/cat one.jpg", &[("w", "150")], exp);
    assert_eq!(status_of(&s, &v1).await, StatusCode::OK);
    assert_eq!(status_of(&s, &v2).await, StatusCode::OK);
    for v in ["3", "1", "", "02", "2.0", "v2", "%32%00", "garbage"] {
        let url = format!("{v1}&v={v}");
        assert_eq!(status_of(&s, &url).await, StatusCode::FORBIDDEN, "{url}");
        let url = v2.replace("v=2", &format!("v={v}"));
        assert_eq!(status_of(&s, &url).await, StatusCode::FORBIDDEN, "{url}");
    }
    let twice = format!("{v2}&v=2");
    assert_eq!(status_of(&s, &twice).await, StatusCode::FORBIDDEN);
    assert!(
        s.metric(
            "mediaedge_auth_failures_total",
            &[("access", "signed"), ("reason", "signature_version")]
        )
        .await
            >= 16.0
    );
}

/// `signed_urls.accept_v1_until`: v1 URLs pass through that date (UTC) and
/// are 403 after it; v2 URLs pass either way.
#[tokio::test]
async fn v1_accepted_until_the_configured_date() {
    let exp = now() + 600;
    let v1 = format!(
        "/signed/cat%20one.jpg?w=150&exp={exp}&sig={}",
        python_sig(&format!("/signed/cat one.jpg?w=150&exp={exp}"))
    );
    let v2 = readme_signed_path(SECRET, "signed/cat one.jpg", &[("w", "150")], exp);
    for (until, v1_status) in [
        (utc_date(1), StatusCode::OK),
        (utc_date(-1), StatusCode::FORBIDDEN),
        ("2020-01-01".to_owned(), StatusCode::FORBIDDEN),
    ] {
        let s = signed_server_with(&v1_window(&until));
        assert_eq!(status_of(&s, &v1).await, v1_status, "v1, until {until}");
        assert_eq!(
            status_of(&s, &v2).await,
            StatusCode::OK,
            "v2, until {until}"
        );
        let (accepted, refused) = if v1_status == StatusCode::OK {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        assert_eq!(
            s.metric("mediaedge_signed_urls_v1_total", &[]).await,
            accepted,
            "until {until}"
        );
        assert_eq!(
            s.metric(
                "mediaedge_auth_failures_total",
                &[("access", "signed"), ("reason", "signature_v1_refused")]
            )
            .await,
            refused,
            "until {until}"
        );
    }
}

/// Signed media is for the site that signed the URL: `Cross-Origin-
/// Resource-Policy: same-site` (and the media sandbox) on the answer and on
/// its 304.
#[tokio::test]
async fn signed_media_is_same_site_only() {
    let s = signed_server();
    let path = readme_signed_path(SECRET, "signed/cat one.jpg", &[("w", "150")], now() + 600);
    let res = s.get(&path).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cross-origin-resource-policy"], "same-site");
    assert_eq!(
        res.headers()["content-security-policy"],
        "default-src 'none'; sandbox"
    );
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = s.get_with(&path, &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.headers()["cross-origin-resource-policy"], "same-site");
}
