//! Signed URLs: `?v=2&exp=<unix seconds>&sig=<base64url HMAC-SHA256>`.
//!
//! The signature covers one canonical string, written out in the README so
//! any backend can sign without our CLI. Its fields are percent-encoded so
//! that it reads back one way only: v1 (below) wrote the decoded key and
//! values raw, so a URL signed for `w=150&h=100` also passed as
//! `w=150%26h%3D100`, and one signed for the object `a.jpg?w=150` with
//! `h=100` as `a.jpg` with `w=150?h=100` (issue 14, item 10).
//!
//! ```text
//! v2 \n /<key> \n <params> \n exp=<exp>            (\n: one line feed, no spaces)
//!
//! <key>     the object key (decoded, no leading /), UTF-8, every byte
//!           except A-Z a-z 0-9 - . _ ~ and / written %XX (uppercase hex)
//! <params>  the transform parameters present in the URL, in the order
//!           w h fit fmt q dpr g fx fy anim t p, as name=<value>, joined by &; <value> is the
//!           decoded value encoded like <key>, / included; empty if none
//! <exp>     the exp of the URL, in decimal
//!
//! e.g.  "v2\n/signed/cat%20one.jpg\nw=150&h=150&fmt=webp\nexp=1767225600"
//!       "v2\n/signed/cat%20one.jpg\n\nexp=1767225600"      (the original)
//! ```
//!
//! Injective: the encoded key and values hold no line feed, `&` or `=`,
//! names come from a fixed list in a fixed order, and the encoding has one
//! spelling per byte, so the string parses back to exactly one (key,
//! parameters, exp). It cannot equal a v1 string (which starts with `/`) or
//! a presigned upload's (`PUT\n...`), which share the secret. `v` is
//! covered by the `v2` line: only `v=2` selects this string.
//!
//! v1 (no `v` parameter), accepted until `signed_urls.accept_v1_until`:
//! `/<decoded key>?<name>=<decoded value>&...exp=<exp>`. Even then a v1 URL
//! whose decoded key or values hold `?`, `&`, `=` or `#` is refused: a v1
//! string has at most one reading without them, so only that one passes.
//! (A v1 signature a signer made over such a key or value still passes for
//! the string's other reading, if it has one; `mediaedge sign` makes v2.)
//! Any other `v` is refused.
//!
//! Other query parameters are not signed (they cannot change the response).
//! The signature is the HMAC-SHA256 of the string under
//! `MEDIAEDGE_SIGNING_SECRET`, base64url without padding, compared in
//! constant time; `exp` is checked after it, so an unsigned `exp` reveals
//! nothing.

use std::borrow::Cow;
use std::fmt::Write as _;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::key::ObjectKey;
use crate::variant::{self, PARAM_COUNT, PARAMS};

/// Every byte but the RFC 3986 unreserved characters is `%XX`.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// As [`VALUE`], keeping the key's `/` separators.
const KEY: &AsciiSet = &VALUE.remove(b'/');

/// What v1 wrote raw and could therefore read two ways.
const V1_AMBIGUOUS: [char; 4] = ['?', '&', '=', '#'];

/// Why a signed URL is refused (all answer 403; the reason goes to metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureFault {
    Missing,
    Invalid,
    Expired,
    /// A `v` other than `2` (no `v` is v1).
    Version,
    /// A v1 URL after `signed_urls.accept_v1_until`.
    V1Refused,
    /// A v1 URL whose key or values hold `?`, `&`, `=` or `#`.
    V1Ambiguous,
}

impl SignatureFault {
    pub fn reason(self) -> &'static str {
        match self {
            SignatureFault::Missing => "signature_missing",
            SignatureFault::Invalid => "signature_invalid",
            SignatureFault::Expired => "signature_expired",
            SignatureFault::Version => "signature_version",
            SignatureFault::V1Refused => "signature_v1_refused",
            SignatureFault::V1Ambiguous => "signature_v1_ambiguous",
        }
    }
}

/// The scheme a URL verified under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// No `v`: the deprecated raw canonical string.
    V1,
    /// `v=2`: the encoded canonical string.
    V2,
}

/// Until when v1 URLs are accepted: the first second (Unix time) they are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V1Window {
    refused_from: u64,
}

impl V1Window {
    pub const fn refused_from(unix_secs: u64) -> Self {
        Self {
            refused_from: unix_secs,
        }
    }

    pub fn accepts(self, now: u64) -> bool {
        now < self.refused_from
    }
}

/// The HMAC key for signed URLs and presigned uploads.
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

    /// Checks `v`, `exp` and `sig` in `query` for the object `key` at time
    /// `now`; v1 only while `v1` accepts it.
    pub fn verify(
        &self,
        key: &str,
        query: Option<&str>,
        now: u64,
        v1: V1Window,
    ) -> Result<Scheme, SignatureFault> {
        // Given twice is ambiguous: invalid.
        let fields = crate::query::named_params(query, &["exp", "sig", "v"])
            .map_err(|_| SignatureFault::Invalid)?;
        let [Some(exp), Some(sig), version] = fields else {
            return Err(SignatureFault::Missing);
        };
        let scheme = match version.as_deref() {
            None => Scheme::V1,
            Some("2") => Scheme::V2,
            Some(_) => return Err(SignatureFault::Version),
        };
        let exp = parse_exp(&exp).ok_or(SignatureFault::Invalid)?;
        let params = variant::raw_params(query).map_err(|_| SignatureFault::Invalid)?;
        let canonical = match scheme {
            Scheme::V2 => canonical_v2(key, &params, exp),
            Scheme::V1 if !v1.accepts(now) => return Err(SignatureFault::V1Refused),
            Scheme::V1 if v1_ambiguous(key, &params) => return Err(SignatureFault::V1Ambiguous),
            Scheme::V1 => canonical_v1(key, &params, exp),
        };
        if !self.check(&canonical, &sig) {
            return Err(SignatureFault::Invalid);
        }
        // Checked after the signature, so an unsigned `exp` reveals nothing.
        if now > exp {
            return Err(SignatureFault::Expired);
        }
        Ok(scheme)
    }
}

/// Decimal digits only (no sign, no space), within `u64`.
fn parse_exp(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn v1_ambiguous<S: AsRef<str>>(key: &str, params: &[Option<S>; PARAM_COUNT]) -> bool {
    key.contains(V1_AMBIGUOUS)
        || params
            .iter()
            .flatten()
            .any(|v| v.as_ref().contains(V1_AMBIGUOUS))
}

/// The v2 string that is signed (see the module doc); `params` are the
/// decoded transform parameter values in [`PARAMS`] order (`None` where absent).
pub fn canonical_v2<S: AsRef<str>>(
    key: &str,
    params: &[Option<S>; PARAM_COUNT],
    exp: u64,
) -> String {
    let mut s = String::with_capacity(key.len() * 3 + 64);
    let _ = write!(s, "v2\n/{}\n", utf8_percent_encode(key, KEY));
    let present = PARAMS
        .iter()
        .zip(params)
        .filter_map(|(n, v)| Some((n, v.as_ref()?)));
    for (i, (name, value)) in present.enumerate() {
        let sep = if i == 0 { "" } else { "&" };
        let _ = write!(
            s,
            "{sep}{name}={}",
            utf8_percent_encode(value.as_ref(), VALUE)
        );
    }
    let _ = write!(s, "\nexp={exp}");
    s
}

/// The deprecated v1 string: key and values decoded and unescaped, which
/// is why [`UrlSigner::verify`] refuses v1 values holding `?&=#`.
pub fn canonical_v1<S: AsRef<str>>(
    key: &str,
    params: &[Option<S>; PARAM_COUNT],
    exp: u64,
) -> String {
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

/// A v2 signed URL's path and query for `key`, as the CLI prints it. The
/// URL spells the key and values as the canonical string does, so its path
/// is the string's second line and its query starts with the third.
pub fn signed_path_and_query(
    signer: &UrlSigner,
    key: &ObjectKey,
    params: &[Option<Cow<'_, str>>; PARAM_COUNT],
    exp: u64,
) -> String {
    let sig = signer.sign(&canonical_v2(key.as_str(), params, exp));
    let mut s = format!("/{}?", utf8_percent_encode(key.as_str(), KEY));
    for (name, value) in PARAMS.iter().zip(params) {
        if let Some(v) = value {
            let _ = write!(s, "{name}={}&", utf8_percent_encode(v, VALUE));
        }
    }
    let _ = write!(s, "v=2&exp={exp}&sig={sig}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    /// The v1 window open for good / closed for good.
    const OPEN: V1Window = V1Window::refused_from(u64::MAX);
    const CLOSED: V1Window = V1Window::refused_from(0);

    /// The parameters in [`PARAMS`] order from (name, value) pairs.
    fn params<'a>(pairs: &[(&str, &'a str)]) -> [Option<&'a str>; PARAM_COUNT] {
        let mut out = [None; PARAM_COUNT];
        for (name, value) in pairs {
            let i = PARAMS.iter().position(|n| n == name).unwrap();
            out[i] = Some(*value);
        }
        out
    }

    fn url(key: &str, params: [Option<&str>; PARAM_COUNT], exp: u64) -> String {
        let params = params.map(|p| p.map(Cow::Borrowed));
        let key = ObjectKey::parse(key).unwrap();
        signed_path_and_query(&UrlSigner::new(SECRET), &key, &params, exp)
    }

    fn check_in(path_and_query: &str, now: u64, v1: V1Window) -> Result<Scheme, SignatureFault> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let key = percent_encoding::percent_decode_str(&path[1..])
            .decode_utf8()
            .unwrap();
        UrlSigner::new(SECRET).verify(&key, Some(query), now, v1)
    }

    fn check(path_and_query: &str, now: u64) -> Result<Scheme, SignatureFault> {
        check_in(path_and_query, now, OPEN)
    }

    /// A v1 URL as a v1 signer made it: decoded strings signed, the URL encoded.
    fn v1_url(key: &str, params: [Option<&str>; PARAM_COUNT], exp: u64) -> String {
        let sig = UrlSigner::new(SECRET).sign(&canonical_v1(key, &params, exp));
        let mut q = String::new();
        for (n, v) in PARAMS.iter().zip(params) {
            if let Some(v) = v {
                q.push_str(&format!("{n}={}&", utf8_percent_encode(v, VALUE)));
            }
        }
        format!("/{}?{q}exp={exp}&sig={sig}", utf8_percent_encode(key, KEY))
    }

    #[test]
    fn canonical_strings_are_documented_form() {
        let p = params(&[("w", "150"), ("h", "150"), ("fmt", "webp")]);
        assert_eq!(
            canonical_v2("signed/cat one.jpg", &p, 1767225600),
            "v2\n/signed/cat%20one.jpg\nw=150&h=150&fmt=webp\nexp=1767225600"
        );
        assert_eq!(
            canonical_v2::<&str>("signed/cat one.jpg", &[None; PARAM_COUNT], 1767225600),
            "v2\n/signed/cat%20one.jpg\n\nexp=1767225600"
        );
        // Reserved, unreserved and non-ASCII: only A-Z a-z 0-9 - . _ ~ (and / in the key) stay.
        let p = params(&[("w", "150&h=100"), ("dpr", "a/b+c ~-._ü")]);
        assert_eq!(
            canonical_v2("x/a?b#c&d=e+f ~-._ü.jpg", &p, 7),
            "v2\n/x/a%3Fb%23c%26d%3De%2Bf%20~-._%C3%BC.jpg\n\
             w=150%26h%3D100&dpr=a%2Fb%2Bc%20~-._%C3%BC\nexp=7"
        );
        assert_eq!(
            canonical_v1("signed/cat one.jpg", &params(&[("w", "150")]), 7),
            "/signed/cat one.jpg?w=150&exp=7"
        );
        assert_eq!(
            canonical_v1::<&str>("a.jpg", &[None; PARAM_COUNT], 7),
            "/a.jpg?exp=7"
        );
    }

    #[test]
    fn known_answers() {
        // HMAC-SHA256 computed independently:
        // python3 -c 'import hmac,hashlib,base64;print(base64.urlsafe_b64encode(hmac.new(b"0123456789abcdef0123456789abcdef",b"/a.jpg?w=150&exp=100",hashlib.sha256).digest()).rstrip(b"=").decode())'
        let signer = UrlSigner::new(SECRET);
        let sig = signer.sign("/a.jpg?w=150&exp=100");
        assert_eq!(sig, "tUMxLSuBfIUuTKddwRiDTm55-Yy90mAf0DUNsDsN_ko");
        // The same with b"v2\n/a.jpg\nw=150\nexp=100" and
        // b"v2\n/signed/tom%20%26%20jerry.jpg\nw=150%26h%3D100\nexp=100".
        let w = params(&[("w", "150")]);
        assert_eq!(
            signer.sign(&canonical_v2("a.jpg", &w, 100)),
            "XfCEVgMgz0rC16v-WbTe92x2D9XXuG19HDKNJxfKojA"
        );
        let w = params(&[("w", "150&h=100")]);
        assert_eq!(
            signer.sign(&canonical_v2("signed/tom & jerry.jpg", &w, 100)),
            "tJ1xMJOBOtOmG0ZkmxwxkwyLkoxcXEPo0JO_jddLN6Y"
        );
    }

    #[test]
    fn round_trip_and_tampering() {
        let u = url(
            "signed/cat one.jpg",
            params(&[("w", "150"), ("h", "100")]),
            1000,
        );
        assert!(
            u.starts_with("/signed/cat%20one.jpg?w=150&h=100&v=2&exp=1000&sig="),
            "{u}"
        );
        assert_eq!(check(&u, 999), Ok(Scheme::V2));
        assert_eq!(check(&u, 1000), Ok(Scheme::V2));
        assert_eq!(check(&u, 1001), Err(SignatureFault::Expired));
        // The v1 window does not matter to v2.
        assert_eq!(check_in(&u, 5, CLOSED), Ok(Scheme::V2));
        // Extra unsigned parameters do not matter; order of parameters does not matter.
        assert_eq!(check(&format!("{u}&utm=x"), 5), Ok(Scheme::V2));
        let reordered = u.replace("w=150&h=100&v=2", "v=2&h=100&w=150");
        assert_eq!(check(&reordered, 5), Ok(Scheme::V2));
        for bad in [
            u.replace("w=150", "w=1500"),
            u.replace("exp=1000", "exp=9999"),
            u.replace("cat%20one", "cat%20two"),
            format!("{u}&fmt=png"),
            format!("{u}&w=150"),
            format!("{u}&sig=x"),
            format!("{u}&v=2"),
            u.replace("&sig=", "&sig=A"),
            u.replace("exp=1000", "exp=1000.0"),
            u.replace("exp=1000", "exp=+1000"),
            u.replace("exp=1000", "exp=99999999999999999999999"),
            // Without v it is checked as v1, and does not pass.
            u.replace("v=2&", ""),
        ] {
            assert_eq!(check(&bad, 5), Err(SignatureFault::Invalid), "{bad}");
        }
        for bad in ["1", "3", "", "02", "2.0", "%32%00"] {
            let bad = u.replace("v=2", &format!("v={bad}"));
            assert_eq!(check(&bad, 5), Err(SignatureFault::Version), "{bad}");
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
        assert_eq!(
            check("/signed/cat.jpg?v=2&exp=5", 5),
            Err(SignatureFault::Missing)
        );
        // Another secret's signature does not pass, under either scheme.
        let other = UrlSigner::new("another-secret-of-16+bytes");
        let forged = format!(
            "/signed/cat%20one.jpg?exp=1000&sig={}",
            other.sign("/signed/cat one.jpg?exp=1000")
        );
        assert_eq!(check(&forged, 5), Err(SignatureFault::Invalid));
        let forged = format!(
            "/signed/cat%20one.jpg?v=2&exp=1000&sig={}",
            other.sign(&canonical_v2::<&str>(
                "signed/cat one.jpg",
                &[None; PARAM_COUNT],
                1000
            ))
        );
        assert_eq!(check(&forged, 5), Err(SignatureFault::Invalid));
    }

    #[test]
    fn v1_within_and_after_its_window() {
        let w = params(&[("w", "150"), ("h", "100")]);
        let u = v1_url("signed/cat one.jpg", w, 1000);
        assert!(u.starts_with("/signed/cat%20one.jpg?w=150&h=100&exp=1000&sig="));
        assert_eq!(check(&u, 1000), Ok(Scheme::V1));
        assert_eq!(check(&u, 1001), Err(SignatureFault::Expired));
        // Accepted up to the second before the window closes.
        assert_eq!(
            check_in(&u, 499, V1Window::refused_from(500)),
            Ok(Scheme::V1)
        );
        assert_eq!(
            check_in(&u, 500, V1Window::refused_from(500)),
            Err(SignatureFault::V1Refused)
        );
        assert_eq!(check_in(&u, 5, CLOSED), Err(SignatureFault::V1Refused));
        // A v1 signature presented as v2 does not pass.
        let as_v2 = u.replace("&exp=", "&v=2&exp=");
        assert_eq!(check(&as_v2, 5), Err(SignatureFault::Invalid));
        assert_eq!(
            check(&u.replace("w=150", "w=151"), 5),
            Err(SignatureFault::Invalid)
        );
    }

    /// The v1 cases `v1_ambiguities_no_longer_verify` shows, with their
    /// reasons; and v2 signs those same keys and values without ambiguity.
    #[test]
    fn reserved_characters_v1_refused_v2_exact() {
        let signer = UrlSigner::new(SECRET);
        let sig = signer.sign("/signed/a.jpg?w=150&h=100&exp=1000");
        assert_eq!(
            check(
                &format!("/signed/a.jpg?w=150%26h%3D100&exp=1000&sig={sig}"),
                5
            ),
            Err(SignatureFault::V1Ambiguous)
        );
        for key in ["x?y", "x&y", "x=y", "x#y"] {
            let u = v1_url(&format!("signed/{key}.jpg"), [None; PARAM_COUNT], 1000);
            assert_eq!(check(&u, 5), Err(SignatureFault::V1Ambiguous), "{u}");
            let u = v1_url("signed/a.jpg", params(&[("w", key)]), 1000);
            assert_eq!(check(&u, 5), Err(SignatureFault::V1Ambiguous), "{u}");
            let u = url(&format!("signed/{key}.jpg"), params(&[("w", key)]), 1000);
            assert_eq!(check(&u, 5), Ok(Scheme::V2), "{u}");
        }
        // v2 for w = "150&h=100" is not v2 for w=150, h=100, nor the reverse.
        let one = url("signed/a.jpg", params(&[("w", "150&h=100")]), 1000);
        let two = url("signed/a.jpg", params(&[("w", "150"), ("h", "100")]), 1000);
        assert!(
            one.starts_with("/signed/a.jpg?w=150%26h%3D100&v=2&"),
            "{one}"
        );
        let swapped = format!(
            "/signed/a.jpg?w=150&h=100&v=2&exp=1000&sig={}",
            sig_of(&one)
        );
        assert_eq!(check(&swapped, 5), Err(SignatureFault::Invalid));
        let swapped = format!(
            "/signed/a.jpg?w=150%26h%3D100&v=2&exp=1000&sig={}",
            sig_of(&two)
        );
        assert_eq!(check(&swapped, 5), Err(SignatureFault::Invalid));
        // Nor is a key holding "?w=150" the key with w=150.
        let key_q = url("signed/a.jpg?w=150", [None; PARAM_COUNT], 1000);
        let swapped = format!("/signed/a.jpg?w=150&v=2&exp=1000&sig={}", sig_of(&key_q));
        assert_eq!(check(&swapped, 5), Err(SignatureFault::Invalid));
    }

    fn sig_of(u: &str) -> &str {
        u.rsplit_once("sig=").map_or("", |(_, s)| s)
    }

    /// Reads a v2 string back: the inverse that makes `canonical_v2` injective.
    fn parse_v2(s: &str) -> Option<(String, [Option<String>; PARAM_COUNT], u64)> {
        let decode = |t: &str| {
            percent_encoding::percent_decode_str(t)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        let mut lines = s.split('\n');
        let (Some("v2"), Some(key), Some(params), Some(exp), None) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
        ) else {
            return None;
        };
        let mut values: [Option<String>; PARAM_COUNT] = Default::default();
        let mut next = 0;
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=')?;
            let i = PARAMS.iter().position(|n| *n == name)?;
            if i < next {
                return None;
            }
            values[i] = Some(decode(value)?);
            next = i + 1;
        }
        Some((
            decode(key.strip_prefix('/')?)?,
            values,
            exp.strip_prefix("exp=")?.parse().ok()?,
        ))
    }

    proptest::proptest! {
        #[test]
        fn v2_strings_read_back_one_way(
            key in "[a-z/?&=#%+ \\n~.ü-]{1,12}",
            params in proptest::array::uniform12(proptest::option::of("[0-9a-z/?&=#%+ \\n~.ü-]{0,8}")),
            exp in proptest::num::u64::ANY,
        ) {
            let s = canonical_v2(&key, &params, exp);
            proptest::prop_assert!(
                s.bytes().all(|b| b.is_ascii_graphic() || b == b'\n'),
                "{s:?}"
            );
            proptest::prop_assert_eq!(parse_v2(&s), Some((key, params, exp)));
        }
    }

    /// Issue 14 item 10: v1 wrote the decoded key and values raw, so one
    /// signature could pass for another (key, parameters). Written against
    /// `check` only, so it runs on the v1-only code too (where it fails).
    #[test]
    fn v1_ambiguities_no_longer_verify() {
        let signer = UrlSigner::new(SECRET);
        // Signed the v1 way for w=150 and h=100 ...
        let sig = signer.sign("/signed/a.jpg?w=150&h=100&exp=1000");
        let honest = format!("/signed/a.jpg?w=150&h=100&exp=1000&sig={sig}");
        // ... is no signature for w = "150&h=100".
        let replayed = format!("/signed/a.jpg?w=150%26h%3D100&exp=1000&sig={sig}");
        // Signed for the object "signed/x.jpg?w=150" with h=100 ...
        let sig_q = signer.sign("/signed/x.jpg?w=150?h=100&exp=1000");
        let key_q = format!("/signed/x.jpg%3Fw%3D150?h=100&exp=1000&sig={sig_q}");
        // ... is no signature for signed/x.jpg with w = "150?h=100".
        let moved = format!("/signed/x.jpg?w=150%3Fh%3D100&exp=1000&sig={sig_q}");
        // A key holding '?', '&', '=' or '#' needs v2 (v1 is refused).
        let amp = signer.sign("/signed/tom&jerry=1#2.jpg?exp=1000");
        let amp = format!("/signed/tom%26jerry%3D1%232.jpg?exp=1000&sig={amp}");
        for bad in [&replayed, &moved, &key_q, &amp] {
            assert!(check(bad, 5).is_err(), "{bad} verified");
        }
        // A v1 URL without those characters still verifies.
        assert!(check(&honest, 5).is_ok(), "{honest}");
    }

    #[test]
    fn padded_signatures_are_accepted() {
        let u = url("a.jpg", [None; PARAM_COUNT], 10);
        assert_eq!(check(&format!("{u}%3D"), 5), Ok(Scheme::V2));
        let u = v1_url("a.jpg", [None; PARAM_COUNT], 10);
        assert_eq!(check(&format!("{u}%3D"), 5), Ok(Scheme::V1));
    }
}
