//! The series the peers read, for the benchmark against the real Flagger and Argo Rollouts
//! (`benches/peers/`): a per-pod request-duration histogram in the shape Flagger's built-in
//! checks for its `kubernetes` and `gatewayapi` providers query
//! (`http_request_duration_seconds_{count,bucket}` with `kubernetes_namespace`,
//! `kubernetes_pod_name` and `status`, as Prometheus' pod discovery relabels them; Flagger
//! v1.36.1 `pkg/metrics/observers/http.go`), which an Argo Rollouts AnalysisTemplate can read
//! as well. Seconds, Prometheus' default buckets; the latency is the pod's
//! (`trafficsim/latency.rs`).

use prometheus::{IntCounterVec, Opts, Registry};

use crate::latency::Buckets;
use crate::model::{PodView, Served};
use crate::shapes::BucketCounter;
use crate::telemetry::DEFAULT_BUCKETS;

/// The per-pod histogram.
pub struct PeerSeries {
    buckets: BucketCounter,
    count: IntCounterVec,
}

impl PeerSeries {
    /// Registers the histogram's buckets and count in `registry`.
    pub fn new(registry: &Registry) -> Result<PeerSeries, prometheus::Error> {
        let labels = ["kubernetes_namespace", "kubernetes_pod_name", "status"];
        let buckets = BucketCounter::new(
            registry,
            "http_request_duration_seconds_bucket",
            "Request duration per pod and status (seconds), as Flagger's built-in checks read it.",
            &labels,
            &DEFAULT_BUCKETS,
            1.0,
        )?;
        let count = IntCounterVec::new(
            Opts::new(
                "http_request_duration_seconds_count",
                "Requests per pod and status, as Flagger's built-in checks read them.",
            ),
            &labels,
        )?;
        registry.register(Box::new(count.clone()))?;
        Ok(PeerSeries { buckets, count })
    }

    /// Records one tick: `per_pod[i]` is what `pods[i]` served. A ready pod's `200` series
    /// exist from its first tick (at 0), its `500` series from its first error, as an
    /// instrumented server's would.
    pub fn record(&self, pods: &[PodView], per_pod: &[Served]) {
        for (pod, served) in pods.iter().zip(per_pod) {
            let ok = served.requests.saturating_sub(served.errors);
            self.add(pod, "200", &served.ok_latency, ok);
            if served.errors > 0 {
                self.add(pod, "500", &served.error_latency, served.errors);
            }
        }
    }

    fn add(&self, pod: &PodView, status: &str, latency: &Buckets, n: u64) {
        let labels = [pod.namespace.as_str(), pod.name.as_str(), status];
        self.buckets.add(&labels, latency, n);
        self.count.with_label_values(&labels).inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prometheus::{Encoder, TextEncoder};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::latency;
    use crate::model::{GroupKey, Track};

    fn pod(name: &str) -> PodView {
        PodView {
            namespace: "ns".into(),
            name: name.into(),
            labels: BTreeMap::new(),
            group: GroupKey {
                namespace: "ns".into(),
                workload: "web".into(),
                track: Track::Stable,
                revision: "5d8f".into(),
            },
            error_rate: 0.0,
            latency: latency::DEFAULT_MEDIAN_SECONDS,
        }
    }

    #[test]
    fn counts_per_pod_and_status_in_flaggers_labels() {
        let registry = Registry::new();
        let s = PeerSeries::new(&registry).expect("registry");
        let pods = [pod("web-5d8f-abcde"), pod("web-5d8f-fghij")];
        let mut rng = StdRng::seed_from_u64(1);
        let served = Served {
            requests: 10,
            errors: 2,
            ok_latency: latency::draw(&mut rng, 8, 0.05),
            error_latency: latency::draw(&mut rng, 2, 0.05),
        };
        s.record(&pods, &[served, Served::default()]);
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .expect("encode");
        let text = String::from_utf8(buf).expect("utf-8");
        for line in [
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-abcde\",status=\"200\"} 8",
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-abcde\",status=\"500\"} 2",
            "http_request_duration_seconds_bucket{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-abcde\",le=\"+Inf\",status=\"200\"} 8",
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-fghij\",status=\"200\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("web-5d8f-fghij\",status=\"500\""), "{text}");
    }
}
