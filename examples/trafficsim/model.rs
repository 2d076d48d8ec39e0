//! The pure part of the simulator: turning Kubernetes objects into views, finding the
//! entry points, and drawing requests and errors for one tick.
//!
//! Nothing here talks to the API server or keeps state between ticks, so every rule
//! (readiness, selectors, weights, workload/track naming) is unit-tested below.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use rand::Rng;
use rand_distr::{Binomial, Distribution, Poisson};
use serde::Serialize;

use crate::latency::{self, Buckets, DEFAULT_MEDIAN_SECONDS, LATENCY_ANNOTATION, parse_latency};

/// Pod annotation holding the fraction of requests that pod fails (`"0.05"` = 5%).
pub const ERROR_RATE_ANNOTATION: &str = "sim.rollguard.dev/error-rate";
/// Service or HTTPRoute annotation that makes it an entry point with this many requests
/// per second.
pub const RPS_ANNOTATION: &str = "sim.rollguard.dev/rps";
/// Pod label the operator sets to `canary` on the canary Deployment's pod template.
pub const ROLE_LABEL: &str = "rollguard.dev/role";
/// Pod label the Deployment controller appends (with a dash) to ReplicaSet names.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Which side of a rollout a pod serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    /// Any pod whose `rollguard.dev/role` label is not `canary`.
    Stable,
    /// A pod labelled `rollguard.dev/role: canary`.
    Canary,
}

impl Track {
    /// The value of the `track` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        }
    }

    /// The track of a pod with these labels.
    pub fn of(labels: &BTreeMap<String, String>) -> Self {
        if labels.get(ROLE_LABEL).map(String::as_str) == Some("canary") {
            Track::Canary
        } else {
            Track::Stable
        }
    }
}

/// The unit the metrics are reported by: one revision of one workload's track in one
/// namespace. Two canaries of one Deployment share a workload name (`<name>-canary`) but
/// never a revision, so a query can tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Namespace of the pods.
    pub namespace: String,
    /// Deployment name (see [`workload_of`]).
    pub workload: String,
    /// Stable or canary.
    pub track: Track,
    /// The pods' `pod-template-hash` label (empty without one): the revision they run.
    pub revision: String,
}

/// A ready pod, reduced to what the simulation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    /// Namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub name: String,
    /// Labels, matched against Service selectors.
    pub labels: BTreeMap<String, String>,
    /// Where its requests are counted.
    pub group: GroupKey,
    /// Probability that one request to this pod fails, in `[0, 1]`.
    pub error_rate: f64,
    /// Median latency of its requests, in seconds ([`crate::latency`]).
    pub latency: f64,
}

/// A Service, reduced to what the simulation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.selector`; `None` or empty selects no pods (as kube-proxy does without
    /// hand-made EndpointSlices).
    pub selector: Option<BTreeMap<String, String>>,
    /// Valid `sim.rollguard.dev/rps` annotation, if any.
    pub rps: Option<f64>,
}

/// One backendRef of an HTTPRoute rule.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendView {
    /// Namespace of the referent (the route's own when unset).
    pub namespace: String,
    /// Name of the referent.
    pub name: String,
    /// Weight, with the Gateway API default of 1 for a missing weight and 0 for a
    /// (schema-invalid) negative one.
    pub weight: u64,
    /// Whether the referent is a core Service (the only kind the simulator routes to).
    pub is_service: bool,
}

/// An HTTPRoute, reduced to what the simulation needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteView {
    /// Namespace of the route.
    pub namespace: String,
    /// Name of the route.
    pub name: String,
    /// Valid `sim.rollguard.dev/rps` annotation, if any.
    pub rps: Option<f64>,
    /// The backendRefs of the first rule (empty when there is no rule or no backendRef).
    pub backends: Vec<BackendView>,
}

/// Whether the Kubernetes kind an entry point came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// An annotated HTTPRoute (traffic split by backendRef weights).
    HttpRoute,
    /// An annotated Service (traffic split across its ready pods).
    Service,
}

impl EntryKind {
    /// The value of the `kind` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::HttpRoute => "httproute",
            EntryKind::Service => "service",
        }
    }
}

/// Why requests of an entry point reached no pod. A real gateway answers them with a 5xx
/// that no workload served; the simulator counts them separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnroutedReason {
    /// The route's first rule has no backendRefs (or the route has no rules).
    NoBackends,
    /// Every backendRef has weight 0.
    ZeroWeights,
    /// A backendRef names a Service that does not exist (or is not watched).
    BackendNotFound,
    /// A backendRef names something other than a core Service.
    UnsupportedBackend,
    /// The Service selects no ready pod.
    NoReadyPods,
}

impl UnroutedReason {
    /// The value of the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            UnroutedReason::NoBackends => "no_backends",
            UnroutedReason::ZeroWeights => "zero_weights",
            UnroutedReason::BackendNotFound => "backend_not_found",
            UnroutedReason::UnsupportedBackend => "unsupported_backend",
            UnroutedReason::NoReadyPods => "no_ready_pods",
        }
    }
}

/// Where one backend of an entry point sends its share.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Indices into the ready-pod slice the plan was made from.
    Pods(Vec<usize>),
    /// The share is lost, for this reason.
    Unrouted(UnroutedReason),
}

/// One weighted backend of an entry point.
#[derive(Clone, Debug, PartialEq)]
pub struct Backend {
    /// Name of the Service (for logs).
    pub name: String,
    /// Relative weight.
    pub weight: u64,
    /// Pods (or the reason there are none).
    pub target: Target,
}

/// A source of traffic: an annotated HTTPRoute or Service.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryPoint {
    /// Route or Service.
    pub kind: EntryKind,
    /// Namespace of the annotated object.
    pub namespace: String,
    /// Name of the annotated object.
    pub name: String,
    /// Requests per second.
    pub rps: f64,
    /// Weighted backends; a Service entry point has exactly one, of weight 1.
    pub backends: Vec<Backend>,
}

impl EntryPoint {
    /// A one-line description for logs, e.g.
    /// `httproute demo/web rps=100 -> web-stable(w=99, 3 pods) web-canary(w=1, 1 pods)`.
    pub fn summary(&self) -> String {
        let backends: Vec<String> = self
            .backends
            .iter()
            .map(|b| match &b.target {
                Target::Pods(p) => format!("{}(w={}, {} pods)", b.name, b.weight, p.len()),
                Target::Unrouted(r) => format!("{}(w={}, {})", b.name, b.weight, r.as_str()),
            })
            .collect();
        format!(
            "{} {}/{} rps={} -> {}",
            self.kind.as_str(),
            self.namespace,
            self.name,
            self.rps,
            if backends.is_empty() {
                "(no backends)".to_string()
            } else {
                backends.join(" ")
            }
        )
    }
}

/// The workload a pod belongs to: the name of its ReplicaSet owner without the
/// `-<pod-template-hash>` suffix (i.e. the Deployment), or the pod's own name when no
/// ReplicaSet owns it. A ReplicaSet whose name does not end in the pod's hash is used
/// as is.
pub fn workload_of(
    pod_name: &str,
    labels: &BTreeMap<String, String>,
    owners: &[OwnerReference],
) -> String {
    let replica_set = owners
        .iter()
        .find(|o| o.kind == "ReplicaSet" && o.controller == Some(true))
        .or_else(|| owners.iter().find(|o| o.kind == "ReplicaSet"));
    let Some(rs) = replica_set else {
        return pod_name.to_string();
    };
    match labels.get(POD_TEMPLATE_HASH_LABEL) {
        Some(hash) if !hash.is_empty() => rs
            .name
            .strip_suffix(hash.as_str())
            .and_then(|prefix| prefix.strip_suffix('-'))
            .filter(|prefix| !prefix.is_empty())
            .unwrap_or(&rs.name)
            .to_string(),
        _ => rs.name.clone(),
    }
}

/// Whether a Service selector selects a pod with these labels: every selector pair must
/// be present; an empty selector selects nothing.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Parses an error-rate annotation: a finite fraction in `[0, 1]`.
pub fn parse_error_rate(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a fraction between 0 and 1, got {value:?}"
        )),
    }
}

/// Parses an rps annotation: a finite, non-negative number.
pub fn parse_rps(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "expected a non-negative number of requests per second, got {value:?}"
        )),
    }
}

/// Reads and validates the rps annotation of an object; an invalid value is reported in
/// `issues` and the object is not an entry point.
fn rps_of(
    kind: &str,
    namespace: &str,
    name: &str,
    annotations: Option<&BTreeMap<String, String>>,
    issues: &mut Vec<String>,
) -> Option<f64> {
    let raw = annotations?.get(RPS_ANNOTATION)?;
    match parse_rps(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            issues.push(format!(
                "{kind} {namespace}/{name}: ignoring {RPS_ANNOTATION}: {e}"
            ));
            None
        }
    }
}

/// Whether a pod receives traffic: condition `Ready=True` and not being deleted.
pub fn pod_is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The view of a ready pod, or `None` when it is not ready (or has no name). An invalid
/// error-rate annotation counts as 0 and is reported in `issues`.
pub fn pod_view(pod: &Pod, issues: &mut Vec<String>) -> Option<PodView> {
    if !pod_is_ready(pod) {
        return None;
    }
    let name = pod.metadata.name.clone()?;
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    let error_rate = match pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ERROR_RATE_ANNOTATION))
    {
        None => 0.0,
        Some(raw) => parse_error_rate(raw).unwrap_or_else(|e| {
            issues.push(format!(
                "pod {namespace}/{name}: treating {ERROR_RATE_ANNOTATION} as 0: {e}"
            ));
            0.0
        }),
    };
    let latency = match pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LATENCY_ANNOTATION))
    {
        None => DEFAULT_MEDIAN_SECONDS,
        Some(raw) => parse_latency(raw).unwrap_or_else(|e| {
            issues.push(format!(
                "pod {namespace}/{name}: treating {LATENCY_ANNOTATION} as {}ms: {e}",
                DEFAULT_MEDIAN_SECONDS * 1000.0
            ));
            DEFAULT_MEDIAN_SECONDS
        }),
    };
    let group = GroupKey {
        namespace: namespace.clone(),
        workload: workload_of(&name, &labels, owners),
        track: Track::of(&labels),
        revision: labels
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .unwrap_or_default(),
    };
    Some(PodView {
        namespace,
        name,
        labels,
        group,
        error_rate,
        latency,
    })
}

/// The view of a Service (`None` without a name).
pub fn service_view(svc: &Service, issues: &mut Vec<String>) -> Option<ServiceView> {
    let name = svc.metadata.name.clone()?;
    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let rps = rps_of(
        "service",
        &namespace,
        &name,
        svc.metadata.annotations.as_ref(),
        issues,
    );
    let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
    Some(ServiceView {
        namespace,
        name,
        selector,
        rps,
    })
}

/// The view of an HTTPRoute (`None` without a name): its rps annotation and its first
/// rule's backendRefs.
pub fn route_view(route: &HttpRoute, issues: &mut Vec<String>) -> Option<RouteView> {
    let name = route.metadata.name.clone()?;
    let namespace = route.metadata.namespace.clone().unwrap_or_default();
    let rps = rps_of(
        "httproute",
        &namespace,
        &name,
        route.metadata.annotations.as_ref(),
        issues,
    );
    let backends = route
        .spec
        .rules
        .as_ref()
        .and_then(|rules| rules.first())
        .and_then(|rule| rule.backend_refs.as_ref())
        .map(|refs| {
            refs.iter()
                .map(|r| BackendView {
                    namespace: r.namespace.clone().unwrap_or_else(|| namespace.clone()),
                    name: r.name.clone(),
                    // Missing weight = 1 (Gateway API default); negative is invalid = 0.
                    weight: r.weight.map_or(1, |w| u64::try_from(w).unwrap_or(0)),
                    is_service: r.group.as_deref().unwrap_or("").is_empty()
                        && r.kind.as_deref().unwrap_or("Service") == "Service",
                })
                .collect()
        })
        .unwrap_or_default();
    Some(RouteView {
        namespace,
        name,
        rps,
        backends,
    })
}

/// Finds the entry points and resolves their backends to ready pods.
///
/// * An HTTPRoute with an rps annotation is an entry point through its first rule's
///   backendRefs.
/// * A Service with an rps annotation is an entry point over all ready pods it selects,
///   unless an annotated HTTPRoute names it — directly, or as the `<svc>-stable` /
///   `<svc>-canary` pair the operator creates for the gatewayAPI router (otherwise the
///   user's Service would start sending traffic of its own when the operator rewrites
///   the route to the pair).
///
/// `pods` must hold ready pods only; the result is ordered by namespace, kind and name so
/// that a seed gives the same draws for the same cluster state.
pub fn plan(pods: &[PodView], services: &[ServiceView], routes: &[RouteView]) -> Vec<EntryPoint> {
    let by_name: HashMap<(&str, &str), &ServiceView> = services
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
        .collect();
    // Pods by namespace, so a Service looks only at its own namespace's pods: with a
    // thousand Services and a few thousand pods, scanning every pod for every Service
    // each tick took longer than the tick.
    let mut in_namespace: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pods.iter().enumerate() {
        in_namespace
            .entry(p.namespace.as_str())
            .or_default()
            .push(i);
    }
    let select = |svc: &ServiceView| -> Vec<usize> {
        let Some(selector) = svc.selector.as_ref() else {
            return Vec::new();
        };
        in_namespace
            .get(svc.namespace.as_str())
            .map(|idx| {
                idx.iter()
                    .copied()
                    .filter(|&i| selector_matches(selector, &pods[i].labels))
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut entries = Vec::new();
    let mut behind_route: BTreeSet<(&str, &str)> = BTreeSet::new();
    for route in routes {
        let Some(rps) = route.rps else { continue };
        let mut backends = Vec::with_capacity(route.backends.len());
        for b in &route.backends {
            let target = if !b.is_service {
                Target::Unrouted(UnroutedReason::UnsupportedBackend)
            } else {
                behind_route.insert((&b.namespace, &b.name));
                for suffix in ["-stable", "-canary"] {
                    if let Some(base) = b.name.strip_suffix(suffix) {
                        behind_route.insert((&b.namespace, base));
                    }
                }
                match by_name.get(&(b.namespace.as_str(), b.name.as_str())) {
                    None => Target::Unrouted(UnroutedReason::BackendNotFound),
                    Some(svc) => match select(svc) {
                        p if p.is_empty() => Target::Unrouted(UnroutedReason::NoReadyPods),
                        p => Target::Pods(p),
                    },
                }
            };
            backends.push(Backend {
                name: b.name.clone(),
                weight: b.weight,
                target,
            });
        }
        entries.push(EntryPoint {
            kind: EntryKind::HttpRoute,
            namespace: route.namespace.clone(),
            name: route.name.clone(),
            rps,
            backends,
        });
    }
    for svc in services {
        let Some(rps) = svc.rps else { continue };
        if behind_route.contains(&(svc.namespace.as_str(), svc.name.as_str())) {
            continue;
        }
        let target = match select(svc) {
            p if p.is_empty() => Target::Unrouted(UnroutedReason::NoReadyPods),
            p => Target::Pods(p),
        };
        entries.push(EntryPoint {
            kind: EntryKind::Service,
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            rps,
            backends: vec![Backend {
                name: svc.name.clone(),
                weight: 1,
                target,
            }],
        });
    }
    entries.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    entries
}

/// Draws from Binomial(n, p); `p` outside `(0, 1)` (or NaN) is clamped.
pub fn binomial<R: Rng + ?Sized>(rng: &mut R, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    // p is in (0, 1), which Binomial::new always accepts.
    Binomial::new(n, p).map_or(0, |d| d.sample(rng))
}

/// Draws from Poisson(lambda); a non-positive or non-finite lambda gives 0 and one
/// above [`Poisson::MAX_LAMBDA`] is clamped.
pub fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> u64 {
    if !lambda.is_finite() || lambda <= 0.0 {
        return 0;
    }
    let lambda = lambda.min(Poisson::<f64>::MAX_LAMBDA);
    // The sample is a non-negative integer-valued float below 2^64.
    Poisson::new(lambda).map_or(0, |d| d.sample(rng) as u64)
}

/// Splits `n` requests across buckets in proportion to `weights` (a multinomial draw by
/// sequential binomials). Buckets of weight 0 get nothing; if every weight is 0 nothing
/// is assigned, so the caller sees `n - sum` requests left over.
pub fn split_weighted<R: Rng + ?Sized>(rng: &mut R, n: u64, weights: &[u64]) -> Vec<u64> {
    let mut out = vec![0; weights.len()];
    let mut remaining_n = n;
    let mut remaining_w = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    for (slot, &w) in out.iter_mut().zip(weights) {
        if remaining_n == 0 || remaining_w == 0 {
            break;
        }
        if w == 0 {
            continue;
        }
        let k = if w >= remaining_w {
            remaining_n
        } else {
            binomial(rng, remaining_n, w as f64 / remaining_w as f64)
        };
        *slot = k;
        remaining_n -= k;
        remaining_w -= w;
    }
    out
}

/// Where the requests of one entry point went in one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routed {
    /// `(pod index, requests)` for every pod that got at least one request.
    pub to_pods: Vec<(usize, u64)>,
    /// Requests that reached no pod, by reason.
    pub unrouted: Vec<(UnroutedReason, u64)>,
}

/// Splits `n` requests of one entry point: first by backend weight, then uniformly
/// across each backend's ready pods.
pub fn route_requests<R: Rng + ?Sized>(rng: &mut R, entry: &EntryPoint, n: u64) -> Routed {
    let mut routed = Routed::default();
    if n == 0 {
        return routed;
    }
    if entry.backends.is_empty() {
        routed.unrouted.push((UnroutedReason::NoBackends, n));
        return routed;
    }
    let weights: Vec<u64> = entry.backends.iter().map(|b| b.weight).collect();
    let shares = split_weighted(rng, n, &weights);
    let assigned: u64 = shares.iter().sum();
    if assigned < n {
        routed
            .unrouted
            .push((UnroutedReason::ZeroWeights, n - assigned));
    }
    for (backend, share) in entry.backends.iter().zip(shares) {
        if share == 0 {
            continue;
        }
        match &backend.target {
            Target::Unrouted(reason) => routed.unrouted.push((*reason, share)),
            Target::Pods(pods) => {
                let per_pod = split_weighted(rng, share, &vec![1; pods.len()]);
                routed
                    .to_pods
                    .extend(pods.iter().copied().zip(per_pod).filter(|&(_, k)| k > 0));
            }
        }
    }
    routed
}

/// Requests and errors served, and how long they took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// All requests (200 + 500).
    pub requests: u64,
    /// Requests answered 500.
    pub errors: u64,
    /// The successful requests' latency histogram.
    pub ok_latency: Buckets,
    /// The failed requests' latency histogram.
    pub error_latency: Buckets,
}

impl Default for Served {
    fn default() -> Self {
        Served {
            requests: 0,
            errors: 0,
            ok_latency: latency::NONE,
            error_latency: latency::NONE,
        }
    }
}

impl Served {
    /// Both codes' latency histogram.
    pub fn latency(&self) -> Buckets {
        let mut all = self.ok_latency;
        latency::add(&mut all, &self.error_latency);
        all
    }
}

/// Everything that happened in one tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    /// Requests and errors per pod, indexed like the pod slice.
    pub per_pod: Vec<Served>,
    /// `(entry index, reason, requests)` for requests that reached no pod.
    pub unrouted: Vec<(usize, UnroutedReason, u64)>,
}

/// Simulates `seconds` of traffic: Poisson(rps × seconds) requests per entry point,
/// routed by [`route_requests`], each pod failing Binomial(requests, error rate) of them.
pub fn simulate_tick<R: Rng + ?Sized>(
    rng: &mut R,
    entries: &[EntryPoint],
    pods: &[PodView],
    seconds: f64,
) -> TickOutcome {
    let mut outcome = TickOutcome {
        per_pod: vec![Served::default(); pods.len()],
        unrouted: Vec::new(),
    };
    for (i, entry) in entries.iter().enumerate() {
        let n = poisson(rng, entry.rps * seconds);
        let routed = route_requests(rng, entry, n);
        for (pod, k) in routed.to_pods {
            if let Some(s) = outcome.per_pod.get_mut(pod) {
                s.requests += k;
            }
        }
        outcome
            .unrouted
            .extend(routed.unrouted.into_iter().map(|(r, k)| (i, r, k)));
    }
    for (served, pod) in outcome.per_pod.iter_mut().zip(pods) {
        served.errors = binomial(rng, served.requests, pod.error_rate);
        served.ok_latency = latency::draw(rng, served.requests - served.errors, pod.latency);
        served.error_latency = latency::draw(rng, served.errors, pod.latency);
    }
    outcome
}

/// Sums a tick's per-pod outcome by workload/track.
pub fn by_group(pods: &[PodView], per_pod: &[Served]) -> BTreeMap<GroupKey, Served> {
    let mut out: BTreeMap<GroupKey, Served> = BTreeMap::new();
    for (pod, s) in pods.iter().zip(per_pod) {
        if s.requests > 0 {
            let e = out.entry(pod.group.clone()).or_default();
            e.requests += s.requests;
            e.errors += s.errors;
            latency::add(&mut e.ok_latency, &s.ok_latency);
            latency::add(&mut e.error_latency, &s.error_latency);
        }
    }
    out
}

/// Counts ready pods by workload/track.
pub fn ready_by_group(pods: &[PodView]) -> BTreeMap<GroupKey, u64> {
    let mut out = BTreeMap::new();
    for p in pods {
        *out.entry(p.group.clone()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rs_owner(name: &str) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: name.into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// A pod as the Deployment controller + kwok would produce it.
    fn pod_json(
        ns: &str,
        name: &str,
        rs: Option<&str>,
        lbls: &[(&str, &str)],
        ready: &str,
        error_rate: Option<&str>,
    ) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = error_rate {
            annotations.insert(ERROR_RATE_ANNOTATION.into(), json!(r));
        }
        let owners: Vec<_> = rs
            .map(|rs| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "x", "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "labels": labels(lbls),
                         "annotations": annotations, "ownerReferences": owners},
            "status": {"phase": "Running", "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": ready}
            ]}
        }))
        .expect("valid pod")
    }

    fn svc_json(ns: &str, name: &str, selector: &[(&str, &str)], rps: Option<&str>) -> Service {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = rps {
            annotations.insert(RPS_ANNOTATION.into(), json!(r));
        }
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name, "annotations": annotations},
            "spec": {"selector": labels(selector), "ports": [{"port": 80}]}
        }))
        .expect("valid service")
    }

    fn route_json(ns: &str, name: &str, rps: Option<&str>, refs: serde_json::Value) -> HttpRoute {
        let mut annotations = serde_json::Map::new();
        if let Some(r) = rps {
            annotations.insert(RPS_ANNOTATION.into(), json!(r));
        }
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"namespace": ns, "name": name, "annotations": annotations},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs}, {"backendRefs": [{"name": "other", "port": 80}]}]}
        }))
        .expect("valid route")
    }

    fn view(p: &Pod) -> PodView {
        pod_view(p, &mut Vec::new()).expect("ready pod")
    }

    // ---- workload / track derivation ----

    #[test]
    fn workload_strips_pod_template_hash_of_rs_owner() {
        let l = labels(&[("pod-template-hash", "5d8f7c9b6")]);
        assert_eq!(
            workload_of("web-5d8f7c9b6-abcde", &l, &[rs_owner("web-5d8f7c9b6")]),
            "web"
        );
        assert_eq!(
            workload_of(
                "web-canary-7f9-xyz",
                &labels(&[("pod-template-hash", "7f9")]),
                &[rs_owner("web-canary-7f9")]
            ),
            "web-canary"
        );
    }

    #[test]
    fn workload_keeps_rs_name_without_matching_hash() {
        assert_eq!(
            workload_of("p", &labels(&[]), &[rs_owner("plain-rs")]),
            "plain-rs"
        );
        let l = labels(&[("pod-template-hash", "abc")]);
        assert_eq!(workload_of("p", &l, &[rs_owner("rs-xyz")]), "rs-xyz");
        // a name that *is* the hash does not become empty
        assert_eq!(workload_of("p", &l, &[rs_owner("abc")]), "abc");
        assert_eq!(workload_of("p", &l, &[rs_owner("-abc")]), "-abc");
    }

    #[test]
    fn workload_without_rs_owner_is_pod_name() {
        let sts = OwnerReference {
            kind: "StatefulSet".into(),
            ..rs_owner("db")
        };
        assert_eq!(workload_of("db-0", &labels(&[]), &[sts]), "db-0");
        assert_eq!(workload_of("lonely", &labels(&[]), &[]), "lonely");
    }

    #[test]
    fn workload_prefers_controller_owner() {
        let mut other = rs_owner("a-h1");
        other.controller = None;
        let l = labels(&[("pod-template-hash", "h2")]);
        assert_eq!(workload_of("p", &l, &[other, rs_owner("b-h2")]), "b");
    }

    #[test]
    fn track_from_role_label() {
        assert_eq!(Track::of(&labels(&[(ROLE_LABEL, "canary")])), Track::Canary);
        assert_eq!(Track::of(&labels(&[(ROLE_LABEL, "stable")])), Track::Stable);
        assert_eq!(Track::of(&labels(&[(ROLE_LABEL, "Canary")])), Track::Stable);
        assert_eq!(Track::of(&labels(&[("role", "canary")])), Track::Stable);
        assert_eq!(Track::of(&labels(&[])), Track::Stable);
    }

    #[test]
    fn pod_view_derives_group_and_error_rate() {
        let p = pod_json(
            "ns",
            "web-canary-7f9-q",
            Some("web-canary-7f9"),
            &[
                ("app", "web"),
                ("pod-template-hash", "7f9"),
                (ROLE_LABEL, "canary"),
            ],
            "True",
            Some("0.05"),
        );
        let v = view(&p);
        assert_eq!(
            v.group,
            GroupKey {
                namespace: "ns".into(),
                workload: "web-canary".into(),
                track: Track::Canary,
                revision: "7f9".into(),
            }
        );
        assert_eq!(v.error_rate, 0.05);
    }

    #[test]
    fn pod_readiness() {
        let ready = pod_json("ns", "a", None, &[], "True", None);
        assert!(pod_is_ready(&ready));
        assert_eq!(view(&ready).error_rate, 0.0);
        assert!(!pod_is_ready(&pod_json(
            "ns",
            "a",
            None,
            &[],
            "False",
            None
        )));
        let mut terminating = ready.clone();
        terminating.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2024-01-01T00:00:00Z")).expect("time"));
        assert!(!pod_is_ready(&terminating));
        let mut no_status = ready.clone();
        no_status.status = None;
        assert!(!pod_is_ready(&no_status));
        assert!(pod_view(&no_status, &mut Vec::new()).is_none());
    }

    #[test]
    fn invalid_annotations_are_reported_and_ignored() {
        let mut issues = Vec::new();
        let p = pod_json("ns", "a", None, &[], "True", Some("5%"));
        assert_eq!(pod_view(&p, &mut issues).map(|v| v.error_rate), Some(0.0));
        let p = pod_json("ns", "b", None, &[], "True", Some("1.5"));
        assert_eq!(pod_view(&p, &mut issues).map(|v| v.error_rate), Some(0.0));
        let s = svc_json("ns", "s", &[("a", "b")], Some("-3"));
        assert_eq!(service_view(&s, &mut issues).and_then(|v| v.rps), None);
        assert_eq!(issues.len(), 3, "{issues:?}");
        assert_eq!(parse_rps(" 12.5 "), Ok(12.5));
        assert!(parse_rps("NaN").is_err());
        assert!(parse_rps("inf").is_err());
        assert_eq!(parse_error_rate("1"), Ok(1.0));
    }

    // ---- selectors ----

    #[test]
    fn selector_matching() {
        let pod = labels(&[("app", "web"), ("tier", "fe"), (ROLE_LABEL, "canary")]);
        assert!(selector_matches(&labels(&[("app", "web")]), &pod));
        assert!(selector_matches(
            &labels(&[("app", "web"), ("tier", "fe")]),
            &pod
        ));
        assert!(!selector_matches(
            &labels(&[("app", "web"), ("tier", "be")]),
            &pod
        ));
        assert!(!selector_matches(&labels(&[("app", "api")]), &pod));
        assert!(!selector_matches(&labels(&[("missing", "x")]), &pod));
        assert!(
            !selector_matches(&labels(&[]), &pod),
            "empty selector selects nothing"
        );
        assert!(selector_matches(&labels(&[(ROLE_LABEL, "canary")]), &pod));
    }

    #[test]
    fn service_entry_selects_ready_pods_in_its_namespace_only() {
        let pods: Vec<PodView> = [
            pod_json("a", "web-1", None, &[("app", "web")], "True", None),
            pod_json("a", "web-2", None, &[("app", "web")], "True", None),
            pod_json("a", "web-3", None, &[("app", "web")], "False", None),
            pod_json("b", "web-4", None, &[("app", "web")], "True", None),
            pod_json("a", "api-1", None, &[("app", "api")], "True", None),
        ]
        .iter()
        .filter_map(|p| pod_view(p, &mut Vec::new()))
        .collect();
        let services = vec![
            service_view(
                &svc_json("a", "web", &[("app", "web")], Some("10")),
                &mut Vec::new(),
            )
            .expect("svc"),
            service_view(
                &svc_json("a", "api", &[("app", "api")], None),
                &mut Vec::new(),
            )
            .expect("svc"),
        ];
        let entries = plan(&pods, &services, &[]);
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(
            (e.kind, e.name.as_str(), e.rps),
            (EntryKind::Service, "web", 10.0)
        );
        let Target::Pods(idx) = &e.backends[0].target else {
            panic!("expected pods, got {:?}", e.backends[0].target)
        };
        let names: Vec<&str> = idx.iter().map(|&i| pods[i].name.as_str()).collect();
        assert_eq!(names, ["web-1", "web-2"]);
    }

    #[test]
    fn service_without_selector_or_pods_is_unrouted() {
        let mut svc =
            service_view(&svc_json("a", "web", &[], Some("10")), &mut Vec::new()).expect("svc");
        svc.selector = None;
        let entries = plan(&[], &[svc], &[]);
        assert_eq!(
            entries[0].backends[0].target,
            Target::Unrouted(UnroutedReason::NoReadyPods)
        );
    }

    // ---- routes & weights ----

    #[test]
    fn route_view_reads_first_rule_with_default_weight_one() {
        let r = route_json(
            "ns",
            "web",
            Some("100"),
            json!([
                {"name": "web-stable", "port": 80},
                {"name": "web-canary", "port": 80, "weight": 0},
                {"name": "x", "namespace": "other", "port": 80, "weight": 7},
                {"name": "neg", "port": 80, "weight": -2},
                {"name": "gw", "group": "example.com", "kind": "Backend", "weight": 3},
                {"name": "svc", "group": "", "kind": "Service", "weight": 4}
            ]),
        );
        let v = route_view(&r, &mut Vec::new()).expect("route");
        assert_eq!(v.rps, Some(100.0));
        let got: Vec<(&str, &str, u64, bool)> = v
            .backends
            .iter()
            .map(|b| {
                (
                    b.namespace.as_str(),
                    b.name.as_str(),
                    b.weight,
                    b.is_service,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ns", "web-stable", 1, true),
                ("ns", "web-canary", 0, true),
                ("other", "x", 7, true),
                ("ns", "neg", 0, true),
                ("ns", "gw", 3, false),
                ("ns", "svc", 4, true),
            ]
        );
    }

    #[test]
    fn route_without_rules_has_no_backends() {
        let mut r = route_json("ns", "web", Some("1"), json!([]));
        r.spec.rules = None;
        assert!(
            route_view(&r, &mut Vec::new())
                .expect("route")
                .backends
                .is_empty()
        );
    }

    #[test]
    fn split_weighted_edge_cases() {
        let mut rng = fuzz::rng(1);
        assert_eq!(split_weighted(&mut rng, 1000, &[0, 5]), [0, 1000]);
        assert_eq!(split_weighted(&mut rng, 1000, &[5, 0]), [1000, 0]);
        assert_eq!(split_weighted(&mut rng, 1000, &[0, 0]), [0, 0]);
        assert_eq!(split_weighted(&mut rng, 1000, &[]), Vec::<u64>::new());
        assert_eq!(split_weighted(&mut rng, 0, &[1, 1]), [0, 0]);
        assert_eq!(split_weighted(&mut rng, 7, &[3]), [7]);
        let s = split_weighted(&mut rng, 1000, &[1, 0, 1]);
        assert_eq!(s[1], 0);
        assert_eq!(s[0] + s[2], 1000);
        // huge weights do not overflow
        let s = split_weighted(&mut rng, 1000, &[u64::MAX, u64::MAX]);
        assert_eq!(s.iter().sum::<u64>(), 1000);
    }

    fn gateway_fixture(weights: serde_json::Value) -> (Vec<PodView>, Vec<EntryPoint>) {
        let mut pods = Vec::new();
        for i in 0..3 {
            pods.push(view(&pod_json(
                "ns",
                &format!("web-aaa-{i}"),
                Some("web-aaa"),
                &[("app", "web"), ("pod-template-hash", "aaa")],
                "True",
                Some("0.001"),
            )));
        }
        pods.push(view(&pod_json(
            "ns",
            "web-canary-bbb-0",
            Some("web-canary-bbb"),
            &[
                ("app", "web"),
                ("pod-template-hash", "bbb"),
                (ROLE_LABEL, "canary"),
            ],
            "True",
            Some("0.05"),
        )));
        let mut issues = Vec::new();
        let services: Vec<ServiceView> = [
            svc_json("ns", "web", &[("app", "web")], Some("5")),
            svc_json(
                "ns",
                "web-stable",
                &[("app", "web"), ("pod-template-hash", "aaa")],
                None,
            ),
            svc_json(
                "ns",
                "web-canary",
                &[("app", "web"), (ROLE_LABEL, "canary")],
                None,
            ),
        ]
        .iter()
        .filter_map(|s| service_view(s, &mut issues))
        .collect();
        let routes = vec![
            route_view(
                &route_json("ns", "web", Some("10000"), weights),
                &mut issues,
            )
            .expect("route"),
        ];
        assert!(issues.is_empty(), "{issues:?}");
        let entries = plan(&pods, &services, &routes);
        (pods, entries)
    }

    #[test]
    fn services_behind_an_annotated_route_are_not_entry_points() {
        let (_, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 99},
            {"name": "web-canary", "port": 80, "weight": 1}
        ]));
        // `web` is annotated but the route names web-stable/web-canary: only the route.
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0].kind, EntryKind::HttpRoute);
        assert_eq!(
            entries[0].summary(),
            "httproute ns/web rps=10000 -> web-stable(w=99, 3 pods) web-canary(w=1, 1 pods)"
        );
    }

    #[test]
    fn route_naming_the_service_directly_hides_it_and_unannotated_route_does_not() {
        let pods = vec![view(&pod_json(
            "ns",
            "p",
            None,
            &[("app", "web")],
            "True",
            None,
        ))];
        let mut issues = Vec::new();
        let services = vec![
            service_view(
                &svc_json("ns", "web", &[("app", "web")], Some("5")),
                &mut issues,
            )
            .expect("svc"),
        ];
        let direct = json!([{"name": "web", "port": 80}]);
        let annotated = route_view(
            &route_json("ns", "r", Some("7"), direct.clone()),
            &mut issues,
        )
        .expect("route");
        let entries = plan(&pods, &services, &[annotated]);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            (entries[0].kind, entries[0].rps),
            (EntryKind::HttpRoute, 7.0)
        );

        let plain = route_view(&route_json("ns", "r", None, direct), &mut issues).expect("route");
        let entries = plan(&pods, &services, &[plain]);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].kind, entries[0].rps), (EntryKind::Service, 5.0));
    }

    #[test]
    fn unresolved_backends_are_unrouted_with_reason() {
        let (_, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 1},
            {"name": "missing", "port": 80, "weight": 1},
            {"name": "b", "group": "example.com", "kind": "Backend", "weight": 1}
        ]));
        let targets: Vec<&Target> = entries[0].backends.iter().map(|b| &b.target).collect();
        assert!(matches!(targets[0], Target::Pods(p) if p.len() == 3));
        assert_eq!(
            targets[1],
            &Target::Unrouted(UnroutedReason::BackendNotFound)
        );
        assert_eq!(
            targets[2],
            &Target::Unrouted(UnroutedReason::UnsupportedBackend)
        );

        let mut rng = fuzz::rng(3);
        let r = route_requests(&mut rng, &entries[0], 30_000);
        let to_pods: u64 = r.to_pods.iter().map(|&(_, k)| k).sum();
        let lost: BTreeMap<UnroutedReason, u64> = r.unrouted.iter().copied().collect();
        assert_eq!(to_pods + lost.values().sum::<u64>(), 30_000);
        for k in [
            to_pods,
            lost[&UnroutedReason::BackendNotFound],
            lost[&UnroutedReason::UnsupportedBackend],
        ] {
            // each a third: mean 10000, sd ~81.6
            assert!((k as f64 - 10_000.0).abs() < 4.0 * 81.65, "{k}");
        }
    }

    #[test]
    fn all_zero_weights_route_nothing() {
        let (_, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 0},
            {"name": "web-canary", "port": 80, "weight": 0}
        ]));
        let mut rng = fuzz::rng(4);
        let r = route_requests(&mut rng, &entries[0], 500);
        assert!(r.to_pods.is_empty());
        assert_eq!(r.unrouted, [(UnroutedReason::ZeroWeights, 500)]);
    }

    #[test]
    fn zero_weight_canary_gets_no_traffic_and_missing_weights_split_evenly() {
        let (pods, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0}
        ]));
        let mut rng = fuzz::rng(5);
        let out = simulate_tick(&mut rng, &entries, &pods, 10.0);
        assert_eq!(
            out.per_pod[3].requests, 0,
            "canary must get nothing at weight 0"
        );
        assert!(out.unrouted.is_empty());

        let (pods, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80},
            {"name": "web-canary", "port": 80}
        ]));
        let out = simulate_tick(&mut rng, &entries, &pods, 10.0);
        let total: u64 = out.per_pod.iter().map(|s| s.requests).sum();
        let canary = out.per_pod[3].requests as f64;
        let sd = (total as f64 * 0.25).sqrt();
        assert!(
            (canary - total as f64 / 2.0).abs() < 4.0 * sd,
            "{canary} of {total}"
        );
    }

    // ---- statistics ----

    /// |x - mean| < 4 sd for a Binomial(n, p) draw x.
    fn within_4_sigma(x: u64, n: u64, p: f64) -> bool {
        let mean = n as f64 * p;
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (x as f64 - mean).abs() < 4.0 * sd
    }

    #[test]
    fn split_and_errors_are_within_4_sigma() {
        let (pods, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 99},
            {"name": "web-canary", "port": 80, "weight": 1}
        ]));
        for seed in 0..10u64 {
            let mut rng = fuzz::rng(seed);
            // 100 ticks of 100 ms at 10k rps: Poisson with mean 100k in total.
            let mut per_pod = vec![Served::default(); pods.len()];
            for _ in 0..100 {
                let out = simulate_tick(&mut rng, &entries, &pods, 0.1);
                assert!(out.unrouted.is_empty());
                for (acc, s) in per_pod.iter_mut().zip(&out.per_pod) {
                    acc.requests += s.requests;
                    acc.errors += s.errors;
                }
            }
            let total: u64 = per_pod.iter().map(|s| s.requests).sum();
            assert!(
                (total as f64 - 100_000.0).abs() < 4.0 * 100_000f64.sqrt(),
                "seed {seed}: total {total}"
            );
            let groups = by_group(&pods, &per_pod);
            let canary = groups
                .iter()
                .find(|(k, _)| k.track == Track::Canary)
                .map(|(_, s)| *s)
                .unwrap_or_default();
            let stable = groups
                .iter()
                .find(|(k, _)| k.track == Track::Stable && k.workload == "web")
                .map(|(_, s)| *s)
                .unwrap_or_default();
            assert_eq!(canary.requests + stable.requests, total);
            // canary share 1% (sd ~31 of ~1000): a share computed any other way fails.
            assert!(
                within_4_sigma(canary.requests, total, 0.01),
                "seed {seed}: canary {} of {total}",
                canary.requests
            );
            assert!(
                within_4_sigma(canary.errors, canary.requests, 0.05),
                "seed {seed}: canary errors {} of {}",
                canary.errors,
                canary.requests
            );
            assert!(
                within_4_sigma(stable.errors, stable.requests, 0.001),
                "seed {seed}: stable errors {} of {}",
                stable.errors,
                stable.requests
            );
            // stable traffic is even across its 3 pods
            for s in &per_pod[..3] {
                assert!(
                    within_4_sigma(s.requests, stable.requests, 1.0 / 3.0),
                    "seed {seed}: pod {} of {}",
                    s.requests,
                    stable.requests
                );
            }
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let (pods, entries) = gateway_fixture(json!([
            {"name": "web-stable", "port": 80, "weight": 99},
            {"name": "web-canary", "port": 80, "weight": 1}
        ]));
        let a = simulate_tick(&mut fuzz::rng(42), &entries, &pods, 1.0);
        let b = simulate_tick(&mut fuzz::rng(42), &entries, &pods, 1.0);
        let c = simulate_tick(&mut fuzz::rng(43), &entries, &pods, 1.0);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn poisson_and_binomial_edges() {
        let mut rng = fuzz::rng(9);
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(poisson(&mut rng, -1.0), 0);
        assert_eq!(poisson(&mut rng, f64::NAN), 0);
        assert_eq!(poisson(&mut rng, f64::INFINITY), 0);
        assert_eq!(binomial(&mut rng, 10, 0.0), 0);
        assert_eq!(binomial(&mut rng, 10, 1.0), 10);
        assert_eq!(binomial(&mut rng, 10, f64::NAN), 0);
        assert_eq!(binomial(&mut rng, 0, 0.5), 0);
        let n: u64 = (0..1000).map(|_| poisson(&mut rng, 10.0)).sum();
        // sum of 1000 Poisson(10) is Poisson(10000): sd 100
        assert!((n as f64 - 10_000.0).abs() < 400.0, "{n}");
    }

    #[test]
    fn ready_pods_are_counted_by_group() {
        let (pods, _) = gateway_fixture(json!([]));
        let ready = ready_by_group(&pods);
        let counts: Vec<(&str, Track, u64)> = ready
            .iter()
            .map(|(k, &n)| (k.workload.as_str(), k.track, n))
            .collect();
        assert_eq!(
            counts,
            [("web", Track::Stable, 3), ("web-canary", Track::Canary, 1)]
        );
    }
}
