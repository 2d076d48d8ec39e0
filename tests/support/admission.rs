//! The chart's admission policies applied by hand, as the chart names them: the approval
//! guard (`rollguard-approvals`, a ValidatingAdmissionPolicy), so every approval and command
//! the CLI tests write passes the same check a forged one fails, and the unpause stamp
//! (`rollguard-unpause-stamp`, a MutatingAdmissionPolicy), so a resume by hand is attributed,
//! and the run guard (`rollguard-runs-guard`), so every world runs with only the operator (and
//! the exempt cluster administrators, as which the test operators run) creating runs and
//! writing status.
//! They are cluster-scoped and have the names the README's `helm install` gives its own: the
//! chart tests that install the chart's policies remove these copies first, under an
//! exclusive claim, and the next world that wants one applies it again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingAdmissionPolicy, ValidatingAdmissionPolicy,
};
use kube::api::Api;
use tokio::io::AsyncWriteExt;

/// One of the chart's admission policies (a policy and its binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Approvals,
    UnpauseStamp,
    RunsGuard,
    PauseGate,
    GovernanceGuard,
}

pub const ALL: [Policy; 5] = [
    Policy::Approvals,
    Policy::UnpauseStamp,
    Policy::RunsGuard,
    Policy::PauseGate,
    Policy::GovernanceGuard,
];

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Approvals => "rollguard-approvals",
            Policy::UnpauseStamp => "rollguard-unpause-stamp",
            Policy::RunsGuard => "rollguard-runs-guard",
            Policy::PauseGate => "rollguard-pause-gate",
            Policy::GovernanceGuard => "rollguard-governance-guard",
        }
    }

    fn template(self) -> &'static str {
        match self {
            Policy::Approvals => "templates/approval-policy.yaml",
            Policy::UnpauseStamp => "templates/unpause-stamp.yaml",
            Policy::RunsGuard => "templates/runs-guard.yaml",
            Policy::PauseGate => "templates/pause-gate.yaml",
            Policy::GovernanceGuard => "templates/governance-guard.yaml",
        }
    }

    /// Chart values the copy is rendered with (the guard is off by default).
    fn values(self) -> &'static [&'static str] {
        match self {
            Policy::GovernanceGuard => &[
                "--set",
                "governanceGuard.enabled=true",
                "--set",
                "governanceGuard.taggerUsers={ci-bot}",
                "--set",
                "governanceGuard.labels={app.kubernetes.io/part-of}",
            ],
            _ => &[],
        }
    }

    /// The kubectl resource names of the policy and its binding.
    fn kinds(self) -> [&'static str; 2] {
        match self {
            Policy::Approvals | Policy::RunsGuard | Policy::GovernanceGuard => [
                "validatingadmissionpolicybinding",
                "validatingadmissionpolicy",
            ],
            Policy::UnpauseStamp | Policy::PauseGate => {
                ["mutatingadmissionpolicybinding", "mutatingadmissionpolicy"]
            }
        }
    }

    async fn exists(self, client: &kube::Client) -> bool {
        let found = match self {
            Policy::Approvals | Policy::RunsGuard | Policy::GovernanceGuard => {
                Api::<ValidatingAdmissionPolicy>::all(client.clone())
                    .get_opt(self.name())
                    .await
                    .map(|p| p.is_some())
            }
            Policy::UnpauseStamp | Policy::PauseGate => {
                Api::<MutatingAdmissionPolicy>::all(client.clone())
                    .get_opt(self.name())
                    .await
                    .map(|p| p.is_some())
            }
        };
        found.unwrap_or_else(|e| panic!("reading the admission policy {}: {e}", self.name()))
    }
}

/// The policy and its binding, rendered with helm (the pinned one, else `helm` on PATH), else
/// taken from the rendered plain manifests deploy/rollguard.yaml.
fn yaml(policy: Policy) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let helm = super::pinned_helm().unwrap_or_else(|| PathBuf::from("helm"));
    let rendered = std::process::Command::new(&helm)
        .args([
            "template",
            "rollguard",
            "charts/rollguard",
            "--namespace",
            "rollguard-system",
        ])
        .args(["--show-only", policy.template()])
        .args(policy.values())
        .args([
            "--api-versions",
            "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
        ])
        .current_dir(repo)
        .output();
    if let Ok(o) = rendered
        && o.status.success()
    {
        return String::from_utf8_lossy(&o.stdout).into_owned();
    }
    let plain = std::fs::read_to_string(repo.join("deploy/rollguard.yaml"))
        .expect("deploy/rollguard.yaml (the rendered chart), since helm could not render it");
    let docs: Vec<&str> = plain
        .split("\n---")
        .filter(|d| d.contains(&format!("# Source: rollguard/{}", policy.template())))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "the policy {policy:?} and its binding in deploy/rollguard.yaml"
    );
    docs.join("\n---\n")
}

/// Namespaces labelled `rollguard.dev/e2e-unguarded` are left out of the run guard's binding:
/// the image test runs a real operator as its own release's ServiceAccount, which this copy
/// (made for release `rollguard` in `rollguard-system`) would refuse. Only this hand-applied
/// copy has the opt-out; the chart's binding has none.
pub const UNGUARDED: &str = "rollguard.dev/e2e-unguarded";

/// Namespaces labelled `rollguard.dev/e2e-unapproved` are left out of the approval policy's
/// binding, so a test can show what the operator counts on a cluster without the policy. Only
/// this hand-applied copy has the opt-out.
pub const UNCHECKED_APPROVALS: &str = "rollguard.dev/e2e-unapproved";

/// Namespaces labelled `rollguard.dev/e2e-ungated` are left out of the pause gate's binding,
/// so a test can show the mode rollguard falls back to on a cluster without the gate. Only
/// this hand-applied copy has the opt-out.
pub const UNGATED: &str = "rollguard.dev/e2e-ungated";

/// The copy's binding, limited to the namespaces where `label` passes `operator`
/// (`DoesNotExist`: an opt-out; `Exists`: an opt-in).
fn bind_where(yaml: &str, binding_kind: &str, label: &str, operator: &str) -> String {
    let (policy, binding) = yaml
        .split_once(&format!("kind: {binding_kind}"))
        .expect("the policy's binding");
    assert!(!binding.contains("matchResources"), "{binding}");
    format!(
        "{policy}kind: {binding_kind}{}\n  matchResources:\n    namespaceSelector:\n      matchExpressions:\n        - {{key: {label}, operator: {operator}}}\n",
        binding.trim_end()
    )
}

/// Only namespaces labelled `rollguard.dev/e2e-governance-guard` are under the copy of the
/// governance guard: it refuses resumes by hand, which other tests make on purpose.
pub const GOVERNANCE_GUARDED: &str = "rollguard.dev/e2e-governance-guard";

/// The test operators run as the cluster administrator `rollguard-admin`, not as the chart's
/// ServiceAccount: the copy of the unpause stamp treats that user as the operator too, so an
/// operator's own unpause (between runs under the pause gate) is not stamped as someone
/// else's. The people in the tests that resume by hand are other users.
fn test_operators_are_the_operator(yaml: &str) -> String {
    let chart = r#"expression: request.userInfo.username != "system:serviceaccount:rollguard-system:rollguard""#;
    assert!(yaml.contains(chart), "{yaml}");
    yaml.replace(
        chart,
        r#"expression: '!(request.userInfo.username in ["system:serviceaccount:rollguard-system:rollguard", "rollguard-admin"])'"#,
    )
}

/// Applies the policy unless it is there. The API server loads it asynchronously: a test that
/// needs it to act waits for it to.
pub async fn in_force(client: &kube::Client, policy: Policy) {
    if policy.exists(client).await {
        return;
    }
    let mut yaml = yaml(policy);
    assert!(yaml.contains(&format!("name: {}", policy.name())), "{yaml}");
    match policy {
        Policy::UnpauseStamp => yaml = test_operators_are_the_operator(&yaml),
        Policy::Approvals => {
            yaml = bind_where(
                &yaml,
                "ValidatingAdmissionPolicyBinding",
                UNCHECKED_APPROVALS,
                "DoesNotExist",
            )
        }
        Policy::RunsGuard => {
            yaml = bind_where(
                &yaml,
                "ValidatingAdmissionPolicyBinding",
                UNGUARDED,
                "DoesNotExist",
            )
        }
        Policy::PauseGate => {
            yaml = bind_where(
                &yaml,
                "MutatingAdmissionPolicyBinding",
                UNGATED,
                "DoesNotExist",
            )
        }
        Policy::GovernanceGuard => {
            yaml = bind_where(
                &yaml,
                "ValidatingAdmissionPolicyBinding",
                GOVERNANCE_GUARDED,
                "Exists",
            )
        }
    }
    let mut kubectl = tokio::process::Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-f", "-"])
        .env("KUBECONFIG", super::kubeconfig_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    {
        let mut stdin = kubectl.stdin.take().expect("kubectl stdin");
        stdin
            .write_all(yaml.as_bytes())
            .await
            .expect("writing the policy");
    }
    let out = kubectl.wait_with_output().await.expect("kubectl apply");
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if policy == Policy::PauseGate {
        gate_acts(client).await;
    }
}

/// Waits until the API server has loaded the pause gate: a dry-run of a template change on a
/// Deployment annotated as governed comes back paused. The Deployment (no replicas, no
/// operator) lives in a namespace of its own that stays for the next test.
async fn gate_acts(client: &kube::Client) {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    const NS: &str = "rollguard-e2e-gate-probe";
    let apply = PatchParams::apply("rollguard-e2e").force();
    Api::<Namespace>::all(client.clone())
        .patch(
            NS,
            &apply,
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})),
        )
        .await
        .expect("the gate probe's namespace");
    let deployments = Api::<Deployment>::namespaced(client.clone(), NS);
    deployments
        .patch(
            "probe",
            &apply,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "probe", "annotations": {"rollguard.dev/policy": "probe"}},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "probe"}},
                    "template": {
                        "metadata": {"labels": {"app": "probe"}},
                        "spec": {"containers": [{"name": "c", "image": "probe"}]}
                    }
                }
            })),
        )
        .await
        .expect("the gate probe's Deployment");
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    let change =
        serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}});
    for _ in 0..300 {
        let d = deployments
            .patch("probe", &dry, &Patch::Merge(&change))
            .await
            .expect("a dry-run of a template change");
        if d.spec.and_then(|s| s.paused) == Some(true) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the pause gate did not pause a template change within 30 s of being applied");
}

/// Removes the copies applied by hand, if any (call it holding the cluster exclusively).
pub fn remove() {
    for kind in ALL
        .into_iter()
        .flat_map(|p| p.kinds().map(|k| (k, p.name())))
    {
        let (kind, name) = kind;
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(super::kubeconfig_path())
            .args(["delete", kind, name, "--ignore-not-found"])
            .output()
            .expect("running kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
