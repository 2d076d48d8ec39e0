//! What the simulator exports: Prometheus metrics (its own registry) and the `/stats`
//! JSON totals, both updated once per tick from the model's outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use serde::Serialize;

use crate::model::{EntryKind, GroupKey, PodView, Served, Track, UnroutedReason};
use crate::peers::PeerSeries;
use crate::shapes::{BucketCounter, Shapes};

/// Prometheus' default histogram buckets (seconds), for the simulator's own latency histogram
/// and the per-pod one the peers read.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Requests that reached no pod in one tick, attributed to their entry point.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnroutedKey {
    /// Namespace of the entry point.
    pub namespace: String,
    /// Route or Service.
    pub kind: EntryKind,
    /// Name of the entry point.
    pub name: String,
    /// Why the requests were lost.
    pub reason: UnroutedReason,
}

/// Running totals of one workload/track, as served by `/stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
struct GroupStats {
    requests: u64,
    errors: u64,
    ready_pods: u64,
    first_request_unix: Option<f64>,
    last_request_unix: Option<f64>,
}

/// Mutable state behind the metrics: totals for `/stats` and the groups already seen.
#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<GroupKey, GroupStats>,
    unrouted: BTreeMap<UnroutedKey, u64>,
}

/// One line of the `/stats` `workloads` array.
#[derive(Serialize)]
struct WorkloadRow<'a> {
    namespace: &'a str,
    workload: &'a str,
    track: Track,
    /// The pods' `pod-template-hash`.
    pod_template_hash: &'a str,
    requests: u64,
    errors: u64,
    /// errors / requests, `null` before the first request.
    error_ratio: Option<f64>,
    ready_pods: u64,
    first_request_unix: Option<f64>,
    last_request_unix: Option<f64>,
}

/// One line of the `/stats` `unrouted` array.
#[derive(Serialize)]
struct UnroutedRow<'a> {
    namespace: &'a str,
    kind: &'static str,
    name: &'a str,
    reason: &'static str,
    requests: u64,
}

/// The `/stats` document.
#[derive(Serialize)]
struct StatsDoc<'a> {
    seed: u64,
    workloads: Vec<WorkloadRow<'a>>,
    unrouted: Vec<UnroutedRow<'a>>,
}

/// The simulator's metrics and totals.
pub struct Telemetry {
    registry: Registry,
    requests: IntCounterVec,
    first_request: GaugeVec,
    pods: IntGaugeVec,
    unrouted: IntCounterVec,
    latency: BucketCounter,
    /// The same traffic as each data plane counts it (the presets' metrics).
    shapes: Shapes,
    /// The per-pod series the peers' checks read (benches/peers).
    peers: PeerSeries,
    seed: u64,
    state: Mutex<State>,
}

impl Telemetry {
    /// Creates the metrics in a fresh registry. `seed` is reported by `/stats`.
    pub fn new(seed: u64) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "Requests served by the simulated pods, by workload, track, revision (the pods' pod-template-hash) and response code.",
            ),
            &[
                "namespace",
                "workload",
                "track",
                "pod_template_hash",
                "code",
            ],
        )?;
        let first_request = GaugeVec::new(
            Opts::new(
                "sim_first_request_timestamp_seconds",
                "Unix time of the first request this workload/track/revision served since the simulator started.",
            ),
            &["namespace", "workload", "track", "pod_template_hash"],
        )?;
        let pods = IntGaugeVec::new(
            Opts::new(
                "sim_pods",
                "Ready (Ready=True, not terminating) pods of the workload/track/revision.",
            ),
            &["namespace", "workload", "track", "pod_template_hash"],
        )?;
        let unrouted = IntCounterVec::new(
            Opts::new(
                "sim_unrouted_requests_total",
                "Requests of an entry point that reached no pod (a gateway would answer 5xx).",
            ),
            &["namespace", "kind", "name", "reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(first_request.clone()))?;
        registry.register(Box::new(pods.clone()))?;
        registry.register(Box::new(unrouted.clone()))?;
        let latency = BucketCounter::new(
            &registry,
            "sim_request_duration_seconds_bucket",
            "How long the simulated pods took to answer, by workload, track and revision (seconds; Prometheus' default buckets).",
            &["namespace", "workload", "track", "pod_template_hash"],
            &DEFAULT_BUCKETS,
            1.0,
        )?;
        let shapes = Shapes::new(&registry)?;
        let peers = PeerSeries::new(&registry)?;
        Ok(Self {
            registry,
            requests,
            first_request,
            pods,
            unrouted,
            latency,
            shapes,
            peers,
            seed,
            state: Mutex::new(State::default()),
        })
    }

    /// Applies one tick: `ready` holds the ready-pod count of every group that has one,
    /// `served` what each group served, `unrouted` the lost requests; `now_unix` is the
    /// tick's wall-clock time.
    ///
    /// A group's `http_requests_total` series (both codes) exist from the first tick it
    /// has a ready pod, so `increase()` sees its first request; its `sim_pods` drops to 0
    /// (and stays) when it has none.
    pub fn record(
        &self,
        ready: &BTreeMap<GroupKey, u64>,
        served: &BTreeMap<GroupKey, Served>,
        unrouted: &[(UnroutedKey, u64)],
        now_unix: f64,
    ) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let groups: BTreeSet<&GroupKey> = ready.keys().chain(served.keys()).collect();
        for key in groups {
            let labels = [
                key.namespace.as_str(),
                &key.workload,
                key.track.as_str(),
                &key.revision,
            ];
            let stats = state.groups.entry(key.clone()).or_insert_with(|| {
                // First sight: make both code series exist at 0.
                for code in ["200", "500"] {
                    self.requests
                        .with_label_values(&[labels[0], labels[1], labels[2], labels[3], code]);
                }
                self.latency.add(&labels, &crate::latency::NONE, 0);
                self.shapes.record(key, &Served::default());
                GroupStats::default()
            });
            if let Some(s) = served.get(key).filter(|s| s.requests > 0) {
                let ok = s.requests.saturating_sub(s.errors);
                self.requests
                    .with_label_values(&[labels[0], labels[1], labels[2], labels[3], "200"])
                    .inc_by(ok);
                self.requests
                    .with_label_values(&[labels[0], labels[1], labels[2], labels[3], "500"])
                    .inc_by(s.errors);
                self.latency.add(&labels, &s.latency(), s.requests);
                self.shapes.record(key, s);
                stats.requests += s.requests;
                stats.errors += s.errors;
                if stats.first_request_unix.is_none() {
                    stats.first_request_unix = Some(now_unix);
                    self.first_request.with_label_values(&labels).set(now_unix);
                }
                stats.last_request_unix = Some(now_unix);
            }
        }
        for (key, stats) in &mut state.groups {
            let n = ready.get(key).copied().unwrap_or(0);
            stats.ready_pods = n;
            self.pods
                .with_label_values(&[
                    key.namespace.as_str(),
                    &key.workload,
                    key.track.as_str(),
                    &key.revision,
                ])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (key, n) in unrouted {
            if *n == 0 {
                continue;
            }
            self.unrouted
                .with_label_values(&[
                    key.namespace.as_str(),
                    key.kind.as_str(),
                    &key.name,
                    key.reason.as_str(),
                ])
                .inc_by(*n);
            *state.unrouted.entry(key.clone()).or_insert(0) += n;
        }
    }

    /// Applies one tick per pod: `per_pod[i]` is what `pods[i]` served.
    pub fn record_pods(&self, pods: &[PodView], per_pod: &[Served]) {
        self.peers.record(pods, per_pod);
    }

    /// The Prometheus text exposition of the registry.
    pub fn render_metrics(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// The `/stats` JSON: `{seed, workloads: [...], unrouted: [...]}`, sorted by
    /// namespace, workload, track.
    pub fn stats_json(&self) -> Result<String, serde_json::Error> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let doc = StatsDoc {
            seed: self.seed,
            workloads: state
                .groups
                .iter()
                .map(|(k, s)| WorkloadRow {
                    namespace: &k.namespace,
                    workload: &k.workload,
                    track: k.track,
                    pod_template_hash: &k.revision,
                    requests: s.requests,
                    errors: s.errors,
                    error_ratio: (s.requests > 0).then(|| s.errors as f64 / s.requests as f64),
                    ready_pods: s.ready_pods,
                    first_request_unix: s.first_request_unix,
                    last_request_unix: s.last_request_unix,
                })
                .collect(),
            unrouted: state
                .unrouted
                .iter()
                .map(|(k, &n)| UnroutedRow {
                    namespace: &k.namespace,
                    kind: k.kind.as_str(),
                    name: &k.name,
                    reason: k.reason.as_str(),
                    requests: n,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(workload: &str, track: Track) -> GroupKey {
        GroupKey {
            namespace: "ns".into(),
            workload: workload.into(),
            track,
            revision: "5d8f".into(),
        }
    }

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn counters_exist_at_zero_once_a_pod_is_ready() {
        let t = Telemetry::new(1).expect("registry");
        let ready = BTreeMap::from([(key("web-canary", Track::Canary), 1)]);
        t.record(&ready, &BTreeMap::new(), &[], 100.0);
        let text = t.render_metrics().expect("render");
        for code in ["200", "500"] {
            let line = format!(
                "http_requests_total{{code=\"{code}\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"canary\",workload=\"web-canary\"}} 0"
            );
            assert!(has_line(&text, &line), "missing {line} in\n{text}");
        }
        assert!(has_line(
            &text,
            "sim_pods{namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"canary\",workload=\"web-canary\"} 1"
        ));
        assert!(
            !text.contains("sim_first_request_timestamp_seconds{"),
            "{text}"
        );
    }

    #[test]
    fn requests_errors_first_request_and_pod_count() {
        let t = Telemetry::new(7).expect("registry");
        let k = key("web", Track::Stable);
        let ready = BTreeMap::from([(k.clone(), 3)]);
        let served = BTreeMap::from([(
            k.clone(),
            Served {
                requests: 100,
                errors: 5,
                ..Served::default()
            },
        )]);
        t.record(&ready, &served, &[], 100.0);
        t.record(&ready, &served, &[], 101.5);
        let lost = UnroutedKey {
            namespace: "ns".into(),
            kind: EntryKind::HttpRoute,
            name: "web".into(),
            reason: UnroutedReason::NoReadyPods,
        };
        t.record(&BTreeMap::new(), &BTreeMap::new(), &[(lost, 4)], 102.0);
        let text = t.render_metrics().expect("render");
        for line in [
            "http_requests_total{code=\"200\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 190",
            "http_requests_total{code=\"500\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 10",
            "sim_first_request_timestamp_seconds{namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 100",
            "sim_pods{namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 0",
            "sim_unrouted_requests_total{kind=\"httproute\",name=\"web\",namespace=\"ns\",reason=\"no_ready_pods\"} 4",
            // No latency drawn in this fixture: every request is past the last bound.
            "sim_request_duration_seconds_bucket{le=\"10\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 0",
            "sim_request_duration_seconds_bucket{le=\"+Inf\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"stable\",workload=\"web\"} 200",
        ] {
            assert!(has_line(&text, line), "missing {line} in\n{text}");
        }
        let stats: serde_json::Value =
            serde_json::from_str(&t.stats_json().expect("json")).expect("valid json");
        assert_eq!(stats["seed"], 7);
        let w = &stats["workloads"][0];
        assert_eq!(w["workload"], "web");
        assert_eq!(w["track"], "stable");
        assert_eq!(w["pod_template_hash"], "5d8f");
        assert_eq!(w["requests"], 200);
        assert_eq!(w["errors"], 10);
        assert_eq!(w["error_ratio"], 0.05);
        assert_eq!(w["ready_pods"], 0);
        assert_eq!(w["first_request_unix"], 100.0);
        assert_eq!(w["last_request_unix"], 101.5);
        assert_eq!(stats["unrouted"][0]["reason"], "no_ready_pods");
        assert_eq!(stats["unrouted"][0]["requests"], 4);
    }

    /// Two canaries of one Deployment share `workload="web-canary"`: each revision is its own
    /// series, so the second one's counters start at 0 whatever the first one served.
    #[test]
    fn each_revision_of_a_workload_is_its_own_series() {
        let t = Telemetry::new(1).expect("registry");
        let old = key("web-canary", Track::Canary);
        let new = GroupKey {
            revision: "77aa".into(),
            ..old.clone()
        };
        let bad = Served {
            requests: 100,
            errors: 5,
            ..Served::default()
        };
        t.record(
            &BTreeMap::from([(old.clone(), 1)]),
            &BTreeMap::from([(old, bad)]),
            &[],
            100.0,
        );
        t.record(&BTreeMap::from([(new, 1)]), &BTreeMap::new(), &[], 101.0);
        let text = t.render_metrics().expect("render");
        for line in [
            "http_requests_total{code=\"500\",namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"canary\",workload=\"web-canary\"} 5",
            "http_requests_total{code=\"500\",namespace=\"ns\",pod_template_hash=\"77aa\",track=\"canary\",workload=\"web-canary\"} 0",
            "sim_pods{namespace=\"ns\",pod_template_hash=\"5d8f\",track=\"canary\",workload=\"web-canary\"} 0",
            "sim_pods{namespace=\"ns\",pod_template_hash=\"77aa\",track=\"canary\",workload=\"web-canary\"} 1",
        ] {
            assert!(has_line(&text, line), "missing {line} in\n{text}");
        }
    }
}
