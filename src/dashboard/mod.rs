//! The numbers behind `GET /_/status`, read from the same Prometheus text
//! `/_/metrics` serves, so the page and the metrics can never disagree and
//! the page keeps no counters of its own.

pub mod page;

use std::collections::BTreeMap;

use prometheus_parse::{HistogramCount, Scrape, Value};

use crate::metrics as m;

/// Percentiles of a latency histogram, as bucket upper bounds in seconds
/// (`p99 ≤ 0.25 ms`: exact, where an interpolated figure would be a guess).
/// `f64::INFINITY` when the quantile lies past the last finite bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub count: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Bytes sent for one requested size against the originals' bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Savings {
    pub size: String,
    pub responses: f64,
    pub sent: f64,
    pub original: f64,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    /// Requests by status code, every route.
    pub by_status: BTreeMap<u16, f64>,
    /// Requests for media (originals and derivatives).
    pub media_requests: f64,
    pub hits_by_tier: BTreeMap<String, f64>,
    pub misses: f64,
    /// Response body bytes by cache status (HIT, MISS, STALE).
    pub bytes_by_cache: BTreeMap<String, f64>,
    pub savings: Vec<Savings>,
    /// Request latency by cache status (HIT, MISS, STALE), all media routes.
    pub latency: BTreeMap<String, Percentiles>,
    pub transform_latency: Percentiles,
    pub transforms_in_flight: f64,
    pub transforms: BTreeMap<String, f64>,
    /// Everything that went wrong, by kind (`auth: expired`, `disk cache: write`...).
    pub errors: BTreeMap<String, f64>,
    /// Store requests by `op result`.
    pub store: BTreeMap<String, f64>,
    /// Of those, the failures (`error`, `timeout`); each also in `errors`.
    pub store_errors: f64,
    pub stale_served: f64,
    /// Bytes and entries per cache tier.
    pub cache_sizes: BTreeMap<String, (f64, f64)>,
}

impl Snapshot {
    pub fn from_prometheus(text: &str) -> Self {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let samples = Scrape::parse(lines).map(|s| s.samples).unwrap_or_default();
        let mut s = Snapshot::default();
        let mut latency: BTreeMap<String, Vec<HistogramCount>> = BTreeMap::new();
        let mut transform_buckets = Vec::new();
        let mut savings: BTreeMap<String, Savings> = BTreeMap::new();
        let mut sizes: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for sample in samples {
            let label = |name: &str| sample.labels.get(name).unwrap_or("").to_owned();
            let v = match &sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => {
                    if sample.metric == m::HTTP_DURATION {
                        merge(latency.entry(label("cache")).or_default(), buckets);
                    } else if sample.metric == m::TRANSFORM_DURATION {
                        merge(&mut transform_buckets, buckets);
                    }
                    continue;
                }
                Value::Summary(_) => continue,
            };
            match sample.metric.as_str() {
                m::HTTP_REQUESTS => {
                    if let Ok(code) = label("status").parse() {
                        *s.by_status.entry(code).or_default() += v;
                    }
                    if matches!(label("route").as_str(), "original" | "derivative") {
                        s.media_requests += v;
                    }
                }
                m::CACHE_HITS => *s.hits_by_tier.entry(label("tier")).or_default() += v,
                m::CACHE_MISSES => s.misses += v,
                m::CACHE_BYTES_SERVED => *s.bytes_by_cache.entry(label("cache")).or_default() += v,
                m::DERIVATIVES_SENT => savings_of(&mut savings, label("size")).responses += v,
                m::DERIVATIVE_BYTES => savings_of(&mut savings, label("size")).sent += v,
                m::DERIVATIVE_ORIGINAL_BYTES => {
                    savings_of(&mut savings, label("size")).original += v
                }
                m::TRANSFORMS_IN_FLIGHT => s.transforms_in_flight = v,
                m::TRANSFORMS => {
                    let outcome = label("outcome");
                    if outcome != "ok" {
                        *s.errors.entry(format!("transform: {outcome}")).or_default() += v;
                    }
                    *s.transforms.entry(outcome).or_default() += v;
                }
                m::AUTH_FAILURES => {
                    let kind = format!("access refused: {} ({})", label("reason"), label("access"));
                    *s.errors.entry(kind).or_default() += v;
                }
                m::DISK_CACHE_ERRORS => {
                    *s.errors
                        .entry(format!("disk cache: {}", label("op")))
                        .or_default() += v;
                }
                m::CONNECTIONS_REFUSED => {
                    *s.errors
                        .entry("connections refused (max_connections)".into())
                        .or_default() += v;
                }
                m::UPLOADS if label("outcome") != "ok" => {
                    let kind = format!("upload refused: {}", label("outcome"));
                    *s.errors.entry(kind).or_default() += v;
                }
                m::STORE_REQUESTS => {
                    let key = format!("{} {}", label("op"), label("result"));
                    *s.store.entry(key).or_default() += v;
                    // Failures only: `not_found`, `not_modified` (a revalidation
                    // that kept the cached copy) and `changed` (retried) are answers.
                    if matches!(label("result").as_str(), "error" | "timeout") {
                        let kind = format!("store: {} {}", label("op"), label("result"));
                        *s.errors.entry(kind).or_default() += v;
                        s.store_errors += v;
                    }
                }
                m::STALE_SERVED => s.stale_served = v,
                m::CACHE_SIZE => sizes.entry(label("tier")).or_default().0 = v,
                m::CACHE_ENTRIES => sizes.entry(label("tier")).or_default().1 = v,
                _ => {}
            }
        }
        for (code, n) in &s.by_status {
            if *code >= 400 {
                s.errors.insert(format!("HTTP {code}"), *n);
            }
        }
        s.transform_latency = percentiles(&transform_buckets);
        s.latency = latency
            .into_iter()
            .filter(|(cache, _)| !cache.is_empty())
            .map(|(cache, buckets)| (cache, percentiles(&buckets)))
            .collect();
        s.savings = savings.into_values().collect();
        s.savings.sort_by(|a, b| b.original.total_cmp(&a.original));
        s.cache_sizes = sizes;
        s
    }

    pub fn hits(&self) -> f64 {
        self.hits_by_tier.values().sum()
    }

    /// Hits over lookups, `None` before the first lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits() + self.misses;
        (lookups > 0.0).then(|| self.hits() / lookups)
    }

    pub fn requests(&self) -> f64 {
        self.by_status.values().sum()
    }

    /// All sizes together.
    pub fn total_savings(&self) -> Savings {
        self.savings.iter().fold(
            Savings {
                size: "all".into(),
                ..Savings::default()
            },
            |mut t, s| {
                t.responses += s.responses;
                t.sent += s.sent;
                t.original += s.original;
                t
            },
        )
    }
}

fn savings_of(all: &mut BTreeMap<String, Savings>, size: String) -> &mut Savings {
    all.entry(size.clone()).or_insert_with(|| Savings {
        size,
        ..Savings::default()
    })
}

/// Adds one series' cumulative buckets to another's (same bucket bounds:
/// every series of a metric shares them), sorted by bound.
fn merge(into: &mut Vec<HistogramCount>, buckets: &[HistogramCount]) {
    let mut buckets = buckets.to_vec();
    buckets.sort_by(|a, b| a.less_than.total_cmp(&b.less_than));
    if into.is_empty() {
        *into = buckets;
        return;
    }
    for (a, b) in into.iter_mut().zip(buckets) {
        a.count += b.count;
    }
}

/// From cumulative buckets sorted by bound (as [`merge`] leaves them).
fn percentiles(sorted: &[HistogramCount]) -> Percentiles {
    let count = sorted.last().map_or(0.0, |b| b.count);
    let quantile = |q: f64| {
        let rank = q * count;
        sorted
            .iter()
            .find(|b| b.count >= rank && b.count > 0.0)
            .map_or(0.0, |b| b.less_than)
    };
    Percentiles {
        count,
        p50: quantile(0.50),
        p90: quantile(0.90),
        p99: quantile(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE mediaedge_http_requests_total counter
mediaedge_http_requests_total{route="derivative",status="200"} 90
mediaedge_http_requests_total{route="original",status="404"} 10
mediaedge_http_requests_total{route="metrics",status="200"} 3
# TYPE mediaedge_cache_hits_total counter
mediaedge_cache_hits_total{tier="memory",kind="derivative"} 80
mediaedge_cache_hits_total{tier="disk",kind="derivative"} 5
# TYPE mediaedge_cache_misses_total counter
mediaedge_cache_misses_total{kind="derivative"} 5
mediaedge_cache_misses_total{kind="original"} 10
# TYPE mediaedge_derivative_sent_bytes_total counter
mediaedge_derivative_sent_bytes_total{size="150x150"} 15800
# TYPE mediaedge_derivative_original_bytes_total counter
mediaedge_derivative_original_bytes_total{size="150x150"} 1800000
# TYPE mediaedge_http_request_duration_seconds histogram
mediaedge_http_request_duration_seconds_bucket{route="derivative",cache="HIT",le="0.00005"} 50
mediaedge_http_request_duration_seconds_bucket{route="derivative",cache="HIT",le="0.0001"} 99
mediaedge_http_request_duration_seconds_bucket{route="derivative",cache="HIT",le="0.001"} 100
mediaedge_http_request_duration_seconds_bucket{route="derivative",cache="HIT",le="+Inf"} 100
mediaedge_http_request_duration_seconds_sum{route="derivative",cache="HIT"} 0.01
mediaedge_http_request_duration_seconds_count{route="derivative",cache="HIT"} 100
mediaedge_http_request_duration_seconds_bucket{route="original",cache="HIT",le="0.00005"} 0
mediaedge_http_request_duration_seconds_bucket{route="original",cache="HIT",le="0.0001"} 0
mediaedge_http_request_duration_seconds_bucket{route="original",cache="HIT",le="0.001"} 0
mediaedge_http_request_duration_seconds_bucket{route="original",cache="HIT",le="+Inf"} 100
# TYPE mediaedge_store_requests_total counter
mediaedge_store_requests_total{op="revalidate",result="not_modified"} 7
mediaedge_store_requests_total{op="get",result="timeout"} 1
# TYPE mediaedge_transforms_total counter
mediaedge_transforms_total{outcome="ok"} 5
mediaedge_transforms_total{outcome="rejected"} 2
"#;

    #[test]
    fn reads_the_metrics_text() {
        let s = Snapshot::from_prometheus(TEXT);
        assert_eq!(s.requests(), 103.0);
        assert_eq!(s.media_requests, 100.0);
        assert_eq!(s.hits(), 85.0);
        assert_eq!(s.misses, 15.0);
        assert_eq!(s.hit_ratio(), Some(0.85));
        assert_eq!(
            s.savings,
            vec![Savings {
                size: "150x150".into(),
                responses: 0.0,
                sent: 15800.0,
                original: 1_800_000.0
            }]
        );
        assert_eq!(s.errors["HTTP 404"], 10.0);
        assert_eq!(s.errors["transform: rejected"], 2.0);
        assert_eq!(s.errors["store: get timeout"], 1.0);
        assert_eq!(s.store_errors, 1.0);
        assert!(!s.errors.contains_key("store: revalidate not_modified"));
        assert_eq!(s.store["revalidate not_modified"], 7.0);
        assert_eq!(s.transforms["ok"], 5.0);
        // Two series merged: 200 hits, half of them past 1 ms.
        let hit = s.latency["HIT"];
        assert_eq!(hit.count, 200.0);
        assert_eq!(hit.p50, 0.001);
        assert_eq!(hit.p90, f64::INFINITY);
    }

    #[test]
    fn empty_text_is_an_empty_snapshot() {
        let s = Snapshot::from_prometheus("");
        assert_eq!(s.hit_ratio(), None);
        assert_eq!(s.requests(), 0.0);
    }
}
