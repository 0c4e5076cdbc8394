//! Route prefixes such as `/private/` or `/private/users/{sub}/`.
//!
//! A prefix is matched segment by segment against the *decoded, validated*
//! key (see `key.rs`: `%2F` is already a separator, `.`/`..`/empty segments
//! are already refused), ignoring case. Case is folded because a
//! case-insensitive store (a macOS disk, some S3-compatible servers) would
//! otherwise hand out `/PRIVATE/x.jpg` through the public default; folding can
//! only make a request *more* protected, never less. The folding is Unicode's
//! full case folding of the canonical decomposition ([`fold`]), not
//! `to_lowercase`: `ſecret` (long s) is already lower case, yet a
//! case-insensitive store finds `secret` under it.
//!
//! A `{name}` segment matches any one segment and names the token claim that
//! must equal it (claim scoping: one user's token cannot read another's media).

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// The form keys and prefixes are compared in: Unicode's canonical caseless
/// match (NFD, full case folding, NFD again — D145 of the standard), so
/// `ſ`/`s`, `K` (Kelvin sign)/`k`, `ß`/`ss` and composed/decomposed accents
/// meet. ASCII, the common case, is only lower-cased.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        let nfd: String = s.nfd().collect();
        Cow::Owned(caseless::default_case_fold_str(&nfd).nfd().collect())
    }
}

/// A parsed `[[route]] prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePrefix {
    text: String,
    segments: Vec<Segment>,
    /// The prefix does not end in `/`: its last literal matches the start of
    /// a segment (`/priv` matches `private/...`, as a plain string prefix would).
    open_end: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Literal, in [`fold`]ed form.
    Literal(String),
    /// `{claim}`: any one segment, which must equal the token's claim.
    Claim(String),
}

impl RoutePrefix {
    /// Parses a prefix as written in the config. The message is for the operator.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("'{text}' must start with '/'"));
        };
        let (body, open_end) = match rest.strip_suffix('/') {
            Some(b) => (b, false),
            None => (rest, !rest.is_empty()),
        };
        let mut segments = Vec::new();
        if !body.is_empty() {
            for seg in body.split('/') {
                segments.push(parse_segment(seg).map_err(|m| format!("'{text}': {m}"))?);
            }
        }
        if open_end && matches!(segments.last(), Some(Segment::Claim(_))) {
            return Err(format!(
                "'{text}': a {{claim}} segment must be followed by '/'"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
            open_end,
        })
    }

    /// The prefix as written (for logs and errors).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the key, given as its [`fold`]ed segments, lies under this prefix.
    pub fn matches(&self, folded: &[&str]) -> bool {
        let n = self.segments.len();
        // A directory prefix needs something below it; an open one only its segments.
        let needed = if self.open_end { n } else { n + 1 };
        if folded.len() < needed {
            return false;
        }
        self.segments
            .iter()
            .zip(folded)
            .enumerate()
            .all(|(i, (seg, key_seg))| match seg {
                Segment::Claim(_) => true,
                Segment::Literal(l) if self.open_end && i + 1 == n => key_seg.starts_with(l),
                Segment::Literal(l) => key_seg == l,
            })
    }

    /// `(segment index, claim name)` for every `{claim}` in the prefix.
    pub fn claims(&self) -> impl Iterator<Item = (usize, &str)> {
        self.segments
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Segment::Claim(c) => Some((i, c.as_str())),
                Segment::Literal(_) => None,
            })
    }

    pub fn has_claims(&self) -> bool {
        self.claims().next().is_some()
    }
}

fn parse_segment(seg: &str) -> Result<Segment, String> {
    match seg {
        "" => return Err("empty segment ('//')".into()),
        "." | ".." => return Err("'.' and '..' segments are not allowed".into()),
        _ => {}
    }
    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
        return if ok {
            Ok(Segment::Claim(name.to_owned()))
        } else {
            Err(format!("'{{{name}}}' is not a claim name"))
        };
    }
    if seg.contains(['{', '}', '\\']) || seg.chars().any(char::is_control) {
        return Err(format!(
            "segment '{seg}' may not contain braces (use a whole '{{claim}}' segment), backslashes or control characters"
        ));
    }
    Ok(Segment::Literal(fold(seg).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(prefix: &str, key: &str) -> bool {
        let folded = fold(key);
        let segs: Vec<&str> = folded.split('/').collect();
        RoutePrefix::parse(prefix).unwrap().matches(&segs)
    }

    #[test]
    fn directory_prefixes() {
        assert!(matches("/private/", "private/a.jpg"));
        assert!(matches("/private/", "private/x/y/a.jpg"));
        assert!(!matches("/private/", "private"));
        assert!(!matches("/private/", "privateer/a.jpg"));
        assert!(!matches("/private/", "public/private/a.jpg"));
        assert!(matches("/", "anything.jpg"));
        assert!(matches("/a/b/", "a/b/c"));
        assert!(!matches("/a/b/", "a/c/b"));
    }

    #[test]
    fn open_prefixes_are_string_prefixes() {
        assert!(matches("/priv", "private/a.jpg"));
        assert!(matches("/priv", "priv"));
        assert!(matches("/private", "private/a.jpg"));
        assert!(matches("/private", "privateer.jpg"));
        assert!(!matches("/private", "pri"));
        assert!(matches("/a/b", "a/bee"));
    }

    #[test]
    fn case_is_folded() {
        assert!(matches("/private/", "PRIVATE/a.jpg"));
        assert!(matches("/Private/", "private/a.jpg"));
        assert!(matches("/private/", "PrIvAtE/a.jpg"));
        // Kelvin sign folds to 'k'.
        assert!(matches("/kids/", "\u{212A}IDS/a.jpg"));
        // Long s is lower case already; it folds to 's' (to_lowercase kept it).
        assert!(matches("/secret/", "\u{17F}ecret/x.jpg"));
        assert!(matches("/secret/", "\u{17F}ECRET/x.jpg"));
        // Sharp s folds to "ss", both ways round.
        assert!(matches("/strasse/", "stra\u{DF}e/x.jpg"));
        assert!(matches("/stra\u{DF}e/", "STRASSE/x.jpg"));
        // Composed and decomposed accents meet.
        assert!(matches("/caf\u{E9}/", "cafe\u{301}/x.jpg"));
        assert!(matches("/cafe\u{301}/", "CAF\u{C9}/x.jpg"));
        assert!(!matches("/secret/", "secrets/x.jpg"));
    }

    #[test]
    fn claim_segments() {
        let p = RoutePrefix::parse("/private/users/{sub}/").unwrap();
        let key = ["private", "users", "alice", "a.jpg"];
        assert!(p.matches(&key));
        assert!(!p.matches(&["private", "users", "alice"]));
        assert_eq!(p.claims().collect::<Vec<_>>(), vec![(2, "sub")]);
        assert!(p.has_claims());
        assert!(!RoutePrefix::parse("/x/").unwrap().has_claims());
        let p = RoutePrefix::parse("/t/{org_id}/{sub}/").unwrap();
        assert_eq!(
            p.claims().collect::<Vec<_>>(),
            vec![(1, "org_id"), (2, "sub")]
        );
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for bad in [
            "private/",
            "",
            "/a//b/",
            "/a/../b/",
            "/./",
            "/a/{}/",
            "/a/x{sub}/",
            "/a/{sub}",
            "/a/{s b}/",
            "/a\\b/",
        ] {
            assert!(RoutePrefix::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
