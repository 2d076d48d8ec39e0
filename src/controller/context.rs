//! What every reconcile shares: the operator's configuration, the watch stores, the client,
//! metrics and Event recorder, and the controller layer's errors; plus the checks the
//! operator makes on its API server before it starts (CRDs served, its User-Agent).

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use super::secrets;
use crate::analysis::prometheus;
use crate::api::{RolloutPolicy, RolloutRun};
use crate::telemetry::{Health, Metrics};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Prometheus address for policies that name none (`--prometheus-address`, parsed).
    pub prometheus_address: Option<crate::analysis::address::Address>,
    /// The reporting instance in Events (the pod name).
    pub instance: Option<String>,
    /// How long a proof of the pause gate holds before a namespace's next governed Deployment
    /// proves it again ([`super::gate`]).
    pub gate_check_interval: std::time::Duration,
    /// Notifications that may wait per sink before more are dropped.
    pub notification_queue: usize,
    /// Sinks told about every policy's runs (the chart's `notifications.sinks`).
    pub cluster_sinks: crate::notify::ClusterSinks,
}

/// Errors of the controller layer. Each has a short stable category (metric label, Event
/// reason).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Kubernetes API refused {action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the CRDs are not installed: {0}. Apply crds/ (kubectl apply -f crds/) or install the Helm chart"
    )]
    CrdsMissing(String),
    #[error("{0}")]
    Invalid(String),
    /// An object under a name rollguard writes is not rollguard's (seen on the live object
    /// just before the write): nothing was written.
    #[error("{0}")]
    NotOwned(String),
}

impl Error {
    /// A short stable category.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.code == 409 => "conflict",
                kube::Error::Api(s) if s.code == 403 => "forbidden",
                kube::Error::Api(s) if s.code == 404 => "not_found",
                kube::Error::Api(s) if s.code == 422 => "invalid",
                kube::Error::Api(_) => "api",
                kube::Error::Service(e) if e.to_string().contains(super::leader::FENCED) => {
                    "fenced"
                }
                _ => "transport",
            },
            Error::CrdsMissing(_) => "crds_missing",
            Error::Invalid(_) => "invalid",
            Error::NotOwned(_) => "not_owned",
        }
    }
}

pub(crate) fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// The in-memory view of the cluster, fed by watches.
#[derive(Clone)]
pub struct Stores {
    pub deployments: Store<Deployment>,
    pub runs: Store<RolloutRun>,
    pub policies: Store<RolloutPolicy>,
    pub services: Store<Service>,
    pub routes: Option<Store<HttpRoute>>,
    pub replicasets: Store<PartialObjectMeta<ReplicaSet>>,
    /// The EndpointSlices of rollguard's routing Services (labelled with the Deployment).
    pub endpoint_slices: Store<EndpointSlice>,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub stores: Stores,
    pub prometheus: prometheus::Client,
    /// Prometheus credentials and sink URLs from Secrets, watched on first use.
    pub secrets: std::sync::Arc<secrets::Secrets>,
    /// Delivers notifications to policies' sinks, off the reconcile path.
    pub notifier: crate::notify::Notifier,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// Asks the policy controller to refresh a policy's status.
    pub policy_refresh: mpsc::UnboundedSender<ObjectRef<RolloutPolicy>>,
    /// Every watch has listed its objects. Until then no reconcile acts: a Deployment seen
    /// before its policy would otherwise look ungoverned and be released.
    pub synced: Health,
    /// Run statuses written but maybe not yet seen through the watch: (namespace, name) to
    /// (the resourceVersion the write replaced, the status written).
    pub written: std::sync::Mutex<
        std::collections::HashMap<(String, String), (String, crate::api::run::RolloutRunStatus)>,
    >,
    /// Runs (namespace, name) whose end Event this process has published or checked.
    pub announced: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// Whether each namespace pauses new templates at admission ([`super::gate`]).
    pub gates: super::gate::Gates,
}

impl Context {
    /// A run's status as rollguard last knows it: the cached one, or the one it wrote when
    /// the cache still holds the version that write replaced.
    pub fn run_status(&self, run: &RolloutRun) -> crate::api::run::RolloutRunStatus {
        let key = (run.namespace().unwrap_or_default(), run.name_any());
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(&key) {
            Some((replaced, st)) if run.resource_version().as_ref() == Some(replaced) => st.clone(),
            Some(_) => {
                written.remove(&key);
                run.status.clone().unwrap_or_default()
            }
            None => run.status.clone().unwrap_or_default(),
        }
    }
}

impl Context {
    pub(super) fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }
}

pub(super) fn scoped<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub(super) async fn crd_present<K>(api: &Api<K>) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // Metadata only: one object the types cannot read must not look like a missing CRD.
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Adds rollguard's User-Agent ([`crate::names::USER_AGENT`]) to a client configuration.
pub fn identify(config: &mut kube::Config) {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(crate::names::USER_AGENT),
    ));
}

/// The operator's client: the inferred configuration (in-cluster, else the kubeconfig)
/// sending rollguard's User-Agent.
pub async fn client() -> Result<Client, String> {
    let config = infer().await?;
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
}

/// The controller's client: as [`client`], with the instance (the pod name) in the
/// User-Agent, `rollguard/<version> (<instance>)`, so an audit log tells replicas apart.
/// With a fence, its writes go out only while the fence is open ([`super::leader`]).
pub async fn instance_client(
    instance: &str,
    fence: Option<&super::leader::Fence>,
) -> Result<Client, String> {
    let mut config = infer().await?;
    let ua = format!("{} ({instance})", crate::names::USER_AGENT);
    if let Ok(v) = http::HeaderValue::from_str(&ua) {
        config
            .headers
            .retain(|(k, _)| k != http::header::USER_AGENT);
        config.headers.push((http::header::USER_AGENT, v));
    }
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
    Ok(match fence {
        Some(f) => builder.with_layer(&f.layer()).build(),
        None => builder.build(),
    })
}

async fn infer() -> Result<kube::Config, String> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    identify(&mut config);
    Ok(config)
}

/// Fails with an install hint when the CRDs are not served.
pub async fn check_crds(client: &Client, ns: &Option<String>) -> Result<(), Error> {
    let policies_api: Api<RolloutPolicy> = scoped(client, ns);
    let runs_api: Api<RolloutRun> = scoped(client, ns);
    for present in [
        crd_present(&policies_api).await,
        crd_present(&runs_api).await,
    ] {
        match present {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::CrdsMissing(
                    "rolloutpolicies.rollguard.dev or rolloutruns.rollguard.dev is not served"
                        .into(),
                ));
            }
            Err(e) => return Err(Error::CrdsMissing(e.to_string())),
        }
    }
    Ok(())
}
