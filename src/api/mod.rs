//! The rollguard.dev/v1alpha1 API: `RolloutPolicy` (written by platform teams) and
//! `RolloutRun` (written by the operator), plus the string quantities the schema uses
//! instead of floats. Types only; behaviour lives in `plan`, `run` and `controller`.

pub mod notification;
pub mod policy;
pub mod quantity;
pub mod reference;
pub mod run;

pub use policy::{RolloutPolicy, RolloutPolicySpec};
pub use run::{RolloutRun, RolloutRunSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group.
pub const GROUP: &str = "rollguard.dev";

/// The CRDs this project defines, in the order they are applied.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![RolloutPolicy::crd(), RolloutRun::crd()]
}

/// The CRDs as one multi-document YAML stream (what `rollguard crd` prints and `crds/`
/// holds).
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
