//! What the CLI knows about one governed Deployment's rollouts, assembled from the objects
//! the API server returned (Deployments, policies, runs). Pure: the same assembly serves
//! `get`, `get --watch` (from watch caches) and `-o json|yaml`.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::RolloutPolicy;
use crate::api::run::{Phase, RolloutRun};
use crate::governance::{self, Index};
use crate::names::{FAILED_REVISION, STABLE_REVISION};
use crate::plan::template_hash;

/// One Deployment with its policy, revisions and runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRollouts {
    /// The Deployment's namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// The policies selecting it (one when governed, two or more in conflict).
    pub policies: Vec<String>,
    /// The policy that governed it last (`rollguard.dev/policy`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub governed_by: Option<String>,
    /// `rollguard.dev/stable-revision`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// `rollguard.dev/failed-revision`: not retried until the template changes (or `retry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_revision: Option<String>,
    /// Hash of the Deployment's current pod template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_revision: Option<String>,
    /// The run in flight, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<RolloutRun>,
    /// Finished runs, newest first.
    pub history: Vec<RolloutRun>,
}

impl DeploymentRollouts {
    /// The governing policy, when exactly one selects the Deployment.
    pub fn policy(&self) -> Option<&str> {
        match self.policies.as_slice() {
            [p] => Some(p.as_str()),
            _ => None,
        }
    }

    /// Two or more policies select the Deployment: rollguard leaves it alone.
    pub fn in_conflict(&self) -> bool {
        self.policies.len() > 1
    }

    /// The newest finished run.
    pub fn last(&self) -> Option<&RolloutRun> {
        self.history.first()
    }
}

/// The phase of a run (a run just created has no status yet: Progressing).
pub fn phase(run: &RolloutRun) -> Phase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

pub use crate::selection::{is_canary, selector_matches};

/// The view of one Deployment. `runs` may contain other Deployments' runs.
pub fn of_deployment(
    d: &Deployment,
    policies: &[RolloutPolicy],
    runs: &[RolloutRun],
) -> DeploymentRollouts {
    of_indexed(d, &Index::new(policies, runs, phase))
}

/// The view of one Deployment, from the governance index the operator asks too.
/// Only runs the operator acts on ([`crate::ownership::trusted`]) are shown as current or
/// history: `approve`, `abort` and `promote` go to the current run, and must never go to a run
/// someone planted next to the operator's.
fn of_indexed(d: &Deployment, index: &Index) -> DeploymentRollouts {
    let current = index
        .runs_of(d)
        .into_iter()
        .rev()
        .find(|r| !phase(r).is_terminal() && crate::ownership::trusted(r, d, false).is_ok());
    let mut history: Vec<RolloutRun> = index
        .finished_runs(d)
        .into_iter()
        .filter(|r| crate::ownership::trusted(r, d, true).is_ok())
        .cloned()
        .collect();
    // Newest first.
    history.reverse();
    let annotation = |k: &str| d.annotations().get(k).cloned();
    DeploymentRollouts {
        namespace: d.namespace().unwrap_or_default(),
        deployment: d.name_any(),
        policies: index.selecting(d).iter().map(|p| p.name_any()).collect(),
        governed_by: governance::governed_by(d).map(str::to_string),
        stable_revision: annotation(STABLE_REVISION),
        failed_revision: annotation(FAILED_REVISION),
        template_revision: d.spec.as_ref().map(|s| template_hash(&s.template)),
        current: current.cloned(),
        history,
    }
}

/// The views of every Deployment that is governed, selected, or has runs, sorted by
/// namespace and name. Canary Deployments are not listed on their own.
pub fn assemble(
    deployments: &[Deployment],
    policies: &[RolloutPolicy],
    runs: &[RolloutRun],
) -> Vec<DeploymentRollouts> {
    let index = Index::new(policies, runs, phase);
    let mut out: Vec<DeploymentRollouts> = deployments
        .iter()
        .filter(|d| !is_canary(d))
        .map(|d| of_indexed(d, &index))
        .filter(|v| {
            !v.policies.is_empty()
                || v.governed_by.is_some()
                || v.current.is_some()
                || !v.history.is_empty()
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.deployment).cmp(&(&b.namespace, &b.deployment)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_like_the_operator() {
        let l = labels(&[("app.kubernetes.io/part-of", "shop"), ("tier", "web")]);
        let ml = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(pairs)),
            ..Default::default()
        };
        let expr = |op: &str, values: &[&str]| LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: op.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(
            &ml(&[("app.kubernetes.io/part-of", "shop")]),
            &l
        ));
        assert!(!selector_matches(
            &ml(&[("app.kubernetes.io/part-of", "cart")]),
            &l
        ));
        assert!(
            !selector_matches(&LabelSelector::default(), &l),
            "empty selects nothing"
        );
        assert!(selector_matches(&expr("In", &["web", "api"]), &l));
        assert!(!selector_matches(&expr("NotIn", &["web"]), &l));
        assert!(selector_matches(&expr("Exists", &[]), &l));
        assert!(!selector_matches(&expr("DoesNotExist", &[]), &l));
    }

    /// `approve`, `abort` and `promote` act on the current run: a run planted next to the
    /// operator's (newer, so it would be "current" by age) is never it.
    #[test]
    fn a_run_the_operator_did_not_start_is_never_the_current_one() {
        use crate::api::run::RolloutRunStatus;
        use crate::cli::fixtures::run;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut d = Deployment::default();
        d.metadata.name = Some("web".into());
        d.metadata.namespace = Some("shop".into());
        d.metadata.uid = Some("d-uid".into());
        let owned = |mut r: RolloutRun, uid: &str| {
            r.metadata.uid = Some(uid.into());
            r.metadata.labels = Some(labels(&[(crate::names::DEPLOYMENT_LABEL, "web")]));
            r.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "d-uid".into(),
                controller: Some(true),
                ..Default::default()
            }]);
            r
        };
        let mine = owned(
            run(
                "web-8d3e41f0-x1",
                "8d3e41f0",
                60,
                RolloutRunStatus::default(),
            ),
            "mine",
        );
        let planted = owned(
            run("web-8d3e41f0", "8d3e41f0", 10, RolloutRunStatus::default()),
            "planted",
        );
        d.metadata.annotations = Some(labels(&[(
            crate::names::RUN_RECORD,
            "web-8d3e41f0-x1/mine",
        )]));
        let v = of_deployment(&d, &[], &[mine, planted]);
        assert_eq!(
            v.current.map(|r| r.name_any()).as_deref(),
            Some("web-8d3e41f0-x1")
        );
        // Without a record, nothing is in flight as far as the operator is concerned.
        d.metadata.annotations = None;
        let planted = owned(
            run("web-8d3e41f0", "8d3e41f0", 10, RolloutRunStatus::default()),
            "planted",
        );
        assert!(of_deployment(&d, &[], &[planted]).current.is_none());
    }
}
