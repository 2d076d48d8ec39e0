//! rollguard's Argo CD resource customizations (issue #17; docs/gitops.md, "Argo CD"), run by
//! Argo CD's own code (the `tests/argocd` harness: Argo CD's util/lua and gitops-engine's
//! pkg/health) on objects read from the API server during real runs, with the argocd-cm the
//! docs show; and the actions' patches applied as Argo CD applies them (a JSON merge patch),
//! as Argo CD's identity, under the approval guard.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::support::world::{APP, World, run_phase};
use crate::support::{self, create};

/// The identity the actions record, and as which the test sends their patches (Argo CD's API
/// server in namespace `argocd`; the name the action scripts write).
const ARGOCD: &str = "system:serviceaccount:argocd:argocd-server";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The harness binary: `tests/argocd/build.sh` prints its path (and builds it when it is not
/// cached; `make test-gitops` has built it before the e2e tests).
fn harness() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = std::process::Command::new(repo().join("tests/argocd/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/argocd/build.sh");
        assert!(out.status.success(), "tests/argocd/build.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
    })
}

/// Runs the harness on `obj` with the argocd-cm of the docs: `args` is `health`, `actions` or
/// `run ACTION`. Its answer (JSON), or its error line.
async fn argocd(args: &[&str], obj: &Value) -> Result<Value, String> {
    let cm = repo().join("deploy/argocd/argocd-cm.yaml");
    let mut child = tokio::process::Command::new(harness())
        .arg("-cm")
        .arg(&cm)
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the harness");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(obj.to_string().as_bytes())
        .await
        .expect("writing the object");
    drop(stdin);
    let out = child.wait_with_output().await.expect("the harness");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("the harness's JSON"))
}

/// (status, message) of a health answer's `which` ("health": with rollguard's customizations;
/// "builtin": Argo CD's built-in check).
fn status(answer: &Value, which: &str) -> (String, String) {
    let h = &answer[which];
    (
        h["status"].as_str().unwrap_or_default().to_string(),
        h["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The object as the API server returns it, every field kept.
async fn live<K>(client: &Client, ns: &str, name: &str) -> Value
where
    K: kube::Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj = api.get(name).await.expect("reading the object");
    serde_json::to_value(obj).expect("JSON")
}

/// What Argo CD shows for the live object `K/name`: (status, message).
async fn health_of<K>(client: &Client, ns: &str, name: &str) -> (String, String, Value)
where
    K: kube::Resource<DynamicType = ()>,
{
    let obj = live::<K>(client, ns, name).await;
    let answer = argocd(&["health"], &obj).await.expect("health");
    let (s, m) = status(&answer, "health");
    (s, m, obj)
}

/// Waits until Argo CD would show `want` for the live `K/name`, and returns the message.
async fn wait_health<K>(w: &World, name: &str, want: &str) -> String
where
    K: kube::Resource<DynamicType = ()>,
{
    w.wait(
        &format!("Argo CD health {want} on {} {name}", K::kind(&())),
        Duration::from_secs(90),
        async || {
            let (s, m, _) = health_of::<K>(&w.client, w.n(), name).await;
            (s == want).then_some(m)
        },
    )
    .await
}

/// The actions Argo CD offers on `obj`: name -> enabled.
async fn offered(obj: &Value) -> Vec<(String, bool)> {
    let list = argocd(&["actions"], obj).await.expect("actions");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or_default().to_string(),
                !a["disabled"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn enabled(actions: &[(String, bool)], name: &str) -> bool {
    actions.iter().any(|(n, on)| n == name && *on)
}

/// A client that is Argo CD's identity (impersonated), allowed what Argo CD's API server
/// needs here: read and patch runs and Deployments in the namespace.
async fn argocd_client(client: &Client, ns: &str) -> Client {
    create(
        &Api::<Role>::namespaced(client.clone(), ns),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "argocd-server"},
               "rules": [
                   {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
                   {"apiGroups": ["rollguard.dev"], "resources": ["rolloutruns"], "verbs": ["get", "patch"]}]}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), ns),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "argocd-server"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "argocd-server"},
               "subjects": [{"kind": "ServiceAccount", "name": "argocd-server", "namespace": "argocd"}]}),
    )
    .await;
    let mut config = support::admin_config().await;
    config.auth_info.impersonate = Some(ARGOCD.to_string());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        "system:serviceaccounts:argocd".into(),
        "system:authenticated".into(),
    ]);
    Client::try_from(config).expect("the Argo CD client")
}

/// Runs `action` on the live `K/name` as Argo CD's API server does and applies the merge patch
/// it computes, as Argo CD's identity. The patch.
async fn act<K>(w: &World, as_argocd: &Client, action: &str, name: &str) -> Value
where
    K: kube::Resource<DynamicType = ()>,
{
    let obj = live::<K>(&w.client, w.n(), name).await;
    let out = argocd(&["run", action], &obj)
        .await
        .unwrap_or_else(|e| panic!("action {action} on {name}: {e}"));
    let patch = out["patch"].clone();
    let ar = ApiResource::erase::<K>(&());
    Api::<DynamicObject>::namespaced_with(as_argocd.clone(), w.n(), &ar)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("applying {action}'s patch {patch} as Argo CD: {e}"));
    patch
}

/// A Deployment rollguard does not govern: Argo CD's health with the customizations is its
/// built-in health, read off the API server while it rolls out, once it is available, and
/// paused.
async fn ungoverned_reads_as_builtin(w: &World) -> (usize, std::collections::BTreeSet<String>) {
    let mut d = support::world::deployment();
    d["metadata"]["name"] = json!("plain");
    d["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": "elsewhere"});
    d["spec"]["selector"]["matchLabels"]["app"] = json!("plain");
    d["spec"]["template"]["metadata"]["labels"]["app"] = json!("plain");
    create(&w.deployments(), d).await;
    let mut seen = std::collections::BTreeSet::new();
    let mut compared = 0;
    let mut check = async |seen: &mut std::collections::BTreeSet<String>| {
        let obj = live::<Deployment>(&w.client, w.n(), "plain").await;
        let answer = argocd(&["health"], &obj).await.expect("health");
        assert_eq!(
            status(&answer, "health"),
            status(&answer, "builtin"),
            "the Lua check and Argo CD's built-in one differ on {obj}"
        );
        compared += 1;
        seen.insert(status(&answer, "builtin").0);
    };
    for _ in 0..100 {
        check(&mut seen).await;
        if seen.contains("Healthy") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.deployments()
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true, "replicas": 4}})),
        )
        .await
        .expect("pausing plain");
    check(&mut seen).await;
    assert!(
        seen.contains("Healthy") && seen.contains("Suspended"),
        "{seen:?}"
    );
    (compared, seen)
}

#[tokio::test]
#[ignore = "needs the Argo CD harness (a cold build of ~20 min): run with `make test-gitops`"]
async fn argo_cd_reads_rollguards_state_and_its_actions_abort_pause_resume_and_retry_a_run() {
    let w = World::builder("argocd")
        .analysis(json!({"prometheus": {"address": support::prometheus_url()}, "minRequests": 100}))
        .tiers(json!([{"name": "standard",
            "steps": [{"weight": "10%", "pause": "4s"}, {"weight": "50%", "pause": "4s"}],
            "maxErrorRate": "2%", "requireApproval": true}]))
        .approval_policy()
        .build()
        .await;
    let n = w.n().to_string();
    let as_argocd = argocd_client(&w.client, &n).await;

    // Steady: Healthy; the policy is Ready: Healthy.
    let m = wait_health::<Deployment>(&w, APP, "Healthy").await;
    assert!(m.contains("stable"), "{m}");
    let (s, m, _) = health_of::<RolloutPolicy>(&w.client, &n, "shop").await;
    assert_eq!(s, "Healthy", "{m}");
    let (compared, seen) = ungoverned_reads_as_builtin(&w).await;

    // A good change, mid-run: Progressing on both; Argo CD offers abort and pause, no retry.
    w.deploy("0.001", "example.com/web:2", None).await;
    let run = w
        .wait_phase(Phase::Progressing, Duration::from_secs(60))
        .await;
    let first = run.name_any();
    wait_health::<Deployment>(&w, APP, "Progressing").await;
    let (s, m, obj) = health_of::<RolloutRun>(&w.client, &n, &first).await;
    assert_eq!(s, "Progressing", "{m}");
    let actions = offered(&obj).await;
    assert!(
        enabled(&actions, "abort") && enabled(&actions, "pause") && !enabled(&actions, "resume"),
        "{actions:?}"
    );
    let d = live::<Deployment>(&w.client, &n, APP).await;
    assert!(!enabled(&offered(&d).await, "retry"), "no retry mid-run");

    // pause, then resume, from Argo CD.
    act::<RolloutRun>(&w, &as_argocd, "pause", &first).await;
    let m = wait_health::<RolloutRun>(&w, &first, "Suspended").await;
    assert!(m.contains(ARGOCD), "{m}");
    let stored = w.runs().get(&first).await.expect("the run");
    let pause = stored.spec.control.and_then(|c| c.pause).expect("paused");
    assert_eq!(pause.user, ARGOCD);
    let patch = act::<RolloutRun>(&w, &as_argocd, "resume", &first).await;
    assert_eq!(patch, json!({"spec": {"control": {"pause": null}}}));
    wait_health::<RolloutRun>(&w, &first, "Progressing").await;

    // abort from Argo CD: the operator aborts the run; both read Degraded.
    act::<RolloutRun>(&w, &as_argocd, "abort", &first).await;
    let aborted = w.wait_phase(Phase::Aborted, Duration::from_secs(60)).await;
    assert_eq!(aborted.name_any(), first);
    let cmd = aborted.spec.control.and_then(|c| c.abort).expect("abort");
    assert_eq!(cmd.user, ARGOCD);
    wait_health::<RolloutRun>(&w, &first, "Degraded").await;
    let m = wait_health::<Deployment>(&w, APP, "Degraded").await;
    assert!(m.contains("abort"), "{m}");
    let (s, _, run_obj) = health_of::<RolloutRun>(&w.client, &n, &first).await;
    assert_eq!(s, "Degraded");
    assert!(
        !enabled(&offered(&run_obj).await, "abort"),
        "an ended run offers no abort"
    );

    // retry from Argo CD: the mark goes, attempt 2 runs; it passes its steps and waits for an
    // approval: Suspended on both (and no approve action: that is the approver's).
    let d = live::<Deployment>(&w.client, &n, APP).await;
    assert!(enabled(&offered(&d).await, "retry"));
    act::<Deployment>(&w, &as_argocd, "retry", APP).await;
    let second = format!("{first}-2");
    let r = w
        .wait_phase(Phase::AwaitingApproval, Duration::from_secs(90))
        .await;
    assert_eq!(r.name_any(), second, "attempt 2 of the same revision");
    let m = wait_health::<Deployment>(&w, APP, "Suspended").await;
    assert!(m.contains("approve"), "{m}");
    let (s, m, obj) = health_of::<RolloutRun>(&w.client, &n, &second).await;
    assert_eq!(s, "Suspended", "{m}");
    let actions = offered(&obj).await;
    assert!(
        actions.iter().all(|(a, _)| a != "approve") && !enabled(&actions, "pause"),
        "{actions:?}"
    );

    // A bad change replaces it: the old run is Superseded (Healthy), the new one rolled back:
    // Degraded on both.
    w.deploy("0.2", "example.com/web:3", None).await;
    let m = wait_health::<Deployment>(&w, APP, "Degraded").await;
    assert!(m.contains("rolled back"), "{m}");
    let bad = w.run().await.expect("the bad run");
    assert_eq!(run_phase(&bad), Phase::RolledBack);
    let (s, m, _) = health_of::<RolloutRun>(&w.client, &n, &bad.name_any()).await;
    assert_eq!(s, "Degraded", "{m}");
    let (s, m, _) = health_of::<RolloutRun>(&w.client, &n, &second).await;
    assert_eq!(s, "Healthy", "superseded: {m}");
    let d = live::<Deployment>(&w.client, &n, APP).await;
    assert!(enabled(&offered(&d).await, "retry"));
    eprintln!("argocd: {compared} reads of an ungoverned Deployment ({seen:?}), Lua == built-in");
    w.finish().await;
}
