//! Traffic simulator for rollguard's tests and demo: it stands in for real users and a
//! gateway.
//!
//! It watches Pods, Services and (when the Gateway API CRDs are installed) HTTPRoutes,
//! and every tick sends simulated requests into each *entry point*:
//!
//! * an HTTPRoute annotated `sim.rollguard.dev/rps: "<requests per second>"` — traffic
//!   enters through its first rule's backendRefs, split by weight (a missing weight is 1,
//!   weight 0 gets nothing), then evenly across the ready pods each Service selects;
//! * a Service with that annotation — traffic split evenly across the ready pods it
//!   selects (stable and canary alike, as kube-proxy does), unless an annotated
//!   HTTPRoute names it (or names its `-stable`/`-canary` pair).
//!
//! Each tick draws Poisson(rps × elapsed) requests per entry point, splits them with
//! sequential binomials, and fails Binomial(n, error rate) of each pod's requests, the
//! error rate coming from the pod annotation `sim.rollguard.dev/error-rate` (absent = 0).
//! Each request takes a log-normal time whose median is the pod annotation
//! `sim.rollguard.dev/latency` (a duration; absent = 50ms), with sigma 0.5 (`trafficsim/latency.rs`).
//! A pod counts when it has `Ready=True` and no deletionTimestamp.
//!
//! It serves, on `--listen`:
//!
//! * `/metrics` (Prometheus text):
//!   `http_requests_total{namespace,workload,track,pod_template_hash,code}` (code
//!   `200`/`500`; the series exist at 0 from the first tick the workload/track/revision has
//!   a ready pod),
//!   `sim_request_duration_seconds_bucket{namespace,workload,track,pod_template_hash,le}`
//!   (Prometheus' default buckets),
//!   `sim_first_request_timestamp_seconds{namespace,workload,track,pod_template_hash}`,
//!   `sim_pods{namespace,workload,track,pod_template_hash}` and
//!   `sim_unrouted_requests_total{namespace,kind,name,reason}`. `workload` is the owning
//!   Deployment (the ReplicaSet owner's name minus `-<pod-template-hash>`, or the pod
//!   name without a ReplicaSet owner); `track` is `canary` for pods labelled
//!   `rollguard.dev/role: canary`, else `stable`; `pod_template_hash` is the pods' label of
//!   that name (the revision they run, as Prometheus' pod discovery would label it);
//!   the same traffic as Istio, Envoy Gateway, Linkerd, NGINX Plus, Traefik and
//!   OpenTelemetry count and time it, for rollguard's presets (see `trafficsim/shapes.rs`); and
//!   `http_request_duration_seconds_{bucket,count}{kubernetes_namespace,kubernetes_pod_name,status}`
//!   per pod, what Flagger's built-in checks read (see `trafficsim/peers.rs`);
//! * `/stats` (JSON totals per namespace/workload/track: requests, errors, error ratio,
//!   ready pods, first/last request time; plus unrouted requests);
//! * `/healthz`.
//!
//! ```text
//! cargo run --example trafficsim -- --listen 127.0.0.1:0 --namespace demo --tick 100ms --seed 1
//! ```
//!
//! The first line on stdout is `listening on <addr>`; logs go to stderr (`RUST_LOG`
//! filters them). SIGTERM or ctrl-c stops it with exit status 0.

// The test seed (`ROLLGUARD_TEST_SEED`) of the model's random tests.
#[cfg(test)]
#[path = "../src/fuzz.rs"]
mod fuzz;
#[path = "trafficsim/latency.rs"]
mod latency;
#[path = "trafficsim/model.rs"]
mod model;
#[path = "trafficsim/peers.rs"]
mod peers;
#[path = "common/process.rs"]
mod process;
#[path = "trafficsim/shapes.rs"]
mod shapes;
#[path = "trafficsim/telemetry.rs"]
mod telemetry;

use std::collections::{BTreeSet, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use futures::StreamExt;
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use model::{EntryPoint, PodView, RouteView, ServiceView};
use telemetry::{Telemetry, UnroutedKey};

/// Name of the HTTPRoute CRD, watched when HTTPRoutes are not served at startup.
const HTTPROUTE_CRD: &str = "httproutes.gateway.networking.k8s.io";
/// Group/version of the HTTPRoute type the simulator reads.
const GATEWAY_API_V1: &str = "gateway.networking.k8s.io/v1";

/// Command line of the traffic simulator.
#[derive(Debug, Parser)]
#[command(
    name = "trafficsim",
    about = "Simulated users and gateway for rollguard: requests, errors and Prometheus counters"
)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["namespaces", "all_namespaces"])))]
struct Args {
    /// Address to serve /metrics, /stats and /healthz on (port 0 = any free port).
    #[arg(long, default_value = "127.0.0.1:9464")]
    listen: SocketAddr,
    /// Namespace to watch (repeatable).
    #[arg(long = "namespace", short = 'n', value_name = "NS")]
    namespaces: Vec<String>,
    /// Watch every namespace.
    #[arg(long, short = 'A', conflicts_with = "namespaces")]
    all_namespaces: bool,
    /// Simulation step, e.g. `100ms`, `1s`, `0.5s`.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    tick: Duration,
    /// Random seed (default: derived from the clock; logged at startup).
    #[arg(long)]
    seed: Option<u64>,
}

/// Parses `<number><unit>` with unit `us`, `ms`, `s`, `m` or `h` (e.g. `100ms`, `1.5s`)
/// into a positive duration.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("{s:?}: missing unit (us, ms, s, m, h)"))?;
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {num:?} is not a number"))?;
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (us, ms, s, m, h)")),
    };
    let d = Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be greater than zero"));
    }
    Ok(d)
}

/// Where the watchers are: one reflector store per watched namespace (or one for all).
struct Sources {
    /// Pod stores.
    pods: Vec<Store<Pod>>,
    /// Service stores.
    services: Vec<Store<Service>>,
    /// HTTPRoute stores, set once HTTPRoutes are served (possibly never).
    routes: Arc<OnceLock<Vec<Store<HttpRoute>>>>,
}

/// Which namespaces to watch: `None` = all.
type Scope = Option<Vec<String>>;

/// Api handles for a kind, one per namespace of the scope.
fn apis<K>(client: &Client, scope: &Scope) -> Vec<(String, Api<K>)>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match scope {
        None => vec![("*".to_string(), Api::all(client.clone()))],
        Some(nss) => nss
            .iter()
            .map(|ns| (ns.clone(), Api::namespaced(client.clone(), ns)))
            .collect(),
    }
}

/// Starts a watcher + reflector for `api` and returns its store. Watch errors are
/// retried with the default backoff; the first of a run of errors is logged at warn,
/// the rest at debug.
fn spawn_reflector<K>(kind: &'static str, namespace: String, api: Api<K>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
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
        let mut failing = false;
        while let Some(item) = stream.next().await {
            match item {
                // `Init` comes before the (re)list is attempted: not yet a recovery.
                Ok(watcher::Event::Init) => {}
                Ok(_) if failing => {
                    info!(kind, namespace, "watch recovered");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    warn!(kind, namespace, error = %e, "watch failed; retrying with backoff");
                    failing = true;
                }
                Err(e) => debug!(kind, namespace, error = %e, "watch still failing"),
            }
        }
    });
    reader
}

/// Whether the API server serves HTTPRoutes in `gateway.networking.k8s.io/v1`.
async fn httproutes_served(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(GATEWAY_API_V1).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "httproutes")),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a CRD has condition `Established=True`.
fn crd_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Starts one HTTPRoute reflector per namespace of the scope and publishes the stores in
/// `slot` (a second call leaves the first stores in place).
fn start_route_reflectors(client: &Client, scope: &Scope, slot: &OnceLock<Vec<Store<HttpRoute>>>) {
    let stores = apis::<HttpRoute>(client, scope)
        .into_iter()
        .map(|(ns, api)| spawn_reflector("httproute", ns, api))
        .collect();
    if slot.set(stores).is_err() {
        debug!("HTTPRoute reflectors already started");
    }
}

/// Decides at startup whether HTTPRoutes are served. If they are, their reflectors are
/// started before this returns, so the tick loop (which waits for every started store)
/// never sees an annotated Service without the route in front of it. If not, it logs
/// once and returns a task that watches the CRD and starts them when it is established.
async fn start_routes(
    client: &Client,
    scope: &Scope,
    slot: &Arc<OnceLock<Vec<Store<HttpRoute>>>>,
) -> Option<tokio::task::JoinHandle<()>> {
    match httproutes_served(client).await {
        Ok(true) => {
            start_route_reflectors(client, scope, slot);
            return None;
        }
        Ok(false) => info!(
            "HTTPRoutes are not served ({GATEWAY_API_V1} has no httproutes): running without \
             them until the {HTTPROUTE_CRD} CRD is established"
        ),
        Err(e) => warn!(
            error = %e,
            "could not discover {GATEWAY_API_V1}: running without HTTPRoutes until the \
             {HTTPROUTE_CRD} CRD is established"
        ),
    }
    Some(tokio::spawn(wait_for_route_crd(
        client.clone(),
        scope.clone(),
        slot.clone(),
    )))
}

/// Watches the HTTPRoute CRD and starts the HTTPRoute reflectors once it is established.
async fn wait_for_route_crd(
    client: Client,
    scope: Scope,
    slot: Arc<OnceLock<Vec<Store<HttpRoute>>>>,
) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={HTTPROUTE_CRD}"));
    let mut stream = std::pin::pin!(watcher(crds, config).default_backoff().applied_objects());
    let mut reported = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(crd) if crd_established(&crd) => {
                info!("{HTTPROUTE_CRD} established: watching HTTPRoutes");
                start_route_reflectors(&client, &scope, &slot);
                return;
            }
            Ok(_) => {}
            Err(e) if !reported => {
                warn!(error = %e, "cannot watch the {HTTPROUTE_CRD} CRD; retrying with backoff");
                reported = true;
            }
            Err(e) => debug!(error = %e, "CRD watch still failing"),
        }
    }
}

/// The tick loop's state: the watched objects, the RNG, and what was already logged.
struct Simulator {
    sources: Sources,
    telemetry: Arc<Telemetry>,
    rng: StdRng,
    /// Annotation problems already logged (each is logged once).
    reported_issues: HashSet<String>,
    /// Entry point summaries of the previous tick (changes are logged).
    last_summaries: BTreeSet<String>,
}

impl Simulator {
    /// Simulates `seconds` of traffic against the current cluster state.
    fn step(&mut self, seconds: f64) {
        let mut issues = Vec::new();
        let mut pods: Vec<PodView> = self
            .sources
            .pods
            .iter()
            .flat_map(Store::state)
            .filter_map(|p| model::pod_view(&p, &mut issues))
            .collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let services: Vec<ServiceView> = self
            .sources
            .services
            .iter()
            .flat_map(Store::state)
            .filter_map(|s| model::service_view(&s, &mut issues))
            .collect();
        let routes: Vec<RouteView> = self
            .sources
            .routes
            .get()
            .map(|stores| {
                stores
                    .iter()
                    .flat_map(Store::state)
                    .filter_map(|r| model::route_view(&r, &mut issues))
                    .collect()
            })
            .unwrap_or_default();
        for issue in issues {
            if self.reported_issues.insert(issue.clone()) {
                warn!("{issue}");
            }
        }

        let entries = model::plan(&pods, &services, &routes);
        self.log_changes(&entries);
        let outcome = model::simulate_tick(&mut self.rng, &entries, &pods, seconds);
        let unrouted: Vec<(UnroutedKey, u64)> = outcome
            .unrouted
            .iter()
            .filter_map(|&(i, reason, n)| {
                entries.get(i).map(|e| {
                    let key = UnroutedKey {
                        namespace: e.namespace.clone(),
                        kind: e.kind,
                        name: e.name.clone(),
                        reason,
                    };
                    (key, n)
                })
            })
            .collect();
        self.telemetry.record_pods(&pods, &outcome.per_pod);
        self.telemetry.record(
            &model::ready_by_group(&pods),
            &model::by_group(&pods, &outcome.per_pod),
            &unrouted,
            unix_now(),
        );
    }

    /// Logs entry points that appeared, changed or went away since the last tick.
    fn log_changes(&mut self, entries: &[EntryPoint]) {
        let now: BTreeSet<String> = entries.iter().map(EntryPoint::summary).collect();
        if now != self.last_summaries {
            for gone in self.last_summaries.difference(&now) {
                debug!("entry point was: {gone}");
            }
            for new in now.difference(&self.last_summaries) {
                info!("entry point: {new}");
            }
            if now.is_empty() {
                info!("no entry points");
            }
            self.last_summaries = now;
        }
    }

    /// Waits for the initial lists, then steps every `tick` with the real elapsed time
    /// (so a late tick does not lose traffic). Runs until the task is aborted.
    async fn run(mut self, tick: Duration) {
        for s in &self.sources.pods {
            let _ = s.wait_until_ready().await;
        }
        for s in &self.sources.services {
            let _ = s.wait_until_ready().await;
        }
        if let Some(stores) = self.sources.routes.get() {
            for s in stores {
                let _ = s.wait_until_ready().await;
            }
        }
        info!("caches synced; simulating");
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            interval.tick().await;
            let now = Instant::now();
            // Cap a very late tick (e.g. after a suspended laptop) at 10 ticks of traffic.
            let elapsed = now.duration_since(last).min(tick * 10);
            last = now;
            self.step(elapsed.as_secs_f64());
        }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics(State(t): State<Arc<Telemetry>>) -> Response {
    match t.render_metrics() {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /stats`: JSON totals per namespace/workload/track.
async fn stats(State(t): State<Arc<Telemetry>>) -> Response {
    match t.stats_json() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    process::init_logging();

    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let scope: Scope = if args.all_namespaces {
        None
    } else {
        let mut nss = args.namespaces.clone();
        nss.sort();
        nss.dedup();
        Some(nss)
    };
    let client = Client::try_default().await?;
    let telemetry = Arc::new(Telemetry::new(seed)?);

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    info!(
        %addr,
        seed,
        tick = ?args.tick,
        namespaces = ?scope.as_deref().unwrap_or(&["<all>".to_string()]),
        "trafficsim started"
    );

    let sources = Sources {
        pods: apis::<Pod>(&client, &scope)
            .into_iter()
            .map(|(ns, api)| spawn_reflector("pod", ns, api))
            .collect(),
        services: apis::<Service>(&client, &scope)
            .into_iter()
            .map(|(ns, api)| spawn_reflector("service", ns, api))
            .collect(),
        routes: Arc::new(OnceLock::new()),
    };
    let routes_task = start_routes(&client, &scope, &sources.routes).await;
    let sim = Simulator {
        sources,
        telemetry: telemetry.clone(),
        rng: StdRng::seed_from_u64(seed),
        reported_issues: HashSet::new(),
        last_summaries: BTreeSet::new(),
    };
    let sim_task = tokio::spawn(sim.run(args.tick));

    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(telemetry);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
    });

    let result = tokio::select! {
        () = process::shutdown_signal() => {
            let _ = stop_tx.send(true);
            // Scrapers keep connections alive; do not wait for them for long.
            match tokio::time::timeout(Duration::from_secs(2), &mut server).await {
                Ok(Ok(Err(e))) => Err(e.into()),
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(Ok(()))) => Ok(()),
                Err(_) => {
                    server.abort();
                    Ok(())
                }
            }
        }
        res = &mut server => match res {
            Ok(Ok(())) => Err("HTTP server stopped".into()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        },
    };
    sim_task.abort();
    if let Some(task) = routes_task {
        task.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("100").is_err());
        assert!(parse_duration("0ms").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[test]
    fn cli_requires_a_scope_and_rejects_both() {
        assert!(Args::try_parse_from(["trafficsim"]).is_err());
        assert!(Args::try_parse_from(["trafficsim", "-n", "a", "-A"]).is_err());
        let a = Args::try_parse_from([
            "trafficsim",
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--tick",
            "250ms",
            "--seed",
            "5",
        ])
        .expect("valid args");
        assert_eq!(a.namespaces, ["a", "b"]);
        assert_eq!(a.tick, Duration::from_millis(250));
        assert_eq!(a.seed, Some(5));
        let a = Args::try_parse_from(["trafficsim", "--all-namespaces"]).expect("valid args");
        assert!(a.all_namespaces);
        assert_eq!(a.tick, Duration::from_millis(100));
    }

    #[test]
    fn crd_establishment() {
        let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
            "metadata": {"name": HTTPROUTE_CRD},
            "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
                     "names": {"plural": "httproutes", "kind": "HTTPRoute"}, "versions": []},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}
        }))
        .expect("crd");
        assert!(crd_established(&crd));
        let mut pending = crd.clone();
        pending.status = None;
        assert!(!crd_established(&pending));
    }
}
