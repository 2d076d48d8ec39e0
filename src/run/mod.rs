//! The run state machine: `(run, observed world, now) -> (new status, desired state, events)`.
//! No I/O and no clock but the `now` in the world it is given. The controller feeds it from
//! watches and Prometheus; `rollguard simulate` feeds it from a synthetic traffic model in
//! virtual time. Both run this very code.
//!
//! The machine answers with a *desired* state (canary replicas, canary weight, Deployment
//! paused) rather than imperative steps, so applying it twice is harmless and a restarted
//! operator converges from the status alone.

pub mod approval;
pub mod govern;
mod judge;
pub mod stable_rate;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::analysis::request::{CheckValue, LatencyCounts};
use crate::api::policy::OnNoData;
use crate::api::quantity::Ratio;
use crate::api::run::{Override, Phase, RolloutRunSpec, RolloutRunStatus, Sample, Verdict};
use crate::plan::{Judge, Plan, replicas_for_share, replicas_for_weight, share_of};
use crate::traffic::fight::{self, Fight};

use judge::{Gate, Judged, Judgement, gate, judge};
use stable_rate::StableVsP0;

/// Samples kept in status; older ones are dropped (the count stays in `sampleCount`).
pub const SAMPLES_KEPT: usize = 10;

/// The traffic router a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Router {
    /// Canary share by pod count.
    Replicas,
    /// Canary share by HTTPRoute weights.
    GatewayApi,
}

impl Router {
    /// Parses the router name stored on a run.
    pub fn from_name(name: &str) -> Router {
        if name == "gatewayAPI" {
            Router::GatewayApi
        } else {
            Router::Replicas
        }
    }

    /// The name stored on a run.
    pub fn name(self) -> &'static str {
        match self {
            Router::Replicas => "replicas",
            Router::GatewayApi => "gatewayAPI",
        }
    }
}

/// What one analysis produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// Counts since the canary started (or over the window the templates ask for).
    Counts {
        requests: f64,
        errors: f64,
        /// The stable revision's (requests, errors) over the same window, when the tier
        /// measures its baseline there.
        stable: Option<(f64, f64)>,
        /// The latency histogram's answer, when the tier has a latency objective.
        latency: Option<LatencyCounts>,
        /// Each check's value (`spec.analysis.checks`), in the policy's order.
        checks: Vec<CheckValue>,
        queries: Queries,
    },
    /// The queries answered with nothing (empty vector) or NaN.
    NoData { why: String, queries: Queries },
    /// Prometheus could not be asked or refused the query.
    Failed { why: String, queries: Queries },
}

/// The queries as sent, for the evidence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queries {
    pub requests: String,
    pub errors: String,
    /// The canary's latency histogram query, when the tier has a latency objective.
    pub latency: Option<String>,
    /// Each check's name and query.
    pub checks: Vec<(String, String)>,
}

/// The canary Deployment as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryObserved {
    /// spec.replicas.
    pub replicas: i32,
    /// Ready pods (status.readyReplicas, for the canary's current spec).
    pub ready: i32,
    /// Ready pods of any spec: whether the canary's Service has anywhere to send traffic
    /// (0 while a canary deleted by hand is being made again).
    pub serving: i32,
    /// With the Gateway API router: the ready endpoints of the canary's routing Service
    /// (`<service>-canary`), what a gateway routes to. A slice starts only once there are as
    /// many as it needs pods. `None` with the replicas router (its share is its endpoints).
    pub endpoints: Option<i32>,
}

/// What the controller saw this time round.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    pub now: Timestamp,
    /// Hash of the Deployment's current pod template.
    pub template_revision: String,
    /// The Deployment's spec.replicas: the stable pod count.
    pub stable_replicas: i32,
    /// The Deployment has fully rolled out its current template (only meaningful while
    /// promoting, when it is unpaused).
    pub rollout_complete: bool,
    /// The Deployment still runs pods of other templates (stopped half way through a
    /// rollout); `None` while its status is behind its spec.
    pub mid_rollout: Option<bool>,
    /// The canary Deployment of the revision on trial, if it exists (not one being deleted).
    pub canary: Option<CanaryObserved>,
    /// What is left of an earlier canary (another run's, even of the same revision) that can
    /// still serve, named for the condition: until it is gone a new canary is not made, gets
    /// no traffic and opens no analysis window, since both would share its name and series.
    pub earlier_canary: Option<String>,
    /// `Err((reason, message))` when the router cannot route (a missing Service or
    /// HTTPRoute): the run holds and says why.
    pub routing: Result<(), (String, String)>,
    /// A fresh analysis result, when one was due and taken.
    pub measurement: Option<Measurement>,
    /// The Deployment is being released (no policy governs it any more), and why: the run
    /// ends, traffic goes back to stable and the Deployment is given up.
    pub released: Option<String>,
    /// The pause gate is in force: the cluster pauses a new template at admission, so a
    /// Deployment whose template is stable again is left unpaused (`docs/gitops.md`).
    pub pause_gate: bool,
    /// Gateway API router: another field manager wrote the route's weights since rollguard
    /// last did, seen on the live route this pass (rollguard writes them back in the same
    /// pass). Counted in `status.weightFights`; repeated fights hold the run.
    pub weight_fight: Option<Fight>,
}

/// The state the controller makes true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desired {
    /// Canary replicas; `None` means the canary must not exist.
    pub canary_replicas: Option<i32>,
    /// The canary's share of traffic.
    pub weight: Ratio,
    /// Whether the governed Deployment stays paused.
    pub paused: bool,
}

/// A Kubernetes Event to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A verdict on a revision to record on the Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionMark {
    /// The revision is now stable.
    Stable(String),
    /// The revision failed; do not retry it until the template changes.
    Failed(String),
}

/// The machine's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: RolloutRunStatus,
    pub desired: Desired,
    pub events: Vec<RunEvent>,
    pub mark: Option<RevisionMark>,
    /// When something falls due (next analysis, end of a pause); the controller wakes then.
    pub wake_at: Option<Timestamp>,
}

/// The parts of a run the machine reads.
pub struct RunView<'a> {
    pub spec: &'a RolloutRunSpec,
    pub plan: &'a Plan,
    pub router: Router,
}

impl<'a> RunView<'a> {
    fn size_for(&self, weight: Ratio, stable: i32) -> i32 {
        match self.router {
            Router::Replicas => replicas_for_share(weight, stable),
            Router::GatewayApi => replicas_for_weight(weight, stable),
        }
    }
}

fn ts(t: &Time) -> Timestamp {
    t.0
}

/// `now` rounded up to the whole second. The API stores times to the second (metav1.Time
/// drops the fraction), so a start recorded as it happened would read back up to a second
/// early, and a `[{{elapsed}}]` range measured from it would take in samples from before
/// the canary had traffic: on a series that outlives one canary, another run's requests.
fn start_time(now: Timestamp) -> Time {
    let whole = Timestamp::from_second(now.as_second()).unwrap_or(now);
    if whole < now {
        Time(after(whole, Duration::from_secs(1)))
    } else {
        Time(whole)
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Whether an analysis sample is due now. The first comes one interval after the canary
/// got traffic, then one per interval; none while promoting or after the end.
pub fn analysis_due(run: &RunView, status: &RolloutRunStatus, now: Timestamp) -> bool {
    next_analysis(run, status).is_some_and(|t| now >= t)
}

/// When a pass moves a run on from a step: the time that step's pause ended (its start plus
/// its pause, as the machine reckons it). `None` when the pass stays on its step. The
/// controller measures the step delay from here to its write for the next slice, whether
/// that write is the slice itself or the canary growing first.
pub fn pause_ended(
    run: &RunView,
    before: &RolloutRunStatus,
    after_pass: &RolloutRunStatus,
) -> Option<Timestamp> {
    if after_pass.step <= before.step {
        return None;
    }
    let started = ts(before.step_started_at.as_ref()?);
    let (_, pause) = run.plan.steps.get(usize::try_from(before.step).ok()?)?;
    Some(after(started, *pause))
}

fn next_analysis(run: &RunView, status: &RolloutRunStatus) -> Option<Timestamp> {
    if !matches!(status.phase, Phase::Progressing | Phase::AwaitingApproval) {
        return None;
    }
    let started = ts(status.canary_started_at.as_ref()?);
    let from = status
        .last_analysis_at
        .as_ref()
        .map(ts)
        .map_or(started, |t| t.max(started));
    Some(after(from, run.plan.interval))
}

/// How long the canary has served traffic: the `{{elapsed}}` range of the queries.
pub fn elapsed(status: &RolloutRunStatus, now: Timestamp) -> Duration {
    status
        .canary_started_at
        .as_ref()
        .map(|t| {
            let d = now.duration_since(ts(t));
            Duration::try_from(d).unwrap_or(Duration::ZERO)
        })
        .unwrap_or(Duration::ZERO)
}

/// Formats a fraction as a percentage string with up to 4 decimals, e.g. `0.52%`.
pub fn fmt_rate(r: f64) -> String {
    if !r.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.4}", r * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// A count for a message, `?` when there is none.
fn count_text(n: Option<u64>) -> String {
    n.map_or_else(|| "?".into(), |n| n.to_string())
}

fn set_condition(
    conds: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" };
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Time(now);
        }
        c.status = status.into();
        c.reason = reason.into();
        c.message = message.into();
    } else {
        conds.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: None,
        });
    }
}

fn clear_condition(conds: &mut Vec<Condition>, type_: &str) {
    conds.retain(|c| c.type_ != type_);
}

/// Clears `Stalled` when it is for `reason`: each cause clears only its own, so one that
/// still holds is not cleared and set again (with a new transition time) in the same pass.
fn clear_stalled(conds: &mut Vec<Condition>, reason: &str) {
    conds.retain(|c| !(c.type_ == condition::STALLED && c.reason == reason));
}

/// Condition types on a run.
pub mod condition {
    pub const ANALYSIS: &str = "Analysis";
    pub const ROUTING: &str = "Routing";
    pub const WAITING: &str = "Waiting";
    /// kstatus' `Stalled`: the run cannot move on without someone acting.
    pub const STALLED: &str = "Stalled";
    /// `False` when the stable revision fails more often than the tier's fixed p0
    /// (reason [`super::STABLE_ABOVE_P0`]); absent otherwise.
    pub const BASELINE: &str = "Baseline";
    /// `True` (reason [`super::WEIGHT_FIGHT`]) while the run holds because another field
    /// manager keeps writing the route's weights; absent otherwise.
    pub const WEIGHTS_CONTESTED: &str = "WeightsContested";
}

/// Reason of the `WeightsContested` condition and of the Warning Event when the hold starts.
pub const WEIGHT_FIGHT: &str = "WeightFight";

/// Reason of the `Baseline` condition and its Warning Event: the stable revision's measured
/// error rate is above a sequential tier's fixed p0.
pub const STABLE_ABOVE_P0: &str = "StableAboveP0";

/// Reason of the `Waiting` condition and of the Warning Event when an approval is there but
/// does not count (four eyes, or given on other evidence).
pub const APPROVAL_NOT_COUNTED: &str = "ApprovalNotCounted";

/// Reasons of the `Stalled` condition.
pub mod stalled {
    /// Two or more policies select the Deployment (set by the controller, cleared here).
    pub const POLICY_CONFLICT: &str = "PolicyConflict";
    /// Too many samples in a row without usable data, and the run holds (`onNoData: hold`).
    pub const ANALYSIS_BLIND: &str = "AnalysisBlind";
    /// A step's real share of traffic is above the tier's `maxShare`.
    pub const SHARE_ABOVE_CAP: &str = "ShareAboveCap";
}

/// Reasons of the `Waiting` condition the machine sets.
pub mod waiting {
    /// Pods of an earlier canary can still serve; the new one waits for them to be gone.
    pub const EARLIER_CANARY: &str = "EarlierCanaryServing";
    /// The canary's pods are Ready but not yet endpoints of its routing Service.
    pub const CANARY_NOT_ROUTABLE: &str = "CanaryNotRoutable";
}

struct Machine<'a, 'r> {
    run: &'a RunView<'r>,
    world: &'a World,
    st: RolloutRunStatus,
    events: Vec<RunEvent>,
    mark: Option<RevisionMark>,
    /// Another field manager keeps writing the route's weights: no next step, no promotion.
    contested: bool,
}

impl Machine<'_, '_> {
    fn now(&self) -> Timestamp {
        self.world.now
    }

    /// The share of traffic a slice really gives: its pods over all pods with the replicas
    /// router, the route weight with the Gateway API router.
    fn share_of(&self, weight: Ratio, canary: i32, stable: i32) -> Ratio {
        match self.run.router {
            Router::Replicas => share_of(canary, stable),
            Router::GatewayApi => weight,
        }
    }

    /// Records the share the desired state gives, and the pod share in-cluster callers of the
    /// user's own Service get with the Gateway API router.
    fn record_share(&mut self, desired: &Desired) {
        let stable = self.world.stable_replicas;
        let pods = desired.canary_replicas.unwrap_or(0);
        self.st.share = Some(self.share_of(desired.weight, pods, stable));
        self.st.pod_share = (self.run.router == Router::GatewayApi).then(|| share_of(pods, stable));
    }

    fn step_weight(&self, i: i32) -> Ratio {
        let steps = &self.run.plan.steps;
        let i = (i.max(0) as usize).min(steps.len().saturating_sub(1));
        steps.get(i).map(|s| s.0).unwrap_or_default()
    }

    fn current_weight(&self) -> Ratio {
        self.st.weight.unwrap_or_default()
    }

    fn event(&mut self, warning: bool, reason: &'static str, message: String) {
        self.events.push(RunEvent {
            warning,
            reason,
            message,
        });
    }

    fn waiting(&mut self, reason: &str, message: &str) {
        let now = self.now();
        set_condition(
            &mut self.st.conditions,
            condition::WAITING,
            true,
            reason,
            message,
            now,
        );
    }

    fn not_waiting(&mut self) {
        clear_condition(&mut self.st.conditions, condition::WAITING);
    }

    /// Ends the run. Traffic goes to stable and the canary goes away in the same pass.
    fn end(&mut self, phase: Phase, reason: &str, message: String) -> Desired {
        self.st.phase = phase;
        self.st.ended_at = Some(Time(self.now()));
        self.st.reason = Some(reason.into());
        self.st.message = Some(message.clone());
        self.st.weight = Some(Ratio::ZERO);
        self.not_waiting();
        clear_condition(&mut self.st.conditions, condition::WEIGHTS_CONTESTED);
        let warning = matches!(phase, Phase::RolledBack | Phase::Aborted);
        self.event(warning, end_event_reason(phase), message);
        if matches!(phase, Phase::RolledBack | Phase::Aborted) {
            self.mark = Some(RevisionMark::Failed(self.run.spec.canary_revision.clone()));
        }
        Desired {
            canary_replicas: None,
            weight: Ratio::default(),
            // Promoted: its template is the stable one now, which the gate lets run unpaused.
            paused: !(self.world.pause_gate && phase == Phase::Succeeded),
        }
    }

    /// The Deployment's template is no longer the revision on trial. Whatever the phase, the
    /// run ends without a half rollout left behind: a revert lets the Deployment finish going
    /// back to its stable revision, and a revision that was promoting (it passed) becomes the
    /// stable one the next run measures against.
    fn superseded(&mut self) -> Desired {
        let spec = self.run.spec;
        let template = self.world.template_revision.clone();
        if template == spec.stable_revision {
            let mut desired = self.end(
                Phase::Superseded,
                "Reverted",
                format!(
                    "the Deployment's template was reverted to the stable revision {}; the run ends without promoting {}",
                    spec.stable_revision, spec.canary_revision
                ),
            );
            // Reverted mid-rollout (while promoting): the stable template rolls back out.
            // Not known yet (a stale status): paused; between runs it is unpaused once known.
            // With the pause gate, the stable template is left unpaused whatever its state.
            desired.paused = !self.world.pause_gate && self.world.mid_rollout != Some(true);
            return desired;
        }
        if self.st.phase == Phase::Promoting {
            let desired = self.end(
                Phase::Superseded,
                "Superseded",
                format!(
                    "revision {template} replaced {} while it was promoting: {} had passed its analysis and is recorded as the stable revision, which the run for {template} is measured against",
                    spec.canary_revision, spec.canary_revision
                ),
            );
            self.mark = Some(RevisionMark::Stable(spec.canary_revision.clone()));
            return desired;
        }
        self.end(
            Phase::Superseded,
            "Superseded",
            format!(
                "revision {template} replaced {} before it was promoted",
                spec.canary_revision
            ),
        )
    }

    /// A `promote` moved the run on without something the tier asks for: recorded in status
    /// and said in a Warning Event, never silently.
    fn overridden(&mut self, user: &str, step: i32, skipped: String) {
        if self
            .st
            .overrides
            .last()
            .is_some_and(|o| o.step == step && o.skipped == skipped)
        {
            return;
        }
        let now = self.now();
        self.event(
            true,
            "Overridden",
            format!(
                "{user} promoted canary {} past {skipped}",
                self.run.spec.canary_revision
            ),
        );
        self.st.overrides.push(Override {
            user: user.to_string(),
            time: Time(now),
            step,
            skipped,
        });
    }

    fn record(&mut self, sample: Sample) {
        self.st.error_rate = sample.rate.clone().or(self.st.error_rate.take());
        self.st.last_analysis_at = Some(sample.time.clone());
        self.st.sample_count += 1;
        self.st.samples.push(sample);
        let excess = self.st.samples.len().saturating_sub(SAMPLES_KEPT);
        self.st.samples.drain(..excess);
    }

    fn latest_in_step(&self) -> Option<&Sample> {
        let started = self.st.step_started_at.as_ref().map(ts)?;
        self.st
            .samples
            .last()
            .filter(|s| s.step == self.st.step && ts(&s.time) >= started)
    }

    fn run(mut self) -> Outcome {
        let desired = self.decide();
        if !self.st.phase.is_terminal() || self.st.share.is_some() {
            self.record_share(&desired);
        }
        let wake_at = self.wake_at();
        Outcome {
            status: self.st,
            desired,
            events: self.events,
            mark: self.mark,
            wake_at,
        }
    }

    fn wake_at(&self) -> Option<Timestamp> {
        if self.st.phase.is_terminal() {
            return None;
        }
        let mut t = next_analysis(self.run, &self.st);
        if let Some(started) = self.st.step_started_at.as_ref().map(ts)
            && self.st.phase == Phase::Progressing
        {
            let steps = &self.run.plan.steps;
            if let Some((_, pause)) = steps.get(self.st.step.max(0) as usize) {
                let end = after(started, *pause);
                if end > self.now() {
                    t = Some(t.map_or(end, |a| a.min(end)));
                }
            }
        }
        // A held run goes on once the other manager has been quiet long enough.
        if self.contested
            && let Some(f) = &self.st.weight_fights
        {
            let end = fight::hold_ends(f);
            t = Some(t.map_or(end, |a| a.min(end)));
        }
        t
    }

    fn decide(&mut self) -> Desired {
        let spec = self.run.spec;
        let now = self.now();
        if self.st.phase.is_terminal() {
            return Desired {
                canary_replicas: None,
                weight: Ratio::default(),
                paused: true,
            };
        }
        if let Some(why) = &self.world.released {
            let out = release(&self.st, why, self.now());
            self.st = out.status;
            return out.desired;
        }
        // The machine runs only when one policy governs the Deployment.
        clear_stalled(&mut self.st.conditions, stalled::POLICY_CONFLICT);
        let total = self.run.plan.steps.len() as i32;
        self.st.step_display = Some(format!("{}/{}", self.st.step + 1, total));

        // A new template (or the stable one again) replaces the revision on trial.
        if self.world.template_revision != spec.canary_revision {
            return self.superseded();
        }

        if let Some(abort) = spec.control.as_ref().and_then(|c| c.abort.as_ref()) {
            let why = abort.reason.as_deref().unwrap_or("no reason given");
            let message = if self.st.phase == Phase::Promoting {
                format!(
                    "aborted by {} while promoting: {why}. The Deployment stops where its rollout stands (paused, revision {} marked failed); revert deployment/{}'s pod template to revision {} (in Git, or apply the previous manifest) and rollguard rolls it back out (`kubectl rollout undo` refuses a paused Deployment)",
                    abort.user, spec.canary_revision, spec.deployment, spec.stable_revision
                )
            } else {
                format!("aborted by {}: {why}", abort.user)
            };
            return self.end(Phase::Aborted, "Aborted", message);
        }

        // Judge a fresh sample first: a bad canary rolls back whatever else is going on.
        if let Some(m) = &self.world.measurement
            && matches!(self.st.phase, Phase::Progressing | Phase::AwaitingApproval)
        {
            let judged = judge(self.run, &self.st, m, now);
            if let Some(d) = self.apply_judgement(judged) {
                return d;
            }
        }

        if let Err((reason, message)) = &self.world.routing {
            set_condition(
                &mut self.st.conditions,
                condition::ROUTING,
                false,
                reason,
                message,
                now,
            );
            let (reason, message) = (reason.clone(), message.clone());
            self.waiting(&reason, &message);
            // Hold: keep the canary as it is, send it nothing new, never advance.
            let keep = self.world.canary.map(|c| c.replicas);
            return Desired {
                canary_replicas: keep.or(Some(1)),
                weight: Ratio::default(),
                paused: true,
            };
        }
        set_condition(
            &mut self.st.conditions,
            condition::ROUTING,
            true,
            "Routed",
            "the canary's share is set as planned",
            now,
        );
        self.weight_fights();

        let desired = match self.st.phase {
            Phase::Progressing => self.progress(),
            Phase::AwaitingApproval => self.await_approval(),
            Phase::Promoting => self.promote(),
            _ => Desired {
                canary_replicas: None,
                weight: Ratio::default(),
                paused: true,
            },
        };
        self.no_traffic_to_an_empty_canary(desired)
    }

    /// A weighted route never points at a canary without a ready pod (one deleted by hand,
    /// say): its share goes back to stable until the canary serves again, and a step that
    /// had started starts over, pause and evidence included.
    fn no_traffic_to_an_empty_canary(&mut self, mut desired: Desired) -> Desired {
        let serving = self.world.canary.map_or(0, |c| c.serving);
        if self.run.router != Router::GatewayApi || desired.weight.ppm() == 0 || serving > 0 {
            return desired;
        }
        let share = desired.weight;
        desired.weight = Ratio::default();
        self.st.weight = Some(desired.weight);
        if self.st.phase == Phase::Progressing && self.st.step_started_at.take().is_some() {
            let (i, n) = (self.st.step + 1, self.run.plan.steps.len());
            self.event(
                true,
                "CanaryLost",
                format!("the canary has no ready pod: its {share} share is back on stable, and step {i}/{n} starts over once the canary serves again"),
            );
        }
        self.waiting(
            "CanaryNotReady",
            &format!("the canary has no ready pod: its {share} share is on stable until it has"),
        );
        desired
    }

    /// Returns the rollback's desired state when the sample ends the run.
    fn apply_judgement(&mut self, judged: Judged) -> Option<Desired> {
        let plan = self.run.plan;
        let now = self.now();
        let Judged {
            sample,
            judgement,
            window,
            latency_window,
            check_failures,
            stable_vs_p0,
        } = judged;
        if let Some(f) = check_failures {
            self.st.check_failures = f;
        }
        if window.is_some() {
            self.st.test = window;
        }
        if latency_window.is_some() {
            self.st.latency_test = latency_window;
        }
        if let Some(check) = stable_vs_p0 {
            self.stable_rate(check);
        }
        match &judgement {
            Judgement::Error => {
                self.st.no_data_samples += 1;
                let why = sample.message.clone().unwrap_or_default();
                set_condition(
                    &mut self.st.conditions,
                    condition::ANALYSIS,
                    false,
                    "QueryFailed",
                    &format!(
                        "holding: the analysis query failed ({} in a row): {why}",
                        self.st.no_data_samples
                    ),
                    now,
                );
            }
            Judgement::NoData => {
                self.st.no_data_samples += 1;
                let why = sample.message.clone().unwrap_or_else(|| "no data".into());
                set_condition(
                    &mut self.st.conditions,
                    condition::ANALYSIS,
                    false,
                    "NoData",
                    &format!(
                        "holding: no data ({} in a row): {why}",
                        self.st.no_data_samples
                    ),
                    now,
                );
            }
            _ => {
                self.st.no_data_samples = 0;
                clear_stalled(&mut self.st.conditions, stalled::ANALYSIS_BLIND);
                set_condition(
                    &mut self.st.conditions,
                    condition::ANALYSIS,
                    true,
                    "Measured",
                    &format!(
                        "{} requests, {} errors ({}){}: {}",
                        count_text(sample.requests),
                        count_text(sample.errors),
                        sample.rate.as_deref().unwrap_or("n/a"),
                        sample.latency.as_ref().map_or(String::new(), |l| format!(
                            ", {} slower than {} ({})",
                            count_text(l.slow),
                            l.objective,
                            l.rate.as_deref().unwrap_or("n/a")
                        )),
                        sample.verdict
                    ),
                    now,
                );
            }
        }
        let blind = matches!(judgement, Judgement::NoData | Judgement::Error);
        if blind {
            self.blind(&judgement, &sample);
        }
        let no_data_rollback = blind
            && plan.on_no_data == OnNoData::Rollback
            && self.st.no_data_samples >= plan.no_data_limit as i32;
        let bad_reason = match judgement {
            // A check counts its own failures against its own limit.
            Judgement::Bad {
                reason: judge::CHECK_FAILED,
            } => Some(judge::CHECK_FAILED),
            Judgement::Bad { reason } => {
                self.st.failed_samples += 1;
                let limit = match plan.judge {
                    Judge::Threshold { failure_limit, .. } => failure_limit as i32,
                    Judge::Sequential { .. } => 0,
                };
                (self.st.failed_samples > limit).then_some(reason)
            }
            Judgement::Error if no_data_rollback => Some("QueryFailed"),
            _ if no_data_rollback => Some("NoData"),
            _ => None,
        };
        let evidence = sample.clone();
        self.record(sample);
        let reason = bad_reason?;
        let message = rollback_message(reason, &evidence, self.st.failed_samples);
        self.st.evidence = Some(evidence);
        Some(self.end(Phase::RolledBack, reason, message))
    }

    /// A fixed p0 checked against stable's measured rate: the `Baseline` condition says when
    /// stable fails more often, with a Warning Event when that starts and every
    /// [`stable_rate::REMIND_EVERY`] while it holds; it never changes the decision. Call
    /// before the sample is recorded (the previous sample's time rate-limits the Event).
    fn stable_rate(&mut self, check: StableVsP0) {
        let now = self.now();
        match check {
            StableVsP0::Above {
                rate,
                p0,
                requests,
                errors,
            } => {
                let message = stable_rate::message(rate, p0, requests, errors);
                let set_at = self
                    .st
                    .conditions
                    .iter()
                    .find(|c| c.type_ == condition::BASELINE)
                    .map(|c| ts(&c.last_transition_time));
                let previous = self.st.last_analysis_at.as_ref().map(ts);
                if stable_rate::event_due(set_at, previous, now) {
                    self.event(true, STABLE_ABOVE_P0, message.clone());
                }
                set_condition(
                    &mut self.st.conditions,
                    condition::BASELINE,
                    false,
                    STABLE_ABOVE_P0,
                    &message,
                    now,
                );
            }
            StableVsP0::AtOrBelow => clear_condition(&mut self.st.conditions, condition::BASELINE),
            StableVsP0::Unshown => {}
        }
    }

    /// A sample without usable data (none, or a failed query): the run cannot see the canary.
    /// Warning Events at the first such sample in a row, at the limit and every ten limits
    /// after; past the limit a run that holds (`onNoData: hold`) says it is `Stalled`.
    fn blind(&mut self, judgement: &Judgement, sample: &Sample) {
        let plan = self.run.plan;
        let n = self.st.no_data_samples;
        let limit = plan.no_data_limit.max(1) as i32;
        let what = match judgement {
            Judgement::Error => "the analysis query failed",
            _ => "the analysis found no data",
        };
        let why = sample.message.as_deref().unwrap_or("no data");
        let holds = plan.on_no_data == OnNoData::Hold;
        if n == 1 || n == limit || (n > limit && (n - limit) % (10 * limit) == 0) {
            let then = if n < limit {
                format!(
                    "after {limit} in a row the run {}",
                    if holds { "is Stalled" } else { "rolls back" }
                )
            } else if holds {
                "the run holds, never promotes, and is Stalled until Prometheus answers".into()
            } else {
                "the run rolls back".into()
            };
            self.event(
                true,
                stalled::ANALYSIS_BLIND,
                format!("{what} ({n} in a row): {why}; {then}"),
            );
        }
        if holds && n >= limit {
            let now = self.now();
            set_condition(
                &mut self.st.conditions,
                condition::STALLED,
                true,
                stalled::ANALYSIS_BLIND,
                &format!(
                    "{n} samples in a row without usable data (limit {limit}, onNoData: hold), the last: {what}: {why}. The run holds and never promotes; fix the query or Prometheus, or abort the run"
                ),
                now,
            );
        }
    }

    fn progress(&mut self) -> Desired {
        let plan = self.run.plan;
        let now = self.now();
        if self.st.canary_started_at.is_none()
            && let Some(what) = self.world.earlier_canary.clone()
        {
            // Not even made: with the replicas router the user's Service would send it
            // traffic at once, and every analysis would count the earlier pods' requests.
            self.waiting(
                waiting::EARLIER_CANARY,
                &format!(
                    "{what}; the new canary is made, routed and measured only once it is gone"
                ),
            );
            return Desired {
                canary_replicas: None,
                weight: Ratio::default(),
                paused: true,
            };
        }
        let stable = self.world.stable_replicas;
        let i = self.st.step.clamp(0, plan.steps.len() as i32 - 1);
        self.st.step = i;
        let (w, pause) = plan.steps[i as usize];
        let want = self.run.size_for(w, stable);
        let ready = self
            .world
            .canary
            .is_some_and(|c| c.replicas >= want && c.ready >= want);

        if self.st.step_started_at.is_none()
            && let Some(cap) = plan.max_share
        {
            let real = self.share_of(w, want, stable);
            if real > cap {
                let message = format!(
                    "step {}/{}: the {w} slice would give the canary {real} of traffic ({want} pod(s) next to {stable}), above the tier's maxShare {cap}; scale the Deployment up, use the Gateway API router, or raise the cap",
                    i + 1,
                    plan.steps.len()
                );
                self.waiting(stalled::SHARE_ABOVE_CAP, &message);
                set_condition(
                    &mut self.st.conditions,
                    condition::STALLED,
                    true,
                    stalled::SHARE_ABOVE_CAP,
                    &message,
                    now,
                );
                // The canary keeps the slice it had (none before the first step).
                return Desired {
                    canary_replicas: self.world.canary.map(|c| c.replicas).filter(|_| i > 0),
                    weight: self.current_weight(),
                    paused: true,
                };
            }
            clear_stalled(&mut self.st.conditions, stalled::SHARE_ABOVE_CAP);
        }

        if self.st.step_started_at.is_none() {
            if !ready {
                let have = self.world.canary.map(|c| c.ready).unwrap_or(0);
                self.waiting(
                    "CanaryNotReady",
                    &format!("waiting for the canary: {have}/{want} pods ready for the {w} slice"),
                );
                // Keep the share the canary had until the bigger canary is ready.
                return Desired {
                    canary_replicas: Some(want),
                    weight: self.current_weight(),
                    paused: true,
                };
            }
            // Ready pods are not yet routable: a gateway routes to the routing Service's
            // endpoints, which the EndpointSlice controller publishes after the pods are
            // Ready. A weight before them is a share the gateway answers itself (503).
            if let Some(have) = self.world.canary.and_then(|c| c.endpoints)
                && have < want
            {
                self.waiting(
                    waiting::CANARY_NOT_ROUTABLE,
                    &format!(
                        "waiting for the canary's endpoints: {have}/{want} ready pods are endpoints of its routing Service, which the gateway routes to; the {w} slice starts once they all are"
                    ),
                );
                return Desired {
                    canary_replicas: Some(want),
                    weight: self.current_weight(),
                    paused: true,
                };
            }
            self.not_waiting();
            self.st.weight = Some(w);
            self.st.step_started_at = Some(start_time(now));
            if self.st.canary_started_at.is_none() {
                self.st.canary_started_at = Some(start_time(now));
            }
            self.event(
                false,
                "StepStarted",
                format!(
                    "step {}/{}: canary {} gets {w} of traffic for {}",
                    i + 1,
                    plan.steps.len(),
                    self.run.spec.canary_revision,
                    crate::api::quantity::format_duration(pause)
                ),
            );
        }
        let desired = Desired {
            canary_replicas: Some(want),
            weight: w,
            paused: true,
        };
        if self.contested {
            self.hold_for_weights();
            return desired;
        }

        let started = self.st.step_started_at.as_ref().map(ts).unwrap_or(now);
        let control = self.run.spec.control.as_ref();
        let promote = control.and_then(|c| c.promote.as_ref());
        let skip_all = promote.is_some_and(|p| p.full);
        let skip_this = skip_all || promote.is_some_and(|p| p.step == i);
        if control.is_some_and(|c| c.pause.is_some()) {
            let who = control
                .and_then(|c| c.pause.as_ref())
                .map(|p| p.user.clone())
                .unwrap_or_default();
            self.waiting("Paused", &format!("paused by {who}; resume to continue"));
            return desired;
        }
        let pause_over = now >= after(started, pause);
        if !pause_over && !skip_this {
            self.not_waiting();
            return desired;
        }
        let latest = self.latest_in_step().cloned();
        // A wider slice needs evidence from this one: a sample that judged the canary
        // (not one with too few requests, no data or an error). A modelled peer whose steps
        // move on their pauses needs none (`rollguard simulate` only).
        let on_pause = plan.peer().is_some_and(|p| p.steps_on_pause);
        let healthy = on_pause
            || latest.as_ref().is_some_and(|s| {
                matches!(
                    s.verdict,
                    Verdict::Pass | Verdict::Continue | Verdict::AcceptGood
                )
            });
        if !healthy && !skip_this {
            let why = match &latest {
                None => "no analysis sample in this step yet".to_string(),
                Some(s) => format!(
                    "the latest sample was {}{}",
                    s.verdict,
                    s.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            };
            self.waiting(
                "WaitingForEvidence",
                &format!(
                    "step {}/{} has ended its pause but {why}",
                    i + 1,
                    plan.steps.len()
                ),
            );
            return desired;
        }
        // A sequential tier also needs its test to have accepted the canary at this slice.
        let mut undecided_promote = false;
        if !skip_this {
            match gate(self.run, &self.st, now, after(started, pause)) {
                Gate::Open => {}
                Gate::Wait(reason, why) => {
                    self.waiting(reason, &why);
                    return desired;
                }
                Gate::Rollback(why) => return self.end(Phase::RolledBack, "Inconclusive", why),
                Gate::Promote(why) => {
                    self.event(true, "Inconclusive", why);
                    undecided_promote = true;
                }
            }
        }
        let last = i as usize + 1 >= plan.steps.len();
        let n = plan.steps.len();
        let promoter = promote.map(|p| p.user.clone()).unwrap_or_default();
        if !last && !skip_all {
            if !pause_over || !healthy {
                let what = match (pause_over, healthy) {
                    (false, false) => "the pause and the evidence",
                    (false, true) => "the pause",
                    _ => "the evidence",
                };
                self.overridden(&promoter, i, format!("{what} of step {}/{n} ({w})", i + 1));
            }
            self.st.step = i + 1;
            self.st.step_started_at = None;
            self.st.step_display = Some(format!("{}/{}", i + 2, plan.steps.len()));
            // The next slice takes effect in this same pass when its canary is ready.
            return self.progress();
        }
        // Last step done: promotion needs enough evidence that the canary is good.
        let evidence = on_pause || self.enough_evidence(latest.as_ref());
        if skip_all && (!last || !pause_over || !healthy || !evidence) {
            let mut what = vec![];
            if !last {
                what.push(format!("steps {}-{n}", i + 2));
            }
            if !pause_over || !last {
                what.push(format!("the pause of step {}/{n}", i + 1));
            }
            if !healthy || !evidence {
                what.push("the evidence to promote".into());
            }
            self.overridden(&promoter, i, what.join(", "));
        }
        if skip_this && !skip_all && !pause_over {
            self.overridden(
                &promoter,
                i,
                format!("the pause of step {}/{n} ({w})", i + 1),
            );
        }
        let evidence_ok = skip_all || undecided_promote || evidence;
        if !evidence_ok {
            self.waiting(
                "NotEnoughEvidence",
                &format!(
                    "all steps passed but the canary has not yet shown it is good (needs {} requests{})",
                    plan.min_requests,
                    if matches!(plan.judge, Judge::Sequential { .. }) {
                        " or the sequential test's accept boundary"
                    } else {
                        " in a passing sample"
                    }
                ),
            );
            return desired;
        }
        if plan.require_approval && !self.approved() {
            self.st.phase = Phase::AwaitingApproval;
            self.waiting(
                "AwaitingApproval",
                "all steps passed; waiting for `kubectl rollguard approve`",
            );
            self.event(
                false,
                "AwaitingApproval",
                format!(
                    "canary {} passed all steps; waiting for an approval",
                    self.run.spec.canary_revision
                ),
            );
            return desired;
        }
        self.start_promotion()
    }

    /// Another field manager writing the route's weights ([`World::weight_fight`]): each fight
    /// is counted in `status.weightFights` (rollguard writes its weights back in the same
    /// pass, so the canary never keeps a bigger share than its step's past this pass). After
    /// [`fight::FIGHTS_TO_HOLD`] in one step the run holds, says so in `WeightsContested`
    /// and a Warning Event naming the manager, and goes on once the manager has left the
    /// weights alone for [`fight::QUIET`].
    fn weight_fights(&mut self) {
        if self.run.router != Router::GatewayApi
            || !matches!(
                self.st.phase,
                Phase::Progressing | Phase::AwaitingApproval | Phase::Promoting
            )
        {
            return;
        }
        let now = self.now();
        let was = self
            .st
            .conditions
            .iter()
            .any(|c| c.type_ == condition::WEIGHTS_CONTESTED);
        let t = fight::tally(
            self.st.weight_fights.as_ref(),
            was,
            self.st.step,
            self.world.weight_fight.as_ref(),
            now,
        );
        self.st.weight_fights = t.fights;
        // Promoting is past the steps: its fights are counted and written back, nothing held.
        self.contested = t.held && self.st.phase != Phase::Promoting;
        let Some(f) = self.st.weight_fights.clone() else {
            return;
        };
        let (i, n) = (f.step + 1, self.run.plan.steps.len());
        if self.contested {
            let message = format!(
                "{} wrote the weights of HTTPRoute {} {} times in step {i}/{n} ({} in this run); rollguard writes its weights back each time and holds the run (no next step, no promotion) until {} leaves them alone for {}s. Let rollguard own the weights: docs/gitops.md, \"Weights and GitOps\"",
                f.manager,
                f.route,
                f.in_step,
                f.total,
                f.manager,
                fight::QUIET.as_secs()
            );
            set_condition(
                &mut self.st.conditions,
                condition::WEIGHTS_CONTESTED,
                true,
                WEIGHT_FIGHT,
                &message,
                now,
            );
            if t.started {
                self.event(true, WEIGHT_FIGHT, message);
            }
        } else if t.ended || was {
            clear_condition(&mut self.st.conditions, condition::WEIGHTS_CONTESTED);
            if t.ended {
                self.event(
                    false,
                    "WeightFightOver",
                    format!(
                        "{} has left the weights of HTTPRoute {} alone for {}s: the run goes on from step {i}/{n}",
                        f.manager,
                        f.route,
                        fight::QUIET.as_secs()
                    ),
                );
            }
        }
    }

    fn hold_for_weights(&mut self) {
        let Some(f) = self.st.weight_fights.clone() else {
            return;
        };
        let (i, n) = (self.st.step + 1, self.run.plan.steps.len());
        self.waiting(
            condition::WEIGHTS_CONTESTED,
            &format!(
                "holding at step {i}/{n}: {} keeps writing the weights of HTTPRoute {}; the run goes on once it has left them alone for {}s",
                f.manager,
                f.route,
                fight::QUIET.as_secs()
            ),
        );
    }

    fn enough_evidence(&self, latest: Option<&Sample>) -> bool {
        let plan = self.run.plan;
        let Some(s) = latest else { return false };
        match plan.judge {
            Judge::Threshold { .. } => s.verdict == Verdict::Pass,
            // The test accepted the canary at this (the last) slice: see `judge::gate`.
            Judge::Sequential { .. } => self
                .st
                .test
                .as_ref()
                .is_some_and(|w| w.accepted_step == Some(self.st.step)),
        }
    }

    fn await_approval(&mut self) -> Desired {
        let last = self.run.plan.steps.len() as i32 - 1;
        let w = self.step_weight(last);
        let want = self.run.size_for(w, self.world.stable_replicas);
        let (counted, refused) = approval::tally(self.run.spec, self.st.step);
        if counted.is_empty() || self.contested {
            if self.contested {
                self.hold_for_weights();
            } else if !refused.is_empty() {
                let message = format!("approval not counted: {}", refused.join("; "));
                let said = self.st.conditions.iter().any(|c| {
                    c.type_ == condition::WAITING
                        && c.reason == APPROVAL_NOT_COUNTED
                        && c.message == message
                });
                if !said {
                    self.event(true, APPROVAL_NOT_COUNTED, message.clone());
                }
                self.waiting(APPROVAL_NOT_COUNTED, &message);
            }
            return Desired {
                canary_replicas: Some(want),
                weight: w,
                paused: true,
            };
        }
        let who: Vec<&str> = counted.iter().map(|a| a.user.as_str()).collect();
        let author = match &self.run.spec.author {
            Some(a) => format!(" (the change is {a}'s)"),
            None => " (the change's author is unknown: the pause gate was not in force, so four eyes could not be checked)".into(),
        };
        self.event(
            false,
            "Approved",
            format!("approved by {}{author}", who.join(", ")),
        );
        self.start_promotion()
    }

    /// Whether an approval that counts is there (see [`approval`]).
    fn approved(&self) -> bool {
        !approval::tally(self.run.spec, self.st.step).0.is_empty()
    }

    fn start_promotion(&mut self) -> Desired {
        self.st.phase = Phase::Promoting;
        self.not_waiting();
        self.event(
            false,
            "Promoting",
            format!(
                "canary {} passed; the Deployment rolls out the new revision",
                self.run.spec.canary_revision
            ),
        );
        self.promote()
    }

    fn promote(&mut self) -> Desired {
        let stable = self.world.stable_replicas;
        let last = self.run.plan.steps.len() as i32 - 1;
        let last_w = self.step_weight(last);
        let full = Ratio::from_ppm(1_000_000).unwrap_or_default();
        let desired = match self.run.router {
            // Canary pods keep serving their share while the Deployment's own rolling
            // update replaces the stable pods.
            Router::Replicas => Desired {
                canary_replicas: Some(self.run.size_for(last_w, stable)),
                weight: last_w,
                paused: false,
            },
            // The stable Service follows the Deployment's newest ReplicaSet, so first move
            // all traffic to a full-size canary, then let the Deployment roll. The canary is
            // sized for the Deployment's demand (spec.replicas, which an HPA may change while
            // it rolls) and never shrinks before the run ends: an HPA that scales the
            // Deployment down while its own pods get no traffic must not take pods from the
            // revision that carries all of it.
            Router::GatewayApi => {
                let have = self.world.canary.map_or(0, |c| c.replicas);
                let want = stable.max(1).max(have);
                let ready = self
                    .world
                    .canary
                    .is_some_and(|c| c.replicas >= want && c.ready >= want);
                if self.current_weight() == full || ready {
                    self.st.weight = Some(full);
                    Desired {
                        canary_replicas: Some(want),
                        weight: full,
                        paused: false,
                    }
                } else {
                    self.waiting(
                        "CanaryScalingUp",
                        &format!("promoting: scaling the canary to {want} pods before moving all traffic to it"),
                    );
                    return Desired {
                        canary_replicas: Some(want),
                        weight: self.current_weight(),
                        paused: true,
                    };
                }
            }
        };
        if !self.world.rollout_complete {
            self.waiting(
                "RollingOut",
                "promoting: waiting for the Deployment to finish rolling out the new revision",
            );
            return desired;
        }
        self.mark = Some(RevisionMark::Stable(self.run.spec.canary_revision.clone()));
        let message = format!(
            "revision {} is now stable (tier {})",
            self.run.spec.canary_revision, self.run.spec.tier.name
        );
        let d = self.end(Phase::Succeeded, "Promoted", message);
        self.mark = Some(RevisionMark::Stable(self.run.spec.canary_revision.clone()));
        d
    }
}

fn rollback_message(reason: &str, s: &Sample, failed: i32) -> String {
    let counts = format!(
        "{} canary requests, {} errors ({})",
        count_text(s.requests),
        count_text(s.errors),
        s.rate.as_deref().unwrap_or("n/a")
    );
    match reason {
        "ErrorRateAboveThreshold" => format!(
            "rolled back: {counts} is above the threshold {} ({failed} failed sample(s)); {}",
            s.threshold.as_deref().unwrap_or("?"),
            s.message.as_deref().unwrap_or("")
        ),
        "SequentialTestRejected" => format!(
            "rolled back: {counts}; the sequential test's statistic {} crossed the rollback boundary {} (p0 {}, p1 {})",
            s.statistic.as_deref().unwrap_or("?"),
            s.upper_bound.as_deref().unwrap_or("?"),
            s.baseline.as_deref().unwrap_or("?"),
            s.threshold.as_deref().unwrap_or("?")
        ),
        "SlowRequestsAboveThreshold" | "SlowRequestsTestRejected" => {
            let Some(l) = &s.latency else {
                return format!("rolled back: too many slow requests ({counts})");
            };
            let slow = format!(
                "{} of {} canary requests slower than {} ({})",
                count_text(l.slow),
                count_text(l.requests),
                l.objective,
                l.rate.as_deref().unwrap_or("n/a")
            );
            if reason == "SlowRequestsAboveThreshold" {
                format!(
                    "rolled back: {slow} is above latency.maxSlowRate {} ({failed} failed sample(s)); {}",
                    l.threshold.as_deref().unwrap_or("?"),
                    l.message.as_deref().unwrap_or("")
                )
            } else {
                format!(
                    "rolled back: {slow}; the slow requests' sequential test statistic {} crossed the rollback boundary {} (p0 {}, p1 {}); errors: {counts}",
                    l.statistic.as_deref().unwrap_or("?"),
                    l.upper_bound.as_deref().unwrap_or("?"),
                    l.baseline.as_deref().unwrap_or("?"),
                    l.threshold.as_deref().unwrap_or("?")
                )
            }
        }
        judge::CHECK_FAILED => format!(
            "rolled back: {}; errors: {counts}",
            s.message.as_deref().unwrap_or("a check failed")
        ),
        judge::NO_DATA_FAILED => format!(
            "rolled back: {failed} failed sample(s), the last without data: {}",
            s.message.as_deref().unwrap_or("no data")
        ),
        _ => format!(
            "rolled back: no data for too many samples in a row ({})",
            s.message.as_deref().unwrap_or("no data")
        ),
    }
}

/// A run ends because its Deployment is released ([`World::released`]): superseded, all
/// traffic to stable, no canary, the Deployment no longer paused. The controller says so in
/// one `Released` Event about the Deployment (released with or without a run in flight), so
/// no event or revision mark comes from here. Needs no plan: a run whose plan no longer
/// parses still ends.
pub fn release(status: &RolloutRunStatus, why: &str, now: Timestamp) -> Outcome {
    let mut st = status.clone();
    st.phase = Phase::Superseded;
    st.ended_at = Some(Time(now));
    st.reason = Some("Released".into());
    st.message = Some(format!("the run ended because {why}"));
    st.weight = Some(Ratio::ZERO);
    Outcome {
        status: st,
        desired: Desired {
            canary_replicas: None,
            weight: Ratio::default(),
            paused: false,
        },
        events: vec![],
        mark: None,
        wake_at: None,
    }
}

/// The status of a run in flight whose Deployment two or more policies select: it cannot
/// move until one lets go, and says so in `Stalled` (unchanged when it already does).
pub fn stalled_by_conflict(
    status: &RolloutRunStatus,
    policies: &[String],
    now: Timestamp,
) -> RolloutRunStatus {
    let mut st = status.clone();
    set_condition(
        &mut st.conditions,
        condition::STALLED,
        true,
        stalled::POLICY_CONFLICT,
        &format!(
            "RolloutPolicies {} all select the Deployment: the run holds where it is (Deployment paused) until only one does",
            policies.join(", ")
        ),
        now,
    );
    st
}

/// The reason of the Event that announces a run's end in `phase`.
pub fn end_event_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::RolledBack => "RolledBack",
        Phase::Aborted => "Aborted",
        Phase::Succeeded => "Promoted",
        _ => "Superseded",
    }
}

/// Runs the machine once.
pub fn reconcile(run: &RunView, status: &RolloutRunStatus, world: &World) -> Outcome {
    Machine {
        run,
        world,
        st: status.clone(),
        events: Vec::new(),
        mark: None,
        contested: false,
    }
    .run()
}

#[cfg(test)]
mod tests;
