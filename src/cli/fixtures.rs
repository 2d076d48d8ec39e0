//! Test fixtures: runs and Deployment views in well-known states, at a fixed `now`, for the
//! rendering and `wait` tests.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ObjectMeta;

use super::view::DeploymentRollouts;
use crate::api::policy::{AnalysisSpec, Decision, SequentialSpec, Step, Tier};
use crate::api::quantity::Ratio;
use crate::api::run::{
    Approval, Command, MatchedTier, Phase, RolloutRun, RolloutRunSpec, RolloutRunStatus,
    RunControl, Sample, Verdict,
};

/// A percentage written as in a status, e.g. `pct("5%")`.
fn pct(s: &str) -> Ratio {
    s.parse().expect("a percentage")
}

/// The fixed "now" of every fixture: 2026-03-01T12:00:00Z.
pub fn now() -> Timestamp {
    "2026-03-01T12:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `now` minus `secs`.
pub fn ago(secs: i64) -> Time {
    Time(now() - jiff::SignedDuration::from_secs(secs))
}

fn tier(name: &str, steps: &[(&str, &str)], approval: bool) -> Tier {
    Tier {
        name: name.into(),
        match_: None,
        steps: steps
            .iter()
            .map(|(w, p)| Step {
                weight: (*w).into(),
                pause: (*p).into(),
            })
            .collect(),
        max_error_rate: "0.5%".into(),
        decision: Decision::Threshold,
        failure_limit: 0,
        threshold: None,
        sequential: None,
        min_requests: None,
        require_approval: approval,
        allow_self_approval: false,
        allow_service_account_approval: false,
        max_share: None,
        latency: None,
    }
}

/// A run of `web` in namespace `shop`, revision `8d3e41f0` over `6f1c2a9b`, created
/// `age` seconds ago, in the ai-assisted tier (1% 5m, 5% 10m, 25% 10m; approval required).
pub fn run(name: &str, revision: &str, age: i64, status: RolloutRunStatus) -> RolloutRun {
    let mut r = RolloutRun::new(
        name,
        RolloutRunSpec {
            deployment: "web".into(),
            policy: "shop".into(),
            stable_revision: "6f1c2a9b".into(),
            canary_revision: revision.into(),
            tier: MatchedTier {
                name: "ai-assisted".into(),
                reason: "pod template annotation rollguard.dev/change-origin=ai-assisted".into(),
            },
            plan: tier("ai-assisted", &[("1%", "5m"), ("5%", "10m"), ("25%", "10m")], true),
            analysis: AnalysisSpec {
                interval: "30s".into(),
                prometheus: None,
                preset: None,
                requests: Some("sum(increase(http_requests_total{workload=\"{{workload}}\"}[{{elapsed}}]))".into()),
                errors: Some("sum(increase(http_requests_total{workload=\"{{workload}}\",code=~\"5..\"}[{{elapsed}}]))".into()),
                latency: None,
                checks: Vec::new(),
                min_requests: 100,
                on_no_data: Default::default(),
                no_data_limit: 3,
            },
            router: "replicas".into(),
            author: Some("dev@example.com".into()),
            approvals: vec![],
            control: None,
        },
    );
    r.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("shop".into()),
        creation_timestamp: Some(ago(age)),
        ..Default::default()
    };
    r.status = Some(status);
    r
}

/// A passing threshold sample taken `age` seconds ago in `step`.
pub fn sample(
    age: i64,
    step: i32,
    requests: u64,
    errors: u64,
    rate: &str,
    verdict: Verdict,
) -> Sample {
    Sample {
        time: ago(age),
        step,
        requests_query: Some(
            "sum(increase(http_requests_total{workload=\"web-canary\"}[4m]))".into(),
        ),
        errors_query: Some(
            "sum(increase(http_requests_total{workload=\"web-canary\",code=~\"5..\"}[4m]))".into(),
        ),
        requests: Some(requests),
        errors: Some(errors),
        stable_requests: None,
        stable_errors: None,
        rate: Some(rate.into()),
        threshold: Some("0.5%".into()),
        statistic: None,
        upper_bound: None,
        lower_bound: None,
        baseline: None,
        verdict,
        message: None,
        latency: None,
        checks: Vec::new(),
    }
}

/// Step 2 of 3 (5%), started 4 minutes ago, 8 samples, the latest passing.
pub fn progressing() -> RolloutRun {
    run(
        "web-8d3e41f0",
        "8d3e41f0",
        9 * 60 + 30,
        RolloutRunStatus {
            phase: Phase::Progressing,
            step: 1,
            step_display: Some("2/3".into()),
            weight: Some(pct("5%")),
            error_rate: Some("0.13%".into()),
            canary_started_at: Some(ago(9 * 60)),
            step_started_at: Some(ago(4 * 60)),
            last_analysis_at: Some(ago(10)),
            samples: vec![sample(10, 1, 1520, 2, "0.13%", Verdict::Pass)],
            sample_count: 18,
            ..Default::default()
        },
    )
}

/// All steps passed; waiting for an approval.
pub fn awaiting_approval() -> RolloutRun {
    let mut r = progressing();
    if let Some(st) = r.status.as_mut() {
        st.phase = Phase::AwaitingApproval;
        st.step = 2;
        st.weight = Some(pct("25%"));
        st.conditions = vec![Condition {
            type_: "Waiting".into(),
            status: "True".into(),
            reason: "AwaitingApproval".into(),
            message: "all steps passed; waiting for `kubectl rollguard approve`".into(),
            last_transition_time: ago(60),
            observed_generation: None,
        }];
    }
    r
}

/// Rolled back 5 minutes ago at step 1 on a failing sample.
pub fn rolled_back(name: &str, revision: &str) -> RolloutRun {
    let evidence = sample(300, 0, 420, 9, "2.1429%", Verdict::Fail);
    run(
        name,
        revision,
        3600,
        RolloutRunStatus {
            phase: Phase::RolledBack,
            step: 0,
            weight: Some(Ratio::ZERO),
            error_rate: Some("2.1429%".into()),
            samples: vec![evidence.clone()],
            sample_count: 6,
            ended_at: Some(ago(300)),
            reason: Some("ErrorRateAboveThreshold".into()),
            message: Some("rolled back: 420 canary requests, 9 errors (2.1429%) is above the threshold 0.5% (1 failed sample(s))".into()),
            evidence: Some(evidence),
            ..Default::default()
        },
    )
}

/// Promoted two hours ago, approved by alice.
pub fn succeeded(name: &str, revision: &str) -> RolloutRun {
    let mut r = run(
        name,
        revision,
        3 * 3600,
        RolloutRunStatus {
            phase: Phase::Succeeded,
            step: 2,
            weight: Some(Ratio::ZERO),
            ended_at: Some(ago(2 * 3600)),
            reason: Some("Promoted".into()),
            message: Some(format!(
                "revision {revision} is now stable (tier ai-assisted)"
            )),
            ..Default::default()
        },
    );
    r.spec.approvals = vec![Approval {
        user: "alice@example.com".into(),
        groups: vec!["sre".into()],
        time: ago(2 * 3600 + 60),
        run: r.metadata.name.clone(),
        revision: Some(r.spec.canary_revision.clone()),
        step: Some(1),
    }];
    r
}

/// Aborted by bob.
pub fn aborted() -> RolloutRun {
    let mut r = rolled_back("web-8d3e41f0", "8d3e41f0");
    if let Some(st) = r.status.as_mut() {
        st.phase = Phase::Aborted;
        st.reason = Some("Aborted".into());
        st.message = Some("aborted by bob: dashboards look wrong".into());
        st.evidence = None;
    }
    r.spec.control = Some(RunControl {
        abort: Some(Command {
            user: "bob".into(),
            time: ago(310),
            reason: Some("dashboards look wrong".into()),
        }),
        ..Default::default()
    });
    r
}

/// A sequential-test sample.
pub fn sequential_sample() -> Sample {
    Sample {
        statistic: Some("1.234".into()),
        upper_bound: Some("4.595".into()),
        lower_bound: Some("-2.944".into()),
        baseline: Some("0.1%".into()),
        threshold: Some("0.5%".into()),
        verdict: Verdict::Continue,
        ..sample(5, 0, 800, 2, "0.25%", Verdict::Continue)
    }
}

/// The ai-assisted tier with the sequential decision.
pub fn sequential(mut r: RolloutRun) -> RolloutRun {
    r.spec.plan.decision = Decision::Sequential;
    r.spec.plan.sequential = Some(SequentialSpec::default());
    r
}

/// `shop/web` with the given runs in flight and history.
pub fn web(current: Option<RolloutRun>, history: Vec<RolloutRun>) -> DeploymentRollouts {
    let template = current
        .as_ref()
        .map(|r| r.spec.canary_revision.clone())
        .unwrap_or_else(|| "6f1c2a9b".into());
    DeploymentRollouts {
        namespace: "shop".into(),
        deployment: "web".into(),
        policies: vec!["shop".into()],
        governed_by: Some("shop".into()),
        stable_revision: Some("6f1c2a9b".into()),
        failed_revision: None,
        template_revision: Some(template),
        current,
        history,
    }
}
