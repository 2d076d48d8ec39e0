//! What rollguard may act on: runs it created and objects it owns, decided from what the caches
//! show (pure, table-tested). Names are predictable (`<name>-canary`, `<svc>-stable`, the run
//! name), so a name is never proof: an object is rollguard's when it carries rollguard's label
//! naming the governed Deployment and a controller owner reference to that Deployment's UID,
//! and a run in flight is rollguard's when the Deployment records its UID
//! ([`RUN_RECORD`](crate::names::RUN_RECORD)), written by the operator when it starts the run.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use crate::api::run::{RolloutRun, RolloutRunSpec};
use crate::names::{DEPLOYMENT_LABEL, ROLE_CANARY, ROLE_LABEL, RUN_RECORD};
use crate::traffic::Blocked;

/// The reason of the condition (and Event) when an object under a colliding name is not
/// rollguard's.
pub const NOT_OWNED: &str = "NotOwned";
/// The reason of the Warning Event about a run rollguard did not create.
pub const UNTRUSTED_RUN: &str = "UntrustedRun";

/// Why `meta` is not rollguard's object for `d`, or `Ok` when it is: rollguard's label naming
/// `d` (and, with `role`, the role label with that value) and a controller owner reference to
/// `d`'s UID.
pub fn owned(meta: &ObjectMeta, d: &Deployment, role: Option<&str>) -> Result<(), String> {
    let name = d.name_any();
    let label = |k: &str| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(k))
            .map(String::as_str)
    };
    if label(DEPLOYMENT_LABEL) != Some(name.as_str()) {
        return Err(format!("it lacks the label {DEPLOYMENT_LABEL}={name}"));
    }
    if let Some(role) = role
        && label(ROLE_LABEL) != Some(role)
    {
        return Err(format!("it lacks the label {ROLE_LABEL}={role}"));
    }
    if !controlled_by(meta, d) {
        return Err(format!(
            "it has no controller owner reference to Deployment {name} (uid {})",
            d.uid().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Whether `meta` has a controller owner reference to `d` (by UID: a Deployment deleted and
/// made again under the same name is another Deployment).
pub fn controlled_by(meta: &ObjectMeta, d: &Deployment) -> bool {
    let Some(uid) = d.uid() else {
        return false;
    };
    meta.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == "Deployment"
            && o.api_version == "apps/v1"
            && o.uid == uid
    })
}

/// An object under a name rollguard writes that is not rollguard's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// `Deployment` or `Service`.
    pub kind: &'static str,
    pub name: String,
    /// What makes it not rollguard's.
    pub why: String,
}

/// The objects among those rollguard would write for `d` that are not its own: the canary
/// Deployment found under `<name>-canary`, and `services` (name, what the cache holds) for
/// the routing Services (only with the Gateway API router, the one that writes them).
pub fn foreign(
    d: &Deployment,
    canary: Option<&Deployment>,
    services: &[(String, Option<&Service>)],
) -> Vec<Foreign> {
    let mut out = Vec::new();
    if let Some(c) = canary
        && let Err(why) = owned(&c.metadata, d, Some(ROLE_CANARY))
    {
        out.push(Foreign {
            kind: "Deployment",
            name: c.name_any(),
            why,
        });
    }
    for (name, have) in services {
        if let Some(s) = have
            && let Err(why) = owned(&s.metadata, d, None)
        {
            out.push(Foreign {
                kind: "Service",
                name: name.clone(),
                why,
            });
        }
    }
    out
}

/// The hold a run is under while `foreign` is not empty: a condition naming every object.
pub fn blocked(foreign: &[Foreign]) -> Option<Blocked> {
    if foreign.is_empty() {
        return None;
    }
    let each: Vec<String> = foreign
        .iter()
        .map(|f| {
            format!(
                "{} {} exists and is not rollguard's ({})",
                f.kind, f.name, f.why
            )
        })
        .collect();
    Some(Blocked {
        reason: NOT_OWNED.into(),
        message: format!(
            "{}; rollguard neither deletes nor overwrites it. Rename or remove it (or give the name back to rollguard) and the run goes on",
            each.join("; ")
        ),
    })
}

/// What the Deployment records about the run it started: `<name>/<uid>`.
pub fn record(run: &RolloutRun) -> Option<String> {
    Some(format!("{}/{}", run.name_any(), run.uid()?))
}

/// Why rollguard does not act on `run` for `d`, or `Ok` when it may. Every run must carry
/// rollguard's label naming `d` and a controller owner reference to `d`; a run in flight (not
/// `ended`) must also be the one `d` records. An ended run is history: nothing is executed from
/// it, and it keeps counting for history and attempts even after the record moved on.
pub fn trusted(run: &RolloutRun, d: &Deployment, ended: bool) -> Result<(), String> {
    owned(&run.metadata, d, None)?;
    if ended {
        return Ok(());
    }
    let recorded = d.annotations().get(RUN_RECORD).map(String::as_str);
    match (recorded, record(run)) {
        (Some(r), Some(mine)) if r == mine => Ok(()),
        (Some(r), _) => Err(format!(
            "Deployment {} records run {r} as the one rollguard started",
            d.name_any()
        )),
        (None, _) => Err(format!(
            "Deployment {} records no run rollguard started",
            d.name_any()
        )),
    }
}

/// Whether an unrecorded run is the one rollguard would start now (the record was not written
/// yet: a crash between the create and the record, or a run started before records existed):
/// rollguard's label and owner reference, and the same spec apart from what people add
/// (approvals and commands). Such a run plans exactly what rollguard would, so adopting it
/// gives nobody anything.
pub fn adoptable(run: &RolloutRun, d: &Deployment, want: &RolloutRunSpec) -> bool {
    let plan_only = |s: &RolloutRunSpec| RolloutRunSpec {
        approvals: vec![],
        control: None,
        ..s.clone()
    };
    owned(&run.metadata, d, None).is_ok() && plan_only(&run.spec) == plan_only(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::run::MatchedTier;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use std::collections::BTreeMap;

    fn governed(record: Option<&str>) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.uid = Some("d-uid".into());
        if let Some(r) = record {
            d.metadata.annotations = Some(BTreeMap::from([(RUN_RECORD.into(), r.into())]));
        }
        d
    }

    fn meta(
        name: &str,
        labels: &[(&str, &str)],
        owner_uid: Option<&str>,
        controller: bool,
    ) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("{name}-uid")),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: "web".into(),
                    uid: uid.into(),
                    controller: Some(controller),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    const OURS: &[(&str, &str)] = &[(DEPLOYMENT_LABEL, "web"), (ROLE_LABEL, ROLE_CANARY)];

    #[test]
    fn only_the_label_and_a_controller_owner_reference_to_the_uid_make_an_object_ours() {
        let d = governed(None);
        // (case, labels, owner uid, controller, role asked, the reason it is not ours)
        type Row<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Option<&'a str>,
            bool,
            Option<&'a str>,
            Option<&'a str>,
        );
        let table: [Row; 7] = [
            ("ours", OURS, Some("d-uid"), true, Some(ROLE_CANARY), None),
            (
                "a Service: no role asked",
                &[(DEPLOYMENT_LABEL, "web")],
                Some("d-uid"),
                true,
                None,
                None,
            ),
            (
                "no labels",
                &[],
                Some("d-uid"),
                true,
                Some(ROLE_CANARY),
                Some("lacks the label rollguard.dev/deployment=web"),
            ),
            (
                "another Deployment's label",
                &[(DEPLOYMENT_LABEL, "api"), (ROLE_LABEL, ROLE_CANARY)],
                Some("d-uid"),
                true,
                Some(ROLE_CANARY),
                Some("lacks the label rollguard.dev/deployment=web"),
            ),
            (
                "no role label",
                &[(DEPLOYMENT_LABEL, "web")],
                Some("d-uid"),
                true,
                Some(ROLE_CANARY),
                Some("lacks the label rollguard.dev/role=canary"),
            ),
            (
                "no owner",
                OURS,
                None,
                true,
                Some(ROLE_CANARY),
                Some("no controller owner reference to Deployment web (uid d-uid)"),
            ),
            (
                "an owner by name, an older uid",
                OURS,
                Some("old-uid"),
                true,
                Some(ROLE_CANARY),
                Some("no controller owner reference"),
            ),
        ];
        for (case, labels, owner, controller, role, why) in table {
            let got = owned(&meta("web-canary", labels, owner, controller), &d, role);
            match why {
                None => assert_eq!(got, Ok(()), "{case}"),
                Some(w) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(w)),
                    "{case}: {got:?}"
                ),
            }
        }
        let not_controller = meta("web-canary", OURS, Some("d-uid"), false);
        assert!(
            owned(&not_controller, &d, Some(ROLE_CANARY)).is_err(),
            "an owner reference that is not the controller"
        );
    }

    #[test]
    fn a_collision_names_every_object_that_is_not_ours() {
        let d = governed(None);
        let canary = Deployment {
            metadata: meta("web-canary", &[("app", "legacy")], None, false),
            ..Default::default()
        };
        let ours = Service {
            metadata: meta(
                "web-canary",
                &[(DEPLOYMENT_LABEL, "web")],
                Some("d-uid"),
                true,
            ),
            ..Default::default()
        };
        let theirs = Service {
            metadata: meta("web-stable", &[], None, false),
            ..Default::default()
        };
        let services = [
            ("web-stable".to_string(), Some(&theirs)),
            ("web-canary".to_string(), Some(&ours)),
        ];
        let found = foreign(&d, Some(&canary), &services);
        let names: Vec<(&str, &str)> = found.iter().map(|f| (f.kind, f.name.as_str())).collect();
        assert_eq!(
            names,
            [("Deployment", "web-canary"), ("Service", "web-stable")]
        );
        let b = blocked(&found).expect("blocked");
        assert_eq!(b.reason, NOT_OWNED);
        assert!(
            b.message
                .contains("Deployment web-canary exists and is not rollguard's"),
            "{}",
            b.message
        );
        assert!(
            b.message
                .contains("Service web-stable exists and is not rollguard's"),
            "{}",
            b.message
        );
        // Absent objects and our own block nothing.
        assert!(foreign(&d, None, &[("web-stable".into(), None)]).is_empty());
        assert_eq!(blocked(&[]), None);
    }

    fn run(name: &str, labels: &[(&str, &str)], owner: Option<&str>) -> RolloutRun {
        let mut r = RolloutRun::new(name, spec("http://prometheus:9090"));
        r.metadata = meta(name, labels, owner, true);
        r
    }

    fn spec(address: &str) -> RolloutRunSpec {
        serde_json::from_value(serde_json::json!({
            "deployment": "web", "policy": "shop", "stableRevision": "s", "canaryRevision": "c",
            "tier": {"name": "standard", "reason": "catch-all"},
            "plan": {"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}]},
            "analysis": {"prometheus": {"address": address}, "requests": "r", "errors": "e"},
            "router": "replicas",
        }))
        .expect("a spec")
    }

    #[test]
    fn a_run_in_flight_is_ours_only_when_the_deployment_records_it() {
        let label: &[(&str, &str)] = &[(DEPLOYMENT_LABEL, "web")];
        let mine = run("web-c", label, Some("d-uid"));
        let planted_copy = run("web-c", label, Some("d-uid")); // same name, but its own uid below
        let mut planted_copy = planted_copy;
        planted_copy.metadata.uid = Some("planted".into());
        let unowned = run("web-c", label, None);
        let recorded = governed(Some("web-c/web-c-uid"));
        let unrecorded = governed(None);
        // (case, run, Deployment, ended, trusted)
        type Row<'a> = (&'a str, &'a RolloutRun, &'a Deployment, bool, bool);
        let table: [Row; 7] = [
            ("recorded", &mine, &recorded, false, true),
            (
                "same name, another uid (planted after a delete)",
                &planted_copy,
                &recorded,
                false,
                false,
            ),
            ("nothing recorded", &mine, &unrecorded, false, false),
            ("no owner reference", &unowned, &recorded, false, false),
            (
                "ended, owned: history",
                &planted_copy,
                &recorded,
                true,
                true,
            ),
            ("ended, not owned", &unowned, &recorded, true, false),
            ("ended, nothing recorded", &mine, &unrecorded, true, true),
        ];
        for (case, r, d, ended, ok) in table {
            assert_eq!(
                trusted(r, d, ended).is_ok(),
                ok,
                "{case}: {:?}",
                trusted(r, d, ended)
            );
        }
        assert!(
            trusted(&planted_copy, &recorded, false)
                .is_err_and(|e| e.contains("records run web-c/web-c-uid"))
        );
    }

    #[test]
    fn only_a_run_with_the_plan_rollguard_would_make_is_adopted() {
        let d = governed(None);
        let label: &[(&str, &str)] = &[(DEPLOYMENT_LABEL, "web")];
        let want = spec("http://prometheus:9090");
        let mut with_approval = run("web-c", label, Some("d-uid"));
        with_approval.spec.approvals = vec![
            serde_json::from_value(
                serde_json::json!({"user": "ann", "time": "2026-01-01T00:00:00Z"}),
            )
            .expect("approval"),
        ];
        let mut lax = run("web-c", label, Some("d-uid"));
        lax.spec.plan.max_error_rate = "100%".into();
        let mut elsewhere = run("web-c", label, Some("d-uid"));
        elsewhere.spec = spec("http://127.0.0.1:1");
        let mut other_tier = run("web-c", label, Some("d-uid"));
        other_tier.spec.tier = MatchedTier {
            name: "lax".into(),
            reason: "x".into(),
        };
        assert!(adoptable(&run("web-c", label, Some("d-uid")), &d, &want));
        assert!(
            adoptable(&with_approval, &d, &want),
            "people's approvals are not the plan"
        );
        assert!(!adoptable(&lax, &d, &want), "a laxer plan");
        assert!(!adoptable(&elsewhere, &d, &want), "another Prometheus");
        assert!(!adoptable(&other_tier, &d, &want), "another tier");
        assert!(
            !adoptable(&run("web-c", label, None), &d, &want),
            "no owner reference"
        );
    }
}
