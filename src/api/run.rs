//! `RolloutRun`: one attempt to take one Deployment from its stable revision to a new one.
//! The operator writes the plan snapshot (spec) and the live state (status); people write
//! only approvals and commands, each recorded with the identity the API server
//! authenticated. The run is the audit record of what happened and why.

// kube's `printcolumn(...)` attributes repeat the same keys by design.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::policy::{AnalysisSpec, Tier};
use super::quantity::{COUNT_PATTERN, Ratio};

/// One rollout of one new revision of a governed Deployment.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "rollguard.dev",
    version = "v1alpha1",
    kind = "RolloutRun",
    namespaced,
    status = "RolloutRunStatus",
    shortname = "rgr",
    category = "rollguard",
    doc = "RolloutRun records one rollout of one new revision of a governed Deployment: the plan, the live state, every analysis sample with its evidence, approvals, and how it ended.",
    printcolumn(name = "Deployment", type_ = "string", json_path = ".spec.deployment"),
    printcolumn(name = "Tier", type_ = "string", json_path = ".spec.tier.name"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Step", type_ = "string", json_path = ".status.stepDisplay"),
    printcolumn(name = "Weight", type_ = "string", json_path = ".status.weight"),
    printcolumn(name = "Share", type_ = "string", json_path = ".status.share"),
    printcolumn(name = "Error rate", type_ = "string", json_path = ".status.errorRate"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        priority = 1,
        json_path = ".status.reason"
    )
)]
#[x_kube(validation = kube::core::Rule::new(
    "!has(oldSelf.approvals) || (has(self.approvals) && oldSelf.approvals.all(a, a in self.approvals))"
).message("spec.approvals is append-only: an approval, once given, cannot be removed or changed").field_path(".approvals"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.author) == has(oldSelf.author)"
).message("spec.author is immutable: it is who wrote the template under trial, recorded when the run started").field_path(".author"))]
#[serde(rename_all = "camelCase")]
pub struct RolloutRunSpec {
    /// The governed Deployment. Immutable, like every field but `approvals` (append-only)
    /// and `control`: the run is the operator's snapshot, and people add only their own
    /// approvals and commands.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.deployment is immutable"))]
    pub deployment: String,
    /// The policy that governed it when the run started.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.policy is immutable"))]
    pub policy: String,
    /// Hash of the stable pod template (what serves traffic when the run starts).
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.stableRevision is immutable"))]
    pub stable_revision: String,
    /// Hash of the new pod template on trial.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.canaryRevision is immutable"))]
    pub canary_revision: String,
    /// The tier the new revision matched, and why.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.tier is immutable"))]
    pub tier: MatchedTier,
    /// The resolved plan: the tier's rules, snapshotted so a policy edit does not change a
    /// run in flight.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.plan is immutable: the run keeps the plan it started with; change the RolloutPolicy for the next run"))]
    pub plan: Tier,
    /// The analysis settings, snapshotted likewise.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.analysis is immutable: the run keeps the analysis it started with; change the RolloutPolicy for the next run"))]
    pub analysis: AnalysisSpec,
    /// The router in force: `replicas` or `gatewayAPI`.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.router is immutable"))]
    pub router: String,
    /// Who wrote the template under trial, as the API server authenticated them: the user
    /// the pause gate stamped on the Deployment (`rollguard.dev/changed-by`) in the write that
    /// brought it. Absent when the gate was not in force (then nobody is known as the author,
    /// and four eyes cannot be checked). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec.author is immutable: it is who wrote the template under trial, recorded when the run started"))]
    pub author: Option<String>,
    /// Approvals, recorded by `kubectl rollguard approve` with the authenticated user.
    /// Append-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub approvals: Vec<Approval>,
    /// Commands from people (abort, promote, pause), each with who gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<RunControl>,
}

/// The tier a revision matched.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MatchedTier {
    /// Tier name.
    pub name: String,
    /// Why it matched, e.g. `pod template annotation rollguard.dev/change-origin=ai-assisted`.
    pub reason: String,
}

/// One approval, bound to the evidence it was given on: the run, the revision and the step
/// the run was waiting at.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The approver as the API server authenticated them.
    pub user: String,
    /// The approver's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// When.
    pub time: Time,
    /// The run approved (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The canary revision approved (`spec.canaryRevision` when it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The step the run was waiting at (`status.step` when it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
}

/// Commands people give a run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunControl {
    /// Roll back now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Command>,
    /// Skip the current pause (`full`: all remaining steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<PromoteCommand>,
    /// Hold the run at its current step until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Command>,
}

/// A command with who gave it and why.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Command {
    /// The user as the API server authenticated them.
    pub user: String,
    /// When.
    pub time: Time,
    /// Why, in the user's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Skip pauses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromoteCommand {
    /// The user as the API server authenticated them.
    pub user: String,
    /// When.
    pub time: Time,
    /// The step index (0-based) whose pause is skipped; ignored when `full`.
    #[serde(default)]
    pub step: i32,
    /// Skip all remaining steps.
    #[serde(default)]
    pub full: bool,
}

/// Phases of a run.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, Hash,
)]
pub enum Phase {
    /// Canary slices are being served and analysed.
    #[default]
    Progressing,
    /// All steps passed; waiting for an approval.
    AwaitingApproval,
    /// The Deployment is rolling out the new revision.
    Promoting,
    /// The new revision is the stable one.
    Succeeded,
    /// The canary was judged bad; traffic is back on stable.
    RolledBack,
    /// Someone aborted the run; traffic is back on stable.
    Aborted,
    /// A newer template (or the stable one) replaced the revision on trial.
    Superseded,
}

impl Phase {
    /// A run in this phase will not change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::RolledBack | Phase::Aborted | Phase::Superseded
        )
    }

    /// The name used in status, metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "Progressing",
            Phase::AwaitingApproval => "AwaitingApproval",
            Phase::Promoting => "Promoting",
            Phase::Succeeded => "Succeeded",
            Phase::RolledBack => "RolledBack",
            Phase::Aborted => "Aborted",
            Phase::Superseded => "Superseded",
        }
    }
}

/// The live state of a run. Everything the operator needs to continue a run after a
/// restart is here, never only in memory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRunStatus {
    /// The run generation this status describes (approvals and commands change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the run is.
    #[serde(default)]
    pub phase: Phase,
    /// The current step, 0-based.
    #[serde(default)]
    pub step: i32,
    /// The current step for people, e.g. `2/5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_display: Option<String>,
    /// The canary's share of traffic now, e.g. `1%` (`0%` before the canary is ready).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::weight"
    )]
    pub weight: Option<Ratio>,
    /// The share of traffic the canary really gets once the slice is applied: its pods over
    /// all pods behind the Service with the replicas router (1 canary pod next to 3 stable
    /// ones is `25%`, whatever the slice), the route weight with the Gateway API router.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::share"
    )]
    pub share: Option<Ratio>,
    /// Gateway API router: the canary's share of the pods your own Service selects, which is
    /// what in-cluster callers of that Service reach (they bypass the route).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::pod_share"
    )]
    pub pod_share: Option<Ratio>,
    /// The latest measured canary error rate, e.g. `0.42%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<String>,
    /// When the canary first got traffic; `{{elapsed}}` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_started_at: Option<Time>,
    /// When the current step's slice took effect; its pause counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// When the last analysis sample was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis_at: Option<Time>,
    /// Threshold mode: failed samples so far.
    #[serde(default)]
    pub failed_samples: i32,
    /// Samples without data in a row.
    #[serde(default)]
    pub no_data_samples: i32,
    /// The most recent analysis samples (bounded), newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<Sample>,
    /// Samples taken in total.
    #[serde(default)]
    pub sample_count: i32,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// Why the run ended or waits, as a CamelCase word (e.g. `ErrorRateAboveThreshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same for people, with the evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The sample that decided a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Sample>,
    /// `Analysis` (the last sample could be taken and judged), `Routing` (the canary's
    /// traffic is set as planned), `Waiting` (why the run does not move, if it does not),
    /// `Stalled` (it cannot move without someone acting: blind analysis past its limit, two
    /// policies selecting the Deployment), `Baseline` (`False`, reason `StableAboveP0`: the
    /// stable revision fails more often than the sequential tier's fixed p0; a warning that
    /// never changes the decision), `WeightsContested` (`True`, reason `WeightFight`: another
    /// field manager keeps writing the HTTPRoute's weights and the run holds; see
    /// `weightFights`), and kstatus' `Ready` (`True` once the run ended needing
    /// nobody: `Succeeded` or `Superseded`) and `Reconciling` (`True` while the run is in
    /// flight and not stalled). `Stalled` is present only while it is `True`, and is also set
    /// when the run rolled back or was aborted, so kstatus (Flux, Helm 4's `--wait`) reads
    /// a run in flight as InProgress, a promoted one as Current and a rolled-back one as
    /// Failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Decisions people took over the evidence (`promote`), in the order they took effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<Override>,
    /// Sequential mode: the window the current test counts over. Each step's slice starts a
    /// fresh test, and so does every acceptance, so clean traffic seen earlier never hides a
    /// regression that starts later. Absent on runs written before windows existed (their
    /// next sample opens one). Threshold mode keeps only the dispersion sums of stable's
    /// errors here (when stable is measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestWindow>,
    /// The same for the slow requests of a tier with a latency objective (their counts are
    /// in the window's `errors` fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_test: Option<TestWindow>,
    /// How often each check (`spec.analysis.checks`) was outside its bounds in this run:
    /// past its `failureLimit`, the canary is rolled back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub check_failures: Vec<CheckFailures>,
    /// Gateway API router: weight fights in this run. A fight is a write of the route's
    /// weights by another field manager (a GitOps tool re-applying its manifest, someone
    /// editing the route) that rollguard found and wrote back. Three in one step hold the
    /// run (condition `WeightsContested`) until that manager has left the weights alone for
    /// 30 s. Absent while there has been none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_fights: Option<WeightFights>,
}

/// Weight fights over a run's HTTPRoute: who wrote the weights, where and how often.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WeightFights {
    /// Fights in the whole run.
    pub total: i32,
    /// Fights in the step `step` (0-based); the count starts again when the step changes.
    pub in_step: i32,
    /// The step the fights in `inStep` happened in, 0-based.
    pub step: i32,
    /// The field manager that last wrote the weights (from the route's
    /// `metadata.managedFields`), e.g. `argocd-controller` or `kustomize-controller`;
    /// `unknown` when the route does not say.
    pub manager: String,
    /// The HTTPRoute of the last fight.
    pub route: String,
    /// When rollguard last found the weights written by someone else.
    pub last_at: Time,
}

/// A `promote` that moved the run on without what the tier asks for (a pause, a judging
/// sample, enough evidence to promote).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// The user who gave the `promote`, as the API server authenticated them.
    pub user: String,
    /// When it took effect.
    pub time: Time,
    /// The step (0-based) it moved the run on from.
    pub step: i32,
    /// What it skipped, for people, e.g. `the pause and the evidence of step 1/2 (1%)`.
    pub skipped: String,
}

/// The sequential test's window: where it started in the cumulative counts, and how many
/// tests the run has started (each one spends part of the run's false-rollback budget).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TestWindow {
    /// The step whose slice this window measures, 0-based.
    #[serde(default)]
    pub step: i32,
    /// Tests started in this run, this one included. The k-th test rolls back at
    /// alpha/(k(k+1)), so all of a run's tests together roll back a good canary at most
    /// alpha of the time however many there are.
    #[serde(default)]
    pub tests: i32,
    /// Cumulative counts where this window starts.
    #[serde(default)]
    pub origin: WindowCounts,
    /// Cumulative counts at the latest sample: where the next window starts.
    #[serde(default)]
    pub latest: WindowCounts,
    /// The step at which the test last accepted the canary (crossed its accept boundary, or
    /// served the evidence the tier declares enough); a slice widens only once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_step: Option<i32>,
    /// When the tier measures stable: intervals between samples in which stable served
    /// requests, over the whole run (for the dispersion of its error counts).
    #[serde(default)]
    pub stable_intervals: i32,
    /// When the tier measures stable: the sum over those intervals of stable's errors squared over its
    /// requests, in millionths (with the interval count and stable's totals, Pearson's
    /// dispersion statistic).
    #[serde(default)]
    pub stable_squares: i64,
}

/// Cumulative request and error counts of both revisions at one sample.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WindowCounts {
    /// Canary requests.
    #[serde(default)]
    pub requests: i64,
    /// Canary errors.
    #[serde(default)]
    pub errors: i64,
    /// Stable requests (when the tier measures stable).
    #[serde(default)]
    pub stable_requests: i64,
    /// Stable errors (when the tier measures stable).
    #[serde(default)]
    pub stable_errors: i64,
}

/// One analysis sample: what was asked, what came back, and what it meant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// When it was taken.
    pub time: Time,
    /// The step it was taken in, 0-based.
    pub step: i32,
    /// The requests query as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_query: Option<String>,
    /// The errors query as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors_query: Option<String>,
    /// Canary requests since the canary started (as Prometheus reported, rounded), e.g. `1520`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::requests"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub requests: Option<u64>,
    /// Canary errors since the canary started.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::errors"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub errors: Option<u64>,
    /// Stable's requests over the same window, when the tier measures stable (`baseline:
    /// stable`, or a fixed p0 checked against stable's rate).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::stable_requests"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub stable_requests: Option<u64>,
    /// Stable's errors over the same window, when the tier measures stable.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::stable_errors"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub stable_errors: Option<u64>,
    // The rate and the numbers below are evidence for people, formatted once when the
    // sample is judged: the machine and the CLI show them but never read them back.
    /// errors / requests, e.g. `0.52%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Threshold mode: the threshold it was judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Sequential mode: the test statistic (log-likelihood ratio) and its boundaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// Sequential mode: the rollback boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_bound: Option<String>,
    /// Sequential mode: the accept boundary (SPRT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<String>,
    /// Baseline p0 used (measured on stable, or fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// How the sample judged the canary (`Continue`: the sequential test has not decided yet).
    pub verdict: Verdict,
    /// The error or why there was no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Slow requests, judged beside errors, when the tier has a latency objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySample>,
    /// Each check of `spec.analysis.checks`: its value against its bounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSample>,
}

/// One check's value in a sample, against its bounds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckSample {
    /// The check's name.
    pub name: String,
    /// The query as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The number it returned, e.g. `0.93`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `Pass` (within its bounds), `Fail` (outside them), or `NoData`.
    pub verdict: Verdict,
    /// The bounds it was judged against, and its failures so far; or why it has no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How often a check has failed in a run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckFailures {
    /// The check's name.
    pub name: String,
    /// Samples in which it was outside its bounds.
    pub failures: i32,
}

/// A sample's evidence about slow requests: the histogram's counts and how they were judged,
/// like the sample's errors.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LatencySample {
    /// The tier's objective, e.g. `500ms`: slower requests are slow.
    pub objective: String,
    /// The canary's histogram query as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Canary requests the histogram counted (its `+Inf` bucket).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::requests"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub requests: Option<u64>,
    /// Canary requests slower than the objective.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::slow"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub slow: Option<u64>,
    /// Stable's requests in its histogram, when stable is measured.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::stable_requests"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub stable_requests: Option<u64>,
    /// Stable's requests slower than the objective.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::count",
        deserialize_with = "wire::stable_slow"
    )]
    #[schemars(with = "Option<String>", regex(pattern = COUNT_PATTERN))]
    pub stable_slow: Option<u64>,
    /// slow / requests, e.g. `3.1%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Threshold mode: the maximum share of slow requests (maxSlowRate); sequential mode: p1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Sequential mode: the test statistic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// Sequential mode: the rollback boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_bound: Option<String>,
    /// Sequential mode: the accept boundary (SPRT only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<String>,
    /// Sequential mode: the p0 used (measured on stable, or fixed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// How the slow requests judged the canary.
    pub verdict: Verdict,
    /// What the numbers say, or why there was nothing to judge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How one analysis sample judged the canary.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Threshold mode: enough requests, error rate at or below the threshold.
    Pass,
    /// Above the threshold, or the sequential test crossed its rollback boundary.
    Fail,
    /// Sequential mode: not decided yet, and not shown bad.
    Continue,
    /// Sequential mode: the test crossed its accept boundary.
    AcceptGood,
    /// Threshold mode: too few requests to judge.
    NotEnoughRequests,
    /// The queries answered with nothing, or with counts that cannot be used.
    NoData,
    /// Prometheus could not be asked or refused the query, or the test could not be set up.
    Error,
}

impl Verdict {
    /// The name used in status, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "Pass",
            Verdict::Fail => "Fail",
            Verdict::Continue => "Continue",
            Verdict::AcceptGood => "AcceptGood",
            Verdict::NotEnoughRequests => "NotEnoughRequests",
            Verdict::NoData => "NoData",
            Verdict::Error => "Error",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The API edge of the status: typed fields keep the text they always had on the wire, so a
/// run written before they were typed reads unchanged (and an older operator reads a newer
/// run), and a value that does not parse names its field.
mod wire {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::api::quantity::{QuantityError, Ratio, parse_count, parse_percent};

    fn named<'de, D: Deserializer<'de>, T>(
        field: &str,
        d: D,
        parse: fn(&str) -> Result<T, QuantityError>,
    ) -> Result<Option<T>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        parse(&text)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{field}: {e}")))
    }

    pub fn weight<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ratio>, D::Error> {
        named("weight", d, parse_percent)
    }

    pub fn share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ratio>, D::Error> {
        named("share", d, parse_percent)
    }

    pub fn pod_share<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ratio>, D::Error> {
        named("podShare", d, parse_percent)
    }

    pub fn requests<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("requests", d, parse_count)
    }

    pub fn errors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("errors", d, parse_count)
    }

    pub fn stable_requests<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("stableRequests", d, parse_count)
    }

    pub fn stable_errors<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("stableErrors", d, parse_count)
    }

    pub fn slow<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("slow", d, parse_count)
    }

    pub fn stable_slow<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        named("stableSlow", d, parse_count)
    }

    /// A count as its decimal string, e.g. `"1520"`.
    // serde's `serialize_with` hands over `&Option<u64>`.
    #[allow(clippy::ref_option)]
    pub fn count<S: Serializer>(n: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(verdict: Verdict) -> serde_json::Value {
        json!({"time": "2027-01-15T08:00:10Z", "step": 0, "requests": "1520", "errors": "6",
               "rate": "0.3947%", "verdict": verdict.as_str()})
    }

    #[test]
    fn typed_fields_keep_their_text_on_the_wire() {
        let verdicts = [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Continue,
            Verdict::AcceptGood,
            Verdict::NotEnoughRequests,
            Verdict::NoData,
            Verdict::Error,
        ];
        let wire = json!({
            "phase": "Progressing", "step": 1, "weight": "0.5%",
            "failedSamples": 0, "noDataSamples": 0, "sampleCount": 7, "conditions": [],
            "samples": verdicts.map(sample),
        });
        let st: RolloutRunStatus = serde_json::from_value(wire.clone()).expect("decodes");
        assert_eq!(st.weight.map(Ratio::ppm), Some(5_000));
        let read: Vec<_> = st.samples.iter().map(|s| s.verdict).collect();
        assert_eq!(read, verdicts);
        assert!(
            st.samples
                .iter()
                .all(|s| s.requests == Some(1520) && s.errors == Some(6))
        );
        let mut back = serde_json::to_value(&st).expect("encodes");
        back["conditions"] = json!([]);
        assert_eq!(back, wire, "the same JSON, strings and all");
        // The CRD lists the verdicts as they are written, and keeps the weight a string.
        let crd =
            serde_json::to_value(<RolloutRun as kube::CustomResourceExt>::crd()).expect("crd");
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"];
        let listed: Vec<_> = verdicts.map(|v| json!(v.as_str())).into();
        assert_eq!(
            status["samples"]["items"]["properties"]["verdict"]["enum"],
            json!(listed)
        );
        assert_eq!(status["weight"]["type"], "string");
        assert_eq!(
            status["evidence"]["properties"]["requests"]["type"],
            "string"
        );
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_field() {
        let bad = |field: &str, value: serde_json::Value, status: serde_json::Value| {
            let err = serde_json::from_value::<RolloutRunStatus>(status)
                .expect_err(field)
                .to_string();
            assert!(
                err.contains(&format!("{field}: ")) && err.contains(&value.to_string()),
                "{err}"
            );
        };
        bad("weight", json!("5"), json!({"weight": "5"}));
        bad("weight", json!("101%"), json!({"weight": "101%"}));
        let mut s = sample(Verdict::Pass);
        s["requests"] = json!("1.5e3");
        bad("requests", json!("1.5e3"), json!({"samples": [s]}));
        let mut s = sample(Verdict::Pass);
        s["errors"] = json!("-1");
        bad("errors", json!("-1"), json!({"evidence": s}));
        let mut s = sample(Verdict::Pass);
        s["verdict"] = json!("Passed");
        let err = serde_json::from_value::<Sample>(s)
            .expect_err("verdict")
            .to_string();
        assert!(err.contains("unknown variant `Passed`"), "{err}");
        // Absent and null stay absent.
        let st: RolloutRunStatus =
            serde_json::from_value(json!({"weight": null})).expect("null weight");
        assert_eq!(st.weight, None);
        let s: Sample = serde_json::from_value(json!({"time": "2027-01-15T08:00:10Z", "step": 0,
            "requests": null, "verdict": "NoData"}))
        .expect("no counts");
        assert_eq!((s.requests, s.errors), (None, None));
    }
}
