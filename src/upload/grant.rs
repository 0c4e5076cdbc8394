//! Presigned upload URLs: what a signature allows, and how it is written.
//!
//! The signature is HMAC-SHA256 (the signing secret) over
//!
//! ```text
//! PUT\n/<key>\n<exp>\n<max_bytes>\n<type>
//! ```
//!
//! where `type` is the content-type class (`image`, `video` or `any`),
//! followed by `\nreusable` and/or `\nif_absent` when the grant has those
//! terms (the URL then carries `reusable=1` / `if_absent=1`), and by
//! `\nn=<nonce>`: 128 random bits per presign, so two URLs for one key
//! issued in the same second are two grants, each with its own use. Without
//! `reusable` a URL may publish once (see `once.rs`). The leading `PUT\n`
//! keeps it apart from signed GET URLs (`/<key>?...`, `v2\n...`), so neither
//! kind of signature can stand in for the other.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::auth::signed::{SignatureFault, UrlSigner};
use crate::key::ObjectKey;
use crate::media_type::MediaType;
use crate::query::named_params;

/// What a presigned URL lets its holder upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadClass {
    Image,
    Video,
    Any,
}

impl UploadClass {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadClass::Image => "image",
            UploadClass::Video => "video",
            UploadClass::Any => "any",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "image" => Some(UploadClass::Image),
            "video" => Some(UploadClass::Video),
            "any" => Some(UploadClass::Any),
            _ => None,
        }
    }

    /// The class of a `content_type` as a presign request gives it
    /// (`image/jpeg`, `video/*`, `image`...), and the extension a generated
    /// key gets (`None`: the type does not name one).
    pub fn from_content_type(ct: Option<&str>) -> Result<(Self, Option<&'static str>), String> {
        let Some(ct) = ct.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok((UploadClass::Any, None));
        };
        let ct = ct.to_ascii_lowercase();
        let ext = match ct.as_str() {
            "image/jpeg" | "image/jpg" => Some("jpg"),
            "image/png" => Some("png"),
            "image/webp" => Some("webp"),
            "image/gif" => Some("gif"),
            "image/avif" => Some("avif"),
            "image/heic" => Some("heic"),
            "image/heif" => Some("heif"),
            "video/mp4" => Some("mp4"),
            "video/webm" => Some("webm"),
            "video/quicktime" => Some("mov"),
            _ => None,
        };
        let class = match ct.split('/').next() {
            Some("image") if ext.is_some() || ct == "image" || ct == "image/*" => {
                UploadClass::Image
            }
            Some("video") if ext.is_some() || ct == "video" || ct == "video/*" => {
                UploadClass::Video
            }
            _ => {
                return Err(format!(
                    "content_type '{ct}' is not an allowed type (image/jpeg, image/png, image/webp, image/gif, image/avif, image/heic, image/heif, video/mp4, video/webm, video/quicktime, image/*, video/*)"
                ));
            }
        };
        Ok((class, ext))
    }

    /// Whether sniffed content may be stored under this class. Only these
    /// types are ever accepted: SVG, HTML and anything unrecognised never are.
    pub fn allows(self, media: MediaType) -> bool {
        let image = matches!(
            media,
            MediaType::Jpeg
                | MediaType::Png
                | MediaType::Webp
                | MediaType::Gif
                | MediaType::Avif
                | MediaType::Heic
                | MediaType::Heif
        );
        let video = matches!(
            media,
            MediaType::Mp4 | MediaType::Webm | MediaType::QuickTime
        );
        match self {
            UploadClass::Image => image,
            UploadClass::Video => video,
            UploadClass::Any => image || video,
        }
    }
}

/// The terms of one presigned upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub key: ObjectKey,
    pub exp: u64,
    pub max_bytes: u64,
    pub class: UploadClass,
    /// May publish any number of times until it expires (else once).
    pub reusable: bool,
    /// Publishes only if the key does not exist yet.
    pub if_absent: bool,
    /// Makes each presigned URL a grant of its own (empty on URLs made
    /// before nonces existed).
    pub nonce: String,
}

impl Grant {
    /// The signed string; also what names the grant in the used-grant record.
    pub fn canonical(&self) -> String {
        let mut s = format!(
            "PUT\n/{}\n{}\n{}\n{}",
            self.key.as_str(),
            self.exp,
            self.max_bytes,
            self.class.as_str()
        );
        if self.reusable {
            s.push_str("\nreusable");
        }
        if self.if_absent {
            s.push_str("\nif_absent");
        }
        if !self.nonce.is_empty() {
            s.push_str("\nn=");
            s.push_str(&self.nonce);
        }
        s
    }

    /// `/_/uploads/<key>?exp=&max_bytes=&type=[&reusable=1][&if_absent=1]&n=&sig=`
    /// (to put after a base URL).
    pub fn path_and_query(&self, signer: &UrlSigner) -> String {
        format!(
            "/_/uploads/{}?exp={}&max_bytes={}&type={}{}{}{}{}&sig={}",
            self.key.url_path(),
            self.exp,
            self.max_bytes,
            self.class.as_str(),
            if self.reusable { "&reusable=1" } else { "" },
            if self.if_absent { "&if_absent=1" } else { "" },
            if self.nonce.is_empty() { "" } else { "&n=" },
            self.nonce,
            signer.sign(&self.canonical())
        )
    }

    /// Reads and checks the terms of a `PUT /_/uploads/<key>?...` request.
    pub fn verify(
        key: ObjectKey,
        query: Option<&str>,
        signer: &UrlSigner,
        now: u64,
    ) -> Result<Self, SignatureFault> {
        let fields = named_params(
            query,
            &[
                "exp",
                "max_bytes",
                "type",
                "sig",
                "reusable",
                "if_absent",
                "n",
            ],
        )
        .map_err(|_| SignatureFault::Invalid)?;
        let [
            Some(exp),
            Some(max),
            Some(class),
            Some(sig),
            reusable,
            if_absent,
            nonce,
        ] = fields
        else {
            return Err(SignatureFault::Missing);
        };
        let nonce = nonce.map(|n| n.into_owned()).unwrap_or_default();
        if nonce.len() > 64
            || !nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(SignatureFault::Invalid);
        }
        // A term is on only as `=1`; any other value is no signature of ours.
        let flag = |v: Option<std::borrow::Cow<'_, str>>| match v.as_deref() {
            None => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(SignatureFault::Invalid),
        };
        let grant = Grant {
            key,
            exp: exp.parse().map_err(|_| SignatureFault::Invalid)?,
            max_bytes: max.parse().map_err(|_| SignatureFault::Invalid)?,
            class: UploadClass::parse(&class).ok_or(SignatureFault::Invalid)?,
            reusable: flag(reusable)?,
            if_absent: flag(if_absent)?,
            nonce,
        };
        if !signer.check(&grant.canonical(), &sig) {
            return Err(SignatureFault::Invalid);
        }
        if now > grant.exp {
            return Err(SignatureFault::Expired);
        }
        Ok(grant)
    }
}

/// 128 random bits, base64url (22 characters).
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness available".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// An unguessable key: a random token with the extension of the announced type.
pub fn random_key(ext: Option<&str>) -> Result<ObjectKey, String> {
    let name = random_token()?;
    let key = match ext {
        Some(ext) => format!("{name}.{ext}"),
        None => name,
    };
    ObjectKey::parse(&key).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> UrlSigner {
        UrlSigner::new("0123456789abcdef0123")
    }

    fn grant() -> Grant {
        Grant {
            key: ObjectKey::parse("u/cat one.jpg").unwrap(),
            exp: 1000,
            max_bytes: 5000,
            class: UploadClass::Image,
            reusable: false,
            if_absent: false,
            nonce: "abc_DEF-123".into(),
        }
    }

    fn check(url: &str, now: u64) -> Result<Grant, SignatureFault> {
        let (path, query) = url.split_once('?').unwrap();
        let key = ObjectKey::from_request_path(path.strip_prefix("/_/uploads").unwrap()).unwrap();
        Grant::verify(key, Some(query), &signer(), now)
    }

    #[test]
    fn round_trip_and_tampering() {
        let url = grant().path_and_query(&signer());
        assert!(
            url.starts_with(
                "/_/uploads/u/cat%20one.jpg?exp=1000&max_bytes=5000&type=image&n=abc_DEF-123&sig="
            ),
            "{url}"
        );
        assert_eq!(check(&url, 10), Ok(grant()));
        assert_eq!(check(&url, 1001), Err(SignatureFault::Expired));
        for bad in [
            url.replace("max_bytes=5000", "max_bytes=50000"),
            url.replace("type=image", "type=any"),
            url.replace("exp=1000", "exp=2000"),
            url.replace("cat%20one", "dog"),
            format!("{url}&exp=1000"),
            url.replace("type=image", "type=text"),
            url.replace("n=abc_DEF-123", "n=abc_DEF-124"),
            url.replace("&n=abc_DEF-123", ""),
            url.replace("n=abc_DEF-123", "n=a%20b"),
        ] {
            assert_eq!(check(&bad, 10), Err(SignatureFault::Invalid), "{bad}");
        }
        assert_eq!(
            check(&url.replace("&sig=", "&nosig="), 10),
            Err(SignatureFault::Missing)
        );
        // A signed GET URL's signature is not an upload signature.
        let get_sig = signer().sign("/u/cat one.jpg?exp=1000");
        let forged = format!(
            "/_/uploads/u/cat%20one.jpg?exp=1000&max_bytes=5000&type=image&n=abc_DEF-123&sig={get_sig}"
        );
        assert_eq!(check(&forged, 10), Err(SignatureFault::Invalid));
        // The terms are signed: a client cannot make its URL reusable.
        assert_eq!(
            check(&format!("{url}&reusable=1"), 10),
            Err(SignatureFault::Invalid)
        );
        assert_eq!(
            check(&format!("{url}&if_absent=1"), 10),
            Err(SignatureFault::Invalid)
        );
    }

    #[test]
    fn terms_round_trip() {
        let g = Grant {
            reusable: true,
            if_absent: true,
            ..grant()
        };
        let url = g.path_and_query(&signer());
        assert!(url.contains("&reusable=1&if_absent=1&n="), "{url}");
        assert_eq!(check(&url, 10), Ok(g.clone()));
        assert_eq!(
            check(&url.replace("&reusable=1", ""), 10),
            Err(SignatureFault::Invalid)
        );
        assert_eq!(
            check(&url.replace("reusable=1", "reusable=0"), 10),
            Err(SignatureFault::Invalid)
        );
        assert_ne!(g.canonical(), grant().canonical());
    }

    #[test]
    fn classes_and_extensions() {
        assert_eq!(
            UploadClass::from_content_type(Some("image/jpeg")),
            Ok((UploadClass::Image, Some("jpg")))
        );
        assert_eq!(
            UploadClass::from_content_type(Some("Video/MP4")),
            Ok((UploadClass::Video, Some("mp4")))
        );
        assert_eq!(
            UploadClass::from_content_type(Some("image/*")),
            Ok((UploadClass::Image, None))
        );
        assert_eq!(
            UploadClass::from_content_type(None),
            Ok((UploadClass::Any, None))
        );
        for bad in [
            "image/svg+xml",
            "text/html",
            "application/pdf",
            "image/tiff",
        ] {
            assert!(UploadClass::from_content_type(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            UploadClass::from_content_type(Some("image/heic")),
            Ok((UploadClass::Image, Some("heic")))
        );
        assert!(UploadClass::Image.allows(MediaType::Avif));
        assert!(UploadClass::Image.allows(MediaType::Heic));
        assert!(UploadClass::Image.allows(MediaType::Heif));
        assert!(!UploadClass::Image.allows(MediaType::Mp4));
        assert!(UploadClass::Any.allows(MediaType::QuickTime));
        for never in [MediaType::Other, MediaType::Tiff, MediaType::Bmp] {
            assert!(!UploadClass::Any.allows(never), "{never:?}");
        }
    }

    #[test]
    fn random_keys_are_unguessable_and_url_safe() {
        let a = random_key(Some("jpg")).unwrap();
        let b = random_key(Some("jpg")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22 + 4);
        assert!(
            a.as_str()
                .trim_end_matches(".jpg")
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
