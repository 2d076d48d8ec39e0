//! The pause gate (issue #17 point 1): with the chart's MutatingAdmissionPolicy in force a
//! governed Deployment is left unpaused between runs and a new template is paused in the
//! write that brings it; without it (a namespace the test copy's binding leaves out, as a
//! cluster without the policy) governed Deployments stay paused between runs. In both modes
//! not one pod of a new template starts before the verdict. The operator proves the gate with
//! a server-side dry-run, says where it stands in the policy's `PauseGate` condition and the
//! `rollguard_pause_gate` metric, notices when it goes away and warns when a template got
//! past it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use rollguard::api::run::Phase;
use serde_json::json;

use crate::support::admission::UNGATED;
use crate::support::world::{APP, World};

fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// The policy's `PauseGate` condition: (status, reason, message).
async fn gate_condition(w: &World) -> Option<(String, String, String)> {
    let p = w.policies().get("shop").await.ok()?;
    p.status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == "PauseGate")
        .map(|c| (c.status, c.reason, c.message))
}

async fn wait_gate(w: &World, in_force: bool) -> String {
    let (status, reason) = if in_force {
        ("True", "InForce")
    } else {
        ("False", "NotInForce")
    };
    let series = format!("rollguard_pause_gate{{namespace=\"{}\"}}", w.n());
    w.wait(
        &format!(
            "PauseGate {status} ({reason}) and {series} {}",
            u8::from(in_force)
        ),
        Duration::from_secs(60),
        async || {
            let (s, r, m) = gate_condition(w).await?;
            let metric = w.op().metric(&series).await?;
            (s == status && r == reason && metric == f64::from(u8::from(in_force))).then_some(m)
        },
    )
    .await
}

/// Every pod of `web`'s own ReplicaSets (not the canary's) that ever exists with `image`,
/// seen through a watch from now on.
fn watch_template_pods(client: &Client, ns: &str, image: &str) -> Arc<Mutex<PodsSeen>> {
    let seen = Arc::new(Mutex::new(PodsSeen::default()));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (image, record) = (image.to_string(), seen.clone());
    tokio::spawn(async move {
        let mut stream = watcher(pods, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(p)) = stream.next().await {
            let runs_image = p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .any(|c| c.image.as_deref() == Some(image.as_str()))
            });
            if !runs_image {
                continue;
            }
            let canary = p.labels().get("rollguard.dev/role").map(String::as_str) == Some("canary");
            let mut s = record.lock().expect("lock");
            if canary {
                s.canary.insert(p.name_any());
            } else {
                s.template.insert(p.name_any());
            }
        }
    });
    seen
}

#[derive(Default, Debug)]
struct PodsSeen {
    /// Pods of the governed Deployment's new template.
    template: BTreeSet<String>,
    /// Pods of the canary (the same template, under rollguard's canary Deployment).
    canary: BTreeSet<String>,
}

#[tokio::test]
async fn no_pod_of_a_new_template_starts_before_its_verdict_with_the_gate_or_without() {
    for gated in [true, false] {
        let mut b = World::builder("gate");
        if !gated {
            b = b.ungated();
        }
        let w = b.build().await;
        // Idle: unpaused under the gate (Healthy to Argo CD, Current to kstatus), paused
        // without it; the policy and the metric say which mode holds, and why.
        assert_eq!(paused(&w.deployment().await), !gated, "gated {gated}");
        let why = wait_gate(&w, gated).await;
        let proof = if gated {
            "came back paused"
        } else {
            "came back unpaused"
        };
        assert!(
            why.contains(proof) && why.contains("deployment/web"),
            "{why}"
        );
        let log = std::fs::read_to_string(&w.op().log).expect("the operator log");
        let said = if gated {
            "the pause gate is in force"
        } else {
            "the pause gate is not in force"
        };
        assert!(log.contains(said), "the operator's log says {said:?}");

        // A bad change. Its write comes back paused: under the gate, paused by admission in
        // the same write (the Deployment was unpaused before it).
        let seen = watch_template_pods(&w.client, w.n(), "example.com/web:2");
        let change = json!({"spec": {"template": {
            "metadata": {"annotations": {"sim.rollguard.dev/error-rate": "0.5", "rollguard.dev/change-origin": "ai"}},
            "spec": {"containers": [{"name": "app", "image": "example.com/web:2"}]}
        }}});
        let answer = w
            .deployments()
            .patch(APP, &PatchParams::default(), &Patch::Strategic(change))
            .await
            .expect("the template change");
        assert!(
            paused(&answer),
            "the change's own write is paused (gated {gated})"
        );
        w.wait_phase(Phase::RolledBack, Duration::from_secs(90))
            .await;
        // Under the gate, the admission stamp names the change's author in RunStarted.
        let started = w.events("RunStarted").await;
        let note = started
            .first()
            .and_then(|e| e.note.clone())
            .unwrap_or_default();
        assert_eq!(note.contains("; changed by "), gated, "{note}");
        // The canary's pods ran the new template (the watch sees them); the Deployment's own
        // ReplicaSets started none of it, before the verdict or at it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        {
            let s = seen.lock().expect("lock");
            assert!(
                !s.canary.is_empty(),
                "the watch saw the canary's pods: {s:?}"
            );
            assert!(
                s.template.is_empty(),
                "pods of the new template before the verdict (gated {gated}): {s:?}"
            );
        }
        assert!(
            paused(&w.deployment().await),
            "a rolled-back template stays paused"
        );
        // Reverted in Git: the stable template again, unpaused under the gate.
        w.revert().await;
        w.wait(
            "the reverted Deployment in its between-runs state",
            Duration::from_secs(30),
            async || {
                let d = w.deployment().await;
                (paused(&d) != gated
                    && d.annotations()
                        .get("rollguard.dev/verdict")
                        .map(String::as_str)
                        == Some("Steady"))
                .then_some(())
            },
        )
        .await;
        w.finish().await;
    }
}

/// Whether an administrator's dry-run of a template change on `web` comes back paused.
async fn dry_run_paused(w: &World) -> bool {
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let change = json!({"spec": {"template": {"metadata": {"annotations": {"check": "1"}}}}});
    let d = w
        .deployments()
        .patch(APP, &dry, &Patch::Merge(&change))
        .await
        .expect("a dry-run template change");
    paused(&d)
}

async fn set_ungated(w: &World, ungated: bool) {
    crate::support::label_namespace(&w.client, w.n(), UNGATED, ungated.then_some("true")).await;
    w.wait(
        "the API server to apply the gate's binding to the namespace as labelled",
        Duration::from_secs(30),
        async || (dry_run_paused(w).await != ungated).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn a_gate_that_goes_away_is_noticed_and_a_deployment_is_paused_between_runs_again() {
    let w = World::builder("gate-gone")
        .operator_args(&["--pause-gate-check-interval", "2s"])
        .build()
        .await;
    wait_gate(&w, true).await;
    assert!(!paused(&w.deployment().await));
    // The gate no longer covers the namespace: within the check interval the operator proves
    // it gone and pauses the idle Deployment.
    set_ungated(&w, true).await;
    let why = wait_gate(&w, false).await;
    assert!(why.contains("came back unpaused"), "{why}");
    w.wait(
        "the idle Deployment paused again",
        Duration::from_secs(10),
        async || paused(&w.deployment().await).then_some(()),
    )
    .await;
    // Back again: unpaused again.
    set_ungated(&w, false).await;
    wait_gate(&w, true).await;
    w.wait(
        "the idle Deployment unpaused again",
        Duration::from_secs(10),
        async || (!paused(&w.deployment().await)).then_some(()),
    )
    .await;
    w.finish().await;
}

#[tokio::test]
async fn a_template_that_got_past_the_gate_is_paused_on_sight_and_named() {
    // The operator believes its proof for 10 minutes: the template lands in that window.
    let w = World::builder("gate-past")
        .operator_args(&["--pause-gate-check-interval", "10m"])
        .build()
        .await;
    wait_gate(&w, true).await;
    set_ungated(&w, true).await;
    w.deploy("0.001", "example.com/web:2", Some("human")).await;
    let ev = w
        .wait(
            "a Warning UngatedChange Event",
            Duration::from_secs(30),
            async || w.events("UngatedChange").await.into_iter().next(),
        )
        .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let note = ev.note.unwrap_or_default();
    assert!(
        note.contains("arrived while the Deployment was unpaused") && note.contains("pause gate"),
        "{note}"
    );
    // Paused on sight (before the Event), the gate proven again (gone), and the change still
    // gets its run.
    assert!(paused(&w.deployment().await), "paused before the Event");
    wait_gate(&w, false).await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    assert_eq!(run.spec.tier.name, "standard");
    // Without the gate, the promoted Deployment is paused between runs.
    w.wait(
        "the promoted Deployment paused between runs",
        Duration::from_secs(20),
        async || paused(&w.deployment().await).then_some(()),
    )
    .await;
    w.finish().await;
}
