//! The README's install block, run as written.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use super::REPO;
use super::checklist::run_test_pod;
use super::helm::{kubectl, run};
use super::release::{Release, adopt_crds, alone, local_control_plane};
use crate::support::{self, helm_bin};

/// The README's install block, run as written: `make image-push` to a registry (here one on
/// 127.0.0.1 standing in for registry.example.com/platform, so `REGISTRY_TLS_VERIFY=false`),
/// `helm install` with the values it wrote, the rollout status, the first policy.
#[tokio::test]
async fn the_readme_install_works_as_written() {
    // It uses the README's fixed namespaces (`rollguard-system`, `shop`, deleted first) and
    // plays the kubelet for `helm test`: never on someone's own cluster.
    if !local_control_plane() {
        eprintln!("skipped: the README install block runs only on the local control plane");
        return;
    }
    let _cluster = alone().await;
    let client = support::client().await;
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README");
    let section = readme
        .split("## Install on a cluster with Helm")
        .nth(1)
        .expect("the install section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("its sh block");
    assert!(
        block.contains("make image-push") && block.contains("helm install"),
        "{block}"
    );
    let registry = support::image::Registry::start("readme");
    let script = block.replace("registry.example.com/platform", &registry.addr);

    // Fresh names as the README uses them.
    for ns in ["shop", "rollguard-system"] {
        let _ = kubectl(
            &[
                "delete",
                "namespace",
                ns,
                "--wait=true",
                "--ignore-not-found",
            ],
            None,
        );
    }
    // The CLI tests' copy of the chart's approval policy has the name this release gives its
    // own.
    support::admission::remove();
    adopt_crds(&client, "rollguard", "rollguard-system").await;
    // `helm` on PATH is the pinned one; kubectl and helm talk to the test cluster.
    let bin = support::image::work_dir("readme-bin");
    std::os::unix::fs::symlink(helm_bin(), bin.join("helm")).expect("helm on PATH");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euxo", "pipefail", "-c", &script])
        .current_dir(REPO)
        .env("PATH", path)
        .env("KUBECONFIG", support::kubeconfig_path())
        .env("REGISTRY_TLS_VERIFY", "false");
    let script_run = std::thread::spawn(move || run(&mut cmd, None));
    // Its `helm test`: once the hook Pod exists, its check, run from the image that
    // `make image-push` built (unless the block failed before it got there).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rollguard-system");
    while !script_run.is_finished()
        && pods
            .get_opt("rollguard-test")
            .await
            .ok()
            .flatten()
            .is_none()
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if script_run.is_finished() {
        let (_, stdout, stderr) = script_run.join().expect("the README block");
        panic!("the README's install block ended before helm test:\n{stdout}\n{stderr}");
    }
    let (test_ok, test_out) = run_test_pod(
        &client,
        "rollguard-system",
        "rollguard-test",
        || support::image::Build::load(&Path::new(REPO).join("build/image")),
        Duration::from_secs(60),
    )
    .await;
    let (ok, stdout, stderr) = script_run.join().expect("the README block");
    assert!(test_ok, "helm test's check-install failed:\n{test_out}");
    let release = Release {
        name: "rollguard".into(),
        namespace: "rollguard-system".into(),
        installed: true,
    };
    assert!(ok, "the README's install block failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("successfully rolled out"), "{stdout}");
    assert!(
        stdout.contains("shop"),
        "the first policy is listed:\n{stdout}"
    );
    let values =
        std::fs::read_to_string(Path::new(REPO).join("build/image/values.yaml")).expect("values");
    let deploy: Deployment = Api::namespaced(client.clone(), "rollguard-system")
        .get("rollguard")
        .await
        .expect("the operator Deployment");
    let image = deploy
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0]
        .image
        .clone()
        .expect("image");
    assert!(
        image.starts_with(&format!("{}/rollguard@sha256:", registry.addr)),
        "{image}"
    );
    assert!(
        values.contains(image.split('@').nth(1).expect("digest")),
        "{values}"
    );
    release.uninstall();
    for ns in ["shop", "rollguard-system"] {
        let _ = kubectl(&["delete", "namespace", ns, "--wait=false"], None);
    }
}
