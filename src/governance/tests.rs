//! The index answers like the operator and the CLI always meant to: given policies, runs and
//! Deployments in a namespace, then these are the governor, the run in flight and the reach.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::*;
use crate::api::run::RolloutRun;

fn deployment(ns: &str, name: &str, labels: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}}}
    }))
    .expect("a Deployment")
}

fn policy(ns: &str, name: &str, team: &str, deleting: bool) -> RolloutPolicy {
    let mut v = json!({
        "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"team": team}},
                 "analysis": {"interval": "15s", "requests": "r", "errors": "e"}}
    });
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!("2026-11-28T10:00:00Z");
    }
    serde_json::from_value(v).expect("a policy")
}

fn run(
    ns: &str,
    name: &str,
    deployment: &str,
    policy: &str,
    created: &str,
    phase: &str,
) -> RolloutRun {
    serde_json::from_value(json!({
        "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                     "labels": {"rollguard.dev/policy": policy}},
        "spec": {"deployment": deployment, "policy": policy, "stableRevision": "a",
                 "canaryRevision": "b", "tier": {"name": "ai", "reason": "r"},
                 "plan": {"name": "ai", "steps": [{"weight": "1%", "pause": "1m"}],
                          "maxErrorRate": "1%"},
                 "analysis": {"interval": "15s", "requests": "r", "errors": "e"},
                 "router": "replicas"},
        "status": {"phase": phase}
    }))
    .expect("a run")
}

fn names_of(g: &Governor) -> (&'static str, Vec<String>) {
    match g {
        Governor::Nobody => ("nobody", vec![]),
        Governor::One(p) => ("one", vec![p.name_any()]),
        Governor::Conflict(ps) => ("conflict", ps.iter().map(|p| p.name_any()).collect()),
    }
}

fn phase_of(r: &RolloutRun) -> Phase {
    r.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

#[test]
fn one_policy_governs_two_conflict_and_a_deleting_one_is_not_in_force() {
    let web = deployment("shop", "web", json!({"team": "shop"}));
    let api = deployment("shop", "api", json!({"team": "shop", "tier": "api"}));
    let other_ns = deployment("cart", "web", json!({"team": "shop"}));
    let shop = policy("shop", "shop", "shop", false);
    let leaving = policy("shop", "leaving", "shop", true);
    let index = Index::new([&shop, &leaving], [], phase_of);
    assert_eq!(
        names_of(&index.governor(&web)),
        ("one", vec!["shop".to_string()])
    );
    assert_eq!(
        names_of(&index.governor(&other_ns)),
        ("nobody", vec![]),
        "namespaces never mix"
    );

    let second = policy("shop", "second", "shop", false);
    let index = Index::new([&shop, &second], [], phase_of);
    assert_eq!(
        names_of(&index.governor(&api)),
        ("conflict", vec!["shop".to_string(), "second".to_string()])
    );
    let reach = index.reach(&shop, [&web, &api, &other_ns]);
    assert!(reach.governed.is_empty());
    let conflicts: Vec<(String, Vec<String>)> = reach
        .conflicts
        .iter()
        .map(|(d, o)| (d.name_any(), o.clone()))
        .collect();
    assert_eq!(
        conflicts,
        vec![
            ("web".to_string(), vec!["second".to_string()]),
            ("api".to_string(), vec!["second".to_string()])
        ]
    );
}

#[test]
fn a_canary_is_never_governed() {
    let canary = deployment(
        "shop",
        "web-canary",
        json!({"team": "shop", "rollguard.dev/role": "canary"}),
    );
    let shop = policy("shop", "shop", "shop", false);
    let index = Index::new([&shop], [], phase_of);
    assert_eq!(names_of(&index.governor(&canary)), ("nobody", vec![]));
    assert!(index.reach(&shop, [&canary]).governed.is_empty());
}

/// The run in flight is the newest that has not ended, whatever order the cache lists them
/// in; runs created in the same second are ordered by name, as the CLI always did.
#[test]
fn the_active_run_is_the_newest_unfinished_one_and_ties_break_by_name() {
    let web = deployment("shop", "web", json!({"team": "shop"}));
    let t = "2026-11-28T10:00:00Z";
    let runs = [
        run(
            "shop",
            "web-c",
            "web",
            "shop",
            "2026-11-28T10:05:00Z",
            "Superseded",
        ),
        run("shop", "web-b2", "web", "shop", t, "Progressing"),
        run("shop", "web-b1", "web", "shop", t, "Progressing"),
        run(
            "shop",
            "web-a",
            "web",
            "shop",
            "2026-11-28T09:00:00Z",
            "RolledBack",
        ),
        run(
            "shop",
            "api-x",
            "api",
            "shop",
            "2026-11-28T11:00:00Z",
            "Progressing",
        ),
        run(
            "cart",
            "web-y",
            "web",
            "shop",
            "2026-11-28T11:00:00Z",
            "Progressing",
        ),
    ];
    let index = Index::new([], &runs, phase_of);
    let names = |rs: Vec<&RolloutRun>| rs.iter().map(|r| r.name_any()).collect::<Vec<_>>();
    assert_eq!(
        names(index.runs_of(&web)),
        ["web-a", "web-b1", "web-b2", "web-c"]
    );
    assert_eq!(
        index.active_run(&web).map(|r| r.name_any()).as_deref(),
        Some("web-b2")
    );
    assert_eq!(names(index.finished_runs(&web)), ["web-a", "web-c"]);
    assert_eq!(index.active_runs(None), 4);
}

/// The operator asks with the status it last wrote: a run it just ended is not in flight
/// even while its cache still shows it Progressing.
#[test]
fn the_phase_comes_from_the_caller() {
    let web = deployment("shop", "web", json!({"team": "shop"}));
    let runs = [run(
        "shop",
        "web-a",
        "web",
        "shop",
        "2026-11-28T10:00:00Z",
        "Progressing",
    )];
    let index = Index::new([], &runs, |_| Phase::Succeeded);
    assert!(index.active_run(&web).is_none());
    assert_eq!(index.finished_runs(&web).len(), 1);
}

#[test]
fn a_policys_active_runs_are_counted_by_its_label_in_its_namespace() {
    let shop = policy("shop", "shop", "shop", false);
    let runs = [
        run(
            "shop",
            "a",
            "web",
            "shop",
            "2026-11-28T10:00:00Z",
            "Progressing",
        ),
        run(
            "shop",
            "b",
            "api",
            "shop",
            "2026-11-28T10:00:00Z",
            "AwaitingApproval",
        ),
        run(
            "shop",
            "c",
            "api",
            "shop",
            "2026-11-28T09:00:00Z",
            "Succeeded",
        ),
        run(
            "shop",
            "d",
            "db",
            "other",
            "2026-11-28T10:00:00Z",
            "Progressing",
        ),
        run(
            "cart",
            "e",
            "web",
            "shop",
            "2026-11-28T10:00:00Z",
            "Progressing",
        ),
    ];
    let index = Index::new([&shop], &runs, phase_of);
    assert_eq!(index.active_runs(Some(&shop)), 2);
    assert_eq!(index.active_runs(None), 4);
}

#[test]
fn a_deployments_view_reads_its_template_and_rollguards_annotations() {
    let mut d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "generation": 3,
                     "annotations": {"rollguard.dev/stable-revision": "aaa",
                                     "rollguard.dev/failed-revision": "bbb",
                                     "rollguard.dev/policy": "shop"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}}},
        "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
                   "availableReplicas": 2}
    }))
    .expect("a Deployment");
    let v = view(&d);
    assert_eq!(v.stable_revision.as_deref(), Some("aaa"));
    assert_eq!(v.failed_revision.as_deref(), Some("bbb"));
    assert_eq!(v.template_revision, template_revision(&d));
    assert!(v.rollout_complete);
    assert_eq!(governed_by(&d), Some("shop"));
    // Not complete while the controller has not seen the newest generation, or a pod is
    // not yet updated.
    d.metadata.generation = Some(4);
    assert!(!rollout_complete(&d));
    d.metadata.generation = Some(3);
    d.status.as_mut().expect("status").updated_replicas = Some(1);
    assert!(!rollout_complete(&d));
}

#[test]
fn a_template_rollguard_has_not_passed_is_unvetted() {
    let mut d = deployment("shop", "web", json!({"app": "web"}));
    let t = template_revision(&d);
    let with = |d: &mut Deployment, stable: &str, failed: Option<&str>| {
        let a = d.metadata.annotations.get_or_insert_with(Default::default);
        a.insert(STABLE_REVISION.into(), stable.into());
        match failed {
            Some(f) => a.insert(FAILED_REVISION.into(), f.into()),
            None => a.remove(FAILED_REVISION),
        };
    };
    // Not adopted: nothing to hold (rollguard never paused it for a verdict).
    assert_eq!(unvetted(&d, None, false), None);
    with(&mut d, &t, None);
    assert_eq!(unvetted(&d, None, false), None, "the stable revision");
    with(&mut d, "aaaa", Some(&t));
    let why = unvetted(&d, None, false).expect("rolled back");
    assert!(why.contains("rolled back"), "{why}");
    with(&mut d, "aaaa", None);
    let why = unvetted(&d, Some("web-x-1"), false).expect("under trial");
    assert!(why.contains("run web-x-1 was still judging"), "{why}");
    assert!(
        unvetted(&d, None, false)
            .expect("new")
            .contains("has not judged")
    );
    assert_eq!(
        unvetted(&d, Some("web-x-1"), true),
        None,
        "its run passed: promoting"
    );
}

#[test]
fn the_field_manager_that_unpaused_is_named() {
    let mut d = deployment("shop", "web", json!({"app": "web"}));
    let entry = |manager: &str, fields: serde_json::Value| {
        serde_json::from_value(json!({"manager": manager, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": fields}))
            .expect("a managedFields entry")
    };
    d.metadata.managed_fields = Some(vec![
        entry("kube-controller-manager", json!({"f:status": {}})),
        entry("rollguard", json!({"f:spec": {"f:paused": {}}})),
    ]);
    assert_eq!(paused_by_other(&d), None, "rollguard owns it");
    d.metadata.managed_fields = Some(vec![
        entry("rollguard", json!({"f:metadata": {"f:annotations": {}}})),
        entry("kubectl-rollout", json!({"f:spec": {"f:paused": {}}})),
    ]);
    let manager = |m: &str| Unpauser {
        user: None,
        manager: Some(m.into()),
    };
    assert_eq!(paused_by_other(&d), Some(manager("kubectl-rollout")));
    d.metadata.managed_fields = None;
    assert_eq!(paused_by_other(&d), Some(Unpauser::default()));
    // The admission stamp names the user even when no manager is left.
    d.metadata.annotations =
        Some([("rollguard.dev/unpaused-by".to_string(), "alice".to_string())].into());
    assert_eq!(
        paused_by_other(&d),
        Some(Unpauser {
            user: Some("alice".into()),
            manager: None
        })
    );
}

#[test]
fn an_unpause_is_described_by_who_is_known() {
    let u = |user: Option<&str>, manager: Option<&str>| Unpauser {
        user: user.map(Into::into),
        manager: manager.map(Into::into),
    };
    let cases = [
        (
            u(Some("alice"), None),
            "Repause-alice",
            "user alice removed spec.paused (as `kubectl rollout resume` does) and",
        ),
        (
            u(
                Some("system:serviceaccount:argocd:argocd-application-controller"),
                Some("argocd-controller"),
            ),
            "Repause-system:serviceaccount:argocd:argocd-application-controller",
            "user system:serviceaccount:argocd:argocd-application-controller (field manager argocd-controller) set spec.paused to false and",
        ),
        (
            u(None, Some("gitops-bot")),
            "Repause-gitops-bot",
            "field manager gitops-bot set spec.paused to false and",
        ),
        (
            u(None, None),
            "Repause-unknown",
            "someone removed spec.paused (as `kubectl rollout resume` does); the API server keeps no field manager",
        ),
    ];
    for (who, action, says) in cases {
        let (a, text) = who.describe();
        assert_eq!(a, action, "{who:?}");
        assert!(text.starts_with(says), "{who:?}: {text}");
    }
    let long = u(Some(&"x".repeat(300)), None).describe().0;
    assert_eq!(
        long.chars().count(),
        128,
        "an Event action is at most 128 characters"
    );
}
