//! Who wrote a route's weights, and how fights add up to a hold, table by table.

use gateway_api::apis::standard::httproutes::{HttpRouteRules, HttpRouteRulesBackendRefs};
use serde_json::json;

use super::*;
use crate::api::quantity::parse_percent;
use crate::traffic::WeightSlot;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("ts")
}

/// Route `web` with weights (stable, canary) and managedFields entries (manager, fields, time).
fn route(
    weights: (Option<i32>, Option<i32>),
    managers: &[(&str, serde_json::Value, i64)],
) -> HttpRoute {
    let mut r = HttpRoute::new("web", Default::default());
    r.spec.rules = Some(vec![HttpRouteRules {
        backend_refs: Some(vec![
            HttpRouteRulesBackendRefs {
                name: "web-stable".into(),
                weight: weights.0,
                ..Default::default()
            },
            HttpRouteRulesBackendRefs {
                name: "web-canary".into(),
                weight: weights.1,
                ..Default::default()
            },
        ]),
        ..Default::default()
    }]);
    r.metadata.managed_fields = Some(
        managers
            .iter()
            .map(|(m, f, t)| {
                serde_json::from_value(json!({
                    "manager": m, "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": f, "time": at(*t).to_string(),
                }))
                .expect("a managedFields entry")
            })
            .collect(),
    );
    r
}

fn target(r: &HttpRoute) -> RouteTarget {
    let refs = r.spec.rules.as_ref().expect("rules")[0]
        .backend_refs
        .clone()
        .expect("refs");
    let slot = |i: usize| WeightSlot {
        rule: 0,
        backend: i,
        name: refs[i].name.clone(),
        current: refs[i].weight,
    };
    RouteTarget {
        route: "web".into(),
        stable: slot(0),
        canary: slot(1),
    }
}

fn rules() -> serde_json::Value {
    json!({"f:spec": {"f:rules": {}, "f:parentRefs": {}}})
}

#[test]
fn the_manager_that_last_wrote_the_rules_is_named_and_rollguard_is_not_a_fight() {
    let ten = parse_percent("10%").expect("pct");
    // (what the route says, who wrote what when, the fight rollguard sees)
    let cases: Vec<(&str, HttpRoute, Option<&str>)> = vec![
        (
            "Argo CD re-applied a manifest without weights: 1:1 is 50%",
            route(
                (None, None),
                &[
                    ("rollguard", json!({"f:metadata": {}}), 1),
                    ("argocd-controller", rules(), 5),
                ],
            ),
            Some("argocd-controller"),
        ),
        (
            "Flux re-applied weights 1:0",
            route((Some(1), Some(0)), &[("kustomize-controller", rules(), 5)]),
            Some("kustomize-controller"),
        ),
        (
            "the weights are rollguard's: no fight, whoever wrote them",
            route((Some(9), Some(1)), &[("argocd-controller", rules(), 5)]),
            None,
        ),
        (
            "900:100 is the same share",
            route((Some(900), Some(100)), &[("kubectl-edit", rules(), 5)]),
            None,
        ),
        (
            "other weights, but rollguard wrote the rules last: the cache was behind, no fight",
            route(
                (Some(1), Some(1)),
                &[("argocd-controller", rules(), 1), ("rollguard", rules(), 5)],
            ),
            None,
        ),
        (
            "two owners of the rules (an apply of the same value shares them): the latest wins",
            route(
                (Some(1), Some(1)),
                &[("rollguard", rules(), 1), ("argocd-controller", rules(), 5)],
            ),
            Some("argocd-controller"),
        ),
        (
            "nobody owns the rules in managedFields: a fight by someone unknown",
            route(
                (Some(50), Some(50)),
                &[("argocd-controller", json!({"f:metadata": {}}), 5)],
            ),
            Some(UNKNOWN),
        ),
    ];
    for (what, r, want) in cases {
        let got = seen(&r, &[target(&r)], ten);
        assert_eq!(got.as_ref().map(|f| f.manager.as_str()), want, "{what}");
        if let Some(f) = got {
            assert_eq!(f.route, "web", "{what}");
        }
    }
}

fn argo() -> Fight {
    Fight {
        route: "web".into(),
        manager: "argocd-controller".into(),
    }
}

#[test]
fn three_fights_in_a_step_hold_the_run_until_the_manager_is_quiet() {
    // Argo CD resets the weights every second from t=0: the third fight holds the run.
    let f = argo();
    let t1 = tally(None, false, 0, Some(&f), at(0));
    assert!(!t1.held && !t1.started);
    let t2 = tally(t1.fights.as_ref(), false, 0, Some(&f), at(1));
    assert!(!t2.held);
    let t3 = tally(t2.fights.as_ref(), false, 0, Some(&f), at(2));
    assert!(t3.held && t3.started && !t3.ended, "{t3:?}");
    let fights = t3.fights.clone().expect("fights");
    assert_eq!((fights.total, fights.in_step, fights.step), (3, 3, 0));
    assert_eq!(fights.manager, "argocd-controller");
    assert_eq!(hold_ends(&fights), at(32));
    // Fights go on: held, and no second start.
    let t4 = tally(t3.fights.as_ref(), true, 0, Some(&f), at(3));
    assert!(t4.held && !t4.started);
    // No fight, not yet quiet long enough: still held.
    let t5 = tally(t4.fights.as_ref(), true, 0, None, at(20));
    assert!(t5.held && !t5.ended);
    // 30 s quiet: the hold ends, the count stays.
    let t6 = tally(t5.fights.as_ref(), true, 0, None, at(33));
    assert!(!t6.held && t6.ended, "{t6:?}");
    assert_eq!(t6.fights.as_ref().map(|f| f.in_step), Some(4));
    // One more fight in the same step holds it again at once.
    let t7 = tally(t6.fights.as_ref(), false, 0, Some(&f), at(40));
    assert!(t7.held && t7.started);
}

#[test]
fn fights_are_counted_per_step_and_a_stray_one_never_holds() {
    let f = argo();
    // Two fights in step 0, then the run moves on: step 1 starts from none.
    let t = tally(None, false, 0, Some(&f), at(0));
    let t = tally(t.fights.as_ref(), false, 0, Some(&f), at(1));
    let t = tally(t.fights.as_ref(), false, 1, Some(&f), at(2));
    assert!(!t.held);
    let fights = t.fights.clone().expect("fights");
    assert_eq!((fights.total, fights.in_step, fights.step), (3, 1, 1));
    // A pass without a fight changes nothing.
    let same = tally(t.fights.as_ref(), false, 1, None, at(3));
    assert_eq!(same.fights, t.fights);
    assert!(!same.held && !same.started && !same.ended);
    // A run held in a step that then changes (a promote by hand, say) is no longer held.
    let mut held = fights.clone();
    held.in_step = FIGHTS_TO_HOLD;
    let t = tally(Some(&held), true, 2, None, at(4));
    assert!(!t.held && t.ended);
    // No fights at all: nothing recorded.
    assert_eq!(tally(None, false, 0, None, at(0)).fights, None);
}
