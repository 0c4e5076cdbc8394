//! `[server]`: where and how connections are taken (listen address, header
//! and idle timeouts, header and URL limits, connection caps, proxies).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, in_range, secs_in_range};

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

pub(super) fn validate_server(raw: &RawServer) -> Result<ServerConfig, ConfigError> {
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
