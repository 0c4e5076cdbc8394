//! Route access: which `[[route]]` a key falls under and whether this
//! request may read it. Runs on every request, after the key is parsed and
//! before anything else (variant, caches, store), so a cache hit, a 304, a
//! 206 and a missing key all need the token first.
//!
//! * `public`: anyone.
//! * `jwt`: a token from `Authorization: Bearer` or the configured cookie
//!   (`jwt.rs`, keys in `keys.rs`); `{claim}` segments of the prefix must
//!   equal the token's claims.
//! * `signed`: `?v=2&exp=&sig=`, or v1 without `v` until
//!   `signed_urls.accept_v1_until` (`signed.rs`).

pub mod jwt;
pub mod keys;
pub mod signed;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, HeaderValue};

use crate::config::{AccessKind, Config, DEFAULT_PUBLIC_CACHE_CONTROL};
use crate::key::ObjectKey;
use crate::route_prefix::{self as prefix, RoutePrefix};
use jwt::{JwtVerifier, TokenFault};
use signed::{Scheme, SignatureFault, UrlSigner, V1Window};

/// Why access is refused. The messages are the exact SPEC bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 401: no token in the header or the cookie.
    #[error("Not Found Token.")]
    MissingToken,
    /// 401: any token that does not verify.
    #[error("Invalid or Expired Token.")]
    InvalidToken(TokenFault),
    /// 403: a valid token whose claim does not match the path.
    #[error("Forbidden: this token does not grant access to this path.")]
    ClaimMismatch,
    /// 403: signed route without a valid, unexpired signature.
    #[error("Forbidden: missing, invalid or expired signature.")]
    Signature(SignatureFault),
    /// 401: admin API call without `Authorization: Bearer <admin key>`.
    #[error("Missing admin key.")]
    AdminKeyMissing,
    /// 403: admin API call with another key (or no admin key configured).
    #[error("Invalid admin key.")]
    AdminKeyInvalid,
}

impl AuthError {
    /// The label of `mediaedge_auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken(f) => f.reason(),
            AuthError::ClaimMismatch => "claim_mismatch",
            AuthError::Signature(f) => f.reason(),
            AuthError::AdminKeyMissing => "admin_key_missing",
            AuthError::AdminKeyInvalid => "admin_key_invalid",
        }
    }
}

/// One `[[route]]`, ready to use.
pub struct Route {
    prefix: Option<RoutePrefix>,
    pub access: AccessKind,
    /// Precomputed so a hit builds no header text.
    pub cache_control: HeaderValue,
    /// `Cross-Origin-Resource-Policy`, from the access kind.
    pub resource_policy: HeaderValue,
}

/// `Cross-Origin-Resource-Policy` for a route: public media may be embedded
/// by apps on any origin; protected media only by the site it belongs to,
/// so a page elsewhere cannot pull it in with the viewer's cookie.
fn resource_policy(access: AccessKind) -> HeaderValue {
    match access {
        AccessKind::Public => HeaderValue::from_static("cross-origin"),
        AccessKind::Jwt | AccessKind::Signed => HeaderValue::from_static("same-site"),
    }
}

impl Route {
    /// For logs: the prefix as configured, or `default`.
    pub fn name(&self) -> &str {
        self.prefix.as_ref().map_or("default", RoutePrefix::as_str)
    }
}

pub struct Access {
    routes: Vec<Route>,
    /// Where no prefix matches: public.
    default: Route,
    cookie: Option<String>,
    jwt: Option<JwtVerifier>,
    signer: Option<UrlSigner>,
    /// Until when unversioned (v1) signed URLs pass.
    v1_window: V1Window,
}

impl Access {
    /// Builds the route table and loads the JWT keys (a PEM or JWKS file that
    /// cannot be used is a start-up error).
    pub async fn new(config: &Config) -> Result<Self, String> {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Ok(Route {
                    prefix: Some(r.prefix.clone()),
                    access: r.access,
                    resource_policy: resource_policy(r.access),
                    cache_control: HeaderValue::from_str(&r.cache_control).map_err(|_| {
                        format!(
                            "route {}: cache_control is not a header value",
                            r.prefix.as_str()
                        )
                    })?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let needs_jwt = routes.iter().any(|r| r.access == AccessKind::Jwt);
        let jwt = match &config.jwt {
            Some(cfg) if needs_jwt => {
                let v = JwtVerifier::new(cfg).await?;
                tracing::info!(keys = v.key_count(), "JWT keys loaded");
                if cfg.audience.is_empty() {
                    // Allowed (one service per identity provider needs no
                    // audience), but a token minted for another service of
                    // the same provider passes here too: say so once.
                    let issuer = match cfg.issuer.as_slice() {
                        [] => "any".to_owned(),
                        list => list.join(", "),
                    };
                    tracing::warn!(
                        %issuer,
                        "jwt.audience is not set: tokens for any audience of this issuer/key are \
                         accepted; set jwt.audience to the aud your identity provider gives this service"
                    );
                }
                Some(v)
            }
            _ => None,
        };
        let v1_window = V1Window::refused_from(config.signed_urls.v1_refused_from);
        if routes.iter().any(|r| r.access == AccessKind::Signed) && v1_window.accepts(unix_now()) {
            tracing::warn!(
                until = %config.signed_urls.accept_v1_until,
                "signed URLs without v=2 (deprecated v1) are accepted until this day (UTC), \
                 then refused; sign v2 URLs (signed_urls.accept_v1_until)"
            );
        }
        Ok(Self {
            routes,
            default: Route {
                prefix: None,
                access: AccessKind::Public,
                resource_policy: resource_policy(AccessKind::Public),
                cache_control: HeaderValue::from_static(DEFAULT_PUBLIC_CACHE_CONTROL),
            },
            cookie: config.jwt.as_ref().and_then(|j| j.cookie.clone()),
            jwt,
            signer: config.secrets.signing_secret.as_deref().map(UrlSigner::new),
            v1_window,
        })
    }

    /// The route `key` falls under: the first matching prefix, else public.
    pub fn route(&self, key: &ObjectKey) -> &Route {
        if self.routes.is_empty() {
            return &self.default;
        }
        let folded = prefix::fold(key.as_str());
        let segments: Vec<&str> = folded.split('/').collect();
        self.routes
            .iter()
            .find(|r| r.prefix.as_ref().is_some_and(|p| p.matches(&segments)))
            .unwrap_or(&self.default)
    }

    /// Decides whether this request may read `key` under `route`.
    pub async fn check(
        &self,
        route: &Route,
        key: &ObjectKey,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        let started = Instant::now();
        let result = match route.access {
            AccessKind::Public => return Ok(()),
            AccessKind::Jwt => self.check_jwt(route, key, headers).await,
            AccessKind::Signed => match &self.signer {
                Some(s) => match s.verify(key.as_str(), query, unix_now(), self.v1_window) {
                    Ok(Scheme::V1) => {
                        crate::metrics::signed_url_v1_accepted();
                        Ok(())
                    }
                    Ok(Scheme::V2) => Ok(()),
                    Err(f) => Err(AuthError::Signature(f)),
                },
                // validate() refuses signed routes without a secret; refuse anyway.
                None => Err(AuthError::Signature(SignatureFault::Invalid)),
            },
        };
        crate::metrics::auth_checked(
            route.access.as_str(),
            started.elapsed(),
            result.as_ref().err().map(AuthError::reason),
        );
        result
    }

    async fn check_jwt(
        &self,
        route: &Route,
        key: &ObjectKey,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        let token = bearer_token(headers, self.cookie.as_deref()).ok_or(AuthError::MissingToken)?;
        let Some(jwt) = &self.jwt else {
            return Err(AuthError::InvalidToken(TokenFault::UnknownKey));
        };
        let verified = jwt
            .verify(token, unix_now())
            .await
            .map_err(AuthError::InvalidToken)?;
        if let Some(prefix) = &route.prefix {
            let segments: Vec<&str> = key.as_str().split('/').collect();
            for (i, claim) in prefix.claims() {
                let matches = verified
                    .claim_str(claim)
                    .is_some_and(|v| segments.get(i).is_some_and(|s| *s == v));
                if !matches {
                    return Err(AuthError::ClaimMismatch);
                }
            }
        }
        Ok(())
    }
}

/// The admin API's check: `Authorization: Bearer <MEDIAEDGE_ADMIN_KEY>`.
/// Compared as BLAKE3 hashes, whose equality is constant-time, so neither
/// the content nor the length of the key leaks through timing. Without a
/// configured key every call is refused.
pub fn check_admin(headers: &HeaderMap, admin_key: Option<&str>) -> Result<(), AuthError> {
    let result = match (authorization_bearer(headers), admin_key) {
        (None, _) => Err(AuthError::AdminKeyMissing),
        (Some(_), None) => Err(AuthError::AdminKeyInvalid),
        (Some(g), Some(k)) if blake3::hash(g.as_bytes()) == blake3::hash(k.as_bytes()) => Ok(()),
        (Some(_), Some(_)) => Err(AuthError::AdminKeyInvalid),
    };
    if let Err(e) = &result {
        crate::metrics::auth_checked("admin", std::time::Duration::ZERO, Some(e.reason()));
    }
    result
}

/// The credential of `Authorization: Bearer <credential>` (scheme case
/// ignored). Another scheme is not one; an empty one is none.
fn authorization_bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credential) = v.split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

/// The token from `Authorization: Bearer <token>` or else from the cookie.
fn bearer_token<'a>(headers: &'a HeaderMap, cookie: Option<&str>) -> Option<&'a str> {
    if let Some(t) = authorization_bearer(headers) {
        return Some(t);
    }
    let name = cookie?;
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|t| !t.is_empty())
}

/// Seconds since the Unix epoch (token `exp`, signed URL and upload expiry).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn token_sources() {
        let c = Some("me_token");
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer abc")]), c),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "bearer  abc ")]), c),
            Some("abc")
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Basic abc")]), c),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer ")]), c),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("authorization", "Bearer")]), c),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("cookie", "a=1; me_token=xyz; b=2")]), c),
            Some("xyz")
        );
        assert_eq!(
            bearer_token(
                &headers(&[("cookie", "a=1"), ("cookie", "me_token=\"q\"")]),
                c
            ),
            Some("q")
        );
        assert_eq!(
            bearer_token(&headers(&[("cookie", "me_token=xyz")]), None),
            None
        );
        assert_eq!(
            bearer_token(&headers(&[("cookie", "xme_token=xyz")]), c),
            None
        );
        assert_eq!(bearer_token(&headers(&[("cookie", "me_token=")]), c), None);
        // The header wins over the cookie.
        assert_eq!(
            bearer_token(
                &headers(&[("cookie", "me_token=c"), ("authorization", "Bearer h")]),
                c
            ),
            Some("h")
        );
        assert_eq!(
            bearer_token(
                &headers(&[("cookie", "me_token=c"), ("authorization", "Basic h")]),
                c
            ),
            Some("c")
        );
    }
}
