//! The API server accepts everything the chart and deploy/rollguard.yaml render (a
//! server-side dry run, in a namespace that enforces the restricted Pod Security Standard).

use std::path::Path;

use super::REPO;
use super::helm::{chart_dir, kubectl, render_chart};
use super::release::restrict;
use crate::support::{self, test_namespace};

#[tokio::test]
async fn rendered_manifests_pass_server_side_dry_run() {
    let client = support::client().await;
    let ns = test_namespace(&client, "chart-dry-run").await;
    restrict(&client, &ns.name).await;
    let n = ns.name.as_str();
    let variants: Vec<Vec<String>> = vec![
        vec![],
        vec![
            format!("watchNamespace={n}"),
            format!("rbac.secretNamespaces={{{n}}}"),
            "logging.format=text".into(),
            "prometheus.address=http://prometheus.monitoring:9090".into(),
            "approvalPolicy.validationActions={Warn,Audit}".into(),
            "replicaCount=1".into(),
        ],
    ];
    let mut manifests: Vec<(String, String)> = variants
        .iter()
        .map(|sets| {
            let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
            // Not release "rollguard": its cluster-scoped admission policies would share
            // names with the copies other tests apply by hand, and a server-side apply
            // merges list-type sets such as a binding's validationActions.
            (
                format!("helm template {sets:?}"),
                render_chart(&chart_dir(), "dry", n, &sets),
            )
        })
        .collect();
    // deploy/rollguard.yaml, moved into the test namespace (its own Namespace object dropped).
    let plain = std::fs::read_to_string(Path::new(REPO).join("deploy/rollguard.yaml"))
        .expect("deploy/rollguard.yaml");
    let plain: Vec<String> = plain
        .split("\n---\n")
        .filter(|d| !d.contains("\nkind: Namespace\n"))
        .map(|d| d.replace("namespace: rollguard-system", &format!("namespace: {n}")))
        .collect();
    manifests.push(("deploy/rollguard.yaml".into(), plain.join("\n---\n")));

    for (what, yaml) in manifests {
        let (ok, stdout, stderr) = kubectl(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=chart-e2e-dry-run",
                "--dry-run=server",
                "-f",
                "-",
            ],
            Some(&yaml),
        );
        assert!(ok, "{what}: the API server refused it:\n{stderr}\n{stdout}");
        assert!(
            !stderr.contains("PodSecurity"),
            "{what}: violates the restricted Pod Security Standard:\n{stderr}"
        );
        for kind in [
            "serviceaccount/",
            "clusterrole.rbac.authorization.k8s.io/",
            "deployment.apps/",
            "customresourcedefinition.apiextensions.k8s.io/",
            "role.rbac.authorization.k8s.io/",
            "service/",
        ] {
            if what.contains("watchNamespace") && kind.starts_with("clusterrole") {
                continue;
            }
            assert!(stdout.contains(kind), "{what}: no {kind} in\n{stdout}");
        }
        if !what.contains("approvalPolicy") {
            let release = if what.starts_with("helm") { "dry-" } else { "" };
            for policy in ["approvals", "runs-guard"] {
                let obj = format!(
                    "validatingadmissionpolicy.admissionregistration.k8s.io/{release}rollguard-{policy}"
                );
                assert!(stdout.contains(&obj), "no {obj} in\n{stdout}");
            }
        }
        // The unpause stamp needs MutatingAdmissionPolicy v1, which `helm template` without
        // a cluster does not assume; the plain manifests (Kubernetes 1.36+) carry it.
        if what == "deploy/rollguard.yaml" {
            for kind in ["mutatingadmissionpolicy", "mutatingadmissionpolicybinding"] {
                let obj = format!("{kind}.admissionregistration.k8s.io/rollguard-unpause-stamp");
                assert!(stdout.contains(&obj), "no {obj} in\n{stdout}");
            }
        }
    }
    ns.cleanup().await;
}
