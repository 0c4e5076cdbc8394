//! Logging setup: human-readable lines by default, JSON lines with
//! `--log-format json`; level from `RUST_LOG` (default `info`). Logs go to
//! stderr; stdout carries only the "listening on" line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Logs a recurring failure once per interval instead of once per
/// occurrence: a full disk fails every cache write, and one line a minute
/// (saying how many were not logged) tells the operator as much as a
/// thousand. Metrics still count every occurrence.
pub struct LogEvery {
    interval_ms: u64,
    start: Instant,
    /// Milliseconds since `start` before which nothing is logged.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogEvery {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when this occurrence is to be logged, `n` being how many
    /// since the last logged one were not; `None` when it is to stay quiet.
    pub fn due(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let claimed = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ms),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if claimed {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_interval_and_counts_the_rest() {
        let gate = LogEvery::new(Duration::from_millis(200));
        assert_eq!(gate.due(), Some(0));
        for _ in 0..5 {
            assert_eq!(gate.due(), None);
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(gate.due(), Some(5));
        assert_eq!(gate.due(), None);
    }
}
