//! `rollguard backtest` against the real Prometheus of the local control plane: a small
//! exporter in the test serves `http_requests_total` counters that rise at a known rate with
//! a known error ratio, Prometheus scrapes it every second, and the backtest replays a
//! policy over what Prometheus recorded. A canary failing 20% of its requests must be rolled
//! back at the first sample; a clean one must go through both steps and be promoted.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jiff::{SignedDuration, Timestamp};
use rollguard::backtest::{Options, backtest};

use crate::support::{self, claim};

/// Requests per second each workload serves.
const RPS: f64 = 20.0;
/// The analysis interval and step pauses of the test policy (compressed timings).
const POLICY: &str = r#"apiVersion: rollguard.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: backtest}
spec:
  selector: {matchLabels: {app: web}}
  traffic: {gatewayAPI: {}}
  analysis:
    interval: 2s
    requests: sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))
    errors: sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code="500"}[{{elapsed}}]))
    minRequests: 50
  tiers:
  - name: fast
    steps:
    - {weight: 10%, pause: 4s}
    - {weight: 50%, pause: 4s}
    maxErrorRate: 5%
    decision: sequential
"#;
// p1 is 5% so that a clean canary at 20 requests/s is accepted at each slice within its 4 s
// pause (about 60 clean requests): a sequential slice widens only once its test accepted the
// canary there.

/// The same policy judging latency too: requests slower than 250ms, read from the
/// exporter's histogram.
fn latency_policy() -> String {
    POLICY
        .replace(
            "    minRequests: 50\n",
            "    minRequests: 50\n    latency:\n      buckets: sum by (le) (increase(http_request_duration_seconds_bucket{namespace=\"{{namespace}}\",workload=\"{{workload}}\"}[{{elapsed}}]))\n",
        )
        .replace(
            "    decision: sequential\n",
            "    decision: sequential\n    latency: {objective: 250ms, maxSlowRate: 5%, p0: 1%}\n",
        )
}

/// (workload, error ratio, share of requests slower than 250ms) of the exported series.
const WORKLOADS: [(&str, f64, f64); 3] = [
    ("bad-canary", 0.2, 0.0),
    ("good-canary", 0.0, 0.0),
    ("slow-canary", 0.0, 0.3),
];

struct Exporter {
    namespace: String,
    /// When the first scrape came: the counters count from there.
    first: Mutex<Option<Timestamp>>,
}

async fn metrics(State(x): State<Arc<Exporter>>) -> String {
    let now = Timestamp::now();
    let first = *x.first.lock().expect("lock").get_or_insert(now);
    let secs = now.duration_since(first).as_secs_f64();
    let mut out = String::from("# TYPE http_requests_total counter\n");
    let mut histogram = String::from("# TYPE http_request_duration_seconds histogram\n");
    for (workload, ratio, slow) in WORKLOADS {
        let requests = (RPS * secs).floor();
        let errors = (ratio * requests).floor();
        for (code, v) in [("200", requests - errors), ("500", errors)] {
            out.push_str(&format!(
                "http_requests_total{{namespace=\"{}\",workload=\"{workload}\",code=\"{code}\"}} {v}\n",
                x.namespace
            ));
        }
        let fast = requests - (slow * requests).floor();
        for (le, v) in [
            ("0.1", (fast / 2.0).floor()),
            ("0.25", fast),
            ("1", requests),
            ("+Inf", requests),
        ] {
            histogram.push_str(&format!(
                "http_request_duration_seconds_bucket{{namespace=\"{}\",workload=\"{workload}\",le=\"{le}\"}} {v}\n",
                x.namespace
            ));
        }
    }
    out + &histogram
}

fn options(policy: PathBuf, deployment: &str, ns: &str, from: Timestamp, to: Timestamp) -> Options {
    Options {
        timeout: Duration::from_secs(10),
        ..Options::new(
            policy,
            deployment,
            ns,
            support::prometheus_url(),
            (from, to),
        )
    }
}

#[tokio::test]
async fn backtest_replays_recorded_counters() {
    let _cluster = claim::shared().await;
    let ns = format!("bt-{}", support::unique_suffix());
    let exporter = Arc::new(Exporter {
        namespace: ns.clone(),
        first: Mutex::new(None),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(exporter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let target = support::register_scrape_target(&ns, &addr.to_string());

    // Wait for Prometheus to have the series, then for 20 s of data.
    let url = support::prometheus_url();
    let probe = format!("sum(http_requests_total{{namespace=\"{ns}\"}})");
    support::wait_for(
        Duration::from_secs(30),
        "Prometheus scraping the exporter",
        async || support::prom_query(&url, &probe).await,
    )
    .await;
    let from = exporter
        .first
        .lock()
        .expect("lock")
        .expect("scraped at least once");
    let to = from + SignedDuration::from_secs(20);
    let ready = to + SignedDuration::from_secs(3);
    let wait = ready
        .duration_since(Timestamp::now())
        .as_secs_f64()
        .max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;

    let dir = std::env::temp_dir().join(format!("rollguard-backtest-{ns}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("policy file");

    // 20% errors: the first sample (2 s, about 40 requests and 8 errors) rolls back.
    let bad = backtest(&options(policy.clone(), "bad", &ns, from, to))
        .await
        .expect("backtest of the bad canary");
    let report = serde_json::to_string_pretty(&bad).expect("json");
    assert_eq!(bad.outcome, "RolledBack", "{report}");
    assert_eq!(
        bad.reason.as_deref(),
        Some("SequentialTestRejected"),
        "{report}"
    );
    let decided: Timestamp = bad
        .decided_at
        .as_deref()
        .expect("decided")
        .parse()
        .expect("time");
    let after = decided.duration_since(from).as_secs_f64();
    assert!(
        (1.9..=6.1).contains(&after),
        "decided {after}s after --from\n{report}"
    );
    assert!(bad.query.contains("workload=\"bad-canary\""), "{report}");
    let bad_json = serde_json::to_value(&bad).expect("json");
    let last = bad_json["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .rev()
        .find(|e| e["kind"] == "sample")
        .expect("a sample");
    assert_eq!(last["verdict"], "Fail", "{report}");
    let rate: f64 = last["rate"]
        .as_str()
        .and_then(|r| r.trim_end_matches('%').parse().ok())
        .expect("rate");
    assert!(
        (10.0..=30.0).contains(&rate),
        "recorded error rate {rate}%\n{report}"
    );

    assert!(bad.warnings.is_empty(), "{report}");
    // Starting the replay after the canary started: the earlier requests would be counted
    // as this run's, and the report says so.
    let late = backtest(&options(
        policy.clone(),
        "good",
        &ns,
        from + SignedDuration::from_secs(10),
        to,
    ))
    .await
    .expect("backtest from later");
    assert!(
        late.warnings.iter().any(|w| w.contains("before --from")),
        "{:?}",
        late.warnings
    );

    // No errors, through the CLI: both 4 s steps pass and the canary is promoted.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollguard"))
        .args(["backtest", "--policy"])
        .arg(&policy)
        .args([
            "--deployment",
            "good",
            "--namespace",
            &ns,
            "--prometheus",
            &url,
        ])
        .args(["--from", &from.to_string(), "--to", &to.to_string()])
        .output()
        .expect("running rollguard backtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(good["outcome"], "Promoted", "{stdout}");
    assert_eq!(good["stepsReached"], 2, "{stdout}");
    let decided: Timestamp = good["decidedAt"]
        .as_str()
        .expect("decided")
        .parse()
        .expect("time");
    let after = decided.duration_since(from).as_secs_f64();
    assert!(
        (7.9..=12.1).contains(&after),
        "promoted {after}s after --from\n{stdout}"
    );
    let verdicts: Vec<&str> = good["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e["kind"] == "sample")
        .filter_map(|e| e["verdict"].as_str())
        .collect();
    assert!(verdicts.len() >= 4, "{stdout}");
    assert!(
        verdicts
            .iter()
            .all(|v| *v == "Continue" || *v == "AcceptGood"),
        "{verdicts:?}"
    );

    // Latency: the slow canary (30% of its requests past 250ms, no errors) is rolled back by
    // the slow requests' test, read from the recorded histogram; the good one is promoted.
    let latency = dir.join("latency.yaml");
    std::fs::write(&latency, latency_policy()).expect("policy file");
    let slow = backtest(&options(latency.clone(), "slow", &ns, from, to))
        .await
        .expect("backtest of the slow canary");
    let report = serde_json::to_string_pretty(&slow).expect("json");
    assert_eq!(slow.outcome, "RolledBack", "{report}");
    assert_eq!(
        slow.reason.as_deref(),
        Some("SlowRequestsTestRejected"),
        "{report}"
    );
    assert!(
        slow.query.contains("http_request_duration_seconds_bucket"),
        "{report}"
    );
    let fast = backtest(&options(latency, "good", &ns, from, to))
        .await
        .expect("backtest of the fast canary");
    assert_eq!(
        fast.outcome,
        "Promoted",
        "{}",
        serde_json::to_string_pretty(&fast).expect("json")
    );

    let _ = std::fs::remove_file(target);
    let _ = std::fs::remove_dir_all(dir);
    server.abort();
}

/// A policy whose queries name `{{revision}}` needs the revision on the command line (the
/// error names the flag), and with it the query sent counts that pod-template-hash only.
#[tokio::test]
async fn backtest_renders_revision_and_asks_for_it() {
    let _cluster = claim::shared().await;
    let ns = format!("bt-rev-{}", support::unique_suffix());
    let dir = std::env::temp_dir().join(format!("rollguard-backtest-{ns}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        POLICY.replace(
            "workload=\"{{workload}}\"",
            "workload=\"{{workload}}\",pod_template_hash=\"{{revision}}\"",
        ),
    )
    .expect("policy file");
    let to = Timestamp::now();
    let from = to - SignedDuration::from_secs(20);
    let mut opts = options(policy, "web", &ns, from, to);
    let err = backtest(&opts)
        .await
        .expect_err("{{revision}} without --revision");
    assert!(err.to_string().contains("--revision"), "{err}");
    opts.revision = Some("5d8f7c9b6".into());
    let report = backtest(&opts).await.expect("a report");
    assert!(
        report
            .query
            .contains("workload=\"web-canary\",pod_template_hash=\"5d8f7c9b6\""),
        "{}",
        report.query
    );
}
