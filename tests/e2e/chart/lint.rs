//! The chart lints, its values schema refuses bad values, and its README, its copy of the
//! CRDs and the plain manifests are what the generators make.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::REPO;
use super::helm::{chart_dir, docs, helm, of_kind, render, run};
use crate::support::helm_bin;

#[test]
fn helm_lint_passes() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("chart path");
    for sets in [
        vec![],
        vec![
            "watchNamespace=team-a",
            "rbac.secretNamespaces={team-a,monitoring}",
        ],
        vec![
            "serviceMonitor.enabled=true",
            "logging.format=text",
            "prometheus.address=http://prometheus.monitoring:9090",
        ],
        vec![
            "crds.install=false",
            "approvalPolicy.enabled=false",
            "metrics.service.enabled=false",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        assert!(
            out.contains("0 chart(s) failed"),
            "helm lint with {sets:?}:\n{out}"
        );
    }
}

#[test]
fn values_schema_refuses_bad_values() {
    let chart = chart_dir();
    for bad in [
        "replicaCount=two",
        "watchNamespace=Not_A_Namespace",
        "logging.format=xml",
        "image.pullPolicy=Sometimes",
        "prometheus.address=prometheus:9090",
        "approvalPolicy.validationActions={Deny,Warn}",
        "metrics.port=80",
        "unknownValue=1",
        "rbac.secretNamespaces={UPPER}",
        "rbac.secretNames.team-a={Not_A_Name}",
        "prometheus.address=http://admin:pw@prometheus:9090",
        "prometheus.address=http://prometheus:9090/?x=1",
        "prometheus.address=http://prometheus:9090/#x",
        "notifications.sinks[0].name=Not_A_Name",
    ] {
        let mut cmd = Command::new(helm_bin());
        cmd.args([
            "template",
            "rollguard",
            chart.to_str().expect("chart path"),
            "--set",
            bad,
        ]);
        let (ok, _, stderr) = run(&mut cmd, None);
        assert!(!ok, "values.schema.json accepted --set {bad}");
        assert!(
            stderr.contains("schema"),
            "--set {bad} failed for another reason:\n{stderr}"
        );
    }
}

#[test]
fn chart_readme_is_generated_from_values() {
    let script = chart_dir().join("gen-readme.py");
    let (ok, stdout, stderr) = run(Command::new("python3").arg(&script).arg("--check"), None);
    assert!(ok, "{stderr}{stdout}");
}

#[test]
fn plain_manifests_and_chart_crds_are_up_to_date() {
    // deploy/render.sh --check: crds-src matches crds/, README and deploy/rollguard.yaml match the chart.
    let script = Path::new(REPO).join("deploy/render.sh");
    let mut cmd = Command::new(script);
    cmd.arg("--check").env("ROLLGUARD_HELM", helm_bin());
    let (ok, stdout, stderr) = run(&mut cmd, None);
    assert!(ok, "deploy/render.sh --check:\n{stderr}{stdout}");
    // And the chart's CRDs are exactly crds/ (which a unit test keeps equal to the code).
    let crds = std::fs::read_to_string(Path::new(REPO).join("crds/rollguard.yaml")).expect("crds/");
    let rendered: Vec<Value> = of_kind(&docs(&render(&[])), "CustomResourceDefinition")
        .into_iter()
        .cloned()
        .collect();
    let want = docs(&crds);
    assert_eq!(rendered.len(), want.len());
    for (r, w) in rendered.iter().zip(&want) {
        assert_eq!(
            r["spec"], w["spec"],
            "the chart's CRD {} differs from crds/",
            w["metadata"]["name"]
        );
        assert_eq!(
            r["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
}
