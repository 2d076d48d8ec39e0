//! The order of the writes, without a cluster: a canary is ready before it gets traffic,
//! traffic leaves it before it goes, the status is written last, and a release gives the
//! Deployment up only after the run's end is recorded.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::api::run::Phase;
use crate::governance::verdict::State;
use crate::plan::template_hash;
use crate::run::Desired;

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:2"}]}}}
    }))
    .expect("a Deployment")
}

fn routing() -> Routing {
    Routing {
        service: serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}}
        }))
        .expect("a Service"),
        routes: vec![RouteTarget {
            route: "web".into(),
            stable: crate::traffic::WeightSlot {
                rule: 0,
                backend: 0,
                name: "web-stable".into(),
                current: Some(100),
            },
            canary: crate::traffic::WeightSlot {
                rule: 0,
                backend: 1,
                name: "web-canary".into(),
                current: Some(0),
            },
        }],
    }
}

fn outcome(canary_replicas: Option<i32>, weight: &str, phase: Phase) -> Outcome {
    Outcome {
        status: RolloutRunStatus {
            phase,
            ..Default::default()
        },
        desired: Desired {
            canary_replicas,
            weight: crate::api::quantity::parse_percent(weight).expect("a weight"),
            paused: true,
        },
        events: vec![],
        mark: None,
        wake_at: None,
    }
}

/// The kinds of writes, in order, with what tells them apart.
fn kinds(writes: &[Write]) -> Vec<String> {
    writes
        .iter()
        .map(|w| match w {
            Write::Canary { want, .. } => format!(
                "canary x{}",
                want.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
            ),
            Write::DeleteCanary => "delete canary".into(),
            Write::Service { want, .. } => format!("service {}", want.name_any()),
            Write::Weights { weight, last, .. } => format!("weights {weight} (last {last:?})"),
            Write::Deployment(f) => format!("deployment paused={}", f.paused),
            Write::ReleaseDeployment { hold: None } => "release deployment".into(),
            Write::ReleaseDeployment { hold: Some(_) } => "release deployment, held paused".into(),
            Write::RunStatus(s) => format!("status {}", s.phase.as_str()),
        })
        .collect()
}

fn verdict() -> Verdict {
    Verdict {
        state: State::Progressing,
        message: "canary rev at step 1/2 (5%)".into(),
    }
}

/// The Deployment once rollguard's fields are written, as the API server stores it: no write
/// when they are already there; otherwise one more generation (a Deployment's generation
/// moves with its spec and with its annotations).
fn written(d: &Deployment, f: &GovernedFields) -> Deployment {
    let have = GovernedFields::of(d);
    if &have == f {
        return d.clone();
    }
    let mut w = d.clone();
    if (have.paused, &have.annotations) != (f.paused, &f.annotations) {
        w.metadata.generation = Some(w.metadata.generation.unwrap_or(0) + 1);
        w.spec.as_mut().expect("spec").paused = Some(f.paused);
        let annotations = w.metadata.annotations.get_or_insert_with(Default::default);
        annotations.extend(f.annotations.clone());
    }
    // kstatus' conditions go to the status, which does not move the generation.
    let status = w.status.get_or_insert_with(Default::default);
    status.conditions = Some(crate::governance::kstatus::deployment_conditions(
        &[],
        &f.conditions,
        jiff::Timestamp::UNIX_EPOCH,
    ));
    w
}

#[test]
fn the_verdict_is_written_once_about_the_generation_its_write_makes() {
    let d = deployment();
    let snapshot = Snapshot::default();
    let sight = CanarySight::of(None, "rev");
    let out = outcome(Some(1), "5%", Phase::Progressing);
    let fields_of = |d: &Deployment| {
        plan(
            d,
            Router::Replicas,
            &out,
            &RolloutRunStatus::default(),
            &sight,
            None,
            &snapshot,
            &verdict(),
        )
        .into_iter()
        .find_map(|w| match w {
            Write::Deployment(f) => Some(f),
            _ => None,
        })
        .expect("a Deployment write")
    };
    let mut d = d;
    for pass in 0..3 {
        let f = fields_of(&d);
        let after = written(&d, &f);
        let generation = after.metadata.generation.unwrap_or(0).to_string();
        assert_eq!(
            after
                .annotations()
                .get(crate::governance::verdict::VERDICT_GENERATION),
            Some(&generation),
            "pass {pass}: the verdict is about the generation the write made"
        );
        if pass > 0 {
            assert_eq!(after, d, "pass {pass}: nothing left to write");
        }
        d = after;
    }
}

#[test]
fn a_growing_canary_is_applied_before_traffic_and_status_goes_last() {
    let d = deployment();
    let r = routing();
    let snapshot = Snapshot::default();
    let out = outcome(Some(1), "5%", Phase::Progressing);
    let sight = CanarySight::of(None, "rev");
    let before = RolloutRunStatus {
        weight: crate::api::quantity::parse_percent("1%").ok(),
        ..Default::default()
    };
    let writes = plan(
        &d,
        Router::GatewayApi,
        &out,
        &before,
        &sight,
        Some(&r),
        &snapshot,
        &verdict(),
    );
    assert_eq!(
        kinds(&writes),
        [
            "canary x1",
            "service web-stable",
            "service web-canary",
            "weights 5% (last Some(Ratio(10000)))",
            "deployment paused=true",
            "status Progressing"
        ]
    );
}

#[test]
fn an_ended_run_moves_traffic_off_the_canary_before_deleting_it() {
    let d = deployment();
    let r = routing();
    let snapshot = Snapshot::default();
    let canary = crate::traffic::canary_deployment(&d, 1).expect("a canary");
    let revision = template_hash(&canary.spec.as_ref().expect("spec").template);
    let sight = CanarySight::of(Some(&canary), &revision);
    let out = outcome(None, "0%", Phase::RolledBack);
    let writes = plan(
        &d,
        Router::GatewayApi,
        &out,
        &RolloutRunStatus::default(),
        &sight,
        Some(&r),
        &snapshot,
        &verdict(),
    );
    let k = kinds(&writes);
    let at = |s: &str| k.iter().position(|x| x.starts_with(s)).expect(s);
    assert!(at("weights 0%") < at("delete canary"), "{k:?}");
    assert!(at("deployment") < at("delete canary"), "{k:?}");
    assert!(at("status RolledBack") < at("delete canary"), "{k:?}");
    assert_eq!(k.last().map(String::as_str), Some("delete canary"));
}

/// A crash between two writes of a run's end, and the pass after it: the end is recorded
/// before the canary goes, and the same end planned again once the canary is gone and the
/// Deployment marked (a crash right after the status write) is only the status, with no
/// canary made again.
#[test]
fn an_ending_run_records_its_end_before_the_canary_goes_and_replans_without_a_canary() {
    let d = deployment();
    let r = routing();
    let snapshot = Snapshot::default();
    let canary = crate::traffic::canary_deployment(&d, 1).expect("a canary");
    let revision = template_hash(&canary.spec.as_ref().expect("spec").template);
    let before = RolloutRunStatus {
        weight: crate::api::quantity::parse_percent("10%").ok(),
        ..Default::default()
    };
    for (phase, mark) in [
        (Phase::RolledBack, RevisionMark::Failed(revision.clone())),
        (Phase::Succeeded, RevisionMark::Stable(revision.clone())),
        (Phase::Aborted, RevisionMark::Failed(revision.clone())),
    ] {
        let mut out = outcome(None, "0%", phase);
        out.mark = Some(mark.clone());
        let live = CanarySight::of(Some(&canary), &revision);
        let first = plan(
            &d,
            Router::GatewayApi,
            &out,
            &before,
            &live,
            Some(&r),
            &snapshot,
            &verdict(),
        );
        let k = kinds(&first);
        let status = format!("status {}", phase.as_str());
        assert_eq!(
            k[k.len() - 2..],
            [status.clone(), "delete canary".to_string()],
            "{phase:?}: {k:?}"
        );
        assert!(k.iter().all(|w| !w.starts_with("canary")), "{k:?}");
        // Again, after a crash: the canary gone, the Deployment marked, the weights at 0.
        let Some(Write::Deployment(fields)) =
            first.iter().find(|w| matches!(w, Write::Deployment(_)))
        else {
            panic!("a Deployment write")
        };
        let key = match mark {
            RevisionMark::Failed(_) => FAILED_REVISION,
            RevisionMark::Stable(_) => STABLE_REVISION,
        };
        assert_eq!(fields.annotations.get(key), Some(&revision), "{phase:?}");
        let marked = written(&d, fields);
        let gone = CanarySight::of(None, &revision);
        let again = plan(
            &marked,
            Router::Replicas,
            &out,
            &before,
            &gone,
            None,
            &snapshot,
            &verdict(),
        );
        assert_eq!(
            kinds(&again),
            ["deployment paused=true", status.as_str()],
            "{phase:?}"
        );
        // ... and the Deployment write is a no-op there: it already carries the mark.
        let Write::Deployment(fields) = &again[0] else {
            panic!("a Deployment write")
        };
        assert_eq!(fields, &GovernedFields::of(&marked), "{phase:?}");
    }
}

#[test]
fn a_canary_of_another_revision_is_deleted_not_resized_and_one_going_away_is_left() {
    let d = deployment();
    let snapshot = Snapshot::default();
    let other = crate::traffic::canary_deployment(&d, 1).expect("a canary");
    let out = outcome(Some(1), "1%", Phase::Progressing);
    let stray = CanarySight::of(Some(&other), "another-revision");
    let writes = plan(
        &d,
        Router::Replicas,
        &out,
        &RolloutRunStatus::default(),
        &stray,
        None,
        &snapshot,
        &verdict(),
    );
    assert_eq!(
        kinds(&writes),
        [
            "delete canary",
            "deployment paused=true",
            "status Progressing"
        ]
    );
    let mut going = other.clone();
    going.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::UNIX_EPOCH,
    ));
    let terminating = CanarySight::of(Some(&going), "another-revision");
    let writes = plan(
        &d,
        Router::Replicas,
        &out,
        &RolloutRunStatus::default(),
        &terminating,
        None,
        &snapshot,
        &verdict(),
    );
    assert_eq!(
        kinds(&writes),
        ["deployment paused=true", "status Progressing"]
    );
}

#[test]
fn a_release_records_the_runs_end_before_giving_the_deployment_up() {
    let d = deployment();
    let r = routing();
    let snapshot = Snapshot {
        services: vec![Arc::new(r.service.clone())],
        ..Default::default()
    };
    let out = crate::run::release(
        &RolloutRunStatus::default(),
        "its RolloutPolicy no longer selects it",
        jiff::Timestamp::UNIX_EPOCH,
    );
    let writes = plan_release(
        &d,
        Some((Router::GatewayApi, &out)),
        Some(&r),
        &snapshot,
        None,
    );
    assert_eq!(
        kinds(&writes),
        [
            "weights 0% (last None)",
            "service web-stable",
            "status Superseded",
            "delete canary",
            "release deployment"
        ]
    );
    // Without a run in flight there is no status to write and no route to reset.
    assert_eq!(
        kinds(&plan_release(&d, None, Some(&r), &snapshot, None)),
        ["delete canary", "release deployment"]
    );
    // An unvetted template is let go of paused, still last.
    assert_eq!(
        kinds(&plan_release(
            &d,
            None,
            Some(&r),
            &snapshot,
            Some("its template is revision b, which rollguard rolled back".into())
        )),
        ["delete canary", "release deployment, held paused"]
    );
}

#[test]
fn between_runs_the_route_sends_everything_to_the_pinned_stable_service() {
    let d = deployment();
    let r = routing();
    let snapshot = Snapshot::default();
    assert_eq!(
        kinds(&plan_idle_routing(&d, &r, &snapshot, true)),
        [
            "service web-stable",
            "service web-canary",
            "weights 0% (last Some(Ratio(0)))"
        ]
    );
}

#[test]
fn between_runs_mid_rollout_the_stable_service_selects_every_pod_of_the_deployment() {
    let d = deployment();
    let r = routing();
    let rs: kube::core::PartialObjectMeta<k8s_openapi::api::apps::v1::ReplicaSet> =
        serde_json::from_value(json!({
            "metadata": {"name": "web-aaa", "namespace": "shop",
                "labels": {"pod-template-hash": "aaa"},
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": "u-web", "controller": true}]}
        }))
        .expect("a ReplicaSet");
    let snapshot = Snapshot {
        replicasets: vec![Arc::new(rs)],
        ..Default::default()
    };
    let stable_selector = |rolled_out| {
        plan_idle_routing(&d, &r, &snapshot, rolled_out)
            .into_iter()
            .find_map(|w| match w {
                Write::Service { want, .. } if want.name_any() == "web-stable" => {
                    want.spec.and_then(|s| s.selector)
                }
                _ => None,
            })
            .expect("the stable Service")
    };
    assert_eq!(
        stable_selector(true)
            .get("pod-template-hash")
            .map(String::as_str),
        Some("aaa"),
        "rolled out: pinned to the newest ReplicaSet"
    );
    assert_eq!(
        stable_selector(false).get("pod-template-hash"),
        None,
        "mid-rollout: every pod of the Deployment"
    );
}

/// Issue #14, point 6: a canary Deployment or routing Service under a colliding name that is
/// not rollguard's is neither deleted nor overwritten, whatever the plan wanted.
#[test]
fn objects_that_are_not_rollguards_are_never_written() {
    let d = deployment();
    let r = routing();
    let theirs: Service = serde_json::from_value(json!({
        "metadata": {"name": "web-stable", "namespace": "shop"},
        "spec": {"selector": {"app": "legacy"}}
    }))
    .expect("a Service");
    let their_canary: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web-canary", "namespace": "shop", "labels": {"app": "legacy"}}
    }))
    .expect("a Deployment");
    let snapshot = Snapshot {
        canary: Some(Arc::new(their_canary)),
        services: vec![Arc::new(r.service.clone()), Arc::new(theirs)],
        ..Default::default()
    };
    let foreign = snapshot.foreign(&d, Some(&r.service));
    let names: Vec<&str> = foreign.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["web-canary", "web-stable"]);
    // A release would delete the canary and unpin web-stable: both are left out.
    let out = crate::run::release(
        &RolloutRunStatus::default(),
        "its RolloutPolicy no longer selects it",
        jiff::Timestamp::UNIX_EPOCH,
    );
    let writes = plan_release(
        &d,
        Some((Router::GatewayApi, &out)),
        Some(&r),
        &snapshot,
        None,
    );
    assert_eq!(
        kinds(&spare(writes, &d, &foreign)),
        [
            "weights 0% (last None)",
            "status Superseded",
            "release deployment"
        ]
    );
    // Between runs: web-canary (the Service, absent) is still written, web-stable is not.
    assert_eq!(
        kinds(&spare(
            plan_idle_routing(&d, &r, &snapshot, true),
            &d,
            &foreign
        )),
        ["service web-canary", "weights 0% (last Some(Ratio(0)))"]
    );
    // A run holding with a canary wanted: no canary write reaches their Deployment.
    let hold = outcome(Some(1), "0%", Phase::Progressing);
    let sight = snapshot.sight("some-revision");
    let writes = plan(
        &d,
        Router::Replicas,
        &hold,
        &RolloutRunStatus::default(),
        &sight,
        None,
        &snapshot,
        &verdict(),
    );
    assert!(
        kinds(&writes).contains(&"delete canary".to_string()),
        "{:?}",
        kinds(&writes)
    );
    assert_eq!(
        kinds(&spare(writes, &d, &foreign)),
        ["deployment paused=true", "status Progressing"]
    );
    // Nothing foreign: nothing left out.
    let empty = Snapshot::default();
    let all = plan_idle_routing(&d, &r, &empty, true);
    assert_eq!(spare(all.clone(), &d, &[]), all);
}
