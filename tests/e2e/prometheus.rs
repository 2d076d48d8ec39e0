//! Prometheus answering badly: the real Prometheus refusing a query, returning NaN, returning
//! an empty vector, and answering later than the policy's timeout (behind a slow network).
//! In every case the run holds at its first step and never promotes, and the run's
//! `Analysis` condition names the cause; with `onNoData: rollback` an empty answer rolls the
//! canary back after `noDataLimit` samples.

use std::time::Duration;

use rollguard::api::run::{Phase, Verdict};
use serde_json::{Value, json};

use crate::support;
use crate::support::world::{REQUESTS, World, holds_over, newest_run};

/// Starts a governed service whose policy has `analysis` merged in, changes its template,
/// waits for the run's `Analysis` condition to have `reason` and a message containing
/// `cause`, then checks that the run stays at its first step well past its whole plan and
/// never promotes, every sample with `verdict`.
async fn holds(prefix: &str, analysis: Value, reason: &str, cause: &str, verdict: &str) {
    let w = World::builder(prefix).analysis(analysis).build().await;
    let runs = w.runs();
    w.new_template().await;
    let condition = support::wait_for(
        Duration::from_secs(40),
        &format!("the run's Analysis condition to say {reason}: {cause}"),
        async || {
            let r = newest_run(&runs).await?;
            let c = r
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Analysis")?;
            (c.status == "False" && c.reason == reason && c.message.contains(cause)).then_some(c)
        },
    )
    .await;
    // The plan's pauses add up to 6 s; over 8 more samples it still holds at its first step.
    let st = holds_over(&runs, 8).await;
    let weight = st.weight.unwrap_or_default().to_string();
    assert_eq!(weight, "10%", "the canary keeps its first slice");
    println!(
        "{prefix}: held at step 1 for {} samples; condition: {}",
        st.sample_count, condition.message
    );
    let verdicts: Vec<&str> = st.samples.iter().map(|s| s.verdict.as_str()).collect();
    assert!(verdicts.iter().all(|v| *v == verdict), "{verdicts:?}");
    w.finish().await;
}

#[tokio::test]
async fn a_query_prometheus_refuses_holds_the_run() {
    // rate() of an instant vector: Prometheus answers 400 bad_data.
    holds(
        "prom-refused",
        json!({"errors": r#"rate(sum(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code=~"5.."}))"#}),
        "QueryFailed",
        "Prometheus rejected the query (bad_data)",
        "Error",
    )
    .await;
}

#[tokio::test]
async fn a_nan_answer_holds_the_run() {
    // 0/0 for every error count.
    holds(
        "prom-nan",
        json!({"errors": r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code=~"5.."}[{{elapsed}}])) * 0 / 0"#}),
        "NoData",
        "NaN",
        "NoData",
    )
    .await;
}

#[tokio::test]
async fn an_empty_answer_holds_the_run() {
    holds(
        "prom-empty",
        json!({"requests": r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="nothing-here"}[{{elapsed}}]))"#}),
        "NoData",
        "empty",
        "NoData",
    )
    .await;
}

#[tokio::test]
async fn a_slow_prometheus_holds_the_run() {
    // The real Prometheus, behind a network that holds each connection for 4 s; the policy
    // waits 2 s.
    let upstream = support::prometheus_url()
        .trim_start_matches("http://")
        .to_string();
    let slow = support::slowproxy::start(upstream, Duration::from_secs(4)).await;
    holds(
        "prom-slow",
        json!({"prometheus": {"address": slow, "timeout": "2s"}, "requests": REQUESTS}),
        "QueryFailed",
        "did not answer within 2s",
        "Error",
    )
    .await;
}

#[tokio::test]
async fn an_empty_answer_rolls_back_when_the_policy_says_so() {
    let w = World::builder("prom-empty-rb")
        .analysis(json!({
            "requests": r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="nothing-here"}[{{elapsed}}]))"#,
            "onNoData": "rollback",
            "noDataLimit": 3,
        }))
        .build()
        .await;
    let runs = w.runs();
    w.new_template().await;
    let r = support::wait_for(Duration::from_secs(40), "a rollback", async || {
        let r = newest_run(&runs).await?;
        let phase = r.status.as_ref()?.phase;
        matches!(phase, Phase::RolledBack | Phase::Succeeded).then_some(r)
    })
    .await;
    let st = r.status.clone().expect("status");
    assert_eq!(st.phase, Phase::RolledBack, "{st:?}");
    assert_eq!(st.step, 0);
    let no_data = st
        .samples
        .iter()
        .filter(|s| s.verdict == Verdict::NoData)
        .count();
    assert_eq!(no_data, 3, "rolled back on the third empty sample: {st:?}");
    println!(
        "empty answers with onNoData: rollback: {:?}: {}",
        st.reason,
        st.message.unwrap_or_default()
    );
    w.finish().await;
}
