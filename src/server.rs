//! Bind, serve, shut down gracefully.
//!
//! hyper-util's connection builder is used directly (rather than
//! `axum::serve`) for the knobs a public server needs: header read timeout
//! against slowloris, and per-connection graceful shutdown. On SIGTERM or
//! Ctrl-C the listener closes at once, in-flight requests get
//! `server.shutdown_grace_secs` to finish, then the process exits 0.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Request;
use axum::response::Response;
use futures_util::TryFutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::Access;
use crate::cache::{Cache, disk::DiskCache};
use crate::client::{ConnectionCounts, Peer};
use crate::config::Backend;
use crate::config::Config;
use crate::connection::{self, Activity, TimedIo};
use crate::http::{self, App, AppState};
use crate::metrics;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::transform::Transformer;
use crate::upload::Uploads;

/// A start-up error that names the config key and its value: "server.listen
/// = 127.0.0.1:8080: Address already in use", not the bare OS message.
fn at(key: &str, value: impl std::fmt::Display, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{key} = {value}: {e}"))
}

/// Builds the application state from a checked config (async: JWT keys may
/// come from a JWKS URL).
pub async fn build_state(
    config: Config,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> std::io::Result<AppState> {
    let access = Access::new(&config).await.map_err(std::io::Error::other)?;
    let store = Store::open(&config.storage).map_err(|e| match &config.storage.backend {
        Backend::Local { path } => at("storage.path", path.display(), e),
        Backend::S3 { bucket, .. } => at("storage.bucket", bucket, e),
    })?;
    let disk = config
        .cache
        .disk
        .as_ref()
        .map(|d| DiskCache::open(d).map_err(|e| at("cache.disk_path", d.path.display(), e)))
        .transpose()?;
    let cache = Cache::new(&config.cache, disk);
    let t = &config.transform;
    let transformer = Transformer::new(
        t.workers,
        t.queue,
        t.timeout,
        t.refusal_delay,
        t.memory_bytes,
    );
    let pipeline = Pipeline::new(
        store.clone(),
        cache,
        transformer.clone(),
        t.clone(),
        config.cache.shared,
        config.cache.slice_bytes,
    );
    pipeline.start_reencoder();
    pipeline.start_journal(config.cache.journal_poll);
    if config.secrets.signing_secret.is_some() && config.upload.base_url.is_none() {
        tracing::warn!(
            "uploads are on without upload.base_url: presigned URLs are built from each \
             request's Host header over http:// (or X-Forwarded-Proto/-Host from \
             server.trusted_proxies); behind a proxy or TLS terminator, set upload.base_url"
        );
    }
    let uploads = Uploads::new(
        pipeline.clone(),
        store,
        transformer,
        config.secrets.signing_secret.as_deref(),
        config.upload.clone(),
        t.clone(),
        config.presets.clone(),
    );
    if config.secrets.signing_secret.is_some() {
        uploads.sweep_used_grants();
    }
    Ok(AppState::new(App {
        config: Arc::new(config),
        pipeline,
        access: Arc::new(access),
        uploads: Arc::new(uploads),
        metrics,
    }))
}

/// Serves until SIGTERM/Ctrl-C, then drains. Prints the bound address on
/// stdout first (tests and scripts read it when listening on port 0).
pub async fn run(state: AppState) -> std::io::Result<()> {
    let cfg = state.config.server.clone();
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| at("server.listen", cfg.listen, e))?;
    let addr = listener.local_addr()?;
    println!("mediaedge listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| at("server.metrics_listen", a, e))?;
            let addr = l.local_addr()?;
            println!("mediaedge metrics on http://{addr}/_/metrics");
            println!("mediaedge status page on http://{addr}/_/status");
            tracing::info!(%addr, "metrics and status page listening");
            Some(l)
        }
        None => None,
    };

    if let Some(handle) = state.metrics.clone() {
        // The Prometheus recorder keeps histogram samples until upkeep drains
        // them into buckets; without it memory grows with every request.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Header and idle deadlines are TimedIo's (hyper's one timer would be both).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(cfg.max_header_bytes);
    let acceptor = Acceptor {
        builder,
        connections: Arc::new(tokio::sync::Semaphore::new(cfg.max_connections)),
        per_ip: ConnectionCounts::new(cfg.max_connections_per_ip),
        graceful: GracefulShutdown::new(),
        cfg: cfg.clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(());
    let main = acceptor.serve(listener, http::router(state.clone()), stopped.clone());
    let status = async {
        if let Some(l) = metrics_listener {
            acceptor
                .serve(l, http::operator_router(state.clone()), stopped)
                .await;
        }
    };
    let signal = async {
        shutdown_signal().await;
        drop(stop); // every accept loop ends
    };
    tokio::join!(main, status, signal);
    tracing::info!(
        grace_secs = cfg.shutdown_grace.as_secs(),
        "shutting down, draining in-flight requests"
    );
    tokio::select! {
        () = acceptor.graceful.shutdown() => tracing::info!("drained"),
        () = tokio::time::sleep(cfg.shutdown_grace) => tracing::warn!("grace period over, closing remaining connections"),
    }
    Ok(())
}

/// What every listener's accept loop shares: the connection settings, the
/// cap on open connections, and the graceful-shutdown watch.
struct Acceptor {
    builder: auto::Builder<TokioExecutor>,
    connections: Arc<tokio::sync::Semaphore>,
    per_ip: Arc<ConnectionCounts>,
    graceful: GracefulShutdown,
    cfg: crate::config::ServerConfig,
}

impl Acceptor {
    /// Accepts until `stopped` closes; the listener is dropped on return.
    async fn serve(
        &self,
        listener: TcpListener,
        app: axum::Router,
        mut stopped: tokio::sync::watch::Receiver<()>,
    ) {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped.changed() => return,
            };
            // One client may not hold every connection: each address gets
            // at most max_connections_per_ip (a trusted proxy speaks for many).
            let per_ip = if self.cfg.trusted_proxies.contains(peer.ip()) {
                None
            } else {
                match self.per_ip.open(peer.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        metrics::connection_refused("per_ip");
                        tokio::spawn(connection::refuse(stream));
                        continue;
                    }
                }
            };
            let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                metrics::connection_refused("total");
                tokio::spawn(connection::refuse(stream));
                continue;
            };
            let _ = stream.set_nodelay(true);
            let activity = Arc::new(Activity::default());
            let requests = activity.clone();
            // Each request counts from the call until its response body is
            // sent or dropped (connection.rs: the deadlines depend on it),
            // and carries its peer address (per-client limits, client.rs).
            let service = ServiceExt::<Request<Incoming>>::map_future(
                app.clone().map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    req
                }),
                move |answer| {
                    let request = requests.start();
                    answer.map_ok(move |res: Response| request.answered(res))
                },
            );
            let io = TimedIo::new(
                stream,
                activity,
                self.cfg.idle_timeout,
                self.cfg.header_read_timeout,
            );
            let conn = self.builder.serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(service),
            );
            let conn = self.graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop((permit, per_ip));
            });
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
