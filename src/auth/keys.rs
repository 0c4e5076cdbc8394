//! JWT verification keys: a PEM public key, a JWKS file or a JWKS URL.
//!
//! Keys are parsed once and kept per `kid`. A JWKS source is re-read on a
//! schedule (`jwt.jwks_refresh_secs`) and when a token names a `kid` we do
//! not know (key rotation at the identity provider), at most once per
//! [`UNKNOWN_KID_REFRESH_INTERVAL`] so a flood of made-up `kid`s cannot turn
//! into a flood of fetches. The JWKS refresh is ours: jsonwebtoken only
//! parses JWKs.
//!
//! A JWKS URL is https (unless `jwt.allow_http_jwks`), and a redirect is
//! followed only to the URL's own origin — same scheme, host as written
//! (no DNS: `localhost` is not `127.0.0.1`) and port — at most
//! [`MAX_JWKS_REDIRECTS`] times: whoever answers the fetch chooses the keys
//! every token is checked against.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::config::{JwtConfig, KeySource};

/// Fewest seconds between two refreshes caused by unknown `kid`s.
pub const UNKNOWN_KID_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Same-origin redirects followed per fetch (a moved path, a trailing slash).
pub const MAX_JWKS_REDIRECTS: usize = 3;

/// Why a JWKS fetch did not follow a redirect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    #[error(
        "redirect to another origin ({0}) refused: keys come only from the origin of jwt.jwks_url"
    )]
    OtherOrigin(String),
    #[error("more than {MAX_JWKS_REDIRECTS} redirects")]
    TooMany,
}

/// The redirect rule: `previous` are the URLs fetched so far, the first
/// being `jwt.jwks_url` itself; `next` is where the answer points.
fn check_redirect(next: &reqwest::Url, previous: &[reqwest::Url]) -> Result<(), RedirectRefused> {
    if previous.len() > MAX_JWKS_REDIRECTS {
        return Err(RedirectRefused::TooMany);
    }
    // Opaque origins (no http(s) URL) never compare equal: refused too.
    match previous.first() {
        Some(first) if first.origin() == next.origin() => Ok(()),
        _ => Err(RedirectRefused::OtherOrigin(
            next.origin().ascii_serialization(),
        )),
    }
}

/// The HTTP client for a JWKS URL: the timeout, the redirect rule, and
/// https only unless plain http is allowed.
fn jwks_client(allow_http: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .https_only(!allow_http)
        .redirect(reqwest::redirect::Policy::custom(
            |attempt| match check_redirect(attempt.url(), attempt.previous()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            },
        ))
        .build()
}

/// An error with its causes (reqwest's own message leaves out why a
/// redirect failed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One verification key.
pub struct Key {
    pub decoding: DecodingKey,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Algorithm>,
}

impl Key {
    fn fits(&self, alg: Algorithm) -> bool {
        self.decoding.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }
}

#[derive(Default)]
struct KeySet {
    /// A PEM key: used whatever `kid` the token names.
    pinned: Option<Arc<Key>>,
    by_kid: HashMap<String, Arc<Key>>,
    unnamed: Vec<Arc<Key>>,
}

impl KeySet {
    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        if let Some(k) = &self.pinned {
            return Some(k.clone());
        }
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(|k| k.fits(alg)).cloned(),
            // No kid: only if exactly one key could have made this signature.
            None => {
                let mut fitting = self
                    .by_kid
                    .values()
                    .chain(&self.unnamed)
                    .filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(k), None) => Some(k.clone()),
                    _ => None,
                }
            }
        }
    }

    fn len(&self) -> usize {
        usize::from(self.pinned.is_some()) + self.by_kid.len() + self.unnamed.len()
    }
}

/// The current keys and how to refresh them.
pub struct KeyRing {
    source: KeySource,
    set: RwLock<Arc<KeySet>>,
    /// When the last refresh after start began (`None`: none yet, so the
    /// first unknown `kid` refreshes at once); the lock also makes refreshes
    /// one at a time.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    http: Option<reqwest::Client>,
}

impl KeyRing {
    /// Loads the keys. A PEM or JWKS file that cannot be read or parsed is a
    /// start-up error; an unreachable JWKS URL is not (the identity provider
    /// may be down for a moment): we start without keys and keep trying.
    pub async fn load(cfg: &JwtConfig) -> Result<Arc<Self>, String> {
        let http = match &cfg.keys {
            KeySource::JwksUrl(_) => Some(
                jwks_client(cfg.allow_http_jwks)
                    .map_err(|e| format!("jwt.jwks_url: HTTP client: {e}"))?,
            ),
            _ => None,
        };
        let ring = Arc::new(Self {
            source: cfg.keys.clone(),
            set: RwLock::new(Arc::new(KeySet::default())),
            last_refresh: tokio::sync::Mutex::new(None),
            http,
        });
        match ring.fetch().await {
            Ok(set) => ring.install(set),
            Err(e) if matches!(cfg.keys, KeySource::JwksUrl(_)) => {
                tracing::warn!(error = %e, "JWKS not loaded at start; will retry");
            }
            Err(e) => return Err(e),
        }
        if !matches!(cfg.keys, KeySource::PublicKeyFile(_)) {
            let weak = Arc::downgrade(&ring);
            let every = cfg.jwks_refresh;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(ring) = weak.upgrade() else { return };
                    ring.refresh().await;
                }
            });
        }
        Ok(ring)
    }

    /// The key for a token's `kid` and `alg`; an unknown `kid` triggers one
    /// (throttled) refresh of a JWKS source before giving up.
    pub async fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<Arc<Key>> {
        if let Some(k) = self.current().lookup(kid, alg) {
            return Some(k);
        }
        if matches!(self.source, KeySource::PublicKeyFile(_)) {
            return None;
        }
        {
            // Waiting here also means: a refresh another request started is
            // finished before we look again.
            let mut last = self.last_refresh.lock().await;
            if last.is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFRESH_INTERVAL) {
                self.refresh_locked(&mut last).await;
            }
        }
        self.current().lookup(kid, alg)
    }

    /// How many keys are loaded now.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn install(&self, set: KeySet) {
        let set = Arc::new(set);
        match self.set.write() {
            Ok(mut g) => *g = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
    }

    /// Re-reads the source; on failure the old keys stay.
    async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        self.refresh_locked(&mut last).await;
    }

    async fn refresh_locked(&self, last: &mut Option<Instant>) {
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::debug!(keys = set.len(), "JWKS refreshed");
                crate::metrics::jwks_refresh("ok");
                self.install(set);
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the old keys");
                crate::metrics::jwks_refresh("error");
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        match &self.source {
            KeySource::PublicKeyFile(path) => {
                let pem = tokio::fs::read(path).await.map_err(|e| {
                    format!("jwt.public_key_file: cannot read {}: {e}", path.display())
                })?;
                let key = parse_public_pem(&pem)
                    .map_err(|e| format!("jwt.public_key_file: {}: {e}", path.display()))?;
                Ok(KeySet {
                    pinned: Some(Arc::new(key)),
                    ..Default::default()
                })
            }
            KeySource::JwksFile(path) => {
                let text = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("jwt.jwks_file: cannot read {}: {e}", path.display()))?;
                parse_jwks(&text).map_err(|e| format!("jwt.jwks_file: {}: {e}", path.display()))
            }
            KeySource::JwksUrl(url) => {
                let body = self
                    .download(url)
                    .await
                    .map_err(|e| format!("jwt.jwks_url: {url}: {e}"))?;
                parse_jwks(&body).map_err(|e| format!("jwt.jwks_url: {url}: {e}"))
            }
        }
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let mut res = http.get(url).send().await.map_err(|e| with_causes(&e))?;
        if !res.status().is_success() {
            return Err(format!("answered {}", res.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| with_causes(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A PEM public key of any family we verify (RSA, EC, Ed25519).
pub fn parse_public_pem(pem: &[u8]) -> Result<Key, String> {
    if String::from_utf8_lossy(pem).contains("PRIVATE KEY-----") {
        return Err("this is a private key; give the public key (`openssl rsa -pubout`)".into());
    }
    let decoding = DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| {
            "not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\" as `openssl rsa -pubout` writes)"
                .to_owned()
        })?;
    Ok(Key {
        decoding,
        alg: None,
    })
}

/// A JWKS document. Keys we cannot use (symmetric, encryption-only, unknown
/// types) are skipped rather than failing the whole set.
fn parse_jwks(text: &[u8]) -> Result<KeySet, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut set = KeySet::default();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
            || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
        {
            continue;
        }
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        if decoding.family() == AlgorithmFamily::Hmac {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => match format!("{a:?}").parse::<Algorithm>() {
                Ok(a) => Some(a),
                Err(_) => continue, // an encryption algorithm: not for us
            },
        };
        let key = Arc::new(Key { decoding, alg });
        match jwk.common.key_id {
            Some(kid) => {
                set.by_kid.insert(kid, key);
            }
            None => set.unnamed.push(key),
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7517 appendix A.1 public keys.
    const JWKS: &str = r#"{"keys":[
      {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},
      {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"},
      {"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow","kid":"hmac"},
      {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","kid":"any-rsa"},
      {"kty":"weird","kid":"w"}
    ]}"#;

    #[test]
    fn jwks_keeps_usable_keys_per_kid() {
        let set = parse_jwks(JWKS.as_bytes()).unwrap();
        assert_eq!(set.len(), 2, "enc, oct and unknown keys are skipped");
        assert!(set.lookup(Some("2011-04-29"), Algorithm::RS256).is_some());
        // The JWK pins RS256: the same key is not offered for PS256 or ES256.
        assert!(set.lookup(Some("2011-04-29"), Algorithm::PS256).is_none());
        assert!(set.lookup(Some("any-rsa"), Algorithm::PS256).is_some());
        assert!(set.lookup(Some("any-rsa"), Algorithm::ES256).is_none());
        assert!(set.lookup(Some("hmac"), Algorithm::RS256).is_none());
        assert!(set.lookup(Some("nope"), Algorithm::RS256).is_none());
        // Two RSA keys fit RS256: a token without kid is ambiguous.
        assert!(set.lookup(None, Algorithm::RS256).is_none());
        assert!(set.lookup(None, Algorithm::PS256).is_some());
    }

    #[test]
    fn redirects_stay_on_the_jwks_url_origin() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let start = [url("https://idp.example/.well-known/jwks.json")];
        for same in [
            "https://idp.example/keys",
            "https://IDP.example:443/other?x=1",
        ] {
            assert_eq!(check_redirect(&url(same), &start), Ok(()), "{same}");
        }
        for (other, origin) in [
            ("http://idp.example/keys", "http://idp.example"),
            ("https://evil.example/keys", "https://evil.example"),
            ("https://idp.example:8443/keys", "https://idp.example:8443"),
            ("https://sub.idp.example/keys", "https://sub.idp.example"),
        ] {
            assert_eq!(
                check_redirect(&url(other), &start),
                Err(RedirectRefused::OtherOrigin(origin.into())),
                "{other}"
            );
        }
        // The host as written: a name and its address are two origins.
        let local = [url("http://127.0.0.1:8081/jwks.json")];
        assert!(check_redirect(&url("http://localhost:8081/jwks.json"), &local).is_err());
        assert!(check_redirect(&url("file:///etc/jwks.json"), &local).is_err());
        // Each hop is held to the first URL's origin, a few times at most.
        let mut hops = vec![start[0].clone()];
        for _ in 0..MAX_JWKS_REDIRECTS {
            assert_eq!(check_redirect(&url("https://idp.example/k"), &hops), Ok(()));
            hops.push(url("https://idp.example/k"));
        }
        assert_eq!(
            check_redirect(&url("https://idp.example/k"), &hops),
            Err(RedirectRefused::TooMany)
        );
    }

    #[test]
    fn bad_documents_are_errors() {
        assert!(parse_jwks(b"{}").is_err());
        assert!(parse_jwks(b"not json").is_err());
        assert_eq!(parse_jwks(br#"{"keys":[]}"#).unwrap().len(), 0);
    }

    #[test]
    fn pem_refuses_private_keys_and_garbage() {
        assert!(parse_public_pem(b"hello").is_err());
        let private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(
            parse_public_pem(private)
                .err()
                .unwrap()
                .contains("private key")
        );
        assert!(
            parse_public_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }
}
