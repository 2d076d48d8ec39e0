//! What `rollguard simulate` prints: one record per run and the aggregates over runs.

use serde::Serialize;

use super::driver::Entry;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// The canary was judged bad; traffic went back to stable.
    RolledBack,
    /// The new revision became stable.
    Promoted,
    /// Still in flight when the scenario's duration ran out.
    Undecided,
    /// The policy stopped governing the Deployment first (`releaseAfter`): no verdict.
    Released,
}

/// One simulated run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// Index of the run (0-based).
    pub run: u32,
    /// The seed of this run alone: `--runs 1 --seed <it>` replays it.
    pub seed: u64,
    pub outcome: Outcome,
    /// The run's final phase, e.g. `RolledBack`, `Succeeded` or `Progressing`.
    pub phase: String,
    /// The run's `status.reason` (why it ended or waits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// From the canary's first traffic to the rollback or promotion.
    pub time_to_decision_seconds: Option<f64>,
    /// Steps whose slice took effect.
    pub steps_reached: u32,
    /// Requests the canary served (what really happened, not what Prometheus saw).
    pub canary_requests: u64,
    /// Failed requests the canary served, until traffic left it (the rollback delay
    /// included): the blast radius.
    pub canary_errors: u64,
    /// Canary errors beyond what the stable error rate would have caused.
    pub errors_above_baseline: f64,
    /// Errors the new revision served after its promotion, to the end of the scenario's
    /// duration, with all traffic on it: what a missed bad canary goes on costing.
    pub errors_after_promotion: u64,
    /// Of `canaryErrors`, those served after the run ended (rolled back) and before traffic
    /// had moved back to stable: the scenario's `rollbackDelay`.
    pub errors_after_decision: u64,
    /// Requests the canary served slower than the latency objective (the tier's, else the
    /// scenario's `slowAbove`; 0 with neither), until traffic left it.
    pub canary_slow: u64,
    /// Canary slow requests beyond what stable's latency would have caused.
    pub slow_above_baseline: f64,
    /// Analysis samples taken.
    pub samples: i32,
    /// Samples and Events (with `--runs 1`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Entry>,
}

/// Mean and percentiles of one quantity over runs.
#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// How many runs had the quantity.
    pub count: usize,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

impl Stats {
    /// Mean and nearest-rank percentiles of `values` (NaNs are dropped).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Stats {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Stats::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            count: n,
            mean: Some(v.iter().sum::<f64>() / n as f64),
            p50: Some(rank(0.50)),
            p95: Some(rank(0.95)),
        }
    }
}

/// The aggregates over all runs of a scenario.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Aggregate {
    pub runs: usize,
    /// Whether the canary is healthy (never worse than stable) or bad in this scenario.
    pub canary: &'static str,
    pub rolled_back: usize,
    pub promoted: usize,
    pub undecided: usize,
    /// Runs ended by a release (`releaseAfter`) before a verdict.
    pub released: usize,
    /// Healthy canaries only: the share of runs rolled back.
    pub false_rollback_rate: Option<f64>,
    /// Bad canaries only: the share of runs promoted.
    pub miss_rate: Option<f64>,
    /// Runs still undecided at the end of the scenario.
    pub undecided_rate: f64,
    pub time_to_decision_seconds: Stats,
    pub time_to_rollback_seconds: Stats,
    /// Over the runs that promoted, from the canary's first traffic.
    pub time_to_promotion_seconds: Stats,
    pub steps_reached: Stats,
    pub canary_requests: Stats,
    pub canary_errors: Stats,
    pub errors_above_baseline: Stats,
    /// Canary errors served between a rollback and traffic back on stable.
    pub errors_after_decision: Stats,
    /// Errors the new revision served after its promotion, with all traffic, to the end of
    /// the scenario (0 in runs that did not promote): kept apart from the canary period's.
    pub errors_after_promotion: Stats,
    /// Canary errors plus errors after promotion: the new revision's errors within the
    /// scenario's duration.
    pub errors_within_duration: Stats,
    pub canary_slow: Stats,
    pub slow_above_baseline: Stats,
}

impl Aggregate {
    /// Aggregates `runs` of a scenario whose canary is `healthy` or not.
    pub fn of(runs: &[RunResult], healthy: bool) -> Aggregate {
        let n = runs.len();
        let count = |o: Outcome| runs.iter().filter(|r| r.outcome == o).count();
        let (rolled_back, promoted, undecided) = (
            count(Outcome::RolledBack),
            count(Outcome::Promoted),
            count(Outcome::Undecided),
        );
        let rate = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        Aggregate {
            runs: n,
            canary: if healthy { "healthy" } else { "bad" },
            rolled_back,
            promoted,
            undecided,
            released: count(Outcome::Released),
            false_rollback_rate: healthy.then(|| rate(rolled_back)),
            miss_rate: (!healthy).then(|| rate(promoted)),
            undecided_rate: rate(undecided),
            time_to_decision_seconds: Stats::of(
                runs.iter().filter_map(|r| r.time_to_decision_seconds),
            ),
            time_to_rollback_seconds: Stats::of(
                runs.iter()
                    .filter(|r| r.outcome == Outcome::RolledBack)
                    .filter_map(|r| r.time_to_decision_seconds),
            ),
            time_to_promotion_seconds: Stats::of(
                runs.iter()
                    .filter(|r| r.outcome == Outcome::Promoted)
                    .filter_map(|r| r.time_to_decision_seconds),
            ),
            steps_reached: Stats::of(runs.iter().map(|r| f64::from(r.steps_reached))),
            canary_requests: Stats::of(runs.iter().map(|r| r.canary_requests as f64)),
            canary_errors: Stats::of(runs.iter().map(|r| r.canary_errors as f64)),
            errors_above_baseline: Stats::of(runs.iter().map(|r| r.errors_above_baseline)),
            errors_after_decision: Stats::of(runs.iter().map(|r| r.errors_after_decision as f64)),
            errors_after_promotion: Stats::of(runs.iter().map(|r| r.errors_after_promotion as f64)),
            errors_within_duration: Stats::of(
                runs.iter()
                    .map(|r| (r.canary_errors + r.errors_after_promotion) as f64),
            ),
            canary_slow: Stats::of(runs.iter().map(|r| r.canary_slow as f64)),
            slow_above_baseline: Stats::of(runs.iter().map(|r| r.slow_above_baseline)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let s = Stats::of((1..=100).map(f64::from));
        assert_eq!(
            (s.count, s.mean, s.p50, s.p95),
            (100, Some(50.5), Some(50.0), Some(95.0))
        );
        let s = Stats::of([3.0, f64::NAN]);
        assert_eq!((s.count, s.p50, s.p95), (1, Some(3.0), Some(3.0)));
        assert_eq!(Stats::of([]), Stats::default());
    }
}
