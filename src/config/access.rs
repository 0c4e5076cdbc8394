//! `[jwt]`, `[[route]]` and `[signed_urls]`: who may read what. Raw as
//! written → checked, like the rest of the config; errors name the key
//! (`route[1].access: ...`).

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;

use super::{ConfigError, Secrets, in_range, secs_in_range};
use crate::route_prefix::RoutePrefix;

/// `Cache-Control` on routes without their own: browsers and CDNs keep public
/// media an hour and revalidate with the ETag after that.
pub const DEFAULT_PUBLIC_CACHE_CONTROL: &str = "public, max-age=3600";
/// Protected media may be kept by the viewer's own browser, never by a shared cache.
pub const DEFAULT_PRIVATE_CACHE_CONTROL: &str = "private, max-age=3600";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// Lets `jwks_url` be plain `http://` (a local identity provider in
    /// tests or development); otherwise it must be `https://`.
    #[serde(default)]
    pub allow_http_jwks: bool,
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    pub issuer: Option<OneOrMany>,
    pub audience: Option<OneOrMany>,
    pub cookie: Option<String>,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into()]
}
fn default_leeway() -> u64 {
    60
}
fn default_jwks_refresh() -> u64 {
    300
}

/// `issuer = "a"` or `issuer = ["a", "b"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    pub access: String,
    pub cache_control: Option<String>,
}

/// Where the JWT verification keys come from (exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM public key, as `openssl rsa -pubout` (or `openssl pkey -pubout`) writes it.
    PublicKeyFile(PathBuf),
    /// A JWKS document on disk, re-read on the refresh schedule.
    JwksFile(PathBuf),
    /// A JWKS URL (an identity provider's `jwks_uri`).
    JwksUrl(String),
}

/// The last day (UTC) unversioned (v1) signed URLs pass by default: seven
/// months after v2 shipped, time for every backend to sign v2 and for the
/// longest-lived links they handed out to expire.
pub const DEFAULT_ACCEPT_V1_UNTIL: &str = "2027-06-30";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSignedUrls {
    /// `YYYY-MM-DD`; v1 URLs pass through that day (UTC), then answer 403.
    pub accept_v1_until: String,
}

impl Default for RawSignedUrls {
    fn default() -> Self {
        Self {
            accept_v1_until: DEFAULT_ACCEPT_V1_UNTIL.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SignedUrlsConfig {
    /// The last day (UTC) v1 signed URLs pass, as configured.
    pub accept_v1_until: NaiveDate,
    /// The same as the first second (Unix time) they do not: midnight UTC
    /// after it.
    pub v1_refused_from: u64,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub keys: KeySource,
    /// `jwt.allow_http_jwks`: the JWKS URL (and its redirects) may be http.
    pub allow_http_jwks: bool,
    pub algorithms: Vec<Algorithm>,
    pub issuer: Vec<String>,
    pub audience: Vec<String>,
    pub cookie: Option<String>,
    pub leeway_secs: u64,
    pub jwks_refresh: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    Public,
    Jwt,
    Signed,
}

impl AccessKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessKind::Public => "public",
            AccessKind::Jwt => "jwt",
            AccessKind::Signed => "signed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub prefix: RoutePrefix,
    pub access: AccessKind,
    pub cache_control: String,
}

pub fn validate_jwt(raw: Option<RawJwt>) -> Result<Option<JwtConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let keys = match (raw.public_key_file, raw.jwks_file, raw.jwks_url) {
        (Some(p), None, None) => KeySource::PublicKeyFile(p),
        (None, Some(p), None) => KeySource::JwksFile(p),
        (None, None, Some(u)) => {
            check_jwks_url(&u, raw.allow_http_jwks)
                .map_err(|m| ConfigError::key("jwt.jwks_url", m))?;
            KeySource::JwksUrl(u)
        }
        _ => {
            return Err(ConfigError::key(
                "jwt",
                "set exactly one of public_key_file, jwks_file, jwks_url",
            ));
        }
    };
    if raw.algorithms.is_empty() {
        return Err(ConfigError::key("jwt.algorithms", "must not be empty"));
    }
    let algorithms = raw
        .algorithms
        .iter()
        .map(|a| parse_algorithm(a).map_err(|m| ConfigError::key("jwt.algorithms", m)))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(c) = &raw.cookie
        && (c.is_empty() || !c.bytes().all(is_token_byte))
    {
        return Err(ConfigError::key(
            "jwt.cookie",
            format!("'{c}' is not a cookie name"),
        ));
    }
    Ok(Some(JwtConfig {
        keys,
        allow_http_jwks: raw.allow_http_jwks,
        algorithms,
        issuer: raw.issuer.map(OneOrMany::into_vec).unwrap_or_default(),
        audience: raw.audience.map(OneOrMany::into_vec).unwrap_or_default(),
        cookie: raw.cookie,
        leeway_secs: in_range("jwt.leeway_secs", raw.leeway_secs, 0, 3600)?,
        jwks_refresh: secs_in_range("jwt.jwks_refresh_secs", raw.jwks_refresh_secs, 1, 7 * 86400)?,
    }))
}

pub fn validate_signed_urls(raw: &RawSignedUrls) -> Result<SignedUrlsConfig, ConfigError> {
    let text = raw.accept_v1_until.as_str();
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
        .ok_or_else(|| {
            ConfigError::key(
                "signed_urls.accept_v1_until",
                format!("'{text}' is not a date like \"2027-06-30\""),
            )
        })?;
    // Midnight UTC after that day; before 1970 is "already refused".
    let refused_from = match date.succ_opt() {
        Some(next) => {
            u64::try_from(next.and_time(chrono::NaiveTime::MIN).and_utc().timestamp()).unwrap_or(0)
        }
        None => u64::MAX,
    };
    Ok(SignedUrlsConfig {
        accept_v1_until: date,
        v1_refused_from: refused_from,
    })
}

/// A JWKS URL we may fetch: https with a host, or http when the operator
/// allowed it. Keys fetched without TLS can be replaced by anyone on the
/// path, and whoever supplies the keys can mint any token.
fn check_jwks_url(url: &str, allow_http: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(format!(
                "'{url}' is plain http: keys fetched without TLS can be replaced on the way; \
                 use https, or set jwt.allow_http_jwks = true for a local identity provider \
                 (tests, development)"
            ));
        }
        _ => return Err(format!("'{url}' is not an http(s) URL")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host"));
    }
    Ok(())
}

/// An asymmetric JWS algorithm name. HMAC is refused: a public key used as
/// an HMAC secret is the classic algorithm-confusion attack.
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    let alg: Algorithm = name.parse().map_err(|_| {
        format!("'{name}' is not one of RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA")
    })?;
    if alg.family() == AlgorithmFamily::Hmac {
        return Err(format!(
            "'{name}' is an HMAC algorithm; only public-key algorithms are accepted"
        ));
    }
    Ok(alg)
}

/// RFC 9110 `token` characters (cookie names are tokens).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub fn validate_routes(
    raw: Vec<RawRoute>,
    jwt: Option<&JwtConfig>,
    secrets: &Secrets,
) -> Result<Vec<RouteConfig>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            let key = |k: &str| format!("route[{i}].{k}");
            let prefix = RoutePrefix::parse(&r.prefix).map_err(|m| ConfigError::key(&key("prefix"), m))?;
            let access = match r.access.as_str() {
                "public" => AccessKind::Public,
                "jwt" => AccessKind::Jwt,
                "signed" => AccessKind::Signed,
                other => {
                    return Err(ConfigError::key(
                        &key("access"),
                        format!("'{other}' is not one of public, jwt, signed"),
                    ));
                }
            };
            if access == AccessKind::Jwt && jwt.is_none() {
                return Err(ConfigError::key(
                    &key("access"),
                    "a jwt route needs a [jwt] section with a key source",
                ));
            }
            if access == AccessKind::Signed && secrets.signing_secret.is_none() {
                return Err(ConfigError::key(
                    &key("access"),
                    "a signed route needs MEDIAEDGE_SIGNING_SECRET (or MEDIAEDGE_SIGNING_SECRET_FILE)",
                ));
            }
            if prefix.has_claims() && access != AccessKind::Jwt {
                return Err(ConfigError::key(
                    &key("prefix"),
                    "{claim} segments need access = \"jwt\"",
                ));
            }
            let cache_control = match r.cache_control {
                Some(cc) => check_cache_control(&cc, access).map_err(|m| ConfigError::key(&key("cache_control"), m))?,
                None if access == AccessKind::Public => DEFAULT_PUBLIC_CACHE_CONTROL.to_owned(),
                None => DEFAULT_PRIVATE_CACHE_CONTROL.to_owned(),
            };
            Ok(RouteConfig {
                prefix,
                access,
                cache_control,
            })
        })
        .collect()
}

/// A protected route's answers must never be stored by a shared cache (a CDN
/// would hand one user's private photo to the next visitor).
fn check_cache_control(cc: &str, access: AccessKind) -> Result<String, String> {
    if cc.is_empty() || !cc.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(format!("'{cc}' is not a header value"));
    }
    if access == AccessKind::Public {
        return Ok(cc.to_owned());
    }
    let directives: Vec<String> = cc
        .split(',')
        .map(|d| {
            d.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let has = |name: &str| directives.iter().any(|d| d == name);
    if has("public") || has("s-maxage") || !(has("private") || has("no-store")) {
        return Err(format!(
            "'{cc}': a {} route must say \"private\" or \"no-store\" (and not \"public\" or \"s-maxage\") so no shared cache keeps it",
            access.as_str()
        ));
    }
    Ok(cc.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            admin_key: None,
            signing_secret: Some("0123456789abcdef".into()),
        }
    }

    fn route(prefix: &str, access: &str, cc: Option<&str>) -> RawRoute {
        RawRoute {
            prefix: prefix.into(),
            access: access.into(),
            cache_control: cc.map(Into::into),
        }
    }

    fn jwt() -> JwtConfig {
        validate_jwt(Some(RawJwt {
            public_key_file: Some("p.pem".into()),
            jwks_file: None,
            jwks_url: None,
            allow_http_jwks: false,
            algorithms: default_algorithms(),
            issuer: None,
            audience: None,
            cookie: None,
            leeway_secs: 60,
            jwks_refresh_secs: 300,
        }))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn private_routes_default_to_private_cache_control() {
        let j = jwt();
        let r = validate_routes(
            vec![
                route("/p/", "jwt", None),
                route("/s/", "signed", None),
                route("/", "public", None),
            ],
            Some(&j),
            &secrets(),
        )
        .unwrap();
        assert_eq!(r[0].cache_control, DEFAULT_PRIVATE_CACHE_CONTROL);
        assert_eq!(r[1].cache_control, DEFAULT_PRIVATE_CACHE_CONTROL);
        assert_eq!(r[2].cache_control, DEFAULT_PUBLIC_CACHE_CONTROL);
    }

    #[test]
    fn shared_caching_of_private_routes_is_refused() {
        let j = jwt();
        for cc in [
            "public, max-age=60",
            "max-age=60",
            "private, s-maxage=60",
            "",
        ] {
            let e = validate_routes(vec![route("/p/", "jwt", Some(cc))], Some(&j), &secrets())
                .unwrap_err()
                .to_string();
            assert!(e.contains("route[0].cache_control"), "{cc}: {e}");
        }
        for cc in ["no-store", "private, max-age=60", "Private"] {
            validate_routes(vec![route("/p/", "jwt", Some(cc))], Some(&j), &secrets()).unwrap();
        }
    }

    #[test]
    fn route_errors_name_the_key() {
        let j = jwt();
        let none = Secrets::default();
        for (routes, jwt, secrets, key) in [
            (
                vec![route("/p/", "jwt", None)],
                None,
                secrets(),
                "route[0].access",
            ),
            (
                vec![route("/p/", "secret", None)],
                Some(&j),
                secrets(),
                "route[0].access",
            ),
            (
                vec![route("/", "public", None), route("/s/", "signed", None)],
                Some(&j),
                none,
                "route[1].access",
            ),
            (
                vec![route("p/", "jwt", None)],
                Some(&j),
                secrets(),
                "route[0].prefix",
            ),
            (
                vec![route("/u/{sub}/", "public", None)],
                Some(&j),
                secrets(),
                "route[0].prefix",
            ),
        ] {
            let e = validate_routes(routes, jwt, &secrets)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(key), "{e}");
        }
    }

    #[test]
    fn v1_window_is_the_configured_day_inclusive() {
        let c = validate_signed_urls(&RawSignedUrls::default()).unwrap();
        assert_eq!(c.accept_v1_until.to_string(), "2027-06-30");
        // 2027-07-01T00:00:00Z
        assert_eq!(c.v1_refused_from, 1_814_400_000);
        let past = RawSignedUrls {
            accept_v1_until: "1969-12-30".into(),
        };
        assert_eq!(validate_signed_urls(&past).unwrap().v1_refused_from, 0);
        for bad in [
            "2027-6-30",
            "2027-02-30",
            "30.06.2027",
            "",
            "2027-06-30T00:00:00Z",
            "+2027-06-30",
        ] {
            let raw = RawSignedUrls {
                accept_v1_until: bad.into(),
            };
            let e = validate_signed_urls(&raw).unwrap_err().to_string();
            assert!(e.starts_with("signed_urls.accept_v1_until"), "{bad}: {e}");
        }
    }

    #[test]
    fn hmac_and_unknown_algorithms_are_refused() {
        assert!(parse_algorithm("HS256").unwrap_err().contains("HMAC"));
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("rs256").is_err());
        assert_eq!(parse_algorithm("EdDSA").unwrap(), Algorithm::EdDSA);
        assert_eq!(parse_algorithm("ES256").unwrap(), Algorithm::ES256);
    }
}
