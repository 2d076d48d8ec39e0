//! The chart's approval admission policy (`rollguard-approvals`: a ValidatingAdmissionPolicy
//! and its binding) applied by hand, so every approval and command the CLI tests write passes
//! the same check a forged one fails. It is cluster-scoped and has the name the README's
//! `helm install` gives its own: the chart tests that install the chart's policy remove this
//! copy first, under an exclusive claim, and the next world that wants it applies it again.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy;
use kube::api::Api;
use tokio::io::AsyncWriteExt;

const NAME: &str = "rollguard-approvals";

/// The policy and its binding, rendered with helm (the pinned one, else `helm` on PATH), else
/// taken from the rendered plain manifests deploy/rollguard.yaml.
fn yaml() -> String {
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
        .args(["--show-only", "templates/approval-policy.yaml"])
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
        .filter(|d| d.contains("# Source: rollguard/templates/approval-policy.yaml"))
        .collect();
    assert_eq!(
        docs.len(),
        2,
        "the policy and its binding in deploy/rollguard.yaml"
    );
    docs.join("\n---\n")
}

/// Applies the policy unless it is there. The API server loads it asynchronously: a test that
/// needs a refusal waits for one.
pub async fn in_force(client: &kube::Client) {
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    if policies
        .get_opt(NAME)
        .await
        .expect("reading the approval policy")
        .is_some()
    {
        return;
    }
    let yaml = yaml();
    assert!(yaml.contains(&format!("name: {NAME}")), "{yaml}");
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
}

/// Removes the copy applied by hand, if any (call it holding the cluster exclusively).
pub fn remove() {
    for kind in [
        "validatingadmissionpolicybinding",
        "validatingadmissionpolicy",
    ] {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(super::kubeconfig_path())
            .args(["delete", kind, NAME, "--ignore-not-found"])
            .output()
            .expect("running kubectl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
