//! Every metric name, in one place, and the small helpers that record them.
//! Exposed as Prometheus text at `GET /_/metrics`.

use std::time::Duration;

use std::cell::RefCell;
use std::collections::HashMap;

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "mediaedge_http_requests_total";
pub const HTTP_DURATION: &str = "mediaedge_http_request_duration_seconds";
pub const HTTP_IN_FLIGHT: &str = "mediaedge_http_requests_in_flight";
pub const CACHE_HITS: &str = "mediaedge_cache_hits_total";
pub const CACHE_MISSES: &str = "mediaedge_cache_misses_total";
pub const CACHE_BYTES_SERVED: &str = "mediaedge_cache_served_bytes_total";
pub const CACHE_SIZE: &str = "mediaedge_cache_size_bytes";
pub const CACHE_ENTRIES: &str = "mediaedge_cache_entries";
pub const DISK_CACHE_ERRORS: &str = "mediaedge_disk_cache_errors_total";
pub const TRANSFORMS: &str = "mediaedge_transforms_total";
pub const TRANSFORM_DURATION: &str = "mediaedge_transform_duration_seconds";
pub const TRANSFORMS_IN_FLIGHT: &str = "mediaedge_transforms_in_flight";
pub const STORE_REQUESTS: &str = "mediaedge_store_requests_total";
pub const STORE_BYTES_AVOIDED: &str = "mediaedge_store_bytes_avoided_total";
pub const AUTH_FAILURES: &str = "mediaedge_auth_failures_total";
pub const AUTH_DURATION: &str = "mediaedge_auth_duration_seconds";
pub const SIGNED_URLS_V1: &str = "mediaedge_signed_urls_v1_total";
pub const JWKS_REFRESHES: &str = "mediaedge_jwks_refreshes_total";
pub const UPLOADS: &str = "mediaedge_uploads_total";
pub const UPLOAD_BYTES: &str = "mediaedge_upload_bytes_total";
pub const PRESETS: &str = "mediaedge_presets_total";
pub const REENCODES: &str = "mediaedge_reencode_total";
pub const REENCODE_BYTES_SAVED: &str = "mediaedge_reencode_saved_bytes_total";
pub const INVALIDATIONS: &str = "mediaedge_invalidations_total";
pub const STALE_SERVED: &str = "mediaedge_stale_served_total";
pub const CONNECTIONS_REFUSED: &str = "mediaedge_connections_refused_total";
pub const DERIVATIVES_SENT: &str = "mediaedge_derivatives_sent_total";
pub const DERIVATIVE_BYTES: &str = "mediaedge_derivative_sent_bytes_total";
pub const DERIVATIVE_ORIGINAL_BYTES: &str = "mediaedge_derivative_original_bytes_total";

/// Distinct `size` labels on the savings counters; later sizes count as
/// `other` (without `transform.allowed_sizes`, clients choose the sizes).
const MAX_SIZE_LABELS: usize = 64;

/// Access checks take microseconds; the request buckets would lump them all together.
const AUTH_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.05, 1.0,
];

/// From 50 µs: a cache hit is answered in tens of microseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the global Prometheus recorder (once per process).
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(AUTH_DURATION.into()), AUTH_BUCKETS)
        .map_err(|e| e.to_string())?
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status");
    describe_histogram!(
        HTTP_DURATION,
        "HTTP request latency by route and cache status"
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being answered");
    describe_counter!(
        CACHE_HITS,
        "Cache hits by tier (memory, disk) and kind (derivative, original)"
    );
    describe_counter!(
        CACHE_MISSES,
        "Cache misses by kind (derivative, original, slice)"
    );
    describe_counter!(
        STORE_BYTES_AVOIDED,
        "Bytes of large originals served from cached slices instead of the store"
    );
    describe_counter!(CACHE_BYTES_SERVED, "Response body bytes by cache status");
    describe_gauge!(CACHE_SIZE, "Bytes held by each cache tier");
    describe_gauge!(CACHE_ENTRIES, "Entries held by each cache tier");
    describe_counter!(DISK_CACHE_ERRORS, "Disk cache read/write failures");
    describe_counter!(
        TRANSFORMS,
        "Image transforms by outcome (ok, error, timeout, rejected)"
    );
    describe_histogram!(
        TRANSFORM_DURATION,
        "Image transform latency, queue wait included"
    );
    describe_gauge!(TRANSFORMS_IN_FLIGHT, "Image transforms running now");
    describe_counter!(STORE_REQUESTS, "Storage requests by operation and result");
    describe_counter!(
        AUTH_FAILURES,
        "Refused access checks by route access kind and reason"
    );
    describe_counter!(
        SIGNED_URLS_V1,
        "Signed URLs accepted under the deprecated v1 scheme (until signed_urls.accept_v1_until)"
    );
    describe_histogram!(
        AUTH_DURATION,
        "Time to check a request's token or signature, by route access kind"
    );
    describe_counter!(JWKS_REFRESHES, "JWKS re-reads by result (ok, error)");
    describe_counter!(
        UPLOADS,
        "Uploads (PUT) and presign requests by outcome (ok, too_large, unsupported, undecodable, forbidden...)"
    );
    describe_counter!(UPLOAD_BYTES, "Bytes of published uploads");
    describe_counter!(PRESETS, "Preset variants made after uploads, by outcome");
    describe_counter!(
        REENCODES,
        "Background high-effort re-encodes of derivatives, by outcome (smaller: replaced)"
    );
    describe_counter!(
        REENCODE_BYTES_SAVED,
        "Bytes the background re-encodes took off cached derivatives"
    );
    describe_counter!(
        INVALIDATIONS,
        "Cross-node invalidation journal entries by event (sent, applied, dropped_all: caches dropped after losing track, error)"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections answered 503 because server.max_connections were open"
    );
    describe_counter!(
        DERIVATIVES_SENT,
        "Whole derivative bodies sent (200 GET), by requested size (WxH, Wx, xH)"
    );
    describe_counter!(
        DERIVATIVE_BYTES,
        "Bytes of those derivative bodies, by requested size"
    );
    describe_counter!(
        DERIVATIVE_ORIGINAL_BYTES,
        "Bytes of their originals (what would have been sent untransformed), by requested size"
    );
    describe_counter!(
        STALE_SERVED,
        "Requests answered from cache while the store was failing (X-Cache: STALE)"
    );
    Ok(handle)
}

/// Requests counter, latency histogram and (with a cache status) served-bytes counter.
type RequestHandles = (Counter, Histogram, Option<Counter>);

pub fn http_request(
    route: &'static str,
    status: u16,
    cache: &'static str,
    elapsed: Duration,
    body_bytes: u64,
) {
    // The recorder's handles, looked up once per label set and thread:
    // building and hashing the labels on every request cost more than the
    // counting (and `status.to_string()` allocated).
    thread_local! {
        static HANDLES: RefCell<HashMap<(&'static str, u16, &'static str), RequestHandles>> =
            RefCell::new(HashMap::new());
    }
    HANDLES.with_borrow_mut(|handles| {
        let (requests, duration, bytes) =
            handles.entry((route, status, cache)).or_insert_with(|| {
                (
                    counter!(HTTP_REQUESTS, "route" => route, "status" => status.to_string()),
                    histogram!(HTTP_DURATION, "route" => route, "cache" => cache),
                    (!cache.is_empty()).then(|| counter!(CACHE_BYTES_SERVED, "cache" => cache)),
                )
            });
        requests.increment(1);
        duration.record(elapsed.as_secs_f64());
        if let Some(bytes) = bytes.as_ref().filter(|_| body_bytes > 0) {
            bytes.increment(body_bytes);
        }
    });
}

pub fn cache_hit(tier: &'static str, kind: &'static str) {
    thread_local! {
        static HANDLES: RefCell<HashMap<(&'static str, &'static str), Counter>> =
            RefCell::new(HashMap::new());
    }
    HANDLES.with_borrow_mut(|handles| {
        handles
            .entry((tier, kind))
            .or_insert_with(|| counter!(CACHE_HITS, "tier" => tier, "kind" => kind))
            .increment(1);
    });
}

/// A whole derivative sent: its bytes against its original's (the savings
/// the status page shows per size).
pub fn derivative_sent(width: Option<u32>, height: Option<u32>, sent: u64, original: u64) {
    type Size = (Option<u32>, Option<u32>);
    type Handles = (Counter, Counter, Counter);
    /// Stands for every size past [`MAX_SIZE_LABELS`] (no real size is 0x0).
    const OTHER: Size = (Some(0), Some(0));
    thread_local! {
        static HANDLES: RefCell<HashMap<Size, Handles>> = RefCell::new(HashMap::new());
    }
    static LABELED: std::sync::Mutex<Vec<Size>> = std::sync::Mutex::new(Vec::new());
    // Bounded: at most MAX_SIZE_LABELS + 1 entries per thread, whatever sizes clients ask for.
    let admitted = |size: Size| {
        let mut labeled = LABELED.lock().unwrap_or_else(|e| e.into_inner());
        if labeled.contains(&size) {
            return true;
        }
        let room = labeled.len() < MAX_SIZE_LABELS;
        if room {
            labeled.push(size);
        }
        room
    };
    HANDLES.with_borrow_mut(|handles| {
        let size = (width, height);
        let key = if handles.contains_key(&size) || admitted(size) {
            size
        } else {
            OTHER
        };
        let (n, bytes, originals) = handles.entry(key).or_insert_with(|| {
            let label = if key == OTHER {
                "other".to_owned()
            } else {
                size_label(width, height)
            };
            (
                counter!(DERIVATIVES_SENT, "size" => label.clone()),
                counter!(DERIVATIVE_BYTES, "size" => label.clone()),
                counter!(DERIVATIVE_ORIGINAL_BYTES, "size" => label),
            )
        });
        n.increment(1);
        bytes.increment(sent);
        originals.increment(original);
    });
}

/// `150x150`, `300x` (width only), `x200` (height only), `any` (format only).
pub fn size_label(width: Option<u32>, height: Option<u32>) -> String {
    match (width, height) {
        (None, None) => "any".to_owned(),
        (w, h) => format!(
            "{}x{}",
            w.map(|v| v.to_string()).unwrap_or_default(),
            h.map(|v| v.to_string()).unwrap_or_default()
        ),
    }
}

pub fn cache_miss(kind: &'static str) {
    counter!(CACHE_MISSES, "kind" => kind).increment(1);
}

pub fn cache_size(tier: &'static str, bytes: u64, entries: u64) {
    gauge!(CACHE_SIZE, "tier" => tier).set(bytes as f64);
    gauge!(CACHE_ENTRIES, "tier" => tier).set(entries as f64);
}

pub fn disk_cache_error(op: &'static str) {
    counter!(DISK_CACHE_ERRORS, "op" => op).increment(1);
}

pub fn transform_finished(outcome: &'static str, elapsed: Option<Duration>) {
    counter!(TRANSFORMS, "outcome" => outcome).increment(1);
    if let Some(e) = elapsed {
        histogram!(TRANSFORM_DURATION).record(e.as_secs_f64());
    }
}

/// Bytes of a large original served from a cached slice (no store read).
pub fn store_bytes_avoided(bytes: u64) {
    counter!(STORE_BYTES_AVOIDED).increment(bytes);
}

pub fn store_request(op: &'static str, result: &'static str) {
    counter!(STORE_REQUESTS, "op" => op, "result" => result).increment(1);
}

/// One access check on a protected route; `failure` is the refusal reason.
pub fn auth_checked(access: &'static str, elapsed: Duration, failure: Option<&'static str>) {
    histogram!(AUTH_DURATION, "access" => access).record(elapsed.as_secs_f64());
    if let Some(reason) = failure {
        counter!(AUTH_FAILURES, "access" => access, "reason" => reason).increment(1);
    }
}

/// A signed URL passed under v1: what tells the operator when the v1 window can close.
pub fn signed_url_v1_accepted() {
    counter!(SIGNED_URLS_V1).increment(1);
}

pub fn jwks_refresh(result: &'static str) {
    counter!(JWKS_REFRESHES, "result" => result).increment(1);
}

pub fn upload(op: &'static str, outcome: &'static str) {
    counter!(UPLOADS, "op" => op, "outcome" => outcome).increment(1);
}

pub fn upload_bytes(bytes: u64) {
    counter!(UPLOAD_BYTES).increment(bytes);
}

pub fn preset_made(outcome: &'static str) {
    counter!(PRESETS, "outcome" => outcome).increment(1);
}

/// A background re-encode's end: `smaller` (replaced), `kept` (no smaller
/// encoding at an equal score), `yielded` (a request's transform came
/// first), `dropped` (queue full), `gone` (source or entry gone), `error`.
pub fn reencoded(outcome: &'static str, saved_bytes: u64) {
    counter!(REENCODES, "outcome" => outcome).increment(1);
    if saved_bytes > 0 {
        counter!(REENCODE_BYTES_SAVED).increment(saved_bytes);
    }
}

pub fn invalidation(event: &'static str) {
    counter!(INVALIDATIONS, "event" => event).increment(1);
}

pub fn stale_served() {
    counter!(STALE_SERVED).increment(1);
}

/// Increments a gauge for as long as it lives (and holds its handle, so the
/// decrement needs no second lookup).
pub struct InFlight(Gauge);

impl InFlight {
    pub fn transforms() -> Self {
        Self::start(gauge!(TRANSFORMS_IN_FLIGHT))
    }

    pub fn http() -> Self {
        Self::start(HTTP_IN_FLIGHT_GAUGE.with(Gauge::clone))
    }

    fn start(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

thread_local! {
    /// Looked up once per thread: every request moves it twice.
    static HTTP_IN_FLIGHT_GAUGE: Gauge = gauge!(HTTP_IN_FLIGHT);
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A connection refused over a cap: `total` (`server.max_connections`) or
/// `per_ip` (`server.max_connections_per_ip`).
pub fn connection_refused(cap: &'static str) {
    counter!(CONNECTIONS_REFUSED, "cap" => cap).increment(1);
}
