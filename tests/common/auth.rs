//! Keys made by the openssl commands the SPEC names, and tokens minted with
//! jsonwebtoken (plus hand-made ones no library would make: `alg: none`...).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A key pair on disk.
pub struct Keys {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Keys {
    pub fn private_pem(&self) -> Vec<u8> {
        std::fs::read(&self.private).unwrap()
    }

    pub fn public_pem(&self) -> Vec<u8> {
        std::fs::read(&self.public).unwrap()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Exactly: `openssl genpkey -algorithm RSA -out private.pem -pkeyopt
/// rsa_keygen_bits:2048 && openssl rsa -pubout -in private.pem -out public.pem`
/// (in `dir`, with `name` in place of `private`/`public` prefixes).
pub fn rsa_keys(dir: &Path, name: &str) -> Keys {
    let private = format!("{name}-private.pem");
    let public = format!("{name}-public.pem");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-out",
            &private,
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
    );
    openssl(dir, &["rsa", "-pubout", "-in", &private, "-out", &public]);
    Keys {
        private: dir.join(private),
        public: dir.join(public),
    }
}

/// P-256 (`ES256`) or Ed25519 (`EdDSA`) with `openssl genpkey` / `openssl pkey -pubout`.
pub fn other_keys(dir: &Path, name: &str, alg: Algorithm) -> Keys {
    let private = format!("{name}-private.pem");
    let public = format!("{name}-public.pem");
    match alg {
        Algorithm::ES256 => openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                &private,
            ],
        ),
        Algorithm::EdDSA => openssl(dir, &["genpkey", "-algorithm", "ED25519", "-out", &private]),
        other => panic!("no openssl recipe for {other:?}"),
    }
    openssl(dir, &["pkey", "-pubout", "-in", &private, "-out", &public]);
    Keys {
        private: dir.join(private),
        public: dir.join(public),
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `sub` and an `exp` an hour from now.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iat": now()})
}

pub fn encoding_key(keys: &Keys, alg: Algorithm) -> EncodingKey {
    let pem = keys.private_pem();
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .unwrap()
}

/// A token signed with `keys` (RS256 unless `header` says otherwise).
pub fn mint_with(keys: &Keys, header: &Header, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, &encoding_key(keys, header.alg)).unwrap()
}

pub fn mint(keys: &Keys, claims: &Value) -> String {
    mint_with(keys, &Header::new(Algorithm::RS256), claims)
}

pub fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

/// A token assembled by hand from a JSON header and payload and a signature.
pub fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}
