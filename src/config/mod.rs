//! Configuration: the TOML file as written ([`RawConfig`]) and the checked,
//! typed [`Config`] the server runs on. They are different types so nothing
//! downstream ever sees an unchecked value.
//!
//! Unknown keys are refused (`deny_unknown_fields`) and every error names the
//! key (`cache.memory_mb: ...`). Secrets never come from the file: they are
//! read from `MEDIAEDGE_*` environment variables or the files those name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod access;
mod cache;
mod secrets;
mod server;
mod storage;
mod transform;
mod upload;
pub use access::{
    AccessKind, DEFAULT_PRIVATE_CACHE_CONTROL, DEFAULT_PUBLIC_CACHE_CONTROL, JwtConfig, KeySource,
    OneOrMany, RawJwt, RawRoute, RawSignedUrls, RouteConfig, SignedUrlsConfig,
};
pub use cache::{CacheConfig, DiskCacheConfig, RawCache};
use cache::{check_apart, validate_cache};
use secrets::read_secrets;
pub use secrets::{Secrets, read_secret};
use server::validate_server;
pub use server::{RawServer, ServerConfig};
use storage::validate_storage;
pub use storage::{Backend, RawStorage, StorageConfig};
use transform::validate_transform;
pub use transform::{RawTransform, TransformConfig};
pub use upload::{PresetConfig, RawPreset, RawUpload, UploadConfig};

/// A config error, already phrased for the operator and naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn key(key: &str, msg: impl std::fmt::Display) -> Self {
        Self(format!("{key}: {msg}"))
    }
}

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub cache: RawCache,
    pub transform: RawTransform,
    pub upload: RawUpload,
    pub jwt: Option<RawJwt>,
    pub route: Vec<RawRoute>,
    pub signed_urls: RawSignedUrls,
    pub preset: Vec<RawPreset>,
}

/// The checked config the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub cache: CacheConfig,
    pub transform: TransformConfig,
    pub upload: UploadConfig,
    pub jwt: Option<JwtConfig>,
    /// In config order: the first matching prefix wins; no match is public.
    pub routes: Vec<RouteConfig>,
    /// Which signed URL schemes pass (v1 until a date).
    pub signed_urls: SignedUrlsConfig,
    /// Variants made in the background after each image upload.
    pub presets: Vec<PresetConfig>,
    pub secrets: Secrets,
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
}

impl RawConfig {
    /// Parses TOML text; errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError(e.to_string().trim().to_owned()))?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // toml's message carries a snippet of the file after the first line.
            let msg = inner.message().to_owned();
            if path.is_empty() || path == "." {
                ConfigError(msg)
            } else {
                ConfigError::key(&path, msg)
            }
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        Self::from_toml(&text)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
    }

    /// Checks every value and produces the typed config.
    pub fn validate(
        mut self,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        if let Some(listen) = &overrides.listen {
            // The file's value is still checked: a typo there is refused, not masked.
            validate_server(&self.server)?;
            self.server.listen = listen.clone();
        }
        if let Some(data) = &overrides.data {
            self.storage.kind = "local".into();
            self.storage.path = data.clone();
        }
        let secrets = read_secrets(env)?;
        let jwt = access::validate_jwt(self.jwt)?;
        let mut transform = validate_transform(&self.transform)?;
        let presets = upload::validate_presets(&self.preset, &transform.variants)?;
        transform.variants.presets = presets
            .iter()
            .map(|p| crate::variant::Preset {
                name: p.name.clone(),
                request: p.request.clone(),
            })
            .collect();
        let storage = validate_storage(&self.storage)?;
        let cache = validate_cache(&self.cache)?;
        if let (Backend::Local { path }, Some(disk)) = (&storage.backend, &cache.disk) {
            check_apart(&disk.path, path)?;
        }
        Ok(Config {
            server: validate_server(&self.server)?,
            storage,
            cache,
            transform,
            upload: upload::validate_upload(&self.upload)?,
            presets,
            routes: access::validate_routes(self.route, jwt.as_ref(), &secrets)?,
            signed_urls: access::validate_signed_urls(&self.signed_urls)?,
            jwt,
            secrets,
        })
    }
}

impl Config {
    /// The embedded default: `./data`, `127.0.0.1:8080`, memory cache.
    pub fn embedded_default() -> Result<Self, ConfigError> {
        RawConfig::default().validate(&Overrides::default(), &|_| None)
    }
}

/// A whole number of seconds within `min..=max`, as a duration.
pub(crate) fn secs_in_range(
    key: &str,
    v: u64,
    min: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    in_range(key, v, min, max).map(Duration::from_secs)
}

pub(crate) fn in_range(key: &str, v: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::key(
            key,
            format!("must be from {min} to {max} (got {v})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variant::SizeSpec;

    fn validate(text: &str) -> Result<Config, ConfigError> {
        RawConfig::from_toml(text)?.validate(&Overrides::default(), &|_| None)
    }

    #[test]
    fn embedded_default() {
        let c = Config::embedded_default().unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        let Backend::Local { path } = &c.storage.backend else {
            panic!("not local")
        };
        assert_eq!(path, Path::new("./data"));
        assert!(c.cache.disk.is_none());
        assert_eq!(c.cache.memory_bytes, 256 << 20);
        assert_eq!(c.transform.variants.max_dimension, 4096);
        assert!(c.transform.workers >= 1);
        let _ = TransformConfig::default();
    }

    /// config.example.toml lists every key at its default: it parses, and
    /// gives the same config as no file at all.
    #[test]
    fn example_file_is_the_defaults() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml"),
        )
        .unwrap();
        let example = validate(&text).unwrap();
        let default = Config::embedded_default().unwrap();
        assert_eq!(format!("{example:?}"), format!("{default:?}"));
        // Every raw key appears in the file (commented or not).
        let raw = format!("{:?}", RawConfig::default());
        for key in raw
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_') && w.len() > 3)
        {
            if ["some", "none", "true", "false", "local", "data"].contains(&key)
                || upload::VIDEO_CODECS.contains(&key)
            {
                continue;
            }
            assert!(
                text.contains(&format!("{key} =")) || text.contains(&format!("[{key}]")),
                "config.example.toml lacks {key}"
            );
        }
        // Sections absent by default are documented in comments.
        for key in [
            "[jwt]",
            "public_key_file =",
            "jwks_file =",
            "jwks_url =",
            "allow_http_jwks =",
            "algorithms =",
            "issuer =",
            "audience =",
            "cookie =",
            "leeway_secs =",
            "jwks_refresh_secs =",
            "[[route]]",
            "[[preset]]",
            "name =",
            "size =",
            "fit =",
            "format =",
            "quality =",
            "base_url =",
            "prefix =",
            "access =",
            "cache_control =",
        ] {
            assert!(text.contains(key), "config.example.toml lacks {key}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = validate("[cache]\nmemroy_mb = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache") && e.contains("memroy_mb"), "{e}");
        let e = validate("[caches]\n").unwrap_err().to_string();
        assert!(e.contains("caches"), "{e}");
        let e = validate("listen = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("[cache]\nmemory_mb = 0\n", "cache.memory_mb"),
            ("[cache]\nmemory_mb = \"big\"\n", "cache.memory_mb"),
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[storage]\nkind = \"ftp\"\n", "storage.kind"),
            (
                "[transform]\nmax_dimension = 0\n",
                "transform.max_dimension",
            ),
            (
                "[transform]\ndefault_quality = 101\n",
                "transform.default_quality",
            ),
            (
                "[transform]\nallowed_sizes = [\"150\"]\n",
                "transform.allowed_sizes",
            ),
            (
                "[transform]\nallowed_sizes = [\"0x5\"]\n",
                "transform.allowed_sizes",
            ),
            (
                "[transform]\ntimeout_secs = 0.0\n",
                "transform.timeout_secs",
            ),
            (
                "[transform]\nrefusal_delay_ms = 60000\n",
                "transform.refusal_delay_ms",
            ),
            ("[transform]\nmemory_mb = 1\n", "transform.memory_mb"),
            (
                "[server]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
                "server.trusted_proxies",
            ),
            (
                "[server]\nmax_connections_per_ip = 0\n",
                "server.max_connections_per_ip",
            ),
            (
                "[transform]\nmiss_burst_per_ip = 0\n",
                "transform.miss_burst_per_ip",
            ),
            (
                "[transform]\nallowed_formats = [\"gif\"]\n",
                "transform.allowed_formats",
            ),
            (
                "[transform]\nallowed_qualities = [0]\n",
                "transform.allowed_qualities",
            ),
            (
                "[transform]\nallowed_qualities = [60, 90]\n",
                "transform.allowed_qualities",
            ),
            ("[cache]\ndisk_path = \"\"\n", "cache.disk_path"),
            ("[cache]\ndisk_path = \"./data\"\n", "cache.disk_path"),
            ("[cache]\ndisk_path = \".\"\n", "cache.disk_path"),
            ("[cache]\ndisk_path = \"data/cache\"\n", "cache.disk_path"),
            (
                "[cache]\ndisk_path = \"./other/../data/x\"\n",
                "cache.disk_path",
            ),
            (
                "[signed_urls]\naccept_v1_until = \"June 2027\"\n",
                "signed_urls.accept_v1_until",
            ),
            (
                "[signed_urls]\naccept_v1_until = 2027-06-30\n",
                "signed_urls.accept_v1_until",
            ),
        ] {
            let e = validate(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text:?} gave {e}");
        }
    }

    /// Keys fetched without TLS can be swapped on the way: a JWKS URL is
    /// https unless plain http is allowed explicitly (a local identity
    /// provider in tests or development).
    #[test]
    fn jwks_url_is_https_unless_http_is_allowed() {
        let jwt = |lines: &str| validate(&format!("[jwt]\n{lines}\n"));
        jwt("jwks_url = \"https://idp.example/.well-known/jwks.json\"").unwrap();
        jwt("jwks_url = \"http://127.0.0.1:8081/jwks.json\"\nallow_http_jwks = true").unwrap();
        for lines in [
            "jwks_url = \"http://127.0.0.1:8081/jwks.json\"",
            "jwks_url = \"http://idp.example/jwks.json\"\nallow_http_jwks = false",
            "jwks_url = \"ftp://idp.example/jwks.json\"\nallow_http_jwks = true",
            "jwks_url = \"https://\"",
            "jwks_url = \"idp.example/jwks.json\"",
        ] {
            let e = jwt(lines).unwrap_err().to_string();
            assert!(e.starts_with("jwt.jwks_url"), "{lines:?} gave {e}");
        }
        let e = jwt("jwks_url = \"http://idp.example/jwks.json\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_http_jwks"), "{e}");
    }

    #[test]
    fn full_example_parses() {
        let c = validate(
            r#"
[server]
listen = "0.0.0.0:9000"
[storage]
kind = "local"
path = "/srv/media"
[cache]
memory_mb = 64
disk_path = "/var/cache/mediaedge"
disk_mb = 100
[transform]
allowed_sizes = ["150x150", "500x700", "300x"]
[upload]
max_bytes = 1000
"#,
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.cache.disk.unwrap().max_bytes, 100 << 20);
        assert_eq!(
            c.transform.variants.allowed_sizes[2],
            SizeSpec {
                width: Some(300),
                height: None
            }
        );
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            listen: Some("127.0.0.1:0".into()),
            data: Some("/tmp/x".into()),
        };
        let c = RawConfig::from_toml("[server]\nlisten = \"1.2.3.4:5\"\n")
            .unwrap()
            .validate(&o, &|_| None)
            .unwrap();
        assert_eq!(c.server.listen.port(), 0);
        let Backend::Local { path } = &c.storage.backend else {
            panic!("not local")
        };
        assert_eq!(path, Path::new("/tmp/x"));
    }

    #[test]
    fn secrets_from_env_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "0123456789abcdef-from-file\n").unwrap();
        let fpath = f.to_string_lossy().into_owned();
        let env = move |k: &str| match k {
            "MEDIAEDGE_ADMIN_KEY" => Some("0123456789abcdef-env".to_owned()),
            "MEDIAEDGE_SIGNING_SECRET_FILE" => Some(fpath.clone()),
            _ => None,
        };
        let s = read_secrets(&env).unwrap();
        assert_eq!(s.admin_key.as_deref(), Some("0123456789abcdef-env"));
        assert_eq!(
            s.signing_secret.as_deref(),
            Some("0123456789abcdef-from-file")
        );
        assert!(!format!("{s:?}").contains("0123"));
        let short = |k: &str| (k == "MEDIAEDGE_ADMIN_KEY").then(|| "short".to_owned());
        assert!(
            read_secrets(&short)
                .unwrap_err()
                .to_string()
                .contains("MEDIAEDGE_ADMIN_KEY")
        );
    }
}
