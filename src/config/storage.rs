//! `[storage]`: where originals live (a local directory or an S3-compatible
//! bucket), with the timeout and retries of each storage request.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, in_range};

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

pub(super) fn validate_storage(raw: &RawStorage) -> Result<StorageConfig, ConfigError> {
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
