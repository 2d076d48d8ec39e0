//! The series the peers read, for the benchmark against the real Flagger and Argo Rollouts
//! (`benches/peers/`): a per-pod request-duration histogram in the shape Flagger's built-in
//! checks for its `kubernetes` and `gatewayapi` providers query
//! (`http_request_duration_seconds_{count,bucket}` with `kubernetes_namespace`,
//! `kubernetes_pod_name` and `status`, as Prometheus' pod discovery relabels them), which an
//! Argo Rollouts AnalysisTemplate can read as well.
//!
//! Every request takes [`FIXED_LATENCY_SECONDS`]: the benchmark judges error rates, and
//! Flagger's request-duration check (P99 under 500 ms in its documentation) passes at any
//! constant below that.
// TODO(latency): observe the model's per-pod latency once it lands on main, so the
// request-duration check sees a slow canary too.

use prometheus::{HistogramOpts, HistogramVec, Registry};

use crate::model::{PodView, Served};

/// What every simulated request takes, in seconds.
pub const FIXED_LATENCY_SECONDS: f64 = 0.05;

/// The per-pod histogram.
pub struct PeerSeries {
    duration: HistogramVec,
}

impl PeerSeries {
    /// Registers the histogram in `registry`.
    pub fn new(registry: &Registry) -> Result<PeerSeries, prometheus::Error> {
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Request duration per pod and status, as Flagger's built-in checks read it.",
            ),
            &["kubernetes_namespace", "kubernetes_pod_name", "status"],
        )?;
        registry.register(Box::new(duration.clone()))?;
        Ok(PeerSeries { duration })
    }

    /// Records one tick: `per_pod[i]` is what `pods[i]` served. A ready pod's `200` series
    /// exists from its first tick (at 0), its `500` series from its first error, as an
    /// instrumented server's would.
    pub fn record(&self, pods: &[PodView], per_pod: &[Served]) {
        for (pod, served) in pods.iter().zip(per_pod) {
            let ok = served.requests.saturating_sub(served.errors);
            let labels = [pod.namespace.as_str(), pod.name.as_str(), "200"];
            let series = self.duration.with_label_values(&labels);
            for _ in 0..ok {
                series.observe(FIXED_LATENCY_SECONDS);
            }
            if served.errors > 0 {
                let series = self.duration.with_label_values(&[
                    pod.namespace.as_str(),
                    pod.name.as_str(),
                    "500",
                ]);
                for _ in 0..served.errors {
                    series.observe(FIXED_LATENCY_SECONDS);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prometheus::{Encoder, TextEncoder};

    use super::*;
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
        }
    }

    #[test]
    fn counts_per_pod_and_status_in_flaggers_labels() {
        let registry = Registry::new();
        let s = PeerSeries::new(&registry).expect("registry");
        let pods = [pod("web-5d8f-abcde"), pod("web-5d8f-fghij")];
        s.record(
            &pods,
            &[
                Served {
                    requests: 10,
                    errors: 2,
                },
                Served::default(),
            ],
        );
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .expect("encode");
        let text = String::from_utf8(buf).expect("utf-8");
        for line in [
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-abcde\",status=\"200\"} 8",
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-abcde\",status=\"500\"} 2",
            "http_request_duration_seconds_count{kubernetes_namespace=\"ns\",kubernetes_pod_name=\"web-5d8f-fghij\",status=\"200\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("web-5d8f-fghij\",status=\"500\""), "{text}");
    }
}
