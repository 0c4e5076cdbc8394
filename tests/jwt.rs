//! SPEC "Access control", `jwt` routes: exact 401 answers, the attack set,
//! token sources, claim scoping, key sources (PEM, JWKS file, JWKS URL) and
//! the rule that the check comes before any cache lookup or store read.

mod common;

use common::Server;
use common::auth::{self, Keys, claims, mint, mint_with, now, raw_token, rsa_keys};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";
const MISSING: &str = "Not Found Token.";
const INVALID: &str = "Invalid or Expired Token.";

/// A server with `/private/` behind RS256 keys made by openssl.
fn private_server(extra_jwt: &str, extra: &str) -> (Server, Keys) {
    let dir = tempfile::tempdir().unwrap();
    let keys = rsa_keys(dir.path(), "idp");
    let config = format!(
        "[jwt]\npublic_key_file = \"{}\"\n{extra_jwt}\n[[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n{extra}",
        keys.public.display()
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus(PHOTO, "private/photo.jpg");
    s.put_corpus(PHOTO, "public/photo.jpg");
    (s, keys)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn expect_401(s: &Server, path: &str, headers: &[(&str, &str)], body: &str, what: &str) {
    let res = s.get_with(path, headers).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    if body == MISSING {
        assert_eq!(challenge, "Bearer", "{what}");
    } else {
        assert_eq!(challenge, "Bearer error=\"invalid_token\"", "{what}");
    }
    assert!(
        res.headers().get("x-cache").is_none(),
        "{what}: no cache was consulted"
    );
    assert_eq!(res.text().await.unwrap(), body, "{what}");
}

#[tokio::test]
async fn valid_token_reads_and_missing_token_is_401() {
    let (s, keys) = private_server("", "");
    let token = mint(&keys, &claims("alice"));
    let res = s
        .get_with("/private/photo.jpg", &[("authorization", &bearer(&token))])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    // Transforms work behind the check too.
    let res = s
        .get_with(
            "/private/photo.jpg?w=150&h=150",
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "private, max-age=3600");

    expect_401(&s, "/private/photo.jpg", &[], MISSING, "no token").await;
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("authorization", "Bearer ")],
        MISSING,
        "empty bearer",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("authorization", "Basic YTpi")],
        MISSING,
        "basic auth",
    )
    .await;
    // Public routes are untouched, with a public Cache-Control.
    let res = s.get("/public/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    // Every check on the jwt route was timed; refusals counted by reason.
    let checks = s
        .metric(
            "mediaedge_auth_duration_seconds_count",
            &[("access", "jwt")],
        )
        .await;
    assert_eq!(checks, 5.0);
    assert_eq!(
        s.metric(
            "mediaedge_auth_failures_total",
            &[("reason", "missing_token")]
        )
        .await,
        3.0
    );
}

/// At least 15 invalid tokens, each a known JWT attack or defect; all answer
/// exactly 401 `Invalid or Expired Token.` with `error="invalid_token"`.
#[tokio::test]
async fn attack_set_is_refused() {
    let (s, keys) = private_server("", "");
    let dir = tempfile::tempdir().unwrap();
    let attacker = rsa_keys(dir.path(), "attacker");
    let ec = auth::other_keys(dir.path(), "ec", Algorithm::ES256);
    let public_pem = keys.public_pem();
    let good = mint(&keys, &claims("alice"));
    let (g_head, g_payload, g_sig) = {
        let mut p = good.split('.');
        (
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
            p.next().unwrap().to_owned(),
        )
    };
    let hs = |alg: Algorithm, secret: &[u8]| {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims("alice"),
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let mut embedded = Header::new(Algorithm::RS256);
    embedded.jwk = Some(
        jsonwebtoken::jwk::Jwk::from_encoding_key(
            &auth::encoding_key(&attacker, Algorithm::RS256),
            Algorithm::RS256,
        )
        .unwrap(),
    );
    let mut jku = Header::new(Algorithm::RS256);
    jku.jku = Some("http://127.0.0.1:1/jwks.json".into());
    jku.kid = Some("attacker".into());
    let mut traversal_kid = Header::new(Algorithm::RS256);
    traversal_kid.kid = Some("../../../../dev/null".into());
    let public_der = {
        let text = String::from_utf8(public_pem.clone()).unwrap();
        let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
    };
    let forged_payload = auth::b64(
        json!({"sub": "admin", "exp": now() + 3600})
            .to_string()
            .as_bytes(),
    );

    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none, empty signature",
            raw_token(&json!({"alg": "none", "typ": "JWT"}), &claims("alice"), b""),
        ),
        ("alg none, no signature part", {
            let t = raw_token(&json!({"alg": "none"}), &claims("alice"), b"");
            t.trim_end_matches('.').to_owned()
        }),
        (
            "alg None (case)",
            raw_token(&json!({"alg": "None"}), &claims("alice"), b""),
        ),
        (
            "HS256 keyed with the public key PEM",
            hs(Algorithm::HS256, &public_pem),
        ),
        (
            "HS512 keyed with the public key PEM",
            hs(Algorithm::HS512, &public_pem),
        ),
        (
            "HS256 keyed with the public key DER",
            hs(Algorithm::HS256, &public_der),
        ),
        (
            "signed by another RSA key",
            mint(&attacker, &claims("alice")),
        ),
        (
            "attacker key embedded as jwk header",
            mint_with(&attacker, &embedded, &claims("alice")),
        ),
        (
            "jku header to attacker JWKS",
            mint_with(&attacker, &jku, &claims("alice")),
        ),
        (
            "kid path traversal, attacker signature",
            mint_with(&attacker, &traversal_kid, &claims("alice")),
        ),
        (
            "ES256 (not in the allow-list)",
            mint_with(&ec, &Header::new(Algorithm::ES256), &claims("alice")),
        ),
        (
            "expired an hour ago",
            mint(&keys, &json!({"sub": "alice", "exp": now() - 3600})),
        ),
        (
            "not valid for another hour",
            mint(
                &keys,
                &json!({"sub": "alice", "exp": now() + 7200, "nbf": now() + 3600}),
            ),
        ),
        ("no exp", mint(&keys, &json!({"sub": "alice"}))),
        (
            "exp is text",
            mint(&keys, &json!({"sub": "alice", "exp": "tomorrow"})),
        ),
        (
            "payload swapped, signature kept",
            format!("{g_head}.{forged_payload}.{g_sig}"),
        ),
        (
            "signature truncated",
            format!("{g_head}.{g_payload}.{}", &g_sig[..g_sig.len() / 2]),
        ),
        ("signature removed", format!("{g_head}.{g_payload}.")),
        ("two parts only", format!("{g_head}.{g_payload}")),
        ("four parts", format!("{good}.{g_sig}")),
        ("header is not base64", format!("!!!.{g_payload}.{g_sig}")),
        (
            "header is not JSON",
            format!("{}.{g_payload}.{g_sig}", auth::b64(b"hello")),
        ),
        ("header alg relabelled PS256", {
            let h = auth::b64(json!({"alg": "PS256", "typ": "JWT"}).to_string().as_bytes());
            format!("{h}.{g_payload}.{g_sig}")
        }),
        ("garbage", "abc".to_owned()),
        (
            "oversized",
            format!("{g_head}.{}.{g_sig}", "A".repeat(9000)),
        ),
    ];
    assert!(attacks.len() >= 15);
    for (what, token) in &attacks {
        expect_401(
            &s,
            "/private/photo.jpg",
            &[("authorization", &bearer(token))],
            INVALID,
            what,
        )
        .await;
    }
    // The good token still works, and every refusal was counted by reason.
    let res = s
        .get_with("/private/photo.jpg", &[("authorization", &bearer(&good))])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for reason in [
        "algorithm",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "claims",
        "malformed",
    ] {
        assert!(
            s.metric("mediaedge_auth_failures_total", &[("reason", reason)])
                .await
                >= 1.0,
            "no failure counted as {reason}"
        );
    }
    let total = s
        .metric("mediaedge_auth_failures_total", &[("access", "jwt")])
        .await;
    assert_eq!(total as usize, attacks.len());
}

#[tokio::test]
async fn check_precedes_cache_304_206_and_404() {
    let (s, keys) = private_server("", "");
    let token = mint(&keys, &claims("alice"));
    let auth = bearer(&token);
    // Warm the caches, original and derivative.
    let res = s
        .get_with("/private/photo.jpg", &[("authorization", &auth)])
        .await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let derived = s
        .get_with(
            "/private/photo.jpg?w=150&h=150",
            &[("authorization", &auth)],
        )
        .await;
    let d_etag = derived.headers()["etag"].to_str().unwrap().to_owned();
    let hit = s
        .get_with(
            "/private/photo.jpg?w=150&h=150",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(hit.headers()["x-cache"], "HIT");

    let store_reads = s.metric("mediaedge_store_requests_total", &[]).await;
    expect_401(
        &s,
        "/private/photo.jpg?w=150&h=150",
        &[],
        MISSING,
        "cache hit without token",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg?w=150&h=150",
        &[("if-none-match", &d_etag)],
        MISSING,
        "304 without token",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("if-none-match", &etag)],
        MISSING,
        "304 without token",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("range", "bytes=0-99")],
        MISSING,
        "206 without token",
    )
    .await;
    expect_401(
        &s,
        "/private/nothing-here.jpg",
        &[],
        MISSING,
        "404 without token",
    )
    .await;
    expect_401(
        &s,
        "/private/nothing-here.jpg",
        &[("authorization", "Bearer x.y.z")],
        INVALID,
        "404, bad token",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg?w=0",
        &[],
        MISSING,
        "bad parameter without token",
    )
    .await;
    let res = s
        .client
        .head(s.url("/private/photo.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.metric("mediaedge_store_requests_total", &[]).await,
        store_reads,
        "a refused request reached the store"
    );

    // With the token: 304, 206 and 404 as usual.
    let res = s
        .get_with(
            "/private/photo.jpg",
            &[("authorization", &auth), ("if-none-match", &etag)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    let res = s
        .get_with(
            "/private/photo.jpg",
            &[("authorization", &auth), ("range", "bytes=0-99")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.bytes().await.unwrap().len(), 100);
    let res = s
        .get_with("/private/nothing-here.jpg", &[("authorization", &auth)])
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// No spelling of a private key gets through the public default.
#[tokio::test]
async fn encoding_tricks_do_not_bypass_the_prefix() {
    let (s, _keys) = private_server("", "");
    for target in [
        "/%70rivate/photo.jpg",
        "/private%2Fphoto.jpg",
        "/PRIVATE/photo.jpg",
        "/Private/photo.jpg",
        "/%50RIVATE/photo.jpg",
        "/private/photo.jpg?w=150",
    ] {
        let (status, body) = common::raw_get(&s.base, target).await;
        assert_eq!(status, 401, "{target}");
        assert_eq!(body, MISSING, "{target}");
    }
    for target in [
        "//private/photo.jpg",
        "/public/../private/photo.jpg",
        "/public/..%2Fprivate/photo.jpg",
        "/public/%2e%2e/private/photo.jpg",
        "/public%2F%2E%2E%2Fprivate/photo.jpg",
        "/./private/photo.jpg",
        "/public//..//private/photo.jpg",
        "/public\\..\\private/photo.jpg",
    ] {
        let (status, _) = common::raw_get(&s.base, target).await;
        assert_eq!(status, 400, "{target}");
    }
}

/// Issue 14, item 9: route prefixes match with full Unicode case folding,
/// not `to_lowercase`. `ſ` (long s) is lower case already, so `/ſecret/`
/// was routed as public although a case-insensitive store finds `secret/`
/// under it; `ß` is `ss`; a decomposed accent is refused as a key (not NFC).
#[tokio::test]
async fn unicode_spellings_of_a_prefix_are_the_prefix() {
    let (s, _keys) = private_server(
        "",
        "[[route]]\nprefix = \"/secret/\"\naccess = \"jwt\"\n[[route]]\nprefix = \"/stra\u{DF}e/\"\naccess = \"jwt\"\n",
    );
    s.put("\u{17F}ecret/x.jpg", b"folded");
    for target in [
        "/%C5%BFecret/x.jpg",
        "/%C5%BFECRET/x.jpg",
        "/SECRET/x.jpg",
        "/strasse/x.jpg",
        "/STRASSE/x.jpg",
        "/stra%C3%9Fe/x.jpg",
    ] {
        let (status, body) = common::raw_get(&s.base, target).await;
        assert_eq!(status, 401, "{target}: {body}");
        assert_eq!(body, MISSING, "{target}");
    }
    let (status, _) = common::raw_get(&s.base, "/se%CC%81cret/x.jpg").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn cookie_carries_the_token() {
    let (s, keys) = private_server("cookie = \"mediaedge_token\"", "");
    let token = mint(&keys, &claims("alice"));
    let cookie = format!("theme=dark; mediaedge_token={token}");
    let res = s
        .get_with("/private/photo.jpg", &[("cookie", &cookie)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("cookie", "mediaedge_token=nope")],
        INVALID,
        "bad cookie",
    )
    .await;
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("cookie", "other=1")],
        MISSING,
        "other cookie",
    )
    .await;
}

#[tokio::test]
async fn cookie_is_ignored_unless_configured() {
    let (s, keys) = private_server("", "");
    let token = mint(&keys, &claims("alice"));
    let cookie = format!("mediaedge_token={token}");
    expect_401(
        &s,
        "/private/photo.jpg",
        &[("cookie", &cookie)],
        MISSING,
        "unconfigured cookie",
    )
    .await;
}

#[tokio::test]
async fn issuer_audience_and_leeway() {
    let (s, keys) = private_server(
        "issuer = \"https://idp.example\"\naudience = [\"media\", \"cdn\"]\nleeway_secs = 120",
        "",
    );
    let base = |extra: serde_json::Value| {
        let mut c =
            json!({"sub": "a", "exp": now() + 600, "iss": "https://idp.example", "aud": "media"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for (c, expected, what) in [
        (base(json!({})), StatusCode::OK, "all good"),
        (
            base(json!({"aud": ["x", "cdn"]})),
            StatusCode::OK,
            "one audience matches",
        ),
        (
            base(json!({"exp": now() - 60})),
            StatusCode::OK,
            "expired within the leeway",
        ),
        (
            base(json!({"nbf": now() + 60})),
            StatusCode::OK,
            "nbf within the leeway",
        ),
        (
            base(json!({"exp": now() - 300})),
            StatusCode::UNAUTHORIZED,
            "expired beyond the leeway",
        ),
        (
            base(json!({"iss": "https://evil.example"})),
            StatusCode::UNAUTHORIZED,
            "wrong issuer",
        ),
        (
            base(json!({"aud": "other"})),
            StatusCode::UNAUTHORIZED,
            "wrong audience",
        ),
        (
            json!({"sub": "a", "exp": now() + 600, "aud": "media"}),
            StatusCode::UNAUTHORIZED,
            "no issuer",
        ),
        (
            json!({"sub": "a", "exp": now() + 600, "iss": "https://idp.example"}),
            StatusCode::UNAUTHORIZED,
            "no audience",
        ),
    ] {
        let token = mint(&keys, &c);
        let res = s
            .get_with("/private/photo.jpg", &[("authorization", &bearer(&token))])
            .await;
        assert_eq!(res.status(), expected, "{what}");
    }
    let text = s.metrics_text().await;
    let count = |reason| {
        common::parse_metric(
            &text,
            "mediaedge_auth_failures_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(count("issuer"), 1.0);
    assert_eq!(count("audience"), 1.0);
    assert_eq!(
        count("claims"),
        2.0,
        "a missing iss or aud is a missing required claim"
    );
    assert_eq!(count("expired"), 1.0);
}

#[tokio::test]
async fn claim_scoping() {
    let (s, keys) = private_server(
        "",
        "[[route]]\nprefix = \"/users/{sub}/\"\naccess = \"jwt\"\n[[route]]\nprefix = \"/orgs/{org}/\"\naccess = \"jwt\"\ncache_control = \"no-store\"\n",
    );
    s.put_corpus(PHOTO, "users/alice/me.jpg");
    s.put_corpus(PHOTO, "users/bob/me.jpg");
    s.put_corpus(PHOTO, "orgs/7/logo.jpg");
    let alice = bearer(&mint(
        &keys,
        &json!({"sub": "alice", "exp": now() + 600, "org": 7}),
    ));
    let res = s
        .get_with(
            "/users/alice/me.jpg?w=150&h=150",
            &[("authorization", &alice)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = s
        .get_with("/orgs/7/logo.jpg", &[("authorization", &alice)])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    for path in [
        "/users/bob/me.jpg",
        "/users/bob/me.jpg?w=150&h=150",
        "/USERS/bob/me.jpg",
        "/users/ALICE/me.jpg",
        "/users/%62ob/me.jpg",
        "/orgs/8/logo.jpg",
        "/users/bob/missing.jpg",
    ] {
        let res = s.get_with(path, &[("authorization", &alice)]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.is_empty() && !body.contains('\n'), "{path}: {body:?}");
    }
    // Without a token it is still a 401, and a token without the claim is a 403.
    expect_401(&s, "/users/bob/me.jpg", &[], MISSING, "no token").await;
    let nosub = bearer(&mint(&keys, &json!({"exp": now() + 600})));
    let res = s
        .get_with("/users/alice/me.jpg", &[("authorization", &nosub)])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        s.metric(
            "mediaedge_auth_failures_total",
            &[("reason", "claim_mismatch")]
        )
        .await
            >= 7.0
    );
}

#[tokio::test]
async fn es256_and_eddsa_keys() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let dir = tempfile::tempdir().unwrap();
        let keys = auth::other_keys(dir.path(), "k", alg);
        let rsa = rsa_keys(dir.path(), "rsa");
        let config = format!(
            "[jwt]\npublic_key_file = \"{}\"\nalgorithms = [\"{alg:?}\"]\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n",
            keys.public.display()
        );
        let s = Server::builder().dir(dir).config(&config).start();
        s.put_corpus(PHOTO, "p/a.jpg");
        let token = mint_with(&keys, &Header::new(alg), &claims("alice"));
        let res = s
            .get_with("/p/a.jpg", &[("authorization", &bearer(&token))])
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{alg:?}");
        // RS256 is not allowed here, whatever key signed it.
        let token = mint(&rsa, &claims("alice"));
        expect_401(
            &s,
            "/p/a.jpg",
            &[("authorization", &bearer(&token))],
            INVALID,
            "RS256 on an ES/Ed route",
        )
        .await;
    }
}

#[tokio::test]
async fn bad_key_config_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let keys = rsa_keys(dir.path(), "k");
    for (config, needle) in [
        ("[jwt]\npublic_key_file = \"nope.pem\"\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n".to_owned(), "jwt.public_key_file"),
        (format!("[jwt]\npublic_key_file = \"{}\"\n[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n", keys.private.display()), "private key"),
        ("[jwt]\npublic_key_file = \"p.pem\"\nalgorithms = [\"HS256\"]\n".to_owned(), "jwt.algorithms"),
        ("[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\n".to_owned(), "route[0].access"),
        ("[[route]]\nprefix = \"/p/\"\naccess = \"jwt\"\ncache_control = \"public\"\n".to_owned(), "route[0]"),
        ("[[route]]\nprefix = \"/p/\"\nacess = \"jwt\"\n".to_owned(), "acess"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &config).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mediaedge"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{config}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{config}: {err}");
    }
}

/// Protected media may be embedded by the site it belongs to, not by any
/// other (`Cross-Origin-Resource-Policy: same-site`), and is never a
/// document that runs script (`Content-Security-Policy`), on 200, on a
/// derivative and on the 304 a browser refreshes its copy from. Public
/// media beside it stays embeddable anywhere.
#[tokio::test]
async fn protected_media_is_same_site_only() {
    const CSP: &str = "default-src 'none'; sandbox";
    let (s, keys) = private_server("", "");
    let auth = bearer(&mint(&keys, &claims("alice")));
    for path in ["/private/photo.jpg", "/private/photo.jpg?w=150"] {
        let res = s.get_with(path, &[("authorization", &auth)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["cross-origin-resource-policy"], "same-site");
        assert_eq!(res.headers()["content-security-policy"], CSP);
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let res = s
            .get_with(path, &[("authorization", &auth), ("if-none-match", &etag)])
            .await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(res.headers()["cross-origin-resource-policy"], "same-site");
        assert_eq!(res.headers()["content-security-policy"], CSP);
    }
    let res = s.get("/public/photo.jpg").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["cross-origin-resource-policy"],
        "cross-origin"
    );
}

/// Issue 14 item 16: without `jwt.audience` a token the issuer's key signed
/// for any other service passes here too. Allowed (one service per
/// identity provider needs no audience), but said once at start.
#[tokio::test]
async fn a_jwt_route_without_audience_warns_at_start() {
    let warnings = |s: &Server| {
        s.stderr_lines()
            .into_iter()
            .filter(|l| l.contains("WARN") && l.contains("jwt.audience"))
            .collect::<Vec<_>>()
    };
    let (s, _) = private_server("", "");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while warnings(&s).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let lines = warnings(&s);
    assert_eq!(lines.len(), 1, "{:#?}", s.stderr_lines());
    assert!(lines[0].contains("any audience"), "{}", lines[0]);

    let (s, _) = private_server("audience = \"media\"", "");
    assert_eq!(s.get("/public/photo.jpg").await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(warnings(&s).is_empty(), "{:#?}", s.stderr_lines());
}
