//! The operator: watches feed in-memory stores, a Deployment controller drives runs from
//! them, and a policy controller writes policy status and releases Deployments when a policy
//! goes away. Only watches: nothing is polled; timers come from the run machine's `wake_at`.

mod apply;
mod deployment;
pub mod leader;
pub mod lenient;
mod observe;
mod outcome;
mod policy;

/// What the operator checks on a policy beyond the API server's validation (templates, plans).
pub use policy::validate as policy_validate;
mod secrets;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use crate::analysis::prometheus;
use crate::api::{RolloutPolicy, RolloutRun};
use crate::names::DEPLOYMENT_LABEL;
use crate::names::GOVERNED_BY;
use crate::telemetry::{Health, Metrics};

/// Deployment reconciles in flight at once. Unbounded, adopting 1000 Deployments started
/// 1000 reconciles together: their requests queued in the API server (a reconcile took
/// seconds) and their buffers set the operator's memory high-water mark. 64 keeps 50
/// simultaneous runs moving while a burst waits its turn in the controller's queue; the
/// step delay metric includes that wait.
pub const MAX_CONCURRENT_RECONCILES: u16 = 64;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    /// Prometheus address for policies that name none.
    pub prometheus_address: Option<String>,
    /// The reporting instance in Events (the pod name).
    pub instance: Option<String>,
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
                _ => "transport",
            },
            Error::CrdsMissing(_) => "crds_missing",
            Error::Invalid(_) => "invalid",
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
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub stores: Stores,
    pub prometheus: prometheus::Client,
    /// Prometheus credentials from Secrets, watched on first use.
    pub secrets: secrets::Secrets,
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
    fn api<K>(&self, ns: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), ns)
    }
}

fn scoped<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

pub use crate::selection::is_canary;

async fn crd_present<K>(api: &Api<K>) -> Result<bool, kube::Error>
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
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    identify(&mut config);
    Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))
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

/// Runs the operator until the process is asked to stop.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Metrics,
    health: Health,
) -> Result<(), Error> {
    let ns = config.namespace.clone();
    check_crds(&client, &ns).await?;
    let routes_api: Api<HttpRoute> = scoped(&client, &ns);
    let have_routes = crd_present(&routes_api).await.unwrap_or(false);
    if !have_routes {
        tracing::info!(
            "the Gateway API HTTPRoute CRD is not installed; the gatewayAPI router is unavailable"
        );
    }

    let wc = watcher::Config::default().any_semantic();
    // Ready once every watch has listed its objects. (Awaiting the stores' own readiness from
    // a second task would steal the controller's wake-up: the store signals one waiter.)
    let all_synced = Health::default();
    let synced = Synced::new(
        if have_routes { 6 } else { 5 },
        vec![health.clone(), all_synced.clone()],
    );
    let (deployments, deploy_writer) = reflector::store::<Deployment>();
    let (runs, run_writer) = reflector::store::<RolloutRun>();
    let (policies, policy_writer) = reflector::store::<RolloutPolicy>();
    let (services, svc_writer) = reflector::store::<Service>();
    let (replicasets, rs_writer) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
    let (routes, route_writer) = if have_routes {
        let (r, w) = reflector::store::<HttpRoute>();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let stores = Stores {
        deployments: deployments.clone(),
        runs: runs.clone(),
        policies: policies.clone(),
        services: services.clone(),
        routes: routes.clone(),
        replicasets: replicasets.clone(),
    };

    let (refresh_tx, refresh_rx) = mpsc::unbounded_channel::<ObjectRef<RolloutPolicy>>();
    let prom = prometheus::Client::new(None, false).map_err(Error::Invalid)?;
    let reporter = Reporter {
        controller: "rollguard".into(),
        instance: config.instance.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        stores: stores.clone(),
        prometheus: prom.clone(),
        secrets: secrets::Secrets::new(client.clone(), prom),
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        policy_refresh: refresh_tx,
        synced: all_synced,
        written: Default::default(),
    });

    // Deployments (governed and canaries) drive the Deployment controller; a canary's events
    // wake its governed Deployment.
    let dstore = deployments.clone();
    let deploy_stream = watcher(scoped::<Deployment>(&client, &ns), wc.clone())
        .default_backoff()
        .modify(slim::<Deployment>)
        .reflect(deploy_writer)
        .inspect_ok(synced.watch("deployments"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("Deployment", r)))
        .map_ok(move |d| {
            if is_canary(&d)
                && let Some(parent) = d.labels().get(DEPLOYMENT_LABEL)
                && let Some(p) =
                    dstore.get(&ObjectRef::new(parent).within(&d.namespace().unwrap_or_default()))
            {
                return (*p).clone();
            }
            d
        });
    let run_stream = readable_watch::<RolloutRun>(&client, &ns, wc.clone(), &metrics)
        .modify(slim::<RolloutRun>)
        .reflect(run_writer)
        .inspect_ok(synced.watch("rolloutruns"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutRun", r)));
    // Only a policy's spec or its deletion concerns its Deployments: its status (which the
    // policy controller rewrites as Deployments are adopted and runs start and end) would
    // wake every Deployment it selects on each write.
    let policy_stream = readable_watch::<RolloutPolicy>(&client, &ns, wc.clone(), &metrics)
        .modify(slim::<RolloutPolicy>)
        .reflect(policy_writer)
        .inspect_ok(synced.watch("rolloutpolicies"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutPolicy", r)))
        .predicate_filter(spec_or_deletion, Default::default());
    let svc_stream = watcher(scoped::<Service>(&client, &ns), wc.clone())
        .default_backoff()
        .modify(slim::<Service>)
        .reflect(svc_writer)
        .inspect_ok(synced.watch("services"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("Service", r)));
    let rs_stream = watcher(
        scoped::<PartialObjectMeta<ReplicaSet>>(&client, &ns),
        wc.clone(),
    )
    .default_backoff()
    .modify(slim::<PartialObjectMeta<ReplicaSet>>)
    .reflect(rs_writer)
    .inspect_ok(synced.watch("replicasets"))
    .touched_objects()
    .filter_map(|r| future::ready(skip_undecodable("ReplicaSet", r)));

    let d1 = deployments.clone();
    let d2 = deployments.clone();
    let d3 = deployments.clone();
    let mut deploy_ctl = Controller::for_stream(deploy_stream, deployments.clone())
        .with_config(controller::Config::default().concurrency(MAX_CONCURRENT_RECONCILES))
        .watches_stream(run_stream, |r: RolloutRun| {
            Some(ObjectRef::new(&r.spec.deployment).within(&r.namespace().unwrap_or_default()))
        })
        .watches_stream(policy_stream, move |p: RolloutPolicy| {
            policy_targets(&d1, &p)
        })
        .watches_stream(svc_stream, move |s: Service| service_targets(&d2, &s))
        .watches_stream(rs_stream, |rs: PartialObjectMeta<ReplicaSet>| {
            rs.owner_references()
                .iter()
                .find(|o| o.kind == "Deployment")
                .map(|o| ObjectRef::new(&o.name).within(&rs.namespace().unwrap_or_default()))
        });
    if let Some(w) = route_writer {
        let route_stream = watcher(routes_api, wc.clone())
            .default_backoff()
            .modify(slim::<HttpRoute>)
            .reflect(w)
            .inspect_ok(synced.watch("httproutes"))
            .touched_objects()
            .filter_map(|r| future::ready(skip_undecodable("HTTPRoute", r)));
        deploy_ctl = deploy_ctl.watches_stream(route_stream, move |r: HttpRoute| {
            let ns = r.namespace().unwrap_or_default();
            d3.state()
                .into_iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| d.annotations().contains_key(GOVERNED_BY))
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        });
    }

    // The policy controller watches policies its own way too, unreadable ones left out.
    let (policy_ctl_store, policy_ctl_writer) = reflector::store::<RolloutPolicy>();
    let policy_ctl_stream = readable_watch::<RolloutPolicy>(&client, &ns, wc, &metrics)
        .modify(slim::<RolloutPolicy>)
        .reflect(policy_ctl_writer)
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutPolicy", r)));
    let policy_ctl = Controller::for_stream(policy_ctl_stream, policy_ctl_store)
        .with_config(controller::Config::default().debounce(Duration::from_millis(300)))
        .reconcile_on(tokio_stream_from(refresh_rx))
        .shutdown_on_signal()
        .run(policy::reconcile, policy::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    let deploy_ctl = deploy_ctl
        .shutdown_on_signal()
        .run(deployment::reconcile, deployment::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    tokio::join!(policy_ctl, deploy_ctl);
    Ok(())
}

/// Drops what rollguard never reads before an object is cached: its `managedFields`, often
/// the larger part of an object that several managers write (kubectl, the controllers,
/// rollguard). Writes are server-side applies of rollguard's own fields, never the cached
/// object sent back, so nothing is lost. At 1000 Deployments this is most of the cache.
fn slim<K: kube::Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
}

/// Counts the watches that have not yet listed their objects; marks the operator ready when
/// none are left.
#[derive(Clone)]
struct Synced {
    pending: Arc<std::sync::atomic::AtomicUsize>,
    flags: Vec<Health>,
}

impl Synced {
    fn new(watches: usize, flags: Vec<Health>) -> Synced {
        Synced {
            pending: Arc::new(std::sync::atomic::AtomicUsize::new(watches)),
            flags,
        }
    }

    /// An inspector for one watch's events: its first `InitDone` counts once.
    fn watch<K>(&self, name: &'static str) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
        let this = self.clone();
        let mut seen = false;
        move |ev| {
            if matches!(ev, watcher::Event::InitDone) && !seen {
                seen = true;
                tracing::debug!(cache = name, "cache synced");
                if this
                    .pending
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                    == 1
                {
                    tracing::info!("caches synced");
                    for f in &this.flags {
                        f.set_ready();
                    }
                }
            }
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A watch event that does not deserialise (an object written under an older schema, say)
/// is reported and skipped instead of wedging the watch.
fn skip_undecodable<K>(
    kind: &str,
    r: Result<K, watcher::Error>,
) -> Option<Result<K, watcher::Error>> {
    match r {
        Err(e) => {
            if undecodable(&e) {
                tracing::warn!(kind, error = %e, "skipping an object that could not be read");
            } else {
                tracing::warn!(kind, error = %e, "watch interrupted; reconnecting with backoff");
            }
            None
        }
        ok => Some(ok),
    }
}

/// A watch of one of rollguard's kinds in which an object the types cannot read is reported
/// and left out instead of failing the list it came in.
fn readable_watch<K>(
    client: &Client,
    ns: &Option<String>,
    wc: watcher::Config,
    metrics: &Metrics,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let counter = metrics.undecodable.clone();
    let api: Api<lenient::Decoded<K>> = scoped(client, ns);
    watcher(api, wc).default_backoff().filter_map(move |r| {
        let counter = counter.clone();
        future::ready(match r {
            Ok(ev) => lenient::readable(ev, &|meta, error| {
                let kind = K::kind(&());
                counter.with_label_values(&[&kind]).inc();
                tracing::warn!(
                    kind = %kind,
                    namespace = meta.namespace.as_deref().unwrap_or_default(),
                    name = meta.name.as_deref().unwrap_or_default(),
                    error,
                    "skipping an object rollguard cannot read (written under another schema?); fix or delete it"
                );
            })
            .map(Ok),
            Err(e) => Some(Err(e)),
        })
    })
}

/// Whether a watch error is about an object's content rather than the connection.
fn undecodable(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => matches!(k, kube::Error::SerdeError(_)),
        _ => false,
    }
}

/// What of a policy its Deployments react to: its spec (the generation) and whether it is
/// being deleted (which also bumps the generation; this covers a deletion without one).
/// Status and metadata writes leave it unchanged. A policy deleted outright (no finalizer,
/// so never seen deleting) is not seen here; its Deployments notice at their next event.
fn spec_or_deletion(p: &RolloutPolicy) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        p.metadata.generation,
        p.metadata.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// The Deployments a policy change concerns: those it selects and those it governed.
fn policy_targets(
    deployments: &Store<Deployment>,
    p: &RolloutPolicy,
) -> Vec<ObjectRef<Deployment>> {
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()) && !is_canary(d))
        .filter(|d| policy::selects(p, d) || d.annotations().get(GOVERNED_BY) == Some(&name))
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

/// The Deployments a Service change concerns: those whose pods it selects, or the one
/// rollguard made it for.
fn service_targets(deployments: &Store<Deployment>, s: &Service) -> Vec<ObjectRef<Deployment>> {
    let ns = s.namespace().unwrap_or_default();
    if let Some(owner) = s.labels().get(DEPLOYMENT_LABEL) {
        return vec![ObjectRef::new(owner).within(&ns)];
    }
    let Some(sel) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) else {
        return vec![];
    };
    if sel.is_empty() {
        return vec![];
    }
    deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()) && !is_canary(d))
        .filter(|d| d.annotations().contains_key(GOVERNED_BY))
        .filter(|d| {
            let labels = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            labels.is_some_and(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v)))
        })
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::spec_or_deletion;
    use crate::api::RolloutPolicy;

    fn policy(generation: i64, status: Option<serde_json::Value>, deleting: bool) -> RolloutPolicy {
        let mut v = serde_json::json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "shop", "namespace": "shop", "generation": generation,
                         "resourceVersion": format!("{}", generation * 10 + i64::from(status.is_some()))},
            "spec": {
                "selector": {"matchLabels": {"app": "shop"}},
                "analysis": {"interval": "15s", "requests": "r", "errors": "e"}
            }
        });
        if let Some(s) = status {
            v["status"] = s;
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = serde_json::json!("2026-11-28T10:00:00Z");
        }
        serde_json::from_value(v).expect("a policy")
    }

    #[test]
    fn cached_objects_keep_everything_but_managed_fields() {
        let mut d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"rollguard.dev/policy": "shop"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "paused": true,
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .expect("a Deployment");
        let mut want = d.clone();
        want.metadata.managed_fields = None;
        super::slim(&mut d);
        assert!(
            d.metadata
                .managed_fields
                .as_ref()
                .is_none_or(|m| m.is_empty())
        );
        d.metadata.managed_fields = None;
        assert_eq!(d, want);
    }

    /// A status write (governed count, conflicts) does not wake the policy's Deployments; a
    /// spec change or a deletion does.
    #[test]
    fn only_spec_and_deletion_wake_deployments() {
        let base = spec_or_deletion(&policy(3, None, false));
        let status =
            serde_json::json!({"governedDeployments": 50, "activeRuns": 2, "conditions": []});
        assert_eq!(spec_or_deletion(&policy(3, Some(status), false)), base);
        assert_ne!(spec_or_deletion(&policy(4, None, false)), base);
        assert_ne!(spec_or_deletion(&policy(3, None, true)), base);
    }

    /// The API server sees `rollguard/<version>` as the User-Agent of the operator's
    /// requests (what an audit log filters on).
    #[tokio::test]
    async fn requests_carry_rollguards_user_agent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = sock
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await;
            String::from_utf8_lossy(&head).to_lowercase()
        });
        let mut config = kube::Config::new(format!("http://{addr}").parse().expect("a valid URL"));
        super::identify(&mut config);
        let client = kube::Client::try_from(config).expect("client");
        let _ = client.apiserver_version().await;
        let head = server.await.expect("the server task");
        let want = format!("user-agent: rollguard/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert!(head.contains(&want), "request head:\n{head}");
        assert_eq!(head.matches("user-agent:").count(), 1, "{head}");
    }
}
