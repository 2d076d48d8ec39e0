//! `RolloutPolicy`: what platform teams write. It selects Deployments, names the traffic
//! router, says how to read the canary's error rate from Prometheus, and lists the risk
//! tiers a new revision is matched to. Validation that the API server can do lives here as
//! schema constraints and CEL rules, so a bad policy is refused before it is stored.

// kube's `printcolumn(...)` attributes repeat the same keys by design.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::quantity::{DURATION_PATTERN, PERCENT_PATTERN};

/// The one list of the variables a query template may use, in the order the docs list
/// them: the CEL rule, its message and [`TEMPLATE_VARIABLES`] are built from it (a unit test
/// keeps it equal to the renderer's `Variable::ALL`).
macro_rules! with_template_variables {
    ($then:ident) => {
        $then!(
            "namespace",
            "deployment",
            "canary",
            "stable",
            "workload",
            "track",
            "service",
            "route",
            "revision",
            "interval",
            "elapsed"
        )
    };
}

macro_rules! variable_list {
    ($($v:literal),+) => {
        &[$($v),+]
    };
}

/// `{{a}}, {{b}} or {{c}}`.
macro_rules! variables_for_people {
    ($a:literal, $b:literal) => {
        concat!("{{", $a, "}} or {{", $b, "}}")
    };
    ($first:literal, $($rest:literal),+) => {
        concat!("{{", $first, "}}, ", variables_for_people!($($rest),+))
    };
}

macro_rules! template_rule {
    ($first:literal $(, $rest:literal)*) => {
        concat!(
            r"self.matches('^(?:[^{]|\\{(?:[^{]|$)|\\{\\{\\s*(?:",
            $first,
            $("|", $rest,)*
            r")\\s*\\}\\})*$')"
        )
    };
}

/// The p0 a sequential tier assumes when it sets none: one source for the schema default and
/// the CEL rule that compares it with `maxErrorRate`.
macro_rules! default_p0 {
    () => {
        "0.1%"
    };
}

/// Variables a query template may use, in the order the docs list them.
pub const TEMPLATE_VARIABLES: &[&str] = with_template_variables!(variable_list);

/// A RolloutPolicy selects Deployments in its namespace and rolls every new revision of
/// them out as a canary in steps, sized by the risk tier the revision matches, rolling back
/// automatically when the canary's error rate in Prometheus says it is bad.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollguard.dev",
    version = "v1alpha1",
    kind = "RolloutPolicy",
    namespaced,
    status = "RolloutPolicyStatus",
    shortname = "rgp",
    category = "rollguard",
    doc = "RolloutPolicy selects Deployments and rolls each new revision out as a canary in risk-tiered steps, with automatic rollback on the Prometheus error rate.",
    printcolumn(name = "Router", type_ = "string", json_path = ".status.router"),
    printcolumn(
        name = "Governed",
        type_ = "integer",
        json_path = ".status.governedDeployments"
    ),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.activeRuns"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.tiers) || self.tiers.all(t, t.steps.all(s, duration(s.pause) >= duration(self.analysis.interval)))"
).message("every step's pause must be at least spec.analysis.interval, so each step gets at least one analysis sample").field_path(".tiers"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicySpec {
    /// Which Deployments in this namespace the policy governs. Must not be empty: an empty
    /// selector would govern every Deployment in the namespace.
    #[x_kube(validation = kube::core::Rule::new(
        "(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)"
    ).message("spec.selector must not be empty: give matchLabels or matchExpressions (an empty selector would govern every Deployment in the namespace)"))]
    pub selector: LabelSelector,

    /// How the canary's share of traffic is set. Exactly one router; `replicas` when omitted.
    #[serde(default)]
    pub traffic: TrafficSpec,

    /// How the canary's error rate is read from Prometheus and judged.
    pub analysis: AnalysisSpec,

    /// Risk tiers, tried in order; the first whose `match` accepts the new revision wins.
    /// The last tier must have no `match`, so every revision gets a tier. The order is also
    /// the order of strictness, strictest first: a change that replaces a run before its
    /// verdict (a re-tag of the change on trial, or a commit on top of it) never takes a tier
    /// later in this list than that run's. When omitted, the
    /// built-in tiers apply: `ai-assisted` (changes whose `rollguard.dev/change-origin` label
    /// or annotation is `ai-assisted` or `ai-generated`; slices 0.5%, 5%, 10%, 25%, 50%) and
    /// `standard` (10%, 50%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 10))]
    #[x_kube(validation = kube::core::Rule::new("self.all(t, self.exists_one(u, u.name == t.name))").message("spec.tiers: tier names must be unique"))]
    #[x_kube(validation = kube::core::Rule::new("!has(self[size(self) - 1].match)").message("spec.tiers: the last tier must have no match, so every revision gets a tier"))]
    #[x_kube(validation = kube::core::Rule::new("size(self) <= 1 || self.all(t, t.name == self[size(self) - 1].name || has(t.match))").message("spec.tiers: only the last tier may omit match; a tier without match catches every revision and would hide the tiers after it"))]
    pub tiers: Option<Vec<Tier>>,

    /// The origin a change is judged as when neither its pod template nor its Deployment
    /// carries `rollguard.dev/change-origin` (as a label or an annotation): for example
    /// `ai-generated`, so that a change of unknown origin takes the strict tier. When omitted,
    /// an untagged change matches only tiers that do not ask for the tag (usually the last).
    /// A tag that is present always wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub untagged_origin: Option<String>,

    /// How many finished RolloutRuns to keep per Deployment. A run with an approval is
    /// never pruned (it is the record of who approved what) and does not count here.
    #[serde(default = "default_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub history_limit: i32,

    /// Where to tell people about this policy's runs (started, step reached, approval
    /// needed, rolled back, promoted). Delivery never blocks or slows a run; a sink that
    /// cannot be used is reported in the `NotificationsReady` condition. See
    /// docs/operations/notifications.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(validation = kube::core::Rule::new("self.all(n, self.exists_one(m, m.name == n.name))").message("spec.notifications: sink names must be unique"))]
    pub notifications: Vec<super::notification::NotificationSink>,
}

fn default_history_limit() -> i32 {
    10
}

/// Exactly one traffic router.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.replicas) ? 1 : 0) + (has(self.gatewayAPI) ? 1 : 0) == 1"
).message("spec.traffic must name exactly one router: replicas or gatewayAPI"))]
#[serde(rename_all = "camelCase")]
pub struct TrafficSpec {
    /// Split by pod count: the canary's share is its pods over all pods behind the
    /// Deployment's Service. The stable pods are never touched, so the smallest share with
    /// R stable replicas is 1/(R+1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicasRouter>,
    /// Split by weight on a Gateway API HTTPRoute whose rule lists the backendRefs
    /// `<service>-stable` and `<service>-canary`; rollguard creates and pins those two
    /// Services and writes only their weights. Any slice down to 0.0001% is exact.
    #[serde(
        rename = "gatewayAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouter>,
}

impl Default for TrafficSpec {
    fn default() -> Self {
        TrafficSpec {
            replicas: Some(ReplicasRouter {}),
            gateway_api: None,
        }
    }
}

/// The replicas router has no settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ReplicasRouter {}

/// The Gateway API router. Routes are found, not configured: every HTTPRoute in the
/// namespace with a rule that references both `<service>-stable` and `<service>-canary` is
/// governed. The Deployment annotation `rollguard.dev/httproute` may name one route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct GatewayApiRouter {}

/// Reading and judging the canary's error rate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.preset) || (has(self.requests) && has(self.errors))").message("spec.analysis: give requests and errors, or a preset that fills them (istio, envoyGateway, linkerd, nginxGatewayFabricPlus, traefik, openTelemetry)"))]
pub struct AnalysisSpec {
    /// How often the queries run while a canary serves traffic, e.g. `15s`. At least 1s.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('1s')").message("spec.analysis.interval must be at least 1s"))]
    pub interval: String,

    /// Where Prometheus is. When omitted, the operator's `--prometheus-address` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,

    /// A common data plane whose metrics fill `requests` and `errors` ([`Preset`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,

    /// PromQL template for the number of requests the measured workload served since the
    /// canary started. Variables in `{{...}}`: namespace, deployment, canary, stable,
    /// workload, track, service, route, revision (the measured pods' `pod-template-hash`)
    /// (inside double-quoted strings; values are escaped) and interval, elapsed (range
    /// durations such as `[{{elapsed}}]`). Required without a preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::Rule::new(TEMPLATE_RULE).message(TEMPLATE_MESSAGE))]
    pub requests: Option<String>,

    /// PromQL template for the number of failed requests, with the same variables. Required
    /// without a preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::Rule::new(TEMPLATE_RULE).message(TEMPLATE_MESSAGE))]
    pub errors: Option<String>,

    /// More gates, judged every interval beside errors: each a PromQL template returning one
    /// number for the canary, with bounds (saturation, a business KPI, a custom SLI). A check
    /// outside its bounds more than its `failureLimit` times rolls the canary back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    #[x_kube(validation = kube::core::Rule::new("self.all(c, self.exists_one(d, d.name == c.name))").message("spec.analysis.checks: check names must be unique"))]
    pub checks: Vec<Check>,

    /// Where a tier's latency objective is read: a Prometheus histogram. A preset fills it
    /// (every preset but nginxGatewayFabricPlus, whose NGINX Plus exports no histogram);
    /// fields given here override the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,

    /// Requests the canary must have served before a threshold sample passes, and before a
    /// run may promote (a threshold sample may fail earlier, once its counts show the rate
    /// above maxErrorRate).
    #[serde(default = "default_min_requests")]
    #[schemars(range(min = 0))]
    pub min_requests: i64,

    /// What a sample without usable data (an empty result, NaN, or a query that failed)
    /// does: `hold` (the run waits, never promotes, and is `Stalled` after `noDataLimit` such
    /// samples in a row) or `rollback` (after `noDataLimit` such samples in a row).
    #[serde(default)]
    pub on_no_data: OnNoData,

    /// Consecutive samples without usable data (no data or a failed query) before `onNoData`
    /// applies: the deadline of blind analysis, in intervals.
    #[serde(default = "default_no_data_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub no_data_limit: i32,
}

/// A check: a number read from Prometheus for the canary and the bounds it must stay in.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.min) || has(self.max)").message("a check needs min, max or both"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.min) || !has(self.max) || self.min <= self.max").message("a check's min must not be above its max"))]
pub struct Check {
    /// The check's name, shown in the evidence and the rollback reason (lowercase letters,
    /// digits and dashes).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// PromQL template returning one number about the canary, with the same variables and
    /// rules as `requests` (e.g. `max(rate(container_cpu_usage_seconds_total{
    /// namespace="{{namespace}}",pod=~"{{workload}}-.*"}[{{interval}}]))`).
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::Rule::new(TEMPLATE_RULE).message(TEMPLATE_MESSAGE))]
    pub query: String,
    /// The lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Samples outside the bounds tolerated over the run; the next one rolls back.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,
}

/// A latency histogram in Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LatencySpec {
    /// PromQL template for the histogram's cumulative bucket counts over the same window as
    /// `requests`, one series per bound (`le`), e.g. `sum by (le) (increase(
    /// http_request_duration_seconds_bucket{namespace="{{namespace}}",
    /// workload="{{workload}}"}[{{elapsed}}]))`. The same variables and rules as `requests`.
    /// The `+Inf` bucket counts the requests; those above the objective's bucket are slow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::Rule::new(TEMPLATE_RULE).message(TEMPLATE_MESSAGE))]
    pub buckets: Option<String>,
    /// The unit of the histogram's bounds: `seconds` (Prometheus' convention) or
    /// `milliseconds` (Istio, Envoy, Linkerd). Defaults to the preset's unit, else seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<LatencyUnit>,
}

/// The unit of a latency histogram's `le` bounds.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum LatencyUnit {
    /// `le="0.5"` is half a second.
    #[default]
    Seconds,
    /// `le="500"` is half a second.
    Milliseconds,
}

/// CEL: every `{{...}}` in a template names a known variable (one linear regex, so the
/// rule stays within the API server's cost budget).
const TEMPLATE_RULE: &str = with_template_variables!(template_rule);
const TEMPLATE_MESSAGE: &str = concat!(
    "unknown template variable: use ",
    with_template_variables!(variables_for_people)
);

fn default_interval() -> String {
    "30s".into()
}
fn default_min_requests() -> i64 {
    100
}
fn default_no_data_limit() -> i32 {
    3
}

/// Connection to Prometheus.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.bearerTokenSecret) || !self.address.matches('^(?i:http)://') || (has(self.insecure) && self.insecure)"
).message("spec.analysis.prometheus.bearerTokenSecret would be sent over plain http://: use an https:// address, or set spec.analysis.prometheus.insecure: true to allow it"))]
pub struct PrometheusSpec {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`, or with a base path such as
    /// `https://gateway.example/prometheus/`: `http` or `https`, a host, an optional port
    /// and path; no credentials (`user:password@`), query (`?`) or fragment (`#`). The
    /// operator appends `/api/v1/query` to the path.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^(?i:https?)://')").message("spec.analysis.prometheus.address must start with http:// or https://"))]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('?')").message("spec.analysis.prometheus.address must not have a query (?...): give the base URL only; rollguard appends /api/v1/query"))]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('#')").message("spec.analysis.prometheus.address must not have a fragment (#...): give the base URL only"))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('^[^/]*//[^/]*@')").message("spec.analysis.prometheus.address must not contain credentials (user:password@): put a token in spec.analysis.prometheus.bearerTokenSecret"))]
    #[x_kube(validation = kube::core::Rule::new(r"!self.matches(r'[\s\\]')").message("spec.analysis.prometheus.address must not contain whitespace or backslashes"))]
    #[x_kube(validation = kube::core::Rule::new("isURL(self) && url(self).getHostname() != ''").message("spec.analysis.prometheus.address must be a URL with a host, e.g. http://prometheus.monitoring:9090"))]
    pub address: String,
    /// A Secret key in the policy's namespace holding a bearer token sent with every query.
    /// With an `http://` address, only when `insecure` is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<SecretKeyRef>,
    /// A Secret key in the policy's namespace holding a PEM CA bundle to verify Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
    /// Skip TLS verification. Off by default; for test clusters only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Send `bearerTokenSecret` over a plain `http://` address, where anyone on the network
    /// path can read it. Off by default: a token with an `http://` address is refused by the
    /// API server and by the operator. Set it only where the path is trusted (a loopback
    /// sidecar, a mesh that encrypts), and prefer `https://`.
    #[serde(default)]
    pub insecure: bool,
    /// How long one query may take before the sample counts as an error.
    #[serde(default = "default_query_timeout")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub timeout: String,
}

fn default_query_timeout() -> String {
    "10s".into()
}

/// A key of a Secret in the policy's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A data plane whose metrics fill `requests` and `errors`: `istio`, `envoyGateway` (with
/// the EnvoyProxy's `mergeBackends`), `linkerd`, `nginxGatewayFabricPlus` (NGINX Plus only:
/// the open-source build exports no per-backend metrics), `traefik` or `openTelemetry` (the
/// HTTP server semantic conventions as exported to Prometheus). An explicit `requests` or
/// `errors` overrides the preset's. The three backend-Service presets (Envoy Gateway, NGINX,
/// Traefik) need the Gateway API router. Each preset's queries and sources: docs/analysis.md.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Preset {
    /// Istio's standard metrics from the destination sidecar.
    Istio,
    /// Envoy Gateway's per-backend clusters (EnvoyProxy `mergeBackends`).
    EnvoyGateway,
    /// Linkerd's proxy metrics, inbound.
    Linkerd,
    /// NGINX Gateway Fabric with NGINX Plus (per-upstream-peer responses).
    NginxGatewayFabricPlus,
    /// Traefik's per-service metrics (Gateway API provider).
    Traefik,
    /// OpenTelemetry's `http.server.request.duration`, exported to Prometheus.
    OpenTelemetry,
}

/// What a sample without data does.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum OnNoData {
    /// Hold the run at its step until data arrives; never promote.
    #[default]
    Hold,
    /// Roll back after `noDataLimit` samples in a row without data.
    Rollback,
}

/// A risk tier: how a matching revision is rolled out and judged.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "self.decision != 'sequential' || !has(self.sequential) || !has(self.sequential.p0) || !has(self.sequential.p1) || double(self.sequential.p0.replace('%', '')) < double(self.sequential.p1.replace('%', ''))"
).message("sequential.p0 must be lower than sequential.p1"))]
#[x_kube(validation = kube::core::Rule::new(
    concat!("self.decision != 'sequential' || (has(self.sequential) && has(self.sequential.p1)) || double((has(self.sequential) && has(self.sequential.p0) ? self.sequential.p0 : '", default_p0!(), "').replace('%', '')) < double(self.maxErrorRate.replace('%', ''))")
).message(concat!("sequential.p0 (default ", default_p0!(), ") must be lower than maxErrorRate, which is p1 unless sequential.p1 is set")))]
pub struct Tier {
    /// Tier name, shown on runs (e.g. `ai-assisted`). Lowercase letters, digits and dashes.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Which revisions this tier takes. The tier matches when any listed label or
    /// annotation, on the pod template or else on the Deployment, has one of the listed
    /// values. Omit it on the last tier to catch every other revision.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<TierMatch>,

    /// The slices, in order: each step sets the canary's share and holds it for `pause`.
    /// Weights strictly increase within (0%, 100%].
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.all(s, double(s.weight.replace('%', '')) > 0.0 && double(s.weight.replace('%', '')) <= 100.0)"
    ).message("step weights must be within (0%, 100%]"))]
    #[x_kube(validation = kube::core::Rule::new(
        "self.map(s, double(s.weight.replace('%', ''))).isSorted() && self.all(s, self.filter(u, double(u.weight.replace('%', '')) == double(s.weight.replace('%', ''))).size() == 1)"
    ).message("step weights must strictly increase"))]
    pub steps: Vec<Step>,

    /// The error rate above which the canary is bad (threshold mode rolls back once the
    /// counts show the rate above it, at `threshold.alpha`; sequential mode uses it as p1
    /// unless `sequential.p1` is set). Within [0%, 100%].
    #[serde(default = "default_max_error_rate")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) <= 100.0").message("maxErrorRate must be within [0%, 100%]"))]
    pub max_error_rate: String,

    /// How samples are judged: `threshold` (each sample's error rate against
    /// maxErrorRate, with a confidence bound) or `sequential` (a sequential probability ratio test on the canary's
    /// cumulative requests and errors, which rolls back after the fewest bad requests).
    #[serde(default)]
    pub decision: Decision,

    /// Threshold mode: failed samples tolerated before a rollback (the next one rolls back).
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,

    /// Threshold mode parameters; defaults apply when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdSpec>,

    /// Sequential mode parameters; defaults apply when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<SequentialSpec>,

    /// The largest share of traffic the canary may really get, e.g. `5%`. A step whose real
    /// share is above it holds (`Waiting` and `Stalled`, reason `ShareAboveCap`) instead of
    /// exposing more users: with the replicas router a small service cannot give a small
    /// slice (1 canary pod next to 3 stable ones is 25%). Omit for no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    pub max_share: Option<String>,

    /// A latency objective: requests slower than `objective` are bad events, judged like
    /// errors by this tier's decision (a threshold sample or the sequential test), with their
    /// own rates. Read from `spec.analysis.latency` or the preset's histogram. The tier's
    /// alpha is then shared by the two tests, half each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,

    /// Overrides `analysis.minRequests` for this tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_requests: Option<i64>,

    /// Wait after the last step, canary still serving and analysed, until someone approves
    /// with `kubectl rollguard approve` (the approver's authenticated identity is recorded).
    /// An approval counts only when it is given while the run awaits it, on the revision and
    /// step it waits at, and by four eyes: not by the change's author and not by a
    /// ServiceAccount, unless the two fields below allow it.
    #[serde(default)]
    pub require_approval: bool,

    /// Let the author of the change (the user the pause gate stamped in
    /// `rollguard.dev/changed-by`, recorded as the run's `spec.author`) approve it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_self_approval: bool,

    /// Let a ServiceAccount (`system:serviceaccount:...`) approve, e.g. a pipeline that
    /// approves on a signal of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_service_account_approval: bool,
}

fn default_max_error_rate() -> String {
    "1%".into()
}

/// A tier's latency objective.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "double(self.p0.replace('%', '')) < double(self.maxSlowRate.replace('%', ''))"
).message("latency.p0 (default 1%) must be lower than latency.maxSlowRate (default 5%)"))]
pub struct LatencyObjective {
    /// Requests slower than this are bad events, e.g. `500ms`. It must be one of the
    /// histogram's bucket bounds: a sample whose histogram has no such bound is an error
    /// that lists the bounds (the run holds; it never promotes on it).
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) > duration('0s')").message("latency.objective must be above 0s"))]
    pub objective: String,
    /// The share of slow requests above which the canary is bad: threshold mode's maximum
    /// and the sequential test's p1, as `maxErrorRate` is for errors. Within (0%, 100%).
    #[serde(default = "default_max_slow_rate")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) > 0.0 && double(self.replace('%', '')) < 100.0").message("latency.maxSlowRate must be within (0%, 100%)"))]
    pub max_slow_rate: String,
    /// Sequential mode: the share of slow requests of a good revision (the test's p0, or its
    /// floor with `baseline: stable`).
    #[serde(default = "default_slow_p0")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) > 0.0").message("latency.p0 must be above 0%"))]
    pub p0: String,
    /// Sequential mode: `stable` (the default: the stable revision's share of slow requests
    /// in the same window, floored at p0, so load that slows both revisions rolls back
    /// neither) or `fixed` (p0).
    #[serde(default = "default_slow_baseline")]
    pub baseline: Baseline,
}

fn default_max_slow_rate() -> String {
    "5%".into()
}
fn default_slow_p0() -> String {
    "1%".into()
}
fn default_slow_baseline() -> Baseline {
    Baseline::Stable
}

/// Which labels or annotations a tier takes. Values are alternatives; an empty list accepts
/// any value of the key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = kube::core::Rule::new("(has(self.labels) && size(self.labels) > 0) || (has(self.annotations) && size(self.annotations) > 0)").message("match must list at least one label or annotation; omit match to take every revision"))]
pub struct TierMatch {
    /// Label key to accepted values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Vec<String>>,
    /// Annotation key to accepted values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Vec<String>>,
}

/// One slice of the rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Step {
    /// The canary's share of traffic, e.g. `1%` or `0.5%`.
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    pub weight: String,
    /// How long the slice holds before the next step, e.g. `5m`. At least the analysis
    /// interval.
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub pause: String,
}

/// How analysis samples are judged.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Roll back when a sample's error rate exceeds maxErrorRate (after failureLimit).
    #[default]
    Threshold,
    /// Sequential probability ratio test on the cumulative counts.
    Sequential,
}

/// Parameters of threshold mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdSpec {
    /// Accepted chance, over the whole run, of rolling back a revision whose error rate is at
    /// or below maxErrorRate, within (0%, 50%). A sample fails only when its counts show the
    /// rate above maxErrorRate (the one-sided lower confidence bound is above it), at any
    /// request count, and the run's k-th sample spends alpha/(k(k+1)) of it, so however many
    /// samples a run takes, its false rollbacks stay within alpha.
    #[serde(default = "default_alpha")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) > 0.0 && double(self.replace('%', '')) < 50.0").message("threshold.alpha must be within (0%, 50%)"))]
    pub alpha: String,
}

impl Default for ThresholdSpec {
    fn default() -> Self {
        ThresholdSpec {
            alpha: default_alpha(),
        }
    }
}

/// Parameters of the sequential test. Rates are strings like `"0.1%"`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SequentialSpec {
    /// `sprt` (Wald's test of p0 against p1: fewest requests to a decision) or `mixture`
    /// (an always-valid test that needs no p1: use it when you cannot name a bad rate).
    #[serde(default)]
    pub test: SequentialTest,
    /// Where p0 comes from: `fixed` (the `p0` value) or `stable` (the stable revision's
    /// error rate over the same window, floored at `p0`), so an incident hitting both
    /// revisions does not roll the canary back.
    #[serde(default)]
    pub baseline: Baseline,
    /// The error rate of a good revision (H0).
    #[serde(default = "default_p0", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    pub p0: Option<String>,
    /// The error rate of a bad revision (H1). Defaults to the tier's maxErrorRate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    pub p1: Option<String>,
    /// Accepted chance of rolling back a good revision, within (0%, 50%).
    #[serde(default = "default_alpha")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) > 0.0 && double(self.replace('%', '')) < 50.0").message("sequential.alpha must be within (0%, 50%)"))]
    pub alpha: String,
    /// Accepted chance of missing a bad revision, within (0%, 50%).
    #[serde(default = "default_beta")]
    #[schemars(length(max = 12), regex(pattern = PERCENT_PATTERN))]
    #[x_kube(validation = kube::core::Rule::new("double(self.replace('%', '')) > 0.0 && double(self.replace('%', '')) < 50.0").message("sequential.beta must be within (0%, 50%)"))]
    pub beta: String,
    /// How long a step may run past its pause while the test has not decided (`sprt`: not
    /// crossed its accept boundary at this slice; `mixture`: fewer than `minRequests` at this
    /// slice). A slice widens, and the run promotes, only on that evidence; when this
    /// deadline passes without it, `onInconclusive` applies.
    #[serde(default = "default_decide_within")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub decide_within: String,
    /// What an undecided test does at the deadline: `hold` (the run waits at its slice,
    /// still analysed, until someone runs `kubectl rollguard promote` or the test decides),
    /// `rollback`, or `promote` (move on as if accepted). The choice and the reason are
    /// recorded on the run.
    #[serde(default)]
    pub on_inconclusive: OnInconclusive,
}

/// What an undecided sequential test does when its step's deadline passes.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum OnInconclusive {
    /// Wait at the slice for a person (`kubectl rollguard promote`) or for the test.
    #[default]
    Hold,
    /// Roll back: not enough evidence that the canary is good.
    Rollback,
    /// Move on as if the test had accepted the canary.
    Promote,
}

impl Default for SequentialSpec {
    fn default() -> Self {
        SequentialSpec {
            test: SequentialTest::default(),
            baseline: Baseline::default(),
            p0: default_p0(),
            p1: None,
            alpha: default_alpha(),
            beta: default_beta(),
            decide_within: default_decide_within(),
            on_inconclusive: OnInconclusive::default(),
        }
    }
}

fn default_decide_within() -> String {
    "1h".into()
}

fn default_p0() -> Option<String> {
    Some(default_p0!().into())
}
fn default_alpha() -> String {
    "1%".into()
}
fn default_beta() -> String {
    "5%".into()
}

/// Which sequential test.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum SequentialTest {
    /// Wald's sequential probability ratio test.
    #[default]
    Sprt,
    /// Beta-mixture always-valid test.
    Mixture,
}

/// Where the sequential test's p0 comes from.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
#[serde(rename_all = "camelCase")]
pub enum Baseline {
    /// The tier's `p0`.
    #[default]
    Fixed,
    /// The stable revision's measured error rate over the same window.
    Stable,
}

/// What the operator observed about a policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicyStatus {
    /// The policy generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the policy is in force), `Conflict` (a selected Deployment is also selected
    /// by another policy and is left alone), `InvalidSpec` (something the API server
    /// could not check, such as a query template or a missing HTTPRoute) and, when it
    /// declares notification sinks, `NotificationsReady` (every sink's Secret and URL can be
    /// used; runs never depend on it), and kstatus' `Reconciling` (always `False`: a policy is
    /// judged in one pass, and `observedGeneration` says which generation) and `Stalled`
    /// (present, `True`, only while the policy is invalid: new runs wait for a fix), so
    /// kstatus reads a valid policy as Current and an invalid one as Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The router in force: `replicas` or `gatewayAPI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// Deployments this policy governs (selected by it and by no other policy).
    #[serde(default)]
    pub governed_deployments: i32,
    /// Runs in flight.
    #[serde(default)]
    pub active_runs: i32,
}

#[cfg(test)]
mod tests {
    use super::{TEMPLATE_MESSAGE, TEMPLATE_RULE, TEMPLATE_VARIABLES};
    use crate::analysis::query::Variable;

    /// The CEL rule, its message and the documented list name exactly the renderer's
    /// variables, in the renderer's order.
    #[test]
    fn every_list_of_template_variables_is_the_renderers() {
        let names: Vec<&str> = Variable::ALL.iter().map(|v| v.name()).collect();
        assert_eq!(TEMPLATE_VARIABLES, names.as_slice());
        assert!(
            TEMPLATE_RULE.contains(&format!("(?:{})", names.join("|"))),
            "{TEMPLATE_RULE}"
        );
        let (last, rest) = names.split_last().expect("variables");
        let listed: Vec<String> = rest.iter().map(|n| format!("{{{{{n}}}}}")).collect();
        assert!(
            TEMPLATE_MESSAGE.ends_with(&format!("{} or {{{{{last}}}}}", listed.join(", "))),
            "{TEMPLATE_MESSAGE}"
        );
    }
}
