//! The CLI helpers that replace manual steps: `keygen` (a key pair, as
//! openssl would write it), `token` (a test JWT signed with the private
//! key), `sign` (a signed URL, scheme v2) and `health` (a running server's
//! `/_/health` or `/_/ready`). Pure functions but `health`; `main.rs` does
//! the rest of the I/O.

use std::borrow::Cow;
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::auth::signed::{UrlSigner, signed_path_and_query};
use crate::auth::unix_now;
use crate::variant::{VariantLimits, VariantRequest, raw_params};

/// Key types `keygen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyKind {
    /// RSA 2048 (RS256), what the SPEC's openssl commands make.
    Rsa,
    /// ECDSA P-256 (ES256).
    Ec,
    /// Ed25519 (EdDSA).
    Ed25519,
}

/// A PEM key pair: PKCS#8 private key and SPKI public key, the same
/// encodings `openssl genpkey` and `openssl pkey -pubout` write.
pub struct KeyPairPem {
    pub private_pem: String,
    pub public_pem: String,
}

pub fn keygen(kind: KeyKind) -> Result<KeyPairPem, String> {
    let fail = |e: aws_lc_rs::error::Unspecified| format!("key generation failed: {e}");
    let (private, public): (Vec<u8>, Vec<u8>) = match kind {
        KeyKind::Rsa => {
            let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(fail)?;
            let private: Pkcs8V1Der = kp.as_der().map_err(fail)?;
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        KeyKind::Ec => {
            let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(fail)?;
            let private = kp.to_pkcs8v1().map_err(fail)?;
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
        KeyKind::Ed25519 => {
            let kp = Ed25519KeyPair::generate().map_err(fail)?;
            let private = kp.to_pkcs8v1().map_err(fail)?;
            let public: PublicKeyX509Der = kp.public_key().as_der().map_err(fail)?;
            (private.as_ref().to_vec(), public.as_ref().to_vec())
        }
    };
    // LF line endings, as openssl writes (the pem crate defaults to CRLF).
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    Ok(KeyPairPem {
        private_pem: pem::encode_config(&pem::Pem::new("PRIVATE KEY", private), lf),
        public_pem: pem::encode_config(&pem::Pem::new("PUBLIC KEY", public), lf),
    })
}

/// What goes into a test token.
pub struct TokenSpec<'a> {
    pub private_pem: &'a [u8],
    /// `None`: RS256, ES256 or EdDSA by the key's type.
    pub alg: Option<Algorithm>,
    pub sub: &'a str,
    pub ttl: Duration,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub kid: Option<&'a str>,
    /// Extra claims, `name=value` (a JSON value, or else a string).
    pub claims: &'a [String],
}

/// Mints a JWT with `sub`, `iat`, `exp` (and `iss`, `aud`, extras).
pub fn mint_token(spec: &TokenSpec<'_>) -> Result<String, String> {
    let pem = spec.private_pem;
    let (key, alg) = match spec.alg {
        Some(alg) => (encoding_key(pem, alg)?, alg),
        None => [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .find_map(|alg| encoding_key(pem, alg).ok().map(|k| (k, alg)))
            .ok_or("not a PEM private key (RSA, EC P-256 or Ed25519)")?,
    };
    let now = unix_now();
    let mut claims = Map::new();
    claims.insert("sub".into(), spec.sub.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + spec.ttl.as_secs()).into());
    if let Some(iss) = spec.issuer {
        claims.insert("iss".into(), iss.into());
    }
    if let Some(aud) = spec.audience {
        claims.insert("aud".into(), aud.into());
    }
    for c in spec.claims {
        let (name, value) = c
            .split_once('=')
            .ok_or_else(|| format!("--claim {c}: expected name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        claims.insert(name.into(), value);
    }
    let mut header = Header::new(alg);
    header.kid = spec.kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing failed: {e}"))
}

fn encoding_key(pem: &[u8], alg: Algorithm) -> Result<EncodingKey, String> {
    use jsonwebtoken::AlgorithmFamily as F;
    let key = match alg.family() {
        F::Rsa => EncodingKey::from_rsa_pem(pem),
        F::Ec => EncodingKey::from_ec_pem(pem),
        F::Ed => EncodingKey::from_ed_pem(pem),
        F::Hmac => return Err("HMAC tokens are not accepted by mediaedge".into()),
    };
    let key = key.map_err(|e| format!("not a {alg:?} private key: {e}"))?;
    // Sign once to find out whether the key really fits the algorithm.
    jsonwebtoken::encode(&Header::new(alg), &Map::new(), &key)
        .map_err(|e| format!("not a {alg:?} private key: {e}"))?;
    Ok(key)
}

/// A v2 signed URL for `path` (`/signed/cat.jpg`, or with transform
/// parameters in a query) valid for `ttl`, on `base_url`.
pub fn sign_url(
    secret: &str,
    base_url: &str,
    path: &str,
    params: &[(&str, Option<String>)],
    ttl: Duration,
) -> Result<String, String> {
    let (raw_path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let key = crate::key::ObjectKey::from_request_path(raw_path).map_err(|e| e.to_string())?;
    let mut values = raw_params(query).map_err(|e| e.to_string())?;
    for (name, value) in params {
        if let (Some(i), Some(v)) = (crate::variant::PARAMS.iter().position(|p| p == name), value) {
            values[i] = Some(Cow::Owned(v.clone()));
        }
    }
    // Refuse what the server would refuse, rather than sign a URL that answers 400.
    let query_text: String = crate::variant::PARAMS
        .iter()
        .zip(&values)
        .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n}={}&", urlencode(v))))
        .collect();
    let lenient = VariantLimits {
        allowed_sizes: Vec::new(),
        max_dimension: 16383,
        ..crate::config::Config::embedded_default()
            .map_err(|e| e.to_string())?
            .transform
            .variants
    };
    // A preset's name is the server's to know: only its company is checked.
    let lenient = VariantLimits {
        presets: match values[crate::variant::P].as_deref() {
            Some(name) => std::sync::Arc::new([crate::variant::Preset {
                name: name.to_owned(),
                request: VariantRequest::parse(Some("w=1"), &lenient)
                    .map_err(|e| e.to_string())?
                    .ok_or("no preset")?,
            }]),
            None => lenient.presets,
        },
        ..lenient
    };
    VariantRequest::parse(Some(&query_text), &lenient).map_err(|e| e.to_string())?;
    let exp = unix_now() + ttl.as_secs();
    let path_and_query = signed_path_and_query(&UrlSigner::new(secret), &key, &values, exp);
    Ok(format!(
        "{}{path_and_query}",
        base_url.trim_end_matches('/')
    ))
}

fn urlencode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_pairs_sign_and_verify() {
        for (kind, alg) in [
            (KeyKind::Rsa, Algorithm::RS256),
            (KeyKind::Ec, Algorithm::ES256),
            (KeyKind::Ed25519, Algorithm::EdDSA),
        ] {
            let pair = keygen(kind).unwrap();
            assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
            let token = mint_token(&TokenSpec {
                private_pem: pair.private_pem.as_bytes(),
                alg: None,
                sub: "alice",
                ttl: Duration::from_secs(60),
                issuer: Some("me"),
                audience: None,
                kid: Some("k1"),
                claims: &["org=7".into(), "name=bob".into()],
            })
            .unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.alg, alg);
            assert_eq!(header.kid.as_deref(), Some("k1"));
            let key = crate::auth::keys::parse_public_pem(pair.public_pem.as_bytes())
                .ok()
                .unwrap();
            let mut v = jsonwebtoken::Validation::new(alg);
            v.set_issuer(&["me"]);
            let data =
                jsonwebtoken::decode::<Map<String, Value>>(&token, &key.decoding, &v).unwrap();
            assert_eq!(data.claims["sub"], "alice");
            assert_eq!(data.claims["org"], 7);
            assert_eq!(data.claims["name"], "bob");
        }
    }

    #[test]
    fn signing_with_the_wrong_family_is_an_error() {
        let pair = keygen(KeyKind::Ec).unwrap();
        let spec = TokenSpec {
            private_pem: pair.private_pem.as_bytes(),
            alg: Some(Algorithm::RS256),
            sub: "a",
            ttl: Duration::from_secs(1),
            issuer: None,
            audience: None,
            kid: None,
            claims: &[],
        };
        assert!(mint_token(&spec).is_err());
    }

    #[test]
    fn sign_url_checks_parameters() {
        let secret = "0123456789abcdef";
        let u = sign_url(
            secret,
            "http://h:1/",
            "/s/a b.jpg?w=150",
            &[("h", Some("100".into()))],
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            u.starts_with("http://h:1/s/a%20b.jpg?w=150&h=100&v=2&exp="),
            "{u}"
        );
        assert!(
            sign_url(
                secret,
                "http://h",
                "/s/a.jpg",
                &[("w", Some("0".into()))],
                Duration::ZERO
            )
            .is_err()
        );
        assert!(sign_url(secret, "http://h", "/s/../a.jpg", &[], Duration::ZERO).is_err());
        // What it prints verifies as v2, also for a key v1 could not sign.
        let u = sign_url(
            secret,
            "http://h",
            "/s/tom%20&%20jerry=1%3F.jpg",
            &[("w", Some("150".into()))],
            Duration::from_secs(60),
        )
        .unwrap();
        let (path, query) = u["http://h".len()..].split_once('?').unwrap();
        assert_eq!(path, "/s/tom%20%26%20jerry%3D1%3F.jpg");
        let key = crate::key::ObjectKey::from_request_path(path).unwrap();
        let v1_closed = crate::auth::signed::V1Window::refused_from(0);
        assert_eq!(
            UrlSigner::new(secret).verify(key.as_str(), Some(query), unix_now(), v1_closed),
            Ok(crate::auth::signed::Scheme::V2)
        );
    }
}

/// `mediaedge health`: GETs `/_/health` (or `/_/ready`) of the server at
/// `base`; `Ok` with the answer's first line on a 200, else why not.
pub fn health(base: &str, ready: bool, timeout: Duration) -> Result<String, String> {
    let path = if ready { "/_/ready" } else { "/_/health" };
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let mut res = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = res.status();
        // The answer is a word: at most 4 KiB of it is read.
        let mut body = Vec::new();
        while body.len() < 4096
            && let Ok(Some(chunk)) = res.chunk().await
        {
            body.extend_from_slice(&chunk);
        }
        let body = String::from_utf8_lossy(&body);
        let line = body
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        if status == reqwest::StatusCode::OK {
            Ok(format!("{url}: {line}"))
        } else {
            Err(format!("{url}: {status} {line}"))
        }
    })
}
