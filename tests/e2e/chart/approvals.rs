//! The approval admission policy refuses approvals and commands forged in someone else's
//! name.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::helm::chart_dir;
use super::release::{
    Release, alone, release_name, run_object, runs_resource, status_code, token_for,
};
use crate::support::{self, test_namespace, wait_for};

fn api_message<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn approval_policy_refuses_forged_approvals_and_commands() {
    let _cluster = alone().await;
    // Only this release's policy answers (not the CLI tests' copy of the chart's).
    support::admission::remove();
    let admin = support::client().await;
    let ns = test_namespace(&admin, "chart-approvals").await;
    let n = ns.name.clone();
    let name = release_name("rg-vap");
    let (release, _) = Release::install(&admin, &chart_dir(), &name, &n, &["replicaCount=1"]).await;

    // alice may get and patch runs (RBAC), and nothing in the policy stops her from doing so
    // in her own name.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &n);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "alice"}})).expect("sa");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("creating alice");
    let role = Role {
        metadata: ObjectMeta {
            name: Some("run-approver".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["rollguard.dev".into()]),
            resources: Some(vec!["rolloutruns".into()]),
            verbs: vec!["get".into(), "patch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &n)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-approves".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "run-approver".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "alice".into(),
            namespace: Some(n.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &n)
        .create(&PostParams::default(), &binding)
        .await
        .expect("creating the RoleBinding");
    let admin_runs: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &n, &runs_resource());
    // A run that awaits an approval, from a tier that lets a ServiceAccount (alice) approve:
    // what this test shows is who an approval may name, not four eyes (cli.rs shows those).
    let mut run = run_object("web-7f6b5c4d3", &n);
    run.data["spec"]["plan"]["requireApproval"] = json!(true);
    run.data["spec"]["plan"]["allowServiceAccountApproval"] = json!(true);
    admin_runs
        .create(&PostParams::default(), &run)
        .await
        .expect("creating the run");
    admin_runs
        .patch_status(
            "web-7f6b5c4d3",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "AwaitingApproval", "step": 0}})),
        )
        .await
        .expect("the run awaits approval");

    let alice_user = format!("system:serviceaccount:{n}:alice");
    let alice = support::client_with_token(&token_for(&admin, &n, "alice").await).await;
    let runs: Api<DynamicObject> = Api::namespaced_with(alice.clone(), &n, &runs_resource());
    let approve = |user: &str, groups: Vec<&str>, time: &str| json!([{"op": "add", "path": "/spec/approvals", "value": [{"user": user, "groups": groups, "time": time, "run": "web-7f6b5c4d3", "revision": "7f6b5c4d3", "step": 0}]}]);
    let json_patch = |v: Value| {
        Patch::Json::<()>(serde_json::from_value::<json_patch::Patch>(v).expect("a JSON patch"))
    };
    let merge = PatchParams::default();
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };

    // The policy is loaded asynchronously: wait until a forged approval (dry run, so nothing is
    // written while waiting) is refused.
    wait_for(
        Duration::from_secs(30),
        "the approval policy to be in force",
        async || {
            let r = runs
                .patch(
                    "web-7f6b5c4d3",
                    &dry,
                    &json_patch(approve("bob", vec![], "2026-01-01T00:00:00Z")),
                )
                .await;
            (status_code(&r) == Some(403)).then_some(())
        },
    )
    .await;

    // An approval in bob's name, sent by alice: refused, and the message says what was forged.
    let (code, msg) = api_message(
        runs.patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve("bob", vec![], "2026-01-01T00:00:00Z")),
        )
        .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains(&format!("{}-approvals", release.fullname())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "forged approval: spec.approvals gained an entry for user \"bob\", but the request was made by \"{alice_user}\""
        )),
        "{msg}"
    );
    // Claiming a group she is not in: refused too.
    let (code, msg) = api_message(
        runs.patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve(
                &alice_user,
                vec!["system:masters"],
                "2026-01-01T00:00:00Z",
            )),
        )
        .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("claiming group \"system:masters\""), "{msg}");
    // In her own name (with a group she is in): accepted and recorded.
    let r = runs
        .patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve(
                &alice_user,
                vec!["system:serviceaccounts"],
                "2026-01-01T00:00:00Z",
            )),
        )
        .await
        .expect("alice approving in her own name");
    assert_eq!(r.data["spec"]["approvals"][0]["user"], alice_user.as_str());
    // An unrelated change keeps the existing approval and passes.
    let label = json!({"metadata": {"labels": {"reviewed": "yes"}}});
    runs.patch("web-7f6b5c4d3", &merge, &Patch::Merge(&label))
        .await
        .expect("an unrelated patch");

    // Commands: each must name the user who gives it.
    for cmd in ["abort", "pause", "promote"] {
        let forged =
            json!({"spec": {"control": {cmd: {"user": "bob", "time": "2026-01-01T00:00:00Z"}}}});
        let (code, msg) = api_message(
            runs.patch("web-7f6b5c4d3", &merge, &Patch::Merge(&forged))
                .await,
        );
        assert_eq!(code, 403, "{msg}");
        assert!(
            msg.contains(&format!(
                "forged command: spec.control.{cmd}.user is \"bob\", but the request was made by \"{alice_user}\""
            )),
            "{msg}"
        );
    }
    let own = json!({"spec": {"control": {"pause": {"user": alice_user, "time": "2026-01-01T00:00:00Z", "reason": "looking"}}}});
    let r = runs
        .patch("web-7f6b5c4d3", &merge, &Patch::Merge(&own))
        .await
        .expect("alice pausing in her own name");
    assert_eq!(
        r.data["spec"]["control"]["pause"]["user"],
        alice_user.as_str()
    );
    // A later patch that leaves her command as it is passes even when sent by someone else
    // (the admin here): only entries that appear or change are checked.
    admin_runs
        .patch(
            "web-7f6b5c4d3",
            &merge,
            &Patch::Merge(&json!({"metadata": {"labels": {"seen": "admin"}}})),
        )
        .await
        .expect("an unrelated admin patch");
    // The admin is not exempt either.
    let forged_by_admin = json!({"spec": {"control": {"abort": {"user": alice_user, "time": "2026-01-01T00:00:01Z"}}}});
    let (code, msg) = api_message(
        admin_runs
            .patch("web-7f6b5c4d3", &merge, &Patch::Merge(&forged_by_admin))
            .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("spec.control.abort.user"), "{msg}");

    // The operator's own ServiceAccount is not exempt, and may not patch a run at all: it
    // writes runs by create, a status patch and delete only.
    let op = support::client_with_token(&token_for(&admin, &n, &release.fullname()).await).await;
    let op_runs: Api<DynamicObject> = Api::namespaced_with(op, &n, &runs_resource());
    let on_behalf = json_patch(json!([{"op": "add", "path": "/spec/approvals/-",
                                       "value": {"user": "bob", "time": "2026-01-01T00:00:02Z"}}]));
    let (code, msg) = api_message(op_runs.patch("web-7f6b5c4d3", &merge, &on_behalf).await);
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("cannot patch resource \"rolloutruns\""),
        "{msg}"
    );
    // A run it creates with an approval in someone else's name is refused by the policy.
    let mut planted = run_object("web-0a1b2c3d4", &n);
    planted.data["spec"]["approvals"] = json!([{"user": "bob", "time": "2026-01-01T00:00:02Z"}]);
    let (code, msg) = api_message(op_runs.create(&PostParams::default(), &planted).await);
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("spec.approvals"), "{msg}");
    assert_eq!(
        release.username(),
        format!("system:serviceaccount:{n}:{}", release.fullname())
    );

    release.uninstall();
    ns.cleanup().await;
}
