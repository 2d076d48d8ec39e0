//! Checks (`spec.analysis.checks`) against the real Prometheus: a number about the canary and
//! its bounds, judged every sample beside errors. Here the check is the peers' latency gate,
//! the canary's p99 from the simulator's real histogram (`histogram_quantile`), which
//! Flagger's `request-duration` check and a typical Argo Rollouts AnalysisTemplate read.

use std::time::Duration;

use rollguard::api::run::{Phase, Verdict};
use serde_json::json;

use crate::support;
use crate::support::world::{Router, World};

const P99: &str = r#"histogram_quantile(0.99, sum by (le) (increase(sim_request_duration_seconds_bucket{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}])))"#;

async fn world(name: &str, checks: serde_json::Value) -> World {
    World::builder(name)
        .router(Router::Gateway)
        .analysis(json!({
            "prometheus": {"address": support::prometheus_url()},
            "checks": checks,
        }))
        // A first slice long enough for the check's failure limit (two samples past it,
        // after the histogram's first scrapes).
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "20s"}, {"weight": "50%", "pause": "3s"}], "maxErrorRate": "5%"}]))
        .build()
        .await
}

/// A canary whose p99 is about 1s (300ms median) is rolled back by a check with a 500ms
/// maximum once past its failure limit, its errors clean; one as fast as stable (p99 about
/// 160ms) is promoted with the check passing at every sample.
#[tokio::test]
async fn a_check_out_of_bounds_rolls_back_and_one_within_promotes() {
    let w = world(
        "checks",
        json!([{"name": "p99-latency", "query": P99, "max": 0.5, "failureLimit": 1}]),
    )
    .await;
    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "300ms"}),
        "example.com/web:2",
    )
    .await;
    let run = w
        .wait_phase(Phase::RolledBack, Duration::from_secs(90))
        .await;
    let st = run.status.clone().expect("status");
    assert_eq!(
        st.reason.as_deref(),
        Some("CheckFailed"),
        "{:?}",
        st.message
    );
    assert_eq!(st.step, 0, "rolled back at its first slice");
    assert_eq!(st.check_failures[0].failures, 2, "{:?}", st.check_failures);
    let evidence = st.evidence.clone().expect("evidence");
    assert_eq!(evidence.errors, Some(0));
    let check = &evidence.checks[0];
    assert_eq!(
        (check.name.as_str(), check.verdict),
        ("p99-latency", Verdict::Fail)
    );
    let p99: f64 = check
        .value
        .as_deref()
        .unwrap_or("0")
        .parse()
        .expect("a number");
    assert!(p99 > 0.5, "{check:?}");
    assert!(
        check
            .query
            .as_deref()
            .is_some_and(|q| q.contains("web-canary")),
        "{check:?}"
    );
    println!("{}", st.message.clone().unwrap_or_default());

    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "50ms"}),
        "example.com/web:3",
    )
    .await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let st = run.status.expect("status");
    let judged: Vec<_> = st.samples.iter().flat_map(|s| &s.checks).collect();
    assert!(!judged.is_empty());
    assert!(
        judged
            .iter()
            .filter(|c| c.verdict != Verdict::NoData)
            .all(|c| c.verdict == Verdict::Pass),
        "{judged:?}"
    );
    assert!(st.check_failures.is_empty(), "{:?}", st.check_failures);
    w.finish().await;
}

/// A check whose query finds nothing holds the run at its first slice, as a query without
/// data does: ten samples say so, and the run is never promoted.
#[tokio::test]
async fn a_check_without_data_holds_the_run() {
    let w = world(
        "checks-nodata",
        json!([{"name": "orders", "query": r#"sum(rate(orders_total{workload="{{workload}}"}[1m]))"#, "min": 1}]),
    )
    .await;
    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0"}),
        "example.com/web:2",
    )
    .await;
    let run = w
        .wait(
            "ten samples without the check's value",
            Duration::from_secs(60),
            async || {
                let r = w.run().await?;
                let st = r.status.clone()?;
                let blind = st
                    .samples
                    .iter()
                    .filter(|s| {
                        s.checks.iter().any(|c| {
                            c.verdict == Verdict::NoData
                                && c.message.as_deref().is_some_and(|m| {
                                    m.contains("the check orders's query returned an empty vector")
                                })
                        })
                    })
                    .count();
                (blind >= 10).then_some(r)
            },
        )
        .await;
    let st = run.status.expect("status");
    assert_eq!((st.phase, st.step), (Phase::Progressing, 0));
    w.finish().await;
}
