//! Other writers on a governed Deployment (issue #15): a person who resumes it, reverts or
//! aborts it while it promotes, overrides the evidence, a policy that lets go of it while its
//! template is under trial, a second policy that selects it, and analysis that cannot see.
//! Each test asserts what the Deployment and the run end up as, on the real control plane.

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::{Value, json};

use crate::support::procs::rollguard_bin;
use crate::support::world::{APP, Builder, Router, World, run_phase};
use crate::support::{self, create};

fn tier(pause: &str) -> Value {
    json!([{"name": "standard", "steps": [{"weight": "10%", "pause": pause}, {"weight": "50%", "pause": pause}], "maxErrorRate": "2%"}])
}

fn world(prefix: &str, router: Router, tiers: Value) -> Builder {
    World::builder(prefix)
        .router(router)
        .analysis(json!({"prometheus": {"address": support::prometheus_url()}, "minRequests": 100}))
        .tiers(tiers)
}

/// Runs a command to completion; panics with its output when it fails.
async fn run(program: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running the command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program:?} {args:?}: {text}");
    text
}

async fn kubectl(args: &[&str]) -> String {
    run(std::path::Path::new("kubectl"), args).await
}

fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused) == Some(true)
}

/// The images of the Deployment's own pods (not the canary's), counted.
async fn stable_images(w: &World) -> std::collections::BTreeMap<String, usize> {
    let pods: Api<Pod> = Api::namespaced(w.deployments().into_client(), w.n());
    let mut by_image = std::collections::BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels("app=web,!rollguard.dev/role"))
        .await
        .expect("pods")
        .items
    {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let image = p
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.image)
            .unwrap_or_default();
        *by_image.entry(image).or_insert(0) += 1;
    }
    by_image
}

/// Replicas of the Deployment's own ReplicaSets running `image`.
async fn replicas_of(w: &World, image: &str) -> i32 {
    let sets: Api<ReplicaSet> = Api::namespaced(w.deployments().into_client(), w.n());
    sets.list(&ListParams::default())
        .await
        .expect("replicasets")
        .items
        .iter()
        .filter(|rs| {
            rs.owner_references().iter().any(|o| o.name == APP)
                && rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.spec.as_ref())
                    .is_some_and(|s| s.containers[0].image.as_deref() == Some(image))
        })
        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
        .sum()
}

/// A Deployment whose rolling update takes a while (one pod at a time, each ready for 4 s
/// before it counts), so a test can act while it promotes.
async fn slow_rollout(w: &World) {
    w.deployments()
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"minReadySeconds": 4,
                "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}})),
        )
        .await
        .expect("slowing the rollout");
}

/// Waits until the run promotes and the Deployment has started (not finished) rolling.
async fn mid_promotion(w: &World) -> RolloutRun {
    w.wait(
        "the run promoting mid-rollout",
        Duration::from_secs(120),
        async || {
            let r = w.run().await?;
            let d = w.deployment().await;
            let updated = d.status.as_ref()?.updated_replicas.unwrap_or(0);
            (run_phase(&r) == Phase::Promoting && !paused(&d) && (1..3).contains(&updated))
                .then_some(r)
        },
    )
    .await
}

/// The Deployment converged: rolled out, every pod of its own on `image`, and paused as it
/// is between runs (unpaused under the pause gate).
async fn converged_on(w: &World, image: &str, timeout: Duration) {
    w.wait(
        &format!("the Deployment to converge on {image}, as between runs"),
        timeout,
        async || {
            let d = w.deployment().await;
            let images = stable_images(w).await;
            (paused(&d) == w.paused_between_runs()
                && rollguard::governance::rollout_complete(&d)
                && images.len() == 1
                && images.get(image) == Some(&3))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_revert_while_promoting_converges_on_the_stable_revision() {
    let w = world("revertp", Router::Replicas, tier("2s")).build().await;
    slow_rollout(&w).await;
    w.deploy("0.001", "example.com/web:2", None).await;
    mid_promotion(&w).await;
    w.revert().await;
    w.wait_reason("Reverted", Duration::from_secs(30)).await;
    // No half rollout: the stable template rolls back out (and the Deployment is paused only
    // without the pause gate).
    converged_on(&w, "example.com/web:1", Duration::from_secs(90)).await;
    assert_eq!(w.run_count().await, 1, "no run for the stable template");
    w.finish().await;
}

#[tokio::test]
async fn abort_while_promoting_stops_the_rollout_and_undo_converges() {
    let w = world("abortp", Router::Replicas, tier("2s")).build().await;
    slow_rollout(&w).await;
    w.deploy("0.001", "example.com/web:2", None).await;
    let r = mid_promotion(&w).await;
    let said = run(
        &rollguard_bin(),
        &["abort", APP, "-n", w.n(), "--reason", "latency"],
    )
    .await;
    assert!(
        said.contains("while promoting")
            && said.contains("revert the pod template of deployment/web"),
        "{said}"
    );
    let ended = w.wait_phase(Phase::Aborted, Duration::from_secs(20)).await;
    assert_eq!(ended.name_any(), r.name_any());
    // The rollout stops where it stands: paused, the revision marked failed, both revisions'
    // pods still there (the abort does not change the template).
    let d = w
        .wait(
            "the Deployment paused",
            Duration::from_secs(10),
            async || {
                let d = w.deployment().await;
                paused(&d).then_some(d)
            },
        )
        .await;
    assert_eq!(
        d.annotations().get("rollguard.dev/failed-revision"),
        Some(&ended.spec.canary_revision)
    );
    // What the CLI said to do (revert the template, as a GitOps revert does) converges.
    w.revert().await;
    converged_on(&w, "example.com/web:1", Duration::from_secs(90)).await;
    w.finish().await;
}

#[tokio::test]
async fn releasing_a_template_under_trial_keeps_it_paused_until_someone_resumes_it() {
    let w = world("holdrel", Router::Gateway, tier("1h")).build().await;
    w.deploy("0.001", "example.com/web:2", None).await;
    w.wait("the 10% slice", Duration::from_secs(30), async || {
        (w.route_weights().await == (9, 1)).then_some(())
    })
    .await;
    // The Deployment leaves the policy's selector: it is released mid-run.
    w.deployments()
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/part-of": "other"}}})),
        )
        .await
        .expect("relabel");
    let ev = w
        .wait(
            "a ReleasedPaused Event",
            Duration::from_secs(30),
            async || w.events("ReleasedPaused").await.into_iter().next(),
        )
        .await;
    let note = ev.note.unwrap_or_default();
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert!(
        note.contains("still judging") && note.contains("kubectl rollout resume deployment/web"),
        "{note}"
    );
    w.wait(
        "traffic on stable, canary gone",
        Duration::from_secs(20),
        async || (w.route_weights().await == (1, 0) && w.canary().await.is_none()).then_some(()),
    )
    .await;
    let d = w.deployment().await;
    assert!(paused(&d), "the template under trial must not roll out");
    let ours: Vec<&String> = d
        .annotations()
        .keys()
        .filter(|k| k.starts_with("rollguard.dev/"))
        .collect();
    assert_eq!(ours, ["rollguard.dev/held"], "{:?}", d.annotations());
    assert_eq!(
        replicas_of(&w, "example.com/web:2").await,
        0,
        "no pod of the template under trial"
    );
    let r = w.run().await.expect("run");
    let st = r.status.expect("status");
    assert_eq!(st.reason.as_deref(), Some("Released"));
    assert!(
        st.message
            .as_deref()
            .is_some_and(|m| m.contains("stays paused"))
    );
    // Forcing it is the user's call: resumed, it rolls out and the note goes.
    kubectl(&["rollout", "resume", "deployment/web", "-n", w.n()]).await;
    w.wait(
        "the held note removed, the template rolled out",
        Duration::from_secs(60),
        async || {
            let d = w.deployment().await;
            (!d.annotations().contains_key("rollguard.dev/held")
                && rollguard::governance::rollout_complete(&d)
                && stable_images(&w).await.get("example.com/web:2") == Some(&3))
            .then_some(())
        },
    )
    .await;
    w.finish().await;
}

#[tokio::test]
async fn a_resume_by_hand_is_undone_and_the_user_named() {
    let w = world("resume", Router::Replicas, tier("1h")).build().await;
    // Two users with exactly what a resume needs (read and patch Deployments in the
    // namespace), and the chart's unpause stamp.
    let client = w.deployments().into_client();
    w.deployers(&["alice", "gitops-bot"]).await;
    support::admission::in_force(&client, support::admission::Policy::UnpauseStamp).await;
    w.deploy("0.001", "example.com/web:2", None).await;
    w.wait("the 10% slice", Duration::from_secs(30), async || {
        w.run().await?.status?.step_started_at.map(|_| ())
    })
    .await;
    // The API server loads the policy asynchronously: a server-side dry-run of the unpause
    // (which changes nothing) shows when it stamps.
    w.wait(
        "the unpause stamp in force",
        Duration::from_secs(30),
        async || {
            let out = tokio::process::Command::new("kubectl")
                .args([
                    "patch",
                    "deployment/web",
                    "-n",
                    w.n(),
                    "--as",
                    "alice",
                    "--dry-run=server",
                ])
                .args([
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"paused":false}}"#,
                    "-o",
                    "json",
                ])
                .env("KUBECONFIG", support::kubeconfig_path())
                .output()
                .await
                .ok()?;
            let d: Deployment = serde_json::from_slice(&out.stdout).ok()?;
            (d.annotations()
                .get("rollguard.dev/unpaused-by")
                .map(String::as_str)
                == Some("alice"))
            .then_some(())
        },
    )
    .await;
    // `kubectl rollout resume` removes the field (no field manager is left to name): the
    // stamp names the user. A GitOps tool that applies `paused: false` server-side owns the
    // field: both are named.
    let manifest = std::env::temp_dir().join(format!("{}-unpause.yaml", w.n()));
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {paused: false}\n",
    )
    .expect("writing the manifest");
    let manifest = manifest.to_string_lossy().into_owned();
    let resumes: [(&[&str], &str); 2] = [
        (
            &["rollout", "resume", "deployment/web", "--as", "alice"],
            "user alice removed spec.paused",
        ),
        (
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=gitops-bot",
                "--as",
                "gitops-bot",
                "-f",
                &manifest,
            ],
            "user gitops-bot (field manager gitops-bot) set spec.paused to false",
        ),
    ];
    for (i, (args, said)) in resumes.into_iter().enumerate() {
        let mut args = args.to_vec();
        args.extend(["-n", w.n()]);
        kubectl(&args).await;
        let found = support::poll(
            Duration::from_secs(20),
            Duration::from_millis(200),
            async || {
                let evs = w.events("UnpausedByOther").await;
                evs.into_iter()
                    .find(|e| e.note.as_deref().is_some_and(|n| n.contains(said)))
            },
        )
        .await;
        let Some(ev) = found else {
            let seen: Vec<_> = w
                .events("UnpausedByOther")
                .await
                .into_iter()
                .map(|e| (e.action, e.note, e.series.map(|s| s.count)))
                .collect();
            panic!("no UnpausedByOther Event saying {said:?}; seen: {seen:?}");
        };
        assert_eq!(ev.type_.as_deref(), Some("Warning"), "resume {i}");
        // Paused again, and the stamp removed once reported.
        w.wait(
            "paused again, the stamp gone",
            Duration::from_secs(10),
            async || {
                let d = w.deployment().await;
                (paused(&d) && !d.annotations().contains_key("rollguard.dev/unpaused-by"))
                    .then_some(())
            },
        )
        .await;
    }
    // The race: how many pods of the template under trial the Deployment controller started
    // before rollguard paused it again (docs/operations: "A resume by hand").
    tokio::time::sleep(Duration::from_secs(2)).await;
    let raced = replicas_of(&w, "example.com/web:2").await;
    println!("pods of the template under trial started in the resume race: {raced}");
    let r = w.run().await.expect("run");
    assert_eq!(run_phase(&r), Phase::Progressing, "the run goes on");
    assert!(paused(&w.deployment().await));
    w.finish().await;
}

#[tokio::test]
async fn promote_is_an_override_recorded_with_the_user() {
    let w = world("override", Router::Replicas, tier("1h"))
        .build()
        .await;
    w.deploy("0.001", "example.com/web:2", None).await;
    w.wait("the 10% slice", Duration::from_secs(30), async || {
        w.run().await?.status?.step_started_at.map(|_| ())
    })
    .await;
    let said = run(&rollguard_bin(), &["promote", APP, "-n", w.n()]).await;
    assert!(
        said.contains("without waiting for a judging sample"),
        "{said}"
    );
    let r = w
        .wait(
            "the override in status",
            Duration::from_secs(20),
            async || {
                let r = w.run().await?;
                (!r.status.as_ref()?.overrides.is_empty()).then_some(r)
            },
        )
        .await;
    let o = &r.status.expect("status").overrides[0];
    assert_eq!(o.step, 0);
    assert!(o.user.contains("admin"), "the authenticated user: {o:?}");
    assert!(o.skipped.contains("the pause"), "{o:?}");
    let ev = w
        .wait("an Overridden Event", Duration::from_secs(10), async || {
            w.events("Overridden").await.into_iter().next()
        })
        .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    w.finish().await;
}

#[tokio::test]
async fn blind_analysis_stalls_a_holding_run_and_rolls_back_a_strict_one() {
    for (on_no_data, want) in [("hold", None), ("rollback", Some("QueryFailed"))] {
        let w = World::builder("blind")
            .router(Router::Replicas)
            .analysis(json!({
                // Nothing listens on port 1: every query fails.
                "prometheus": {"address": "http://127.0.0.1:1"},
                "onNoData": on_no_data,
                "noDataLimit": 2,
            }))
            .tiers(tier("2s"))
            .build()
            .await;
        w.deploy("0.001", "example.com/web:2", None).await;
        match want {
            None => {
                w.wait("the run Stalled", Duration::from_secs(60), async || {
                    let st = w.run().await?.status?;
                    st.conditions
                        .iter()
                        .any(|c| {
                            c.type_ == "Stalled"
                                && c.status == "True"
                                && c.reason == "AnalysisBlind"
                        })
                        .then_some(())
                })
                .await;
                let r = w.run().await.expect("run");
                assert_eq!(
                    run_phase(&r),
                    Phase::Progressing,
                    "it holds, never promotes"
                );
            }
            Some(reason) => {
                let r = w
                    .wait_phase(Phase::RolledBack, Duration::from_secs(60))
                    .await;
                assert_eq!(r.status.and_then(|s| s.reason).as_deref(), Some(reason));
            }
        }
        let ev = w
            .wait(
                "an AnalysisBlind Event",
                Duration::from_secs(10),
                async || w.events("AnalysisBlind").await.into_iter().next(),
            )
            .await;
        assert!(ev.note.unwrap_or_default().contains("query failed"));
        w.finish().await;
    }
}

#[tokio::test]
async fn a_run_whose_deployment_two_policies_select_is_stalled_until_one_lets_go() {
    let w = world("stall", Router::Replicas, tier("3s")).build().await;
    w.deploy("0.001", "example.com/web:2", None).await;
    w.wait("the 10% slice", Duration::from_secs(30), async || {
        w.run().await?.status?.step_started_at.map(|_| ())
    })
    .await;
    let policies = w.policies();
    create(
        &policies,
        world("stall", Router::Replicas, tier("3s")).policy("other"),
    )
    .await;
    let cond = w
        .wait(
            "the run Stalled by the conflict",
            Duration::from_secs(20),
            async || {
                let st = w.run().await?.status?;
                st.conditions
                    .into_iter()
                    .find(|c| c.type_ == "Stalled" && c.reason == "PolicyConflict")
            },
        )
        .await;
    assert!(
        cond.message.contains("other") && cond.message.contains("shop"),
        "{}",
        cond.message
    );
    policies
        .delete("other", &Default::default())
        .await
        .expect("delete the second policy");
    let r = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    assert!(
        r.status
            .expect("status")
            .conditions
            .iter()
            .all(|c| c.type_ != "Stalled"),
        "the condition goes once one policy governs"
    );
    w.finish().await;
}

#[tokio::test]
async fn the_real_share_is_recorded_and_a_cap_holds_a_slice_a_small_service_cannot_give() {
    // 1% on 3 replicas: one canary pod is 25% of the pods behind the Service.
    let tiers = json!([{"name": "careful", "steps": [{"weight": "1%", "pause": "2s"}],
                        "maxErrorRate": "2%", "maxShare": "5%"}]);
    let w = world("cap", Router::Replicas, tiers).build().await;
    w.deploy("0.001", "example.com/web:2", None).await;
    let c = w
        .wait(
            "the run Stalled above the cap",
            Duration::from_secs(30),
            async || {
                let st = w.run().await?.status?;
                st.conditions
                    .into_iter()
                    .find(|c| c.type_ == "Stalled" && c.reason == "ShareAboveCap")
            },
        )
        .await;
    assert!(c.message.contains("25% of traffic"), "{}", c.message);
    // The condition is written in the pass that would have made the canary: none exists.
    assert!(w.canary().await.is_none(), "nobody exposed above the cap");
    // Enough replicas that one pod is 5%: the step starts, and the status says 5%.
    w.deployments()
        .patch_scale(
            APP,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 19}})),
        )
        .await
        .expect("scaling through the scale subresource");
    let r = w
        .wait(
            "the step to start at its real share",
            Duration::from_secs(60),
            async || {
                let r = w.run().await?;
                r.status.as_ref()?.step_started_at.as_ref()?;
                Some(r)
            },
        )
        .await;
    let st = r.status.expect("status");
    assert_eq!(st.share.map(|s| s.to_string()).as_deref(), Some("5%"));
    assert_eq!(st.weight.map(|s| s.to_string()).as_deref(), Some("1%"));
    assert!(
        st.conditions.iter().all(|c| c.type_ != "Stalled"),
        "{:?}",
        st.conditions
    );
    w.finish().await;
}

/// Sets a real HorizontalPodAutoscaler on the Deployment to `replicas` (its bounds, applied
/// server-side). The local cluster serves no metrics API, so the controller-manager's HPA
/// controller acts on the bounds alone: it raises a Deployment below `minReplicas` and lowers
/// one above `maxReplicas`, through the scale subresource, within its 15 s sync period.
async fn hpa_bounds(w: &World, replicas: i32) {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(w.deployments().into_client(), w.n());
    let body = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": APP},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                 "minReplicas": replicas, "maxReplicas": replicas}
    });
    hpas.patch(
        APP,
        &PatchParams::apply("e2e-hpa").force(),
        &Patch::Apply(body),
    )
    .await
    .expect("applying the HorizontalPodAutoscaler");
}

fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

async fn canary_replicas(w: &World) -> Option<i32> {
    w.canary().await.map(|c| spec_replicas(&c))
}

#[tokio::test]
async fn an_hpa_resizes_the_canary_and_never_shrinks_the_revision_that_carries_all_traffic() {
    let tiers = json!([{"name": "standard", "steps": [{"weight": "50%", "pause": "40s"}],
                        "maxErrorRate": "2%"}]);
    let w = world("hpa", Router::Gateway, tiers).build().await;
    // One pod at a time, each ready for 4 s: promoting 8 pods takes over 30 s.
    slow_rollout(&w).await;
    hpa_bounds(&w, 5).await;
    w.wait(
        "the HPA to scale the Deployment to 5",
        Duration::from_secs(60),
        async || (spec_replicas(&w.deployment().await) == 5).then_some(()),
    )
    .await;
    w.deploy("0.001", "example.com/web:2", None).await;
    // The 50% slice of 5 pods: ceil(2.5) = 3 canary pods.
    let started = w
        .wait(
            "the 50% step with a 3-pod canary",
            Duration::from_secs(60),
            async || {
                let r = w.run().await?;
                let at = r.status.as_ref()?.step_started_at.clone()?;
                (canary_replicas(&w).await == Some(3)).then_some(at)
            },
        )
        .await;
    // Demand rises mid-step: the canary follows, the step (and its evidence) goes on.
    hpa_bounds(&w, 8).await;
    w.wait(
        "a 4-pod canary for the 50% slice of 8",
        Duration::from_secs(40),
        async || (canary_replicas(&w).await == Some(4)).then_some(()),
    )
    .await;
    let r = w.run().await.expect("the run");
    let st = r.status.as_ref().expect("status");
    assert_eq!(run_phase(&r), Phase::Progressing);
    assert_eq!(st.step, 0);
    assert_eq!(
        st.step_started_at.as_ref(),
        Some(&started),
        "the step was not restarted"
    );
    // Promotion: all traffic to a canary the Deployment's size, then the Deployment rolls.
    w.wait(
        "the run promoting with all traffic on an 8-pod canary",
        Duration::from_secs(90),
        async || {
            let r = w.run().await?;
            let d = w.deployment().await;
            (run_phase(&r) == Phase::Promoting
                && !paused(&d)
                && canary_replicas(&w).await == Some(8)
                && w.route_weights().await == (0, 1))
                .then_some(())
        },
    )
    .await;
    // Demand "falls" while the Deployment's own pods get no traffic: the HPA scales it down to
    // 3. The canary keeps its 8 pods until the Deployment has rolled out and the run ends.
    hpa_bounds(&w, 3).await;
    let (mut smallest, mut hpa_seen) = (8, false);
    let ended = w
        .wait("the run to succeed", Duration::from_secs(180), async || {
            let r = w.run().await?;
            if run_phase(&r) == Phase::Succeeded {
                return Some(r);
            }
            let d = w.deployment().await;
            if let Some(c) = canary_replicas(&w).await {
                smallest = smallest.min(c);
                hpa_seen |= spec_replicas(&d) == 3;
            }
            None
        })
        .await;
    assert!(
        hpa_seen,
        "the HPA scaled the Deployment to 3 while the canary served"
    );
    assert_eq!(
        smallest, 8,
        "the canary carrying all traffic was never shrunk"
    );
    // The promoted revision ended at the HPA's demand, rolled out, with the traffic back.
    assert_eq!(ended.spec.canary_revision, r.spec.canary_revision);
    w.wait(
        "the canary gone, the route back on stable, 3 pods of web:2",
        Duration::from_secs(30),
        async || {
            let d = w.deployment().await;
            (spec_replicas(&d) == 3
                && rollguard::governance::rollout_complete(&d)
                && stable_images(&w).await.get("example.com/web:2") == Some(&3)
                && w.canary().await.is_none()
                && w.route_weights().await.1 == 0)
                .then_some(())
        },
    )
    .await;
    w.finish().await;
}
