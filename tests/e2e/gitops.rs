//! What a GitOps tool reads on the governed Deployment itself (issue #17): rollguard's verdict
//! in annotations, about the Deployment's current generation, through a rollback, a
//! promotion and a scale.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support;
use crate::support::world::{APP, World};

/// The verdict, when it is about the Deployment's current generation.
fn current_verdict(d: &Deployment) -> Option<(String, String)> {
    let a = d.annotations();
    let generation = a.get("rollguard.dev/verdict-generation")?;
    (generation == &d.metadata.generation.unwrap_or(0).to_string()).then(|| {
        (
            a.get("rollguard.dev/verdict").cloned().unwrap_or_default(),
            a.get("rollguard.dev/verdict-message")
                .cloned()
                .unwrap_or_default(),
        )
    })
}

async fn wait_verdict(w: &World, state: &str, says: &str) -> String {
    w.wait(
        &format!("the verdict {state} ({says}) about the current generation"),
        Duration::from_secs(90),
        async || {
            let (s, m) = current_verdict(&w.deployment().await)?;
            (s == state && m.contains(says)).then_some(m)
        },
    )
    .await
}

#[tokio::test]
async fn the_deployment_carries_the_verdict_about_its_current_generation() {
    let tiers = json!([{"name": "standard",
        "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}],
        "maxErrorRate": "2%"}]);
    let w = World::builder("verdict")
        .analysis(json!({"prometheus": {"address": support::prometheus_url()}, "minRequests": 100}))
        .tiers(tiers)
        .build()
        .await;
    // "adopted; stable revision <r>", then "revision <r> is stable" at the next pass.
    wait_verdict(&w, "Steady", "stable").await;
    // A bad change: judged, then rolled back (stale meanwhile: the new generation is not
    // judged until rollguard has looked).
    w.deploy("0.2", "example.com/web:2", None).await;
    wait_verdict(&w, "Progressing", "canary").await;
    let m = wait_verdict(&w, "RolledBack", "rolled back").await;
    assert!(m.contains("errors"), "{m}");
    // A good one: promoted, and steady on it.
    w.deploy("0.001", "example.com/web:3", None).await;
    // "revision <r> promoted" from the run's end, then "revision <r> is stable" between runs;
    // the old verdict is stale from the template change on, so this is the new one.
    let m = wait_verdict(&w, "Steady", "revision").await;
    assert!(m.contains("promoted") || m.contains("is stable"), "{m}");
    // A scale (as an HPA does) moves the generation: the verdict follows it.
    let before = w.deployment().await.metadata.generation.unwrap_or(0);
    w.deployments()
        .patch_scale(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .expect("scaling");
    // While the new pods come up the Deployment's status says it is short of updated
    // replicas, so the verdict may say Progressing ("rolling out the stable revision") for a
    // moment, as Argo CD's own Deployment check does; it settles on Steady about the scaled
    // generation.
    let m = w
        .wait(
            "the verdict Steady about the scaled generation",
            Duration::from_secs(60),
            async || {
                let d = w.deployment().await;
                if d.metadata.generation.unwrap_or(0) <= before {
                    return None;
                }
                let (s, m) = current_verdict(&d)?;
                (s == "Steady").then_some(m)
            },
        )
        .await;
    assert!(m.contains("is stable"), "{m}");
    w.finish().await;
}
