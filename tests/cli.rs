//! The README recipe with the CLI helpers: `mediaedge keygen` → config →
//! `mediaedge token` → request; and `token` on keys openssl made.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use common::Server;
use reqwest::StatusCode;

fn mediaedge(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mediaedge"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn private_server(dir: tempfile::TempDir, extra: &str) -> Server {
    let config = format!(
        "[jwt]\npublic_key_file = \"public.pem\"\n{extra}\n[[route]]\nprefix = \"/private/\"\naccess = \"jwt\"\n"
    );
    let s = Server::builder().dir(dir).config(&config).start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "private/a.jpg");
    s
}

#[tokio::test]
async fn keygen_token_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = mediaedge(dir.path(), &["keygen"]);
    assert!(ok, "{err}");
    let private = dir.path().join("private.pem");
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is readable by its owner only");
    // openssl reads both, and they are one pair.
    let derived = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(derived.status.success());
    assert_eq!(
        derived.stdout,
        std::fs::read(dir.path().join("public.pem")).unwrap()
    );
    // A second keygen does not overwrite.
    let (ok, _, err) = mediaedge(dir.path(), &["keygen"]);
    assert!(!ok && err.contains("--force"), "{err}");

    let (ok, token, err) = mediaedge(
        dir.path(),
        &[
            "token",
            "--key",
            "private.pem",
            "--sub",
            "alice",
            "--ttl",
            "1h",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(token.split('.').count(), 3);
    let s = private_server(dir, "");
    let res = s
        .get_with(
            "/private/a.jpg",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn token_from_openssl_keys_with_claims() {
    let dir = tempfile::tempdir().unwrap();
    let keys = common::auth::rsa_keys(dir.path(), "k");
    std::fs::rename(&keys.public, dir.path().join("public.pem")).unwrap();
    let key = keys.private.to_string_lossy().into_owned();
    let (ok, token, err) = mediaedge(
        dir.path(),
        &[
            "token", "--key", &key, "--sub", "bob", "--ttl", "15m", "--iss", "me", "--aud",
            "media", "--kid", "k1", "--claim", "org=7",
        ],
    );
    assert!(ok, "{err}");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(&token)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["org"], 7);
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 900);
    let s = private_server(dir, "issuer = \"me\"\naudience = \"media\"");
    let res = s
        .get_with(
            "/private/a.jpg",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A TTL that is not a duration is refused by name.
    let (ok, _, err) = mediaedge(
        s.dir.path(),
        &["token", "--key", &key, "--sub", "bob", "--ttl", "soon"],
    );
    assert!(!ok && err.contains("ttl"), "{err}");
}
