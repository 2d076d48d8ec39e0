//! The same traffic as each data plane would count it, for rollguard's presets
//! (`spec.analysis.preset`): Istio's destination sidecar, Envoy Gateway's per-backend clusters,
//! Linkerd's inbound proxy, NGINX Plus' upstream peers, Traefik's services and the
//! OpenTelemetry HTTP server duration histogram, with each one's latency histogram (NGINX Plus
//! has none) in its own unit and default buckets. Metric and label names as each project
//! documents them (docs/analysis.md, "Presets"); values are what the simulated pods served.
//! The histograms' `_bucket` series are exported as counters with an `le` label, which is
//! all PromQL reads of them.
//!
//! As the data planes do, each 5xx series appears at the first such response (so the presets'
//! `or vector(0)` is exercised), while the 2xx series exist at 0 from the first tick a group
//! has a ready pod. The backend Service of a group is `<deployment>-canary` or
//! `<deployment>-stable`: rollguard's Gateway API router's Services when the base Service is
//! named like the Deployment, as in the tests and the demo.

use prometheus::{IntCounterVec, Opts, Registry};

use crate::latency::{self, Buckets};
use crate::model::{GroupKey, Served, Track};

/// The port every simulated backend listens on, as the data planes name it.
const PORT: &str = "80";

/// The data planes' counters.
pub struct Shapes {
    istio: IntCounterVec,
    envoy_total: IntCounterVec,
    envoy_xx: IntCounterVec,
    linkerd: IntCounterVec,
    nginx_requests: IntCounterVec,
    nginx_responses: IntCounterVec,
    traefik: IntCounterVec,
    otel: IntCounterVec,
    istio_latency: BucketCounter,
    envoy_latency: BucketCounter,
    linkerd_latency: BucketCounter,
    traefik_latency: BucketCounter,
    otel_latency: BucketCounter,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A histogram's `_bucket` series: one counter per bound (`le`), plus `+Inf`.
pub struct BucketCounter {
    counter: IntCounterVec,
    /// Each bound in seconds and as its `le` label, in the histogram's own unit.
    bounds: Vec<(f64, String)>,
}

impl BucketCounter {
    /// Registers `<name>` (ending in `_bucket`) with `labels` and `le`; `bounds` are in the
    /// histogram's unit, `unit_seconds` seconds each (0.001 for milliseconds). Every bound
    /// must be one of [`latency::BOUNDS`].
    pub fn new(
        registry: &Registry,
        name: &str,
        help: &str,
        labels: &[&str],
        bounds: &[f64],
        unit_seconds: f64,
    ) -> Result<BucketCounter, prometheus::Error> {
        let mut all = labels.to_vec();
        all.push("le");
        let counter = counter(registry, name, help, &all)?;
        let bounds = bounds
            .iter()
            .map(|b| (b * unit_seconds, format!("{b}")))
            .collect();
        Ok(BucketCounter { counter, bounds })
    }

    /// Adds one tick's `buckets` of `total` requests under `labels`.
    pub fn add(&self, labels: &[&str], buckets: &Buckets, total: u64) {
        let mut with_le = labels.to_vec();
        with_le.push("");
        let last = with_le.len() - 1;
        for (seconds, le) in &self.bounds {
            with_le[last] = le;
            let n = latency::at(buckets, *seconds).unwrap_or(total);
            self.counter.with_label_values(&with_le).inc_by(n);
        }
        with_le[last] = "+Inf";
        self.counter.with_label_values(&with_le).inc_by(total);
    }
}

/// Envoy's default histogram buckets (milliseconds), which Istio's sidecars use too.
const ENVOY_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Linkerd's proxy latency buckets (milliseconds).
const LINKERD_BUCKETS_MS: [f64; 25] = [
    1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0, 500.0,
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0, 50000.0,
];

/// Traefik's default buckets (seconds).
const TRAEFIK_BUCKETS: [f64; 4] = [0.1, 0.3, 1.2, 5.0];

/// OpenTelemetry's advised buckets for `http.server.request.duration` (seconds).
const OTEL_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One group's names in each data plane's terms.
struct Names {
    namespace: String,
    deployment: String,
    service: String,
}

impl Names {
    fn of(key: &GroupKey) -> Names {
        let base = match key.track {
            Track::Canary => key
                .workload
                .strip_suffix("-canary")
                .unwrap_or(&key.workload),
            Track::Stable => &key.workload,
        };
        Names {
            namespace: key.namespace.clone(),
            deployment: key.workload.clone(),
            service: format!("{base}-{}", key.track.as_str()),
        }
    }

    fn envoy_cluster(&self) -> String {
        format!("service/{}/{}/{PORT}/http", self.namespace, self.service)
    }

    fn nginx_upstream(&self) -> String {
        format!("{}_{}_{PORT}", self.namespace, self.service)
    }

    fn traefik_service(&self) -> String {
        format!(
            "{}-{}-http-{PORT}@kubernetesgateway",
            self.namespace, self.service
        )
    }
}

impl Shapes {
    /// Registers every data plane's counters in `registry`.
    pub fn new(registry: &Registry) -> Result<Shapes, prometheus::Error> {
        Ok(Shapes {
            istio: counter(
                registry,
                "istio_requests_total",
                "As Istio's destination sidecar counts them.",
                &[
                    "reporter",
                    "destination_workload_namespace",
                    "destination_workload",
                    "response_code",
                ],
            )?,
            envoy_total: counter(
                registry,
                "envoy_cluster_upstream_rq_total",
                "As Envoy Gateway's proxy counts them per backend cluster (mergeBackends).",
                &["envoy_cluster_name"],
            )?,
            envoy_xx: counter(
                registry,
                "envoy_cluster_upstream_rq_xx",
                "As Envoy Gateway's proxy counts them per backend cluster and response class.",
                &["envoy_cluster_name", "envoy_response_code_class"],
            )?,
            linkerd: counter(
                registry,
                "response_total",
                "As Linkerd's inbound proxy counts them.",
                &[
                    "namespace",
                    "deployment",
                    "direction",
                    "classification",
                    "status_code",
                ],
            )?,
            nginx_requests: counter(
                registry,
                "nginx_http_upstream_peer_requests_total",
                "As NGINX Plus counts them per upstream.",
                &["nginx_upstream_name"],
            )?,
            nginx_responses: counter(
                registry,
                "nginx_http_upstream_peer_responses_total",
                "As NGINX Plus counts them per upstream and status range.",
                &["nginx_upstream_name", "nginx_status_range"],
            )?,
            traefik: counter(
                registry,
                "traefik_service_requests_total",
                "As Traefik counts them per service (Gateway API provider).",
                &["service", "code", "method", "protocol"],
            )?,
            otel: counter(
                registry,
                "http_server_request_duration_seconds_count",
                "The count of OpenTelemetry's http.server.request.duration, as exported to Prometheus with k8s.namespace.name and k8s.deployment.name promoted.",
                &[
                    "k8s_namespace_name",
                    "k8s_deployment_name",
                    "http_response_status_code",
                ],
            )?,
            istio_latency: BucketCounter::new(
                registry,
                "istio_request_duration_milliseconds_bucket",
                "As Istio's destination sidecar times them (milliseconds, Envoy's default buckets).",
                &[
                    "reporter",
                    "destination_workload_namespace",
                    "destination_workload",
                    "response_code",
                ],
                &ENVOY_BUCKETS_MS,
                0.001,
            )?,
            envoy_latency: BucketCounter::new(
                registry,
                "envoy_cluster_upstream_rq_time_bucket",
                "As Envoy Gateway's proxy times them per backend cluster (milliseconds).",
                &["envoy_cluster_name"],
                &ENVOY_BUCKETS_MS,
                0.001,
            )?,
            linkerd_latency: BucketCounter::new(
                registry,
                "response_latency_ms_bucket",
                "As Linkerd's inbound proxy times them (milliseconds).",
                &["namespace", "deployment", "direction", "status_code"],
                &LINKERD_BUCKETS_MS,
                0.001,
            )?,
            traefik_latency: BucketCounter::new(
                registry,
                "traefik_service_request_duration_seconds_bucket",
                "As Traefik times them per service (its default buckets).",
                &["service", "code", "method", "protocol"],
                &TRAEFIK_BUCKETS,
                1.0,
            )?,
            otel_latency: BucketCounter::new(
                registry,
                "http_server_request_duration_seconds_bucket",
                "OpenTelemetry's http.server.request.duration (its advised buckets).",
                &[
                    "k8s_namespace_name",
                    "k8s_deployment_name",
                    "http_response_status_code",
                ],
                &OTEL_BUCKETS,
                1.0,
            )?,
        })
    }

    /// Adds what `key` served (nothing makes its success series exist). Failure series are
    /// created only by a failure.
    pub fn record(&self, key: &GroupKey, served: &Served) {
        let errors = served.errors;
        let ok = served.requests - errors;
        let n = Names::of(key);
        let (ns, dep) = (n.namespace.as_str(), n.deployment.as_str());
        let (cluster, upstream, service) =
            (n.envoy_cluster(), n.nginx_upstream(), n.traefik_service());
        // The request totals count both; the by-code series one each.
        let all = ok + errors;
        self.envoy_total.with_label_values(&[&cluster]).inc_by(all);
        self.nginx_requests
            .with_label_values(&[&upstream])
            .inc_by(all);
        self.envoy_latency
            .add(&[&cluster], &served.latency(), served.requests);
        let by_code: [(&str, u64, &Buckets, bool); 2] = [
            ("200", ok, &served.ok_latency, true),
            ("500", errors, &served.error_latency, false),
        ];
        for (code, count, buckets, success) in by_code {
            if !success && count == 0 {
                continue;
            }
            let class = &code[..1];
            self.istio
                .with_label_values(&["destination", ns, dep, code])
                .inc_by(count);
            self.envoy_xx
                .with_label_values(&[&cluster, class])
                .inc_by(count);
            let classification = if success { "success" } else { "failure" };
            self.linkerd
                .with_label_values(&[ns, dep, "inbound", classification, code])
                .inc_by(count);
            self.nginx_responses
                .with_label_values(&[&upstream, &format!("{class}xx")])
                .inc_by(count);
            self.traefik
                .with_label_values(&[&service, code, "GET", "http"])
                .inc_by(count);
            self.otel.with_label_values(&[ns, dep, code]).inc_by(count);
            self.istio_latency
                .add(&["destination", ns, dep, code], buckets, count);
            self.linkerd_latency
                .add(&[ns, dep, "inbound", code], buckets, count);
            self.traefik_latency
                .add(&[&service, code, "GET", "http"], buckets, count);
            self.otel_latency.add(&[ns, dep, code], buckets, count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn scrape(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn each_data_plane_counts_the_same_traffic_its_own_way() {
        let registry = Registry::new();
        let shapes = Shapes::new(&registry).expect("shapes");
        let canary = GroupKey {
            namespace: "shop".into(),
            workload: "web-canary".into(),
            track: Track::Canary,
            revision: "abc".into(),
        };
        shapes.record(&canary, &Served::default());
        let text = scrape(&registry);
        // Success series exist at 0 before any request; failure series do not.
        assert!(text.contains(r#"istio_requests_total{destination_workload="web-canary",destination_workload_namespace="shop",reporter="destination",response_code="200"} 0"#), "{text}");
        assert!(!text.contains(r#"response_code="500""#), "{text}");
        let mut served = Served {
            requests: 100,
            errors: 3,
            ..Served::default()
        };
        // 60 of the 97 successes within 50ms, all within 250ms; the failures take 1-2s.
        served.ok_latency = latency::BOUNDS.map(|b| match b {
            b if b < 0.05 => 0,
            b if b < 0.25 => 60,
            _ => 97,
        });
        served.error_latency = latency::BOUNDS.map(|b| if b < 1.2 { 0 } else { 3 });
        shapes.record(&canary, &served);
        let text = scrape(&registry);
        for line in [
            r#"istio_requests_total{destination_workload="web-canary",destination_workload_namespace="shop",reporter="destination",response_code="500"} 3"#,
            r#"envoy_cluster_upstream_rq_total{envoy_cluster_name="service/shop/web-canary/80/http"} 100"#,
            r#"envoy_cluster_upstream_rq_xx{envoy_cluster_name="service/shop/web-canary/80/http",envoy_response_code_class="5"} 3"#,
            r#"response_total{classification="failure",deployment="web-canary",direction="inbound",namespace="shop",status_code="500"} 3"#,
            r#"nginx_http_upstream_peer_requests_total{nginx_upstream_name="shop_web-canary_80"} 100"#,
            r#"nginx_http_upstream_peer_responses_total{nginx_status_range="5xx",nginx_upstream_name="shop_web-canary_80"} 3"#,
            r#"traefik_service_requests_total{code="200",method="GET",protocol="http",service="shop-web-canary-http-80@kubernetesgateway"} 97"#,
            r#"http_server_request_duration_seconds_count{http_response_status_code="500",k8s_deployment_name="web-canary",k8s_namespace_name="shop"} 3"#,
            // The histograms, each in its unit and buckets.
            r#"istio_request_duration_milliseconds_bucket{destination_workload="web-canary",destination_workload_namespace="shop",le="50",reporter="destination",response_code="200"} 60"#,
            r#"istio_request_duration_milliseconds_bucket{destination_workload="web-canary",destination_workload_namespace="shop",le="25",reporter="destination",response_code="200"} 0"#,
            r#"istio_request_duration_milliseconds_bucket{destination_workload="web-canary",destination_workload_namespace="shop",le="+Inf",reporter="destination",response_code="500"} 3"#,
            r#"envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="service/shop/web-canary/80/http",le="1000"} 97"#,
            r#"envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="service/shop/web-canary/80/http",le="2500"} 100"#,
            r#"response_latency_ms_bucket{deployment="web-canary",direction="inbound",le="300",namespace="shop",status_code="200"} 97"#,
            r#"traefik_service_request_duration_seconds_bucket{code="500",le="1.2",method="GET",protocol="http",service="shop-web-canary-http-80@kubernetesgateway"} 3"#,
            r#"traefik_service_request_duration_seconds_bucket{code="200",le="0.1",method="GET",protocol="http",service="shop-web-canary-http-80@kubernetesgateway"} 60"#,
            r#"http_server_request_duration_seconds_bucket{http_response_status_code="200",k8s_deployment_name="web-canary",k8s_namespace_name="shop",le="0.05"} 60"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The stable track's backend Service.
        let stable = GroupKey {
            workload: "web".into(),
            track: Track::Stable,
            ..canary
        };
        shapes.record(
            &stable,
            &Served {
                requests: 5,
                ..Served::default()
            },
        );
        assert!(
            scrape(&registry).contains(r#"service="shop-web-stable-http-80@kubernetesgateway""#)
        );
    }
}
