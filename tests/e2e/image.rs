//! The operator image (issue 18): `scripts/image.sh` (what `make image` runs) builds it with
//! buildah and no daemon, and this file proves what the image is and that it runs.
//!
//! - Built twice in a row, the two builds have one digest; the image is small, labelled, runs
//!   as uid 65532, and has no shell and no package manager.
//! - Its root filesystem, exported from the OCI layout the build writes, runs the operator
//!   with `chroot`: as the image's user, with the root mounted read-only, with the chart's
//!   arguments and environment and an in-cluster ServiceAccount token of the chart's
//!   ServiceAccount (what a kubelet would mount). It passes its CRD check, takes the Lease,
//!   governs a Deployment and rolls back a bad canary, against the local control plane.
//!
//! Containers cannot run here (the sandbox refuses runc's setrlimit calls), which is why the
//! rootfs runs under chroot in its own mount namespace (`unshare -m`): what a container
//! runtime adds beyond that (cgroups, seccomp, the pod network) is the runtime's, not the
//! image's.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use rollguard::api::run::Phase;
use serde_json::json;

use crate::support::image::{
    Running, TEST_IMAGE, build_image, chroot_command, container_command, entrypoint_user_env,
    export_rootfs, git_head, image, manifest_and_config, work_dir,
};
use crate::support::world::{World, newest_run};
use crate::support::{self, free_port, test_namespace, wait_for};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_image_is_reproducible_small_labelled_and_minimal() {
    let first = image();
    let second = build_image(&work_dir("b"));
    assert_eq!(
        first.digest, second.digest,
        "two builds in a row gave two digests:\n{}\n{}",
        first.output, second.output
    );
    println!(
        "image digest {} (twice); {} bytes uncompressed, {} compressed",
        first.digest, first.sizes.0, first.sizes.1
    );
    assert!(
        first.sizes.0 < 30_000_000,
        "the image is {} bytes",
        first.sizes.0
    );

    let (manifest, config) = manifest_and_config(first);
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    let labels = &config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.revision"], git_head());
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://github.com/rollguard/rollguard"
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    let (entrypoint, user, _) = entrypoint_user_env(&config);
    assert_eq!(entrypoint, ["/usr/bin/rollguard"]);
    assert_eq!(user, "65532:65532");

    let root = export_rootfs(first, "rootfs-minimal");
    for present in [
        "usr/bin/rollguard",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
        "lib64/ld-linux-x86-64.so.2",
    ] {
        assert!(root.join(present).exists(), "{present} is missing");
    }
    for absent in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "usr/bin/apt",
        "usr/bin/dpkg",
        "bin/busybox",
    ] {
        assert!(
            std::fs::symlink_metadata(root.join(absent)).is_err(),
            "{absent} is in the image"
        );
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");

    // `rollguard --version` from the image, as its user, read-only: version and revision.
    let mut argv = entrypoint.clone();
    argv.push("--version".into());
    let out = chroot_command(&root, &user, &[], &argv)
        .output()
        .expect("running the image's rollguard --version");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{version}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        version.trim(),
        format!(
            "rollguard {} (git {})",
            env!("CARGO_PKG_VERSION"),
            git_head()
        )
    );
}

// ---------------------------------------------------------------------------------------

fn helm(args: &[&str]) -> String {
    let out = Command::new(support::helm_bin())
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args)
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_image_runs_the_operator_as_the_chart_would() {
    let b = image();
    let root = export_rootfs(b, "rootfs-run");

    let admin = support::client().await;
    let ns = test_namespace(&admin, "image-run").await;
    let n = ns.name.clone();
    // This operator runs as its own release's ServiceAccount: out of reach of the run guard
    // other tests apply for release `rollguard` (the guard itself: e2e/cli.rs).
    support::label_namespace(&admin, &n, support::admission::UNGUARDED, Some("true")).await;
    let release = format!("rg-img-{}", support::unique_suffix());
    let port = free_port();
    // The chart, installed with the built image's digest, scoped to the test namespace.
    helm(&[
        "install",
        &release,
        &format!("{REPO}/charts/rollguard"),
        "--namespace",
        &n,
        "--set",
        "crds.install=false",
        "--set",
        &format!("watchNamespace={n}"),
        "--set",
        "replicaCount=1",
        "--set",
        &format!("image.repository={TEST_IMAGE}"),
        "--set",
        &format!("image.digest={}", b.digest),
        "--set",
        &format!("prometheus.address={}", support::prometheus_url()),
        "--set",
        &format!("metrics.port={port}"),
        "--set",
        "leaderElection.leaseDuration=6s",
        // Namespaced objects but for the operator fence, which matches this release's
        // ServiceAccount only (a leftover fences nobody else): the operator runs under it.
        "--set",
        "approvalPolicy.enabled=false",
        "--set",
        "runGuard.enabled=false",
        "--set",
        "rbac.aggregateRoles=false",
    ]);
    let fullname = format!("{release}-rollguard");
    let chart_deploy: Deployment = Api::namespaced(admin.clone(), &n)
        .get(&fullname)
        .await
        .expect("the chart's Deployment");
    let pod = chart_deploy
        .spec
        .and_then(|s| s.template.spec)
        .expect("a pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some(format!("{TEST_IMAGE}@{}", b.digest).as_str()),
        "the chart pins the built digest"
    );
    let sa = pod.service_account_name.clone().expect("a ServiceAccount");
    let token = support::service_account_token(&admin, &n, &sa, 3600).await;
    let pod_name = format!("{fullname}-chroot-0");
    let server = support::admin_config().await.cluster_url;
    let mut cmd = container_command(
        b,
        &root,
        &work_dir("pod"),
        container,
        &pod_name,
        &n,
        &token,
        &server,
    );
    let log_path = Path::new(REPO).join(format!("target/e2e-logs/{n}-image-operator.log"));
    let _ = std::fs::create_dir_all(log_path.parent().expect("log dir"));
    let log = std::fs::File::create(&log_path).expect("log file");
    cmd.stdout(log.try_clone().expect("log")).stderr(log);
    let mut op = Running(cmd.spawn().expect("starting the image's operator"));
    let tail = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let pid = op.0.id();
    let ready_url = format!("http://127.0.0.1:{port}/readyz");
    wait_for(
        Duration::from_secs(60),
        "the image's operator to be ready (CRD check passed)",
        async || {
            if let Ok(Some(code)) = op.0.try_wait() {
                panic!("the operator exited with {code}:\n{}", tail());
            }
            let r = reqwest::get(&ready_url).await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    // Its process (unshare and chroot exec'd into it): the image's binary, as the image's
    // user, on a read-only root.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert_eq!(
        uid_line.split_whitespace().skip(1).collect::<Vec<_>>(),
        ["65532"; 4],
        "{uid_line}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    assert_eq!(exe, root.join("usr/bin/rollguard"), "the image's binary");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let root_mount = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .expect("the process's root mount");
    assert!(
        root_mount
            .split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|f| f == "ro")),
        "the root is read-only: {root_mount}"
    );

    // The Lease.
    wait_for(Duration::from_secs(30), "the Lease", async || {
        let l = Api::<Lease>::namespaced(admin.clone(), &n)
            .get("rollguard-leader")
            .await
            .ok()?;
        (l.spec?.holder_identity? == pod_name).then_some(())
    })
    .await;

    // A governed Deployment behind a Service, with traffic, and a policy that names no
    // Prometheus (the chart's `prometheus.address` is the operator's default).
    let w = World::builder("image-run")
        .namespace(ns)
        .analysis(json!({"prometheus": null}))
        .without_operator()
        .build()
        .await;

    // A bad canary: 30% errors. The image's operator rolls it back.
    w.deploy("0.3", "example.com/web:2", None).await;
    let runs = w.runs();
    let run = wait_for(Duration::from_secs(90), "a RolledBack run", async || {
        let r = newest_run(&runs).await?;
        (r.status.as_ref()?.phase == Phase::RolledBack).then_some(r)
    })
    .await;
    assert!(
        run.status.is_some(),
        "the run's status records the rollback"
    );
    assert!(
        op.0.try_wait().expect("try_wait").is_none(),
        "the operator is still running:\n{}",
        tail()
    );
    drop(op);
    helm(&["uninstall", &release, "--namespace", &n]);
    w.finish().await;
}
