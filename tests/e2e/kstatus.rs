//! What kstatus itself (sigs.k8s.io/cli-utils `status.Compute`, the library Flux and Helm 4's
//! `--wait` judge health with; `tests/kstatus/`) says about the live governed Deployment, its
//! RolloutRun and its RolloutPolicy, read from the API server during real runs (issue #17
//! point 4): idle Current, in flight InProgress, rolled back Failed, promoted Current; and,
//! without the pause gate, what it says about an idle Deployment held paused.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject};
use rollguard::api::run::Phase;
use rollguard::api::{RolloutPolicy, RolloutRun};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::support::world::{APP, World, run_phase};

/// The policy every world applies.
const POLICY: &str = "shop";

/// The harness binary, built (or found in the cache by content hash) by its script.
fn harness() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kstatus/build.sh");
    let out = std::process::Command::new(script)
        .output()
        .expect("running tests/kstatus/build.sh");
    assert!(
        out.status.success(),
        "tests/kstatus/build.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// kstatus' status and message for one object as the API server has it now.
async fn kstatus<K>(w: &World, bin: &PathBuf, name: &str) -> (String, String)
where
    K: kube::Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(w.client.clone(), w.n(), &ar);
    let obj = api.get(name).await.expect("reading the object");
    let mut v = serde_json::to_value(&obj).expect("json");
    v["apiVersion"] = json!(ar.api_version);
    v["kind"] = json!(ar.kind);
    let mut child = tokio::process::Command::new(bin)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the kstatus harness");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(v.to_string().as_bytes())
        .await
        .expect("writing the object");
    drop(stdin);
    let out = child.wait_with_output().await.expect("the harness");
    assert!(
        out.status.success(),
        "kstatus harness: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (s, m) = text
        .trim_end()
        .split_once('\t')
        .unwrap_or((text.trim_end(), ""));
    (s.to_string(), m.to_string())
}

/// Waits until kstatus says `want` about the object, with a message containing `says`.
async fn wait_kstatus<K>(w: &World, bin: &PathBuf, name: &str, want: &str, says: &str) -> String
where
    K: kube::Resource<DynamicType = ()>,
{
    let what = format!(
        "kstatus to say {want} ({says}) about {} {name}",
        K::kind(&())
    );
    w.wait(&what, Duration::from_secs(90), async || {
        let (s, m) = kstatus::<K>(w, bin, name).await;
        (s == want && m.contains(says)).then_some(m)
    })
    .await
}

async fn run_name(w: &World) -> String {
    w.run().await.and_then(|r| r.metadata.name).expect("a run")
}

#[tokio::test]
async fn kstatus_reads_idle_current_in_flight_in_progress_and_rolled_back_failed() {
    let bin = harness();
    let tiers = json!([{"name": "standard",
        "steps": [{"weight": "10%", "pause": "10s"}, {"weight": "50%", "pause": "5s"}],
        "maxErrorRate": "2%"}]);
    let w = World::builder("kstatus")
        .analysis(json!({"minRequests": 100}))
        .tiers(tiers)
        .build()
        .await;
    assert!(!w.paused_between_runs(), "the pause gate is in force here");
    // Idle: the Deployment is not paused, and its own rules say Current; so does the policy.
    wait_kstatus::<Deployment>(&w, &bin, APP, "Current", "Deployment is available").await;
    wait_kstatus::<RolloutPolicy>(&w, &bin, POLICY, "Current", "").await;

    // A good change in flight: the run and the Deployment are InProgress, the Deployment by
    // rollguard's own Reconciling condition (its message is the verdict's).
    w.deploy("0.001", "example.com/web:2", None).await;
    let seen = w
        .wait(
            "kstatus InProgress on the run and the Deployment while the run is in flight",
            Duration::from_secs(60),
            async || {
                let r = w.run().await?;
                if run_phase(&r) != Phase::Progressing {
                    return None;
                }
                let name = r.metadata.name.clone()?;
                let (rs, rm) = kstatus::<RolloutRun>(&w, &bin, &name).await;
                let (ds, dm) = kstatus::<Deployment>(&w, &bin, APP).await;
                let still = w.run().await.map(|r| run_phase(&r)) == Some(Phase::Progressing);
                // Once its first slice is set the run says its step ("the canary is
                // starting" before).
                (still
                    && rs == "InProgress"
                    && rm.starts_with("step ")
                    && ds == "InProgress"
                    && dm.starts_with("canary "))
                .then_some((rm, dm))
            },
        )
        .await;
    eprintln!(
        "kstatus in flight: run InProgress ({}), Deployment InProgress ({})",
        seen.0, seen.1
    );
    // Promoted: the run is Current, and the Deployment is again once it has rolled out (the
    // Reconciling condition is gone).
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let name = run.metadata.name.clone().expect("name");
    wait_kstatus::<RolloutRun>(&w, &bin, &name, "Current", "").await;
    wait_kstatus::<Deployment>(&w, &bin, APP, "Current", "Deployment is available").await;

    // A bad change rolled back: the Deployment stays paused on the bad template, and both it
    // and the run read Failed (rollguard's Stalled), with the run's reason.
    w.deploy("0.2", "example.com/web:3", None).await;
    w.wait_phase(Phase::RolledBack, Duration::from_secs(90))
        .await;
    let bad = run_name(&w).await;
    let m = wait_kstatus::<RolloutRun>(&w, &bin, &bad, "Failed", "").await;
    assert!(m.contains("errors"), "{m}");
    let m = wait_kstatus::<Deployment>(&w, &bin, APP, "Failed", "").await;
    assert!(m.contains("errors"), "{m}");
    let d = w.deployment().await;
    assert_eq!(d.spec.and_then(|s| s.paused), Some(true), "held paused");
    // The policy is still Current: a rolled-back revision is not the policy's fault.
    let (s, _) = kstatus::<RolloutPolicy>(&w, &bin, POLICY).await;
    assert_eq!(s, "Current");
    // The policy deleted: rollguard lets the Deployment go and takes its conditions with it;
    // the template under trial stays held paused, which the Deployment's own rules read as
    // InProgress.
    w.policies()
        .delete(POLICY, &Default::default())
        .await
        .expect("deleting the policy");
    w.wait(
        "the released Deployment without rollguard's conditions",
        Duration::from_secs(60),
        async || {
            let d = w.deployment().await;
            let ours = d
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Stalled" || c.type_ == "Reconciling");
            (!ours && !d.annotations().contains_key("rollguard.dev/verdict")).then_some(())
        },
    )
    .await;
    let (s, m) = kstatus::<Deployment>(&w, &bin, APP).await;
    assert_eq!(s, "InProgress", "{m}");
    w.finish().await;
}

/// Without the pause gate, rollguard keeps a governed Deployment paused between runs, and
/// kstatus' Deployment rules read a paused Deployment as InProgress (its `Progressing`
/// condition says `DeploymentPaused`, not `NewReplicaSetAvailable`): rollguard cannot make
/// that Current, and docs/gitops.md says so. The policy and a promoted run still read Current.
#[tokio::test]
async fn without_the_pause_gate_an_idle_deployment_reads_in_progress() {
    let bin = harness();
    let w = World::builder("kstatus-paused").ungated().build().await;
    assert!(w.paused_between_runs());
    w.wait(
        "the idle Deployment held paused",
        Duration::from_secs(60),
        async || {
            let d = w.deployment().await;
            (d.spec.and_then(|s| s.paused) == Some(true)).then_some(())
        },
    )
    .await;
    let m = wait_kstatus::<Deployment>(&w, &bin, APP, "InProgress", "").await;
    eprintln!("kstatus on an idle Deployment held paused: InProgress ({m})");
    assert!(
        !m.starts_with("canary"),
        "the Deployment's own rules, not rollguard's: {m}"
    );
    wait_kstatus::<RolloutPolicy>(&w, &bin, POLICY, "Current", "").await;
    w.deploy("0.001", "example.com/web:2", None).await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let name = run.metadata.name.clone().expect("name");
    wait_kstatus::<RolloutRun>(&w, &bin, &name, "Current", "").await;
    // Promoted and paused again on the new stable revision: InProgress once more.
    w.wait(
        "the Deployment held paused after the promotion",
        Duration::from_secs(60),
        async || {
            let d = w.deployment().await;
            (d.spec.and_then(|s| s.paused) == Some(true)).then_some(())
        },
    )
    .await;
    wait_kstatus::<Deployment>(&w, &bin, APP, "InProgress", "").await;
    w.finish().await;
}
