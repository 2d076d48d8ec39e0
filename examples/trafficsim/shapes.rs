//! The same traffic as each data plane would count it, for rollguard's presets
//! (`spec.analysis.preset`): Istio's destination sidecar, Envoy Gateway's per-backend clusters,
//! Linkerd's inbound proxy, NGINX Plus' upstream peers, Traefik's services and the
//! OpenTelemetry HTTP server duration histogram's count. Metric and label names as each
//! project documents them (docs/analysis.md, "Presets"); values are what the simulated pods
//! served.
//!
//! As the data planes do, each 5xx series appears at the first such response (so the presets'
//! `or vector(0)` is exercised), while the 2xx series exist at 0 from the first tick a group
//! has a ready pod. The backend Service of a group is `<deployment>-canary` or
//! `<deployment>-stable`: rollguard's Gateway API router's Services when the base Service is
//! named like the Deployment, as in the tests and the demo.

use prometheus::{IntCounterVec, Opts, Registry};

use crate::model::{GroupKey, Track};

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
        })
    }

    /// Adds `ok` successful and `errors` failed requests of `key` (`0, 0` makes its success
    /// series exist). Failure series are created only by a failure.
    pub fn record(&self, key: &GroupKey, ok: u64, errors: u64) {
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
        let by_code: [(&str, u64, bool); 2] = [("200", ok, true), ("500", errors, false)];
        for (code, count, success) in by_code {
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
        shapes.record(&canary, 0, 0);
        let text = scrape(&registry);
        // Success series exist at 0 before any request; failure series do not.
        assert!(text.contains(r#"istio_requests_total{destination_workload="web-canary",destination_workload_namespace="shop",reporter="destination",response_code="200"} 0"#), "{text}");
        assert!(!text.contains(r#"response_code="500""#), "{text}");
        shapes.record(&canary, 97, 3);
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
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The stable track's backend Service.
        let stable = GroupKey {
            workload: "web".into(),
            track: Track::Stable,
            ..canary
        };
        shapes.record(&stable, 5, 0);
        assert!(
            scrape(&registry).contains(r#"service="shop-web-stable-http-80@kubernetesgateway""#)
        );
    }
}
