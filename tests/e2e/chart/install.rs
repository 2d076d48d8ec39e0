//! Install, upgrade with a changed CRD, and uninstall that keeps the CRDs and the runs.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, ResourceExt};

use super::helm::{chart_dir, copy_dir, kubectl};
use super::release::{
    Release, alone, release_name, restore_crds, restrict, run_object, runs_resource,
};
use super::{POLICIES_CRD, RUNS_CRD};
use crate::support::{self, test_namespace, wait_for};

/// The RolloutRun CRD's printer column names.
async fn run_columns(client: &Client) -> Vec<String> {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(RUNS_CRD)
        .await
        .expect("reading the RolloutRun CRD");
    crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect()
}

#[tokio::test]
async fn helm_install_upgrade_and_uninstall_keep_crds() {
    let _cluster = alone().await;
    let client = support::client().await;
    let ns = test_namespace(&client, "chart-install").await;
    restrict(&client, &ns.name).await;
    let n = ns.name.clone();
    let name = release_name("rg-install");

    // Install: the operator Deployment becomes available in a namespace that enforces the
    // restricted Pod Security Standard (kwok runs the pods).
    let (release, out) = Release::install(&client, &chart_dir(), &name, &n, &[]).await;
    assert!(
        out.contains("kubectl get rolloutruns -A"),
        "NOTES.txt with next steps:\n{out}"
    );
    let deploy: Deployment = Api::namespaced(client.clone(), &n)
        .get(&release.fullname())
        .await
        .expect("the operator Deployment");
    assert_eq!(
        deploy.status.as_ref().and_then(|s| s.available_replicas),
        Some(2),
        "{deploy:?}"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [POLICIES_CRD, RUNS_CRD] {
        let c = crds.get(crd).await.expect("the CRD is installed");
        assert_eq!(
            c.annotations()
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep")
        );
        assert_eq!(
            c.annotations().get("meta.helm.sh/release-name"),
            Some(&name)
        );
    }
    assert!(!run_columns(&client).await.contains(&"Canary".to_string()));
    // The cluster serves MutatingAdmissionPolicy v1 (1.37): Helm, which asks it, installs
    // the unpause stamp.
    let stamp = format!("{name}-rollguard-unpause-stamp");
    let map = kubectl(&["get", "mutatingadmissionpolicy", &stamp], None);
    assert!(map.0, "the unpause stamp is installed: {map:?}");
    // A run, which must survive the upgrade and the uninstall.
    let runs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &n, &runs_resource());
    runs.create(&PostParams::default(), &run_object("web-7f6b5c4d3", &n))
        .await
        .expect("creating a run");

    // Upgrade with a changed CRD: a copy of the chart whose RolloutRun CRD has one more
    // printer column (what a new operator version's `rollguard crd` would bring).
    let tmp = std::env::temp_dir().join(format!("rollguard-chart-{}", support::unique_suffix()));
    copy_dir(&chart_dir(), &tmp);
    let crd_file = tmp.join("crds-src/rollguard.yaml");
    let text = std::fs::read_to_string(&crd_file).expect("the chart's CRDs");
    let (policies, runs_doc) = text.split_once("\n---\n").expect("two CRDs");
    assert!(runs_doc.contains("name: rolloutruns.rollguard.dev"));
    let runs_doc = runs_doc.replacen(
        "  - additionalPrinterColumns:\n",
        "  - additionalPrinterColumns:\n    - jsonPath: .spec.canaryRevision\n      name: Canary\n      type: string\n",
        1,
    );
    std::fs::write(&crd_file, format!("{policies}\n---\n{runs_doc}"))
        .expect("writing the changed CRD");
    release.upgrade(&tmp, &[]);
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        run_columns(&client).await.contains(&"Canary".to_string()),
        "helm upgrade updated the CRD"
    );
    // ...and the API server serves it: the new column shows in `kubectl get`.
    wait_for(
        Duration::from_secs(30),
        "the new printer column in kubectl get",
        async || {
            let (ok, out, _) = kubectl(&["get", "rolloutruns", "-n", &n], None);
            (ok && out.lines().next().is_some_and(|h| h.contains("CANARY"))
                && out.contains("7f6b5c4d3"))
            .then_some(())
        },
    )
    .await;

    // Uninstall: the operator goes, the CRDs and the run stay.
    let out = release.uninstall();
    assert!(
        out.contains("kept due to the resource policy"),
        "helm uninstall output:\n{out}"
    );
    for crd in [POLICIES_CRD, RUNS_CRD] {
        let c = crds.get_opt(crd).await.expect("reading the CRD");
        assert!(
            c.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
            "{crd} was kept"
        );
    }
    assert!(
        runs.get_opt("web-7f6b5c4d3")
            .await
            .expect("reading the run")
            .is_some(),
        "the run was kept"
    );
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &n);
    assert!(
        deploys
            .get_opt(&format!("{name}-rollguard"))
            .await
            .expect("get")
            .is_none()
    );
    let vap = kubectl(
        &[
            "get",
            "validatingadmissionpolicy",
            &format!("{name}-rollguard-approvals"),
        ],
        None,
    );
    assert!(!vap.0, "the admission policy is removed with the release");
    let map = kubectl(&["get", "mutatingadmissionpolicy", &stamp], None);
    assert!(!map.0, "the unpause stamp is removed with the release");

    restore_crds(&client).await;
    ns.cleanup().await;
}
