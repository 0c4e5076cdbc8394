//! `[upload]` and `[[preset]]`: presigned uploads and the variants made in
//! the background after each image upload.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, in_range, secs_in_range};
use crate::variant::{Variant, VariantLimits, VariantRequest};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpload {
    pub max_bytes: u64,
    pub expiry_secs: u64,
    pub body_timeout_secs: u64,
    pub min_rate_bytes_per_sec: u64,
    pub base_url: Option<String>,
    pub keep_metadata: bool,
    pub max_video_secs: u64,
    pub video_codecs: Vec<String>,
}

/// The video codecs an upload may use (what `transform::video` decodes).
pub const VIDEO_CODECS: [&str; 4] = ["h264", "hevc", "vp9", "av1"];

impl Default for RawUpload {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            expiry_secs: 900,
            body_timeout_secs: 30,
            min_rate_bytes_per_sec: 8192,
            base_url: None,
            keep_metadata: false,
            max_video_secs: 600,
            video_codecs: VIDEO_CODECS.iter().map(|c| c.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UploadConfig {
    pub max_bytes: u64,
    /// Default lifetime of a presigned URL.
    pub expiry: Duration,
    /// Longest wait for the next piece of an upload body (slow clients).
    pub body_timeout: Duration,
    /// After the first `body_timeout`, the body must keep up this average
    /// rate (0: no minimum). With the per-piece timeout alone, a client
    /// sending a byte every few seconds could hold an upload open for days.
    pub min_rate_bytes_per_sec: u64,
    /// Scheme and host put in front of presigned URLs; `None`: from the request's `Host`.
    pub base_url: Option<String>,
    /// Store uploads with their metadata (EXIF, GPS, XMP…) as sent; by
    /// default it is removed before publishing.
    pub keep_metadata: bool,
    /// Longest video an upload may hold.
    pub max_video_secs: u64,
    /// Video codecs an upload may use (a subset of [`VIDEO_CODECS`]).
    pub video_codecs: Vec<&'static str>,
}

pub fn validate_upload(raw: &RawUpload) -> Result<UploadConfig, ConfigError> {
    let base_url = match &raw.base_url {
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
            return Err(ConfigError::key(
                "upload.base_url",
                format!("'{u}' is not an http(s) URL"),
            ));
        }
        Some(u) => Some(u.trim_end_matches('/').to_owned()),
        None => None,
    };
    Ok(UploadConfig {
        max_bytes: in_range("upload.max_bytes", raw.max_bytes, 1, 1 << 40)?,
        expiry: secs_in_range("upload.expiry_secs", raw.expiry_secs, 1, 7 * 86400)?,
        body_timeout: secs_in_range("upload.body_timeout_secs", raw.body_timeout_secs, 1, 3600)?,
        min_rate_bytes_per_sec: in_range(
            "upload.min_rate_bytes_per_sec",
            raw.min_rate_bytes_per_sec,
            0,
            1 << 30,
        )?,
        base_url,
        keep_metadata: raw.keep_metadata,
        max_video_secs: in_range("upload.max_video_secs", raw.max_video_secs, 1, 86_400)?,
        video_codecs: raw
            .video_codecs
            .iter()
            .map(|c| {
                VIDEO_CODECS
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(c))
                    .copied()
                    .ok_or_else(|| {
                        ConfigError::key(
                            "upload.video_codecs",
                            format!("'{c}' is not one of {}", VIDEO_CODECS.join(", ")),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    })
}

/// `[[preset]] name = "thumb"  size = "150x150"  fit = "cover"  format = "webp"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreset {
    pub name: String,
    pub size: String,
    pub fit: Option<String>,
    #[serde(default = "auto")]
    pub format: String,
    pub quality: Option<u8>,
}

fn auto() -> String {
    "auto".into()
}

#[derive(Debug, Clone)]
pub struct PresetConfig {
    pub name: String,
    /// What a viewer's request resolves to: one variant, or two for
    /// `format = "auto"` (WebP for browsers that accept it, JPEG/PNG otherwise).
    pub variants: Vec<Variant>,
    /// The parameters as `?p=<name>` applies them (negotiated per request).
    pub request: VariantRequest,
}

pub fn validate_presets(
    raw: &[RawPreset],
    limits: &VariantLimits,
) -> Result<Vec<PresetConfig>, ConfigError> {
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            let key = format!("preset[{i}]");
            if p.name.is_empty() {
                return Err(ConfigError::key(
                    &format!("{key}.name"),
                    "must not be empty",
                ));
            }
            let (w, h) = p.size.split_once('x').ok_or_else(|| {
                ConfigError::key(&format!("{key}.size"), "expected WxH, e.g. 150x150")
            })?;
            // The preset is written the way a viewer's query would be, and
            // checked by the same parser (so allowed_sizes applies too).
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (name, value) in [
                ("w", Some(w)),
                ("h", Some(h)),
                ("fit", p.fit.as_deref()),
                ("fmt", Some(p.format.as_str())),
            ] {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    query.append_pair(name, v);
                }
            }
            if let Some(q) = p.quality {
                query.append_pair("q", &q.to_string());
            }
            let query = query.finish();
            // A preset is what `presets_only` lets through: parsed without it.
            let limits = &VariantLimits {
                presets_only: false,
                ..limits.clone()
            };
            let request = VariantRequest::parse(Some(&query), limits)
                .map_err(|e| ConfigError::key(&key, e))?
                .ok_or_else(|| {
                    ConfigError::key(&format!("{key}.size"), "expected WxH, e.g. 150x150")
                })?;
            let mut variants = vec![request.resolve(Some("image/webp"), limits)];
            let other = request.resolve(None, limits);
            if other != variants[0] && other.canonical() != variants[0].canonical() {
                variants.push(other);
            }
            if raw[..i].iter().any(|o| o.name == p.name) {
                return Err(ConfigError::key(
                    &format!("{key}.name"),
                    format!("'{}' is the name of an earlier preset", p.name),
                ));
            }
            Ok(PresetConfig {
                name: p.name.clone(),
                variants,
                request,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variant::SizeSpec;

    fn preset(size: &str, fit: Option<&str>, format: &str) -> RawPreset {
        RawPreset {
            name: "p".into(),
            size: size.into(),
            fit: fit.map(Into::into),
            format: format.into(),
            quality: None,
        }
    }

    #[test]
    fn presets_resolve_like_viewer_requests() {
        let t = VariantLimits::default();
        let p = validate_presets(&[preset("150x150", Some("cover"), "webp")], &t).unwrap();
        assert_eq!(p[0].variants.len(), 1);
        assert_eq!(
            p[0].variants[0].canonical(),
            "w=150&h=150&fit=cover&fmt=webp&q=80"
        );
        let p = validate_presets(&[preset("500x700", Some("inside"), "auto")], &t).unwrap();
        let forms: Vec<String> = p[0].variants.iter().map(Variant::canonical).collect();
        assert_eq!(
            forms,
            [
                "w=500&h=700&fit=inside&fmt=webp&q=80",
                "w=500&h=700&fit=inside&fmt=jpeg-or-png&q=80"
            ]
        );
        let p = validate_presets(&[preset("300x", None, "jpeg")], &t).unwrap();
        assert_eq!(p[0].variants[0].canonical(), "w=300&fmt=jpeg&q=80");
    }

    #[test]
    fn bad_presets_name_the_key() {
        let t = VariantLimits::default();
        for bad in [
            preset("150", None, "webp"),
            preset("0x5", None, "webp"),
            preset("150x150", Some("crop"), "webp"),
            preset("150x150", None, "gif"),
        ] {
            let e = validate_presets(&[bad], &t).unwrap_err().to_string();
            assert!(e.starts_with("preset[0]"), "{e}");
        }
        let t = VariantLimits {
            allowed_sizes: vec![SizeSpec {
                width: Some(150),
                height: Some(150),
            }],
            ..VariantLimits::default()
        };
        assert!(validate_presets(&[preset("500x700", None, "webp")], &t).is_err());
    }
}
