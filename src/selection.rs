//! Which policy governs which Deployment: label-selector matching as rollguard decides it
//! (an empty selector selects nothing), shared by the operator and the CLI so both agree.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;

use crate::api::RolloutPolicy;
use crate::names::{ROLE_CANARY, ROLE_LABEL};

/// Whether a Deployment is a canary rollguard made.
pub fn is_canary(d: &Deployment) -> bool {
    d.labels().get(ROLE_LABEL).map(String::as_str) == Some(ROLE_CANARY)
}

/// Whether a label selector selects these labels (matchLabels and matchExpressions). An
/// empty selector selects nothing here: the API server refuses it on policies anyway.
pub fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let ml = sel.match_labels.as_ref();
    let me = sel.match_expressions.as_ref();
    if ml.is_none_or(|m| m.is_empty()) && me.is_none_or(|e| e.is_empty()) {
        return false;
    }
    let labels_ok = ml.is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = me.is_none_or(|es| {
        es.iter().all(|e| {
            let have = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

/// Whether a policy selects a Deployment (by the Deployment's own labels, same namespace,
/// never a canary).
pub fn selects(p: &RolloutPolicy, d: &Deployment) -> bool {
    !is_canary(d)
        && p.namespace() == d.namespace()
        && d.metadata
            .labels
            .as_ref()
            .is_some_and(|l| selector_matches(&p.spec.selector, l))
}
