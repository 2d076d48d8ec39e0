//! The plan of a run, worked out from a policy before anything moves: the built-in tiers,
//! which tier a revision matches and why, the steps with parsed weights and pauses, and how
//! a weight becomes canary replicas or HTTPRoute weights. Pure functions only.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

use crate::analysis::decision::{MixtureSprt, Sprt};
use crate::api::policy::{
    AnalysisSpec, Baseline, Decision, OnInconclusive, OnNoData, SequentialSpec, SequentialTest,
    Step, Tier, TierMatch,
};
use crate::api::quantity::{QuantityError, Ratio, parse_duration, parse_percent};
use crate::names::CHANGE_ORIGIN;

/// The tiers that apply when a policy lists none.
pub fn default_tiers() -> Vec<Tier> {
    let ai_values = vec!["ai-assisted".to_string(), "ai-generated".to_string()];
    let key = CHANGE_ORIGIN.to_string();
    let steps = |s: &[(&str, &str)]| -> Vec<Step> {
        s.iter()
            .map(|(w, p)| Step {
                weight: (*w).into(),
                pause: (*p).into(),
            })
            .collect()
    };
    vec![
        Tier {
            name: "ai-assisted".into(),
            match_: Some(TierMatch {
                labels: BTreeMap::from([(key.clone(), ai_values.clone())]),
                annotations: BTreeMap::from([(key, ai_values)]),
            }),
            // A 0.5% first slice: the sequential test needs the same few errors at any slice,
            // but what the canary serves while the counters are stale (up to a scrape interval,
            // then up to an analysis interval) grows with its share. At 1000 rps a 1% slice
            // served 1.6x Wald's expected errors, 0.5% serves 1.4x; healthy canaries take the
            // same 35 minutes to promotion (docs/analysis/simulate.md, "first slice").
            steps: steps(&[
                ("0.5%", "5m"),
                ("5%", "5m"),
                ("10%", "5m"),
                ("25%", "10m"),
                ("50%", "10m"),
            ]),
            max_error_rate: "0.5%".into(),
            decision: Decision::Sequential,
            failure_limit: 0,
            threshold: None,
            // Measured against stable, not a constant: a service whose normal error rate is
            // 0.3% is not rolled back for it, and an incident that hits both revisions moves
            // neither towards rollback (docs/analysis.md, "Relative to stable"). An undecided
            // test holds for a person: the built-in AI tier never promotes on it.
            sequential: Some(SequentialSpec {
                baseline: Baseline::Stable,
                ..SequentialSpec::default()
            }),
            min_requests: None,
            require_approval: false,
            allow_self_approval: false,
            allow_service_account_approval: false,
            max_share: None,
            latency: None,
        },
        Tier {
            name: "standard".into(),
            match_: None,
            steps: steps(&[("10%", "2m"), ("50%", "5m")]),
            max_error_rate: "1%".into(),
            decision: Decision::Threshold,
            failure_limit: 0,
            threshold: None,
            sequential: None,
            min_requests: None,
            require_approval: false,
            allow_self_approval: false,
            allow_service_account_approval: false,
            max_share: None,
            latency: None,
        },
    ]
}

/// Labels and annotations of the pod template and of the Deployment, the two places a
/// change can be tagged.
#[derive(Debug, Clone, Default)]
pub struct RevisionMeta<'a> {
    pub template_labels: Option<&'a BTreeMap<String, String>>,
    pub template_annotations: Option<&'a BTreeMap<String, String>>,
    pub deployment_labels: Option<&'a BTreeMap<String, String>>,
    pub deployment_annotations: Option<&'a BTreeMap<String, String>>,
}

/// The first tier that matches, with a sentence saying why. `None` only when no tier
/// matches, which a validated policy (last tier has no `match`) never allows.
pub fn match_tier<'t>(tiers: &'t [Tier], meta: &RevisionMeta) -> Option<(&'t Tier, String)> {
    tiers.iter().find_map(|tier| match &tier.match_ {
        None => Some((
            tier,
            "no tier above matched; this tier takes every revision".to_string(),
        )),
        Some(m) => match_reason(m, meta).map(|why| (tier, why)),
    })
}

/// [`match_tier`], with `untagged` (the policy's `spec.untaggedOrigin`) standing for the
/// origin of a change that carries no `rollguard.dev/change-origin` anywhere.
pub fn match_tier_or_untagged<'t>(
    tiers: &'t [Tier],
    meta: &RevisionMeta,
    untagged: Option<&str>,
) -> Option<(&'t Tier, String)> {
    let tagged = [
        meta.template_labels,
        meta.template_annotations,
        meta.deployment_labels,
        meta.deployment_annotations,
    ]
    .iter()
    .any(|m| m.is_some_and(|m| m.contains_key(CHANGE_ORIGIN)));
    let Some(origin) = untagged.filter(|_| !tagged) else {
        return match_tier(tiers, meta);
    };
    let mut annotations = meta.template_annotations.cloned().unwrap_or_default();
    annotations.insert(CHANGE_ORIGIN.to_string(), origin.to_string());
    let as_tagged = RevisionMeta {
        template_annotations: Some(&annotations),
        ..*meta
    };
    match_tier(tiers, &as_tagged).map(|(t, why)| {
        (
            t,
            format!("{why}: the change carries no {CHANGE_ORIGIN}, and spec.untaggedOrigin judges it as {origin}"),
        )
    })
}

fn match_reason(m: &TierMatch, meta: &RevisionMeta) -> Option<String> {
    let places = [
        ("pod template label", &m.labels, meta.template_labels),
        (
            "pod template annotation",
            &m.annotations,
            meta.template_annotations,
        ),
        ("Deployment label", &m.labels, meta.deployment_labels),
        (
            "Deployment annotation",
            &m.annotations,
            meta.deployment_annotations,
        ),
    ];
    places.iter().find_map(|(place, wanted, have)| {
        let have = (*have)?;
        wanted.iter().find_map(|(key, values)| {
            let value = have.get(key)?;
            (values.is_empty() || values.contains(value)).then(|| format!("{place} {key}={value}"))
        })
    })
}

/// Why a plan could not be resolved (a field the API server could not check).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{field}: {source}")]
    Quantity {
        field: String,
        source: QuantityError,
    },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// How samples are judged, with every parameter parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Judge {
    Threshold {
        max_error_rate: f64,
        failure_limit: u32,
        /// The run's false-rollback budget: the k-th sample fails at alpha/(k(k+1)).
        alpha: f64,
        /// Judge as Flagger and Argo Rollouts do: the measured rate against the maximum, no
        /// confidence bound ([`crate::analysis::decision::threshold_as_measured`]), with the
        /// rest of their check's behaviour. Only `rollguard simulate` sets it, to model those
        /// tools; a policy cannot.
        peer: Option<PeerCheck>,
    },
    Sequential {
        test: SequentialTest,
        baseline: Baseline,
        p0: f64,
        p1: f64,
        alpha: f64,
        beta: f64,
        /// How long a step may run past its pause without a decision.
        decide_within: Duration,
        on_inconclusive: OnInconclusive,
    },
}

/// How another tool's check behaves beyond judging the measured rate, as `rollguard simulate`
/// models it (a policy file's `simulate` key, docs/analysis/simulate.md). The operator never
/// sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCheck {
    /// A sample without data (no requests, no series, a failed query) is a failed check,
    /// counted toward the failure limit: Flagger's "no values found" and Argo Rollouts' NaN.
    pub no_data_fails: bool,
    /// Each step moves on when its pause ends, whatever the samples say, and the last one
    /// promotes: Argo Rollouts' background analysis, which can only abort. Without it a step
    /// waits for a passing sample, as Flagger's failed check halts the weight.
    pub steps_on_pause: bool,
}

/// A check's bounds, as the judge applies them.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckPlan {
    pub name: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Failed samples tolerated over the run; the next one rolls back.
    pub failure_limit: u32,
}

/// A tier's latency objective, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPlan {
    /// Requests slower than this are bad events.
    pub objective: Duration,
    /// How slow requests are judged: the tier's decision, with the objective's rates
    /// (`max_error_rate` and `p1` are `maxSlowRate`, `p0` the objective's p0).
    pub judge: Judge,
}

impl Judge {
    /// The run's false-rollback budget.
    fn alpha_mut(&mut self) -> &mut f64 {
        match self {
            Judge::Threshold { alpha, .. } | Judge::Sequential { alpha, .. } => alpha,
        }
    }
}

/// A run's plan with everything parsed: what the state machine works from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub steps: Vec<(Ratio, Duration)>,
    pub judge: Judge,
    /// The tier's latency objective: slow requests judged beside errors.
    pub latency: Option<LatencyPlan>,
    /// `spec.analysis.checks`: each check's bounds and failure limit.
    pub checks: Vec<CheckPlan>,
    pub interval: Duration,
    pub min_requests: f64,
    pub on_no_data: OnNoData,
    pub no_data_limit: u32,
    pub require_approval: bool,
    pub max_error_rate: Ratio,
    /// The tier's cap on the canary's real share of traffic.
    pub max_share: Option<Ratio>,
    /// Every analysis also asks for the stable revision's counts: the templates tell the
    /// revisions apart. A sequential tier tests against them (`baseline: stable`) or checks
    /// its fixed p0 against them (the `Baseline` condition); every tier takes the dispersion
    /// of stable's errors from them.
    pub measure_stable: bool,
}

fn percent(field: String, s: &str) -> Result<Ratio, PlanError> {
    parse_percent(s).map_err(|source| PlanError::Quantity { field, source })
}

fn duration(field: String, s: &str) -> Result<Duration, PlanError> {
    parse_duration(s).map_err(|source| PlanError::Quantity { field, source })
}

impl Plan {
    /// The peer model of a threshold tier in `rollguard simulate` (`None` in the operator).
    pub fn peer(&self) -> Option<PeerCheck> {
        match self.judge {
            Judge::Threshold { peer, .. } => peer,
            Judge::Sequential { .. } => None,
        }
    }

    /// Sets the peer model on the tier's tests (errors and slow requests alike); a
    /// sequential tier has none.
    pub fn set_peer(&mut self, model: PeerCheck) {
        let judges =
            std::iter::once(&mut self.judge).chain(self.latency.as_mut().map(|l| &mut l.judge));
        for judge in judges {
            if let Judge::Threshold { peer, .. } = judge {
                *peer = Some(model);
            }
        }
    }

    /// The tier measures its baseline on the stable pods (`baseline: stable`), so every
    /// analysis asks for stable's counts too.
    pub fn baseline_stable(&self) -> bool {
        matches!(
            self.judge,
            Judge::Sequential {
                baseline: Baseline::Stable,
                ..
            }
        )
    }

    /// Parses a tier and the analysis settings. `at` names the tier in error messages,
    /// e.g. `spec.tiers[1]`.
    pub fn resolve(tier: &Tier, analysis: &AnalysisSpec, at: &str) -> Result<Plan, PlanError> {
        let interval = duration("spec.analysis.interval".into(), &analysis.interval)?;
        let mut steps = Vec::with_capacity(tier.steps.len());
        for (i, s) in tier.steps.iter().enumerate() {
            let w = percent(format!("{at}.steps[{i}].weight"), &s.weight)?;
            let p = duration(format!("{at}.steps[{i}].pause"), &s.pause)?;
            if w.ppm() == 0 {
                return Err(PlanError::Invalid {
                    field: format!("{at}.steps[{i}].weight"),
                    message: "must be above 0%".into(),
                });
            }
            if let Some((prev, _)) = steps.last()
                && w <= *prev
            {
                return Err(PlanError::Invalid {
                    field: format!("{at}.steps[{i}].weight"),
                    message: format!("{w} must be above the previous step's {prev}"),
                });
            }
            steps.push((w, p));
        }
        if steps.is_empty() {
            return Err(PlanError::Invalid {
                field: format!("{at}.steps"),
                message: "needs at least one step".into(),
            });
        }
        let max_error_rate = percent(format!("{at}.maxErrorRate"), &tier.max_error_rate)?;
        let judge = match tier.decision {
            Decision::Threshold => {
                let spec = tier.threshold.clone().unwrap_or_default();
                let alpha = percent(format!("{at}.threshold.alpha"), &spec.alpha)?;
                if alpha.ppm() == 0 || alpha.as_f64() >= 0.5 {
                    return Err(PlanError::Invalid {
                        field: format!("{at}.threshold.alpha"),
                        message: format!("{alpha} must be within (0%, 50%)"),
                    });
                }
                Judge::Threshold {
                    max_error_rate: max_error_rate.as_f64(),
                    failure_limit: tier.failure_limit.max(0) as u32,
                    alpha: alpha.as_f64(),
                    peer: None,
                }
            }
            Decision::Sequential => {
                let seq = tier.sequential.clone().unwrap_or_default();
                let p0 = match &seq.p0 {
                    Some(p) => percent(format!("{at}.sequential.p0"), p)?,
                    None => Ratio::from_ppm(1_000).unwrap_or_default(),
                };
                let p1 = match &seq.p1 {
                    Some(p) => percent(format!("{at}.sequential.p1"), p)?,
                    None => max_error_rate,
                };
                let alpha = percent(format!("{at}.sequential.alpha"), &seq.alpha)?;
                let beta = percent(format!("{at}.sequential.beta"), &seq.beta)?;
                let decide_within =
                    duration(format!("{at}.sequential.decideWithin"), &seq.decide_within)?;
                if p0 >= p1 {
                    return Err(PlanError::Invalid {
                        field: format!("{at}.sequential.p0"),
                        message: format!("p0 ({p0}) must be below p1 ({p1})"),
                    });
                }
                if p0.ppm() == 0 {
                    return Err(PlanError::Invalid {
                        field: format!("{at}.sequential.p0"),
                        message: "must be above 0%".into(),
                    });
                }
                // The engine that will judge the samples checks its parameters too (p1 below
                // 100%, alpha and beta within (0%, 50%)); a plan it would refuse at every
                // sample is refused here, naming the field.
                let engine = match seq.test {
                    SequentialTest::Sprt => {
                        Sprt::new(p0.as_f64(), p1.as_f64(), alpha.as_f64(), beta.as_f64())
                            .map(|_| ())
                    }
                    SequentialTest::Mixture => {
                        MixtureSprt::with_default_prior(p0.as_f64(), alpha.as_f64()).map(|_| ())
                    }
                };
                if let Err(e) = engine {
                    let field = match e.parameter() {
                        "p1" if seq.p1.is_none() => format!("{at}.maxErrorRate"),
                        param => format!("{at}.sequential.{param}"),
                    };
                    return Err(PlanError::Invalid {
                        field,
                        message: e.to_string(),
                    });
                }
                Judge::Sequential {
                    test: seq.test,
                    baseline: if seq.baseline == Baseline::Stable
                        && !tells_revisions_apart(analysis)
                    {
                        // Only the built-in tier gets here (the policy check refuses such
                        // templates for a tier that asks for `stable`): the queries would
                        // measure the canary twice, so it tests against the fixed p0.
                        Baseline::Fixed
                    } else {
                        seq.baseline
                    },
                    p0: p0.as_f64(),
                    p1: p1.as_f64(),
                    alpha: alpha.as_f64(),
                    beta: beta.as_f64(),
                    decide_within,
                    on_inconclusive: seq.on_inconclusive,
                }
            }
        };
        let mut judge = judge;
        let latency = match &tier.latency {
            Some(l) => {
                let mut plan = latency_plan(l, &judge, analysis, at)?;
                // Two tests, one budget: each rolls a good canary back at half the tier's alpha.
                *plan.judge.alpha_mut() /= 2.0;
                *judge.alpha_mut() /= 2.0;
                Some(plan)
            }
            None => None,
        };
        let measure_stable = tells_revisions_apart(analysis);
        let checks = analysis
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let field = format!("spec.analysis.checks[{i}]");
                match (c.min, c.max) {
                    (None, None) => Err(PlanError::Invalid {
                        field,
                        message: "needs min, max or both".into(),
                    }),
                    (Some(lo), Some(hi)) if lo > hi => Err(PlanError::Invalid {
                        field,
                        message: format!("min {lo} is above max {hi}"),
                    }),
                    (lo, hi)
                        if lo.is_some_and(|v| !v.is_finite())
                            || hi.is_some_and(|v| !v.is_finite()) =>
                    {
                        Err(PlanError::Invalid {
                            field,
                            message: "bounds must be finite numbers".into(),
                        })
                    }
                    (min, max) => Ok(CheckPlan {
                        name: c.name.clone(),
                        min,
                        max,
                        failure_limit: c.failure_limit.max(0) as u32,
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            measure_stable,
            steps,
            judge,
            latency,
            checks,
            interval,
            min_requests: tier.min_requests.unwrap_or(analysis.min_requests).max(0) as f64,
            on_no_data: analysis.on_no_data,
            no_data_limit: analysis.no_data_limit.max(1) as u32,
            require_approval: tier.require_approval,
            max_error_rate,
            max_share: tier
                .max_share
                .as_deref()
                .map(|s| percent(format!("{at}.maxShare"), s))
                .transpose()?,
        })
    }
}

/// The latency objective `l` of the tier at `at`, judged like its errors (`errors`) with
/// the objective's rates. Fields the API server could not check are named.
fn latency_plan(
    l: &crate::api::policy::LatencyObjective,
    errors: &Judge,
    analysis: &AnalysisSpec,
    at: &str,
) -> Result<LatencyPlan, PlanError> {
    let objective = duration(format!("{at}.latency.objective"), &l.objective)?;
    if objective.is_zero() {
        return Err(PlanError::Invalid {
            field: format!("{at}.latency.objective"),
            message: "must be above 0s".into(),
        });
    }
    let max_slow = percent(format!("{at}.latency.maxSlowRate"), &l.max_slow_rate)?;
    let p0 = percent(format!("{at}.latency.p0"), &l.p0)?;
    if p0.ppm() == 0 || p0 >= max_slow {
        return Err(PlanError::Invalid {
            field: format!("{at}.latency.p0"),
            message: format!("p0 ({p0}) must be above 0% and below maxSlowRate ({max_slow})"),
        });
    }
    let judge = match errors {
        Judge::Threshold {
            failure_limit,
            alpha,
            peer,
            ..
        } => Judge::Threshold {
            max_error_rate: max_slow.as_f64(),
            failure_limit: *failure_limit,
            alpha: *alpha,
            peer: *peer,
        },
        Judge::Sequential {
            test,
            alpha,
            beta,
            decide_within,
            on_inconclusive,
            ..
        } => {
            let engine = match test {
                SequentialTest::Sprt => {
                    Sprt::new(p0.as_f64(), max_slow.as_f64(), *alpha, *beta).map(|_| ())
                }
                SequentialTest::Mixture => {
                    MixtureSprt::with_default_prior(p0.as_f64(), *alpha).map(|_| ())
                }
            };
            if let Err(e) = engine {
                let field = match e.parameter() {
                    "p1" => format!("{at}.latency.maxSlowRate"),
                    "p0" => format!("{at}.latency.p0"),
                    param => format!("{at}.sequential.{param}"),
                };
                return Err(PlanError::Invalid {
                    field,
                    message: e.to_string(),
                });
            }
            let apart = analysis
                .latency_template()
                .is_some_and(|(src, _)| template_tells_revisions_apart(src));
            Judge::Sequential {
                test: *test,
                // As for errors: a histogram that cannot tell the revisions apart would
                // measure the canary twice, so it is tested against the fixed p0.
                baseline: if apart { l.baseline } else { Baseline::Fixed },
                p0: p0.as_f64(),
                p1: max_slow.as_f64(),
                alpha: *alpha,
                beta: *beta,
                decide_within: *decide_within,
                on_inconclusive: *on_inconclusive,
            }
        }
    };
    Ok(LatencyPlan { objective, judge })
}

/// Whether a template selects the measured pods (`{{workload}}`, `{{track}}` or
/// `{{revision}}`).
fn template_tells_revisions_apart(src: &str) -> bool {
    use crate::analysis::query::{Template, Variable};
    Template::parse(src).ok().is_some_and(|t| {
        let v = t.variables();
        v.contains(&Variable::Workload)
            || v.contains(&Variable::Track)
            || v.contains(&Variable::Revision)
    })
}

/// Whether both templates select the measured pods (`{{workload}}`, `{{track}}` or
/// `{{revision}}`), so the stable revision can be measured apart from the canary.
pub fn tells_revisions_apart(analysis: &AnalysisSpec) -> bool {
    [analysis.requests_template(), analysis.errors_template()]
        .iter()
        .all(|src| src.is_some_and(template_tells_revisions_apart))
}

/// Canary replicas for a slice with the replicas router: the canary's pods are added to
/// the `stable` pods behind the Service (stable pods are never taken away), so the share is
/// c / (stable + c). Returns the count whose share is nearest the weight, at least 1.
pub fn replicas_for_share(weight: Ratio, stable: i32) -> i32 {
    let stable = stable.max(0) as i64;
    let w = weight.ppm() as i64;
    if w >= 1_000_000 || stable == 0 {
        return stable.max(1) as i32;
    }
    // Exact solution c = w*S/(1-w); check its floor and ceiling and keep the nearer share.
    let exact_num = w * stable;
    let exact_den = 1_000_000 - w;
    let lo = (exact_num / exact_den).max(1);
    let best = [lo, lo + 1]
        .into_iter()
        .min_by_key(|c| {
            let share_ppm = c * 1_000_000 / (stable + c);
            (share_ppm - w).abs()
        })
        .unwrap_or(lo);
    best.min(i32::MAX as i64) as i32
}

/// The share c canary pods get next to `stable` pods, in ppm.
pub fn share_of(canary: i32, stable: i32) -> Ratio {
    let (c, s) = (canary.max(0) as u64, stable.max(0) as u64);
    if c + s == 0 {
        return Ratio::default();
    }
    Ratio::from_ppm(((c * 1_000_000 + (c + s) / 2) / (c + s)) as u32).unwrap_or_default()
}

/// Canary replicas with the Gateway API router: enough pods to carry the slice
/// proportionally (ceil(weight × stable)), at least 1.
pub fn replicas_for_weight(weight: Ratio, stable: i32) -> i32 {
    let s = stable.max(1) as u64;
    let c = (weight.ppm() as u64 * s).div_ceil(1_000_000);
    c.clamp(1, i32::MAX as u64) as i32
}

/// HTTPRoute backend weights (stable, canary) for a share, reduced to lowest terms so a
/// person reads `99:1` for 1% and `199:1` for 0.5%. Exact to 1 ppm.
pub fn route_weights(weight: Ratio) -> (i32, i32) {
    let canary = weight.ppm() as u64;
    let stable = 1_000_000 - canary.min(1_000_000);
    let g = gcd(stable, canary).max(1);
    ((stable / g) as i32, (canary / g) as i32)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A stable short hash of a pod template: the revision's identity. Labels rollguard adds to
/// the canary's copy and the `pod-template-hash` label the Deployment controller adds are
/// left out, so the same template hashes the same wherever it is found.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove("pod-template-hash");
        labels.remove(crate::names::ROLE_LABEL);
        labels.remove(crate::names::DEPLOYMENT_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    let json = serde_json::to_vec(&t).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> Ratio {
        parse_percent(s).expect("valid percent")
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_tiers_route_ai_changes_to_small_slices() {
        let tiers = default_tiers();
        let ai = map(&[(CHANGE_ORIGIN, "ai-assisted")]);
        let generated = map(&[(CHANGE_ORIGIN, "ai-generated")]);
        let human = map(&[(CHANGE_ORIGIN, "human")]);
        let cases: Vec<(RevisionMeta, &str, &str)> = vec![
            (
                RevisionMeta {
                    template_annotations: Some(&ai),
                    ..Default::default()
                },
                "ai-assisted",
                "pod template annotation rollguard.dev/change-origin=ai-assisted",
            ),
            (
                RevisionMeta {
                    template_labels: Some(&generated),
                    ..Default::default()
                },
                "ai-assisted",
                "pod template label rollguard.dev/change-origin=ai-generated",
            ),
            (
                RevisionMeta {
                    deployment_annotations: Some(&ai),
                    ..Default::default()
                },
                "ai-assisted",
                "Deployment annotation rollguard.dev/change-origin=ai-assisted",
            ),
            (
                RevisionMeta {
                    template_annotations: Some(&human),
                    ..Default::default()
                },
                "standard",
                "no tier above matched; this tier takes every revision",
            ),
            (
                RevisionMeta::default(),
                "standard",
                "no tier above matched; this tier takes every revision",
            ),
        ];
        for (meta, tier, why) in cases {
            let (t, reason) = match_tier(&tiers, &meta).expect("a tier");
            assert_eq!((t.name.as_str(), reason.as_str()), (tier, why));
        }
        let ai_plan = Plan::resolve(&tiers[0], &analysis(), "default").expect("plan");
        let weights: Vec<String> = ai_plan.steps.iter().map(|(w, _)| w.to_string()).collect();
        assert_eq!(weights, ["0.5%", "5%", "10%", "25%", "50%"]);
        let std_plan = Plan::resolve(&tiers[1], &analysis(), "default").expect("plan");
        let weights: Vec<String> = std_plan.steps.iter().map(|(w, _)| w.to_string()).collect();
        assert_eq!(weights, ["10%", "50%"]);
    }

    #[test]
    fn an_untagged_change_is_judged_as_the_policys_untagged_origin_and_a_tag_always_wins() {
        let tiers = default_tiers();
        let human = map(&[(CHANGE_ORIGIN, "human")]);
        let other = map(&[("team", "checkout")]);
        // (meta, untaggedOrigin) -> the tier, and whether the reason names untaggedOrigin
        let cases = [
            (RevisionMeta::default(), None, "standard", false),
            (
                RevisionMeta::default(),
                Some("ai-generated"),
                "ai-assisted",
                true,
            ),
            (
                RevisionMeta {
                    template_annotations: Some(&other),
                    ..Default::default()
                },
                Some("ai-generated"),
                "ai-assisted",
                true,
            ),
            // Tagged human on the Deployment: the tag wins over the policy's default.
            (
                RevisionMeta {
                    deployment_labels: Some(&human),
                    ..Default::default()
                },
                Some("ai-generated"),
                "standard",
                false,
            ),
            (RevisionMeta::default(), Some("human"), "standard", true),
        ];
        for (meta, untagged, tier, says) in cases {
            let (t, why) = match_tier_or_untagged(&tiers, &meta, untagged).expect("a tier");
            assert_eq!(t.name, tier, "{untagged:?}: {why}");
            assert_eq!(
                why.contains("spec.untaggedOrigin judges it as"),
                says,
                "{why}"
            );
        }
    }

    #[test]
    fn pod_template_tag_wins_over_deployment_tag() {
        let tiers = default_tiers();
        let human = map(&[(CHANGE_ORIGIN, "human")]);
        let ai = map(&[(CHANGE_ORIGIN, "ai-assisted")]);
        // The template says human, the Deployment says AI: any AI signal picks the strict tier.
        let meta = RevisionMeta {
            template_annotations: Some(&human),
            deployment_annotations: Some(&ai),
            ..Default::default()
        };
        assert_eq!(
            match_tier(&tiers, &meta).expect("tier").0.name,
            "ai-assisted"
        );
    }

    fn analysis() -> AnalysisSpec {
        AnalysisSpec {
            interval: "15s".into(),
            prometheus: None,
            preset: None,
            requests: Some("sum(x)".into()),
            errors: Some("sum(y)".into()),
            latency: None,
            checks: Vec::new(),
            min_requests: 100,
            on_no_data: OnNoData::Hold,
            no_data_limit: 3,
        }
    }

    #[test]
    fn resolve_names_the_bad_field() {
        let mut tier = default_tiers().remove(1);
        tier.steps[1].weight = "5%".into();
        let err = Plan::resolve(&tier, &analysis(), "spec.tiers[1]").expect_err("decreasing");
        assert_eq!(
            err.to_string(),
            "spec.tiers[1].steps[1].weight: 5% must be above the previous step's 10%"
        );
        let mut tier = default_tiers().remove(1);
        tier.steps[0].pause = "soon".into();
        let err = Plan::resolve(&tier, &analysis(), "spec.tiers[0]").expect_err("bad pause");
        assert!(
            err.to_string()
                .starts_with("spec.tiers[0].steps[0].pause: "),
            "{err}"
        );
    }

    /// The built-in AI tier measures against stable when the queries can tell the revisions
    /// apart, and against its fixed p0 when they cannot (they would measure the canary twice).
    #[test]
    fn the_built_in_ai_tier_measures_against_stable_when_the_queries_can() {
        let with = |requests: &str, errors: &str| AnalysisSpec {
            requests: Some(requests.into()),
            errors: Some(errors.into()),
            latency: None,
            ..analysis()
        };
        let cases = [
            ("sum(x)", "sum(y)", Baseline::Fixed),
            ("sum(x{w=\"{{workload}}\"})", "sum(y)", Baseline::Fixed),
            (
                "sum(x{w=\"{{workload}}\"})",
                "sum(y{w=\"{{workload}}\"})",
                Baseline::Stable,
            ),
            (
                "sum(x{t=\"{{track}}\"})",
                "sum(y{t=\"{{track}}\"})",
                Baseline::Stable,
            ),
            (
                "sum(x{h=\"{{revision}}\"})",
                "sum(y{h=\"{{revision}}\"})",
                Baseline::Stable,
            ),
            (
                "sum(x{w=\"{{canary}}\"})",
                "sum(y{w=\"{{canary}}\"})",
                Baseline::Fixed,
            ),
        ];
        let tier = default_tiers().remove(0);
        for (requests, errors, want) in cases {
            let plan = Plan::resolve(&tier, &with(requests, errors), "t").expect("plan");
            let Judge::Sequential {
                baseline,
                on_inconclusive,
                ..
            } = plan.judge
            else {
                panic!("sequential");
            };
            assert_eq!(baseline, want, "{requests} / {errors}");
            assert_eq!(on_inconclusive, OnInconclusive::Hold);
            // Stable is measured exactly when the queries can tell it apart.
            assert_eq!(plan.measure_stable, want == Baseline::Stable);
        }
        // A threshold tier asks for stable too (for the dispersion of its errors), under the
        // same condition.
        for (requests, errors, want) in [
            (
                "sum(x{w=\"{{workload}}\"})",
                "sum(y{w=\"{{workload}}\"})",
                true,
            ),
            ("sum(x)", "sum(y)", false),
        ] {
            let std = Plan::resolve(&default_tiers().remove(1), &with(requests, errors), "t")
                .expect("plan");
            assert_eq!(std.measure_stable, want, "{requests}");
        }
    }

    #[test]
    fn threshold_alpha_defaults_to_one_percent_and_is_checked() {
        // (threshold.alpha) -> the plan's alpha, or the error
        let cases = [
            (None, Ok(0.01)),
            (Some("5%"), Ok(0.05)),
            (Some("0.1%"), Ok(0.001)),
            (
                Some("0%"),
                Err("spec.tiers[1].threshold.alpha: 0% must be within (0%, 50%)"),
            ),
            (
                Some("50%"),
                Err("spec.tiers[1].threshold.alpha: 50% must be within (0%, 50%)"),
            ),
        ];
        for (alpha, want) in cases {
            let mut tier = default_tiers().remove(1);
            tier.threshold = alpha.map(|a| crate::api::policy::ThresholdSpec { alpha: a.into() });
            let got = Plan::resolve(&tier, &analysis(), "spec.tiers[1]")
                .map(|p| match p.judge {
                    Judge::Threshold { alpha, .. } => alpha,
                    Judge::Sequential { .. } => f64::NAN,
                })
                .map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(String::from), "{alpha:?}");
        }
    }

    #[test]
    fn sequential_parameters_the_engines_refuse_are_refused_here() {
        // maxErrorRate 100% passes the API server's rules (p0 below it, at most 100%), but
        // the SPRT needs p1 below 100%: every sample would have been an error.
        let mut tier = default_tiers().remove(0);
        tier.max_error_rate = "100%".into();
        let err = Plan::resolve(&tier, &analysis(), "spec.tiers[0]").expect_err("p1 = 100%");
        assert!(
            err.to_string()
                .starts_with("spec.tiers[0].maxErrorRate: p1 (100%)"),
            "{err}"
        );
        let cases = [
            (Some("100%"), "0%", "spec.tiers[0].sequential.p1: "),
            (None, "0%", "spec.tiers[0].sequential.alpha: "),
            (None, "50%", "spec.tiers[0].sequential.alpha: "),
        ];
        for (p1, alpha, field) in cases {
            let mut tier = default_tiers().remove(0);
            let seq = tier.sequential.get_or_insert_with(SequentialSpec::default);
            seq.p1 = p1.map(String::from);
            seq.alpha = alpha.into();
            let err = Plan::resolve(&tier, &analysis(), "spec.tiers[0]").expect_err(field);
            assert!(err.to_string().starts_with(field), "{err}");
        }
        let mut tier = default_tiers().remove(0);
        let seq = tier.sequential.get_or_insert_with(SequentialSpec::default);
        seq.test = SequentialTest::Mixture;
        seq.beta = "50%".into(); // the mixture test has no beta
        assert!(Plan::resolve(&tier, &analysis(), "t").is_ok());
        if let Some(seq) = tier.sequential.as_mut() {
            seq.alpha = "0%".into();
        }
        let err = Plan::resolve(&tier, &analysis(), "t").expect_err("alpha 0%");
        assert!(err.to_string().starts_with("t.sequential.alpha: "), "{err}");
    }

    #[test]
    fn replicas_router_shares_are_the_nearest_the_count_allows() {
        // (weight, stable replicas) -> canary replicas, resulting share
        let table = [
            ("10%", 9, 1, "10%"),
            ("50%", 4, 4, "50%"),
            ("1%", 3, 1, "25%"),
            ("25%", 3, 1, "25%"),
            ("10%", 20, 2, "9.0909%"),
            ("1%", 99, 1, "1%"),
            ("5%", 10, 1, "9.0909%"),
            ("100%", 5, 5, "50%"),
        ];
        for (w, stable, want_c, want_share) in table {
            let c = replicas_for_share(pct(w), stable);
            assert_eq!(c, want_c, "weight {w} with {stable} stable");
            assert_eq!(
                share_of(c, stable).to_string(),
                want_share,
                "share for {w}/{stable}"
            );
        }
    }

    #[test]
    fn route_weights_are_exact() {
        assert_eq!(route_weights(pct("1%")), (99, 1));
        assert_eq!(route_weights(pct("0.5%")), (199, 1));
        assert_eq!(route_weights(pct("50%")), (1, 1));
        assert_eq!(route_weights(pct("0%")), (1, 0));
        assert_eq!(route_weights(pct("100%")), (0, 1));
        assert_eq!(route_weights(pct("12.5%")), (7, 1));
        assert_eq!(route_weights(pct("0.0001%")), (999_999, 1));
        for ppm in [1u32, 7, 333, 5_000, 123_457, 999_999] {
            let (s, c) = route_weights(Ratio::from_ppm(ppm).expect("ppm"));
            // The canary's share s/(s+c) is exactly ppm/1e6.
            assert_eq!(c as u64 * 1_000_000, ppm as u64 * (s as u64 + c as u64));
        }
    }

    #[test]
    fn gateway_canary_carries_its_slice() {
        assert_eq!(replicas_for_weight(pct("1%"), 3), 1);
        assert_eq!(replicas_for_weight(pct("50%"), 3), 2);
        assert_eq!(replicas_for_weight(pct("100%"), 3), 3);
        assert_eq!(replicas_for_weight(pct("25%"), 10), 3);
    }

    #[test]
    fn template_hash_ignores_labels_added_by_controllers() {
        let t = PodTemplateSpec {
            metadata: Some(Default::default()),
            spec: None,
        };
        let base = template_hash(&t);
        let mut with = t.clone();
        with.metadata.as_mut().expect("meta").labels = Some(map(&[
            ("pod-template-hash", "abc"),
            (crate::names::ROLE_LABEL, "canary"),
        ]));
        assert_eq!(template_hash(&with), base);
        let mut changed = t.clone();
        changed.metadata.as_mut().expect("meta").annotations =
            Some(map(&[("sim.rollguard.dev/error-rate", "0.05")]));
        assert_ne!(template_hash(&changed), base);
        assert_eq!(base.len(), 10);
    }

    /// A latency objective takes the tier's decision with its own rates; the two tests share
    /// the tier's alpha; rates the engine refuses name the objective's field; a histogram
    /// that cannot tell the revisions apart is tested against the fixed p0.
    #[test]
    fn a_latency_objective_is_judged_like_errors_at_half_the_alpha() {
        let tier = |extra: serde_json::Value| -> Tier {
            let mut v = serde_json::json!({
                "name": "t", "steps": [{"weight": "10%", "pause": "1m"}],
                "decision": "sequential", "latency": {"objective": "300ms"}
            });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            serde_json::from_value(v).expect("tier")
        };
        let mut with = analysis();
        with.requests = Some(r#"sum(r{workload="{{workload}}"})"#.into());
        with.errors = Some(r#"sum(e{workload="{{workload}}"})"#.into());
        with.latency = Some(crate::api::policy::LatencySpec {
            buckets: Some(r#"sum by (le) (b{workload="{{workload}}"})"#.into()),
            unit: None,
        });
        let plan =
            Plan::resolve(&tier(serde_json::json!({})), &with, "spec.tiers[0]").expect("plan");
        let l = plan.latency.expect("latency plan");
        assert_eq!(l.objective, Duration::from_millis(300));
        let Judge::Sequential { alpha, .. } = plan.judge else {
            panic!("sequential")
        };
        assert!((alpha - 0.005).abs() < 1e-12, "{alpha}");
        let Judge::Sequential {
            p0,
            p1,
            alpha,
            baseline,
            ..
        } = l.judge
        else {
            panic!("sequential")
        };
        assert_eq!((p0, p1, baseline), (0.01, 0.05, Baseline::Stable));
        assert!((alpha - 0.005).abs() < 1e-12, "{alpha}");
        // A histogram without the revision's pods in its selector: fixed p0.
        with.latency = Some(crate::api::policy::LatencySpec {
            buckets: Some("sum by (le) (b)".into()),
            unit: None,
        });
        let plan =
            Plan::resolve(&tier(serde_json::json!({})), &with, "spec.tiers[0]").expect("plan");
        assert!(matches!(
            plan.latency.map(|l| l.judge),
            Some(Judge::Sequential {
                baseline: Baseline::Fixed,
                ..
            })
        ));
        let bad = tier(serde_json::json!({"latency": {"objective": "300ms", "p0": "5%"}}));
        let e = Plan::resolve(&bad, &with, "spec.tiers[0]").expect_err("p0 at maxSlowRate");
        assert!(
            e.to_string().starts_with("spec.tiers[0].latency.p0: "),
            "{e}"
        );
        let bad =
            tier(serde_json::json!({"latency": {"objective": "300ms", "maxSlowRate": "100%"}}));
        let e = Plan::resolve(&bad, &with, "spec.tiers[0]").expect_err("p1 of 100%");
        assert!(
            e.to_string()
                .starts_with("spec.tiers[0].latency.maxSlowRate: "),
            "{e}"
        );
        // Threshold mode: maxSlowRate is the maximum, the failure limit is the tier's.
        let t = tier(serde_json::json!({"decision": "threshold", "failureLimit": 2}));
        let plan = Plan::resolve(&t, &with, "spec.tiers[0]").expect("plan");
        assert!(matches!(
            plan.latency.map(|l| l.judge),
            Some(Judge::Threshold { max_error_rate, failure_limit: 2, .. }) if max_error_rate == 0.05
        ));
    }
}
