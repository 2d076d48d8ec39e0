//! The Helm chart `charts/rollguard` and the plain manifests `deploy/rollguard.yaml`
//! (issue 3, "Helm chart" and "deploy/"), checked with the real `helm` and against the
//! real API server of the local control plane:
//!
//! - the chart lints, its README and the rendered manifests are up to date;
//! - the rendered RBAC has no wildcards and no Secrets unless opted in, and the Deployment is
//!   hardened;
//! - everything it renders is accepted by a server-side dry run;
//! - install, upgrade with a changed CRD, and uninstall that keeps the CRDs;
//! - the operator's ServiceAccount can make every API call the operator makes and nothing
//!   it must not (a token from a TokenRequest);
//! - the approval admission policy refuses approvals and commands forged in someone else's
//!   name.
//!
//! Helm: `ROLLGUARD_HELM`, else `~/.cache/rollguard/bin/helm-<HELM_VERSION>` (pinned in
//! tests/cluster/versions.env; `tests/cluster/build.sh helm` builds it).
//!
//! Run: `tests/cluster/cluster.sh up && source .cluster/env && cargo test --features e2e --test e2e chart::`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::support::{self, claim, helm_bin, test_namespace, wait_for};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const RUNS_CRD: &str = "rolloutruns.rollguard.dev";
const POLICIES_CRD: &str = "rolloutpolicies.rollguard.dev";

// ---------------------------------------------------------------------------------------
// helm, kubectl and rendering

fn chart_dir() -> PathBuf {
    Path::new(REPO).join("charts/rollguard")
}

/// Runs a command, optionally feeding `stdin`, and returns (success, stdout, stderr).
fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
    }
    let out = child.wait_with_output().expect("waiting for the command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs helm (with the test cluster's kubeconfig when one is set) and returns its stdout;
/// panics with its stderr when it fails.
fn helm(args: &[&str]) -> String {
    let mut cmd = Command::new(helm_bin());
    if let Ok(kc) = std::env::var("ROLLGUARD_KUBECONFIG")
        && !kc.is_empty()
    {
        cmd.arg("--kubeconfig").arg(kc);
    }
    cmd.args(args);
    let (ok, stdout, stderr) = run(&mut cmd, None);
    assert!(ok, "helm {} failed:\n{stderr}\n{stdout}", args.join(" "));
    stdout
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args);
    run(&mut cmd, stdin)
}

/// `helm template` of `chart` as release `release` in `namespace`, with `--set` values:
/// what `helm install` applies, without the `helm test` hook (whose Pod needs its
/// ServiceAccount to exist first; `checklist_objects_install_and_helm_test_passes` runs it).
fn render_chart(chart: &Path, release: &str, namespace: &str, sets: &[&str]) -> String {
    let chart = chart.to_str().expect("chart path");
    let mut args = vec![
        "template",
        release,
        chart,
        "--namespace",
        namespace,
        "--include-crds",
        "--skip-tests",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args)
}

fn render(sets: &[&str]) -> String {
    render_chart(&chart_dir(), "rollguard", "rollguard-system", sets)
}

/// The documents of a YAML stream (empty ones dropped).
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("parsing rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy");
    for entry in std::fs::read_dir(from).expect("reading the chart") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a chart file");
        }
    }
}

// ---------------------------------------------------------------------------------------
// cluster helpers

fn gvk_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn runs_resource() -> ApiResource {
    gvk_resource("rollguard.dev", "v1alpha1", "RolloutRun", "rolloutruns")
}

fn policies_resource() -> ApiResource {
    gvk_resource(
        "rollguard.dev",
        "v1alpha1",
        "RolloutPolicy",
        "rolloutpolicies",
    )
}

fn routes_resource() -> ApiResource {
    gvk_resource("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes")
}

fn dynamic(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a valid object")
}

/// A minimal valid RolloutRun as the operator would create it.
fn run_object(name: &str, ns: &str) -> DynamicObject {
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
async fn token_for(client: &Client, ns: &str, sa: &str) -> String {
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
async fn adopt_crds(client: &Client, release: &str, ns: &str) {
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
async fn restore_crds(client: &Client) {
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
struct Release {
    name: String,
    namespace: String,
    installed: bool,
}

impl Release {
    /// `helm install` of `chart` (adopting existing CRDs) and waits until it is ready.
    async fn install(
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
    fn upgrade(&self, chart: &Path, sets: &[&str]) -> String {
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

    fn uninstall(mut self) -> String {
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
    fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace,
            self.fullname()
        )
    }

    fn fullname(&self) -> String {
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
async fn alone() -> claim::Claim {
    claim::exclusive().await
}

fn release_name(prefix: &str) -> String {
    format!("{prefix}-{}", support::unique_suffix())
}

/// Labels a namespace to enforce the `restricted` Pod Security Standard.
async fn restrict(client: &Client, ns: &str) {
    let patch = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/warn": "restricted",
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("labelling the namespace restricted");
}

fn status_code<T: std::fmt::Debug>(r: &Result<T, kube::Error>) -> Option<u16> {
    match r {
        Err(kube::Error::Api(s)) => Some(s.code),
        _ => None,
    }
}

fn must<T>(what: &str, r: Result<T, kube::Error>) -> T {
    r.unwrap_or_else(|e| panic!("the operator's ServiceAccount must be allowed to {what}: {e}"))
}

fn must_not<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    assert_eq!(
        status_code(&r),
        Some(403),
        "the operator's ServiceAccount must NOT be allowed to {what}; got {r:?}"
    );
}

/// Opens a watch and reads until the server closes it (a 1 s server-side timeout): a
/// forbidden watch fails on open.
async fn can_watch<K>(api: &Api<K>) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let stream = api.watch(&WatchParams::default().timeout(1), "0").await?;
    let mut stream = Box::pin(stream);
    while let Some(ev) = stream.next().await {
        ev?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// (a) lint, and the generated files are up to date

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

// ---------------------------------------------------------------------------------------
// (e) the rendered RBAC and Deployment

fn rbac_rules(role: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(role["rules"].clone()).expect("rules")
}

fn assert_no_wildcards(role: &Value) {
    let name = role["metadata"]["name"].as_str().unwrap_or_default();
    for rule in rbac_rules(role) {
        let fields = [
            ("verbs", rule.verbs.clone()),
            ("resources", rule.resources.clone().unwrap_or_default()),
            ("apiGroups", rule.api_groups.clone().unwrap_or_default()),
            (
                "resourceNames",
                rule.resource_names.clone().unwrap_or_default(),
            ),
        ];
        for (field, values) in fields {
            assert!(
                values.iter().all(|v| !v.contains('*')),
                "{name}: a wildcard in {field}: {rule:?}"
            );
        }
        assert!(
            rule.non_resource_urls.is_none(),
            "{name}: nonResourceURLs: {rule:?}"
        );
        assert!(!rule.verbs.is_empty(), "{name}: a rule without verbs");
    }
}

fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    rbac_rules(role).iter().any(|r| {
        r.api_groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|g| g == group)
            && r.resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

/// The operator's rules, as (group, resource) -> verbs.
fn rule_table(role: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut t: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rbac_rules(role) {
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                t.entry((g.clone(), res))
                    .or_default()
                    .extend(r.verbs.clone());
            }
        }
    }
    for v in t.values_mut() {
        v.sort();
    }
    t
}

#[test]
fn rendered_rbac_is_least_privilege() {
    let default = docs(&render(&[]));
    // The operator's ClusterRole (the others are the aggregated user roles and the helm test
    // hook's, checked in `checklist_objects_render_as_documented`).
    let all_cluster_roles = of_kind(&default, "ClusterRole");
    for role in &all_cluster_roles {
        assert_no_wildcards(role);
    }
    let cluster_roles: Vec<&Value> = all_cluster_roles
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "rollguard")
        .collect();
    assert_eq!(cluster_roles.len(), 1, "one operator ClusterRole");
    let roles = of_kind(&default, "Role");
    for role in cluster_roles.iter().chain(roles.iter()) {
        assert_no_wildcards(role);
        assert!(
            !grants(role, "", "secrets", "get")
                && !grants(role, "", "secrets", "list")
                && !grants(role, "", "secrets", "watch"),
            "no Secrets access by default: {role}"
        );
    }
    // Exactly the operator's calls, nothing more.
    let table = rule_table(cluster_roles[0]);
    let expect: BTreeMap<(String, String), Vec<String>> = [
        (
            "apps",
            "deployments",
            vec!["create", "delete", "list", "patch", "watch"],
        ),
        ("apps", "deployments/finalizers", vec!["update"]),
        ("apps", "replicasets", vec!["list", "watch"]),
        ("", "services", vec!["create", "list", "patch", "watch"]),
        (
            "gateway.networking.k8s.io",
            "httproutes",
            vec!["list", "patch", "watch"],
        ),
        (
            "rollguard.dev",
            "rolloutpolicies",
            vec!["list", "patch", "watch"],
        ),
        ("rollguard.dev", "rolloutpolicies/status", vec!["patch"]),
        (
            "rollguard.dev",
            "rolloutruns",
            vec!["create", "delete", "list", "patch", "watch"],
        ),
        ("rollguard.dev", "rolloutruns/status", vec!["patch"]),
        ("events.k8s.io", "events", vec!["create", "patch"]),
    ]
    .into_iter()
    .map(|(g, r, v)| {
        (
            (g.to_string(), r.to_string()),
            v.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    assert_eq!(table, expect, "the ClusterRole's rules");
    // The Lease Role: in the release namespace, get/update/patch only on the named Lease.
    let lease_role = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "rollguard-leader-election")
        .expect("the leader-election Role");
    assert_eq!(lease_role["metadata"]["namespace"], "rollguard-system");
    for rule in rbac_rules(lease_role) {
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_string()][..]));
        if rule.verbs.iter().any(|v| v != "create") {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["rollguard-leader".to_string()][..])
            );
        }
    }

    // Every rule in the rendered ClusterRole says why, in a comment.
    let text = render(&[]);
    let cr_text = text
        .split("\n---\n")
        .find(|d| d.contains("\nkind: ClusterRole\n"))
        .expect("the ClusterRole text");
    let rules_text = cr_text.split("\nrules:\n").nth(1).expect("rules");
    for (i, rule) in rules_text.split("\n  - apiGroups:").enumerate().skip(1) {
        let before = rules_text
            .split("\n  - apiGroups:")
            .nth(i - 1)
            .unwrap_or_default();
        let commented = rule.contains('#')
            || before
                .lines()
                .last()
                .is_some_and(|l| l.trim_start().starts_with('#'));
        assert!(
            commented,
            "ClusterRole rule {i} has no comment saying why:\n{rule}"
        );
    }

    // Opt-in Secrets: get only, only in the listed namespaces, as Roles.
    let opted = docs(&render(&["rbac.secretNamespaces={team-a,team-b}"]));
    for cr in of_kind(&opted, "ClusterRole") {
        assert_no_wildcards(cr);
        assert!(
            !rule_table(cr).keys().any(|(_, r)| r == "secrets"),
            "no Secrets in the ClusterRole"
        );
    }
    let secret_roles: Vec<&Value> = of_kind(&opted, "Role")
        .into_iter()
        .filter(|r| rule_table(r).keys().any(|(_, res)| res == "secrets"))
        .collect();
    let mut namespaces: Vec<&str> = secret_roles
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap_or_default())
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    for r in &secret_roles {
        assert_no_wildcards(r);
        let t = rule_table(r);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[&(String::new(), "secrets".to_string())],
            ["get", "list", "watch"]
        );
    }

    // watchNamespace: the same rules as a Role in that namespace, no ClusterRole at all.
    let scoped = docs(&render(&["watchNamespace=team-a"]));
    assert!(
        !of_kind(&scoped, "ClusterRole")
            .iter()
            .any(|r| r["metadata"]["name"] == "rollguard"),
        "no operator ClusterRole with watchNamespace"
    );
    assert!(
        !of_kind(&scoped, "ClusterRoleBinding")
            .iter()
            .any(|b| b["subjects"][0]["name"] == "rollguard"),
        "no ClusterRoleBinding for the operator with watchNamespace"
    );
    let role = of_kind(&scoped, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "rollguard")
        .expect("the operator Role");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(rule_table(role), expect);
    let binding = of_kind(&scoped, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "rollguard")
        .expect("the operator RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(binding["subjects"][0]["namespace"], "rollguard-system");
    let args = string_list(
        &of_kind(&scoped, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
}

#[test]
fn rendered_deployment_is_hardened() {
    let all = docs(&render(&[
        "prometheus.address=http://prometheus.monitoring:9090",
        "logging.level=debug",
    ]));
    let d = of_kind(&all, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rollguard");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "ghcr.io/rollguard/rollguard:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(string_list(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let args = string_list(&c["args"]);
    assert_eq!(
        args,
        [
            "controller",
            "--metrics-addr=0.0.0.0:8080",
            "--log-level=debug",
            "--leader-elect",
            "--lease-name=rollguard-leader",
            "--lease-duration=15s",
            "--prometheus-address=http://prometheus.monitoring:9090"
        ]
    );
    assert_eq!(c["env"][0]["name"], "POD_NAME");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The image is overridable, by tag or digest.
    let d = docs(&render(&[
        "image.repository=registry.example/rg",
        "image.tag=dev",
    ]));
    assert_eq!(
        of_kind(&d, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/rg:dev"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let d = docs(&render(&[&format!("image.digest={digest}")]));
    assert_eq!(
        of_kind(&d, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/rollguard/rollguard@{digest}")
    );
    // Metrics Service; ServiceMonitor only when asked.
    assert_eq!(of_kind(&all, "Service").len(), 1);
    assert!(of_kind(&all, "ServiceMonitor").is_empty());
    let sm = docs(&render(&[
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
    ]));
    let sm = of_kind(&sm, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm[0]["metadata"]["labels"]["release"], "prom");
}

// ---------------------------------------------------------------------------------------
// (b) the API server accepts what the chart renders

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
            (
                format!("helm template {sets:?}"),
                render_chart(&chart_dir(), "rollguard", n, &sets),
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
            assert!(
                stdout.contains(
                    "validatingadmissionpolicy.admissionregistration.k8s.io/rollguard-approvals"
                ),
                "{stdout}"
            );
        }
    }
    ns.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// (c) install, upgrade with a changed CRD, uninstall keeps the CRDs

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

    restore_crds(&client).await;
    ns.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// (d) the operator's exact permissions, with a token for the chart's ServiceAccount

/// What the test sets up as admin: a Deployment, its Service, an HTTPRoute, a policy, and a
/// Secret in another namespace.
async fn permission_fixtures(admin: &Client, ns: &str, other: &str) {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]},
            },
        },
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("creating the Deployment");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .expect("a Service");
    Api::<Service>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("creating the Service");
    let route = dynamic(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"rules": [{"backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0},
        ]}]},
    }));
    Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &routes_resource())
        .create(&PostParams::default(), &route)
        .await
        .expect("creating the HTTPRoute");
    let example =
        std::fs::read_to_string(Path::new(REPO).join("deploy/examples/replicas-router.yaml"))
            .expect("example policy");
    let mut policy: Value = serde_yaml_ng::from_str(&example).expect("the example policy");
    policy["metadata"]["namespace"] = json!(ns);
    Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &policies_resource())
        .create(&PostParams::default(), &dynamic(policy))
        .await
        .expect("creating the policy");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "prometheus-token"},
        "stringData": {"token": "not-for-the-operator"},
    }))
    .expect("a Secret");
    for n in [ns, other] {
        Api::<Secret>::namespaced(admin.clone(), n)
            .create(&PostParams::default(), &secret)
            .await
            .expect("creating a Secret");
    }
}

#[tokio::test]
async fn operator_service_account_has_exactly_the_permissions_it_needs() {
    let _cluster = alone().await;
    let admin = support::client().await;
    let ns = test_namespace(&admin, "chart-rbac").await;
    let other = test_namespace(&admin, "chart-rbac-other").await;
    let n = ns.name.clone();
    let name = release_name("rg-rbac");
    let (release, _) = Release::install(&admin, &chart_dir(), &name, &n, &["replicaCount=1"]).await;
    permission_fixtures(&admin, &n, &other.name).await;

    let token = token_for(&admin, &n, &release.fullname()).await;
    let op = support::client_with_token(&token).await;
    // RBAC is cached by the authorizer: wait until the binding is in force.
    wait_for(
        Duration::from_secs(20),
        "the operator's RBAC to be in force",
        async || {
            Api::<Deployment>::all(op.clone())
                .list(&ListParams::default().limit(1))
                .await
                .ok()
        },
    )
    .await;
    let ssa = PatchParams::apply("rollguard").force();

    // Watches (list + watch), cluster-wide.
    must(
        "list Deployments",
        Api::<Deployment>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must(
        "watch Deployments",
        can_watch(&Api::<Deployment>::all(op.clone())).await,
    );
    let rs: Api<ReplicaSet> = Api::all(op.clone());
    must(
        "list ReplicaSets (metadata)",
        rs.list_metadata(&ListParams::default()).await,
    );
    must("watch ReplicaSets (metadata)", {
        let s = rs
            .watch_metadata(&WatchParams::default().timeout(1), "0")
            .await;
        match s {
            Ok(s) => {
                let mut s = Box::pin(s);
                let mut r = Ok(());
                while let Some(ev) = s.next().await {
                    if let Err(e) = ev {
                        r = Err(e);
                    }
                }
                r
            }
            Err(e) => Err(e),
        }
    });
    must(
        "list Services",
        Api::<Service>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must(
        "watch Services",
        can_watch(&Api::<Service>::all(op.clone())).await,
    );
    for (what, ar) in [
        ("HTTPRoutes", routes_resource()),
        ("RolloutPolicies", policies_resource()),
        ("RolloutRuns", runs_resource()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(op.clone(), &ar);
        must(
            &format!("list {what}"),
            api.list(&ListParams::default()).await,
        );
        must(&format!("watch {what}"), can_watch(&api).await);
    }

    // A governed Deployment: server-side apply of spec.paused and rollguard's annotations.
    let deploys: Api<Deployment> = Api::namespaced(op.clone(), &n);
    let governed = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"rollguard.dev/policy": "shop", "rollguard.dev/stable-revision": "5d8f7c9b6"}},
        "spec": {"paused": true},
    });
    let d = must(
        "server-side apply spec.paused on a Deployment",
        deploys.patch("web", &ssa, &Patch::Apply(governed)).await,
    );
    assert_eq!(d.spec.and_then(|s| s.paused), Some(true));
    // The canary: created by server-side apply (owned by the governed Deployment), resized, deleted.
    let uid = d.metadata.uid.expect("uid");
    let canary = |replicas: i32| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web-canary",
                "labels": {"rollguard.dev/role": "canary", "rollguard.dev/deployment": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid,
                                     "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web", "rollguard.dev/role": "canary"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "rollguard.dev/role": "canary"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.example/web:2"}]},
                },
            },
        })
    };
    must(
        "create the canary Deployment (server-side apply)",
        deploys
            .patch("web-canary", &ssa, &Patch::Apply(canary(1)))
            .await,
    );
    must(
        "resize the canary Deployment",
        deploys
            .patch("web-canary", &ssa, &Patch::Apply(canary(2)))
            .await,
    );
    must(
        "delete the canary Deployment",
        deploys
            .delete("web-canary", &DeleteParams::foreground())
            .await,
    );

    // Routing Services: created and pinned by server-side apply.
    let services: Api<Service> = Api::namespaced(op.clone(), &n);
    for (svc, role) in [("web-stable", "stable"), ("web-canary", "canary")] {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc, "labels": {"rollguard.dev/deployment": "web"}},
            "spec": {"selector": {"app": "web", "rollguard.dev/track": role}, "ports": [{"port": 80, "targetPort": 8080}]},
        });
        must(
            &format!("create Service {svc} (server-side apply)"),
            services.patch(svc, &ssa, &Patch::Apply(body.clone())).await,
        );
        must(
            &format!("re-apply Service {svc}"),
            services.patch(svc, &ssa, &Patch::Apply(body)).await,
        );
    }

    // HTTPRoute weights: a JSON patch.
    let routes: Api<DynamicObject> = Api::namespaced_with(op.clone(), &n, &routes_resource());
    let weights: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "web-stable"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 995},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 5},
    ]))
    .expect("a JSON patch");
    let r = must(
        "JSON-patch HTTPRoute weights",
        routes
            .patch("web", &PatchParams::default(), &Patch::Json::<()>(weights))
            .await,
    );
    assert_eq!(r.data["spec"]["rules"][0]["backendRefs"][1]["weight"], 5);

    // Runs: create, server-side apply, status, delete.
    let runs: Api<DynamicObject> = Api::namespaced_with(op.clone(), &n, &runs_resource());
    must(
        "create a RolloutRun",
        runs.create(&PostParams::default(), &run_object("web-7f6b5c4d3", &n))
            .await,
    );
    let labels = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
                        "metadata": {"name": "web-7f6b5c4d3", "labels": {"rollguard.dev/policy": "shop"}}});
    must(
        "server-side apply a RolloutRun",
        runs.patch("web-7f6b5c4d3", &ssa, &Patch::Apply(labels))
            .await,
    );
    let status = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun", "metadata": {"name": "web-7f6b5c4d3"},
                        "status": {"phase": "Progressing", "step": 0, "weight": "10%"}});
    let r = must(
        "patch rolloutruns/status",
        runs.patch_status("web-7f6b5c4d3", &ssa, &Patch::Apply(status))
            .await,
    );
    assert_eq!(r.data["status"]["phase"], "Progressing");
    must(
        "delete a RolloutRun",
        runs.delete("web-7f6b5c4d3", &DeleteParams::default()).await,
    );

    // Policies: the status, and the finalizer (added, then removed at once so the namespace
    // can go).
    let policies: Api<DynamicObject> = Api::namespaced_with(op.clone(), &n, &policies_resource());
    let pstatus = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy", "metadata": {"name": "shop"},
                         "status": {"governedDeployments": 1, "activeRuns": 0, "router": "replicas"}});
    must(
        "patch rolloutpolicies/status",
        policies
            .patch_status("shop", &ssa, &Patch::Apply(pstatus))
            .await,
    );
    let fin = |f: Vec<&str>| json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy", "metadata": {"name": "shop", "finalizers": f}});
    must(
        "add the policy finalizer",
        policies
            .patch(
                "shop",
                &ssa,
                &Patch::Apply(fin(vec!["rollguard.dev/release"])),
            )
            .await,
    );
    must(
        "remove the policy finalizer",
        policies
            .patch("shop", &ssa, &Patch::Apply(fin(vec![])))
            .await,
    );

    // Events (events.k8s.io/v1): create, then patch (a repeated Event's series).
    let events: Api<Event> = Api::namespaced(op.clone(), &n);
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.rollguard-test"},
        "eventTime": MicroTime(jiff::Timestamp::now()),
        "reportingController": "rollguard",
        "reportingInstance": "rollguard-0",
        "action": "Canary",
        "reason": "StepStarted",
        "type": "Normal",
        "note": "step 1 of 2: 10%",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": n},
    }))
    .expect("an Event");
    must(
        "create an Event",
        events.create(&PostParams::default(), &ev).await,
    );
    let series =
        json!({"series": {"count": 2, "lastObservedTime": MicroTime(jiff::Timestamp::now())}});
    must(
        "patch an Event",
        events
            .patch(
                "web.rollguard-test",
                &PatchParams::default(),
                &Patch::Merge(&series),
            )
            .await,
    );

    // The leader-election Lease in the release namespace.
    let leases: Api<Lease> = Api::namespaced(op.clone(), &n);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rollguard-leader"},
        "spec": {"holderIdentity": "rollguard-0", "leaseDurationSeconds": 15},
    }))
    .expect("a Lease");
    must(
        "create the Lease",
        leases.create(&PostParams::default(), &lease).await,
    );
    let mut l = must("get the Lease", leases.get("rollguard-leader").await);
    l.spec.get_or_insert_with(Default::default).holder_identity = Some("rollguard-1".into());
    must(
        "update the Lease",
        leases
            .replace("rollguard-leader", &PostParams::default(), &l)
            .await,
    );
    let renew = json!({"spec": {"renewTime": MicroTime(jiff::Timestamp::now())}});
    must(
        "patch the Lease",
        leases
            .patch(
                "rollguard-leader",
                &PatchParams::default(),
                &Patch::Merge(&renew),
            )
            .await,
    );
    must_not("get another Lease", leases.get("someone-elses-lease").await);
    must_not("get Leases outside the release namespace", {
        Api::<Lease>::namespaced(op.clone(), &other.name)
            .get("rollguard-leader")
            .await
    });

    // What it must not do.
    must_not(
        "list Secrets cluster-wide",
        Api::<Secret>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must_not(
        "get a Secret in another namespace",
        Api::<Secret>::namespaced(op.clone(), &other.name)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "get a Secret in its own namespace",
        Api::<Secret>::namespaced(op.clone(), &n)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "delete a Namespace",
        Api::<Namespace>::all(op.clone())
            .delete(&other.name, &DeleteParams::default())
            .await,
    );
    let crb = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{name}-escalate")),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: release.fullname(),
            namespace: Some(n.clone()),
            ..Default::default()
        }]),
    };
    must_not(
        "create a ClusterRoleBinding",
        Api::<ClusterRoleBinding>::all(op.clone())
            .create(&PostParams::default(), &crb)
            .await,
    );
    must_not("create Pods", {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))
            .expect("a Pod");
        Api::<Pod>::namespaced(op.clone(), &n)
            .create(&PostParams::default(), &pod)
            .await
    });
    let web = must(
        "list Deployments",
        deploys.list(&ListParams::default()).await,
    )
    .items
    .into_iter()
    .find(|d| d.name_any() == "web")
    .expect("Deployment web");
    must_not(
        "get a Deployment (the operator reads from its watch cache)",
        deploys.get("web").await,
    );
    must_not(
        "update a Deployment (PUT)",
        deploys.replace("web", &PostParams::default(), &web).await,
    );
    must_not(
        "delete a Service",
        services.delete("web", &DeleteParams::default()).await,
    );
    must_not(
        "delete a RolloutPolicy",
        policies.delete("shop", &DeleteParams::default()).await,
    );
    must_not("create Roles", {
        let role = Role {
            metadata: ObjectMeta {
                name: Some("escalate".into()),
                ..Default::default()
            },
            rules: None,
        };
        Api::<Role>::namespaced(op.clone(), &n)
            .create(&PostParams::default(), &role)
            .await
    });

    // Opt-in Secrets: get, and the by-name watch the operator uses, in the listed namespace
    // only.
    release.upgrade(
        &chart_dir(),
        &[
            "replicaCount=1",
            &format!("rbac.secretNamespaces={{{}}}", other.name),
        ],
    );
    wait_for(
        Duration::from_secs(20),
        "get on Secrets in the opted-in namespace",
        async || {
            Api::<Secret>::namespaced(op.clone(), &other.name)
                .get("prometheus-token")
                .await
                .ok()
        },
    )
    .await;
    must(
        "list Secrets by name in the opted-in namespace (its watch lists first)",
        Api::<Secret>::namespaced(op.clone(), &other.name)
            .list(&ListParams::default().fields("metadata.name=prometheus-token"))
            .await,
    );
    must_not(
        "get a Secret outside the opted-in namespaces",
        Api::<Secret>::namespaced(op.clone(), &n)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "list Secrets cluster-wide",
        Api::<Secret>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );

    // watchNamespace: a Role in that namespace replaces the ClusterRole.
    release.upgrade(
        &chart_dir(),
        &["replicaCount=1", &format!("watchNamespace={n}")],
    );
    wait_for(
        Duration::from_secs(20),
        "the ClusterRole to give way to a Role",
        async || {
            (status_code(
                &Api::<Deployment>::all(op.clone())
                    .list(&ListParams::default())
                    .await,
            ) == Some(403))
            .then_some(())
        },
    )
    .await;
    must(
        "list Deployments in the watched namespace",
        deploys.list(&ListParams::default()).await,
    );
    must(
        "watch Deployments in the watched namespace",
        can_watch(&deploys).await,
    );
    must_not(
        "list Deployments in another namespace",
        Api::<Deployment>::namespaced(op.clone(), &other.name)
            .list(&ListParams::default())
            .await,
    );
    must_not(
        "get a Secret once the opt-in is gone",
        Api::<Secret>::namespaced(op.clone(), &other.name)
            .get("prometheus-token")
            .await,
    );
    let rb: Option<RoleBinding> = Api::namespaced(admin.clone(), &n)
        .get_opt(&release.fullname())
        .await
        .expect("get");
    assert!(rb.is_some(), "the RoleBinding in the watched namespace");

    release.uninstall();
    ns.cleanup().await;
    other.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// (f) the approval admission policy

fn api_message<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

#[tokio::test]
async fn approval_policy_refuses_forged_approvals_and_commands() {
    let _cluster = alone().await;
    // Only this release's policy answers (not the CLI tests' copy of the chart's).
    support::approvals::remove();
    let admin = support::client().await;
    let ns = test_namespace(&admin, "chart-approvals").await;
    let n = ns.name.clone();
    let name = release_name("rg-vap");
    let (release, _) = Release::install(&admin, &chart_dir(), &name, &n, &["replicaCount=1"]).await;

    // alice may get and patch runs (RBAC), and nothing in the policy stops her from doing so
    // in her own name.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &n);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "alice"}})).expect("sa");
    sas.create(&PostParams::default(), &sa)
        .await
        .expect("creating alice");
    let role = Role {
        metadata: ObjectMeta {
            name: Some("run-approver".into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["rollguard.dev".into()]),
            resources: Some(vec!["rolloutruns".into()]),
            verbs: vec!["get".into(), "patch".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &n)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-approves".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "run-approver".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "alice".into(),
            namespace: Some(n.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &n)
        .create(&PostParams::default(), &binding)
        .await
        .expect("creating the RoleBinding");
    let admin_runs: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &n, &runs_resource());
    admin_runs
        .create(&PostParams::default(), &run_object("web-7f6b5c4d3", &n))
        .await
        .expect("creating the run");

    let alice_user = format!("system:serviceaccount:{n}:alice");
    let alice = support::client_with_token(&token_for(&admin, &n, "alice").await).await;
    let runs: Api<DynamicObject> = Api::namespaced_with(alice.clone(), &n, &runs_resource());
    let approve = |user: &str, groups: Vec<&str>, time: &str| json!([{"op": "add", "path": "/spec/approvals", "value": [{"user": user, "groups": groups, "time": time}]}]);
    let json_patch = |v: Value| {
        Patch::Json::<()>(serde_json::from_value::<json_patch::Patch>(v).expect("a JSON patch"))
    };
    let merge = PatchParams::default();
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };

    // The policy is loaded asynchronously: wait until a forged approval (dry run, so nothing is
    // written while waiting) is refused.
    wait_for(
        Duration::from_secs(30),
        "the approval policy to be in force",
        async || {
            let r = runs
                .patch(
                    "web-7f6b5c4d3",
                    &dry,
                    &json_patch(approve("bob", vec![], "2026-01-01T00:00:00Z")),
                )
                .await;
            (status_code(&r) == Some(403)).then_some(())
        },
    )
    .await;

    // An approval in bob's name, sent by alice: refused, and the message says what was forged.
    let (code, msg) = api_message(
        runs.patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve("bob", vec![], "2026-01-01T00:00:00Z")),
        )
        .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains(&format!("{}-approvals", release.fullname())),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "forged approval: spec.approvals gained an entry for user \"bob\", but the request was made by \"{alice_user}\""
        )),
        "{msg}"
    );
    // Claiming a group she is not in: refused too.
    let (code, msg) = api_message(
        runs.patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve(
                &alice_user,
                vec!["system:masters"],
                "2026-01-01T00:00:00Z",
            )),
        )
        .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("claiming group \"system:masters\""), "{msg}");
    // In her own name (with a group she is in): accepted and recorded.
    let r = runs
        .patch(
            "web-7f6b5c4d3",
            &merge,
            &json_patch(approve(
                &alice_user,
                vec!["system:serviceaccounts"],
                "2026-01-01T00:00:00Z",
            )),
        )
        .await
        .expect("alice approving in her own name");
    assert_eq!(r.data["spec"]["approvals"][0]["user"], alice_user.as_str());
    // An unrelated change keeps the existing approval and passes.
    let label = json!({"metadata": {"labels": {"reviewed": "yes"}}});
    runs.patch("web-7f6b5c4d3", &merge, &Patch::Merge(&label))
        .await
        .expect("an unrelated patch");

    // Commands: each must name the user who gives it.
    for cmd in ["abort", "pause", "promote"] {
        let forged =
            json!({"spec": {"control": {cmd: {"user": "bob", "time": "2026-01-01T00:00:00Z"}}}});
        let (code, msg) = api_message(
            runs.patch("web-7f6b5c4d3", &merge, &Patch::Merge(&forged))
                .await,
        );
        assert_eq!(code, 403, "{msg}");
        assert!(
            msg.contains(&format!(
                "forged command: spec.control.{cmd}.user is \"bob\", but the request was made by \"{alice_user}\""
            )),
            "{msg}"
        );
    }
    let own = json!({"spec": {"control": {"pause": {"user": alice_user, "time": "2026-01-01T00:00:00Z", "reason": "looking"}}}});
    let r = runs
        .patch("web-7f6b5c4d3", &merge, &Patch::Merge(&own))
        .await
        .expect("alice pausing in her own name");
    assert_eq!(
        r.data["spec"]["control"]["pause"]["user"],
        alice_user.as_str()
    );
    // A later patch that leaves her command as it is passes even when sent by someone else
    // (the admin here): only entries that appear or change are checked.
    admin_runs
        .patch(
            "web-7f6b5c4d3",
            &merge,
            &Patch::Merge(&json!({"metadata": {"labels": {"seen": "admin"}}})),
        )
        .await
        .expect("an unrelated admin patch");
    // The admin is not exempt either.
    let forged_by_admin = json!({"spec": {"control": {"abort": {"user": alice_user, "time": "2026-01-01T00:00:01Z"}}}});
    let (code, msg) = api_message(
        admin_runs
            .patch("web-7f6b5c4d3", &merge, &Patch::Merge(&forged_by_admin))
            .await,
    );
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("spec.control.abort.user"), "{msg}");

    // The operator's own ServiceAccount is exempt.
    let op = support::client_with_token(&token_for(&admin, &n, &release.fullname()).await).await;
    let op_runs: Api<DynamicObject> = Api::namespaced_with(op, &n, &runs_resource());
    wait_for(
        Duration::from_secs(20),
        "the operator to write an approval on someone's behalf",
        async || {
            op_runs
                .patch(
                    "web-7f6b5c4d3",
                    &merge,
                    &json_patch(json!([{"op": "add", "path": "/spec/approvals/-",
                                    "value": {"user": "bob", "time": "2026-01-01T00:00:02Z"}}])),
                )
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(
        release.username(),
        format!("system:serviceaccount:{n}:{}", release.fullname())
    );

    release.uninstall();
    ns.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// (f) the platform team's checklist (issue 18): PodDisruptionBudget, PrometheusRule, Grafana
// dashboard, aggregated roles, NetworkPolicy, extra*, Artifact Hub metadata, helm test, OCI

/// `helm template` with any helm arguments (`--set-json`, `-f`) after the defaults.
fn render_with(args: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        "rollguard",
        chart.to_str().expect("chart path"),
        "--namespace",
        "rollguard-system",
    ];
    all.extend(args);
    docs(&helm(&all))
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn yaml_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(REPO).join(rel))
        .unwrap_or_else(|e| panic!("reading {rel}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}

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
    let versions = std::fs::read_to_string(Path::new(REPO).join("tests/cluster/versions.env"))
        .expect("versions.env");
    let version = versions
        .lines()
        .find_map(|l| l.trim().strip_prefix("PROMETHEUS_OPERATOR_VERSION="))
        .expect("PROMETHEUS_OPERATOR_VERSION in versions.env")
        .trim()
        .to_string();
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
async fn run_test_pod(
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

/// Whether the tests run on the local control plane (`tests/cluster/cluster.sh up` tags its
/// kubeconfig), where the test may play the kubelet and own fixed namespace names.
fn local_control_plane() -> bool {
    std::fs::read_to_string(support::kubeconfig_path())
        .is_ok_and(|k| k.starts_with("# rollguard-local-control-plane"))
}

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
    support::approvals::remove();
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
