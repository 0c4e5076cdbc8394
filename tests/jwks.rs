//! JWT keys from a JWKS document: a file, and a URL that is refreshed on a
//! schedule and on an unknown `kid` (throttled), as an identity provider
//! rotating its keys would need.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use common::auth::{Keys, claims, encoding_key, mint_with, rsa_keys};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn jwk(keys: &Keys, kid: &str) -> Jwk {
    let mut jwk =
        Jwk::from_encoding_key(&encoding_key(keys, Algorithm::RS256), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn jwks(keys: &[(&Keys, &str)]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|(k, kid)| jwk(k, kid)).collect(),
    })
    .unwrap()
}

fn token(keys: &Keys, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(str::to_owned);
    format!("Bearer {}", mint_with(keys, &h, &claims("alice")))
}

async fn status(s: &Server, auth: &str) -> StatusCode {
    s.get_with("/p/a.jpg", &[("authorization", auth)])
        .await
        .status()
}

#[tokio::test]
async fn jwks_file_picks_keys_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let a = rsa_keys(dir.path(), "a");
    let b = rsa_keys(dir.path(), "b");
    let other = rsa_keys(dir.path(), "other");
    std::fs::write(
        dir.path().join("jwks.json"),
        jwks(&[(&a, "key-a"), (&b, "key-b")]),
    )
    .unwrap();
    let config =
        "[jwt]\njwks_file = \"jwks.json\"\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n";
    let s = Server::builder().dir(dir).config(config).start();
    s.put_corpus(PHOTO, "p/a.jpg");
    assert_eq!(status(&s, &token(&a, Some("key-a"))).await, StatusCode::OK);
    assert_eq!(status(&s, &token(&b, Some("key-b"))).await, StatusCode::OK);
    // b's token labelled as a's key, an unknown kid, another key, no kid with two candidates.
    assert_eq!(
        status(&s, &token(&b, Some("key-a"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&s, &token(&a, Some("key-z"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&s, &token(&other, Some("key-a"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status(&s, &token(&a, None)).await, StatusCode::UNAUTHORIZED);
    assert!(
        s.metric(
            "mediaedge_auth_failures_total",
            &[("reason", "unknown_key")]
        )
        .await
            >= 2.0
    );
}

/// A JWKS endpoint whose document can be swapped, counting fetches.
struct Idp {
    url: String,
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

async fn idp(doc: String) -> Idp {
    let doc = Arc::new(Mutex::new(doc));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (doc.clone(), fetches.clone());
    let app = axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (d, f) = (d.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    d.lock().unwrap().clone()
                }
            }),
        )
        // `/redirect?<location>`: a 307 to the raw query, as a compromised
        // or misconfigured identity provider might answer.
        .route(
            "/redirect",
            axum::routing::get(
                |axum::extract::RawQuery(to): axum::extract::RawQuery| async move {
                    axum::response::Redirect::temporary(&to.unwrap_or_default())
                },
            ),
        )
        .route(
            "/loop",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/loop") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Idp { url, doc, fetches }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_follows_key_rotation_with_throttled_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let a = rsa_keys(dir.path(), "a");
    let b = rsa_keys(dir.path(), "b");
    let idp = idp(jwks(&[(&a, "2026-a")])).await;
    let config = format!(
        "[jwt]\njwks_url = \"{}\"\nallow_http_jwks = true\njwks_refresh_secs = 3600\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n",
        idp.url
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(PHOTO, "p/a.jpg");
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "loaded once at start"
    );
    assert_eq!(status(&s, &token(&a, Some("2026-a"))).await, StatusCode::OK);
    assert_eq!(
        status(&s, &token(&a, None)).await,
        StatusCode::OK,
        "one key: kid optional"
    );

    // The provider rotates to key b: the first token naming it triggers a refresh.
    *idp.doc.lock().unwrap() = jwks(&[(&b, "2026-b")]);
    assert_eq!(status(&s, &token(&b, Some("2026-b"))).await, StatusCode::OK);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Key a is gone: a new token signed by it is refused. (A token verified
    // before the rotation is remembered for at most 5 minutes.)
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("2026-a".into());
    let fresh = format!("Bearer {}", mint_with(&a, &h, &claims("bob")));
    assert_eq!(status(&s, &fresh).await, StatusCode::UNAUTHORIZED);

    // A flood of made-up kids does not become a flood of fetches.
    for i in 0..30 {
        let kid = format!("made-up-{i}");
        assert_eq!(
            status(&s, &token(&b, Some(&kid))).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(
        idp.fetches.load(Ordering::SeqCst) <= 3,
        "fetches: {}",
        idp.fetches.load(Ordering::SeqCst)
    );
    assert_eq!(status(&s, &token(&b, Some("2026-b"))).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_is_refreshed_on_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let a = rsa_keys(dir.path(), "a");
    let b = rsa_keys(dir.path(), "b");
    let idp = idp(jwks(&[(&a, "a")])).await;
    let config = format!(
        "[jwt]\njwks_url = \"{}\"\nallow_http_jwks = true\njwks_refresh_secs = 1\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n",
        idp.url
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(PHOTO, "p/a.jpg");
    // Rotation with no kid to hint at it: only the schedule can pick it up.
    *idp.doc.lock().unwrap() = jwks(&[(&b, "b")]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(idp.fetches.load(Ordering::SeqCst) >= 3);
    assert_eq!(status(&s, &token(&b, None)).await, StatusCode::OK);
    assert!(
        s.metric("mediaedge_jwks_refreshes_total", &[("result", "ok")])
            .await
            >= 2.0
    );
}

#[tokio::test]
async fn unreachable_jwks_url_starts_and_refuses_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let a = rsa_keys(dir.path(), "a");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "[jwt]\njwks_url = \"http://127.0.0.1:{port}/jwks.json\"\nallow_http_jwks = true\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n"
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(PHOTO, "p/a.jpg");
    let res = s
        .get_with("/p/a.jpg", &[("authorization", &token(&a, Some("a")))])
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.text().await.unwrap(), "Invalid or Expired Token.");
    // Public media is served meanwhile.
    s.put_corpus(PHOTO, "pub/a.jpg");
    assert_eq!(s.get("/pub/a.jpg").await.status(), StatusCode::OK);
}

/// Issue 14 item 16: keys fetched over plain http can be swapped by anyone
/// on the path, so an `http://` JWKS URL needs `jwt.allow_http_jwks = true`
/// (a local identity provider in tests or development); without it the
/// server refuses to start, naming the key.
#[tokio::test]
async fn plain_http_jwks_url_needs_the_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("http.toml");
    std::fs::write(
        &path,
        "[jwt]\njwks_url = \"http://127.0.0.1:1/jwks.json\"\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("started with a plain http jwks_url and no opt-in");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("jwt.jwks_url") && err.contains("allow_http_jwks"),
        "{err}"
    );
}

/// Issue 14 item 16: the JWKS fetch follows a redirect only on the URL's
/// own origin (scheme, host as written and port), at most a few times. A
/// redirect to another host — `localhost` is another host than
/// `127.0.0.1` — or to another port is refused: the keys that verify our
/// tokens come from the origin the operator named or from nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_redirects_stay_on_the_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let a = rsa_keys(dir.path(), "a");
    let other = idp(jwks(&[(&a, "a")])).await;
    let idp = idp(jwks(&[(&a, "a")])).await;
    let origin = idp
        .url
        .trim_end_matches("/.well-known/jwks.json")
        .to_owned();
    let port = origin.rsplit(':').next().unwrap().to_owned();
    for (i, (url, expected)) in [
        (
            format!("{origin}/redirect?/.well-known/jwks.json"),
            StatusCode::OK,
        ),
        (
            format!("{origin}/redirect?http://localhost:{port}/.well-known/jwks.json"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            format!("{origin}/redirect?{}", other.url),
            StatusCode::UNAUTHORIZED,
        ),
        (format!("{origin}/loop"), StatusCode::UNAUTHORIZED),
    ]
    .into_iter()
    .enumerate()
    {
        let before = idp.fetches.load(Ordering::SeqCst);
        let config = format!(
            "[jwt]\njwks_url = \"{url}\"\nallow_http_jwks = true\njwks_refresh_secs = 3600\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let s = Server::builder().dir(dir).config(&config).start();
        s.put_corpus(PHOTO, "p/a.jpg");
        assert_eq!(status(&s, &token(&a, Some("a"))).await, expected, "{url}");
        if i == 0 {
            assert!(idp.fetches.load(Ordering::SeqCst) > before, "{url}");
            continue;
        }
        assert_eq!(idp.fetches.load(Ordering::SeqCst), before, "{url}");
        assert_eq!(other.fetches.load(Ordering::SeqCst), 0, "{url}");
        let lines = s.stderr_lines();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("WARN") && l.contains("redirect")),
            "{url}: {lines:#?}"
        );
    }
}
