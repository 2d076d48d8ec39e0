//! Releases on the cluster and what they need around them: install, upgrade and uninstall,
//! the CRDs adopted and restored, tokens for ServiceAccounts, a claim to hold the cluster
//! alone.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::helm::{docs, helm, run};
use super::{POLICIES_CRD, REPO, RUNS_CRD};
use crate::support::{self, claim, helm_bin};

pub(super) fn gvk_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

pub(super) fn runs_resource() -> ApiResource {
    gvk_resource("rollguard.dev", "v1alpha1", "RolloutRun", "rolloutruns")
}

pub(super) fn policies_resource() -> ApiResource {
    gvk_resource(
        "rollguard.dev",
        "v1alpha1",
        "RolloutPolicy",
        "rolloutpolicies",
    )
}

pub(super) fn routes_resource() -> ApiResource {
    gvk_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
}

pub(super) fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

/// A minimal valid RolloutRun as the operator would create it.
pub(super) fn run_object(name: &str, ns: &str) -> DynamicObject {
    dynamic(json!({
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RolloutRun",
        "metadata": {"name": name, "namespace": ns, "labels": {"rollguard.dev/deployment": "web"}},
        "spec": {
            "deployment": "web",
            "policy": "shop",
            "stableRevision": "5d8f7c9b6",
            "canaryRevision": "7f6b5c4d3",
            "tier": {"name": "standard", "reason": "no tier matched; the last tier takes every revision"},
            "plan": {"name": "standard", "steps": [{"weight": "10%", "pause": "2m"}], "maxErrorRate": "1%"},
            "analysis": {"requests": "sum(rate(x[1m]))", "errors": "sum(rate(y[1m]))"},
            "router": "replicas",
        },
    }))
}

/// A TokenRequest token for a ServiceAccount.
pub(super) async fn token_for(client: &Client, ns: &str, sa: &str) -> String {
    let tr = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(1800),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &tr)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {ns}/{sa}: {e}"))
        .status
        .and_then(|s| s.token)
        .expect("TokenRequest returns a token")
}

/// Labels and annotates CRDs that already exist (applied by kubectl, or kept by an
/// uninstalled release) so Helm adopts them into `release`; Helm refuses to install over
/// objects that another owner made. The documented way to move CRDs under a release.
pub(super) async fn adopt_crds(client: &Client, release: &str, ns: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [POLICIES_CRD, RUNS_CRD] {
        if crds.get_opt(name).await.expect("reading a CRD").is_none() {
            continue;
        }
        let patch = json!({"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns},
        }});
        crds.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("adopting {name}: {e}"));
    }
}

/// Puts the CRDs back to what crds/rollguard.yaml says (after a test changed them).
pub(super) async fn restore_crds(client: &Client) {
    let text = std::fs::read_to_string(Path::new(REPO).join("crds/rollguard.yaml"))
        .expect("crds/rollguard.yaml");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for doc in docs(&text) {
        let want: CustomResourceDefinition = serde_json::from_value(doc).expect("a CRD");
        let name = want.name_any();
        let mut have = crds
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("reading {name}: {e}"));
        have.spec = want.spec;
        crds.replace(&name, &PostParams::default(), &have)
            .await
            .unwrap_or_else(|e| panic!("restoring {name}: {e}"));
    }
}

/// An installed release, uninstalled when dropped if the test did not (a failed test must
/// not leave cluster-scoped objects behind).
pub(super) struct Release {
    pub(super) name: String,
    pub(super) namespace: String,
    pub(super) installed: bool,
}

impl Release {
    /// `helm install` of `chart` (adopting existing CRDs) and waits until it is ready.
    pub(super) async fn install(
        client: &Client,
        chart: &Path,
        name: &str,
        namespace: &str,
        sets: &[&str],
    ) -> (Release, String) {
        adopt_crds(client, name, namespace).await;
        let mut args = vec![
            "install",
            name,
            chart.to_str().expect("chart path"),
            "--namespace",
            namespace,
            "--wait",
            "--timeout",
            "120s",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        (
            Release {
                name: name.to_string(),
                namespace: namespace.to_string(),
                installed: true,
            },
            out,
        )
    }

    /// `helm upgrade` with exactly these values (no --reuse-values, which cannot unset a
    /// list), and waits until it is ready.
    pub(super) fn upgrade(&self, chart: &Path, sets: &[&str]) -> String {
        let mut args = vec![
            "upgrade",
            &self.name,
            chart.to_str().expect("chart path"),
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ];
        for s in sets {
            args.extend(["--set", s]);
        }
        helm(&args)
    }

    pub(super) fn uninstall(mut self) -> String {
        self.installed = false;
        helm(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "120s",
        ])
    }

    /// The operator's user name.
    pub(super) fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace,
            self.fullname()
        )
    }

    pub(super) fn fullname(&self) -> String {
        if self.name.contains("rollguard") {
            self.name.clone()
        } else {
            format!("{}-rollguard", self.name)
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if self.installed {
            let mut cmd = Command::new(helm_bin());
            cmd.arg("--kubeconfig")
                .arg(support::kubeconfig_path())
                .args([
                    "uninstall",
                    &self.name,
                    "--namespace",
                    &self.namespace,
                    "--wait",
                ]);
            let _ = run(&mut cmd, None);
        }
    }
}

/// A test that installs releases holds the cluster alone: a release brings cluster-scoped
/// objects (CRDs, ClusterRoles, admission policies) no other test may meet.
pub(super) async fn alone() -> claim::Claim {
    claim::exclusive().await
}

pub(super) fn release_name(prefix: &str) -> String {
    format!("{prefix}-{}", support::unique_suffix())
}

/// Labels a namespace to enforce the `restricted` Pod Security Standard.
pub(super) async fn restrict(client: &Client, ns: &str) {
    let patch = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("labelling the namespace restricted");
}

pub(super) fn status_code<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> Option<u16> {
    match r {
        Err(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

/// Whether the tests run on the local control plane (`tests/cluster/cluster.sh up` tags its
/// kubeconfig), where the test may play the kubelet and own fixed namespace names.
pub(super) fn local_control_plane() -> bool {
    std::fs::read_to_string(support::kubeconfig_path())
        .is_ok_and(|k| k.starts_with("# rollguard-local-control-plane"))
}
