//! One sample's judgement: a measurement and the plan's test in, the sample's evidence and
//! what it says about the canary out. Pure; the machine decides what the judgement does to
//! the run.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Measurement, RolloutRunStatus, RunView, fmt_rate};
use crate::analysis::decision::{
    MixtureSprt, SequentialVerdict, Sprt, ThresholdVerdict, relative_hypotheses, threshold,
};
use crate::api::policy::{Baseline, SequentialTest};
use crate::api::run::{Sample, Verdict};
use crate::plan::Judge;

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

pub(super) struct Judged {
    pub sample: Sample,
    pub judgement: Judgement,
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
        rate: None,
        threshold: None,
        statistic: None,
        upper_bound: None,
        lower_bound: None,
        baseline: None,
        // Set on every path below.
        verdict: Verdict::Error,
        message: None,
    };
    let (requests, errors, stable) = match m {
        Measurement::NoData { why, .. } => {
            sample.verdict = Verdict::NoData;
            sample.message = Some(why.clone());
            return Judged {
                sample,
                judgement: Judgement::NoData,
            };
        }
        Measurement::Failed { why, .. } => {
            sample.verdict = Verdict::Error;
            sample.message = Some(why.clone());
            return Judged {
                sample,
                judgement: Judgement::Error,
            };
        }
        Measurement::Counts {
            requests,
            errors,
            stable,
            ..
        } => (*requests, *errors, *stable),
    };
    if !requests.is_finite() || !errors.is_finite() || requests < 0.0 || errors < 0.0 {
        sample.verdict = Verdict::NoData;
        sample.message = Some(format!(
            "Prometheus returned unusable counts (requests {requests}, errors {errors})"
        ));
        return Judged {
            sample,
            judgement: Judgement::NoData,
        };
    }
    sample.requests = Some(count(requests));
    sample.errors = Some(count(errors));
    if requests > 0.0 && requests.is_finite() && errors.is_finite() {
        sample.rate = Some(fmt_rate(errors / requests));
    }
    match &plan.judge {
        Judge::Threshold { max_error_rate, .. } => {
            let out = threshold(requests, errors, *max_error_rate, plan.min_requests);
            sample.threshold = Some(fmt_rate(*max_error_rate));
            let (v, j) = match out.verdict {
                ThresholdVerdict::Pass => (Verdict::Pass, Judgement::Healthy),
                ThresholdVerdict::Fail => (
                    Verdict::Fail,
                    Judgement::Bad {
                        reason: "ErrorRateAboveThreshold",
                    },
                ),
                ThresholdVerdict::NotEnoughRequests => {
                    (Verdict::NotEnoughRequests, Judgement::Undecided)
                }
                ThresholdVerdict::Invalid => (Verdict::NoData, Judgement::NoData),
            };
            sample.verdict = v;
            Judged {
                sample,
                judgement: j,
            }
        }
        Judge::Sequential {
            test,
            baseline,
            p0,
            p1,
            alpha,
            beta,
        } => {
            let (p0, p1) = match (baseline, stable) {
                (Baseline::Stable, Some((sr, se))) if sr > 0.0 && se.is_finite() => {
                    relative_hypotheses(se / sr, *p0, *p1)
                }
                _ => (*p0, *p1),
            };
            sample.baseline = Some(fmt_rate(p0));
            sample.threshold = Some(fmt_rate(p1));
            let outcome = match test {
                SequentialTest::Sprt => {
                    Sprt::new(p0, p1, *alpha, *beta).map(|t| t.decide(requests, errors))
                }
                SequentialTest::Mixture => {
                    MixtureSprt::with_default_prior(p0, *alpha).map(|t| t.decide(requests, errors))
                }
            };
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    sample.verdict = Verdict::Error;
                    sample.message = Some(e.to_string());
                    return Judged {
                        sample,
                        judgement: Judgement::Error,
                    };
                }
            };
            sample.statistic = Some(format!("{:.3}", outcome.statistic));
            sample.upper_bound = Some(format!("{:.3}", outcome.upper));
            sample.lower_bound = outcome.lower.map(|l| format!("{l:.3}"));
            let (v, j) = match outcome.verdict {
                SequentialVerdict::Rollback => (
                    Verdict::Fail,
                    Judgement::Bad {
                        reason: "SequentialTestRejected",
                    },
                ),
                SequentialVerdict::AcceptGood => (Verdict::AcceptGood, Judgement::Healthy),
                SequentialVerdict::Continue => (Verdict::Continue, Judgement::Healthy),
                SequentialVerdict::Invalid => (Verdict::NoData, Judgement::NoData),
            };
            sample.verdict = v;
            Judged {
                sample,
                judgement: j,
            }
        }
    }
}
