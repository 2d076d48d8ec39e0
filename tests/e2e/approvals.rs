//! Four eyes where the approval admission policy does not act (issue #14 point 4): the
//! operator itself does not count the author's approval, counts another approver's, and
//! history pruning keeps the approved run. The admission side (the same refusals at the API
//! server) is in `cli.rs`.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use rollguard::api::run::Phase;
use serde_json::json;

use crate::support;
use crate::support::admission::{self, Policy, UNCHECKED_APPROVALS};
use crate::support::procs::rollguard_bin;
use crate::support::world::{APP, World, run_phase};

#[tokio::test]
async fn without_the_admission_policy_the_operator_does_not_count_the_authors_approval() {
    let w = World::builder("approvals")
        .tiers(json!([
            {"name": "ai-assisted", "steps": [{"weight": "10%", "pause": "2s"}],
             "maxErrorRate": "5%", "requireApproval": true,
             "match": {"annotations": {"rollguard.dev/change-origin": ["ai-assisted"]}}},
            {"name": "standard", "steps": [{"weight": "10%", "pause": "2s"}], "maxErrorRate": "5%"}
        ]))
        .build()
        .await;
    let client = w.client.clone();
    // The policy is installed (other tests rely on it) but this namespace is left out of it.
    admission::in_force(&client, Policy::Approvals).await;
    support::label_namespace(&client, w.n(), UNCHECKED_APPROVALS, Some("true")).await;
    w.policies()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"historyLimit": 1}})),
        )
        .await
        .expect("historyLimit 1");
    w.approvers(&["bob"]).await;

    w.deploy("0.001", "example.com/web:2", Some("ai-assisted"))
        .await;
    let r = w
        .wait_phase(Phase::AwaitingApproval, Duration::from_secs(90))
        .await;
    let admin = r
        .spec
        .author
        .clone()
        .expect("the pause gate stamped the author");
    // The author approves with a raw patch, well formed and in their own name: nothing at
    // admission stops it here.
    let own = json!([{"op": "add", "path": "/spec/approvals", "value": [{
        "user": admin, "time": "2026-01-01T00:00:00Z", "run": r.name_any(),
        "revision": r.spec.canary_revision, "step": r.status.as_ref().map_or(0, |s| s.step),
    }]}]);
    w.runs()
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(own).expect("a JSON patch")),
        )
        .await
        .expect("no admission policy refuses it in this namespace");
    // The operator reads it and says why it does not count (the positive evidence that it
    // has seen the approval), then the run keeps waiting over a window of further passes.
    let (_, waiting) = w
        .wait(
            "the Waiting condition to say the approval is not counted",
            Duration::from_secs(30),
            async || {
                w.run_condition("Waiting")
                    .await
                    .filter(|(_, c)| c.reason == "ApprovalNotCounted")
            },
        )
        .await;
    assert!(
        waiting
            .message
            .contains(&format!("{admin} wrote the change")),
        "{}",
        waiting.message
    );
    let samples =
        |r: &rollguard::api::run::RolloutRun| r.status.as_ref().map_or(0, |s| s.sample_count);
    let from = samples(&w.run().await.expect("the run"));
    w.wait(
        "three more samples while the run still awaits approval",
        Duration::from_secs(60),
        async || {
            let now = w.run().await?;
            assert_eq!(run_phase(&now), Phase::AwaitingApproval, "not promoted");
            (samples(&now) >= from + 3).then_some(())
        },
    )
    .await;
    let warned = w.events("ApprovalNotCounted").await;
    assert_eq!(warned.len(), 1, "one Warning Event: {warned:?}");
    assert_eq!(warned[0].type_.as_deref(), Some("Warning"));

    // Another approver's approval counts.
    let out = tokio::process::Command::new(rollguard_bin())
        .args(["approve", APP, "-n", w.n(), "--as", "bob"])
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .await
        .expect("rollguard approve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;
    let approved = w.events("Approved").await;
    assert!(
        approved.iter().any(|e| e
            .note
            .as_deref()
            .is_some_and(|m| m.contains(&format!("approved by bob (the change is {admin}'s)")))),
        "{approved:?}"
    );

    // Two more changes without approvals: with historyLimit 1 one of them is pruned, the
    // approved run never.
    for image in ["example.com/web:3", "example.com/web:4"] {
        w.deploy("0.001", image, None).await;
        w.wait("the change promoted", Duration::from_secs(90), async || {
            let now = w.run().await?;
            (now.spec.canary_revision != r.spec.canary_revision
                && run_phase(&now) == Phase::Succeeded)
                .then_some(())
        })
        .await;
    }
    w.wait(
        "history pruned to one run without approvals",
        Duration::from_secs(30),
        async || {
            let runs = w.runs().list(&Default::default()).await.ok()?.items;
            let plain = runs.iter().filter(|r| r.spec.approvals.is_empty()).count();
            (plain == 1).then_some(())
        },
    )
    .await;
    let kept = w
        .runs()
        .get(&r.name_any())
        .await
        .expect("the approved run is kept");
    assert_eq!(kept.spec.approvals.len(), 2);
    w.finish().await;
}
