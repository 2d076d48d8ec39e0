//! `kubectl rollguard` end to end, every verb as a process against the local control plane,
//! with the real operator and traffic simulator per namespace, and the chart's approval
//! admission policy (`rollguard-approvals`) in force, so every approval and command the CLI
//! writes passes the same check a forged one fails.
//!
//! Run: `tests/cluster/cluster.sh up && source .cluster/env && cargo test --features e2e --test e2e cli::`

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::support::procs::rollguard_bin;
use crate::support::world::{APP, Router, World, approver_rules, run_phase};
use crate::support::{self, create};

const FAILED: &str = "rollguard.dev/failed-revision";

// ---------------------------------------------------------------------------------------
// Running the CLI

/// What a CLI process did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The single error line (and asserts it is one line).
    fn error_line(&self) -> &str {
        let line = self.stderr.trim_end();
        assert_eq!(line.lines().count(), 1, "the error is one line: {self:?}");
        assert!(line.starts_with("error: "), "{self:?}");
        line
    }
}

fn cli(kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(rollguard_bin());
    c.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("ROLLGUARD_AI_ASSISTANTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn finish(c: tokio::process::Child) -> Out {
    let o = tokio::time::timeout(Duration::from_secs(120), c.wait_with_output())
        .await
        .expect("the CLI finishes within 2 minutes")
        .expect("running the CLI");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `rollguard ARGS` with the kubeconfig and waits for it.
async fn run_as(kubeconfig: &Path, args: &[&str]) -> Out {
    finish(cli(kubeconfig, args).spawn().expect("starting rollguard")).await
}

/// Runs `rollguard ARGS` as the cluster admin.
async fn rg(args: &[&str]) -> Out {
    run_as(&support::kubeconfig_path(), args).await
}

/// Starts `rollguard ARGS` as the cluster admin without waiting.
fn rg_spawn(args: &[&str]) -> tokio::process::Child {
    cli(&support::kubeconfig_path(), args)
        .spawn()
        .expect("starting rollguard")
}

// ---------------------------------------------------------------------------------------
// A world per test

fn tier(name: &str, pause: &str, approval: bool, matches: bool) -> Value {
    let mut t = json!({
        "name": name,
        "steps": [{"weight": "10%", "pause": pause}, {"weight": "50%", "pause": pause}],
        "maxErrorRate": "5%",
        "requireApproval": approval,
    });
    if matches {
        t["match"] = json!({"annotations": {"rollguard.dev/change-origin": ["ai-assisted"]}});
    }
    t
}

/// One test's world: the Service at 50 requests/s, a policy with an `ai-assisted` tier
/// (approval required) and a `standard` one, both with two steps (10%, 50%) of `pause`, and
/// the chart's approval admission policy in force.
async fn world(prefix: &str, pause: &str) -> World {
    World::builder(prefix)
        .router(Router::Replicas)
        .service_rps("50")
        .analysis(json!({
            "prometheus": {"address": support::prometheus_url()},
            "minRequests": 20,
        }))
        .tiers(json!([
            tier("ai-assisted", pause, true, true),
            tier("standard", pause, false, false)
        ]))
        .approval_policy()
        .build()
        .await
}

/// A new pod template: the simulator's error rate and the change origin.
async fn deploy(w: &World, error_rate: &str, origin: &str) {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "sim.rollguard.dev/error-rate": error_rate,
        "rollguard.dev/change-origin": origin,
        "e2e/serial": rollguard_serial(),
    }}}}});
    w.deployments()
        .patch(APP, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .expect("patching the template");
}

/// Waits until the newest run is in `phase` and (when given) at `step`, with a sample with
/// counts in that step.
async fn until_run(w: &World, phase: Phase, step: Option<i32>) -> RolloutRun {
    w.wait(
        &format!("the run in {phase:?} at step {step:?}"),
        Duration::from_secs(90),
        async || {
            let r = w.run().await?;
            let st = r.status.as_ref()?;
            let at_step = step.is_none_or(|s| {
                st.step == s
                    && st
                        .samples
                        .last()
                        .is_some_and(|x| x.step == s && x.requests.is_some())
            });
            (st.phase == phase && at_step).then_some(r)
        },
    )
    .await
}

/// A value that changes on every call, so each `deploy` is a new template.
fn rollguard_serial() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}", N.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

/// The admin's user name as the API server authenticates it.
async fn admin_user(client: &Client) -> String {
    let r = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    r.status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("a user name")
}

// ---------------------------------------------------------------------------------------
// ServiceAccounts as other users

/// Another user: a ServiceAccount with a kubeconfig that authenticates as it.
struct OtherUser {
    kubeconfig: PathBuf,
    /// The user name the API server sees.
    user: String,
    token: String,
}

/// Creates ServiceAccount `name` with a Role of `rules` in the namespace and writes a
/// kubeconfig that authenticates as it (a TokenRequest token).
async fn service_account(client: &Client, ns: &str, name: &str, rules: Value) -> OtherUser {
    let token = support::restricted_service_account(client, ns, name, rules).await;
    let admin =
        std::fs::read_to_string(support::kubeconfig_path()).expect("reading the kubeconfig");
    let mut kc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin).expect("a kubeconfig");
    kc["users"][0]["user"] = serde_yaml_ng::to_value(json!({"token": &token})).expect("yaml");
    kc["contexts"][0]["context"]["namespace"] = serde_yaml_ng::Value::String(ns.to_string());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/e2e-logs/{ns}-{name}.kubeconfig"));
    let _ = std::fs::create_dir_all(path.parent().expect("a parent"));
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).expect("yaml"))
        .expect("writing the kubeconfig");
    OtherUser {
        kubeconfig: path,
        user: format!("system:serviceaccount:{ns}:{name}"),
        token,
    }
}

// ---------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn get_shows_the_table_the_detail_and_json_and_watch_follows_promote_to_the_end() {
    let w = world("cli-get", "60s").await;
    let n = w.n().to_string();
    deploy(&w, "0.001", "human").await;
    let run = until_run(&w, Phase::Progressing, Some(0)).await;
    let run_name = run.name_any();

    // The table.
    let table = rg(&["get", "-n", &n]).await;
    assert_eq!(table.code, 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("DEPLOYMENT  TIER"), "{}", table.stdout);
    assert!(
        lines[1].starts_with("web")
            && lines[1].contains("standard")
            && lines[1].contains("Progressing"),
        "{}",
        table.stdout
    );
    assert!(
        lines[1].contains("1/2") && lines[1].contains("10%"),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains('\x1b'), "no colour when piped");

    // The same through kubectl's plugin discovery.
    let bin = tempdir("plugin");
    std::os::unix::fs::symlink(rollguard_bin(), bin.join("kubectl-rollguard"))
        .expect("symlinking the plugin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("kubectl")
        .args(["rollguard", "get", "-n", &n])
        .env("PATH", &path)
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .await
        .expect("kubectl rollguard");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().next(),
        Some(lines[0])
    );
    let help = tokio::process::Command::new("kubectl")
        .args(["rollguard", "--help"])
        .env("PATH", &path)
        .output()
        .await
        .expect("kubectl rollguard --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Usage: kubectl rollguard <COMMAND>") && !help.contains("controller"),
        "{help}"
    );

    // The detailed view.
    let detail = rg(&["get", APP, "-n", &n]).await;
    assert_eq!(detail.code, 0, "{detail:?}");
    for want in [
        format!("Deployment:  {n}/web"),
        "Policy:      shop".to_string(),
        format!("Run:         {run_name}  Progressing"),
        "Tier:        standard (no tier above matched".to_string(),
        "Steps:       step 1/2 at 10%".to_string(),
        "requests, ".to_string(),
        "vs threshold 5%".to_string(),
    ] {
        assert!(
            detail.stdout.contains(&want),
            "missing {want:?} in\n{}",
            detail.stdout
        );
    }

    // On a terminal (a pty from script(1)): colour and bars; --watch redraws in place.
    let tty = on_a_terminal(&format!("{} get web -n {n}", rollguard_bin().display())).await;
    assert!(
        tty.contains("\x1b[36mProgressing\x1b[0m") && tty.contains('█'),
        "{tty:?}"
    );
    let tty = on_a_terminal(&format!(
        "timeout -s INT 3 {} get web -n {n} --watch",
        rollguard_bin().display()
    ))
    .await;
    assert!(
        tty.matches("\x1b[H").count() >= 2,
        "redrawn in place every second: {tty:?}"
    );

    // JSON and YAML for scripts.
    let json_out = rg(&["get", APP, "-n", &n, "-o", "json"]).await;
    let v: Value = serde_json::from_str(&json_out.stdout).expect("JSON");
    assert_eq!(v["deployment"], "web");
    assert_eq!(v["current"]["metadata"]["name"], run_name.as_str());
    assert!(v["current"]["metadata"].get("managedFields").is_none());
    let yaml_out = rg(&["get", "-n", &n, "-o", "yaml"]).await;
    let y: Vec<Value> =
        serde_yaml_ng::from_str(yaml_out.stdout.trim_start_matches("---\n")).expect("YAML");
    assert_eq!(y[0]["current"]["spec"]["tier"]["name"], "standard");

    // Watch (piped: frames appended) while the run is promoted step by step.
    let mut watch = rg_spawn(&["get", APP, "-n", &n, "--watch"]);
    let mut watch_out = watch.stdout.take().expect("watch stdout");
    let mut seen = String::new();
    read_until(&mut watch_out, &mut seen, "step 1/2 at 10%", 20).await;
    let promote = rg(&["promote", APP, "-n", &n]).await;
    assert_eq!(promote.code, 0, "{promote:?}");
    assert!(
        promote.stdout.contains("skips the pause of step 1/2 (10%)"),
        "{promote:?}"
    );
    let r = until_run(&w, Phase::Progressing, Some(1)).await;
    let admin = admin_user(&w.client).await;
    let cmd = r
        .spec
        .control
        .and_then(|c| c.promote)
        .expect("the promote command");
    assert_eq!(
        (cmd.user.as_str(), cmd.step, cmd.full),
        (admin.as_str(), 0, false)
    );
    let full = rg(&["promote", APP, "-n", &n, "--full"]).await;
    assert_eq!(full.code, 0, "{full:?}");
    let waited = rg(&["wait", APP, "-n", &n, "--timeout", "90s"]).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(
        waited.stdout.starts_with(&format!(
            "promoted: revision {} of {n}/web is stable",
            r.spec.canary_revision
        )),
        "{waited:?}"
    );

    // The watch saw the run move and end.
    read_until(&mut watch_out, &mut seen, "Succeeded", 20).await;
    let _ = watch.kill().await;
    assert!(seen.contains("step 1/2 at 10%"), "{seen}");
    assert!(
        seen.contains("step 2/2 at 50%") || seen.contains("Promoting"),
        "{seen}"
    );
    assert!(
        seen.contains("Last run:    ") && seen.contains("Succeeded"),
        "{seen}"
    );
    assert!(!seen.contains('\x1b'), "no escapes when piped");

    let table = rg(&["get", "-n", &n]).await;
    assert!(
        table
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("Steady") && l.contains("Succeeded")),
        "{table:?}"
    );
    w.finish().await;
}

#[tokio::test]
async fn approval_tier_refuses_promote_until_approved_and_wait_exits_0() {
    let w = world("cli-approve", "3s").await;
    let n = w.n().to_string();
    w.approvers(&["bob"]).await;
    deploy(&w, "0.001", "ai-assisted").await;
    until_run(&w, Phase::Progressing, None).await;
    // An approval counts only for the evidence it is given on: not while the steps run.
    let early = rg(&["approve", APP, "-n", &n, "--as", "bob"]).await;
    assert_eq!(early.code, 6, "{early:?}");
    assert!(
        early.error_line().contains("its steps are still running"),
        "{early:?}"
    );
    // promote never stands in for a missing approval.
    let refused = rg(&["promote", APP, "-n", &n, "--full"]).await;
    assert_eq!(refused.code, 6, "{refused:?}");
    assert!(
        refused
            .error_line()
            .contains("requires an approval and it has none"),
        "{refused:?}"
    );

    let r = until_run(&w, Phase::AwaitingApproval, None).await;
    let refused = rg(&["promote", APP, "-n", &n]).await;
    assert_eq!(refused.code, 6, "{refused:?}");
    let mut waiter = rg_spawn(&["wait", APP, "-n", &n, "--timeout", "90s"]);

    // Four eyes: the admin wrote the change (the pause gate stamped them as its author), so
    // the admin's approval is refused.
    let admin = admin_user(&w.client).await;
    assert_eq!(r.spec.author.as_deref(), Some(admin.as_str()));
    let own = rg(&["approve", APP, "-n", &n]).await;
    assert_eq!(own.code, 6, "{own:?}");
    assert!(
        own.error_line()
            .contains(&format!("{admin} wrote the change")),
        "{own:?}"
    );
    let approved = rg(&["approve", APP, "-n", &n, "--as", "bob"]).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    assert!(
        approved.stdout.contains(&format!(
            "approved run {} of Deployment {n}/web as bob",
            r.name_any()
        )),
        "{approved:?}"
    );
    let stored = w.runs().get(&r.name_any()).await.expect("the run");
    assert_eq!(stored.spec.approvals.len(), 1);
    let a = &stored.spec.approvals[0];
    assert_eq!(a.user, "bob");
    assert!(a.groups.contains(&"system:authenticated".to_string()));
    // Bound to the evidence it was given on.
    assert_eq!(a.run.as_deref(), Some(r.name_any().as_str()));
    assert_eq!(a.revision.as_deref(), Some(r.spec.canary_revision.as_str()));
    assert_eq!(a.step, Some(1));

    let again = rg(&["approve", APP, "-n", &n, "--as", "bob"]).await;
    assert!(
        matches!(again.code, 5 | 6),
        "approved already / no run in flight: {again:?}"
    );

    let waited = finish(waiter).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(waited.stdout.contains("tier ai-assisted"), "{waited:?}");
    waiter = rg_spawn(&["wait", APP, "-n", &n]);
    let now_stable = finish(waiter).await;
    assert_eq!(now_stable.code, 0, "nothing to roll out: {now_stable:?}");
    w.finish().await;
}

#[tokio::test]
async fn a_forged_approval_is_refused_by_the_api_server_and_a_real_one_is_accepted() {
    let w = world("cli-forged", "3s").await;
    let n = w.n().to_string();
    let mallory = service_account(&w.client, &n, "mallory", approver_rules()).await;
    deploy(&w, "0.001", "ai-assisted").await;
    let r = until_run(&w, Phase::AwaitingApproval, None).await;

    // mallory may patch runs (RBAC), but not in alice's name: the admission policy refuses.
    let mallory_client = support::client_with_token(&mallory.token).await;
    let runs: Api<RolloutRun> = Api::namespaced(mallory_client, &n);
    let forged = json!([{"op": "add", "path": "/spec/approvals", "value": [
        {"user": "alice@example.com", "time": "2026-01-01T00:00:00Z"}
    ]}]);
    let patch: json_patch::Patch = serde_json::from_value(forged).expect("a JSON patch");
    let refusal = w
        .wait("the forged approval to be refused by the admission policy", Duration::from_secs(30), async || {
            match runs.patch(&r.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch.clone())).await {
                Err(kube::Error::Api(s)) if s.message.contains("forged approval") => Some(s),
                Err(e) => panic!("unexpected error: {e}"),
                // The policy was not loaded yet and the forgery went through: that would
                // promote the run, so the test cannot continue.
                Ok(_) => panic!("the forged approval was accepted: is the rollguard-approvals policy applied?"),
            }
        })
        .await;
    assert!(
        refusal.message.contains("rollguard-approvals"),
        "{refusal:?}"
    );
    assert!(
        refusal.message.contains(&format!(
            "for user \"alice@example.com\", but the request was made by \"{}\"",
            mallory.user
        )),
        "{refusal:?}"
    );
    let still = w.runs().get(&r.name_any()).await.expect("the run");
    assert!(still.spec.approvals.is_empty());
    assert_eq!(run_phase(&still), Phase::AwaitingApproval);

    // A forged command is refused too.
    let forged_abort = json!({"spec": {"control": {"abort": {"user": "alice@example.com", "time": "2026-01-01T00:00:00Z"}}}});
    let e = runs
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(forged_abort),
        )
        .await
        .expect_err("a forged abort is refused");
    assert!(e.to_string().contains("forged command"), "{e}");

    // The run's plan is the operator's snapshot: the approver (who may patch the run) cannot
    // waive the approval, raise the threshold or point the analysis at her own Prometheus.
    let edits = [
        (
            json!({"spec": {"plan": {"requireApproval": false}}}),
            "spec.plan is immutable",
        ),
        (
            json!({"spec": {"plan": {"maxErrorRate": "100%"}}}),
            "spec.plan is immutable",
        ),
        (
            json!({"spec": {"analysis": {"prometheus": {"address": "http://127.0.0.1:9/"}}}}),
            "spec.analysis is immutable",
        ),
        (
            json!({"spec": {"canaryRevision": "0000000000"}}),
            "spec.canaryRevision is immutable",
        ),
    ];
    for (edit, says) in edits {
        let e = runs
            .patch(&r.name_any(), &PatchParams::default(), &Patch::Merge(&edit))
            .await
            .expect_err("an edit of the run's snapshot is refused");
        assert!(
            matches!(&e, kube::Error::Api(s) if s.code == 422 && s.message.contains(says)),
            "{edit}: {e}"
        );
    }
    let still = w.runs().get(&r.name_any()).await.expect("the run");
    assert_eq!(still.spec, r.spec, "the snapshot is unchanged");

    // Four eyes at admission, past the CLI's own check: a well-formed approval in the
    // sender's own name is refused from a ServiceAccount (mallory) and from the change's
    // author (the admin, whom the pause gate stamped).
    let own_approval = |user: &str| {
        let ops = json!([{"op": "add", "path": "/spec/approvals", "value": [{
            "user": user, "time": "2026-01-01T00:00:00Z", "run": r.name_any(),
            "revision": r.spec.canary_revision, "step": 1,
        }]}]);
        serde_json::from_value::<json_patch::Patch>(ops).expect("a JSON patch")
    };
    let by_cli = run_as(&mallory.kubeconfig, &["approve", APP]).await;
    assert_eq!(by_cli.code, 6, "{by_cli:?}");
    assert!(
        by_cli.error_line().contains("is a ServiceAccount"),
        "{by_cli:?}"
    );
    let e = runs
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(own_approval(&mallory.user)),
        )
        .await
        .expect_err("a ServiceAccount's approval is refused");
    assert!(
        e.to_string()
            .contains(&format!("four eyes: {} is a ServiceAccount", mallory.user)),
        "{e}"
    );
    let admin = admin_user(&w.client).await;
    let e = w
        .runs()
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(own_approval(&admin)),
        )
        .await
        .expect_err("the author's approval is refused");
    assert!(
        e.to_string()
            .contains(&format!("four eyes: {admin} wrote the change")),
        "{e}"
    );
    // Without the run, revision and step it approves, an approval is refused too.
    let bare = json!([{"op": "add", "path": "/spec/approvals", "value": [
        {"user": admin, "time": "2026-01-01T00:00:00Z"}]}]);
    let e = w
        .runs()
        .patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(bare).expect("a JSON patch")),
        )
        .await
        .expect_err("an approval without its evidence is refused");
    assert!(e.to_string().contains("must name run"), "{e}");

    // The real one: `approve` records bob as the API server knows him (impersonated by the
    // admin, holding exactly the approver Role).
    w.approvers(&["bob"]).await;
    let approved = rg(&["approve", APP, "-n", &n, "--as", "bob"]).await;
    assert_eq!(approved.code, 0, "{approved:?}");
    let stored = w.runs().get(&r.name_any()).await.expect("the run");
    assert_eq!(stored.spec.approvals.len(), 1);
    assert_eq!(stored.spec.approvals[0].user, "bob");
    // Approvals are append-only: not even their author can take one back or rewrite it.
    for ops in [
        json!([{"op": "remove", "path": "/spec/approvals/0"}]),
        json!([{"op": "replace", "path": "/spec/approvals/0/time", "value": "2030-01-01T00:00:00Z"}]),
    ] {
        let patch: json_patch::Patch = serde_json::from_value(ops.clone()).expect("a JSON patch");
        let e = runs
            .patch(
                &r.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
            .expect_err("a removed or changed approval is refused");
        assert!(
            e.to_string().contains("spec.approvals is append-only"),
            "{ops}: {e}"
        );
    }
    let waited = rg(&["wait", APP, "-n", &n, "--timeout", "90s"]).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    w.finish().await;
}

#[tokio::test]
async fn abort_records_who_and_why_wait_exits_11_and_retry_starts_a_second_attempt() {
    let w = world("cli-abort", "60s").await;
    let n = w.n().to_string();
    deploy(&w, "0.001", "human").await;
    let r = until_run(&w, Phase::Progressing, Some(0)).await;
    let waiter = rg_spawn(&["wait", APP, "-n", &n]);

    let aborted = rg(&["abort", APP, "-n", &n, "--reason", "dashboards look wrong"]).await;
    assert_eq!(aborted.code, 0, "{aborted:?}");
    let waited = finish(waiter).await;
    assert_eq!(waited.code, 11, "{waited:?}");
    let admin = admin_user(&w.client).await;
    assert!(
        waited.stdout.starts_with(&format!(
            "aborted: revision {} of {n}/web",
            r.spec.canary_revision
        )) && waited
            .stdout
            .contains(&format!("aborted by {admin}: dashboards look wrong")),
        "{waited:?}"
    );
    assert!(
        waited
            .stdout
            .contains("requests: sum(increase(http_requests_total"),
        "the evidence: {waited:?}"
    );
    let stored = w.runs().get(&r.name_any()).await.expect("the run");
    let cmd = stored
        .spec
        .control
        .and_then(|c| c.abort)
        .expect("the abort command");
    assert_eq!(
        (cmd.user.as_str(), cmd.reason.as_deref()),
        (admin.as_str(), Some("dashboards look wrong"))
    );
    let failed = w.deployment().await.annotations().get(FAILED).cloned();
    assert_eq!(failed.as_deref(), Some(r.spec.canary_revision.as_str()));

    // Nothing in flight now.
    let again = rg(&["abort", APP, "-n", &n]).await;
    assert_eq!(again.code, 5, "{again:?}");
    assert!(
        again.error_line().contains("no run in flight") && again.stderr.contains("`retry`"),
        "{again:?}"
    );
    let table = rg(&["get", "-n", &n]).await;
    assert!(
        table
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("Blocked") && l.contains("Aborted")),
        "{table:?}"
    );

    // retry: the mark goes, attempt 2 starts and runs to the end.
    let retried = rg(&["retry", APP, "-n", &n]).await;
    assert_eq!(retried.code, 0, "{retried:?}");
    let second = format!("{}-2", r.name_any());
    assert!(retried.stdout.contains(&second), "{retried:?}");
    assert!(!w.deployment().await.annotations().contains_key(FAILED));
    w.wait("attempt 2", Duration::from_secs(30), async || {
        w.runs().get(&second).await.ok()
    })
    .await;
    let busy = rg(&["retry", APP, "-n", &n]).await;
    assert_eq!(busy.code, 6, "a run is in flight: {busy:?}");
    let full = rg(&["promote", APP, "-n", &n, "--full"]).await;
    assert_eq!(full.code, 0, "{full:?}");
    let waited = rg(&["wait", APP, "-n", &n, "--timeout", "90s"]).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    assert!(waited.stdout.contains(&second), "{waited:?}");
    let nothing = rg(&["retry", APP, "-n", &n]).await;
    assert_eq!(nothing.code, 6, "{nothing:?}");
    assert!(
        nothing.error_line().contains("nothing to retry"),
        "{nothing:?}"
    );
    w.finish().await;
}

#[tokio::test]
async fn a_bad_canary_makes_wait_exit_10_with_the_evidence() {
    let w = world("cli-rollback", "3s").await;
    let n = w.n().to_string();
    deploy(&w, "0.5", "human").await;
    let waited = rg(&["wait", APP, "-n", &n, "--timeout", "90s"]).await;
    assert_eq!(waited.code, 10, "{waited:?}");
    assert!(
        waited.stdout.starts_with("rolled back: revision "),
        "{waited:?}"
    );
    assert!(
        waited.stdout.contains("is above the threshold 5%"),
        "{waited:?}"
    );
    assert!(
        waited.stdout.contains("Evidence:") && waited.stdout.contains(": Fail"),
        "{waited:?}"
    );
    assert!(
        waited
            .stdout
            .contains(&format!("namespace=\"{n}\",workload=\"web-canary\"")),
        "the queries as sent: {waited:?}"
    );
    // Waiting again on the same (failed) template answers at once with the same verdict.
    let again = rg(&["wait", APP, "-n", &n]).await;
    assert_eq!(again.code, 10, "{again:?}");
    let detail = rg(&["get", APP, "-n", &n]).await;
    assert!(
        detail.stdout.contains("Retry:       revision "),
        "{detail:?}"
    );
    w.finish().await;
}

#[tokio::test]
async fn pause_holds_the_run_and_resume_releases_it() {
    let w = world("cli-pause", "3s").await;
    let n = w.n().to_string();
    deploy(&w, "0.001", "human").await;
    // Paused as soon as the run exists, well inside its first 3 s step.
    let r = until_run(&w, Phase::Progressing, None).await;
    let paused = rg(&["pause", APP, "-n", &n, "--reason", "checking logs"]).await;
    assert_eq!(paused.code, 0, "{paused:?}");
    let step = w
        .runs()
        .get(&r.name_any())
        .await
        .expect("the run")
        .status
        .map(|s| s.step);
    // Held: well past the 3 s pause, at the same step (or, on the last, not promoting).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held = w.runs().get(&r.name_any()).await.expect("the run");
    let st = held.status.clone().expect("status");
    assert_eq!(
        (st.phase, Some(st.step)),
        (Phase::Progressing, step),
        "{st:?}"
    );
    let waiting = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Waiting")
        .expect("a Waiting condition");
    assert_eq!(waiting.reason, "Paused");
    let admin = admin_user(&w.client).await;
    let cmd = held
        .spec
        .control
        .and_then(|c| c.pause)
        .expect("the pause command");
    assert_eq!(
        (cmd.user.as_str(), cmd.reason.as_deref()),
        (admin.as_str(), Some("checking logs"))
    );
    let detail = rg(&["get", APP, "-n", &n]).await;
    assert!(
        detail.stdout.contains(&format!("paused by {admin}"))
            && detail.stdout.contains("Waiting:     Paused"),
        "{detail:?}"
    );

    let twice = rg(&["pause", APP, "-n", &n]).await;
    assert_eq!(twice.code, 6, "{twice:?}");
    let promote = rg(&["promote", APP, "-n", &n]).await;
    assert_eq!(promote.code, 6, "{promote:?}");
    assert!(promote.error_line().contains("resume"), "{promote:?}");

    let resumed = rg(&["resume", APP, "-n", &n]).await;
    assert_eq!(resumed.code, 0, "{resumed:?}");
    let stored = w.runs().get(&r.name_any()).await.expect("the run");
    assert!(stored.spec.control.and_then(|c| c.pause).is_none());
    let not_paused = rg(&["resume", APP, "-n", &n]).await;
    assert!(matches!(not_paused.code, 5 | 6), "{not_paused:?}");
    let waited = rg(&["wait", APP, "-n", &n, "--timeout", "90s"]).await;
    assert_eq!(waited.code, 0, "{waited:?}");
    w.finish().await;
}

#[tokio::test]
async fn wait_times_out_with_13_and_exits_12_when_a_newer_template_supersedes_the_run() {
    let w = world("cli-wait", "60s").await;
    let n = w.n().to_string();
    deploy(&w, "0.001", "human").await;
    until_run(&w, Phase::Progressing, None).await;
    let started = Instant::now();
    let timed_out = rg(&["wait", APP, "-n", &n, "--timeout", "2s"]).await;
    assert_eq!(timed_out.code, 13, "{timed_out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        timed_out.stdout.starts_with("timed out after 2s"),
        "{timed_out:?}"
    );

    let waiter = rg_spawn(&["wait", APP, "-n", &n]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    deploy(&w, "0.001", "human").await;
    let waited = finish(waiter).await;
    assert_eq!(waited.code, 12, "{waited:?}");
    assert!(waited.stdout.starts_with("superseded: run "), "{waited:?}");
    w.finish().await;
}

#[tokio::test]
async fn errors_are_one_line_with_distinct_exit_codes() {
    let w = world("cli-errors", "60s").await;
    let n = w.n().to_string();
    // A Deployment no policy selects.
    create(
        &w.deployments(),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "loner"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "loner"}},
                "template": {"metadata": {"labels": {"app": "loner"}}, "spec": {"containers": [{"name": "app", "image": "example.com/loner:1"}]}}
            }
        }),
    )
    .await;

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["get", "nope"], 3, "no Deployment nope in namespace"),
        (
            vec!["approve", "nope"],
            3,
            "no Deployment nope in namespace",
        ),
        (
            vec!["get", "loner"],
            4,
            "is not governed by rollguard: no RolloutPolicy",
        ),
        (vec!["abort", "loner"], 4, "is not governed by rollguard"),
        (vec!["abort", APP], 5, "no run in flight for Deployment"),
        (vec!["approve", APP], 5, "no run in flight for Deployment"),
        (vec!["promote", APP], 5, "no run in flight for Deployment"),
        (vec!["retry", APP], 6, "nothing to retry"),
    ];
    for (args, code, text) in &cases {
        let mut full = args.clone();
        full.extend(["-n", n.as_str()]);
        let out = rg(&full).await;
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        assert!(out.error_line().contains(text), "{args:?}: {out:?}");
    }

    // Not waiting for approval: the standard tier needs none.
    deploy(&w, "0.001", "human").await;
    until_run(&w, Phase::Progressing, None).await;
    let out = rg(&["approve", APP, "-n", &n]).await;
    assert_eq!(out.code, 6, "{out:?}");
    assert!(
        out.error_line().contains(
            "is not waiting for approval: its tier standard does not require an approval"
        ),
        "{out:?}"
    );

    // Permission denied, naming the verb and the resource.
    let nobody = service_account(&w.client, &n, "nobody", json!([])).await;
    let out = run_as(&nobody.kubeconfig, &["get", APP]).await;
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(
        out.error_line(),
        format!(
            "error: permission denied: {} cannot get deployments.apps in namespace {n}; ask your cluster admin for a Role that allows it",
            nobody.user
        )
    );
    let reader = service_account(
        &w.client,
        &n,
        "reader",
        json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["rollguard.dev"], "resources": ["rolloutpolicies", "rolloutruns"], "verbs": ["get", "list", "watch"]},
        ]),
    )
    .await;
    let out = run_as(&reader.kubeconfig, &["get", APP]).await;
    assert_eq!(out.code, 0, "a reader may look: {out:?}");
    let out = run_as(&reader.kubeconfig, &["abort", APP]).await;
    assert_eq!(out.code, 7, "{out:?}");
    assert!(
        out.error_line()
            .contains("cannot patch rolloutruns.rollguard.dev in namespace"),
        "{out:?}"
    );
    let out = run_as(&reader.kubeconfig, &["get", "-A"]).await;
    assert_eq!(out.code, 7, "{out:?}");
    assert!(
        out.error_line()
            .contains("cannot list deployments.apps in all namespaces"),
        "{out:?}"
    );

    // The API server unreachable.
    let admin = std::fs::read_to_string(support::kubeconfig_path()).expect("kubeconfig");
    let mut kc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&admin).expect("yaml");
    kc["clusters"][0]["cluster"]["server"] =
        serde_yaml_ng::Value::String("https://127.0.0.1:1".into());
    let dead = tempdir("dead").join("kubeconfig");
    std::fs::write(&dead, serde_yaml_ng::to_string(&kc).expect("yaml")).expect("writing");
    for verb in ["get", "wait", "approve"] {
        let out = run_as(&dead, &[verb, APP, "-n", &n]).await;
        assert_eq!(out.code, 8, "{verb}: {out:?}");
        assert!(
            out.error_line().starts_with(
                "error: cannot reach the Kubernetes API server at https://127.0.0.1:1"
            ),
            "{out:?}"
        );
    }
    // Bad arguments are clap's usage errors.
    let out = rg(&["wait", APP, "--timeout", "soon"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    w.finish().await;
}

#[tokio::test]
async fn tag_reads_the_trailers_of_real_commits() {
    let repo = tempdir("git");
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.com",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    let commit = |msg: &str| {
        git(&["commit", "-q", "--allow-empty", "-m", msg]);
        git(&["rev-parse", "HEAD"])
    };
    let base = commit("Initial commit");
    commit("Paint the dashboard\n\nCo-authored-by: Claude Monet <claude@monet.fr>");
    let ai = commit(
        "Add retry\n\nCopilot was not involved.\n\nCo-Authored-By: Claude <noreply@anthropic.com>",
    );
    let human = commit("Fix typo\n\nSigned-off-by: Ann <ann@example.com>");
    let repo_s = repo.to_string_lossy().to_string();
    let tag = |args: Vec<String>| {
        let mut a = vec!["tag".to_string(), "--repo".into(), repo_s.clone()];
        a.extend(args);
        async move {
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            rg(&refs).await
        }
    };
    let out = tag(vec!["--from-git".into(), human.clone()]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "human\n"), "{out:?}");
    let out = tag(vec!["--from-git".into(), ai.clone()]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "ai-assisted\n"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("Co-Authored-By: Claude <noreply@anthropic.com>"),
        "{out:?}"
    );
    let out = tag(vec!["--from-git".into(), format!("{ai}~1")]).await;
    assert_eq!(out.stdout, "human\n", "Claude Monet is a person: {out:?}");
    // A range (a pull request's commits) takes the strongest origin.
    let out = tag(vec![
        "--from-git".into(),
        format!("{base}..HEAD"),
        "-o".into(),
        "helm".into(),
    ])
    .await;
    assert_eq!(
        out.stdout, "--set-string podAnnotations.rollguard\\.dev/change-origin=ai-assisted\n",
        "{out:?}"
    );
    let out = tag(vec![
        "--from-git".into(),
        format!("{base}..HEAD"),
        "-o".into(),
        "json".into(),
    ])
    .await;
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v["origin"], "ai-assisted");
    assert_eq!(v["commits"].as_array().map(Vec::len), Some(3));
    // The assistant list is configurable: here Monet counts.
    let mut c = cli(
        &support::kubeconfig_path(),
        &["tag", "--repo", &repo_s, "--from-git", &format!("{ai}~1")],
    );
    c.env("ROLLGUARD_AI_ASSISTANTS", "default,*@monet.fr");
    let out = finish(c.spawn().expect("tag")).await;
    assert_eq!(out.stdout, "ai-assisted\n", "{out:?}");
    let out = tag(vec!["--from-git".into(), "no-such-rev".into()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.error_line().contains("git log no-such-rev failed"),
        "{out:?}"
    );
}

/// Reads a child's output into `seen` until it contains `needle` (or `secs` pass).
async fn read_until(
    out: &mut tokio::process::ChildStdout,
    seen: &mut String,
    needle: &str,
    secs: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !seen.contains(needle) && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(1), out.read(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(k)) => seen.push_str(&String::from_utf8_lossy(&buf[..k])),
            _ => {}
        }
    }
}

/// Runs a shell command with its stdout on a pseudo-terminal (script(1)) and returns what it
/// printed.
async fn on_a_terminal(command: &str) -> String {
    let out = tokio::process::Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .env("KUBECONFIG", support::kubeconfig_path())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("script(1) runs the command on a pty");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh directory under target/e2e-logs.
fn tempdir(what: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "target/e2e-logs/cli-{what}-{}",
        support::unique_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// What the run guard refuses, tried by a ServiceAccount whose RBAC allows it all: creating a
/// run, writing a run's or a policy's status, deleting a run in flight. Each refusal names
/// the object; the run goes on untouched; once ended, the run may be deleted (history).
#[tokio::test]
async fn only_the_operator_creates_runs_writes_status_and_deletes_a_run_in_flight() {
    use kube::api::DeleteParams;
    use rollguard::api::RolloutPolicy;
    let w = world("guard", "60s").await;
    let n = w.n().to_string();
    let rules = json!([
        {"apiGroups": ["rollguard.dev"], "resources": ["rolloutruns"],
         "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
        {"apiGroups": ["rollguard.dev"], "resources": ["rolloutruns/status", "rolloutpolicies/status"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": ["rollguard.dev"], "resources": ["rolloutpolicies"], "verbs": ["get", "list"]},
    ]);
    let eve = service_account(&w.client, &n, "eve", rules).await;
    deploy(&w, "0.001", "human").await;
    let r = until_run(&w, Phase::Progressing, Some(0)).await;
    let eve_client = support::client_with_token(&eve.token).await;
    let runs: Api<RolloutRun> = Api::namespaced(eve_client.clone(), &n);
    let policies: Api<RolloutPolicy> = Api::namespaced(eve_client, &n);
    let forged = json!({"status": {"phase": "Promoting"}});
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    // The guard loads asynchronously: a dry run (which changes nothing) shows it in force.
    w.wait(
        "the run guard in force",
        Duration::from_secs(30),
        async || match runs
            .patch_status(&r.name_any(), &dry, &Patch::Merge(&forged))
            .await
        {
            Err(kube::Error::Api(s)) if s.code == 403 => Some(()),
            _ => None,
        },
    )
    .await;
    let refused = |e: kube::Error, says: &str| match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(s.message.contains("rollguard-runs-guard"), "{}", s.message);
            assert!(s.message.contains(says), "{}", s.message);
        }
        e => panic!("not a refusal: {e}"),
    };
    let e = runs
        .patch_status(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&forged),
        )
        .await
        .expect_err("a forged run status is refused");
    refused(
        e,
        &format!(
            "the status of rolloutruns {n}/{} is written by the rollguard operator only",
            r.name_any()
        ),
    );
    let e = policies
        .patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": []}})),
        )
        .await
        .expect_err("a forged policy status is refused");
    refused(e, &format!("the status of rolloutpolicies {n}/shop"));
    let mut planted: RolloutRun = RolloutRun::new("web-planted", r.spec.clone());
    planted.metadata.namespace = Some(n.clone());
    let e = runs
        .create(&PostParams::default(), &planted)
        .await
        .expect_err("a planted run is refused");
    refused(e, "RolloutRuns are created by the rollguard operator only");
    let e = runs
        .delete(&r.name_any(), &DeleteParams::default())
        .await
        .expect_err("deleting a run in flight is refused");
    refused(e, "is in flight: only the rollguard operator deletes it");
    // The run went on as if nothing had been tried.
    let still = w.runs().get(&r.name_any()).await.expect("the run");
    assert_eq!(run_phase(&still), Phase::Progressing);
    assert!(
        w.runs()
            .get_opt("web-planted")
            .await
            .expect("get")
            .is_none()
    );
    // Ended, it is history: eve may delete it.
    let aborted = rg(&["abort", APP, "-n", &n, "--reason", "guard test"]).await;
    assert_eq!(aborted.code, 0, "{aborted:?}");
    until_run(&w, Phase::Aborted, None).await;
    runs.delete(&r.name_any(), &DeleteParams::default())
        .await
        .expect("an ended run may be deleted");
    w.finish().await;
}
