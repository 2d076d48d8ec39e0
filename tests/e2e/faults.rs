//! Faults injected into the real components mid-run. These tests stop or change what every
//! test shares (Prometheus, the API server, a CRD), so each holds the cluster exclusively:
//! they run one at a time, with no other test running.

use std::process::Command;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollguard::api::run::{Phase, Verdict};
use serde_json::json;

use crate::support::world::{World, holds_over, newest_run};
use crate::support::{self, claim};

pub(crate) fn cluster(args: &[&str]) {
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

#[tokio::test]
async fn prometheus_down_holds_the_run_and_it_continues_when_back() {
    let _cluster = claim::exclusive().await;
    let w = World::builder("promdown").build().await;
    let runs = w.runs();
    // Stop Prometheus before the change, so no sample can pass while it is away.
    cluster(&["stop", "prometheus"]);
    let stopped_at = Instant::now();
    w.new_template().await;
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
    // Over 8 more (failed) samples, well past the whole plan (6 s of pauses), it never moves
    // past its first step.
    let st = holds_over(&runs, 8).await;
    let r = newest_run(&runs).await.expect("run");
    let waiting = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Waiting")
        .expect("a Waiting condition");
    assert_eq!(waiting.reason, "WaitingForEvidence", "{waiting:?}");
    assert!(
        st.samples.iter().all(|s| s.verdict == Verdict::Error),
        "{:?}",
        st.samples
    );
    assert_eq!(held.name_any(), r.name_any());
    let errors = w
        .op()
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
    w.finish().await;
}

#[tokio::test]
async fn an_api_server_outage_mid_run_is_ridden_out() {
    let _cluster = claim::exclusive().await;
    // 10 s pauses: no step starts near the moment the API server goes away, so every step's
    // Event is published while it is up, and each must be there exactly once.
    let mut w = World::builder("apidown")
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "10s"}, {"weight": "50%", "pause": "10s"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let runs = w.runs();
    w.new_template().await;
    let before = support::wait_for(Duration::from_secs(30), "the first slice", async || {
        let r = newest_run(&runs).await?;
        let st = r.status.clone()?;
        (st.step_started_at.is_some() && st.sample_count > 0).then_some(st)
    })
    .await;
    // Its Event is out before the outage.
    let step = format!("step {}/2", before.step + 1);
    support::wait_for(Duration::from_secs(30), "the step's Event", async || {
        w.events("StepStarted")
            .await
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.starts_with(&step)))
            .then_some(())
    })
    .await;
    // The operator goes blind for 30 s: no watch, no write.
    cluster(&["stop", "kube-apiserver"]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    cluster(&["start", "kube-apiserver"]);
    let back = Instant::now();
    assert!(
        w.op_mut().alive(),
        "the operator survived the outage\n{}",
        w.op().tail(30)
    );
    // Nothing was written while it was blind, so nothing was promoted: with 3 s pauses the
    // run would have ended long ago, yet it is still in its steps.
    let back_at = jiff::Timestamp::now();
    let at_return = newest_run(&runs)
        .await
        .expect("run")
        .status
        .expect("status");
    assert_eq!(at_return.phase, Phase::Progressing, "{at_return:?}");
    assert!(at_return.step <= before.step + 1, "{at_return:?}");
    // It reconnects by itself: the next sample written after the outage.
    let n = at_return.sample_count;
    w.wait(
        "a sample written after the outage",
        Duration::from_secs(60),
        async || (newest_run(&runs).await?.status?.sample_count > n).then_some(()),
    )
    .await;
    let reconnected = back.elapsed();
    // The run ends once the control plane's own controllers have caught up too (their
    // informers back off for a minute or more after a full outage: kube-controller-manager
    // refuses its stale cache meanwhile), which is why the wait below is long: alone it takes
    // about 75 s, but once in CI it took more than 180 s. A timeout prints the run, the
    // Deployments and every log, to show which controller was behind. Restarting them
    // instead is not reliable here: their ports are in the ephemeral range, and another
    // process's outgoing connection can take one while it is free.
    let done = w
        .wait(
            "the run to succeed after the outage",
            Duration::from_secs(300),
            async || {
                let st = newest_run(&runs).await?.status?;
                (st.phase == Phase::Succeeded).then_some(st)
            },
        )
        .await;
    let succeeded = back.elapsed();
    // It went on from fresh evidence: its last sample was taken after the outage.
    let last = done.samples.last().expect("samples").time.0;
    assert!(
        last.as_second() >= back_at.as_second(),
        "the last sample ({last}) predates the API server's return ({back_at})"
    );
    // No step was done twice: one StepStarted per step. The Promoted Event is published after
    // the status write that ends the run, so it may come a moment after the phase (seconds on
    // a loaded machine): wait for it, then count.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), w.n());
    let list = async || -> Vec<(String, String)> {
        events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("rollguard"))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    };
    let promoted = support::poll(
        Duration::from_secs(30),
        Duration::from_millis(500),
        async || {
            let ours = list().await;
            ours.iter().any(|(r, _)| r == "Promoted").then_some(ours)
        },
    )
    .await;
    // Without it the counts below fail and print what there is.
    let ours = match promoted {
        Some(ours) => ours,
        None => list().await,
    };
    // Events are published after the status write that records the transition, so none is
    // ever sent twice; no step started near the outage, so none was lost either: each step
    // started exactly once (zero would fail too).
    for note in ["step 1/2", "step 2/2"] {
        let n = ours
            .iter()
            .filter(|(r, m)| r == "StepStarted" && m.starts_with(note))
            .count();
        assert_eq!(n, 1, "{note} started {n} times: {ours:#?}");
    }
    assert_eq!(
        ours.iter().filter(|(r, _)| r == "Promoted").count(),
        1,
        "{ours:#?}"
    );
    println!(
        "kube-apiserver down 30 s at step {}: the operator wrote its next sample {:.1}s after the API server was back; the run succeeded {:.0}s after it was back, with {} samples",
        before.step + 1,
        reconnected.as_secs_f64(),
        succeeded.as_secs_f64(),
        done.sample_count
    );
    w.finish().await;
}

/// Serves `rolloutpolicies` under an extra, schema-less version `v1alpha0` (as an older CRD
/// would) while the test runs, and takes it away again.
struct OldVersion {
    client: kube::Client,
}

impl OldVersion {
    async fn serve(client: &kube::Client) -> OldVersion {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let add = json!([{"op": "add", "path": "/spec/versions/-", "value": {
            "name": "v1alpha0", "served": true, "storage": false,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
        }}]);
        let patch: json_patch::Patch = serde_json::from_value(add).expect("patch");
        crds.patch(
            "rolloutpolicies.rollguard.dev",
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .expect("adding v1alpha0");
        OldVersion {
            client: client.clone(),
        }
    }

    async fn remove(self) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let crd = crds
            .get("rolloutpolicies.rollguard.dev")
            .await
            .expect("crd");
        let i = crd
            .spec
            .versions
            .iter()
            .position(|v| v.name == "v1alpha0")
            .expect("v1alpha0 is there");
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/spec/versions/{i}/name"), "value": "v1alpha0"},
            {"op": "remove", "path": format!("/spec/versions/{i}")}
        ]))
        .expect("patch");
        crds.patch(
            "rolloutpolicies.rollguard.dev",
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
        .expect("removing v1alpha0");
    }
}

#[tokio::test]
async fn an_object_the_operator_cannot_read_is_reported_and_skipped() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let _cluster = claim::exclusive().await;
    let client = support::client().await;
    let old = OldVersion::serve(&client).await;
    let ns = support::test_namespace(&client, "unreadable").await;
    // A policy written through the schema-less version: its spec is nothing the types know.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("rollguard.dev", "v1alpha0", "RolloutPolicy"),
        "rolloutpolicies",
    );
    let old_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "rollguard.dev/v1alpha0", "kind": "RolloutPolicy",
        "metadata": {"name": "from-an-older-schema"},
        "spec": {"selector": "app=web", "analysis": 5}
    }))
    .expect("object");
    support::wait_for(
        Duration::from_secs(20),
        "v1alpha0 to be served",
        async || {
            old_api
                .create(&PostParams::default(), &broken)
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
    // The operator starts with it in its namespace, governs the service next to it, and
    // takes a change through to promotion.
    let w = World::builder("unreadable").namespace(ns).build().await;
    let runs = w.runs();
    w.new_template().await;
    support::wait_for(Duration::from_secs(60), "the run to succeed", async || {
        (newest_run(&runs).await?.status?.phase == Phase::Succeeded).then_some(())
    })
    .await;
    let skipped = w
        .op()
        .metric("rollguard_undecodable_objects_total{kind=\"RolloutPolicy\"}")
        .await
        .unwrap_or(0.0);
    assert!(skipped >= 1.0, "reported in the metric: {skipped}");
    let log = w.op().tail(400);
    let line = log
        .lines()
        .find(|l| l.contains("from-an-older-schema") && l.contains("cannot read"))
        .unwrap_or_else(|| panic!("a log line naming the object:\n{log}"));
    println!("unreadable policy: the run succeeded next to it; reported as: {line}");
    old_api
        .delete("from-an-older-schema", &Default::default())
        .await
        .expect("deleting it");
    w.finish().await;
    old.remove().await;
}
