//! Faults injected into the real components mid-run. This file's tests stop shared
//! components (Prometheus), so they run one at a time: `cargo test` runs test binaries one
//! after another, and this binary's tests are serialised by a lock.
#![cfg(feature = "e2e")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::json;
use support::scenario::setup;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("cluster.sh");
    assert!(
        out.status.success(),
        "cluster.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn newest_run(api: &Api<RolloutRun>) -> Option<RolloutRun> {
    let mut runs = api.list(&ListParams::default()).await.ok()?.items;
    runs.sort_by_key(|r| r.creation_timestamp().map(|t| t.0));
    runs.pop()
}

#[tokio::test]
async fn prometheus_down_holds_the_run_and_it_continues_when_back() {
    let _serial = SERIAL.lock().await;
    let (client, ns, op, _sim) = setup("promdown", 1).await;
    let runs: Api<RolloutRun> = Api::namespaced(client.clone(), &ns.name);
    // Stop Prometheus before the change, so no sample can pass while it is away.
    cluster(&["stop", "prometheus"]);
    let stopped_at = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:2"}]}}}});
    Api::<Deployment>::namespaced(client.clone(), &ns.name)
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("new template");
    let held = support::wait_for(
        Duration::from_secs(30),
        "the run to say Prometheus is unreachable",
        async || {
            let r = newest_run(&runs).await?;
            let c = r
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Analysis")?
                .clone();
            (c.status == "False" && c.reason == "QueryFailed" && c.message.contains("unreachable"))
                .then_some(r)
        },
    )
    .await;
    // Well past the whole plan (6 s of pauses), it has not moved past its first step.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let r = newest_run(&runs).await.expect("run");
    let st = r.status.clone().expect("status");
    assert_eq!(st.phase, Phase::Progressing, "{st:?}");
    assert_eq!(st.step, 0, "never advances while blind");
    let waiting = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Waiting")
        .expect("a Waiting condition");
    assert_eq!(waiting.reason, "WaitingForEvidence", "{waiting:?}");
    assert!(
        st.samples.iter().all(|s| s.verdict == "Error"),
        "{:?}",
        st.samples
    );
    assert_eq!(held.name_any(), r.name_any());
    let errors = op
        .metric("rollguard_prometheus_queries_total{outcome=\"prometheus_unreachable\"}")
        .await;
    assert!(
        errors.unwrap_or(0.0) >= 5.0,
        "one failed query per interval: {errors:?}"
    );
    println!(
        "Prometheus down for {:.0}s: run held at step 1 with {} failed samples",
        stopped_at.elapsed().as_secs_f64(),
        st.sample_count
    );
    cluster(&["start", "prometheus"]);
    support::wait_for(
        Duration::from_secs(90),
        "the run to succeed after Prometheus returns",
        async || {
            let r = newest_run(&runs).await?;
            (r.status?.phase == Phase::Succeeded).then_some(())
        },
    )
    .await;
    ns.cleanup().await;
}
