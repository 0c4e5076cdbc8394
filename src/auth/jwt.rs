//! JWT verification with `jsonwebtoken` (aws-lc backend).
//!
//! Only the algorithms in `jwt.algorithms` are accepted (never HMAC, never
//! `none`: the config refuses them and jsonwebtoken has no `none`); the key
//! is chosen by us from the configured source, never from the token (`jwk`,
//! `jku`, `x5u` header fields are ignored), and jsonwebtoken refuses a key
//! whose family does not match the algorithm. `exp` is required, `nbf`
//! honoured, `iss`/`aud` checked when configured, all with the leeway.
//!
//! A verified token is remembered (keyed by its BLAKE3 hash, bounded in
//! bytes, for at most [`VERIFIED_TTL`]) so a cache hit on a private route
//! costs a hash and a lookup, not an RSA verification. Its time claims are
//! re-checked on every use.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::{Map, Value};

use super::keys::KeyRing;
use crate::config::JwtConfig;

/// Longest token looked at; longer ones are malformed (headers are bounded anyway).
pub const MAX_TOKEN_BYTES: usize = 8192;
/// How long a verified token is remembered at most (so a key removed from a
/// JWKS stops being honoured within this time, even for cached tokens).
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Bytes of remembered tokens' claims.
const VERIFIED_CACHE_BYTES: u64 = 32 << 20;

/// Why a token is refused. Every one answers 401 `Invalid or Expired Token.`;
/// the reason goes to metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFault {
    Malformed,
    Algorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    Claims,
}

impl TokenFault {
    pub fn reason(self) -> &'static str {
        match self {
            TokenFault::Malformed => "malformed",
            TokenFault::Algorithm => "algorithm",
            TokenFault::UnknownKey => "unknown_key",
            TokenFault::BadSignature => "bad_signature",
            TokenFault::Expired => "expired",
            TokenFault::NotYetValid => "not_yet_valid",
            TokenFault::Issuer => "issuer",
            TokenFault::Audience => "audience",
            TokenFault::Claims => "claims",
        }
    }
}

/// A token that passed verification: its claims and time bounds.
#[derive(Debug)]
pub struct Verified {
    exp: u64,
    nbf: Option<u64>,
    pub claims: Map<String, Value>,
    weight: u32,
}

impl Verified {
    /// The same time rules jsonwebtoken applies, for a remembered token.
    fn check_time(&self, now: u64, leeway: u64) -> Result<(), TokenFault> {
        if self.exp.saturating_add(leeway) < now {
            return Err(TokenFault::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(TokenFault::NotYetValid);
        }
        Ok(())
    }

    /// A claim as text, for claim scoping (`"alice"`, or `42` as `"42"`).
    pub fn claim_str(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.claims.get(name)? {
            Value::String(s) => Some(s.as_str().into()),
            Value::Number(n) => Some(n.to_string().into()),
            _ => None,
        }
    }
}

pub struct JwtVerifier {
    keys: Arc<KeyRing>,
    /// One validation per allowed algorithm (jsonwebtoken checks the header's
    /// `alg` against the list, the key's family against the `alg`).
    validations: Vec<(Algorithm, Validation)>,
    leeway: u64,
    verified: moka::sync::Cache<[u8; 32], Arc<Verified>>,
}

impl JwtVerifier {
    pub async fn new(cfg: &JwtConfig) -> Result<Self, String> {
        let keys = KeyRing::load(cfg).await?;
        let validations = cfg
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = cfg.leeway_secs;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.set_required_spec_claims(&["exp"]);
                if !cfg.issuer.is_empty() {
                    v.set_issuer(&cfg.issuer);
                    v.required_spec_claims.insert("iss".into());
                }
                if cfg.audience.is_empty() {
                    // No audience configured: the token's `aud` is not ours to judge.
                    v.validate_aud = false;
                } else {
                    v.set_audience(&cfg.audience);
                    v.required_spec_claims.insert("aud".into());
                }
                (alg, v)
            })
            .collect();
        let verified = moka::sync::Cache::builder()
            .max_capacity(VERIFIED_CACHE_BYTES)
            .weigher(|_, v: &Arc<Verified>| v.weight)
            .time_to_live(VERIFIED_TTL)
            .build();
        Ok(Self {
            keys,
            validations,
            leeway: cfg.leeway_secs,
            verified,
        })
    }

    /// How many verification keys are loaded (for logs at start).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub async fn verify(&self, token: &str, now: u64) -> Result<Arc<Verified>, TokenFault> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenFault::Malformed);
        }
        let id = *blake3::hash(token.as_bytes()).as_bytes();
        if let Some(v) = self.verified.get(&id) {
            v.check_time(now, self.leeway)?;
            return Ok(v);
        }
        let header = decode_header(token).map_err(|_| TokenFault::Malformed)?;
        let Some((_, validation)) = self.validations.iter().find(|(a, _)| *a == header.alg) else {
            return Err(TokenFault::Algorithm);
        };
        let key = self
            .keys
            .find(header.kid.as_deref(), header.alg)
            .await
            .ok_or(TokenFault::UnknownKey)?;
        let data = decode::<Map<String, Value>>(token, &key.decoding, validation)
            .map_err(|e| fault(e.kind()))?;
        let claims = data.claims;
        let number = |name: &str| claims.get(name).and_then(Value::as_f64).map(|f| f as u64);
        let v = Arc::new(Verified {
            exp: number("exp").ok_or(TokenFault::Claims)?,
            nbf: number("nbf"),
            weight: u32::try_from(token.len() * 2 + 256).unwrap_or(u32::MAX),
            claims,
        });
        v.check_time(now, self.leeway)?;
        self.verified.insert(id, v.clone());
        Ok(v)
    }
}

fn fault(kind: &ErrorKind) -> TokenFault {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenFault::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenFault::Algorithm,
        ErrorKind::ExpiredSignature => TokenFault::Expired,
        ErrorKind::ImmatureSignature => TokenFault::NotYetValid,
        ErrorKind::InvalidIssuer => TokenFault::Issuer,
        ErrorKind::InvalidAudience => TokenFault::Audience,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => TokenFault::Claims,
        _ => TokenFault::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64, nbf: Option<u64>) -> Verified {
        Verified {
            exp,
            nbf,
            claims: Map::new(),
            weight: 0,
        }
    }

    #[test]
    fn remembered_tokens_keep_their_time_rules() {
        let v = verified(1000, Some(500));
        assert_eq!(v.check_time(1000, 0), Ok(()));
        assert_eq!(v.check_time(1001, 0), Err(TokenFault::Expired));
        assert_eq!(v.check_time(1060, 60), Ok(()));
        assert_eq!(v.check_time(1061, 60), Err(TokenFault::Expired));
        assert_eq!(v.check_time(499, 0), Err(TokenFault::NotYetValid));
        assert_eq!(v.check_time(440, 60), Ok(()));
    }

    #[test]
    fn claims_as_text() {
        let mut v = verified(0, None);
        v.claims.insert("sub".into(), "alice".into());
        v.claims.insert("uid".into(), 42.into());
        v.claims.insert("roles".into(), serde_json::json!(["a"]));
        assert_eq!(v.claim_str("sub").as_deref(), Some("alice"));
        assert_eq!(v.claim_str("uid").as_deref(), Some("42"));
        assert_eq!(v.claim_str("roles"), None);
        assert_eq!(v.claim_str("nope"), None);
    }
}
