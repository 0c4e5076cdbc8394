//! Configuration: the TOML file as written ([`RawConfig`]) and the checked,
//! typed [`Config`] the server runs on. They are different types so nothing
//! downstream ever sees an unchecked value.
//!
//! Unknown keys are refused (`deny_unknown_fields`) and every error names the
//! key (`cache.memory_mb: ...`). Secrets never come from the file: they are
//! read from `MEDIAEDGE_*` environment variables or the files those name.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::variant::{SizeSpec, VariantLimits};

mod access;
mod upload;
pub use access::{
    AccessKind, DEFAULT_PRIVATE_CACHE_CONTROL, DEFAULT_PUBLIC_CACHE_CONTROL, JwtConfig, KeySource,
    OneOrMany, RawJwt, RawRoute, RawSignedUrls, RouteConfig, SignedUrlsConfig,
};
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

// ---------- raw, as written ----------

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub shutdown_grace_secs: u64,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_header_bytes: u64,
    pub max_url_bytes: u64,
    pub max_connections: u64,
    pub max_connections_per_ip: u64,
    /// Proxies whose X-Forwarded-* headers are believed.
    pub trusted_proxies: Vec<String>,
    /// A second listener serving only metrics, the status page and health
    /// without the admin key (for a private interface, where Prometheus
    /// scrapes); unset = none. `status_listen` is its earlier name.
    #[serde(alias = "status_listen")]
    pub metrics_listen: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_header_bytes: 16 << 10,
            max_url_bytes: 8 << 10,
            max_connections: 1000,
            max_connections_per_ip: 100,
            trusted_proxies: Vec::new(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub kind: String,
    pub path: PathBuf,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: bool,
    pub timeout_secs: f64,
    pub retries: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            path: PathBuf::from("./data"),
            bucket: None,
            endpoint: None,
            region: None,
            path_style: false,
            timeout_secs: 10.0,
            retries: 2,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub memory_mb: u64,
    pub disk_path: Option<PathBuf>,
    pub disk_mb: u64,
    pub revalidate_secs: u64,
    pub stale_if_error_secs: u64,
    pub negative_secs: u64,
    pub shared: bool,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            memory_mb: 256,
            disk_path: None,
            disk_mb: 10240,
            revalidate_secs: 60,
            stale_if_error_secs: 86400,
            negative_secs: 5,
            shared: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTransform {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    pub max_dimension: u32,
    pub default_quality: u8,
    pub allowed_sizes: Vec<String>,
    pub allowed_formats: Vec<String>,
    pub allowed_qualities: Vec<u64>,
    pub workers: usize,
    pub queue: usize,
    pub timeout_secs: f64,
    pub refusal_delay_ms: u64,
    pub memory_mb: u64,
    pub miss_rate_per_ip: u64,
    pub miss_burst_per_ip: u64,
}

impl Default for RawTransform {
    fn default() -> Self {
        Self {
            max_source_pixels: 100_000_000,
            max_source_bytes: 64 * 1024 * 1024,
            max_dimension: 4096,
            default_quality: 80,
            allowed_sizes: Vec::new(),
            allowed_formats: Vec::new(),
            allowed_qualities: Vec::new(),
            workers: 0,
            queue: 32,
            timeout_secs: 30.0,
            refusal_delay_ms: 100,
            memory_mb: 512,
            miss_rate_per_ip: 10,
            miss_burst_per_ip: 100,
        }
    }
}

// ---------- typed, checked ----------

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

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub shutdown_grace: Duration,
    /// From a request's first byte to the end of its headers (slowloris).
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request and no traffic is closed after this.
    pub idle_timeout: Duration,
    /// Request line and headers together (hyper's read buffer; 431 beyond).
    pub max_header_bytes: usize,
    /// Path and query (414 beyond).
    pub max_url_bytes: usize,
    /// Open connections; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); trusted
    /// proxies are not counted.
    pub max_connections_per_ip: usize,
    /// Whose X-Forwarded-For/-Proto/-Host are believed.
    pub trusted_proxies: crate::client::TrustedProxies,
    /// Where `/_/metrics` and `/_/status` are served without the admin key, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Longest a storage request may take (then 504, or stale content).
    pub timeout: Duration,
    /// Retries of a failed storage request (S3: with exponential backoff).
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub enum Backend {
    Local {
        path: PathBuf,
    },
    /// Any S3-compatible store; credentials from the standard AWS
    /// environment variables (or the web-identity / instance chain).
    S3 {
        bucket: String,
        /// `None`: AWS itself.
        endpoint: Option<String>,
        region: String,
        path_style: bool,
    },
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub memory_bytes: u64,
    /// Derivatives are also written to the store (under `_/derivatives/`),
    /// so a node's miss can be another node's earlier work.
    pub shared: bool,
    pub disk: Option<DiskCacheConfig>,
    pub revalidate: Duration,
    pub stale_if_error: Duration,
    /// How long a key the store does not have is remembered as missing (0: not).
    pub negative: Duration,
}

#[derive(Debug, Clone)]
pub struct DiskCacheConfig {
    pub path: PathBuf,
    pub max_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct TransformConfig {
    pub max_source_pixels: u64,
    pub max_source_bytes: u64,
    /// What a request may ask for (`max_dimension`, `default_quality`,
    /// the allow-lists).
    pub variants: VariantLimits,
    pub workers: usize,
    pub queue: usize,
    pub timeout: Duration,
    /// How long a refused transform's 503 is held back (see `transform::pool`).
    pub refusal_delay: Duration,
    /// Memory all running transforms may hold together (see `transform::job`).
    pub memory_bytes: u64,
    /// Transforms one client address may start a second (0: no limit), and
    /// how many it may start at once before that rate applies.
    pub miss_rate_per_ip: u32,
    pub miss_burst_per_ip: u32,
}

/// For unit tests of modules that take a transform config.
#[cfg(test)]
impl Default for TransformConfig {
    fn default() -> Self {
        validate_transform(&RawTransform::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

/// Secrets from the environment (`NAME`) or a file (`NAME_FILE`).
#[derive(Clone, Default)]
pub struct Secrets {
    pub admin_key: Option<String>,
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("admin_key", &shown(&self.admin_key))
            .field("signing_secret", &shown(&self.signing_secret))
            .finish()
    }
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
        let transform = validate_transform(&self.transform)?;
        let presets = upload::validate_presets(&self.preset, &transform.variants)?;
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

fn validate_server(raw: &RawServer) -> Result<ServerConfig, ConfigError> {
    let address = |key: &str, text: &str| {
        text.parse().map_err(|_| {
            ConfigError::key(
                key,
                format!("'{text}' is not an address like 127.0.0.1:8080"),
            )
        })
    };
    let listen = address("server.listen", &raw.listen)?;
    let metrics_listen = raw
        .metrics_listen
        .as_deref()
        .map(|a| address("server.metrics_listen", a))
        .transpose()?;
    Ok(ServerConfig {
        listen,
        metrics_listen,
        shutdown_grace: secs_in_range(
            "server.shutdown_grace_secs",
            raw.shutdown_grace_secs,
            0,
            3600,
        )?,
        header_read_timeout: secs_in_range(
            "server.header_read_timeout_secs",
            raw.header_read_timeout_secs,
            1,
            600,
        )?,
        idle_timeout: secs_in_range("server.idle_timeout_secs", raw.idle_timeout_secs, 1, 3600)?,
        // hyper refuses a read buffer under 8 KiB.
        max_header_bytes: in_range(
            "server.max_header_bytes",
            raw.max_header_bytes,
            8 << 10,
            1 << 20,
        )? as usize,
        max_url_bytes: in_range("server.max_url_bytes", raw.max_url_bytes, 256, 1 << 20)? as usize,
        max_connections: in_range("server.max_connections", raw.max_connections, 1, 1_000_000)?
            as usize,
        max_connections_per_ip: in_range(
            "server.max_connections_per_ip",
            raw.max_connections_per_ip,
            1,
            1_000_000,
        )? as usize,
        trusted_proxies: crate::client::TrustedProxies::parse(&raw.trusted_proxies)
            .map_err(|m| ConfigError::key("server.trusted_proxies", m))?,
    })
}

fn validate_storage(raw: &RawStorage) -> Result<StorageConfig, ConfigError> {
    let backend = match raw.kind.as_str() {
        "local" => {
            if raw.path.as_os_str().is_empty() {
                return Err(ConfigError::key("storage.path", "must not be empty"));
            }
            Backend::Local {
                path: raw.path.clone(),
            }
        }
        "s3" => {
            let bucket = raw
                .bucket
                .clone()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| ConfigError::key("storage.bucket", "needed with kind = \"s3\""))?;
            if let Some(e) = &raw.endpoint
                && !(e.starts_with("http://") || e.starts_with("https://"))
            {
                return Err(ConfigError::key(
                    "storage.endpoint",
                    format!("'{e}' is not an http(s) URL"),
                ));
            }
            Backend::S3 {
                bucket,
                endpoint: raw.endpoint.clone(),
                region: raw.region.clone().unwrap_or_else(|| "us-east-1".into()),
                path_style: raw.path_style,
            }
        }
        other => {
            return Err(ConfigError::key(
                "storage.kind",
                format!("'{other}' is not supported (expected \"local\" or \"s3\")"),
            ));
        }
    };
    if !(raw.timeout_secs.is_finite() && raw.timeout_secs > 0.0 && raw.timeout_secs <= 600.0) {
        return Err(ConfigError::key(
            "storage.timeout_secs",
            format!(
                "must be more than 0 and at most 600 (got {})",
                raw.timeout_secs
            ),
        ));
    }
    Ok(StorageConfig {
        backend,
        timeout: Duration::from_secs_f64(raw.timeout_secs),
        retries: in_range("storage.retries", raw.retries as u64, 0, 10)? as u32,
    })
}

fn validate_cache(raw: &RawCache) -> Result<CacheConfig, ConfigError> {
    let memory_mb = in_range("cache.memory_mb", raw.memory_mb, 1, 1 << 20)?;
    let disk = match &raw.disk_path {
        None => None,
        Some(p) if p.as_os_str().is_empty() => {
            return Err(ConfigError::key(
                "cache.disk_path",
                "must not be empty (omit it for memory only)",
            ));
        }
        Some(p) => Some(DiskCacheConfig {
            path: p.clone(),
            max_bytes: in_range("cache.disk_mb", raw.disk_mb, 1, 1 << 30)? * 1024 * 1024,
        }),
    };
    Ok(CacheConfig {
        memory_bytes: memory_mb * 1024 * 1024,
        shared: raw.shared,
        disk,
        revalidate: secs_in_range("cache.revalidate_secs", raw.revalidate_secs, 0, 365 * 86400)?,
        stale_if_error: secs_in_range(
            "cache.stale_if_error_secs",
            raw.stale_if_error_secs,
            0,
            365 * 86400,
        )?,
        negative: secs_in_range("cache.negative_secs", raw.negative_secs, 0, 3600)?,
    })
}

fn validate_transform(raw: &RawTransform) -> Result<TransformConfig, ConfigError> {
    let max_dimension = in_range(
        "transform.max_dimension",
        raw.max_dimension as u64,
        1,
        16383,
    )? as u32;
    let allowed_sizes = raw
        .allowed_sizes
        .iter()
        .map(|s| {
            SizeSpec::parse(s, max_dimension)
                .map_err(|m| ConfigError::key("transform.allowed_sizes", format!("'{s}': {m}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_formats = raw
        .allowed_formats
        .iter()
        .map(|f| match f.to_ascii_lowercase().as_str() {
            "webp" => Ok("webp"),
            "avif" => Ok("avif"),
            "jpeg" | "jpg" => Ok("jpeg"),
            "png" => Ok("png"),
            _ => Err(ConfigError::key(
                "transform.allowed_formats",
                format!("'{f}' is not one of webp, avif, jpeg, png"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_qualities = raw
        .allowed_qualities
        .iter()
        .map(|&q| in_range("transform.allowed_qualities", q, 1, 100).map(|q| q as u8))
        .collect::<Result<Vec<_>, _>>()?;
    let default_quality = in_range(
        "transform.default_quality",
        raw.default_quality as u64,
        1,
        100,
    )? as u8;
    if !allowed_qualities.is_empty() && !allowed_qualities.contains(&default_quality) {
        return Err(ConfigError::key(
            "transform.allowed_qualities",
            format!("must include transform.default_quality ({default_quality})"),
        ));
    }
    let workers = if raw.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        in_range("transform.workers", raw.workers as u64, 1, 1024)? as usize
    };
    if !(raw.timeout_secs.is_finite() && raw.timeout_secs > 0.0 && raw.timeout_secs <= 3600.0) {
        return Err(ConfigError::key(
            "transform.timeout_secs",
            format!(
                "must be more than 0 and at most 3600 (got {})",
                raw.timeout_secs
            ),
        ));
    }
    Ok(TransformConfig {
        max_source_pixels: in_range(
            "transform.max_source_pixels",
            raw.max_source_pixels,
            1,
            1 << 40,
        )?,
        max_source_bytes: in_range(
            "transform.max_source_bytes",
            raw.max_source_bytes,
            1,
            1 << 34,
        )?,
        variants: VariantLimits {
            max_dimension,
            default_quality,
            allowed_sizes,
            allowed_formats,
            allowed_qualities,
        },
        workers,
        queue: in_range("transform.queue", raw.queue as u64, 0, 1 << 20)? as usize,
        timeout: Duration::from_secs_f64(raw.timeout_secs),
        refusal_delay: Duration::from_millis(in_range(
            "transform.refusal_delay_ms",
            raw.refusal_delay_ms,
            0,
            10_000,
        )?),
        memory_bytes: in_range("transform.memory_mb", raw.memory_mb, 16, 1 << 20)? << 20,
        miss_rate_per_ip: in_range(
            "transform.miss_rate_per_ip",
            raw.miss_rate_per_ip,
            0,
            100_000,
        )? as u32,
        miss_burst_per_ip: in_range(
            "transform.miss_burst_per_ip",
            raw.miss_burst_per_ip,
            1,
            1_000_000,
        )? as u32,
    })
}

/// The disk cache deletes what it does not recognise as a finished entry,
/// so it must never share a directory with the originals: not the same
/// directory, not one inside the other (`.`, the data directory or `/tmp`
/// as `cache.disk_path` once deleted originals at start). Compared both as
/// written (made absolute, `..` resolved) and, where they exist, with
/// symlinks resolved.
fn check_apart(disk: &Path, storage: &Path) -> Result<(), ConfigError> {
    let lexical = |p: &Path| -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    let overlap = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    let (d, s) = (lexical(disk), lexical(storage));
    let resolved = match (std::fs::canonicalize(disk), std::fs::canonicalize(storage)) {
        (Ok(d), Ok(s)) => overlap(&d, &s),
        _ => false,
    };
    if overlap(&d, &s) || resolved {
        return Err(ConfigError::key(
            "cache.disk_path",
            format!(
                "{} overlaps storage.path {}: the cache must have a directory of its own, neither the storage directory nor inside or around it",
                disk.display(),
                storage.display()
            ),
        ));
    }
    Ok(())
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

fn read_secrets(env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, ConfigError> {
    Ok(Secrets {
        admin_key: read_secret("MEDIAEDGE_ADMIN_KEY", env)?,
        signing_secret: read_secret("MEDIAEDGE_SIGNING_SECRET", env)?,
    })
}

/// `NAME` or `NAME_FILE` (the file's content, trailing newline trimmed).
pub fn read_secret(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let value = match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::key(
                name,
                format!("set either {name} or {file_var}, not both"),
            ));
        }
        (Some(v), None) => v,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::key(&file_var, format!("cannot read {path}: {e}")))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        (None, None) => return Ok(None),
    };
    if value.len() < 16 {
        return Err(ConfigError::key(name, "must be at least 16 bytes"));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            if ["some", "none", "true", "false", "local", "data"].contains(&key) {
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
