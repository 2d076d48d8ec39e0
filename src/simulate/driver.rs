//! The virtual-time driver: feeds the operator's own run state machine
//! ([`crate::run::reconcile`]) the way the controller's `drive` does, with the clock, the
//! canary Deployment and Prometheus replaced by a [`Source`]. Nothing here decides anything
//! about the run: every step, sample verdict, rollback and promotion comes from the machine.
//!
//! Per pass, as in the controller: take an analysis sample if [`crate::run::analysis_due`]
//! says so (queries rendered from the policy's templates with `{{elapsed}}` = time since the
//! canary started, at least one interval), run the machine, then make its desired state real:
//! the canary gets the replicas it asked for and they are ready at once, traffic follows the
//! router (replicas: the canary's pods over all pods; Gateway API: the exact weight) after the
//! routing delay, and an unpaused Deployment finishes its rollout by the next pass. Then sleep until the machine's
//! `wake_at`, as the controller's requeue does.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Serialize;

use super::policy::{ChosenTier, PolicyFile};
use crate::analysis::request::{AnalysisRequest, InvalidField, SampleVars};
use crate::api::run::{Approval, MatchedTier, Phase, RolloutRunSpec, RolloutRunStatus, Sample};
use crate::plan::{Plan, share_of};
use crate::run::{
    CanaryObserved, Measurement, Queries, Router, RunView, World, analysis_due, elapsed, reconcile,
};

pub use crate::analysis::request::{Counts, QueryWindow};

/// Where traffic and counters come from: the synthetic traffic model of `simulate`, or
/// Prometheus' recorded data in `backtest`.
pub trait Source {
    /// Traffic flowed up to `to` (since the start) with the canary taking `share` of it.
    fn advance(&mut self, to: Duration, share: f64);
    /// What the queries return at `now` when they count over the last `window`; with
    /// `stable`, the stable revision's counts over the same window too.
    fn counts(&mut self, now: Duration, window: Duration, stable: bool) -> Counts;
}

/// A run ready to be driven: its spec and plan exactly as the operator would snapshot them.
#[derive(Debug, Clone)]
pub struct Setup {
    pub spec: RolloutRunSpec,
    pub plan: Plan,
    pub router: Router,
    /// Stable pods (the Deployment's `spec.replicas`).
    pub stable_replicas: i32,
    pub window: QueryWindow,
    /// The queries the operator would send for this run.
    pub request: AnalysisRequest,
    /// Their variables for the simulated canary (`elapsed` unset).
    pub sample: SampleVars,
    /// The errors query answers 0 when it has no series (it ends in `or vector(0)`).
    pub errors_or_zero: bool,
    /// A modelled peer counts the whole service, stable and canary together.
    pub service_wide: bool,
    /// A modelled peer's first sample waits for this step (its index) to start.
    pub analysis_from: i32,
}

/// Whether a query falls back to 0 when its series do not exist (`... or vector(0)`).
pub fn falls_back_to_zero(query: &str) -> bool {
    let q: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    q.contains("orvector(0)")
}

impl Setup {
    /// The run the operator would start for `deployment` under `policy` with `tier`.
    pub fn new(
        policy: &PolicyFile,
        tier: ChosenTier,
        deployment: &str,
        stable_replicas: i32,
    ) -> Result<Setup, InvalidField> {
        let router = if policy.spec.traffic.gateway_api.is_some() {
            Router::GatewayApi
        } else {
            Router::Replicas
        };
        let request = AnalysisRequest::for_plan(&policy.spec.analysis, &tier.plan)?;
        let sample = SampleVars {
            namespace: policy.namespace.clone(),
            deployment: deployment.to_string(),
            service: deployment.to_string(),
            route: deployment.to_string(),
            elapsed: Duration::ZERO,
            // Shown in the rendered queries; the synthetic traffic has one canary revision.
            canary_revision: Some("new-revision".into()),
            stable_revision: Some("stable-revision".into()),
        };
        let window = request.window(&sample);
        let spec = RolloutRunSpec {
            deployment: deployment.to_string(),
            policy: policy.name.clone(),
            stable_revision: "stable-revision".into(),
            canary_revision: "new-revision".into(),
            tier: MatchedTier {
                name: tier.tier.name.clone(),
                reason: tier.reason,
            },
            plan: tier.tier,
            analysis: policy.spec.analysis.clone(),
            router: router.name().into(),
            author: None,
            approvals: vec![],
            control: None,
        };
        Ok(Setup {
            spec,
            plan: tier.plan,
            router,
            stable_replicas: stable_replicas.max(1),
            window,
            request,
            sample,
            errors_or_zero: falls_back_to_zero(
                policy.spec.analysis.errors_template().unwrap_or_default(),
            ),
            service_wide: policy.model.service_wide,
            analysis_from: policy.model.analysis_from_step.saturating_sub(1) as i32,
        })
    }

    /// The queries as the controller would send them with `{{elapsed}}` = `elapsed`.
    pub fn queries(&self, elapsed: Duration) -> Queries {
        let sample = SampleVars {
            elapsed,
            ..self.sample.clone()
        };
        // Both revisions are set, so nothing is refused.
        match self.request.render(&sample) {
            Ok(r) => Queries {
                requests: r.requests,
                errors: r.errors,
                latency: r.latency.map(|(canary, _)| canary),
                checks: r.checks,
            },
            Err(_) => Queries::default(),
        }
    }
}

/// One entry of a run's timeline.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Seconds since the start of the run.
    pub at_seconds: f64,
    #[serde(flatten)]
    pub what: What,
}

/// What happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum What {
    /// An analysis sample as the machine recorded it.
    Sample(Box<Sample>),
    /// An Event the operator would have emitted.
    Event {
        reason: String,
        message: String,
        warning: bool,
    },
}

/// How a driven run went.
#[derive(Debug, Clone)]
pub struct Drive {
    /// The run's status at the end.
    pub status: RolloutRunStatus,
    /// Steps whose slice took effect.
    pub steps_reached: u32,
    /// When the canary first got traffic, since the start.
    pub canary_started: Option<Duration>,
    /// When the run ended, since the start; `None` if it was still going at the horizon.
    pub ended: Option<Duration>,
    /// Samples and Events, when asked for.
    pub timeline: Vec<Entry>,
    /// The canary's share of traffic in effect when the run ended: with a routing delay,
    /// still the one it had before the end asked for none.
    pub share_at_end: f64,
}

/// Passes at one instant before time must move on (each pass makes the world more like
/// what the machine wants; two or three suffice).
const PASSES_PER_INSTANT: u32 = 8;

fn since(start: Timestamp, t: &Time) -> Duration {
    Duration::try_from(t.0.duration_since(start)).unwrap_or(Duration::ZERO)
}

fn at(start: Timestamp, d: Duration) -> Timestamp {
    start
        .checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// What the run does not decide: when its approvals come, when its Deployment is released,
/// and how long a new share takes to take effect.
#[derive(Debug, Clone, Copy, Default)]
pub struct Externals {
    /// An approval is given this long after the run asks for one.
    pub approve_after: Duration,
    /// The policy stops governing the Deployment at this time since the start.
    pub release_at: Option<Duration>,
    /// A share the run asks for takes effect this long later (route propagation, endpoints).
    pub routing_delay: Duration,
}

/// The canary's share of traffic: the one in effect, and those asked for that take effect
/// later (a routing delay), in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routed {
    pub share: f64,
    pub pending: Vec<(Duration, f64)>,
}

impl Routed {
    /// The run asks for `share` at `now`: it takes effect `delay` later (at once without a
    /// delay), after the changes asked for before it. Asking again for the share last asked
    /// for changes nothing.
    pub fn ask(&mut self, share: f64, now: Duration, delay: Duration) {
        let target = self.pending.last().map_or(self.share, |(_, s)| *s);
        if share == target {
            return;
        }
        if delay.is_zero() {
            self.share = share;
            self.pending.clear();
        } else {
            self.pending.push((now + delay, share));
        }
    }

    /// When the next pending share takes effect.
    pub fn due(&self) -> Option<Duration> {
        self.pending.first().map(|(at, _)| *at)
    }

    /// Lets traffic flow to `now`, each pending share from its own time.
    pub fn flow<S: Source>(&mut self, source: &mut S, now: Duration) {
        while let Some(&(at, next)) = self.pending.first()
            && at <= now
        {
            source.advance(at, self.share);
            self.share = next;
            self.pending.remove(0);
        }
        source.advance(now, self.share);
    }
}

/// What the operator says when a policy no longer selects a Deployment.
pub const RELEASED: &str = "its RolloutPolicy no longer selects it";

/// Drives one run from `start` until it ends or `horizon` has passed.
pub fn drive<S: Source>(
    setup: &Setup,
    start: Timestamp,
    horizon: Duration,
    people: Externals,
    source: &mut S,
    trace: bool,
) -> Drive {
    let approve_after = people.approve_after;
    let mut spec = setup.spec.clone();
    let mut status = RolloutRunStatus::default();
    let mut canary: Option<CanaryObserved> = None;
    let mut unpaused = false;
    let mut routed = Routed::default();
    let mut share_at_end: f64;
    let mut now = Duration::ZERO;
    let mut passes = 0;
    let mut awaiting_since: Option<Duration> = None;
    let mut steps_reached = 0u32;
    let mut timeline = Vec::new();
    let mut ended = None;
    loop {
        routed.flow(source, now);
        let ts = at(start, now);
        let view = RunView {
            spec: &spec,
            plan: &setup.plan,
            router: setup.router,
        };
        // A modelled peer whose analysis starts with a later step takes no sample before it,
        // and its first one as that step starts (Argo Rollouts' `startingStep`).
        let analysing = status.step >= setup.analysis_from;
        let measurement = (analysing && analysis_due(&view, &status, ts)).then(|| {
            // As the controller's `measure`.
            let elapsed = elapsed(&status, ts);
            let window = match setup.window {
                QueryWindow::SinceStart => elapsed,
                QueryWindow::Last(w) => w,
            };
            let queries = if trace {
                setup.queries(elapsed)
            } else {
                Queries::default()
            };
            let stable_too = setup.request.stable_baseline() || setup.service_wide;
            match source.counts(now, window, stable_too) {
                Counts::Values {
                    requests,
                    errors,
                    stable,
                    latency,
                    checks,
                } => {
                    let (requests, errors, stable) = if setup.service_wide {
                        let (r, e) = stable.unwrap_or((0.0, 0.0));
                        (requests + r, errors + e, None)
                    } else {
                        (requests, errors, stable)
                    };
                    Measurement::Counts {
                        latency,
                        checks,
                        requests,
                        errors,
                        stable,
                        queries,
                    }
                }
                Counts::NoData(why) => Measurement::NoData { why, queries },
            }
        });
        let world = World {
            now: ts,
            template_revision: spec.canary_revision.clone(),
            stable_replicas: setup.stable_replicas,
            rollout_complete: unpaused,
            mid_rollout: Some(false),
            canary,
            earlier_canary: None,
            routing: Ok(()),
            measurement,
            released: people
                .release_at
                .filter(|t| now >= *t)
                .map(|_| RELEASED.to_string()),
            // The simulated Deployment is held paused between runs (no admission to gate it).
            pause_gate: false,
            weight_fight: None,
        };
        let out = reconcile(&view, &status, &world);
        if trace {
            if out.status.sample_count > status.sample_count
                && let Some(s) = out.status.samples.last()
            {
                timeline.push(Entry {
                    at_seconds: now.as_secs_f64(),
                    what: What::Sample(Box::new(s.clone())),
                });
            }
            for e in &out.events {
                timeline.push(Entry {
                    at_seconds: now.as_secs_f64(),
                    what: What::Event {
                        reason: e.reason.to_string(),
                        message: e.message.clone(),
                        warning: e.warning,
                    },
                });
            }
        }
        status = out.status;
        if status.step_started_at.is_some() && status.phase == Phase::Progressing {
            steps_reached = steps_reached.max(status.step.max(0) as u32 + 1);
        }
        // Make the desired state real: the canary is ready as soon as it is asked for.
        let next_canary = out.desired.canary_replicas.map(|r| CanaryObserved {
            replicas: r,
            ready: r,
            serving: r,
            // The simulated gateway routes to the canary's pods as soon as they are ready.
            endpoints: None,
        });
        let mut changed = next_canary != canary || unpaused == out.desired.paused;
        canary = next_canary;
        unpaused = !out.desired.paused;
        let asked = match setup.router {
            Router::Replicas => {
                canary.map_or(0.0, |c| share_of(c.ready, setup.stable_replicas).as_f64())
            }
            Router::GatewayApi => out.desired.weight.as_f64(),
        };
        // What the canary had before this pass asked for more or less (at the end: none).
        share_at_end = routed.share;
        routed.ask(asked, now, people.routing_delay);
        if status.phase.is_terminal() {
            ended = Some(now);
            break;
        }
        let mut approval_due = None;
        if status.phase == Phase::AwaitingApproval && spec.approvals.is_empty() {
            let asked = *awaiting_since.get_or_insert(now);
            let due = asked + approve_after;
            if now >= due {
                spec.approvals.push(Approval {
                    user: "rollguard-simulate".into(),
                    groups: vec![],
                    time: Time(ts),
                    run: None,
                    revision: Some(spec.canary_revision.clone()),
                    step: Some(status.step),
                });
                changed = true;
            } else {
                approval_due = Some(due);
            }
        }
        if changed && passes < PASSES_PER_INSTANT {
            passes += 1;
            continue;
        }
        passes = 0;
        let since_start = |t: Timestamp| Duration::try_from(t.duration_since(start)).ok();
        let mut wake = out.wake_at.and_then(since_start);
        if status.step < setup.analysis_from {
            // The machine asks for the sample the peer does not take yet: wake at the pause's
            // end instead.
            let step_end = status.step_started_at.as_ref().and_then(|t| {
                let (_, pause) = setup.plan.steps.get(status.step.max(0) as usize)?;
                since_start(t.0).map(|d| d + *pause)
            });
            wake = step_end.or(wake);
        }
        let release_due = people.release_at.filter(|t| *t > now);
        let next = [wake, approval_due, release_due, routed.due()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(horizon);
        if now >= horizon {
            break;
        }
        now = next.max(now + Duration::from_millis(1)).min(horizon);
    }
    source.advance(now, 0.0);
    let canary_started = status.canary_started_at.as_ref().map(|t| since(start, t));
    Drive {
        status,
        steps_reached,
        canary_started,
        ended,
        timeline,
        share_at_end,
    }
}
