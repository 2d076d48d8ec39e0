//! Shared helpers for the end-to-end tests, which run against a real cluster.
//!
//! Start one with `tests/cluster/cluster.sh up` and `source .cluster/env` (or run `make test`,
//! which does both and tears the cluster down afterwards). The env file provides
//! `ROLLGUARD_KUBECONFIG`, `ROLLGUARD_PROMETHEUS_URL`, `ROLLGUARD_PROM_TARGETS_DIR`,
//! `ROLLGUARD_CA_FILE` and `ROLLGUARD_CLUSTER_DIR`.
//!
//! The e2e test binary (`tests/e2e/main.rs`) includes this module; its tests set up their
//! world with [`world::World::builder`].

pub mod admission;
pub mod auth_proxy;
pub mod claim;
#[path = "../../src/fuzz.rs"]
pub mod fuzz;
pub mod gateway;
pub mod image;
pub mod procs;
pub mod slowproxy;
pub mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

const HINT: &str = "the e2e tests need a cluster: run `make test`, or `tests/cluster/cluster.sh up` \
                    and then `source .cluster/env` before `cargo test --features e2e`";

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: {HINT}"),
    }
}

/// Path of the kubeconfig: `ROLLGUARD_KUBECONFIG`, else `KUBECONFIG`.
pub fn kubeconfig_path() -> PathBuf {
    std::env::var("ROLLGUARD_KUBECONFIG")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("neither ROLLGUARD_KUBECONFIG nor KUBECONFIG is set: {HINT}"))
}

/// The admin client's configuration, read from [`kubeconfig_path`].
pub async fn admin_config() -> Config {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}: {HINT}", path.display()));
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("bad kubeconfig {}: {e}", path.display()))
}

/// A client with the kubeconfig's (admin) credentials.
pub async fn client() -> Client {
    Client::try_from(admin_config().await).expect("building the kube client")
}

/// A token for ServiceAccount `ns/name` (a TokenRequest, valid `seconds`), as a kubelet would
/// mount it.
pub async fn service_account_token(client: &Client, ns: &str, name: &str, seconds: i64) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(seconds),
            ..Default::default()
        }),
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("a TokenRequest")
        .status
        .and_then(|s| s.token)
        .expect("a token")
}

/// Sets (`Some`) or removes (`None`) the label `key` on namespace `ns`: how a test puts its
/// namespace in or out of the test copies of the chart's admission policies.
pub async fn label_namespace(client: &Client, ns: &str, key: &str, value: Option<&str>) {
    let label = serde_json::json!({"metadata": {"labels": {key: value}}});
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&label),
        )
        .await
        .unwrap_or_else(|e| panic!("labelling namespace {ns} {key}={value:?}: {e}"));
}

/// ServiceAccount `ns/name` bound to a Role `name` with exactly `rules`, and a token for it
/// (valid an hour): the restricted identity of a test that shows a refusal.
pub async fn restricted_service_account(
    client: &Client,
    ns: &str,
    name: &str,
    rules: serde_json::Value,
) -> String {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use serde_json::json;
    create(
        &Api::<ServiceAccount>::namespaced(client.clone(), ns),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}),
    )
    .await;
    create(
        &Api::<Role>::namespaced(client.clone(), ns),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}),
    )
    .await;
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), ns),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
        }),
    )
    .await;
    service_account_token(client, ns, name, 3600).await
}

/// A client that authenticates with a bearer `token` (e.g. from a TokenRequest) and trusts the
/// cluster CA (`ROLLGUARD_CA_FILE`, else the kubeconfig's CA).
pub async fn client_with_token(token: &str) -> Client {
    let admin = admin_config().await;
    let mut config = Config::new(admin.cluster_url.clone());
    match std::env::var("ROLLGUARD_CA_FILE") {
        Ok(ca) if !ca.is_empty() => config.root_cert_file = Some(PathBuf::from(ca)),
        _ => {
            config.root_cert = admin.root_cert.clone();
            config.root_cert_file = admin.root_cert_file.clone();
        }
    }
    config.tls_server_name = admin.tls_server_name.clone();
    config.auth_info.token = Some(token.to_string().into());
    Client::try_from(config).expect("building the token client")
}

/// Base URL of the test Prometheus (`ROLLGUARD_PROMETHEUS_URL`), without a trailing slash.
pub fn prometheus_url() -> String {
    env("ROLLGUARD_PROMETHEUS_URL")
        .trim_end_matches('/')
        .to_string()
}

/// A random lowercase suffix for names that must not collide between runs. Random on purpose,
/// not from the test seed (`src/fuzz.rs`): a replayed run must not meet the namespaces and
/// releases its first run left behind.
pub fn unique_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A namespace created for one test, which holds the test's [`claim::shared`] claim on the
/// cluster.
///
/// Call [`TestNamespace::cleanup`] at the end of the test: `Drop` cannot await. If the test
/// panics before that, `Drop` falls back to a best-effort `kubectl delete namespace --wait=false`.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    cleaned: bool,
    _claim: claim::Claim,
}

/// Creates a namespace named `<prefix>-<random>`.
pub async fn test_namespace(client: &Client, prefix: &str) -> TestNamespace {
    let claim = claim::shared().await;
    let prefix: String = prefix
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    let name = format!("{}-{}", prefix.trim_matches('-'), unique_suffix());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("rollguard.dev/e2e".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    TestNamespace {
        name,
        client: client.clone(),
        cleaned: false,
        _claim: claim,
    }
}

impl TestNamespace {
    /// Deletes the namespace without waiting for its finalization.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.cleaned {
            let _ = std::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(kubeconfig_path())
                .args(["delete", "namespace", &self.name, "--wait=false"])
                .output();
        }
    }
}

/// Adds a Prometheus scrape target: writes `<ROLLGUARD_PROM_TARGETS_DIR>/<job>.json` (file_sd),
/// which Prometheus picks up within about a second. `addr` is `host:port`; the series get
/// `job="<job>"`. Returns the file's path; delete it to remove the target.
pub fn register_scrape_target(job: &str, addr: &str) -> PathBuf {
    let dir = PathBuf::from(env("ROLLGUARD_PROM_TARGETS_DIR"));
    let body = serde_json::json!([{ "targets": [addr], "labels": { "job": job } }]);
    let file = dir.join(format!("{job}.json"));
    // Write then rename, so Prometheus never reads a half-written file.
    let tmp = dir.join(format!(".{job}.json.tmp"));
    std::fs::write(&tmp, body.to_string()).expect("writing the file_sd target");
    std::fs::rename(&tmp, &file).expect("renaming the file_sd target");
    file
}

/// Runs an instant query and returns the first sample's value, or `None` when the query fails
/// or has no result.
pub async fn prom_query(url: &str, promql: &str) -> Option<f64> {
    let resp = reqwest::Client::new()
        .get(format!("{url}/api/v1/query"))
        .query(&[("query", promql)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = resp.json().await.ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// The tail of every component log (`tests/cluster/cluster.sh logs N`), for failure reports.
pub fn cluster_logs(lines: usize) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    match std::process::Command::new(script)
        .args(["logs", &lines.to_string()])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(could not run {script} logs: {e})"),
    }
}

/// Polls the async closure `check` every `every` until it returns `Some(value)`, and returns
/// that value; `None` once `timeout` has passed.
pub async fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls the async closure `check` every 250 ms until it returns `Some(value)`, and returns that
/// value. After `timeout` it panics with `what` and the tail of the cluster's component logs.
///
/// ```ignore
/// let pods = wait_for(Duration::from_secs(30), "3 pods", async || {
///     let list = api.list(&lp).await.ok()?;
///     (list.items.len() == 3).then_some(list.items)
/// }).await;
/// ```
pub async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    check: impl AsyncFnMut() -> Option<T>,
) -> T {
    match poll(timeout, Duration::from_millis(250), check).await {
        Some(v) => v,
        None => panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            cluster_logs(30)
        ),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; a test binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A pin from `tests/cluster/versions.env` (`HELM_VERSION`, `K8S_VERSION`), the one file that
/// pins the versions.
pub fn pinned_version(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/versions.env");
    let text = std::fs::read_to_string(path).expect("reading tests/cluster/versions.env");
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("{name} in tests/cluster/versions.env"))
}

/// The pinned helm: `ROLLGUARD_HELM`, else the build in the rollguard cache
/// (`${ROLLGUARD_CACHE:-~/.cache/rollguard}/bin/helm-<HELM_VERSION>`, made by
/// `tests/cluster/build.sh helm`) when it is there.
pub fn pinned_helm() -> Option<PathBuf> {
    if let Ok(h) = std::env::var("ROLLGUARD_HELM")
        && !h.is_empty()
    {
        return Some(PathBuf::from(h));
    }
    let bin = cached(&format!("helm-{}", pinned_version("HELM_VERSION")));
    bin.exists().then_some(bin)
}

/// `file` in the binary cache `tests/cluster/build.sh` fills:
/// `${ROLLGUARD_CACHE:-~/.cache/rollguard}/bin/<file>`.
pub fn cached(file: &str) -> PathBuf {
    std::env::var("ROLLGUARD_CACHE")
        .ok()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/rollguard")
        })
        .join("bin")
        .join(file)
}

/// [`pinned_helm`], which the test needs.
pub fn helm_bin() -> PathBuf {
    pinned_helm().unwrap_or_else(|| {
        panic!(
            "the pinned helm is missing: run `tests/cluster/build.sh helm` or set ROLLGUARD_HELM"
        )
    })
}

/// Creates an object given as JSON (a test's fixture), failing the test if it is refused.
pub async fn create<K>(api: &Api<K>, v: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(v).expect("a valid object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create")
}
