//! The platform team's checklist (issue 18): PodDisruptionBudget, PrometheusRule (and
//! `promtool check rules`), the Grafana dashboard, aggregated roles, NetworkPolicy, `extra*`,
//! the Artifact Hub metadata, rendered as documented and installed; `helm test` with the
//! hook Pod's check run from the image.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::helm::{chart_dir, kubectl, named, of_kind, render_with, run, string_list, yaml_file};
use super::release::{Release, alone, local_control_plane, release_name, restrict, token_for};
use super::security::{assert_no_wildcards, grants, rule_table};
use super::{POLICIES_CRD, REPO, RUNS_CRD};
use crate::support::{self, helm_bin, test_namespace, wait_for};

#[test]
fn checklist_objects_render_as_documented() {
    // PodDisruptionBudget: on by default (2 replicas), off with one replica.
    let default = render_with(&[]);
    let pdb = named(&default, "PodDisruptionBudget", "rollguard").expect("a PDB by default");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "rollguard"
    );
    assert!(
        of_kind(
            &render_with(&["--set", "replicaCount=1"]),
            "PodDisruptionBudget"
        )
        .is_empty()
    );
    let pdb = render_with(&["--set", "podDisruptionBudget.maxUnavailable=1"]);
    let pdb = of_kind(&pdb, "PodDisruptionBudget")[0];
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(pdb["spec"]["minAvailable"].is_null());

    // Aggregated roles: view (into view, edit, admin), edit (into edit, admin), approver (none).
    let label = |r: &Value, to: &str| {
        r["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")] == "true"
    };
    let view = named(&default, "ClusterRole", "rollguard-view").expect("the view role");
    assert!(label(view, "view") && label(view, "edit") && label(view, "admin"));
    assert_eq!(
        rule_table(view)[&("rollguard.dev".to_string(), "rolloutruns".to_string())],
        ["get", "list", "watch"]
    );
    let edit = named(&default, "ClusterRole", "rollguard-edit").expect("the edit role");
    assert!(!label(edit, "view") && label(edit, "edit") && label(edit, "admin"));
    assert!(grants(edit, "rollguard.dev", "rolloutpolicies", "create"));
    assert!(
        !grants(edit, "rollguard.dev", "rolloutruns", "patch"),
        "edit cannot approve"
    );
    let approver = named(&default, "ClusterRole", "rollguard-approver").expect("the approver");
    assert!(
        !["view", "edit", "admin"]
            .iter()
            .any(|to| label(approver, to))
    );
    assert!(grants(approver, "rollguard.dev", "rolloutruns", "patch"));
    assert!(grants(approver, "apps", "deployments", "get"));
    assert!(!grants(approver, "apps", "deployments", "patch"));
    for r in [view, edit, approver] {
        assert_no_wildcards(r);
    }
    assert!(
        named(
            &render_with(&["--set", "rbac.aggregateRoles=false"]),
            "ClusterRole",
            "rollguard-view"
        )
        .is_none()
    );

    // Off by default: PrometheusRule, dashboard, NetworkPolicy.
    for kind in ["PrometheusRule", "NetworkPolicy", "ConfigMap"] {
        assert!(
            of_kind(&default, kind).is_empty(),
            "{kind} is off by default"
        );
    }
    let on = render_with(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prom",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "networkPolicy.enabled=true",
    ]);
    // The PrometheusRule carries exactly docs/operations/alert-rules.yaml, templates intact.
    let rule = of_kind(&on, "PrometheusRule")[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    assert_eq!(rule["spec"], yaml_file("docs/operations/alert-rules.yaml"));
    assert!(
        serde_json::to_string(&rule["spec"])
            .expect("json")
            .contains("{{ $labels.reason }}")
    );
    // The dashboard ConfigMap: the sidecar's label, the JSON of docs/operations/.
    let cm = of_kind(&on, "ConfigMap")[0];
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["rollguard.json"].as_str().expect("the JSON"))
            .expect("the dashboard parses");
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("docs/operations/grafana-dashboard.json"))
            .expect("the dashboard"),
    )
    .expect("docs dashboard JSON");
    assert_eq!(dashboard, want);
    // The NetworkPolicy: metrics from monitoring; egress to the API server, Prometheus, DNS.
    let np = of_kind(&on, "NetworkPolicy")[0];
    assert_eq!(
        string_list(&np["spec"]["policyTypes"]),
        ["Ingress", "Egress"]
    );
    let ingress = &np["spec"]["ingress"];
    assert_eq!(ingress.as_array().map(Vec::len), Some(1));
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(ingress[0]["ports"][0]["port"], "metrics");
    let egress = np["spec"]["egress"].as_array().expect("egress rules");
    assert_eq!(egress.len(), 3);
    assert_eq!(egress[0]["to"][0]["ipBlock"]["cidr"], "0.0.0.0/0");
    assert_eq!(egress[1]["ports"][0]["port"], 9090);
    assert_eq!(egress[2]["ports"][0]["port"], 53);

    // extraArgs, extraEnv, extraVolumes/extraVolumeMounts, extraObjects.
    let extra = render_with(&[
        "--set",
        "extraArgs={--log-text}",
        "--set-json",
        r#"extraEnv=[{"name":"RUST_BACKTRACE","value":"1"}]"#,
        "--set-json",
        r#"extraVolumes=[{"name":"ca","configMap":{"name":"corp-ca"}}]"#,
        "--set-json",
        r#"extraVolumeMounts=[{"name":"ca","mountPath":"/etc/corp-ca","readOnly":true}]"#,
        "--set-json",
        r#"extraObjects=[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"extra","namespace":"{{ .Release.Namespace }}"},"data":{"k":"v"}}]"#,
    ]);
    let d = of_kind(&extra, "Deployment")[0];
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        string_list(&c["args"]).last().map(String::as_str),
        Some("--log-text")
    );
    assert!(
        c["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "RUST_BACKTRACE")
    );
    assert!(
        c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .any(|m| m["mountPath"] == "/etc/corp-ca")
    );
    assert!(
        d["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["configMap"]["name"] == "corp-ca")
    );
    let obj = named(&extra, "ConfigMap", "extra").expect("the extra object");
    assert_eq!(
        obj["metadata"]["namespace"], "rollguard-system",
        "templated"
    );

    // The helm test hook: its own ServiceAccount, reading only the CRDs and the Deployment.
    let hook = named(&default, "Pod", "rollguard-test").expect("the test Pod");
    assert_eq!(hook["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(
        string_list(&hook["spec"]["containers"][0]["args"]),
        [
            "check-install",
            "--deployment=rollguard",
            "--namespace=rollguard-system"
        ]
    );
    let crd_role = named(&default, "ClusterRole", "rollguard-test").expect("its ClusterRole");
    assert_eq!(
        rule_table(crd_role),
        [(
            (
                "apiextensions.k8s.io".to_string(),
                "customresourcedefinitions".to_string()
            ),
            vec!["get".to_string()]
        )]
        .into()
    );
    assert_eq!(
        string_list(&crd_role["rules"][0]["resourceNames"]),
        [POLICIES_CRD, RUNS_CRD]
    );
}

#[test]
fn chart_metadata_is_complete_for_artifact_hub() {
    let chart = yaml_file("charts/rollguard/Chart.yaml");
    assert!(
        chart["icon"]
            .as_str()
            .is_some_and(|i| i.starts_with("https://"))
    );
    assert!(chart_dir().join("icon.svg").exists());
    assert!(!chart["maintainers"][0]["name"].is_null());
    let ann = &chart["annotations"];
    let field = |k: &str| -> Value {
        let text = ann[format!("artifacthub.io/{k}")]
            .as_str()
            .unwrap_or_else(|| panic!("artifacthub.io/{k} is missing"));
        serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("artifacthub.io/{k}: {e}"))
    };
    assert_eq!(field("operator"), true);
    assert_eq!(field("operatorCapabilities"), "Full Lifecycle");
    let crds = field("crds");
    let names: Vec<&str> = crds
        .as_array()
        .expect("crds")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, [POLICIES_CRD, RUNS_CRD]);
    // The CRD example is the first example policy, which the e2e suite applies.
    assert_eq!(
        field("crdsExamples")[0],
        yaml_file("deploy/examples/replicas-router.yaml")
    );
    let images = field("images");
    assert_eq!(
        images[0]["image"],
        format!(
            "ghcr.io/rollguard/rollguard:{}",
            chart["appVersion"].as_str().expect("appVersion")
        )
    );
    for k in ["links", "changes"] {
        assert!(field(k).as_array().is_some_and(|l| !l.is_empty()), "{k}");
    }
}

/// `promtool check rules` on docs/operations/alert-rules.yaml and on the PrometheusRule's
/// spec as the chart renders it (promtool comes with Debian's prometheus package, which
/// tests/cluster/build.sh installs).
#[test]
fn promtool_accepts_the_alert_rules() {
    let rendered = render_with(&["--set", "prometheusRule.enabled=true"]);
    let spec = &of_kind(&rendered, "PrometheusRule")[0]["spec"];
    let tmp =
        std::env::temp_dir().join(format!("rollguard-rules-{}.yaml", support::unique_suffix()));
    std::fs::write(&tmp, serde_yaml_ng::to_string(spec).expect("yaml")).expect("writing the rules");
    for file in [
        Path::new(REPO).join("docs/operations/alert-rules.yaml"),
        tmp.clone(),
    ] {
        let (ok, stdout, stderr) = run(
            Command::new("promtool").args(["check", "rules"]).arg(&file),
            None,
        );
        assert!(
            ok,
            "promtool check rules {}:\n{stdout}{stderr}",
            file.display()
        );
        assert!(stdout.contains("SUCCESS: 5 rules found"), "{stdout}");
    }
    let _ = std::fs::remove_file(tmp);
}

/// The ServiceMonitor and PrometheusRule CRDs (prometheus-operator's, from its Go module;
/// `tests/cluster/build.sh prometheus-operator-crds` fetches them), applied once.
fn apply_prometheus_operator_crds() {
    let version = support::pinned_version("PROMETHEUS_OPERATOR_VERSION");
    let file = helm_bin()
        .parent()
        .expect("the cache bin dir")
        .join(format!("prometheus-operator-crds-{version}.yaml"));
    assert!(
        file.exists(),
        "{} is missing: run `tests/cluster/build.sh prometheus-operator-crds`",
        file.display()
    );
    let f = file.to_str().expect("path");
    let (ok, out, err) = kubectl(&["apply", "--server-side", "-f", f], None);
    assert!(ok, "applying the prometheus-operator CRDs: {err}{out}");
    let (ok, out, err) = kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
            "--timeout=60s",
        ],
        None,
    );
    assert!(ok, "{err}{out}");
}

fn can_i(verb: &str, resource: &str, ns: &str, user: &str) -> bool {
    let (_, out, _) = kubectl(
        &["auth", "can-i", verb, resource, "-n", ns, "--as", user],
        None,
    );
    out.trim() == "yes"
}

/// The test plays the kubelet for the `helm test` Pod, which kwok would only mark Running: it
/// runs the Pod's container from the image's root filesystem (chroot, the Pod's
/// ServiceAccount token) and writes the Pod's phase from the exit code. Returns the output.
/// `b` gives the image, once the Pod exists (its build may still be running until then).
pub(super) async fn run_test_pod(
    client: &Client,
    ns: &str,
    name: &str,
    b: impl FnOnce() -> support::image::Build,
    wait: Duration,
) -> (bool, String) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = wait_for(wait, "the helm test Pod", async || {
        let p = pods.get_opt(name).await.ok()??;
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(p)
    })
    .await;
    let spec = pod.spec.expect("a pod spec");
    let sa = spec.service_account_name.clone().expect("a ServiceAccount");
    let token = token_for(client, ns, &sa).await;
    let b = b();
    let root = support::image::export_rootfs(&b, &format!("rootfs-{name}"));
    let server = support::admin_config().await.cluster_url;
    let out = support::image::container_command(
        &b,
        &root,
        &support::image::work_dir(&format!("pod-{name}")),
        &spec.containers[0],
        name,
        ns,
        &token,
        &server,
    )
    .output()
    .expect("running the test container");
    let ok = out.status.success();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().unwrap_or(128);
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": if ok { "Succeeded" } else { "Failed" },
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
        "containerStatuses": [{
            "name": spec.containers[0].name, "image": spec.containers[0].image, "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": if ok { "Completed" } else { "Error" },
                                     "startedAt": now, "finishedAt": now}},
        }],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("writing the test Pod's phase");
    (ok, text)
}

#[tokio::test]
async fn checklist_objects_install_and_helm_test_passes() {
    // The test plays the kubelet for the `helm test` Pod, which only kwok nodes leave to it.
    if !local_control_plane() {
        eprintln!("skipped: needs the local control plane's kwok nodes");
        return;
    }
    let _cluster = alone().await;
    let image = support::image::image();
    apply_prometheus_operator_crds();
    let client = support::client().await;
    let ns = test_namespace(&client, "chart-checklist").await;
    restrict(&client, &ns.name).await;
    let n = ns.name.clone();
    let name = release_name("rg-check");
    let repo = format!("image.repository={}", support::image::TEST_IMAGE);
    let digest = format!("image.digest={}", image.digest);
    let dash_ns = format!("grafanaDashboard.namespace={n}");
    let (release, _) = Release::install(
        &client,
        &chart_dir(),
        &name,
        &n,
        &[
            &repo,
            &digest,
            "serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            "grafanaDashboard.enabled=true",
            &dash_ns,
            "networkPolicy.enabled=true",
            "extraArgs={--log-text}",
            "extraObjects[0].apiVersion=v1",
            "extraObjects[0].kind=ConfigMap",
            "extraObjects[0].metadata.name=extra-{{ .Release.Name }}",
            "extraObjects[0].data.k=v",
        ],
    )
    .await;
    let full = release.fullname();
    // Every checklist object is on the API server.
    for (kind, obj) in [
        ("poddisruptionbudget", full.clone()),
        ("prometheusrule", full.clone()),
        ("servicemonitor", full.clone()),
        ("networkpolicy", full.clone()),
        ("configmap", format!("{full}-dashboard")),
        ("configmap", format!("extra-{name}")),
    ] {
        let (ok, _, err) = kubectl(&["get", kind, &obj, "-n", &n], None);
        assert!(ok, "{kind}/{obj} is not installed: {err}");
    }
    let pdb: Value =
        serde_json::from_str(&kubectl(&["get", "pdb", &full, "-n", &n, "-o", "json"], None).1)
            .expect("the PDB");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let deploy: Deployment = Api::namespaced(client.clone(), &n)
        .get(&full)
        .await
        .expect("the operator Deployment");
    let c = &deploy
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod")
        .containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some(format!("{}@{}", support::image::TEST_IMAGE, image.digest).as_str())
    );
    assert_eq!(
        c.args.as_ref().and_then(|a| a.last()).map(String::as_str),
        Some("--log-text")
    );

    // The aggregated roles reach the built-in ones (kube-controller-manager aggregates them).
    let (view_user, edit_user, approver, nobody) = ("carol", "dave", "erin", "mallory");
    for (user, role, kind) in [
        (view_user, "view", "ClusterRole"),
        (edit_user, "edit", "ClusterRole"),
        (approver, &format!("{full}-approver") as &str, "ClusterRole"),
    ] {
        let rb = json!({"metadata": {"name": format!("{user}-{}", role.replace('-', ""))},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]});
        support::create(&Api::<RoleBinding>::namespaced(client.clone(), &n), rb).await;
    }
    wait_for(
        Duration::from_secs(30),
        "aggregation into view and edit",
        async || {
            (can_i("list", "rolloutruns.rollguard.dev", &n, view_user)
                && can_i("create", "rolloutpolicies.rollguard.dev", &n, edit_user))
            .then_some(())
        },
    )
    .await;
    assert!(!can_i(
        "create",
        "rolloutpolicies.rollguard.dev",
        &n,
        view_user
    ));
    assert!(!can_i("patch", "rolloutruns.rollguard.dev", &n, view_user));
    assert!(
        !can_i("patch", "rolloutruns.rollguard.dev", &n, edit_user),
        "edit does not approve"
    );
    assert!(can_i("patch", "rolloutruns.rollguard.dev", &n, approver));
    assert!(can_i("get", "deployments.apps", &n, approver));
    assert!(!can_i("patch", "rolloutruns.rollguard.dev", &n, nobody));

    // helm test: the hook Pod's check, run for real from the image.
    let helm_test = {
        let mut cmd = Command::new(helm_bin());
        cmd.arg("--kubeconfig")
            .arg(support::kubeconfig_path())
            .args(["test", &name, "--namespace", &n, "--timeout", "120s"]);
        std::thread::spawn(move || run(&mut cmd, None))
    };
    let built = support::image::Build::load(&image.dir);
    let (ok, out) = run_test_pod(
        &client,
        &n,
        &format!("{full}-test"),
        || built,
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "rollguard check-install from the image failed:\n{out}");
    assert!(out.contains("ok: CRDs"), "{out}");
    let (ok, stdout, stderr) = helm_test.join().expect("helm test");
    assert!(ok, "helm test failed:\n{stdout}{stderr}");
    assert!(stdout.contains("Phase:          Succeeded"), "{stdout}");

    release.uninstall();
    ns.cleanup().await;
}
