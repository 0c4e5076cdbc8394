//! Signed URLs: `?exp=<unix seconds>&sig=<base64url HMAC-SHA256>`.
//!
//! The signature covers one canonical string, written out in the README so
//! any backend can sign without our CLI:
//!
//! ```text
//! /<decoded key>?<transform parameters present, in the order w h fit fmt q dpr>&exp=<exp>
//! e.g.  /signed/cat one.jpg?w=150&h=150&exp=1767225600
//!       /signed/cat one.jpg?exp=1767225600            (the original)
//! ```
//!
//! Values are the percent-decoded values as they appear in the URL. Other
//! query parameters are not signed (they cannot change the response). The
//! signature is the HMAC-SHA256 of that string under
//! `MEDIAEDGE_SIGNING_SECRET`, base64url without padding, compared in
//! constant time.

use std::borrow::Cow;
use std::fmt::Write as _;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::key::ObjectKey;
use crate::variant::{self, PARAMS};

/// Why a signed URL is refused (all answer 403; the reason goes to metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    Missing,
    Invalid,
    Expired,
}

impl SignatureFault {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureFault::Missing => "signature_missing",
            SignatureFault::Invalid => "signature_invalid",
            SignatureFault::Expired => "signature_expired",
        }
    }
}

/// The HMAC key for signed URLs (and, later, presigned uploads).
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl UrlSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        }
    }

    /// base64url(HMAC-SHA256(secret, canonical)).
    pub fn sign(&self, canonical: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, canonical.as_bytes()))
    }

    /// Whether `sig` (base64url, padding optional) is this key's signature of
    /// `canonical`. Constant-time comparison inside aws-lc.
    pub fn check(&self, canonical: &str, sig: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(sig.trim_end_matches('=').as_bytes()) {
            Ok(tag) => hmac::verify(&self.key, canonical.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }

    /// Checks `exp` and `sig` in `query` for the object `key` at time `now`.
    pub fn verify(&self, key: &str, query: Option<&str>, now: u64) -> Result<(), SignatureFault> {
        let query = query.unwrap_or("");
        // Given twice is ambiguous: invalid.
        let fields = variant::named_params(Some(query), &["exp", "sig"])
            .map_err(|_| SignatureFault::Invalid)?;
        let [Some(exp), Some(sig)] = fields else {
            return Err(SignatureFault::Missing);
        };
        let exp: u64 = exp.parse().map_err(|_| SignatureFault::Invalid)?;
        let params = variant::raw_params(Some(query)).map_err(|_| SignatureFault::Invalid)?;
        if !self.check(&canonical(key, &params, exp), &sig) {
            return Err(SignatureFault::Invalid);
        }
        // Checked after the signature, so an unsigned `exp` reveals nothing.
        if now > exp {
            return Err(SignatureFault::Expired);
        }
        Ok(())
    }
}

/// The string that is signed; `params` are the transform parameter values in
/// [`PARAMS`] order (`None` where absent).
pub fn canonical<S: AsRef<str>>(key: &str, params: &[Option<S>; 6], exp: u64) -> String {
    let mut s = String::with_capacity(key.len() + 64);
    s.push('/');
    s.push_str(key);
    s.push('?');
    for (name, value) in PARAMS.iter().zip(params) {
        if let Some(v) = value {
            let _ = write!(s, "{name}={}&", v.as_ref());
        }
    }
    let _ = write!(s, "exp={exp}");
    s
}

/// A signed URL's path and query for `key` (key and values are
/// percent-encoded here), as the CLI prints it.
pub fn signed_path_and_query(
    signer: &UrlSigner,
    key: &ObjectKey,
    params: &[Option<Cow<'_, str>>; 6],
    exp: u64,
) -> String {
    let sig = signer.sign(&canonical(key.as_str(), params, exp));
    let path = key.url_path();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in PARAMS.iter().zip(params) {
        if let Some(v) = value {
            query.append_pair(name, v);
        }
    }
    query.append_pair("exp", &exp.to_string());
    query.append_pair("sig", &sig);
    format!("/{path}?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn url(key: &str, params: [Option<&str>; 6], exp: u64) -> String {
        let params = params.map(|p| p.map(Cow::Borrowed));
        let key = ObjectKey::parse(key).unwrap();
        signed_path_and_query(&UrlSigner::new(SECRET), &key, &params, exp)
    }

    fn check(path_and_query: &str, now: u64) -> Result<(), SignatureFault> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let key = percent_encoding::percent_decode_str(&path[1..])
            .decode_utf8()
            .unwrap();
        UrlSigner::new(SECRET).verify(&key, Some(query), now)
    }

    #[test]
    fn canonical_string_is_documented_form() {
        let p = [Some("150"), Some("150"), None, Some("webp"), None, None];
        assert_eq!(
            canonical("signed/cat one.jpg", &p, 1767225600),
            "/signed/cat one.jpg?w=150&h=150&fmt=webp&exp=1767225600"
        );
        assert_eq!(canonical::<&str>("a.jpg", &[None; 6], 7), "/a.jpg?exp=7");
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256 computed independently:
        // python3 -c 'import hmac,hashlib,base64;print(base64.urlsafe_b64encode(hmac.new(b"0123456789abcdef0123456789abcdef",b"/a.jpg?w=150&exp=100",hashlib.sha256).digest()).rstrip(b"=").decode())'
        let sig = UrlSigner::new(SECRET).sign("/a.jpg?w=150&exp=100");
        assert_eq!(sig, "tUMxLSuBfIUuTKddwRiDTm55-Yy90mAf0DUNsDsN_ko");
    }

    #[test]
    fn round_trip_and_tampering() {
        let u = url(
            "signed/cat one.jpg",
            [Some("150"), Some("100"), None, None, None, None],
            1000,
        );
        assert!(
            u.starts_with("/signed/cat%20one.jpg?w=150&h=100&exp=1000&sig="),
            "{u}"
        );
        assert_eq!(check(&u, 999), Ok(()));
        assert_eq!(check(&u, 1000), Ok(()));
        assert_eq!(check(&u, 1001), Err(SignatureFault::Expired));
        // Extra unsigned parameters do not matter; order of parameters does not matter.
        assert_eq!(check(&format!("{u}&utm=x"), 5), Ok(()));
        let reordered = u.replace("w=150&h=100", "h=100&w=150");
        assert_eq!(check(&reordered, 5), Ok(()));
        for bad in [
            u.replace("w=150", "w=1500"),
            u.replace("exp=1000", "exp=9999"),
            u.replace("cat%20one", "cat%20two"),
            format!("{u}&fmt=png"),
            format!("{u}&w=150"),
            format!("{u}&sig=x"),
            u.replace("&sig=", "&sig=A"),
            u.replace("exp=1000", "exp=1000.0"),
        ] {
            assert_eq!(check(&bad, 5), Err(SignatureFault::Invalid), "{bad}");
        }
        assert_eq!(check("/signed/cat.jpg", 5), Err(SignatureFault::Missing));
        assert_eq!(
            check("/signed/cat.jpg?exp=5", 5),
            Err(SignatureFault::Missing)
        );
        assert_eq!(
            check("/signed/cat.jpg?sig=abc", 5),
            Err(SignatureFault::Missing)
        );
        // Another secret's signature does not pass.
        let other =
            UrlSigner::new("another-secret-of-16+bytes").sign("/signed/cat one.jpg?exp=1000");
        let forged = format!("/signed/cat%20one.jpg?exp=1000&sig={other}");
        assert_eq!(check(&forged, 5), Err(SignatureFault::Invalid));
    }

    #[test]
    fn padded_signatures_are_accepted() {
        let u = url("a.jpg", [None; 6], 10);
        assert_eq!(check(&format!("{u}%3D"), 5), Ok(()));
    }
}
