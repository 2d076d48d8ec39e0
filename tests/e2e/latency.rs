//! Latency objectives against the real Prometheus: the traffic simulator times every request
//! (a log-normal latency whose median is the pod annotation `sim.rollguard.dev/latency`) into
//! a real histogram, and a tier with `latency.objective` judges the requests slower than it by
//! the sequential test, beside errors, against stable's share of slow requests.

use std::time::Duration;

use rollguard::api::run::{Phase, Verdict};
use serde_json::json;

use crate::support;
use crate::support::world::{Router, World};

/// The simulator's own histogram (Prometheus' default bounds), by Deployment.
const BUCKETS: &str = r#"sum by (le) (increase(sim_request_duration_seconds_bucket{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))"#;

/// A sequential tier with a 250ms objective: good is at most 1% of requests slower (or
/// stable's share), bad 5%. Errors: a fixed p0 of 0.1% against 1%.
fn tiers(objective: &str) -> serde_json::Value {
    json!([{
        "name": "ai-assisted",
        "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}],
        "maxErrorRate": "1%",
        "decision": "sequential",
        "sequential": {"p0": "0.1%", "decideWithin": "5m"},
        "latency": {"objective": objective, "maxSlowRate": "5%", "p0": "1%"}
    }])
}

async fn world(name: &str, objective: &str) -> World {
    World::builder(name)
        .router(Router::Gateway)
        .analysis(json!({
            "latency": {"buckets": BUCKETS},
            "prometheus": {"address": support::prometheus_url()},
            "minRequests": 100,
        }))
        .tiers(tiers(objective))
        .build()
        .await
}

/// The stable pods answer in 50ms (the median; the simulator's default), so 0.06% of their
/// requests are slower than 250ms. A canary three times slower has 15% of them slower: it is
/// rolled back at its first slice by the slow requests' test, its errors clean. A canary as
/// fast as stable is promoted, both tests having accepted it at every slice.
#[tokio::test]
async fn a_slow_canary_is_rolled_back_and_a_fast_one_promoted() {
    let w = world("latency", "250ms").await;
    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "150ms"}),
        "example.com/web:2",
    )
    .await;
    let run = w
        .wait_phase(Phase::RolledBack, Duration::from_secs(120))
        .await;
    let st = run.status.clone().expect("status");
    assert_eq!(st.step, 0, "rolled back at its first slice");
    assert_eq!(st.reason.as_deref(), Some("SlowRequestsTestRejected"));
    let evidence = st.evidence.clone().expect("evidence");
    assert_eq!(evidence.errors, Some(0), "{evidence:?}");
    let slow = evidence.latency.clone().expect("latency evidence");
    assert_eq!(
        (slow.objective.as_str(), slow.verdict),
        ("250ms", Verdict::Fail)
    );
    let query = slow.query.clone().unwrap_or_default();
    assert!(
        query.contains("sim_request_duration_seconds_bucket") && query.contains("web-canary"),
        "{query}"
    );
    // Stable was measured in the same window, and its share of slow requests was small.
    let (stable_n, stable_slow) = (
        slow.stable_requests.expect("stable requests"),
        slow.stable_slow.expect("stable slow"),
    );
    assert!(stable_n > 0 && stable_slow * 100 < stable_n, "{slow:?}");
    for s in &st.samples {
        let l = s.latency.as_ref();
        println!(
            "  sample {}: {} requests, {} slow, verdict {:?}, statistic {:?}",
            s.time.0,
            l.and_then(|l| l.requests).unwrap_or_default(),
            l.and_then(|l| l.slow).unwrap_or_default(),
            l.map(|l| l.verdict),
            l.and_then(|l| l.statistic.clone()),
        );
    }
    println!(
        "slow canary: rolled back after {} requests, {} slower than 250ms ({}), stable {stable_slow} of {stable_n}; {}",
        slow.requests.unwrap_or_default(),
        slow.slow.unwrap_or_default(),
        slow.rate.clone().unwrap_or_default(),
        st.message.clone().unwrap_or_default()
    );

    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "50ms"}),
        "example.com/web:3",
    )
    .await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(180))
        .await;
    let st = run.status.expect("status");
    let accepted =
        |w: &Option<rollguard::api::run::TestWindow>| w.as_ref().and_then(|w| w.accepted_step);
    assert_eq!(accepted(&st.test), Some(1), "{:?}", st.test);
    assert_eq!(accepted(&st.latency_test), Some(1), "{:?}", st.latency_test);
    let judged: Vec<_> = st
        .samples
        .iter()
        .filter_map(|s| s.latency.clone())
        .collect();
    assert!(!judged.is_empty());
    assert!(
        judged.iter().all(|l| l.verdict != Verdict::Fail),
        "{judged:?}"
    );
    w.finish().await;
}

/// An objective between two of the histogram's bounds cannot be counted: every sample says
/// so, listing the bounds, and the run holds at its first slice (never promoted) while the
/// samples keep arriving.
#[tokio::test]
async fn an_objective_that_is_not_a_bound_holds_and_lists_the_bounds() {
    let w = world("latency-bound", "300ms").await;
    w.deploy_annotated(
        json!({"sim.rollguard.dev/error-rate": "0"}),
        "example.com/web:2",
    )
    .await;
    // Ten samples about the objective: positive evidence that the run was judged and held.
    let run = w
        .wait(
            "ten samples refusing the objective",
            Duration::from_secs(90),
            async || {
                let r = w.run().await?;
                let st = r.status.clone()?;
                let refused = st
                    .samples
                    .iter()
                    .filter(|s| {
                        s.latency.as_ref().is_some_and(|l| {
                            l.verdict == Verdict::Error
                                && l.message.as_deref().is_some_and(|m| {
                                    m.contains("the latency objective 0.3s is not a bucket bound")
                                        && m.contains("0.25s, 0.5s")
                                })
                        })
                    })
                    .count();
                (refused >= 10).then_some(r)
            },
        )
        .await;
    let st = run.status.expect("status");
    assert_eq!(st.phase, Phase::Progressing);
    assert_eq!(st.step, 0, "never past its first slice");
    let analysis = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Analysis")
        .expect("the Analysis condition");
    assert_eq!(analysis.reason, "QueryFailed", "{}", analysis.message);
    assert!(
        analysis.message.contains("bounds are 0.005s, 0.01s"),
        "{}",
        analysis.message
    );
    w.finish().await;
}
