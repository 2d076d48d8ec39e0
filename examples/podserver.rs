//! Pod server for rollguard's real data path (`make test-gateway`): it stands in for the
//! processes behind kwok's pods, which have none.
//!
//! It watches Pods and serves real HTTP on each running pod's IP and container ports (every
//! declared `containerPort`, or `--default-port` when a pod declares none). Pod IPs must be
//! loopback addresses (kwok's `--cidr` inside 127.0.0.0/8, `ROLLGUARD_POD_CIDR`): Linux accepts
//! listeners on distinct 127.x.y.z addresses with the same port, so one process stands in for
//! every pod. A pod whose IP is not in 127.0.0.0/8 is never served (and logged once).
//!
//! Each answer follows the pod's annotations (the pod template's, so they travel with the
//! revision):
//! * `sim.rollguard.dev/error-rate` (a fraction, `0.05` = 5%; the traffic simulator reads the
//!   same key): that share of the pod's requests get a 500, deterministically (request n fails
//!   when ⌊n·rate⌋ grows), so a test's error counts do not depend on a random draw;
//! * `sim.rollguard.dev/latency` (`20ms`, `1s`): every answer waits that long first.
//!
//! Answers carry `x-rollguard-pod`, `x-rollguard-revision` (the pod's `pod-template-hash`) and
//! `x-rollguard-track` (`canary` for pods labelled `rollguard.dev/role: canary`, else `stable`),
//! so a client can count what each revision answered.
//!
//! A pod stops being served `--drain` after it goes away (deleted, terminating, no longer
//! Running, or its IP changed): a real server drains while the endpoint's removal reaches the
//! gateway.
//!
//! **Endpoints.** The API server refuses loopback addresses in EndpointSlices (its
//! `ValidateEndpointIP`: "may not be in the loopback range"), so the EndpointSlice controller
//! cannot publish these pods, and a gateway that routes to endpoint addresses would find none.
//! With `--publish-endpoints` this tool does the controller's job for the Services of the
//! watched namespaces: one EndpointSlice `<service>-loopback` per Service with a selector
//! (owned by the Service, with its labels as the controller copies them, and
//! `endpointslice.kubernetes.io/managed-by: podserver.rollguard.dev`),
//! listing the selected pods' loopback IPs with the controller's conditions (ready: the pod is
//! Ready, not terminating, and this tool answers on its address, as a readiness probe would
//! say). Its `addressType` is `FQDN`, the one type whose validation takes
//! a dotted quad like `127.244.0.3` as a name; Traefik's kubernetesgateway provider reads the
//! addresses of every slice of a Service whatever their type and routes to them.
//!
//! On `--listen` it serves `/counts` (JSON: requests and errors per pod, with namespace,
//! revision, track and the first request's time; kept after the pod goes away) and `/healthz`.
//! The first line on stdout is `listening on <addr>`.
//!
//! ```text
//! cargo run --example podserver -- --listen 127.0.0.1:0 --namespace demo
//! ```

#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn};

const ERROR_RATE_ANNOTATION: &str = "sim.rollguard.dev/error-rate";
const LATENCY_ANNOTATION: &str = "sim.rollguard.dev/latency";
const ROLE_LABEL: &str = "rollguard.dev/role";
const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Command line of the pod server.
#[derive(Debug, Parser)]
#[command(
    name = "podserver",
    about = "Real HTTP on every running pod's loopback IP, answering as its annotations say"
)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["namespaces", "all_namespaces"])))]
struct Args {
    /// Address to serve /counts and /healthz on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Namespace to watch (repeatable).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// Watch every namespace.
    #[arg(long, short = 'A', conflicts_with = "namespaces")]
    all_namespaces: bool,
    /// The port served for a pod that declares no containerPort.
    #[arg(long, default_value_t = 8080)]
    default_port: u16,
    /// How long a pod that went away is still served (its endpoint's removal reaches the
    /// gateway meanwhile), e.g. `5s`.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Publish the pods' loopback IPs as EndpointSlices of the Services that select them (the
    /// EndpointSlice controller cannot: the API server refuses loopback endpoint addresses).
    #[arg(long)]
    publish_endpoints: bool,
}

/// Parses `<number><unit>` with unit `ms`, `s` or `m` into a duration (zero allowed).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!("{s:?}: expected a number with ms, s or m"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {num:?} is not a number"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("{s:?}: {e}"))
}

/// Parses an error rate, a fraction in [0, 1], into parts per million.
fn parse_error_ppm(s: &str) -> Result<u64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} is not a fraction between 0 and 1"));
    }
    Ok((v * 1e6).round() as u64)
}

/// Whether request number `n` (1-based) of a pod with this error rate fails: exactly
/// ⌊n·rate⌋ of its first n requests do.
fn fails(n: u64, error_ppm: u64) -> bool {
    n > 0 && (n * error_ppm) / 1_000_000 > ((n - 1) * error_ppm) / 1_000_000
}

/// Whether `ip` is in 127.0.0.0/8, the only range this tool may serve (and a gateway may
/// send to) on these machines.
fn loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 127)
}

/// What one pod is served as.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    namespace: String,
    pod: String,
    ip: Ipv4Addr,
    ports: Vec<u16>,
    revision: String,
    track: &'static str,
    error_ppm: u64,
    latency: Duration,
}

/// The target a pod should be served as now, `Err` with why it is not (a pod that is not
/// running is `Ok(None)`, nothing to say).
fn target_of(pod: &Pod, default_port: u16) -> Result<Option<Target>, String> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let Some(status) = pod.status.as_ref() else {
        return Ok(None);
    };
    if status.phase.as_deref() != Some("Running") {
        return Ok(None);
    }
    let Some(ip) = status.pod_ip.as_deref().filter(|ip| !ip.is_empty()) else {
        return Ok(None);
    };
    let name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("pod {namespace}/{name}: pod IP {ip:?} is not an address"))?;
    let ip = match ip {
        IpAddr::V4(v4) if loopback(ip) => v4,
        _ => {
            return Err(format!(
                "pod {namespace}/{name}: pod IP {ip} is outside 127.0.0.0/8: not served \
                 (give kwok a loopback --cidr, ROLLGUARD_POD_CIDR)"
            ));
        }
    };
    let mut ports: Vec<u16> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        ports.push(default_port);
    }
    let annotations = pod.annotations();
    let error_ppm = match annotations.get(ERROR_RATE_ANNOTATION) {
        None => 0,
        Some(v) => parse_error_ppm(v)
            .map_err(|e| format!("pod {namespace}/{name}: {ERROR_RATE_ANNOTATION}: {e}"))?,
    };
    let latency = match annotations.get(LATENCY_ANNOTATION) {
        None => Duration::ZERO,
        Some(v) => parse_duration(v)
            .map_err(|e| format!("pod {namespace}/{name}: {LATENCY_ANNOTATION}: {e}"))?,
    };
    let labels = pod.labels();
    Ok(Some(Target {
        namespace,
        pod: name,
        ip,
        ports,
        revision: labels
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .unwrap_or_default(),
        track: if labels.get(ROLE_LABEL).map(String::as_str) == Some("canary") {
            "canary"
        } else {
            "stable"
        },
        error_ppm,
        latency,
    }))
}

/// The label that marks the EndpointSlices this tool publishes.
const MANAGED_BY: &str = "podserver.rollguard.dev";

/// Whether `pod` is Ready (its condition) and not terminating.
fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The EndpointSlice `<service>-loopback` for `svc` and the pods of its namespace, as the
/// EndpointSlice controller would write it for these pods if loopback addresses were valid:
/// the selected pods with a loopback IP, ready when Ready and not terminating; the Service's
/// ports with their numeric target ports. `None` for a Service without a selector.
fn endpoint_slice(
    svc: &Service,
    pods: &[Pod],
    serving: &std::collections::BTreeSet<String>,
) -> Option<serde_json::Value> {
    let name = svc.metadata.name.as_deref()?;
    let uid = svc.metadata.uid.as_deref()?;
    let spec = svc.spec.as_ref()?;
    let selector = spec.selector.as_ref().filter(|s| !s.is_empty())?;
    let ns = svc.metadata.namespace.as_deref().unwrap_or_default();
    let mut endpoints: Vec<serde_json::Value> = pods
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .filter(|p| {
            let labels = p.labels();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_deref()?;
            loopback(ip.parse().ok()?).then(|| {
                let ready = pod_ready(p) && serving.contains(&p.uid().unwrap_or_default());
                let terminating = p.metadata.deletion_timestamp.is_some();
                serde_json::json!({
                    "addresses": [ip],
                    "conditions": {"ready": ready, "serving": ready || terminating, "terminating": terminating},
                    "targetRef": {"kind": "Pod", "namespace": ns, "name": p.name_any(), "uid": p.uid()},
                    "nodeName": p.spec.as_ref().and_then(|s| s.node_name.clone()),
                })
            })
        })
        .collect();
    endpoints.sort_by_key(|e| e["addresses"][0].as_str().unwrap_or_default().to_string());
    let ports: Vec<serde_json::Value> = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let target = match &p.target_port {
                None => p.port,
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(t)) => *t,
                Some(_) => return None, // a named port: not resolved here
            };
            Some(serde_json::json!({
                "name": p.name.clone().unwrap_or_default(),
                "port": target,
                "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            }))
        })
        .collect();
    // The Service's labels, then the two the controller reserves (as its
    // `setEndpointSliceLabels` does): rollguard finds its routing Services' slices by them.
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("endpointslice.kubernetes.io/")
                && !k.starts_with("kubernetes.io/service-name")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert("kubernetes.io/service-name".into(), name.into());
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        MANAGED_BY.into(),
    );
    Some(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-loopback"),
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid,
                                 "controller": true, "blockOwnerDeletion": true}],
        },
        "addressType": "FQDN",
        "endpoints": endpoints,
        "ports": ports,
    }))
}

/// Keeps the loopback EndpointSlices in line with the Services and pods, every 200 ms (a
/// slice is written only when it changed).
async fn publish_endpoints(
    client: Client,
    services: Vec<Store<Service>>,
    pods: Vec<Store<Pod>>,
    serving: Serving,
) {
    for s in &services {
        let _ = s.wait_until_ready().await;
    }
    let mut written: BTreeMap<(String, String), serde_json::Value> = BTreeMap::new();
    loop {
        let all_pods: Vec<Pod> = pods
            .iter()
            .flat_map(Store::state)
            .map(|p| (*p).clone())
            .collect();
        let served = serving.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for svc in services.iter().flat_map(Store::state) {
            let Some(slice) = endpoint_slice(&svc, &all_pods, &served) else {
                continue;
            };
            let ns = svc.namespace().unwrap_or_default();
            let name = slice["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (ns.clone(), name.clone());
            if written.get(&key) == Some(&slice) {
                continue;
            }
            let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
            let params = kube::api::PatchParams::apply("podserver").force();
            match api
                .patch(&name, &params, &kube::api::Patch::Apply(&slice))
                .await
            {
                Ok(_) => {
                    info!(namespace = %ns, slice = %name,
                          endpoints = slice["endpoints"].as_array().map_or(0, Vec::len),
                          "published loopback endpoints");
                    written.insert(key, slice);
                }
                Err(e) => {
                    warn!(namespace = %ns, slice = %name, error = %e, "cannot publish endpoints; retrying")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pod's counters (kept after the pod goes away).
#[derive(Default)]
struct Counter {
    requests: AtomicU64,
    errors: AtomicU64,
    /// Unix time of the first request in milliseconds, 0 before it.
    first_ms: AtomicU64,
}

/// A row of `/counts`.
#[derive(Serialize)]
struct CountRow {
    namespace: String,
    pod: String,
    revision: String,
    track: &'static str,
    requests: u64,
    errors: u64,
    /// Unix time of the first request, in seconds (absent before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    first_request: Option<f64>,
    /// Whether the pod is served now.
    serving: bool,
}

/// A pod's row: what it was served as, its counters, whether it is served now.
type Row = (Target, Arc<Counter>, bool);

/// Counters by pod uid.
#[derive(Default)]
struct Counts {
    rows: Mutex<BTreeMap<String, Row>>,
}

impl Counts {
    fn counter(&self, uid: &str, t: &Target) -> Arc<Counter> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let row = rows
            .entry(uid.to_string())
            .or_insert_with(|| (t.clone(), Arc::default(), true));
        row.0 = t.clone();
        row.2 = true;
        row.1.clone()
    }

    fn stopped(&self, uid: &str) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(row) = rows.get_mut(uid) {
            row.2 = false;
        }
    }

    fn snapshot(&self) -> Vec<CountRow> {
        let rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        rows.values()
            .map(|(t, c, serving)| {
                let first = c.first_ms.load(Ordering::Relaxed);
                CountRow {
                    namespace: t.namespace.clone(),
                    pod: t.pod.clone(),
                    revision: t.revision.clone(),
                    track: t.track,
                    requests: c.requests.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    first_request: (first > 0).then(|| first as f64 / 1000.0),
                    serving: *serving,
                }
            })
            .collect()
    }
}

/// What one listener answers with.
struct Served {
    target: Target,
    counter: Arc<Counter>,
}

/// What a listener answers as now: a pod that takes over a gone pod's address takes over its
/// listener too (no socket closes, so no connection the gateway holds is reset).
type Slot = Arc<std::sync::RwLock<Arc<Served>>>;

async fn answer(State(slot): State<Slot>) -> Response {
    let s = slot.read().unwrap_or_else(|e| e.into_inner()).clone();
    if !s.target.latency.is_zero() {
        tokio::time::sleep(s.target.latency).await;
    }
    let n = s.counter.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if n == 1 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let _ = s
            .counter
            .first_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }
    let failed = fails(n, s.target.error_ppm);
    if failed {
        s.counter.errors.fetch_add(1, Ordering::Relaxed);
    }
    let code = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let mut r = (code, format!("{} {}\n", s.target.pod, code.as_u16())).into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("x-rollguard-pod", s.target.pod.as_str()),
        ("x-rollguard-revision", s.target.revision.as_str()),
        ("x-rollguard-track", s.target.track),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    r
}

/// A running pod's listeners and, once it went away, when they stop.
struct Listening {
    target: Target,
    slot: Slot,
    stops: Vec<oneshot::Sender<()>>,
    drain_until: Option<Instant>,
}

/// Binds one listener per port of `t`; `None` (logged) when a port cannot be bound yet.
async fn listen(t: &Target, counter: Arc<Counter>) -> Option<(Vec<oneshot::Sender<()>>, Slot)> {
    let served: Slot = Arc::new(std::sync::RwLock::new(Arc::new(Served {
        target: t.clone(),
        counter,
    })));
    let mut stops = Vec::new();
    for port in &t.ports {
        let addr = SocketAddr::new(IpAddr::V4(t.ip), *port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                warn!(pod = %t.pod, %addr, error = %e, "cannot listen yet; retrying");
                return None; // the senders dropped here stop the ports already bound
            }
        };
        let (tx, rx) = oneshot::channel::<()>();
        let app = Router::new().fallback(answer).with_state(served.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        stops.push(tx);
    }
    Some((stops, served))
}

/// The uids of the pods served now (bound and not draining): the readiness of the published
/// endpoints, as a readiness probe would give it.
type Serving = Arc<Mutex<std::collections::BTreeSet<String>>>;

/// Brings the listeners in line with the pods, every 200 ms.
async fn reconcile(
    stores: Vec<Store<Pod>>,
    counts: Arc<Counts>,
    serving: Serving,
    default_port: u16,
    drain: Duration,
) {
    let mut listening: BTreeMap<String, Listening> = BTreeMap::new();
    let mut reported: std::collections::BTreeSet<String> = Default::default();
    for s in &stores {
        let _ = s.wait_until_ready().await;
    }
    loop {
        let mut wanted: BTreeMap<String, Target> = BTreeMap::new();
        for pod in stores.iter().flat_map(Store::state) {
            let uid = pod.uid().unwrap_or_default();
            match target_of(&pod, default_port) {
                Ok(Some(t)) => {
                    wanted.insert(uid, t);
                }
                Ok(None) => {}
                Err(why) => {
                    if reported.insert(uid) {
                        warn!("{why}");
                    }
                }
            }
        }
        let now = Instant::now();
        // kwok hands a deleted pod's IP to the next pod at once: the new pod takes over the
        // listener of the gone one on the same address and ports, so the gateway's connections
        // to that address stay open and are answered by the new pod from now on.
        for (uid, t) in &wanted {
            if listening.contains_key(uid) {
                continue;
            }
            let gone = listening
                .iter()
                .find(|(k, l)| {
                    *k != uid
                        && l.target.ip == t.ip
                        && l.target.ports == t.ports
                        && wanted.get(*k) != Some(&l.target)
                })
                .map(|(k, _)| k.clone());
            if let Some(old) = gone
                && let Some(mut l) = listening.remove(&old)
            {
                info!(pod = %t.pod, ip = %t.ip, from = %l.target.pod, "took over the address");
                counts.stopped(&old);
                let counter = counts.counter(uid, t);
                *l.slot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Served {
                    target: t.clone(),
                    counter,
                });
                l.target = t.clone();
                l.drain_until = None;
                listening.insert(uid.clone(), l);
            }
        }
        // Otherwise (other ports) a draining listener gives its address up as soon as a new pod
        // has it (a real node would not reuse an address that fast).
        let claimed: std::collections::BTreeSet<Ipv4Addr> = wanted
            .iter()
            .filter(|(uid, t)| listening.get(*uid).is_none_or(|l| &l.target != *t))
            .map(|(_, t)| t.ip)
            .collect();
        // Gone, or served as something else: drain, then stop.
        listening.retain(|uid, l| {
            if wanted.get(uid) == Some(&l.target) {
                l.drain_until = None;
                return true;
            }
            let until = *l.drain_until.get_or_insert(now + drain);
            if now < until && !claimed.contains(&l.target.ip) {
                return true;
            }
            info!(pod = %l.target.pod, ip = %l.target.ip, "stopped serving");
            for tx in l.stops.drain(..) {
                let _ = tx.send(());
            }
            counts.stopped(uid);
            false
        });
        for (uid, t) in wanted {
            if listening.contains_key(&uid) {
                continue;
            }
            // A pod whose IP changed: the old listeners still drain under its uid.
            let counter = counts.counter(&uid, &t);
            if let Some((stops, slot)) = listen(&t, counter).await {
                info!(pod = %t.pod, ip = %t.ip, ports = ?t.ports, revision = %t.revision,
                      track = t.track, error_ppm = t.error_ppm, "serving");
                listening.insert(
                    uid,
                    Listening {
                        target: t,
                        slot,
                        stops,
                        drain_until: None,
                    },
                );
            }
        }
        let now_serving = listening
            .iter()
            .filter(|(_, l)| l.drain_until.is_none())
            .map(|(uid, _)| uid.clone())
            .collect();
        *serving.lock().unwrap_or_else(|e| e.into_inner()) = now_serving;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn store<K>(api: Api<K>) -> Store<K>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o: &mut K| o.managed_fields_mut().clear()),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                warn!(error = %e, "watch failed; retrying with backoff");
            }
        }
    });
    reader
}

async fn counts_handler(State(c): State<Arc<Counts>>) -> Response {
    let body = serde_json::json!({ "pods": c.snapshot() }).to_string();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    process::init_logging();
    let client = Client::try_default().await?;
    let apis = |client: &Client| -> Vec<(Api<Pod>, Api<Service>)> {
        if args.all_namespaces {
            vec![(Api::all(client.clone()), Api::all(client.clone()))]
        } else {
            args.namespaces
                .iter()
                .map(|ns| {
                    (
                        Api::namespaced(client.clone(), ns),
                        Api::namespaced(client.clone(), ns),
                    )
                })
                .collect()
        }
    };
    let (pod_apis, svc_apis): (Vec<_>, Vec<_>) = apis(&client).into_iter().unzip();
    let stores: Vec<Store<Pod>> = pod_apis.into_iter().map(store).collect();
    let serving = Serving::default();
    if args.publish_endpoints {
        let services: Vec<Store<Service>> = svc_apis.into_iter().map(store).collect();
        tokio::spawn(publish_endpoints(
            client.clone(),
            services,
            stores.clone(),
            serving.clone(),
        ));
    }
    let counts = Arc::new(Counts::default());
    tokio::spawn(reconcile(
        stores,
        counts.clone(),
        serving,
        args.default_port,
        args.drain,
    ));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new()
        .route("/counts", get(counts_handler))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(counts);
    axum::serve(listener, app)
        .with_graceful_shutdown(process::shutdown_signal())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ip: &str, annotations: serde_json::Value, ports: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-canary-7f9-q", "namespace": "ns", "uid": "u1",
                         "labels": {"pod-template-hash": "7f9", "rollguard.dev/role": "canary"},
                         "annotations": annotations},
            "spec": {"containers": [{"name": "app", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip}
        }))
        .expect("a pod")
    }

    #[test]
    fn exactly_floor_n_rate_of_the_first_n_requests_fail() {
        for ppm in [0, 5_000, 50_000, 333_333, 1_000_000] {
            let mut failed = 0;
            for n in 1..=10_000u64 {
                failed += u64::from(fails(n, ppm));
                assert_eq!(failed, n * ppm / 1_000_000, "ppm {ppm} n {n}");
            }
        }
        // 5%: the 20th request is the first to fail.
        assert!(!fails(19, 50_000) && fails(20, 50_000));
    }

    #[test]
    fn a_running_loopback_pod_is_served_as_its_annotations_say() {
        let p = pod(
            "127.244.0.7",
            json!({"sim.rollguard.dev/error-rate": "0.05", "sim.rollguard.dev/latency": "20ms"}),
            json!([{"containerPort": 9090}, {"containerPort": 8080}]),
        );
        let t = target_of(&p, 8080).expect("valid").expect("served");
        assert_eq!(t.ip, Ipv4Addr::new(127, 244, 0, 7));
        assert_eq!(t.ports, vec![8080, 9090]);
        assert_eq!((t.revision.as_str(), t.track), ("7f9", "canary"));
        assert_eq!(t.error_ppm, 50_000);
        assert_eq!(t.latency, Duration::from_millis(20));
        let bare = pod("127.244.0.8", json!({}), json!(null));
        let t = target_of(&bare, 8080).expect("valid").expect("served");
        assert_eq!((t.ports, t.error_ppm), (vec![8080], 0));
    }

    #[test]
    fn a_pod_outside_loopback_is_refused_and_one_not_running_is_not_served() {
        let p = pod("10.244.0.7", json!({}), json!(null));
        let e = target_of(&p, 8080).expect_err("refused");
        assert!(e.contains("outside 127.0.0.0/8"), "{e}");
        let mut gone = pod("127.244.0.7", json!({}), json!(null));
        gone.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert_eq!(target_of(&gone, 8080), Ok(None));
        let mut pending = pod("127.244.0.7", json!({}), json!(null));
        pending.status.as_mut().expect("status").phase = Some("Pending".into());
        assert_eq!(target_of(&pending, 8080), Ok(None));
    }

    #[test]
    fn the_loopback_slice_lists_the_selected_pods_as_the_controller_would() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "web-canary", "namespace": "ns", "uid": "s1",
                         "labels": {"rollguard.dev/deployment": "web",
                                    "kubernetes.io/service-name": "not-this"}},
            "spec": {"selector": {"rollguard.dev/role": "canary"},
                     "ports": [{"port": 80, "targetPort": 8080}]}
        }))
        .expect("a service");
        let mut ready = pod("127.244.0.7", json!({}), json!(null));
        ready.status.as_mut().expect("status").conditions = Some(vec![
            serde_json::from_value(json!({"type": "Ready", "status": "True"})).expect("cond"),
        ]);
        // Ready, but not served yet (another uid): not ready either.
        let mut unready = pod("127.244.0.8", json!({}), json!(null));
        unready.metadata.uid = Some("u2".into());
        unready.status.as_mut().expect("status").conditions = Some(vec![
            serde_json::from_value(json!({"type": "Ready", "status": "True"})).expect("cond"),
        ]);
        let mut other = pod("127.244.0.9", json!({}), json!(null));
        other.metadata.labels = None;
        let outside = pod("10.244.0.9", json!({}), json!(null));
        let served = ["u1".to_string()].into();
        let s = endpoint_slice(&svc, &[ready, unready, other, outside], &served).expect("a slice");
        assert_eq!(s["metadata"]["name"], "web-canary-loopback");
        // The Service's labels are copied, the reserved one set, as the controller does.
        assert_eq!(
            s["metadata"]["labels"],
            json!({"kubernetes.io/service-name": "web-canary",
                   "endpointslice.kubernetes.io/managed-by": "podserver.rollguard.dev",
                   "rollguard.dev/deployment": "web"})
        );
        assert_eq!(s["addressType"], "FQDN");
        assert_eq!(
            s["ports"],
            json!([{"name": "", "port": 8080, "protocol": "TCP"}])
        );
        let eps = s["endpoints"].as_array().expect("endpoints");
        assert_eq!(eps.len(), 2, "{eps:?}");
        assert_eq!(
            (
                eps[0]["addresses"][0].as_str(),
                &eps[0]["conditions"]["ready"]
            ),
            (Some("127.244.0.7"), &json!(true))
        );
        assert_eq!(
            (
                eps[1]["addresses"][0].as_str(),
                &eps[1]["conditions"]["ready"]
            ),
            (Some("127.244.0.8"), &json!(false))
        );
    }

    #[test]
    fn bad_annotations_are_named() {
        let p = pod(
            "127.0.0.9",
            json!({"sim.rollguard.dev/error-rate": "5%"}),
            json!(null),
        );
        let e = target_of(&p, 8080).expect_err("refused");
        assert!(e.contains("sim.rollguard.dev/error-rate"), "{e}");
        assert!(parse_error_ppm("1.5").is_err());
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    }
}
