//! Object keys: the one place a request path becomes a storage key.
//!
//! SPEC "Delivery": a key is one or more `/`-separated UTF-8 segments,
//! percent-decoded, at most 1024 bytes; `.`/`..`/empty segments, NUL and
//! backslashes are refused. The whole path is decoded *before* it is split,
//! so `%2F` is a separator and `%2e%2e` is `..` — no encoding reaches a
//! different object than the plain spelling would.
//!
//! A key must also be one every backend stores as itself, so that nothing
//! can be written that cannot be read or deleted again, and no two
//! spellings can reach one object: it must be in Unicode NFC (macOS and
//! some S3-compatible stores normalise names, so `é` as one code point and
//! as `e` + accent would be one file there but two keys here); no segment
//! may be longer than 255 bytes (a file name's limit) or end in `#` and
//! digits (object_store's local backend keeps those names for multipart
//! parts and refuses to read them).

use std::fmt;

use percent_encoding::percent_decode_str;

/// Longest key accepted, in bytes after decoding.
pub const MAX_KEY_BYTES: usize = 1024;

/// Prefix (after the leading `/`) reserved for the control API.
pub const RESERVED_PREFIX: &str = "_/";

/// Why a request path is not a valid key. Every variant answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key: empty")]
    Empty,
    #[error("invalid key: longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    #[error("invalid key: not valid UTF-8 after percent-decoding")]
    NotUtf8,
    #[error("invalid key: empty segment")]
    EmptySegment,
    #[error("invalid key: '.' and '..' segments are not allowed")]
    DotSegment,
    #[error("invalid key: NUL, control characters and backslashes are not allowed")]
    ForbiddenChar,
    #[error("invalid key: keys beginning with '_/' are reserved")]
    Reserved,
    #[error("invalid key: not in Unicode normalization form C (NFC)")]
    NotNfc,
    #[error("invalid key: a segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("invalid key: a segment may not end in '#' followed by digits")]
    ReservedSuffix,
}

/// Longest segment, in bytes: a file name's limit on Linux filesystems.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// A validated, decoded object key without a leading slash, e.g. `photos/cat.jpg`,
/// with its `object_store` path (same characters: a file dropped into a local
/// store under that name is that key).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    key: String,
    path: object_store::path::Path,
}

impl ObjectKey {
    /// Parses the path of a request URI (`/photos/cat%20one.jpg`).
    pub fn from_request_path(raw_path: &str) -> Result<Self, KeyError> {
        let raw = raw_path.strip_prefix('/').unwrap_or(raw_path);
        let decoded = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| KeyError::NotUtf8)?;
        Self::parse(&decoded)
    }

    /// Validates an already-decoded key.
    pub fn parse(key: &str) -> Result<Self, KeyError> {
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        if key.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(KeyError::ForbiddenChar);
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment),
                "." | ".." => return Err(KeyError::DotSegment),
                _ => {}
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(KeyError::SegmentTooLong);
            }
            if let Some((_, suffix)) = segment.split_once('#')
                && !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(KeyError::ReservedSuffix);
            }
        }
        if !key.is_ascii()
            && unicode_normalization::is_nfc_quick(key.chars())
                != unicode_normalization::IsNormalized::Yes
            && !unicode_normalization::is_nfc(key)
        {
            return Err(KeyError::NotNfc);
        }
        if key.starts_with(RESERVED_PREFIX) || key == "_" {
            return Err(KeyError::Reserved);
        }
        // Every rule object_store has for segments is enforced above, so this
        // cannot fail; mapped anyway rather than unwrapped.
        let path = object_store::path::Path::parse(key).map_err(|_| KeyError::ForbiddenChar)?;
        Ok(Self {
            key: key.to_owned(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The key as an `object_store` path.
    pub fn store_path(&self) -> &object_store::path::Path {
        &self.path
    }

    /// The key as a URL path without the leading `/`: each segment
    /// percent-encoded (RFC 3986 unreserved characters kept), `/` kept.
    /// Parsing it back with [`ObjectKey::from_request_path`] gives this key.
    pub fn url_path(&self) -> String {
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        self.key
            .split('/')
            .map(|seg| percent_encoding::utf8_percent_encode(seg, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether the key starts with `prefix` (a plain string prefix, as S3 lists).
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.key.starts_with(prefix)
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(p: &str) -> Result<String, KeyError> {
        ObjectKey::from_request_path(p).map(|k| k.key)
    }

    #[test]
    fn accepts_plain_and_nested_keys() {
        assert_eq!(parse("/cat.jpg").unwrap(), "cat.jpg");
        assert_eq!(parse("/a/b/c.jpg").unwrap(), "a/b/c.jpg");
        assert_eq!(parse("/abcd-efgh").unwrap(), "abcd-efgh");
    }

    #[test]
    fn decodes_before_splitting() {
        assert_eq!(parse("/cat%20one.jpg").unwrap(), "cat one.jpg");
        assert_eq!(parse("/a%2Fb.jpg").unwrap(), "a/b.jpg");
        assert_eq!(parse("/%C3%BC.jpg").unwrap(), "ü.jpg");
        assert_eq!(parse("/a/%2e%2e/b"), Err(KeyError::DotSegment));
        assert_eq!(parse("/%2E/b"), Err(KeyError::DotSegment));
        assert_eq!(parse("/a%2F%2Fb"), Err(KeyError::EmptySegment));
    }

    #[test]
    fn refuses_bad_segments() {
        assert_eq!(parse("/"), Err(KeyError::Empty));
        assert_eq!(parse("/a//b"), Err(KeyError::EmptySegment));
        assert_eq!(parse("/a/"), Err(KeyError::EmptySegment));
        assert_eq!(parse("/./a"), Err(KeyError::DotSegment));
        assert_eq!(parse("/a/.."), Err(KeyError::DotSegment));
        assert_eq!(parse("/a%00b"), Err(KeyError::ForbiddenChar));
        assert_eq!(parse("/a%5Cb"), Err(KeyError::ForbiddenChar));
        assert_eq!(parse("/a\\b"), Err(KeyError::ForbiddenChar));
        assert_eq!(parse("/a%0Ab"), Err(KeyError::ForbiddenChar));
        assert_eq!(parse("/%FF"), Err(KeyError::NotUtf8));
    }

    #[test]
    fn dots_inside_segments_are_fine() {
        assert_eq!(parse("/a..b/.c/d.").unwrap(), "a..b/.c/d.");
    }

    #[test]
    fn length_limit_counts_decoded_bytes() {
        // 255 + 255 + 255 + 254 + 1 bytes and four slashes: exactly 1024.
        let seg = "a".repeat(MAX_SEGMENT_BYTES);
        let ok = format!("{seg}/{seg}/{seg}/{}/b", &seg[1..]);
        assert_eq!(ok.len(), MAX_KEY_BYTES);
        assert!(parse(&format!("/{ok}")).is_ok());
        assert_eq!(parse(&format!("/{ok}a")), Err(KeyError::TooLong));
        // 120 × 'ü' is 240 bytes decoded: fine, although 720 bytes encoded.
        let enc = "%C3%BC".repeat(120);
        assert!(parse(&format!("/{enc}")).is_ok());
        let enc = "%C3%BC".repeat(513);
        assert_eq!(parse(&format!("/{enc}")), Err(KeyError::TooLong));
    }

    #[test]
    fn reserved_prefix() {
        assert_eq!(parse("/_/health"), Err(KeyError::Reserved));
        assert_eq!(parse("/_%2Fx"), Err(KeyError::Reserved));
        assert!(parse("/_x/health").is_ok());
    }

    proptest::proptest! {
        /// Any path: no panic, and an accepted key has every property SPEC asks.
        #[test]
        fn any_path_is_refused_or_valid(path in "(/|[a-z]|\\.|%[0-9A-Fa-f]{2}|%|\\\\|_|ü){0,40}") {
            if let Ok(k) = ObjectKey::from_request_path(&path) {
                let s = k.as_str();
                proptest::prop_assert!(!s.is_empty() && s.len() <= MAX_KEY_BYTES);
                proptest::prop_assert!(!s.starts_with("_/"));
                proptest::prop_assert!(!s.chars().any(|c| c == '\\' || c.is_control()));
                for seg in s.split('/') {
                    proptest::prop_assert!(!seg.is_empty() && seg != "." && seg != "..");
                }
                proptest::prop_assert_eq!(k.store_path().as_ref(), s);
            }
        }
    }

    #[test]
    fn store_path_round_trips() {
        let k = ObjectKey::parse("dir/na me#1?%.jpg").unwrap();
        assert_eq!(k.store_path().as_ref(), "dir/na me#1?%.jpg");
    }

    #[test]
    fn keys_every_backend_can_store() {
        // object_store's local backend refuses to read `name#digits`.
        assert_eq!(parse("/orphan/a.jpg%231"), Err(KeyError::ReservedSuffix));
        assert_eq!(parse("/a%2312/b.jpg"), Err(KeyError::ReservedSuffix));
        assert!(parse("/a%231x.jpg").is_ok());
        assert!(parse("/a%23.jpg").is_ok());
        let long = "a".repeat(MAX_SEGMENT_BYTES);
        assert!(parse(&format!("/{long}/b")).is_ok());
        assert_eq!(parse(&format!("/{long}a/b")), Err(KeyError::SegmentTooLong));
    }

    #[test]
    fn keys_must_be_nfc() {
        // "é" as one code point (NFC) and as "e" + combining acute (NFD).
        assert_eq!(parse("/caf%C3%A9.jpg").unwrap(), "café.jpg");
        assert_eq!(parse("/cafe%CC%81.jpg"), Err(KeyError::NotNfc));
        // Hangul: precomposed is NFC; conjoining jamo are not.
        assert!(parse("/%ED%95%9C.jpg").is_ok());
        assert_eq!(
            parse("/%E1%84%92%E1%85%A1%E1%86%AB.jpg"),
            Err(KeyError::NotNfc)
        );
        // ſ is NFC (its folding to "s" is the route matcher's business).
        assert!(parse("/%C5%BFecret/x.jpg").is_ok());
    }
}
