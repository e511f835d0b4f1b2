//! Prometheus metrics: counters and histograms updated on the request path (a lock-free
//! increment per request, a labelled lookup per route), and values that cost something —
//! storage health, database size — computed only when `/metrics` is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern (`/media/{*path}`), never the raw path: bounded cardinality.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// "ok", or the error code the client got ("no_space", "exists", …).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// `Storage::kind`: "local", "nfs", "s3", …
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: HistogramFamily,
    pub bytes_streamed: Counter,
    pub active_streams: Gauge,
    pub media_redirects: Counter,
    pub login_failures: Counter,
    pub uploads: Family<ResultLabels, Counter>,
    pub upload_bytes: Counter,
    pub storage_up: Family<BackendLabels, Gauge>,
    pub storage_check_seconds: Family<BackendLabels, Gauge<f64, AtomicU64>>,
    pub storage_check_failures: Family<BackendLabels, Counter>,
    pub db_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("streamhub");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route",
            latency.clone(),
        );
        let bytes_streamed = Counter::default();
        registry.register(
            "media_bytes_streamed",
            "Media bytes handed to clients (files and share links)",
            bytes_streamed.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "media_active_streams",
            "Media response bodies being sent now",
            active_streams.clone(),
        );
        let media_redirects = Counter::default();
        registry.register(
            "media_redirects",
            "Media requests answered with a redirect to the object store (S3 redirect mode)",
            media_redirects.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "login_failures",
            "Failed password checks (login and HTTP Basic)",
            login_failures.clone(),
        );
        let uploads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "uploads",
            "Finished uploads (PUT and multipart files) by result",
            uploads.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register(
            "upload_bytes",
            "Bytes of committed uploads",
            upload_bytes.clone(),
        );
        let storage_up = Family::<BackendLabels, Gauge>::default();
        registry.register(
            "storage_up",
            "1 when the media storage passed its last check (at most a few seconds old)",
            storage_up.clone(),
        );
        let storage_check_seconds = Family::<BackendLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "storage_check_duration_seconds",
            "How long the last storage check took (to its answer or its timeout)",
            storage_check_seconds.clone(),
        );
        let storage_check_failures = Family::<BackendLabels, Counter>::default();
        registry.register(
            "storage_check_failures",
            "Storage checks (by /readyz and /metrics) that failed",
            storage_check_failures.clone(),
        );
        let db_bytes = Gauge::default();
        registry.register(
            "database_size_bytes",
            "Size of the SQLite database with its WAL",
            db_bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            bytes_streamed,
            active_streams,
            media_redirects,
            login_failures,
            uploads,
            upload_bytes,
            storage_up,
            storage_check_seconds,
            storage_check_failures,
            db_bytes,
        }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn observe_upload(&self, result: &str, bytes: u64) {
        self.uploads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
        self.upload_bytes.inc_by(bytes);
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_observed() {
        let m = Metrics::new();
        m.observe_request("/media/{*path}", "GET", 206, 0.002);
        m.bytes_streamed.inc_by(1234);
        m.active_streams.inc();
        let text = m.render();
        assert!(text.contains(
            r#"streamhub_http_requests_total{route="/media/{*path}",method="GET",status="206"} 1"#
        ), "{text}");
        assert!(
            text.contains("streamhub_media_bytes_streamed_total 1234"),
            "{text}"
        );
        assert!(text.contains("streamhub_media_active_streams 1"), "{text}");
        assert!(
            text.contains("streamhub_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
