//! Scenario and table tests of the run state machine: given a run and what the controller
//! observed, what the machine wants and how the status moves.

use super::*;
use crate::api::policy::{AnalysisSpec, Decision, SequentialSpec, Step, Tier};
use crate::api::run::{Approval, Command, MatchedTier, PromoteCommand, RunControl, Verdict};

fn tier(decision: Decision, steps: &[(&str, &str)], approval: bool) -> Tier {
    Tier {
        name: "t".into(),
        match_: None,
        steps: steps
            .iter()
            .map(|(w, p)| Step {
                weight: (*w).into(),
                pause: (*p).into(),
            })
            .collect(),
        max_error_rate: "1%".into(),
        decision,
        failure_limit: 0,
        threshold: None,
        sequential: (decision == Decision::Sequential).then(SequentialSpec::default),
        min_requests: None,
        require_approval: approval,
        allow_self_approval: false,
        allow_service_account_approval: false,
        max_share: None,
        latency: None,
    }
}

fn analysis() -> AnalysisSpec {
    AnalysisSpec {
        interval: "10s".into(),
        prometheus: None,
        preset: None,
        requests: Some("r".into()),
        errors: Some("e".into()),
        latency: None,
        checks: Vec::new(),
        min_requests: 100,
        on_no_data: OnNoData::Hold,
        no_data_limit: 2,
    }
}

fn spec(t: Tier, router: Router) -> RolloutRunSpec {
    RolloutRunSpec {
        deployment: "shop".into(),
        policy: "p".into(),
        stable_revision: "old".into(),
        canary_revision: "new".into(),
        tier: MatchedTier {
            name: t.name.clone(),
            reason: "test".into(),
        },
        plan: t,
        analysis: analysis(),
        router: router.name().into(),
        author: Some("author".into()),
        approvals: vec![],
        control: None,
    }
}

/// A harness that drives one run through virtual time.
struct Sim {
    spec: RolloutRunSpec,
    plan: Plan,
    router: Router,
    status: RolloutRunStatus,
    now: Timestamp,
    stable: i32,
    canary: Option<CanaryObserved>,
    template: String,
    rollout_complete: bool,
    mid_rollout: Option<bool>,
    routing: Result<(), (String, String)>,
    earlier: Option<String>,
    released: Option<String>,
    pause_gate: bool,
    weight_fight: Option<Fight>,
    /// With the Gateway API router: how many of the canary's ready pods its routing
    /// Service lists as endpoints (`None`: not reported).
    published: Option<i32>,
    last: Option<Outcome>,
}

impl Sim {
    fn new(t: Tier, router: Router) -> Sim {
        Sim::with_analysis(t, router, analysis())
    }

    fn with_analysis(t: Tier, router: Router, analysis: AnalysisSpec) -> Sim {
        let spec = RolloutRunSpec {
            analysis,
            ..spec(t, router)
        };
        let plan = Plan::resolve(&spec.plan, &spec.analysis, "t").expect("plan");
        Sim {
            spec,
            plan,
            router,
            status: RolloutRunStatus::default(),
            now: Timestamp::from_second(1_800_000_000).expect("ts"),
            stable: 9,
            canary: None,
            template: "new".into(),
            rollout_complete: false,
            mid_rollout: Some(false),
            routing: Ok(()),
            earlier: None,
            released: None,
            pause_gate: false,
            weight_fight: None,
            published: None,
            last: None,
        }
    }

    fn tick(&mut self, m: Option<Measurement>) -> &Outcome {
        let run = RunView {
            spec: &self.spec,
            plan: &self.plan,
            router: self.router,
        };
        let world = World {
            now: self.now,
            template_revision: self.template.clone(),
            stable_replicas: self.stable,
            rollout_complete: self.rollout_complete,
            mid_rollout: self.mid_rollout,
            canary: self.canary,
            earlier_canary: self.earlier.clone(),
            routing: self.routing.clone(),
            measurement: m,
            released: self.released.clone(),
            pause_gate: self.pause_gate,
            weight_fight: self.weight_fight.take(),
        };
        let out = reconcile(&run, &self.status, &world);
        self.status = out.status.clone();
        // The controller makes the desired canary real at once and it becomes ready.
        let published = self.published;
        self.canary = out.desired.canary_replicas.map(|r| CanaryObserved {
            replicas: r,
            ready: r,
            serving: r,
            endpoints: published.map(|p| p.min(r)),
        });
        self.last = Some(out);
        self.last.as_ref().expect("just set")
    }

    fn advance(&mut self, secs: i64) {
        self.now += jiff::SignedDuration::from_secs(secs);
    }

    fn due(&self) -> bool {
        let run = RunView {
            spec: &self.spec,
            plan: &self.plan,
            router: self.router,
        };
        analysis_due(&run, &self.status, self.now)
    }

    /// Advance to the next wake-up, take a sample if due, and reconcile.
    fn step_with(&mut self, counts: impl Fn(Duration) -> Measurement) -> &Outcome {
        let wake = self
            .last
            .as_ref()
            .and_then(|o| o.wake_at)
            .expect("a wake-up");
        self.now = self.now.max(wake);
        let m = self.due().then(|| counts(elapsed(&self.status, self.now)));
        self.tick(m)
    }
}

fn counts(requests: f64, errors: f64) -> Measurement {
    Measurement::Counts {
        requests,
        errors,
        stable: None,
        latency: None,
        checks: vec![],
        queries: Queries::default(),
    }
}

/// Cumulative counts at `rps` with error fraction `p`, since the canary started.
fn traffic(rps: f64, p: f64) -> impl Fn(Duration) -> Measurement {
    move |e: Duration| {
        let n = rps * e.as_secs_f64();
        counts(n, (n * p).floor())
    }
}

#[test]
fn a_good_change_walks_its_steps_and_is_promoted() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "30s"), ("50%", "30s")],
            false,
        ),
        Router::Replicas,
    );
    // First pass: the canary is created for the 10% slice; no traffic until it is ready.
    let out = sim.tick(None);
    assert_eq!(out.desired.canary_replicas, Some(1));
    assert_eq!(out.desired.weight.to_string(), "0%");
    // Second pass: the canary is ready, the slice takes effect.
    let out = sim.tick(None);
    assert_eq!(out.desired.weight.to_string(), "10%");
    assert_eq!(out.status.step_display.as_deref(), Some("1/2"));
    assert!(out.events.iter().any(|e| e.reason == "StepStarted"));
    let mut seen_steps = vec![];
    for _ in 0..20 {
        let out = sim.step_with(traffic(20.0, 0.001));
        seen_steps.push(out.status.step);
        if out.status.phase != Phase::Progressing {
            break;
        }
    }
    assert_eq!(
        sim.status.phase,
        Phase::Promoting,
        "steps seen {seen_steps:?}"
    );
    let out = sim.last.as_ref().expect("outcome");
    assert!(!out.desired.paused, "promotion unpauses the Deployment");
    assert_eq!(out.desired.canary_replicas, Some(9), "50% of 9 stable pods");
    // The Deployment finishes its rolling update: the run succeeds.
    sim.rollout_complete = true;
    let out = sim.tick(None);
    assert_eq!(out.status.phase, Phase::Succeeded);
    assert_eq!(out.mark, Some(RevisionMark::Stable("new".into())));
    assert_eq!(out.desired.canary_replicas, None);
    assert!(out.desired.paused);
}

/// A release ends the run wherever it is (mid-step, awaiting approval, promoting): all
/// traffic to stable, no canary, the Deployment no longer paused, no revision marked, and
/// no Event from the machine (the controller emits one `Released` Event about the
/// Deployment, with or without a run).
#[test]
fn a_release_ends_the_run_wherever_it_is() {
    let why = "its RolloutPolicy no longer selects it";
    let setups = [
        ("progressing", false, Phase::Progressing),
        ("awaiting approval", true, Phase::AwaitingApproval),
        ("promoting", false, Phase::Promoting),
    ];
    for (name, approval, phase) in setups {
        let mut sim = Sim::new(
            tier(
                Decision::Threshold,
                &[("10%", "60s"), ("50%", "60s")],
                approval,
            ),
            Router::GatewayApi,
        );
        sim.tick(None);
        sim.tick(None);
        while sim.status.phase != phase {
            assert_eq!(sim.status.phase, Phase::Progressing, "{name}");
            sim.step_with(traffic(20.0, 0.0));
        }
        let before = sim.status.clone();
        sim.released = Some(why.into());
        let out = sim.tick(None).clone();
        assert_eq!(out.status.phase, Phase::Superseded, "{name}");
        assert_eq!(out.status.reason.as_deref(), Some("Released"), "{name}");
        assert_eq!(
            out.status.message.as_deref(),
            Some(format!("the run ended because {why}").as_str()),
            "{name}"
        );
        assert_eq!(out.status.weight, Some(Ratio::ZERO), "{name}");
        assert!(out.status.ended_at.is_some(), "{name}");
        assert_eq!(out.status.samples, before.samples, "{name}: evidence kept");
        assert_eq!(out.desired.canary_replicas, None, "{name}");
        assert_eq!(out.desired.weight.to_string(), "0%", "{name}");
        assert!(!out.desired.paused, "{name}: the Deployment is given up");
        assert_eq!(out.mark, None, "{name}");
        assert!(out.events.is_empty(), "{name}: {:?}", out.events);
        assert_eq!(out.wake_at, None, "{name}");
    }
}

/// An HPA changes the Deployment's spec.replicas (through the scale subresource) at any time.
/// Mid-step the canary follows the new size and the step goes on with its evidence; while the
/// Gateway API router promotes, the canary carries all traffic and grows with the Deployment but
/// never shrinks.
#[test]
fn an_hpa_scaling_the_deployment_resizes_the_canary_without_breaking_the_run() {
    for router in [Router::Replicas, Router::GatewayApi] {
        let mut sim = Sim::new(
            tier(
                Decision::Threshold,
                &[("10%", "60s"), ("50%", "60s")],
                false,
            ),
            router,
        );
        sim.tick(None);
        sim.tick(None);
        sim.step_with(traffic(20.0, 0.0));
        let before = sim.status.clone();
        assert_eq!(before.step, 0, "{router:?}");
        assert!(!before.samples.is_empty(), "{router:?}");
        // Scaled up from 9 to 30 mid-step: a bigger canary for the same slice, same step.
        sim.stable = 30;
        let out = sim.step_with(traffic(20.0, 0.0)).clone();
        let want = match router {
            Router::Replicas => 3,   // 3 / (30 + 3) = 9.1%, the nearest to 10%
            Router::GatewayApi => 3, // ceil(10% x 30)
        };
        assert_eq!(out.desired.canary_replicas, Some(want), "{router:?}");
        assert_eq!(out.status.step, 0, "{router:?}");
        assert_eq!(
            out.status.step_started_at, before.step_started_at,
            "{router:?}"
        );
        assert!(
            out.status.samples.len() > before.samples.len(),
            "{router:?}: evidence kept"
        );
        // Scaled down to 4: smaller again.
        sim.stable = 4;
        let out = sim.step_with(traffic(20.0, 0.0)).clone();
        assert_eq!(out.desired.canary_replicas, Some(1), "{router:?}");
        assert_eq!(out.status.phase, Phase::Progressing, "{router:?}");
        while sim.status.phase == Phase::Progressing {
            sim.step_with(traffic(20.0, 0.0));
        }
        assert_eq!(sim.status.phase, Phase::Promoting, "{router:?}");
        let full = sim.last.as_ref().and_then(|o| o.desired.canary_replicas);
        if router == Router::GatewayApi {
            assert_eq!(full, Some(4), "all traffic: a canary the Deployment's size");
            // The Deployment grows while it rolls: so does the canary that carries everything.
            sim.stable = 7;
            assert_eq!(sim.tick(None).desired.canary_replicas, Some(7));
            // It shrinks (its own pods idle): the canary keeps its pods until the run ends.
            sim.stable = 2;
            let out = sim.tick(None).clone();
            assert_eq!(out.desired.canary_replicas, Some(7));
            assert_eq!(out.desired.weight.to_string(), "100%");
            assert!(!out.desired.paused);
        } else {
            // 50% of the Deployment's 4 pods; the Deployment's own pods serve the rest.
            assert_eq!(full, Some(4));
            sim.stable = 2;
            assert_eq!(sim.tick(None).desired.canary_replicas, Some(2));
        }
        // The run ends only when the Deployment has rolled out its (current) spec.replicas.
        assert_eq!(sim.tick(None).status.phase, Phase::Promoting, "{router:?}");
        sim.rollout_complete = true;
        let out = sim.tick(None).clone();
        assert_eq!(out.status.phase, Phase::Succeeded, "{router:?}");
        assert_eq!(out.desired.canary_replicas, None, "{router:?}");
    }
}

#[test]
fn a_bad_change_is_rolled_back_at_its_first_slice_with_evidence() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("1%", "60s"), ("50%", "60s")], false),
        Router::GatewayApi,
    );
    sim.tick(None);
    sim.tick(None);
    assert_eq!(
        sim.status.weight.map(|w| w.to_string()).as_deref(),
        Some("1%")
    );
    let out = sim.step_with(traffic(50.0, 0.05)).clone();
    assert_eq!(out.status.phase, Phase::RolledBack);
    assert_eq!(
        out.status.reason.as_deref(),
        Some("ErrorRateAboveThreshold")
    );
    assert_eq!(out.desired.canary_replicas, None);
    assert_eq!(out.desired.weight.to_string(), "0%");
    assert!(out.desired.paused);
    assert_eq!(out.mark, Some(RevisionMark::Failed("new".into())));
    let ev = out.status.evidence.as_ref().expect("evidence");
    assert_eq!(ev.requests, Some(500));
    assert_eq!(ev.errors, Some(25));
    assert_eq!(ev.rate.as_deref(), Some("5%"));
    assert!(
        out.events
            .iter()
            .any(|e| e.warning && e.reason == "RolledBack")
    );
    let msg = out.status.message.as_deref().unwrap_or_default();
    assert!(msg.contains("500 canary requests, 25 errors (5%)"), "{msg}");
    // The rollback landed within one interval of the canary's first traffic.
    let started = out.status.canary_started_at.as_ref().expect("started").0;
    let ended = out.status.ended_at.as_ref().expect("ended").0;
    assert_eq!(ended.duration_since(started).as_secs(), 10);
}

#[test]
fn sequential_rolls_back_after_a_handful_of_errors() {
    let mut t = tier(Decision::Sequential, &[("1%", "10m"), ("5%", "10m")], false);
    t.max_error_rate = "1%".into();
    let mut sim = Sim::new(t, Router::GatewayApi);
    sim.tick(None);
    sim.tick(None);
    // 5% errors at 10 requests/s: the SPRT needs only a few errors.
    let out = sim.step_with(traffic(10.0, 0.05)).clone();
    assert_eq!(
        out.status.phase,
        Phase::RolledBack,
        "{:?}",
        out.status.samples
    );
    assert_eq!(out.status.reason.as_deref(), Some("SequentialTestRejected"));
    let ev = out.status.evidence.as_ref().expect("evidence");
    assert!(ev.statistic.is_some() && ev.upper_bound.is_some());
}

#[test]
fn no_data_and_query_errors_hold_and_never_promote() {
    for m in [
        Measurement::NoData {
            why: "empty vector".into(),
            queries: Queries::default(),
        },
        Measurement::Failed {
            why: "connection refused".into(),
            queries: Queries::default(),
        },
        counts(f64::NAN, 0.0),
        counts(100.0, f64::NAN),
    ] {
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("50%", "10s")], false),
            Router::Replicas,
        );
        sim.tick(None);
        sim.tick(None);
        for _ in 0..10 {
            sim.advance(10);
            let sample = sim.due().then(|| m.clone());
            let out = sim.tick(sample);
            assert_eq!(out.status.phase, Phase::Progressing, "{m:?}");
            assert!(out.desired.paused);
        }
        let waiting = sim
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::WAITING)
            .expect("a Waiting condition");
        assert_eq!(waiting.reason, "WaitingForEvidence");
        let analysis = sim
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::ANALYSIS)
            .expect("an Analysis condition");
        assert_eq!(analysis.status, "False");
    }
}

#[test]
fn on_no_data_rollback_rolls_back_after_the_limit() {
    let mut t = tier(Decision::Threshold, &[("50%", "10m")], false);
    t.name = "strict".into();
    let mut sim = Sim::new(t, Router::Replicas);
    sim.spec.analysis.on_no_data = OnNoData::Rollback;
    sim.plan = Plan::resolve(&sim.spec.plan, &sim.spec.analysis, "t").expect("plan");
    sim.tick(None);
    sim.tick(None);
    let nodata = |_e: Duration| Measurement::NoData {
        why: "empty".into(),
        queries: Queries::default(),
    };
    assert_eq!(sim.step_with(nodata).status.phase, Phase::Progressing);
    let out = sim.step_with(nodata);
    assert_eq!(out.status.phase, Phase::RolledBack);
    assert_eq!(out.status.reason.as_deref(), Some("NoData"));
}

#[test]
fn failure_limit_tolerates_failed_samples() {
    let mut t = tier(Decision::Threshold, &[("50%", "10m")], false);
    t.failure_limit = 2;
    let mut sim = Sim::new(t, Router::Replicas);
    sim.tick(None);
    sim.tick(None);
    let bad = traffic(100.0, 0.05);
    assert_eq!(sim.step_with(&bad).status.phase, Phase::Progressing);
    assert_eq!(sim.step_with(&bad).status.phase, Phase::Progressing);
    assert_eq!(sim.step_with(&bad).status.phase, Phase::RolledBack);
    assert_eq!(sim.status.failed_samples, 3);
}

#[test]
fn approval_is_awaited_after_the_last_step_and_analysis_continues() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("1%", "10s")], true),
        Router::GatewayApi,
    );
    sim.tick(None);
    sim.tick(None);
    sim.step_with(traffic(100.0, 0.0));
    assert_eq!(sim.status.phase, Phase::AwaitingApproval);
    // Still analysed while waiting: a bad sample rolls back.
    let mut bad = Sim::new(
        tier(Decision::Threshold, &[("1%", "10s")], true),
        Router::GatewayApi,
    );
    bad.tick(None);
    bad.tick(None);
    bad.step_with(traffic(100.0, 0.0));
    assert_eq!(bad.status.phase, Phase::AwaitingApproval);
    assert_eq!(
        bad.step_with(traffic(100.0, 0.5)).status.phase,
        Phase::RolledBack
    );
    // The author's own approval does not count (four eyes): the run keeps waiting, says why
    // in its Waiting condition, and warns once.
    sim.spec.approvals.push(Approval {
        user: "author".into(),
        groups: vec![],
        time: Time(sim.now),
        run: None,
        revision: Some(sim.spec.canary_revision.clone()),
        step: Some(sim.status.step),
    });
    let out = sim.tick(None).clone();
    assert_eq!(out.status.phase, Phase::AwaitingApproval);
    let warned = |out: &Outcome| {
        out.events
            .iter()
            .filter(|e| e.warning && e.reason == APPROVAL_NOT_COUNTED)
            .count()
    };
    assert_eq!(warned(&out), 1);
    let waiting = out
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::WAITING)
        .expect("Waiting");
    assert_eq!(waiting.reason, APPROVAL_NOT_COUNTED);
    assert!(
        waiting.message.contains("author wrote the change"),
        "{}",
        waiting.message
    );
    let out = sim.tick(None).clone();
    assert_eq!(out.status.phase, Phase::AwaitingApproval);
    assert_eq!(warned(&out), 0, "the warning is given once");
    // Another approver's approval promotes.
    sim.spec.approvals.push(Approval {
        user: "alice".into(),
        groups: vec![],
        time: Time(sim.now),
        run: None,
        revision: Some(sim.spec.canary_revision.clone()),
        step: Some(sim.status.step),
    });
    let out = sim.tick(None).clone();
    assert_eq!(out.status.phase, Phase::Promoting);
    assert!(
        out.events
            .iter()
            .any(|e| e.reason == "Approved" && e.message.contains("alice"))
    );
    // Gateway promotion: scale the canary to full size first, then all traffic to it, then
    // unpause.
    assert_eq!(out.desired.canary_replicas, Some(9));
    let out = sim.tick(None);
    assert_eq!(out.desired.weight.to_string(), "100%");
    assert!(!out.desired.paused);
}

#[test]
fn a_new_template_supersedes_and_a_revert_ends_the_run() {
    for (template, reason) in [("newer", "Superseded"), ("old", "Reverted")] {
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("10%", "1m")], false),
            Router::Replicas,
        );
        sim.tick(None);
        sim.tick(None);
        sim.template = template.into();
        let out = sim.tick(None);
        assert_eq!(out.status.phase, Phase::Superseded);
        assert_eq!(out.status.reason.as_deref(), Some(reason));
        assert_eq!(out.desired.canary_replicas, None);
        assert_eq!(out.mark, None, "a superseded revision is not marked failed");
    }
}

#[test]
fn abort_rolls_back_and_marks_the_revision_failed() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "1m")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    sim.spec.control = Some(RunControl {
        abort: Some(Command {
            user: "bob".into(),
            time: Time(sim.now),
            reason: Some("pager".into()),
        }),
        ..Default::default()
    });
    let out = sim.tick(None);
    assert_eq!(out.status.phase, Phase::Aborted);
    assert_eq!(out.status.message.as_deref(), Some("aborted by bob: pager"));
    assert_eq!(out.mark, Some(RevisionMark::Failed("new".into())));
}

#[test]
fn promote_skips_the_pause_and_pause_holds() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "1h"), ("50%", "1h")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    sim.spec.control = Some(RunControl {
        pause: Some(Command {
            user: "carol".into(),
            time: Time(sim.now),
            reason: None,
        }),
        ..Default::default()
    });
    sim.advance(7200);
    let out = sim.tick(None);
    assert_eq!(out.status.step, 0, "paused runs do not advance");
    sim.spec.control = Some(RunControl {
        promote: Some(PromoteCommand {
            user: "carol".into(),
            time: Time(sim.now),
            step: 0,
            full: false,
        }),
        ..Default::default()
    });
    let out = sim.tick(None);
    assert_eq!(out.status.step, 1);
    assert_eq!(
        out.desired.canary_replicas,
        Some(9),
        "the canary grows for the 50% slice"
    );
    assert_eq!(
        out.desired.weight.to_string(),
        "10%",
        "traffic waits for the bigger canary"
    );
    let out = sim.tick(None);
    assert_eq!(out.desired.weight.to_string(), "50%");
}

#[test]
fn a_missing_route_holds_with_traffic_on_stable() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "10s")], false),
        Router::GatewayApi,
    );
    sim.routing = Err((
        "RouteNotFound".into(),
        "no HTTPRoute references shop-stable".into(),
    ));
    for _ in 0..5 {
        sim.advance(10);
        let out = sim.tick(None);
        assert_eq!(out.desired.weight.to_string(), "0%");
        assert_eq!(out.status.phase, Phase::Progressing);
        assert!(out.status.step_started_at.is_none());
    }
    let cond = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::ROUTING)
        .expect("routing condition");
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "RouteNotFound")
    );
}

#[test]
fn a_restart_continues_from_status_without_repeating_or_skipping() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "30s"), ("50%", "30s")],
            false,
        ),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    sim.step_with(traffic(20.0, 0.0));
    let before = sim.status.clone();
    // A restarted operator sees the same status and world: the same answer, no new events.
    let again = sim.tick(None).clone();
    assert_eq!(again.status.step, before.step);
    assert_eq!(again.status.step_started_at, before.step_started_at);
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn analysis_is_due_once_per_interval() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "1m")], false),
        Router::Replicas,
    );
    sim.tick(None);
    assert!(!sim.due(), "no analysis before the canary has traffic");
    sim.tick(None);
    assert!(!sim.due());
    sim.advance(9);
    assert!(!sim.due());
    sim.advance(1);
    assert!(sim.due());
    sim.tick(Some(counts(200.0, 0.0)));
    assert!(!sim.due(), "a sample was just taken");
    sim.advance(10);
    assert!(sim.due());
}

#[test]
fn phase_by_observation_table() {
    // Every non-terminal phase against each kind of observation: where it goes.
    let obs: Vec<(&str, Option<Measurement>)> = vec![
        ("none", None),
        ("healthy", Some(counts(1000.0, 0.0))),
        ("bad", Some(counts(1000.0, 500.0))),
        (
            "no data",
            Some(Measurement::NoData {
                why: "empty".into(),
                queries: Queries::default(),
            }),
        ),
        (
            "error",
            Some(Measurement::Failed {
                why: "refused".into(),
                queries: Queries::default(),
            }),
        ),
    ];
    let expect = |phase: Phase, o: &str| -> Phase {
        match (phase, o) {
            (Phase::Promoting, _) => Phase::Promoting,
            (_, "bad") => Phase::RolledBack,
            (p, _) => p,
        }
    };
    for phase in [
        Phase::Progressing,
        Phase::AwaitingApproval,
        Phase::Promoting,
    ] {
        for (name, m) in &obs {
            let mut sim = Sim::new(
                tier(Decision::Threshold, &[("10%", "1h")], true),
                Router::Replicas,
            );
            sim.tick(None);
            sim.tick(None);
            sim.status.phase = phase;
            sim.advance(10);
            let out = sim.tick(m.clone());
            assert_eq!(out.status.phase, expect(phase, name), "{phase:?} × {name}");
            if out.status.phase != Phase::Promoting {
                assert!(
                    out.desired.paused,
                    "{phase:?} × {name}: only promotion unpauses"
                );
            }
        }
    }
    // Terminal phases stay put and want the canary gone.
    for phase in [
        Phase::Succeeded,
        Phase::RolledBack,
        Phase::Aborted,
        Phase::Superseded,
    ] {
        for (name, m) in &obs {
            let mut sim = Sim::new(
                tier(Decision::Threshold, &[("10%", "1h")], false),
                Router::Replicas,
            );
            sim.status.phase = phase;
            let out = sim.tick(m.clone());
            assert_eq!(out.status.phase, phase, "{phase:?} × {name}");
            assert_eq!(out.desired.canary_replicas, None);
            assert!(out.events.is_empty());
        }
    }
}

/// The `[{{elapsed}}]` range, rendered at any moment an analysis is due, starts no earlier
/// than the canary's first traffic, even though the API keeps only whole seconds: else a
/// series that outlives one canary lends the next one its last requests (seen in the demo,
/// where a new 1% canary's first sample counted the previous run's promotion traffic).
#[test]
fn the_elapsed_range_never_reaches_before_the_canary_started() {
    use crate::api::quantity::prometheus_range_within;
    let base = Timestamp::from_second(1_800_000_000).expect("time");
    for start_ms in [0, 1, 250, 500, 999, 1_000, 1_001, 1_999] {
        let started = after(base, Duration::from_millis(start_ms));
        let recorded = start_time(started);
        // As stored and read back: whole seconds.
        let recorded = Time(Timestamp::from_second(recorded.0.as_second()).expect("time"));
        assert_eq!(recorded.0.subsec_nanosecond(), 0);
        assert!(
            recorded.0 >= started,
            "{start_ms} ms: recorded before it started"
        );
        let status = RolloutRunStatus {
            canary_started_at: Some(recorded.clone()),
            ..Default::default()
        };
        for interval_ms in [1_000, 2_000, 15_000] {
            let due = after(recorded.0, Duration::from_millis(interval_ms));
            for late_ms in [0, 1, 400, 999, 1_000, 7_321] {
                let now = after(due, Duration::from_millis(late_ms));
                let range = prometheus_range_within(elapsed(&status, now));
                let secs: u64 = range.trim_end_matches('s').parse().expect("seconds");
                let from = now
                    .checked_sub(jiff::SignedDuration::from_secs(secs as i64))
                    .expect("time");
                assert!(
                    from >= started,
                    "start +{start_ms} ms, interval {interval_ms} ms, +{late_ms} ms late: [{range}] reaches back to {from}, before {started}"
                );
            }
        }
    }
}

/// A canary deleted by hand mid-step: its share goes back to stable at once, the canary is
/// asked for again, and the step starts over (pause and evidence) once it serves. With the
/// replicas router there is no weight to move: the Service sends only to pods that exist.
#[test]
fn a_lost_canary_gets_no_traffic_and_its_step_starts_over() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "30s"), ("50%", "30s")],
            false,
        ),
        Router::GatewayApi,
    );
    sim.tick(None);
    let out = sim.tick(None);
    assert_eq!(out.desired.weight.to_string(), "10%");
    sim.advance(20);
    // The canary Deployment is gone (its pods with it).
    sim.canary = None;
    let out = sim.tick(None).clone();
    assert_eq!(
        out.desired.weight.to_string(),
        "0%",
        "no share for a canary without pods"
    );
    assert_eq!(
        out.desired.canary_replicas,
        Some(1),
        "the canary is made again"
    );
    assert_eq!(
        out.status.weight.map(|w| w.to_string()).as_deref(),
        Some("0%")
    );
    assert!(out.status.step_started_at.is_none(), "the step starts over");
    let lost: Vec<_> = out
        .events
        .iter()
        .filter(|e| e.reason == "CanaryLost")
        .collect();
    assert_eq!(lost.len(), 1, "{:?}", out.events);
    assert!(lost[0].warning);
    // Recreated but not ready yet: still nothing, and no second Event.
    sim.canary = Some(CanaryObserved {
        replicas: 1,
        ready: 0,
        serving: 0,
        endpoints: None,
    });
    let out = sim.tick(None).clone();
    assert_eq!(out.desired.weight.to_string(), "0%");
    assert!(out.events.iter().all(|e| e.reason != "CanaryLost"));
    // Ready again (the tick above left it ready): the step starts over with its full pause.
    let out = sim.tick(None).clone();
    assert_eq!(out.desired.weight.to_string(), "10%");
    assert!(out.events.iter().any(|e| e.reason == "StepStarted"));
    let restarted = out.status.step_started_at.as_ref().expect("started").0;
    assert_eq!(restarted, sim.now);
    while sim.step_with(traffic(20.0, 0.001)).status.step == 0 {}
    let waited = sim.now.duration_since(restarted).as_secs();
    assert!(waited >= 30, "the pause counts from the restart: {waited}s");

    // The replicas router: nothing to move, nothing restarted.
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "30s")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    sim.canary = None;
    let out = sim.tick(None).clone();
    assert!(out.status.step_started_at.is_some());
    assert!(out.events.iter().all(|e| e.reason != "CanaryLost"));
}

#[test]
fn the_pause_ends_at_the_step_start_plus_its_pause_whether_or_not_the_canary_must_grow() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "30s"), ("25%", "30s"), ("50%", "30s")],
            false,
        ),
        Router::Replicas,
    );
    let run_of = |sim: &Sim| (sim.spec.clone(), sim.plan.clone());
    let mut ends = vec![];
    sim.tick(None);
    sim.tick(None);
    for _ in 0..40 {
        let before = sim.status.clone();
        let out = sim.step_with(traffic(50.0, 0.0)).clone();
        let (spec, plan) = run_of(&sim);
        let run = RunView {
            spec: &spec,
            plan: &plan,
            router: Router::Replicas,
        };
        if let Some(end) = pause_ended(&run, &before, &out.status) {
            let started = before.step_started_at.as_ref().expect("a started step").0;
            assert_eq!(end, started + jiff::SignedDuration::from_secs(30));
            assert!(sim.now >= end, "the step moved on before its pause ended");
            ends.push((before.step, out.status.step_started_at.is_some()));
        } else {
            assert_eq!(out.status.step, before.step);
        }
        if out.status.phase != Phase::Progressing {
            break;
        }
    }
    // Both step changes have a pause end, and with 9 stable pods both need a bigger canary
    // before the slice starts (1 -> 3 -> 9 pods): a delay taken only when the next slice
    // starts in the same pass would see neither.
    assert_eq!(ends, [(0, false), (1, false)]);
}

/// Issue #21: the fix that follows a rolled-back change on the same Deployment must not be
/// judged with the rolled-back canary's requests. While anything of an earlier canary can
/// still serve, the new one is not made, gets no share, and no analysis window opens.
#[test]
fn a_new_canary_waits_until_no_pod_of_an_earlier_canary_can_serve() {
    for router in [Router::Replicas, Router::GatewayApi] {
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("1%", "20s"), ("5%", "3s")], false),
            router,
        );
        sim.earlier = Some("ReplicaSet web-canary-aaa of an earlier canary still has pods".into());
        for _ in 0..3 {
            let out = sim.tick(None).clone();
            assert_eq!(out.desired.canary_replicas, None, "{router:?}: not made");
            assert_eq!(out.desired.weight.to_string(), "0%", "{router:?}");
            assert!(out.desired.paused);
            assert!(
                out.status.canary_started_at.is_none(),
                "{router:?}: no window"
            );
            assert!(out.status.step_started_at.is_none());
            assert!(!sim.due(), "{router:?}: no analysis is due");
            let c = out
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::WAITING)
                .expect("a Waiting condition");
            assert_eq!(c.reason, waiting::EARLIER_CANARY);
            assert!(c.message.contains("web-canary-aaa"), "{}", c.message);
            assert!(out.events.is_empty(), "{:?}", out.events);
            sim.advance(1);
        }
        // Gone: the canary is made, then routed, and the window opens only then.
        sim.earlier = None;
        let out = sim.tick(None).clone();
        assert!(out.desired.canary_replicas.is_some(), "{router:?}");
        let out = sim.tick(None).clone();
        assert_eq!(out.desired.weight.to_string(), "1%", "{router:?}");
        assert_eq!(
            out.status.canary_started_at.as_ref().map(|t| t.0),
            Some(sim.now)
        );
        // Once the window is open, a lingering earlier ReplicaSet (seen late in the cache)
        // no longer matters: the run goes on.
        sim.earlier = Some("ReplicaSet web-canary-aaa of an earlier canary still has pods".into());
        let out = sim.step_with(traffic(20.0, 0.001)).clone();
        assert_eq!(out.desired.weight.to_string(), "1%");
        assert_eq!(out.status.sample_count, 1);
    }
}

/// A status as the operator wrote it before weights, counts and verdicts were typed, captured
/// verbatim from its serializer (main at 07ad24f): a sequential run on the Gateway API router
/// at its last step (2/2, 5% for 60s), whose latest sample, in this step, continued at 1520
/// requests.
const OLD_STATUS: &str = r#"{"phase":"Progressing","step":1,"stepDisplay":"2/2","weight":"5%","errorRate":"0.3947%","canaryStartedAt":"2027-01-15T08:00:00Z","stepStartedAt":"2027-01-15T08:00:30Z","lastAnalysisAt":"2027-01-15T08:00:40Z","failedSamples":0,"noDataSamples":0,"samples":[{"time":"2027-01-15T08:00:10Z","step":0,"requestsQuery":"","errorsQuery":"","requests":"380","errors":"1","rate":"0.2632%","threshold":"1%","statistic":"-1.127","upperBound":"4.554","lowerBound":"-2.986","baseline":"0.1%","verdict":"Continue"},{"time":"2027-01-15T08:00:20Z","step":0,"requestsQuery":"","errorsQuery":"","requests":"760","errors":"3","rate":"0.3947%","threshold":"1%","statistic":"0.057","upperBound":"4.554","lowerBound":"-2.986","baseline":"0.1%","verdict":"Continue"},{"time":"2027-01-15T08:00:30Z","step":0,"requestsQuery":"","errorsQuery":"","requests":"1140","errors":"4","rate":"0.3509%","threshold":"1%","statistic":"-1.070","upperBound":"4.554","lowerBound":"-2.986","baseline":"0.1%","verdict":"Continue"},{"time":"2027-01-15T08:00:40Z","step":1,"requestsQuery":"","errorsQuery":"","requests":"1520","errors":"6","rate":"0.3947%","threshold":"1%","statistic":"0.114","upperBound":"4.554","lowerBound":"-2.986","baseline":"0.1%","verdict":"Continue"}],"sampleCount":4,"conditions":[{"lastTransitionTime":"2027-01-15T08:00:00Z","message":"the canary's share is set as planned","reason":"Routed","status":"True","type":"Routing"},{"lastTransitionTime":"2027-01-15T08:00:10Z","message":"1520 requests, 6 errors (0.3947%): Continue","reason":"Measured","status":"True","type":"Analysis"}]}"#;

fn pct(s: &str) -> Ratio {
    s.parse().expect("a percentage")
}

fn old_run() -> Sim {
    let mut sim = Sim::new(
        tier(Decision::Sequential, &[("1%", "30s"), ("5%", "60s")], false),
        Router::GatewayApi,
    );
    sim.status = serde_json::from_str(OLD_STATUS).expect("a status in the old form decodes");
    sim.canary = Some(CanaryObserved {
        replicas: 1,
        ready: 1,
        serving: 1,
        endpoints: None,
    });
    sim
}

#[test]
fn a_run_written_before_the_status_was_typed_continues_as_it_did() {
    let mut sim = old_run();
    // The strings are read as what they say, and written back as they were.
    assert_eq!(sim.status.weight, Some(pct("5%")));
    let latest = sim.status.samples.last().expect("samples").clone();
    assert_eq!(latest.requests, Some(1520));
    assert_eq!(latest.errors, Some(6));
    assert_eq!(latest.verdict, Verdict::Continue);
    assert_eq!(
        serde_json::to_value(&sim.status).expect("encodes"),
        serde_json::from_str::<serde_json::Value>(OLD_STATUS).expect("json")
    );
    // Within the pause it holds at 5%.
    let started = sim.status.step_started_at.clone().expect("step started").0;
    sim.now = started + jiff::SignedDuration::from_secs(59);
    let out = sim.tick(None).clone();
    assert_eq!(out.status.phase, Phase::Progressing);
    assert_eq!(out.desired.weight, pct("5%"));
    // At its end the run is held to the rule it never had: a sequential slice widens, and a
    // run promotes, only once the test accepted the canary at that slice. It had no test
    // window, so it waits; nothing else about its status changes.
    let mut sim = old_run();
    sim.now = started + jiff::SignedDuration::from_secs(60);
    let out = sim.tick(None).clone();
    assert_eq!(out.status.phase, Phase::Progressing);
    assert_eq!(out.desired.weight, pct("5%"));
    let waiting = out
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::WAITING)
        .expect("waiting");
    assert_eq!(waiting.reason, "WaitingForEvidence");
    assert!(out.status.test.is_none());
    // Its next sample opens a window at this slice, from the counts it reads then.
    sim.now = started + jiff::SignedDuration::from_secs(70);
    let out = sim.tick(Some(counts(1_900.0, 6.0))).clone();
    let w = out.status.test.expect("a window");
    assert_eq!((w.step, w.tests, w.origin.requests), (1, 1, 1_900));
    assert_eq!(out.status.phase, Phase::Progressing);
}

fn sequential_tier(steps: &[(&str, &str)], seq: SequentialSpec) -> Tier {
    let mut t = tier(Decision::Sequential, steps, false);
    t.max_error_rate = "1%".into();
    t.sequential = Some(seq);
    t
}

/// Given a sequential tier, a slice widens only after its test accepted the canary there:
/// clean traffic too thin to accept holds the step past its pause; enough of it moves on,
/// and the next slice starts a fresh test from the counts where the last one left off.
#[test]
fn a_sequential_slice_widens_only_once_its_test_accepted() {
    let t = sequential_tier(&[("1%", "30s"), ("5%", "30s")], SequentialSpec::default());
    let mut sim = Sim::new(t, Router::GatewayApi);
    sim.tick(None);
    sim.tick(None);
    // 1 request/s without errors: p0 0.1% against p1 1% needs about 300 clean requests.
    for _ in 0..6 {
        sim.step_with(traffic(1.0, 0.0));
    }
    let out = sim.last.clone().expect("ticked");
    assert_eq!(out.status.step, 0, "{:?}", out.status.samples);
    let waiting = out
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::WAITING)
        .expect("waiting");
    assert_eq!(waiting.reason, "WaitingForEvidence");
    assert!(
        waiting.message.contains("onInconclusive: hold"),
        "{}",
        waiting.message
    );
    // 100 requests/s: the next sample accepts, and the step (its pause long over) widens.
    let out = sim.step_with(traffic(100.0, 0.0)).clone();
    assert_eq!(
        out.status.samples.last().map(|s| s.verdict),
        Some(Verdict::AcceptGood)
    );
    assert_eq!(out.status.step, 1);
    let w = out.status.test.clone().expect("window");
    assert_eq!(w.accepted_step, Some(0));
    // The acceptance restarted the test: the window starts at the accepting sample.
    let accepted_at = out
        .status
        .samples
        .last()
        .and_then(|s| s.requests)
        .expect("n");
    assert_eq!(w.origin.requests as u64, accepted_at);
    assert_eq!(w.tests, 2);
    // At the new slice, the first sample runs test 3 from where the last window's latest
    // sample was (the 1,000 requests since), which accepts too and starts test 4.
    let out = sim.step_with(traffic(100.0, 0.0)).clone();
    let s = out.status.samples.last().expect("sample");
    let message = s.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("test 3 of the run over 1000 canary requests"),
        "{message}"
    );
    let w = out.status.test.clone().expect("window");
    assert_eq!((w.step, w.tests, w.accepted_step), (1, 4, Some(1)));
    assert_eq!(w.origin.requests as u64, s.requests.expect("n"));
}

/// Given an undecided test when its step's deadline passes, the tier's `onInconclusive`
/// decides, and the run says why.
#[test]
fn an_undecided_test_at_its_deadline_does_what_the_tier_says() {
    use crate::api::policy::OnInconclusive;
    let cases = [
        (
            OnInconclusive::Hold,
            Phase::Progressing,
            0,
            Some("Inconclusive"),
        ),
        (OnInconclusive::Rollback, Phase::RolledBack, 0, None),
        (OnInconclusive::Promote, Phase::Progressing, 1, None),
    ];
    for (on, phase, step, waiting) in cases {
        let seq = SequentialSpec {
            decide_within: "2m".into(),
            on_inconclusive: on,
            ..SequentialSpec::default()
        };
        let t = sequential_tier(&[("1%", "30s"), ("5%", "30s")], seq);
        let mut sim = Sim::new(t, Router::GatewayApi);
        sim.tick(None);
        sim.tick(None);
        // 0.1 requests/s, no errors: never enough to accept within 2m30s.
        for _ in 0..16 {
            sim.step_with(traffic(0.1, 0.0));
            if sim.status.phase.is_terminal() || sim.status.step > 0 {
                break;
            }
        }
        let st = &sim.status;
        assert_eq!((st.phase, st.step), (phase, step), "{on:?}");
        let reason = st
            .conditions
            .iter()
            .find(|c| c.type_ == condition::WAITING)
            .map(|c| c.reason.as_str());
        if let Some(w) = waiting {
            assert_eq!(reason, Some(w), "{on:?}");
        }
        if on == OnInconclusive::Rollback {
            assert_eq!(st.reason.as_deref(), Some("Inconclusive"));
            assert!(
                st.message
                    .as_deref()
                    .is_some_and(|m| m.contains("onInconclusive: rollback"))
            );
        }
        if on == OnInconclusive::Promote {
            let events = &sim.last.as_ref().expect("ticked").events;
            assert!(
                events
                    .iter()
                    .any(|e| e.reason == "Inconclusive" && e.warning),
                "{events:?}"
            );
        }
    }
}

/// Given `baseline: stable`, an incident that raises both revisions' error rate to 2% moves
/// the canary nowhere near a rollback; a canary failing 5x stable in it is rolled back.
#[test]
fn an_incident_on_both_revisions_does_not_roll_back_a_stable_baseline_canary() {
    let seq = SequentialSpec {
        baseline: crate::api::policy::Baseline::Stable,
        p1: Some("0.5%".into()),
        ..SequentialSpec::default()
    };
    let t = sequential_tier(&[("10%", "10m")], seq);
    for (canary_rate, want) in [(0.02, Phase::Progressing), (0.10, Phase::RolledBack)] {
        let mut sim = Sim::new(t.clone(), Router::GatewayApi);
        // The harness's templates ("r", "e") cannot tell the revisions apart, so the plan
        // fell back to the fixed p0: ask for stable as a policy with {{workload}} would.
        if let Judge::Sequential { baseline, .. } = &mut sim.plan.judge {
            *baseline = crate::api::policy::Baseline::Stable;
        }
        sim.tick(None);
        sim.tick(None);
        for _ in 0..20 {
            sim.step_with(move |e: Duration| {
                let s = e.as_secs_f64();
                Measurement::Counts {
                    requests: 10.0 * s,
                    errors: (10.0 * s * canary_rate).floor(),
                    stable: Some((90.0 * s, (90.0 * s * 0.02).floor())),
                    latency: None,
                    checks: vec![],
                    queries: Queries::default(),
                }
            });
            if sim.status.phase.is_terminal() {
                break;
            }
        }
        assert_eq!(
            sim.status.phase,
            want,
            "canary at {canary_rate}: {:?}",
            sim.status.samples.last()
        );
    }
}

/// A run that passed its one step and is promoting (the Deployment rolls, not yet complete).
fn promoting() -> Sim {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "10s")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    while sim.status.phase == Phase::Progressing {
        sim.step_with(traffic(100.0, 0.0));
    }
    assert_eq!(sim.status.phase, Phase::Promoting);
    assert!(!sim.last.as_ref().expect("out").desired.paused);
    sim
}

#[test]
fn a_template_change_while_promoting_leaves_no_half_rollout() {
    // Reverted to stable mid-rollout: the Deployment rolls back to it (unpaused) until done.
    // (pods of other templates left, as far as the status knows) -> paused
    for (mid, paused) in [(Some(true), false), (Some(false), true), (None, true)] {
        let mut sim = promoting();
        sim.template = "old".into();
        sim.mid_rollout = mid;
        let out = sim.tick(None).clone();
        assert_eq!(out.status.reason.as_deref(), Some("Reverted"));
        assert_eq!(out.desired.paused, paused, "mid-rollout {mid:?}");
        assert_eq!(out.mark, None);
    }
    // A new revision while promoting: the promoting one had passed and becomes stable.
    let mut sim = promoting();
    sim.template = "newer".into();
    let out = sim.tick(None);
    assert_eq!(out.status.phase, Phase::Superseded);
    assert_eq!(out.mark, Some(RevisionMark::Stable("new".into())));
    assert!(
        out.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("recorded as the stable revision"))
    );
}

#[test]
fn with_the_pause_gate_a_stable_template_is_left_unpaused_and_anything_else_stays_paused() {
    // (how the run ends, with the gate) -> the Deployment paused?
    let promoted = |gate: bool| {
        let mut sim = promoting();
        sim.pause_gate = gate;
        sim.rollout_complete = true;
        sim.tick(None).clone()
    };
    for gate in [false, true] {
        let out = promoted(gate);
        assert_eq!(out.status.phase, Phase::Succeeded);
        assert_eq!(out.desired.paused, !gate, "promoted, gate {gate}");
    }
    // Reverted to stable: the gate pauses the next template, so stable runs unpaused however
    // far its status is behind; without it, only a Deployment still rolling back runs.
    for (gate, mid, paused) in [
        (true, None, false),
        (true, Some(false), false),
        (true, Some(true), false),
        (false, None, true),
        (false, Some(false), true),
        (false, Some(true), false),
    ] {
        let mut sim = promoting();
        sim.pause_gate = gate;
        sim.template = "old".into();
        sim.mid_rollout = mid;
        let out = sim.tick(None).clone();
        assert_eq!(out.status.reason.as_deref(), Some("Reverted"));
        assert_eq!(
            out.desired.paused, paused,
            "gate {gate}, mid-rollout {mid:?}"
        );
    }
    // Rolled back or superseded by a newer template: paused, gate or not (a template that
    // is not the stable one never runs before its verdict).
    for gate in [false, true] {
        let mut sim = promoting();
        sim.pause_gate = gate;
        sim.template = "newer".into();
        let out = sim.tick(None).clone();
        assert_eq!(out.status.phase, Phase::Superseded);
        assert!(out.desired.paused, "superseded, gate {gate}");
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("10%", "10s")], false),
            Router::Replicas,
        );
        sim.pause_gate = gate;
        sim.tick(None);
        sim.tick(None);
        while sim.status.phase == Phase::Progressing {
            sim.step_with(traffic(100.0, 0.5));
        }
        assert_eq!(sim.status.phase, Phase::RolledBack);
        assert!(
            sim.last.as_ref().expect("out").desired.paused,
            "rolled back, gate {gate}"
        );
    }
}

#[test]
fn abort_while_promoting_stops_the_rollout_and_marks_the_revision_failed() {
    let mut sim = promoting();
    sim.spec.control = Some(RunControl {
        abort: Some(Command {
            user: "bob".into(),
            time: Time(sim.now),
            reason: Some("latency".into()),
        }),
        ..Default::default()
    });
    let out = sim.tick(None);
    assert_eq!(out.status.phase, Phase::Aborted);
    assert!(out.desired.paused, "the rollout stops where it stands");
    assert_eq!(out.desired.canary_replicas, None);
    assert_eq!(out.mark, Some(RevisionMark::Failed("new".into())));
    let msg = out.status.message.as_deref().expect("message");
    assert!(
        msg.contains("revert deployment/shop's pod template to revision old"),
        "{msg}"
    );
}

#[test]
fn promote_is_an_override_recorded_with_its_user() {
    // (step skipped, full, the canary's samples) -> (the override recorded, if any)
    let cases: [(bool, &[f64], Option<&str>); 4] = [
        // Before any sample: the pause and the evidence of step 1 are skipped.
        (
            false,
            &[],
            Some("the pause and the evidence of step 1/2 (10%)"),
        ),
        // `--full` before any sample: everything.
        (
            true,
            &[],
            Some("steps 2-2, the pause of step 1/2, the evidence to promote"),
        ),
        // A good sample in the step, pause not over: only the pause.
        (false, &[0.0], Some("the pause of step 1/2 (10%)")),
        // A judging sample with errors is no evidence either (threshold 1%: 0.5% passes).
        (false, &[0.005], Some("the pause of step 1/2 (10%)")),
    ];
    for (full, samples, want) in cases {
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("10%", "1h"), ("50%", "1h")], false),
            Router::Replicas,
        );
        sim.tick(None);
        sim.tick(None);
        for p in samples {
            sim.advance(10);
            let m = sim
                .due()
                .then(|| traffic(100.0, *p)(elapsed(&sim.status, sim.now)));
            sim.tick(m);
        }
        sim.spec.control = Some(RunControl {
            promote: Some(PromoteCommand {
                user: "carol".into(),
                time: Time(sim.now),
                step: 0,
                full,
            }),
            ..Default::default()
        });
        let out = sim.tick(None).clone();
        let got: Vec<&str> = out
            .status
            .overrides
            .iter()
            .map(|o| o.skipped.as_str())
            .collect();
        assert_eq!(
            got,
            want.into_iter().collect::<Vec<_>>(),
            "full {full}, samples {samples:?}"
        );
        assert!(
            out.status
                .overrides
                .iter()
                .all(|o| o.user == "carol" && o.step == 0)
        );
        let warned: Vec<_> = out
            .events
            .iter()
            .filter(|e| e.reason == "Overridden")
            .collect();
        assert_eq!(warned.len(), 1, "{:?}", out.events);
        assert!(warned[0].warning && warned[0].message.starts_with("carol promoted"));
        // Said once: the next passes add nothing.
        sim.advance(1);
        let again = sim.tick(None);
        assert_eq!(again.status.overrides.len(), 1);
        assert!(again.events.iter().all(|e| e.reason != "Overridden"));
    }
}

#[test]
fn blind_analysis_has_a_deadline() {
    let failed = |_e: Duration| Measurement::Failed {
        why: "connection refused".into(),
        queries: Queries::default(),
    };
    let nodata = |_e: Duration| Measurement::NoData {
        why: "empty vector".into(),
        queries: Queries::default(),
    };
    // (onNoData, what comes back) -> after the limit (2): phase, reason, Stalled
    for (on, failing) in [
        (OnNoData::Hold, true),
        (OnNoData::Hold, false),
        (OnNoData::Rollback, true),
        (OnNoData::Rollback, false),
    ] {
        let mut sim = Sim::new(
            tier(Decision::Threshold, &[("50%", "10m")], false),
            Router::Replicas,
        );
        sim.spec.analysis.on_no_data = on;
        sim.plan = Plan::resolve(&sim.spec.plan, &sim.spec.analysis, "t").expect("plan");
        sim.tick(None);
        sim.tick(None);
        let mut warnings = 0;
        let mut outs = vec![];
        for _ in 0..25 {
            let out = if failing {
                sim.step_with(failed)
            } else {
                sim.step_with(nodata)
            }
            .clone();
            warnings += out
                .events
                .iter()
                .filter(|e| e.warning && e.reason == "AnalysisBlind")
                .count();
            let done = out.status.phase.is_terminal();
            outs.push(out);
            if done {
                break;
            }
        }
        let last = outs.last().expect("an outcome");
        let stalled = last
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::STALLED);
        match on {
            OnNoData::Rollback => {
                assert_eq!(
                    outs.len(),
                    2,
                    "rolled back at the limit ({on:?}, failing {failing})"
                );
                assert_eq!(last.status.phase, Phase::RolledBack);
                let reason = if failing { "QueryFailed" } else { "NoData" };
                assert_eq!(last.status.reason.as_deref(), Some(reason));
                assert_eq!(warnings, 2, "at the first and at the limit");
            }
            OnNoData::Hold => {
                assert_eq!(last.status.phase, Phase::Progressing);
                let s = stalled.expect("Stalled past the limit");
                assert_eq!(
                    (s.status.as_str(), s.reason.as_str()),
                    ("True", "AnalysisBlind")
                );
                // 1st, 2nd (the limit), 22nd: rate-limited.
                assert_eq!(warnings, 3, "rate-limited Warning Events");
            }
        }
    }
    // Data again clears Stalled.
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("50%", "10m")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    for _ in 0..3 {
        sim.step_with(failed);
    }
    assert!(
        sim.status
            .conditions
            .iter()
            .any(|c| c.type_ == condition::STALLED)
    );
    let out = sim.step_with(traffic(100.0, 0.0));
    assert!(
        out.status
            .conditions
            .iter()
            .all(|c| c.type_ != condition::STALLED)
    );
    assert_eq!(out.status.no_data_samples, 0);
}

#[test]
fn the_real_share_is_recorded_and_a_step_above_the_cap_holds() {
    // (router, stable replicas, cap) -> (share, podShare, held)
    let cases = [
        (Router::Replicas, 3, None, "25%", None, false),
        (Router::Replicas, 99, None, "1%", None, false),
        (Router::GatewayApi, 3, None, "1%", Some("25%"), false),
        (Router::Replicas, 3, Some("5%"), "", None, true),
        (Router::Replicas, 99, Some("5%"), "1%", None, false),
        (Router::GatewayApi, 3, Some("5%"), "1%", Some("25%"), false),
    ];
    for (router, stable, cap, share, pod_share, held) in cases {
        let mut t = tier(Decision::Threshold, &[("1%", "1m")], false);
        t.max_share = cap.map(Into::into);
        let mut sim = Sim::new(t, router);
        sim.stable = stable;
        sim.tick(None);
        let out = sim.tick(None).clone();
        let what = format!("{router:?}, {stable} stable, cap {cap:?}");
        let stalled = out
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::STALLED);
        if held {
            assert_eq!(out.desired.canary_replicas, None, "{what}: nobody exposed");
            assert!(out.status.step_started_at.is_none(), "{what}");
            let c = stalled.expect("Stalled");
            assert_eq!(c.reason, stalled::SHARE_ABOVE_CAP, "{what}");
            assert!(
                c.message.contains("25% of traffic") && c.message.contains("maxShare 5%"),
                "{}",
                c.message
            );
            continue;
        }
        assert!(stalled.is_none(), "{what}");
        assert!(out.status.step_started_at.is_some(), "{what}");
        assert_eq!(
            out.status.share.map(|r| r.to_string()).as_deref(),
            Some(share),
            "{what}"
        );
        assert_eq!(
            out.status.pod_share.map(|r| r.to_string()).as_deref(),
            pod_share,
            "{what}"
        );
    }
}

#[test]
fn a_good_sample_does_not_clear_a_stall_it_did_not_cause() {
    // 10% on 9 replicas is one pod (10%); 50% needs 9 (50%), above a 20% cap.
    let mut t = tier(
        Decision::Threshold,
        &[("10%", "10s"), ("50%", "10s")],
        false,
    );
    t.max_share = Some("20%".into());
    let mut sim = Sim::new(t, Router::Replicas);
    sim.tick(None);
    sim.tick(None);
    let stall = |st: &RolloutRunStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == condition::STALLED)
            .cloned()
    };
    let mut first = None;
    for _ in 0..6 {
        sim.step_with(traffic(100.0, 0.0));
        if let Some(c) = stall(&sim.status) {
            first.get_or_insert(c);
        }
    }
    let first = first.expect("held above the cap");
    assert_eq!(first.reason, stalled::SHARE_ABOVE_CAP);
    let now = stall(&sim.status).expect("still held after more good samples");
    assert_eq!(
        now, first,
        "not cleared and set again by the samples in between"
    );
}

/// Given a sequential tier with a fixed p0 of 0.1%, when stable fails 0.5% of 900 requests/s,
/// then the run says so (`Baseline` False, `StableAboveP0`, one Warning Event naming the
/// rate, p0 and the fixes, not repeated at every sample) without changing the decision; a
/// stable revision at p0, or a tier on `baseline: stable`, says nothing.
#[test]
fn stable_failing_above_a_fixed_p0_is_warned_about() {
    use crate::api::policy::Baseline;
    // (baseline, stable's rate) -> condition set
    for (baseline, stable_rate, warned) in [
        (Baseline::Fixed, 0.005, true),
        (Baseline::Fixed, 0.001, false),
        (Baseline::Fixed, 0.0, false),
        (Baseline::Stable, 0.005, false),
    ] {
        let seq = SequentialSpec {
            baseline,
            ..SequentialSpec::default()
        };
        let mut sim = Sim::new(sequential_tier(&[("10%", "10m")], seq), Router::GatewayApi);
        // As a policy whose templates use {{workload}}.
        sim.plan.measure_stable = true;
        if let Judge::Sequential { baseline: b, .. } = &mut sim.plan.judge {
            *b = baseline;
        }
        sim.tick(None);
        sim.tick(None);
        let mut events = vec![];
        for _ in 0..30 {
            let out = sim.step_with(move |e: Duration| {
                let s = e.as_secs_f64();
                Measurement::Counts {
                    requests: 100.0 * s,
                    errors: (100.0 * s * 0.001).floor(),
                    stable: Some((900.0 * s, (900.0 * s * stable_rate).floor())),
                    latency: None,
                    checks: vec![],
                    queries: Queries::default(),
                }
            });
            events.extend(
                out.events
                    .iter()
                    .filter(|e| e.reason == STABLE_ABOVE_P0)
                    .cloned(),
            );
        }
        let cond = sim
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == condition::BASELINE);
        let case = format!("{baseline:?} at {stable_rate}");
        if warned {
            let c = cond.expect(&case);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", STABLE_ABOVE_P0)
            );
            assert_eq!(
                events.len(),
                1,
                "{case}: one Event in 5 minutes: {events:?}"
            );
            assert!(events[0].warning);
            for want in ["0.5%", "0.1%", "baseline: stable", "raise sequential.p0"] {
                assert!(
                    events[0].message.contains(want),
                    "{want} in {}",
                    events[0].message
                );
            }
            // Stable's counts are on the samples as evidence.
            assert!(
                sim.status
                    .samples
                    .iter()
                    .all(|s| s.stable_requests.is_some())
            );
        } else {
            assert!(cond.is_none(), "{case}: {cond:?}");
            assert!(events.is_empty(), "{case}: {events:?}");
        }
        // The warning never decides: a canary at p0 is not rolled back here.
        assert_eq!(sim.status.phase, Phase::Progressing, "{case}");
    }
}

/// The `Baseline` condition clears once stable's rate is back at or below p0, and a later
/// rise warns again.
#[test]
fn the_stable_rate_warning_clears_and_returns() {
    let mut sim = Sim::new(
        sequential_tier(&[("10%", "1h")], SequentialSpec::default()),
        Router::GatewayApi,
    );
    sim.plan.measure_stable = true;
    sim.tick(None);
    sim.tick(None);
    // Stable serves 900 requests/s; its cumulative errors are `errors(seconds)`.
    fn stable(errors: impl Fn(f64) -> f64) -> impl Fn(Duration) -> Measurement {
        move |e: Duration| {
            let s = e.as_secs_f64();
            Measurement::Counts {
                requests: 100.0 * s,
                errors: 0.0,
                stable: Some((900.0 * s, errors(s).floor())),
                latency: None,
                checks: vec![],
                queries: Queries::default(),
            }
        }
    }
    fn warned(sim: &Sim) -> bool {
        sim.status
            .conditions
            .iter()
            .any(|c| c.type_ == condition::BASELINE)
    }
    let mut warnings = 0;
    let mut count = |out: &Outcome| {
        warnings += out
            .events
            .iter()
            .filter(|e| e.reason == STABLE_ABOVE_P0)
            .count();
    };
    // 0.5%: warned.
    for _ in 0..5 {
        count(sim.step_with(stable(|s| 4.5 * s)));
    }
    assert!(warned(&sim));
    // No more errors: the cumulative rate falls under 0.1% and the condition clears.
    let at = elapsed(&sim.status, sim.now).as_secs_f64();
    let mut samples = 0;
    while warned(&sim) {
        samples += 1;
        assert!(samples < 100, "never cleared");
        count(sim.step_with(stable(move |_| 4.5 * at)));
    }
    // 1% from here on: warned again.
    let at2 = elapsed(&sim.status, sim.now).as_secs_f64();
    for _ in 0..60 {
        count(sim.step_with(stable(move |s| 4.5 * at + 9.0 * (s - at2).max(0.0))));
    }
    assert!(warned(&sim));
    assert_eq!(warnings, 2, "warned again after it cleared");
}

/// Given a threshold tier (maxErrorRate 1%, minRequests 100), a canary failing half its
/// requests is rolled back at its first sample with far fewer than minRequests; a canary a
/// little above the maximum whose counts do not show it yet holds its slice (undecided, not a
/// pass, not a rollback).
#[test]
fn a_threshold_tier_fails_early_on_a_bound_and_holds_when_unsure() {
    let t = tier(
        Decision::Threshold,
        &[("10%", "10s"), ("50%", "10s")],
        false,
    );
    // (canary requests/s, error fraction) -> phase and step after two samples
    for (rps, p, phase, step, verdict) in [
        (2.0, 0.5, Phase::RolledBack, 0, Verdict::Fail),
        (
            100.0,
            0.012,
            Phase::Progressing,
            0,
            Verdict::NotEnoughRequests,
        ),
        (100.0, 0.005, Phase::Progressing, 1, Verdict::Pass),
    ] {
        let mut sim = Sim::new(t.clone(), Router::GatewayApi);
        sim.tick(None);
        sim.tick(None);
        for _ in 0..2 {
            sim.step_with(traffic(rps, p));
            if sim.status.phase.is_terminal() {
                break;
            }
        }
        let s = sim.status.samples.last().expect("a sample");
        let case = format!("{rps}/s at {p}: {s:?}");
        assert_eq!(sim.status.phase, phase, "{case}");
        assert_eq!(sim.status.step, step, "{case}");
        assert_eq!(s.verdict, verdict, "{case}");
        assert!(
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("lower confidence bound")),
            "{case}"
        );
        if phase == Phase::RolledBack {
            assert!(s.requests.is_some_and(|n| n < 100), "{case}");
            assert_eq!(
                sim.status.reason.as_deref(),
                Some("ErrorRateAboveThreshold")
            );
        }
    }
}

/// Given a threshold tier whose templates measure stable, the sample records stable's counts
/// and the dispersion it divides by (assumed 3 for the first five intervals); minRequests
/// still counts real requests.
#[test]
fn a_threshold_tier_divides_by_stable_dispersion() {
    let t = tier(Decision::Threshold, &[("10%", "1m")], false);
    let mut sim = Sim::new(t, Router::GatewayApi);
    sim.plan.measure_stable = true;
    sim.tick(None);
    sim.tick(None);
    sim.step_with(|e: Duration| {
        let s = e.as_secs_f64();
        Measurement::Counts {
            requests: 20.0 * s,
            errors: 0.0,
            stable: Some((180.0 * s, (180.0 * s * 0.001).floor())),
            latency: None,
            checks: vec![],
            queries: Queries::default(),
        }
    });
    let s = sim.status.samples.last().expect("a sample");
    // 200 requests in 10 s: a pass, although 200/3 is below minRequests.
    assert_eq!(s.verdict, Verdict::Pass, "{s:?}");
    assert_eq!(s.stable_requests, Some(1800));
    let m = s.message.as_deref().unwrap_or_default();
    assert!(m.contains("stable's dispersion 3.00"), "{m}");
    assert!(sim.status.test.is_some_and(|w| w.stable_intervals == 1));
}

/// Given a Gateway API run at its 10% slice, when Argo CD resets the route's weights at
/// every pass, then the third fight in the step holds the run (no next step although its
/// pause is over and its samples pass) with `WeightsContested` and one Warning Event naming
/// the manager, the weights wanted stay the step's share, and the run goes on once Argo CD
/// has been quiet for 30 s.
#[test]
fn repeated_weight_fights_hold_the_run_until_the_other_manager_is_quiet() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "20s"), ("50%", "20s")],
            false,
        ),
        Router::GatewayApi,
    );
    sim.tick(None);
    sim.tick(None);
    assert_eq!(
        sim.status.weight.map(|w| w.to_string()).as_deref(),
        Some("10%")
    );
    let argo = Fight {
        route: "web".into(),
        manager: "argocd-controller".into(),
    };
    let contested = |st: &RolloutRunStatus| {
        st.conditions
            .iter()
            .find(|c| c.type_ == condition::WEIGHTS_CONTESTED)
            .cloned()
    };
    let mut warnings = 0;
    // Fights with every pass (a sample a second, Argo CD's 1 s loop) for 60 s: past the pause.
    for _ in 0..60 {
        sim.weight_fight = Some(argo.clone());
        sim.advance(1);
        let m = sim
            .due()
            .then(|| traffic(20.0, 0.0)(elapsed(&sim.status, sim.now)));
        let out = sim.tick(m).clone();
        warnings += out
            .events
            .iter()
            .filter(|e| e.reason == WEIGHT_FIGHT && e.warning)
            .inspect(|e| {
                assert!(
                    e.message.contains("argocd-controller") && e.message.contains("HTTPRoute web"),
                    "{}",
                    e.message
                )
            })
            .count();
        assert_eq!(out.status.step, 0, "held: no next step");
        assert_eq!(
            out.desired.weight.to_string(),
            "10%",
            "the step's share is written back"
        );
    }
    let st = sim.status.clone();
    let c = contested(&st).expect("WeightsContested");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", WEIGHT_FIGHT)
    );
    assert!(c.message.contains("argocd-controller"), "{}", c.message);
    assert_eq!(warnings, 1, "one Warning Event when the hold starts");
    let fights = st.weight_fights.clone().expect("fights counted");
    assert_eq!((fights.total, fights.in_step), (60, 60));
    let waiting = st
        .conditions
        .iter()
        .find(|c| c.type_ == condition::WAITING)
        .expect("waiting");
    assert_eq!(waiting.reason, condition::WEIGHTS_CONTESTED);
    // Argo CD stops: the machine wakes when the hold ends, clears it and moves on.
    let wake = sim
        .last
        .as_ref()
        .and_then(|o| o.wake_at)
        .expect("a wake-up");
    assert!(wake <= sim.now + jiff::SignedDuration::from_secs(30));
    let mut over = false;
    for _ in 0..40 {
        let out = sim.step_with(traffic(20.0, 0.0)).clone();
        over |= out.events.iter().any(|e| e.reason == "WeightFightOver");
        if out.status.step == 1 {
            break;
        }
    }
    assert!(over, "the end of the hold is said");
    assert_eq!(sim.status.step, 1, "the run went on");
    assert!(contested(&sim.status).is_none());
}

/// One fight (a hand edit) is written back and counted but never holds the run.
#[test]
fn one_weight_fight_is_counted_and_does_not_hold() {
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "5s"), ("50%", "5s")], false),
        Router::GatewayApi,
    );
    sim.tick(None);
    sim.tick(None);
    sim.weight_fight = Some(Fight {
        route: "web".into(),
        manager: "kubectl-edit".into(),
    });
    sim.advance(1);
    sim.tick(None);
    for _ in 0..30 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(traffic(20.0, 0.0));
    }
    assert_eq!(sim.status.phase, Phase::Promoting);
    let fights = sim.status.weight_fights.clone().expect("counted");
    assert_eq!((fights.total, fights.manager.as_str()), (1, "kubectl-edit"));
}

/// Cumulative counts at `rps` without errors, a fraction `slow` of them slower than the
/// objective, stable's the same at nine times the traffic with `stable_slow` of them slow.
fn timed(rps: f64, slow: f64, stable_slow: f64) -> impl Fn(Duration) -> Measurement {
    use crate::analysis::request::Slow;
    move |e: Duration| {
        let n = rps * e.as_secs_f64();
        Measurement::Counts {
            requests: n,
            errors: 0.0,
            stable: Some((9.0 * n, 0.0)),
            latency: Some(LatencyCounts::Values {
                canary: Slow {
                    requests: n,
                    slow: (n * slow).floor(),
                },
                stable: Some(Slow {
                    requests: 9.0 * n,
                    slow: (9.0 * n * stable_slow).floor(),
                }),
            }),
            checks: vec![],
            queries: Queries::default(),
        }
    }
}

fn with_latency(mut t: Tier) -> Tier {
    t.latency = Some(crate::api::policy::LatencyObjective {
        objective: "500ms".into(),
        max_slow_rate: "5%".into(),
        p0: "1%".into(),
        baseline: crate::api::policy::Baseline::Stable,
    });
    t
}

fn latency_analysis() -> AnalysisSpec {
    AnalysisSpec {
        requests: Some("r{workload=\"{{workload}}\"}".into()),
        errors: Some("e{workload=\"{{workload}}\"}".into()),
        latency: Some(crate::api::policy::LatencySpec {
            buckets: Some("sum by (le) (b{workload=\"{{workload}}\"})".into()),
            unit: None,
        }),
        ..analysis()
    }
}

/// Given a tier with a latency objective, a canary whose errors are clean but whose requests
/// are slow is rolled back at its first slice by the slow requests' test, with their evidence.
#[test]
fn slow_requests_roll_a_canary_back_like_errors() {
    let t = with_latency(sequential_tier(
        &[("5%", "60s"), ("50%", "60s")],
        SequentialSpec::default(),
    ));
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, latency_analysis());
    sim.tick(None);
    sim.tick(None);
    for _ in 0..10 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(timed(20.0, 0.15, 0.005));
    }
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(
        sim.status.reason.as_deref(),
        Some("SlowRequestsTestRejected"),
        "{:?}",
        sim.status.message
    );
    let evidence = sim.status.evidence.clone().expect("evidence");
    assert_eq!(evidence.step, 0);
    assert_eq!(evidence.errors, Some(0));
    let slow = evidence.latency.expect("latency evidence");
    assert_eq!(slow.objective, "500ms");
    assert_eq!(slow.verdict, Verdict::Fail);
    assert!(slow.slow.is_some_and(|s| s > 0) && slow.stable_slow.is_some());
    // Its p0 was stable's slow share, floored at the objective's p0 (1%).
    assert_eq!(slow.baseline.as_deref(), Some("1%"));
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("canary requests slower than 500ms (15")
            && message.contains("slow requests' sequential test"),
        "{message}"
    );
}

/// Given the same tier, a canary as fast as stable is promoted, and a slice widens only once
/// both tests accepted it there.
#[test]
fn a_canary_as_fast_as_stable_is_promoted_once_both_tests_accept() {
    let t = with_latency(sequential_tier(
        &[("5%", "30s"), ("50%", "30s")],
        SequentialSpec::default(),
    ));
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, latency_analysis());
    sim.tick(None);
    sim.tick(None);
    for _ in 0..40 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(timed(50.0, 0.003, 0.003));
        if sim.status.step == 1 {
            let errors = sim.status.test.as_ref().and_then(|w| w.accepted_step);
            let slow = sim
                .status
                .latency_test
                .as_ref()
                .and_then(|w| w.accepted_step);
            assert!(errors.is_some() && slow.is_some(), "{errors:?} {slow:?}");
        }
    }
    assert_eq!(
        sim.status.phase,
        Phase::Promoting,
        "{:?}",
        sim.status.samples
    );
    let s = sim.status.samples.last().expect("sample");
    assert!(s.latency.as_ref().is_some_and(|l| l.rate.is_some()));
}

/// Given a histogram whose bounds do not hold the objective, the run holds and says which
/// bounds it has; it never promotes on it.
#[test]
fn an_objective_that_is_not_a_bound_holds_the_run() {
    let t = with_latency(tier(Decision::Threshold, &[("10%", "20s")], false));
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, latency_analysis());
    sim.tick(None);
    sim.tick(None);
    let why = "the latency objective 0.5s is not a bucket bound of the canary's histogram, whose bounds are 0.1s, 0.3s: choose one of them";
    for _ in 0..8 {
        sim.step_with(|e: Duration| Measurement::Counts {
            requests: 20.0 * e.as_secs_f64(),
            errors: 0.0,
            stable: None,
            latency: Some(LatencyCounts::Invalid(why.into())),
            checks: vec![],
            queries: Queries::default(),
        });
    }
    assert_eq!(sim.status.phase, Phase::Progressing);
    let s = sim.status.samples.last().expect("sample");
    assert_eq!(s.verdict, Verdict::Error);
    assert!(
        s.message
            .as_deref()
            .is_some_and(|m| m.contains("0.1s, 0.3s")),
        "{s:?}"
    );
    let analysis = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::ANALYSIS)
        .expect("analysis condition");
    assert_eq!(analysis.reason, "QueryFailed");
}

/// Clean counts with one check, `cpu`, whose value `value(elapsed)` gives (`None`: no data).
fn checked(value: impl Fn(f64) -> Option<f64>) -> impl Fn(Duration) -> Measurement {
    use crate::analysis::request::CheckValue;
    move |e: Duration| {
        let s = e.as_secs_f64();
        Measurement::Counts {
            requests: 50.0 * s,
            errors: 0.0,
            stable: None,
            latency: None,
            checks: vec![CheckValue {
                name: "cpu".into(),
                value: value(s)
                    .ok_or_else(|| "the check cpu's query returned an empty vector".into()),
            }],
            queries: Queries {
                checks: vec![("cpu".into(), "max(cpu)".into())],
                ..Queries::default()
            },
        }
    }
}

fn with_check(failure_limit: i32) -> AnalysisSpec {
    AnalysisSpec {
        checks: vec![crate::api::policy::Check {
            name: "cpu".into(),
            query: "max(cpu)".into(),
            min: None,
            max: Some(0.8),
            failure_limit,
        }],
        ..analysis()
    }
}

/// Given a check with a failure limit of 1, one sample above its max is recorded and
/// tolerated; the second rolls the canary back, naming the check, its value and its bounds.
#[test]
fn a_check_past_its_failure_limit_rolls_back() {
    let t = tier(
        Decision::Threshold,
        &[("10%", "60s"), ("50%", "60s")],
        false,
    );
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, with_check(1));
    sim.tick(None);
    sim.tick(None);
    // Within bounds for the first 3 s, then 0.95.
    for _ in 0..10 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(checked(|s| Some(if s < 3.5 { 0.5 } else { 0.95 })));
    }
    assert_eq!(sim.status.phase, Phase::RolledBack);
    assert_eq!(sim.status.reason.as_deref(), Some("CheckFailed"));
    let failures = &sim.status.check_failures;
    assert_eq!(
        (failures[0].name.as_str(), failures[0].failures),
        ("cpu", 2)
    );
    let fails: Vec<_> = sim
        .status
        .samples
        .iter()
        .flat_map(|s| &s.checks)
        .filter(|c| c.verdict == Verdict::Fail)
        .collect();
    assert_eq!(fails.len(), 2, "{:?}", sim.status.samples);
    let ev = sim.status.evidence.clone().expect("evidence");
    assert_eq!(ev.checks[0].value.as_deref(), Some("0.95"));
    assert_eq!(ev.checks[0].query.as_deref(), Some("max(cpu)"));
    let message = sim.status.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("rolled back: the check cpu returned 0.95, not at most 0.8 (2 failed sample(s), failureLimit 1)"),
        "{message}"
    );
}

/// Given a check within its bounds the run is promoted; given one that returns nothing, the
/// run holds (never promoted) as for a query without data.
#[test]
fn a_check_within_bounds_promotes_and_one_without_data_holds() {
    let t = tier(Decision::Threshold, &[("10%", "5s"), ("50%", "5s")], false);
    let mut sim = Sim::with_analysis(t.clone(), Router::GatewayApi, with_check(0));
    sim.tick(None);
    sim.tick(None);
    for _ in 0..30 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(checked(|_| Some(0.3)));
    }
    assert_eq!(sim.status.phase, Phase::Promoting);
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, with_check(0));
    sim.tick(None);
    sim.tick(None);
    for _ in 0..30 {
        sim.step_with(checked(|_| None));
    }
    assert_eq!(sim.status.phase, Phase::Progressing);
    assert_eq!(sim.status.step, 0);
    let s = sim.status.samples.last().expect("sample");
    assert_eq!(s.verdict, Verdict::NoData);
    assert_eq!(s.checks[0].verdict, Verdict::NoData);
}

/// Given a check failing within its limit, the run goes on but its slice holds: the step
/// whose pause has ended widens only after a sample that passes every check, as after a
/// failed threshold sample.
#[test]
fn a_check_failing_within_its_limit_holds_the_slice() {
    let t = tier(Decision::Threshold, &[("10%", "5s"), ("50%", "5s")], false);
    let mut sim = Sim::with_analysis(t, Router::GatewayApi, with_check(5));
    sim.tick(None);
    sim.tick(None);
    // Above the max for the first 12 s of the canary, then within.
    let mut held = None;
    for _ in 0..40 {
        if sim.status.phase != Phase::Progressing {
            break;
        }
        sim.step_with(checked(|s| Some(if s < 12.5 { 0.95 } else { 0.3 })));
        if let Some(s) = sim.status.samples.last()
            && s.checks[0].verdict == Verdict::Fail
        {
            assert_eq!(s.verdict, Verdict::Fail, "{s:?}");
            assert_eq!(sim.status.step, 0, "widened on a failed check: {s:?}");
            held = sim
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == condition::WAITING && c.status == "True")
                .map(|c| c.reason.clone());
        }
    }
    assert_eq!(held.as_deref(), Some("WaitingForEvidence"));
    assert_eq!(sim.status.phase, Phase::Promoting);
    assert_eq!(sim.status.reason, None);
    // Every sample in the second slice came after the check passed.
    let first_pass = sim
        .status
        .samples
        .iter()
        .position(|s| s.checks[0].verdict == Verdict::Pass)
        .expect("a passing sample");
    assert!(sim.status.samples[..first_pass].iter().all(|s| s.step == 0));
}

/// Given the Gateway API router, a slice starts only once the canary's ready pods are
/// endpoints of its routing Service: before that the route keeps the canary's old weight
/// (none at the first slice) and the run says what it waits for; once they are, the weight
/// is written in the same pass.
#[test]
fn a_slice_waits_for_the_canarys_endpoints_with_the_gateway_api_router() {
    let mut sim = Sim::new(
        tier(
            Decision::Threshold,
            &[("10%", "60s"), ("50%", "60s")],
            false,
        ),
        Router::GatewayApi,
    );
    sim.published = Some(0);
    sim.tick(None);
    // Ready, not yet published: no weight, and the run says why.
    for _ in 0..3 {
        let out = sim.tick(None).clone();
        assert_eq!(out.desired.weight.to_string(), "0%");
        assert_eq!(out.desired.canary_replicas, Some(1));
    }
    assert!(sim.status.step_started_at.is_none());
    assert!(sim.status.canary_started_at.is_none());
    let waiting = sim
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::WAITING && c.status == "True")
        .expect("waiting");
    assert_eq!(waiting.reason, waiting::CANARY_NOT_ROUTABLE);
    assert!(
        waiting
            .message
            .starts_with("waiting for the canary's endpoints: 0/1 ready pods"),
        "{}",
        waiting.message
    );
    // Published: the slice starts in this pass.
    sim.published = Some(1);
    sim.canary = sim.canary.map(|c| CanaryObserved {
        endpoints: Some(1),
        ..c
    });
    let out = sim.tick(None).clone();
    assert_eq!(out.desired.weight.to_string(), "10%");
    assert!(sim.status.step_started_at.is_some());
    // The next, bigger slice waits for its own pods' endpoints in the same way, and the
    // canary keeps its 10% meanwhile.
    sim.published = Some(1);
    sim.advance(61);
    sim.tick(Some(counts(1000.0, 0.0)));
    let out = sim.tick(None).clone();
    assert_eq!(out.desired.weight.to_string(), "10%");
    let want = out.desired.canary_replicas.unwrap_or(0);
    assert!(want > 1, "{out:?}");
    sim.published = Some(want);
    sim.canary = sim.canary.map(|c| CanaryObserved {
        endpoints: Some(want),
        ..c
    });
    let out = sim.tick(None).clone();
    assert_eq!(out.desired.weight.to_string(), "50%");
    // The replicas router reports no endpoints and is not held.
    let mut sim = Sim::new(
        tier(Decision::Threshold, &[("10%", "60s")], false),
        Router::Replicas,
    );
    sim.tick(None);
    sim.tick(None);
    assert!(sim.status.step_started_at.is_some());
}
