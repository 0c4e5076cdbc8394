//! Who is asking: the client's address, as the socket says it or, behind a
//! configured proxy, as the proxy says it — and the per-address limits that
//! keep one client from taking what every client shares.
//!
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are
//! believed only from `server.trusted_proxies`; from anyone else they are
//! whatever the client chose to write, so a per-client limit keyed on them
//! would be a limit the client sets itself. The client address is the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
//! (the leftmost entries were written by the client).
//!
//! Addresses are grouped for limits: an IPv4 address on its own, an IPv6
//! address by its /64 (one subscriber gets a whole /64 and can use any
//! address in it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The TCP peer of a request (put into its extensions by the accept loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// A client address as limits count it (IPv6 by /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    Self(IpAddr::V6(octets.into()))
                }
            },
        }
    }
}

/// `server.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `127.0.0.1`, `::1`…; the message names the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{e}' is not an IP address or CIDR block"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the peer, or behind a trusted proxy the
    /// rightmost `X-Forwarded-For` hop that is not a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map_while(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }

    /// `(scheme, host)` the client used, from `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` when the peer is a trusted proxy, else from the
    /// `Host` header over plain HTTP (the scheme this listener speaks).
    pub fn origin(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> (&'static str, Option<String>) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let host = header("host").filter(|h| valid_host(h)).map(str::to_owned);
        if !peer.is_some_and(|p| self.contains(p)) {
            return ("http", host);
        }
        let scheme = match header("x-forwarded-proto")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("https") => "https",
            _ => "http",
        };
        let host = header("x-forwarded-host")
            .filter(|h| valid_host(h))
            .map(str::to_owned)
            .or(host);
        (scheme, host)
    }
}

/// A host (and port) as it may appear in a URL we hand out: no scheme,
/// path, credentials or spaces.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// Open connections per client address, bounded by `server.max_connections_per_ip`.
#[derive(Debug)]
pub struct ConnectionCounts {
    limit: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    key: ClientKey,
}

impl ConnectionCounts {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at the limit.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = ClientKey::of(ip);
        let mut open = self.open.lock().ok()?;
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(n) = open.get_mut(&self.key)
        {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Transforms (cache misses) per client address: a token bucket of
/// `burst` misses refilled at `rate` a second, kept as GCRA's one
/// timestamp per address in a bounded cache (an address idle long enough to
/// have a full bucket again needs no entry).
#[derive(Clone)]
pub struct MissRate {
    interval: Duration,
    tolerance: Duration,
    next: moka::sync::Cache<ClientKey, Arc<Mutex<Instant>>>,
}

/// Addresses whose miss rate is remembered at once.
const RATE_ENTRIES: u64 = 100_000;

impl MissRate {
    /// `None` when `rate` is 0 (no limit).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let interval = Duration::from_secs(1) / rate;
        let tolerance = interval * burst.saturating_sub(1);
        Some(Self {
            interval,
            tolerance,
            next: moka::sync::Cache::builder()
                .max_capacity(RATE_ENTRIES)
                .time_to_idle(tolerance + interval)
                .build(),
        })
    }

    /// Takes one miss for `ip` now, or says how long until one is free.
    pub fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let slot = self
            .next
            .get_with(ClientKey::of(ip), || Arc::new(Mutex::new(now)));
        let Ok(mut tat) = slot.lock() else {
            return Ok(());
        };
        let start = (*tat).max(now);
        let ahead = start - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        *tat = start + self.interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "127.0.0.1".into()]).unwrap();
        // Not a proxy: the header is the client's own invention.
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), &xff("1.2.3.4")),
            ip("203.0.113.9")
        );
        // From a proxy: the rightmost hop that is not a proxy.
        assert_eq!(t.client_ip(ip("10.0.0.2"), &xff("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(
            t.client_ip(ip("10.0.0.2"), &xff("6.6.6.6, 1.2.3.4, 10.9.9.9")),
            ip("1.2.3.4")
        );
        // Garbage in the chain stops the walk; no header: the peer.
        assert_eq!(
            t.client_ip(ip("10.0.0.2"), &xff("nonsense")),
            ip("10.0.0.2")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.local".into()]).is_err());
    }

    #[test]
    fn forwarded_origin_only_from_trusted_proxies() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("internal:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("media.example.com"),
        );
        assert_eq!(
            t.origin(Some(ip("10.1.1.1")), &h),
            ("https", Some("media.example.com".into()))
        );
        assert_eq!(
            t.origin(Some(ip("198.51.100.1")), &h),
            ("http", Some("internal:8080".into()))
        );
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("evil.com/path@x"),
        );
        assert_eq!(
            t.origin(Some(ip("10.1.1.1")), &h),
            ("https", Some("internal:8080".into()))
        );
    }

    #[test]
    fn ipv6_counts_by_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:1.2.3.4")),
            ClientKey::of(ip("1.2.3.4"))
        );
    }

    #[test]
    fn connections_are_counted_per_address() {
        let c = ConnectionCounts::new(2);
        let a1 = c.open(ip("1.1.1.1")).unwrap();
        let _a2 = c.open(ip("1.1.1.1")).unwrap();
        assert!(c.open(ip("1.1.1.1")).is_none());
        let _b = c.open(ip("2.2.2.2")).unwrap();
        drop(a1);
        assert!(c.open(ip("1.1.1.1")).is_some());
    }

    #[test]
    fn miss_rate_allows_a_burst_then_the_rate() {
        let r = MissRate::new(10, 5).unwrap();
        for _ in 0..5 {
            assert!(r.take(ip("1.1.1.1")).is_ok());
        }
        let wait = r.take(ip("1.1.1.1")).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another address has its own bucket.
        assert!(r.take(ip("2.2.2.2")).is_ok());
        std::thread::sleep(Duration::from_millis(120));
        assert!(r.take(ip("1.1.1.1")).is_ok());
        assert!(MissRate::new(0, 5).is_none());
    }
}
