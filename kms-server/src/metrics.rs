//! Prometheus metrics (`kms serve --metrics`, `GET /metrics`): requests by action and error
//! code, latency histograms by action, the key cache, maintenance runs and failures, open and
//! refused connections, throttled requests, and records that fail to open.
//!
//! Exposed with `prometheus-client`, the Prometheus project's own Rust client, in its text
//! format.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The label of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ActionLabels, Histogram, fn() -> Histogram>,
    open_connections: Gauge,
    refused_connections: Counter,
    throttled: Family<ReasonLabels, Counter>,
    maintenance_runs: Counter,
    maintenance_failures: Counter,
    cache_keys: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    corrupt_records: Gauge,
    /// Serializes the copy of the engine's cache counters into the registry.
    sync: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered under the `kms_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kms");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ActionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let open_connections = Gauge::default();
        let refused_connections = Counter::default();
        let throttled = Family::<ReasonLabels, Counter>::default();
        let maintenance_runs = Counter::default();
        let maintenance_failures = Counter::default();
        let cache_keys = Gauge::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let corrupt_records = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by action and error code (OK for success)",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to its answer, by action",
            latency.clone(),
        );
        registry.register(
            "open_connections",
            "Connections being served",
            open_connections.clone(),
        );
        registry.register(
            "refused_connections",
            "Connections closed on accept because max_connections were open",
            refused_connections.clone(),
        );
        registry.register(
            "throttled_requests",
            "Requests refused with Throttling.User (a rate limit or the nonce capacity)",
            throttled.clone(),
        );
        registry.register(
            "maintenance_runs",
            "Maintenance passes run",
            maintenance_runs.clone(),
        );
        registry.register(
            "maintenance_failures",
            "Maintenance passes that failed",
            maintenance_failures.clone(),
        );
        registry.register(
            "key_cache_keys",
            "Keys held in the engine's cache",
            cache_keys.clone(),
        );
        registry.register(
            "key_cache_hits",
            "Key lookups answered from the cache",
            cache_hits.clone(),
        );
        registry.register(
            "key_cache_misses",
            "Key lookups that read storage",
            cache_misses.clone(),
        );
        registry.register(
            "corrupt_records",
            "Records that failed to open in the last maintenance pass",
            corrupt_records.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            open_connections,
            refused_connections,
            throttled,
            maintenance_runs,
            maintenance_failures,
            cache_keys,
            cache_hits,
            cache_misses,
            corrupt_records,
            sync: Mutex::new(()),
        }
    }

    /// Counts one answered request. `action` must already be a known action name or
    /// `unknown`, so a client cannot grow the label set.
    pub fn request(&self, action: &str, code: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                action: action.to_owned(),
                code: code.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
            })
            .observe(seconds);
        if code == "Throttling.User" {
            self.throttled
                .get_or_create(&ReasonLabels {
                    reason: "throttled".to_owned(),
                })
                .inc();
        }
    }

    /// A connection opened; the returned guard closes it in the gauge when dropped.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.open_connections.inc();
        ConnectionGuard(&self.open_connections)
    }

    /// A connection was refused at accept.
    pub fn refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// A maintenance pass ran; `ok` when it succeeded.
    pub fn maintenance(&self, ok: bool, corrupt: usize) {
        self.maintenance_runs.inc();
        if !ok {
            self.maintenance_failures.inc();
        }
        self.corrupt_records
            .set(i64::try_from(corrupt).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition, with the engine's cache counters copied in.
    pub fn render(&self, cache: kms_core::CacheStats) -> String {
        {
            let _g = self
                .sync
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.cache_keys
                .set(i64::try_from(cache.keys).unwrap_or(i64::MAX));
            let hits = self.cache_hits.get();
            if cache.hits > hits {
                self.cache_hits.inc_by(cache.hits - hits);
            }
            let misses = self.cache_misses.get();
            if cache.misses > misses {
                self.cache_misses.inc_by(cache.misses - misses);
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Keeps a connection counted in `kms_open_connections` while alive.
pub struct ConnectionGuard<'a>(&'a Gauge);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_holds_every_family_in_text_format() {
        let m = Metrics::new();
        m.request("Encrypt", "OK", 0.001);
        m.request("Encrypt", "Throttling.User", 0.0001);
        m.maintenance(false, 2);
        {
            let _c = m.connection();
            let text = m.render(kms_core::CacheStats {
                keys: 3,
                hits: 10,
                misses: 2,
            });
            for line in [
                "kms_requests_total{action=\"Encrypt\",code=\"OK\"} 1",
                "kms_open_connections 1",
                "kms_maintenance_failures_total 1",
                "kms_key_cache_keys 3",
                "kms_key_cache_hits_total 10",
                "kms_corrupt_records 2",
                "kms_throttled_requests_total{reason=\"throttled\"} 1",
            ] {
                assert!(text.contains(line), "{line} missing from\n{text}");
            }
            assert!(text.contains("kms_request_duration_seconds_bucket"));
            assert!(text.ends_with("# EOF\n"));
        }
        assert!(m
            .render(kms_core::CacheStats::default())
            .contains("kms_open_connections 0"));
    }
}
