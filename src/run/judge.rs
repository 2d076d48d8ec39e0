//! One sample's judgement: a measurement and the plan's test in, the sample's evidence and
//! what it says about the canary out. Pure; the machine decides what the judgement does to
//! the run.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::stable_rate::{StableVsP0, stable_vs_p0};
use super::{Measurement, RolloutRunStatus, RunView, fmt_rate};
use crate::analysis::bound::lower_bound;
use crate::analysis::decision::{
    DecisionError, MixtureSprt, SequentialOutcome, SequentialVerdict, Sprt, ThresholdVerdict,
    threshold, threshold_as_measured,
};
use crate::analysis::relative::{RelativeSprt, dispersion, spent_alpha};
use crate::analysis::request::{CheckValue, LatencyCounts};
use crate::api::policy::{Baseline, OnInconclusive, SequentialTest};
use crate::api::quantity::format_duration;
use crate::api::run::{
    CheckFailures, CheckSample, LatencySample, Sample, TestWindow, Verdict, WindowCounts,
};
use crate::plan::{CheckPlan, Judge};

/// A count Prometheus reported (finite and not negative), rounded to a whole number.
fn count(x: f64) -> u64 {
    x.round() as u64
}

/// How a sample judged the canary.
pub(super) enum Judgement {
    Healthy,
    Undecided,
    Bad { reason: &'static str },
    NoData,
    Error,
}

impl Judgement {
    /// How much this judgement weighs when two signals are combined: a rollback first, then
    /// what keeps the run from moving on (a failed query, no data, too few requests).
    fn severity(&self) -> u8 {
        match self {
            Judgement::Bad { .. } => 4,
            Judgement::Error => 3,
            Judgement::NoData => 2,
            Judgement::Undecided => 1,
            Judgement::Healthy => 0,
        }
    }
}

pub(super) struct Judged {
    pub sample: Sample,
    pub judgement: Judgement,
    /// Sequential mode: the test's window after this sample (`None`: unchanged).
    pub window: Option<TestWindow>,
    /// The same for slow requests (`None`: unchanged).
    pub latency_window: Option<TestWindow>,
    /// Each check's failures after this sample (`None`: unchanged).
    pub check_failures: Option<Vec<CheckFailures>>,
    /// A fixed p0 checked against stable's measured rate (`None`: not checked).
    pub stable_vs_p0: Option<StableVsP0>,
}

impl Judged {
    /// Another signal's judgement replaces the sample's when it weighs more: a rollback by
    /// slow requests or a check, or an unreadable histogram or check that holds the run.
    fn take_if_worse(
        &mut self,
        judgement: Judgement,
        verdict: Verdict,
        message: impl FnOnce(&Sample) -> String,
    ) {
        if judgement.severity() > self.judgement.severity() {
            self.judgement = judgement;
            self.sample.verdict = verdict;
            self.sample.message = Some(message(&self.sample));
        }
    }
}

/// What is judged: the canary's errors, or its requests slower than the latency objective.
/// Both go through the same tests; only the words differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    Errors,
    Slow,
}

impl Signal {
    /// The field that holds the maximum rate.
    fn max_field(self) -> &'static str {
        match self {
            Signal::Errors => "maxErrorRate",
            Signal::Slow => "latency.maxSlowRate",
        }
    }

    /// The run's reason when a threshold sample fails.
    fn above_threshold(self) -> &'static str {
        match self {
            Signal::Errors => "ErrorRateAboveThreshold",
            Signal::Slow => "SlowRequestsAboveThreshold",
        }
    }

    /// The run's reason when the sequential test rejects the canary.
    fn rejected(self) -> &'static str {
        match self {
            Signal::Errors => "SequentialTestRejected",
            Signal::Slow => "SlowRequestsTestRejected",
        }
    }
}

/// One signal's evidence, as a sample records it.
#[derive(Default)]
struct Evidence {
    requests: Option<u64>,
    bad: Option<u64>,
    stable_requests: Option<u64>,
    stable_bad: Option<u64>,
    rate: Option<String>,
    threshold: Option<String>,
    statistic: Option<String>,
    upper_bound: Option<String>,
    lower_bound: Option<String>,
    baseline: Option<String>,
    message: Option<String>,
}

/// One signal judged.
struct SignalJudged {
    evidence: Evidence,
    verdict: Verdict,
    judgement: Judgement,
    window: Option<TestWindow>,
    stable_vs_p0: Option<StableVsP0>,
}

impl SignalJudged {
    fn unusable(evidence: Evidence, verdict: Verdict, judgement: Judgement) -> SignalJudged {
        SignalJudged {
            evidence,
            verdict,
            judgement,
            window: None,
            stable_vs_p0: None,
        }
    }
}

pub(super) fn judge(
    run: &RunView,
    status: &RolloutRunStatus,
    m: &Measurement,
    now: Timestamp,
) -> Judged {
    let plan = run.plan;
    let queries = match m {
        Measurement::Counts { queries, .. }
        | Measurement::NoData { queries, .. }
        | Measurement::Failed { queries, .. } => queries,
    };
    let mut sample = Sample {
        time: Time(now),
        step: status.step,
        requests_query: Some(queries.requests.clone()),
        errors_query: Some(queries.errors.clone()),
        requests: None,
        errors: None,
        stable_requests: None,
        stable_errors: None,
        rate: None,
        threshold: None,
        statistic: None,
        upper_bound: None,
        lower_bound: None,
        baseline: None,
        // Set on every path below.
        verdict: Verdict::Error,
        message: None,
        latency: None,
        checks: Vec::new(),
    };
    let unjudged = |mut sample: Sample, verdict, why: &str, judgement| {
        sample.verdict = verdict;
        sample.message = Some(why.to_string());
        Judged {
            sample,
            judgement,
            window: None,
            latency_window: None,
            check_failures: None,
            stable_vs_p0: None,
        }
    };
    let no_data_fails = plan.peer().is_some_and(|p| p.no_data_fails);
    let (requests, errors, stable, latency, checks) = match m {
        Measurement::NoData { why, .. } | Measurement::Failed { why, .. } if no_data_fails => {
            let (verdict, judgement) = no_data_failed();
            return unjudged(
                sample,
                verdict,
                &format!("{why}; {NO_DATA_FAILS_WHY}"),
                judgement,
            );
        }
        Measurement::NoData { why, .. } => {
            return unjudged(sample, Verdict::NoData, why, Judgement::NoData);
        }
        Measurement::Failed { why, .. } => {
            return unjudged(sample, Verdict::Error, why, Judgement::Error);
        }
        Measurement::Counts {
            requests,
            errors,
            stable,
            latency,
            checks,
            ..
        } => (*requests, *errors, *stable, latency, checks),
    };
    let errors_judged = judge_signal(
        Signal::Errors,
        &plan.judge,
        plan.min_requests,
        status,
        status.test.as_ref(),
        Cumulative {
            requests,
            errors,
            stable,
        },
    );
    let e = errors_judged.evidence;
    sample.requests = e.requests;
    sample.errors = e.bad;
    sample.stable_requests = e.stable_requests;
    sample.stable_errors = e.stable_bad;
    sample.rate = e.rate;
    sample.threshold = e.threshold;
    sample.statistic = e.statistic;
    sample.upper_bound = e.upper_bound;
    sample.lower_bound = e.lower_bound;
    sample.baseline = e.baseline;
    sample.message = e.message;
    sample.verdict = errors_judged.verdict;
    let mut judged = Judged {
        sample,
        judgement: errors_judged.judgement,
        window: errors_judged.window,
        latency_window: None,
        check_failures: None,
        stable_vs_p0: errors_judged.stable_vs_p0,
    };
    if !plan.checks.is_empty() {
        judge_checks(&mut judged, &plan.checks, checks, queries, status);
    }
    let Some(objective) = &plan.latency else {
        return judged;
    };
    let slow = match latency {
        Some(LatencyCounts::Values { canary, stable }) => judge_signal(
            Signal::Slow,
            &objective.judge,
            plan.min_requests,
            status,
            status.latency_test.as_ref(),
            Cumulative {
                requests: canary.requests,
                errors: canary.slow,
                stable: stable.map(|s| (s.requests, s.slow)),
            },
        ),
        unusable => {
            let (why, verdict, judgement) = match unusable {
                Some(LatencyCounts::NoData(why)) => {
                    (why.clone(), Verdict::NoData, Judgement::NoData)
                }
                Some(LatencyCounts::Invalid(why)) => {
                    (why.clone(), Verdict::Error, Judgement::Error)
                }
                _ => (
                    "the latency histogram was not asked for".into(),
                    Verdict::Error,
                    Judgement::Error,
                ),
            };
            SignalJudged::unusable(
                Evidence {
                    message: Some(why),
                    ..Evidence::default()
                },
                verdict,
                judgement,
            )
        }
    };
    let e = slow.evidence;
    judged.sample.latency = Some(LatencySample {
        objective: format_duration(objective.objective),
        query: queries.latency.clone(),
        requests: e.requests,
        slow: e.bad,
        stable_requests: e.stable_requests,
        stable_slow: e.stable_bad,
        rate: e.rate,
        threshold: e.threshold,
        statistic: e.statistic,
        upper_bound: e.upper_bound,
        lower_bound: e.lower_bound,
        baseline: e.baseline,
        verdict: slow.verdict,
        message: e.message,
    });
    judged.latency_window = slow.window;
    // The sample's verdict and judgement are the worse of the two: slow requests roll the
    // canary back as errors do, and an unreadable histogram holds it as a failed query does.
    judged.take_if_worse(slow.judgement, slow.verdict, |s| {
        let l = s.latency.as_ref();
        format!(
            "slow requests (over {}): {}",
            l.map_or("", |l| l.objective.as_str()),
            l.and_then(|l| l.message.as_deref()).unwrap_or("")
        )
    });
    judged
}

/// The run's reason when a check fails past its limit.
pub(super) const CHECK_FAILED: &str = "CheckFailed";

/// The reason of a rollback by samples without data, when a peer's check is modelled that
/// counts them as failed ([`crate::plan::PeerCheck::no_data_fails`]).
pub(super) const NO_DATA_FAILED: &str = "NoDataFailedCheck";

const NO_DATA_FAILS_WHY: &str =
    "no data is a failed check (the peers' check, modelled by rollguard simulate)";

/// A sample without data, where the modelled peer counts it as a failed check.
fn no_data_failed() -> (Verdict, Judgement) {
    (
        Verdict::Fail,
        Judgement::Bad {
            reason: NO_DATA_FAILED,
        },
    )
}

/// Judges every check's value against its bounds, records them in the sample and counts the
/// failures; a check past its `failureLimit` makes the sample roll the canary back, a check
/// without a value holds it (as a query without data does).
fn judge_checks(
    judged: &mut Judged,
    plans: &[CheckPlan],
    values: &[CheckValue],
    queries: &super::Queries,
    status: &RolloutRunStatus,
) {
    let mut failures = status.check_failures.clone();
    let mut worst: Option<(Judgement, Verdict, String)> = None;
    for plan in plans {
        let query = queries
            .checks
            .iter()
            .find(|(n, _)| *n == plan.name)
            .map(|(_, q)| q.clone());
        let value = values.iter().find(|v| v.name == plan.name).map_or_else(
            || Err(format!("the check {} was not asked for", plan.name)),
            |v| v.value.clone(),
        );
        let bounds = match (plan.min, plan.max) {
            (Some(lo), Some(hi)) => format!("within [{lo}, {hi}]"),
            (Some(lo), None) => format!("at least {lo}"),
            (None, Some(hi)) => format!("at most {hi}"),
            (None, None) => "unbounded".into(),
        };
        let (verdict, value_text, message, judgement) = match value {
            Err(why) => (
                Verdict::NoData,
                None,
                why.clone(),
                Some((Judgement::NoData, Verdict::NoData, why)),
            ),
            Ok(v) => {
                let outside =
                    plan.min.is_some_and(|lo| v < lo) || plan.max.is_some_and(|hi| v > hi);
                if outside {
                    let n = match failures.iter_mut().find(|f| f.name == plan.name) {
                        Some(f) => {
                            f.failures += 1;
                            f.failures
                        }
                        None => {
                            failures.push(CheckFailures {
                                name: plan.name.clone(),
                                failures: 1,
                            });
                            1
                        }
                    };
                    let past = n > plan.failure_limit as i32;
                    let message = format!(
                        "the check {} returned {v}, not {bounds} ({n} failed sample(s), failureLimit {})",
                        plan.name, plan.failure_limit
                    );
                    // Within the limit the run goes on, but its slice widens only after a
                    // sample that passes every check (as a failed threshold sample holds it).
                    let judgement = if past {
                        Judgement::Bad {
                            reason: CHECK_FAILED,
                        }
                    } else {
                        Judgement::Undecided
                    };
                    (
                        Verdict::Fail,
                        Some(v),
                        message.clone(),
                        Some((judgement, Verdict::Fail, message)),
                    )
                } else {
                    (Verdict::Pass, Some(v), bounds, None)
                }
            }
        };
        judged.sample.checks.push(CheckSample {
            name: plan.name.clone(),
            query,
            value: value_text.map(|v| format!("{v}")),
            verdict,
            message: Some(message),
        });
        if let Some(j) = judgement
            && worst
                .as_ref()
                .is_none_or(|(w, _, _)| j.0.severity() > w.severity())
        {
            worst = Some(j);
        }
    }
    judged.check_failures = Some(failures);
    if let Some((judgement, verdict, message)) = worst {
        judged.take_if_worse(judgement, verdict, |_| message);
    }
}

/// Judges one signal's cumulative counts with `judge`, whose window between samples is
/// `window` (`status.test` for errors, `status.latencyTest` for slow requests).
fn judge_signal(
    signal: Signal,
    judge: &Judge,
    min_requests: f64,
    status: &RolloutRunStatus,
    window: Option<&TestWindow>,
    now: Cumulative,
) -> SignalJudged {
    let Cumulative {
        requests,
        errors,
        stable,
    } = now;
    let mut ev = Evidence::default();
    if !requests.is_finite() || !errors.is_finite() || requests < 0.0 || errors < 0.0 {
        ev.message = Some(format!(
            "Prometheus returned unusable counts (requests {requests}, {} {errors})",
            if signal == Signal::Errors {
                "errors"
            } else {
                "slow"
            }
        ));
        return SignalJudged::unusable(ev, Verdict::NoData, Judgement::NoData);
    }
    ev.requests = Some(count(requests));
    ev.bad = Some(count(errors));
    if requests > 0.0 {
        ev.rate = Some(fmt_rate(errors / requests));
    }
    match judge {
        Judge::Threshold {
            max_error_rate,
            peer: Some(peer),
            ..
        } => {
            let out = threshold_as_measured(requests, errors, *max_error_rate, min_requests);
            ev.threshold = Some(fmt_rate(*max_error_rate));
            ev.message = Some(format!(
                "the measured rate against {}, with no confidence bound (the peers' check, modelled by rollguard simulate)",
                signal.max_field()
            ));
            let (verdict, judgement) = if peer.no_data_fails && requests == 0.0 {
                ev.message = Some(NO_DATA_FAILS_WHY.into());
                no_data_failed()
            } else {
                threshold_judgement(signal, out.verdict)
            };
            SignalJudged {
                evidence: ev,
                verdict,
                judgement,
                window: None,
                stable_vs_p0: None,
            }
        }
        Judge::Threshold {
            max_error_rate,
            alpha,
            ..
        } => {
            // The run's k-th sample: the exact bound spends alpha/2/(k(k+1)) of the run's
            // false-rollback budget, the always-valid mixture the other half.
            let k = status.sample_count.saturating_add(1);
            let level = spent_alpha(alpha / 2.0, k);
            // Stable measured (templates that tell the revisions apart): its counts give the
            // dispersion that clumped errors need.
            let stable = stable.filter(|s| *s != (requests, errors));
            if let Some((sr, se)) = stable {
                ev.stable_requests = Some(count(sr));
                ev.stable_bad = Some(count(se));
            }
            let (window, phi) = threshold_dispersion(
                window,
                Cumulative {
                    requests,
                    errors,
                    stable,
                },
            );
            let out = threshold(
                requests,
                errors,
                *max_error_rate,
                min_requests,
                *alpha,
                k,
                phi,
            );
            ev.threshold = Some(fmt_rate(*max_error_rate));
            ev.message = Some(threshold_message(
                signal,
                (requests, errors, phi),
                *max_error_rate,
                min_requests,
                out.verdict == ThresholdVerdict::Fail,
                (k, level, *alpha),
            ));
            let (verdict, judgement) = threshold_judgement(signal, out.verdict);
            SignalJudged {
                evidence: ev,
                verdict,
                judgement,
                window,
                stable_vs_p0: None,
            }
        }
        Judge::Sequential {
            test,
            baseline,
            p0,
            p1,
            alpha,
            beta,
            ..
        } => {
            let stable = match stable {
                // The same counts for both revisions: the templates do not tell them apart
                // (no {{workload}}, {{track}} or {{revision}}), so there is no baseline.
                Some((sr, se)) if (sr, se) != (requests, errors) => {
                    ev.stable_requests = Some(count(sr));
                    ev.stable_bad = Some(count(se));
                    Some((sr, se))
                }
                _ => None,
            };
            let seq = SequentialParams {
                test: *test,
                baseline: *baseline,
                p0: *p0,
                p1: *p1,
                alpha: *alpha,
                beta: *beta,
                min_requests,
            };
            let (window, outcome) = match sequential(
                &seq,
                status.step,
                window,
                Cumulative {
                    requests,
                    errors,
                    stable,
                },
            ) {
                Ok(o) => o,
                Err(e) => {
                    ev.message = Some(e.to_string());
                    return SignalJudged::unusable(ev, Verdict::Error, Judgement::Error);
                }
            };
            // A fixed p0 is checked against stable's error rate since the canary started.
            let checked = match (signal, baseline, stable) {
                (Signal::Errors, Baseline::Fixed, Some((sr, se))) => Some(stable_vs_p0(
                    sr,
                    se,
                    *p0,
                    dispersion(
                        window.stable_intervals,
                        window.stable_squares as f64 / 1e6,
                        sr,
                        se,
                    ),
                    i64::from(status.sample_count) + 1,
                )),
                _ => None,
            };
            ev.baseline = Some(fmt_rate(outcome.p0));
            ev.threshold = Some(fmt_rate(outcome.p1));
            ev.statistic = Some(format!("{:.3}", outcome.test.statistic));
            ev.upper_bound = Some(format!("{:.3}", outcome.test.upper));
            ev.lower_bound = outcome.test.lower.map(|l| format!("{l:.3}"));
            ev.message = Some(outcome.describe());
            let (verdict, judgement) = match outcome.test.verdict {
                SequentialVerdict::Rollback => (
                    Verdict::Fail,
                    Judgement::Bad {
                        reason: signal.rejected(),
                    },
                ),
                SequentialVerdict::AcceptGood => (Verdict::AcceptGood, Judgement::Healthy),
                SequentialVerdict::Continue => (Verdict::Continue, Judgement::Healthy),
                SequentialVerdict::Invalid => (Verdict::NoData, Judgement::NoData),
            };
            SignalJudged {
                evidence: ev,
                verdict,
                judgement,
                window: Some(window),
                stable_vs_p0: checked,
            }
        }
    }
}

/// A threshold verdict as a sample verdict and the run's judgement.
fn threshold_judgement(signal: Signal, verdict: ThresholdVerdict) -> (Verdict, Judgement) {
    match verdict {
        ThresholdVerdict::Pass => (Verdict::Pass, Judgement::Healthy),
        ThresholdVerdict::Fail => (
            Verdict::Fail,
            Judgement::Bad {
                reason: signal.above_threshold(),
            },
        ),
        ThresholdVerdict::NotEnoughRequests => (Verdict::NotEnoughRequests, Judgement::Undecided),
        ThresholdVerdict::Invalid => (Verdict::NoData, Judgement::NoData),
    }
}

/// What a threshold sample says about its counts: against the maximum, and the rate's lower
/// confidence bound at the sample's level (on the counts divided by the dispersion `phi`).
fn threshold_message(
    signal: Signal,
    (requests, errors, phi): (f64, f64, f64),
    max: f64,
    min_requests: f64,
    failed: bool,
    (k, level, alpha): (i32, f64, f64),
) -> String {
    let rate = if requests > 0.0 {
        errors / requests
    } else {
        0.0
    };
    let field = signal.max_field();
    let verdict = if failed {
        format!("shown above {field}")
    } else if rate > max {
        format!("above {field} but not shown to be yet")
    } else if requests < min_requests {
        format!("at or below {field}, fewer than minRequests")
    } else {
        format!("at or below {field}")
    };
    let bound =
        lower_bound(requests / phi, errors / phi, level).map_or_else(|| "n/a".into(), fmt_rate);
    let clumps = if phi > 1.0 {
        format!(", on the counts divided by stable's dispersion {phi:.2}")
    } else {
        String::new()
    };
    format!(
        "{verdict}: the rate's lower confidence bound is {bound} at level {} (sample {k} of the run: alpha/2/(k(k+1)) of the run's alpha {}; the other half goes to an always-valid mixture test){clumps}",
        fmt_rate(level),
        fmt_rate(alpha)
    )
}

/// The sequential test's parameters as the plan resolved them.
struct SequentialParams {
    test: SequentialTest,
    /// Where p0 comes from; with `fixed`, stable's counts (when measured) only feed the
    /// dispersion sums and the check of p0 against stable's rate.
    baseline: Baseline,
    p0: f64,
    p1: f64,
    alpha: f64,
    beta: f64,
    /// The evidence a `mixture` test (which has no accept boundary) declares enough: this
    /// many requests at one slice without a rollback.
    min_requests: f64,
}

/// Counts since the canary started, as the queries returned them.
#[derive(Debug, Clone, Copy)]
struct Cumulative {
    requests: f64,
    errors: f64,
    stable: Option<(f64, f64)>,
}

impl Cumulative {
    fn rounded(&self) -> WindowCounts {
        let c = |x: f64| count(x).min(i64::MAX as u64) as i64;
        WindowCounts {
            requests: c(self.requests),
            errors: c(self.errors),
            stable_requests: self.stable.map_or(0, |(r, _)| c(r)),
            stable_errors: self.stable.map_or(0, |(_, e)| c(e)),
        }
    }
}

/// What the sequential test said over its window.
struct WindowOutcome {
    test: SequentialOutcome,
    /// The hypotheses as judged: the fixed pair, or (relative test) the floor and p1 at
    /// stable's rate.
    p0: f64,
    p1: f64,
    /// The run's k-th test, its window's canary requests, its false-rollback budget.
    k: i32,
    requests: f64,
    alpha: f64,
    relative: bool,
    dispersion: f64,
}

impl WindowOutcome {
    fn describe(&self) -> String {
        let against = if self.relative {
            format!(
                "canary against stable in the same window (dispersion allowance {:.2})",
                self.dispersion
            )
        } else {
            "canary against the fixed p0".to_string()
        };
        format!(
            "test {} of the run over {:.0} canary requests at this slice, {against}; rollback boundary at alpha {}",
            self.k,
            self.requests,
            fmt_rate(self.alpha)
        )
    }
}

/// Runs the sequential test over its window and moves the window on.
///
/// The window is the counts since the later of: the start of the current step's slice
/// (the previous step's last sample) and the test's last acceptance. So every slice starts a
/// fresh test and every acceptance starts another: clean traffic digs no hole deeper than the
/// accept boundary for a later regression to climb out of. Each new test is the run's k-th
/// and rolls back at alpha/(k(k+1)) ([`spent_alpha`]), which keeps the whole run's
/// false-rollback rate within alpha. The window lives in the status as cumulative counts, so
/// the machine needs no per-interval queries: it differences the cumulative samples.
fn sequential(
    p: &SequentialParams,
    step: i32,
    window: Option<&TestWindow>,
    now: Cumulative,
) -> Result<(TestWindow, WindowOutcome), DecisionError> {
    let here = now.rounded();
    let mut w = match window {
        Some(w) if w.step == step => w.clone(),
        // A new slice: the window starts where the previous one's last sample left off.
        Some(w) => TestWindow {
            step,
            tests: w.tests.max(0) + 1,
            origin: w.latest,
            ..w.clone()
        },
        // The run's first sample counts from the canary's start; a run written before windows
        // existed opens its first window here.
        None => {
            let origin = if step == 0 {
                WindowCounts::default()
            } else {
                here
            };
            TestWindow {
                step,
                tests: 1,
                origin,
                latest: origin,
                ..TestWindow::default()
            }
        }
    };
    let o = w.origin;
    let d = |now: f64, origin: i64| (now - origin as f64).max(0.0);
    let n = d(now.requests, o.requests);
    let k = d(now.errors, o.errors);
    let k_run = w.tests.max(1);
    let alpha = spent_alpha(p.alpha, k_run);
    let mut out = WindowOutcome {
        test: SequentialOutcome {
            statistic: f64::NAN,
            upper: f64::NAN,
            lower: None,
            verdict: SequentialVerdict::Invalid,
        },
        p0: p.p0,
        p1: p.p1,
        k: k_run,
        requests: n,
        alpha,
        relative: false,
        dispersion: 1.0,
    };
    if let Some((sr, se)) = now.stable {
        add_stable_interval(&mut w, sr, se);
    }
    let stable = now.stable.filter(|_| p.baseline == Baseline::Stable);
    match (p.test, stable) {
        (SequentialTest::Sprt, Some((sr, se))) => {
            let m = d(sr, o.stable_requests);
            let s = d(se, o.stable_errors);
            let disp = dispersion(w.stable_intervals, w.stable_squares as f64 / 1e6, sr, se);
            let t = RelativeSprt::new(p.p0, p.p1, alpha, p.beta, disp)?;
            out.test = t.decide(n, k, m, s);
            out.relative = true;
            out.dispersion = t.dispersion;
            if m > 0.0 {
                out.p0 = (s / m).max(p.p0);
                out.p1 = (out.p0 * t.ratio).min(crate::analysis::decision::MAX_SCALED_P1);
            }
        }
        (SequentialTest::Sprt, None) => {
            out.test = Sprt::new(p.p0, p.p1, alpha, p.beta)?.decide(n, k);
        }
        (SequentialTest::Mixture, stable) => {
            let p0 = match stable {
                Some((sr, se)) => {
                    let m = d(sr, o.stable_requests);
                    let s = d(se, o.stable_errors);
                    if m > 0.0 { (s / m).max(p.p0) } else { p.p0 }
                }
                None => p.p0,
            };
            out.p0 = p0;
            out.test = MixtureSprt::with_default_prior(p0, alpha)?.decide(n, k);
            // No accept boundary: the declared evidence is minRequests at this slice.
            if out.test.verdict == SequentialVerdict::Continue && n >= p.min_requests {
                w.accepted_step = Some(step);
                w.origin = here;
                w.tests = k_run + 1;
            }
        }
    }
    if out.test.verdict == SequentialVerdict::AcceptGood {
        w.accepted_step = Some(step);
        w.origin = here;
        w.tests = k_run + 1;
    }
    w.latest = here;
    Ok((w, out))
}

/// Stable's counts since the previous sample join the run's dispersion sums.
fn add_stable_interval(w: &mut TestWindow, sr: f64, se: f64) {
    let mi = sr - w.latest.stable_requests as f64;
    let si = se - w.latest.stable_errors as f64;
    if mi > 0.0 && si >= 0.0 {
        w.stable_intervals += 1;
        w.stable_squares = w
            .stable_squares
            .saturating_add((si * si / mi * 1e6).round() as i64);
    }
}

/// Threshold mode: the dispersion of stable's errors when stable is measured (clumped errors
/// carry less evidence; assumed 3 until five intervals were seen, as for the relative test),
/// and the sums it comes from, kept in `window` (`status.test` or `status.latencyTest`)
/// between samples; 1 without stable.
fn threshold_dispersion(window: Option<&TestWindow>, now: Cumulative) -> (Option<TestWindow>, f64) {
    let Some((sr, se)) = now.stable else {
        return (None, 1.0);
    };
    let mut w = window.cloned().unwrap_or_default();
    add_stable_interval(&mut w, sr, se);
    w.latest = now.rounded();
    let phi = dispersion(w.stable_intervals, w.stable_squares as f64 / 1e6, sr, se);
    (Some(w), phi)
}

/// Whether a sequential tier's step may end: the test accepted the canary at this slice, or
/// the deadline passed and `onInconclusive` says what to do.
pub(super) enum Gate {
    /// The evidence is there (or the tier is not sequential).
    Open,
    /// Keep the slice: `(reason, message)` for the `Waiting` condition.
    Wait(&'static str, String),
    /// The deadline passed undecided and the tier says roll back.
    Rollback(String),
    /// The deadline passed undecided and the tier says move on; the message is recorded.
    Promote(String),
}

/// The gate of the current step, whose pause ended at `pause_end`.
pub(super) fn gate(
    run: &RunView,
    status: &RolloutRunStatus,
    now: Timestamp,
    pause_end: Timestamp,
) -> Gate {
    let Judge::Sequential {
        decide_within,
        on_inconclusive,
        test,
        ..
    } = &run.plan.judge
    else {
        return Gate::Open;
    };
    let accepted = |w: &Option<TestWindow>| {
        w.as_ref()
            .is_some_and(|w| w.accepted_step == Some(status.step))
    };
    // With a latency objective the slow requests' test must have accepted too.
    let slow_accepted = run.plan.latency.is_none() || accepted(&status.latency_test);
    if accepted(&status.test) && slow_accepted {
        return Gate::Open;
    }
    let deadline = super::after(pause_end, *decide_within);
    let step = format!("step {}/{}", status.step + 1, run.plan.steps.len());
    let needs = match test {
        SequentialTest::Sprt => "has not accepted the canary at this slice".to_string(),
        SequentialTest::Mixture => format!(
            "has not seen {} requests at this slice without a rollback",
            run.plan.min_requests
        ),
    };
    // Say which test holds the step when only one of the two has decided.
    let needs = match (accepted(&status.test), slow_accepted) {
        (true, false) => format!("of slow requests {needs}"),
        (false, true) if run.plan.latency.is_some() => format!("of errors {needs}"),
        _ => needs,
    };
    if now < deadline {
        return Gate::Wait(
            "WaitingForEvidence",
            format!(
                "{step} has ended its pause but the sequential test {needs}; the step extends until it decides or until {deadline} ({} past the pause), then onInconclusive: {}",
                format_duration(*decide_within),
                on_inconclusive_name(*on_inconclusive)
            ),
        );
    }
    let why = format!(
        "the sequential test {needs} {} after {step}'s pause ended",
        format_duration(*decide_within)
    );
    match on_inconclusive {
        OnInconclusive::Hold => Gate::Wait(
            "Inconclusive",
            format!(
                "{why}; holding at this slice (onInconclusive: hold) until the test decides or someone runs `kubectl rollguard promote`"
            ),
        ),
        OnInconclusive::Rollback => {
            Gate::Rollback(format!("rolled back: {why} (onInconclusive: rollback)"))
        }
        OnInconclusive::Promote => Gate::Promote(format!(
            "moving on without a decision: {why} (onInconclusive: promote)"
        )),
    }
}

fn on_inconclusive_name(o: OnInconclusive) -> &'static str {
    match o {
        OnInconclusive::Hold => "hold",
        OnInconclusive::Rollback => "rollback",
        OnInconclusive::Promote => "promote",
    }
}
