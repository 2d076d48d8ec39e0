//! The image and the packaged chart pushed to a registry on 127.0.0.1 and installed from
//! `oci://`, pinned by digest.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use serde_json::Value;

use super::REPO;
use super::helm::{chart_dir, helm, run, yaml_file};
use super::release::{Release, adopt_crds, alone, release_name};
use crate::support::{self, helm_bin, test_namespace};

#[tokio::test]
async fn chart_and_image_install_from_an_oci_registry() {
    let _cluster = alone().await;
    let client = support::client().await;
    let registry = support::image::Registry::start("oci");
    let work = support::image::work_dir("oci-push");
    let image_repo = format!("{}/platform/rollguard", registry.addr);
    // The image: built and pushed by scripts/image.sh --push (make image-push).
    let (ok, stdout, stderr) = run(
        Command::new(Path::new(REPO).join("scripts/image.sh"))
            .arg("--push")
            .env("IMAGE", &image_repo)
            .env("IMAGE_BUILD_DIR", &work)
            .env("REGISTRY_TLS_VERIFY", "false"),
        None,
    );
    assert!(ok, "scripts/image.sh --push:\n{stdout}{stderr}");
    let digest = std::fs::read_to_string(work.join("digest"))
        .expect("digest")
        .trim()
        .to_string();
    let values = std::fs::read_to_string(work.join("values.yaml")).expect("values.yaml");
    assert!(
        values.contains(&format!("digest: \"{digest}\"")),
        "{values}"
    );
    // The registry serves that manifest by digest.
    let resp = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/platform/rollguard/manifests/{digest}",
            registry.addr
        ))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .expect("asking the registry");
    assert_eq!(resp.status(), 200, "the registry has {digest}");

    // The chart: packaged, pushed, installed from the oci:// reference with those values.
    let pkg = support::image::work_dir("oci-chart");
    helm(&[
        "package",
        chart_dir().to_str().expect("chart"),
        "-d",
        pkg.to_str().expect("dir"),
    ]);
    let chart: Value = yaml_file("charts/rollguard/Chart.yaml");
    let version = chart["version"].as_str().expect("version").to_string();
    let tgz = pkg.join(format!("rollguard-{version}.tgz"));
    let charts_ref = format!("oci://{}/platform/charts", registry.addr);
    let out = {
        let mut cmd = Command::new(helm_bin());
        cmd.args([
            "push",
            tgz.to_str().expect("tgz"),
            &charts_ref,
            "--plain-http",
        ]);
        run(&mut cmd, None)
    };
    assert!(out.0, "helm push: {}{}", out.1, out.2);
    assert!(
        out.2.contains("Digest: sha256:") || out.1.contains("Digest: sha256:"),
        "{out:?}"
    );
    let ns = test_namespace(&client, "chart-oci").await;
    let n = ns.name.clone();
    let name = release_name("rg-oci");
    adopt_crds(&client, &name, &n).await;
    let values_file = work.join("values.yaml");
    helm(&[
        "install",
        &name,
        &format!("{charts_ref}/rollguard"),
        "--version",
        &version,
        "--plain-http",
        "--namespace",
        &n,
        "-f",
        values_file.to_str().expect("values"),
        "--wait",
        "--timeout",
        "120s",
    ]);
    let release = Release {
        name: name.clone(),
        namespace: n.clone(),
        installed: true,
    };
    let deploy: Deployment = Api::namespaced(client.clone(), &n)
        .get(&release.fullname())
        .await
        .expect("the operator Deployment");
    assert_eq!(
        deploy
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod")
            .containers[0]
            .image
            .as_deref(),
        Some(format!("{image_repo}@{digest}").as_str()),
        "installed from the OCI chart, pinned to the pushed digest"
    );
    let status = helm(&["status", &name, "--namespace", &n]);
    assert!(status.contains("STATUS: deployed"), "{status}");
    release.uninstall();
    ns.cleanup().await;
}
