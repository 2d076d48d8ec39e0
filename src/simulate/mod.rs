//! `rollguard simulate`: runs a policy against a synthetic traffic model in virtual time, with
//! the operator's own run state machine and decision engine ([`crate::run::reconcile`]), and
//! reports what happened to the canary: outcome, time to decision, steps reached, requests
//! and errors it served. Many seeded runs give the aggregates (mean, p50, p95, false
//! rollback rate, miss rate) that the blast-radius benchmark (`benches/blast_radius.rs`)
//! tabulates.
//!
//! * [`scenario`]: the scenario file;
//! * [`policy`]: loading and checking a policy file, choosing the tier;
//! * [`traffic`]: the traffic model and what Prometheus would have scraped;
//! * [`driver`]: the virtual-time loop around the run state machine (also used by
//!   [`crate::backtest`]);
//! * [`report`]: per-run records and aggregates;
//! * [`wald`]: Wald's expected values, the benchmark's yardstick;
//! * [`yaml`]: YAML errors that name the line and field.
//!
//! The modelling choices (instant canary readiness, optional routing and rollback delays,
//! counters read at scrape granularity, optionally with Prometheus' extrapolation and lazily
//! created error series) are listed in `docs/analysis/simulate.md`.

pub mod driver;
pub mod latency;
pub mod policy;
pub mod report;
pub mod scenario;
pub mod traffic;
pub mod wald;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::run::Phase;
use crate::plan::{Judge, RevisionMeta};
use driver::{Setup, Source, drive};
use policy::PolicyFile;
use report::{Aggregate, Outcome, RunResult};
use scenario::Scenario;
use traffic::Traffic;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    File(#[from] yaml::FileError),
    #[error("{0}")]
    Invalid(String),
}

/// Reads a file for a loader, naming it in the error.
pub fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The name the simulated Deployment has in rendered queries.
pub const DEPLOYMENT: &str = "app";

/// The virtual clock's start: 2030-01-01T00:00:00Z. Only differences matter.
pub fn virtual_start() -> Timestamp {
    Timestamp::from_second(1_893_456_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A policy and a scenario, ready to run any number of times.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub setup: Setup,
    pub scenario: Scenario,
}

impl Simulation {
    /// Matches the scenario's revision to a tier of the policy, as the operator would.
    pub fn new(policy: &PolicyFile, scenario: Scenario) -> Result<Simulation, Error> {
        let meta = RevisionMeta {
            template_labels: Some(&scenario.revision.labels),
            template_annotations: Some(&scenario.revision.annotations),
            ..Default::default()
        };
        let tier = policy.choose_tier(None, &meta).map_err(Error::Invalid)?;
        let setup = Setup::new(policy, tier, DEPLOYMENT, scenario.replicas)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if let (Some(l), Some(above)) = (&setup.plan.latency, scenario.slow_above)
            && l.objective != above
        {
            return Err(Error::Invalid(format!(
                "the scenario's slowAbove ({}) differs from the tier's latency objective ({}): slow requests are counted against one",
                crate::api::quantity::format_duration(above),
                crate::api::quantity::format_duration(l.objective)
            )));
        }
        Ok(Simulation { setup, scenario })
    }

    /// Loads both files.
    pub fn from_files(policy: &Path, scenario: &Path) -> Result<Simulation, Error> {
        let p = policy::load(&read(policy)?, &policy.display().to_string())?;
        let s = Scenario::parse(&read(scenario)?, &scenario.display().to_string())?;
        Simulation::new(&p, s)
    }

    /// One run with its own seed; `trace` records its timeline.
    pub fn run(&self, run: u32, seed: u64, trace: bool) -> RunResult {
        let mut traffic = Traffic::new(&self.scenario, seed)
            .errors_or_zero(self.setup.errors_or_zero)
            .latency_objective(self.setup.plan.latency.as_ref().map(|l| l.objective), seed)
            .checks(
                self.setup
                    .plan
                    .checks
                    .iter()
                    .map(|c| c.name.clone())
                    .collect(),
            );
        let d = drive(
            &self.setup,
            virtual_start(),
            self.scenario.duration,
            driver::Externals {
                approve_after: self.scenario.approve_after,
                release_at: self.scenario.release_after,
                routing_delay: self.scenario.routing_delay,
            },
            &mut traffic,
            trace,
        );
        // Ended other than by promotion: the canary keeps its share until traffic has moved.
        let decided = traffic.served();
        if let Some(end) = d.ended
            && d.status.phase != Phase::Succeeded
            && d.share_at_end > 0.0
        {
            traffic.advance(end + self.scenario.rollback_delay(), d.share_at_end);
        }
        let served = traffic.served();
        let errors_after_decision = served.canary_errors - decided.canary_errors;
        let baseline = traffic.canary_baseline();
        // A promoted revision takes all traffic until the end of the scenario.
        let errors_after_promotion = match (d.status.phase, d.ended) {
            (Phase::Succeeded, Some(end)) if end < self.scenario.duration => {
                traffic.advance(self.scenario.duration, 1.0);
                traffic.served().canary_errors - served.canary_errors
            }
            _ => 0,
        };
        let outcome = match d.status.phase {
            Phase::RolledBack | Phase::Aborted => Outcome::RolledBack,
            Phase::Succeeded => Outcome::Promoted,
            Phase::Superseded => Outcome::Released,
            _ => Outcome::Undecided,
        };
        let time_to_decision_seconds = match (d.ended, d.canary_started) {
            (Some(end), Some(start)) => Some(end.saturating_sub(start).as_secs_f64()),
            (Some(end), None) => Some(end.as_secs_f64()),
            _ => None,
        };
        RunResult {
            run,
            seed,
            outcome,
            phase: d.status.phase.as_str().to_string(),
            reason: d.status.reason.clone(),
            time_to_decision_seconds,
            steps_reached: d.steps_reached,
            canary_requests: served.canary_requests,
            canary_errors: served.canary_errors,
            errors_above_baseline: served.canary_errors as f64 - baseline,
            errors_after_promotion,
            errors_after_decision,
            canary_slow: served.canary_slow,
            slow_above_baseline: served.canary_slow as f64
                - served.canary_requests as f64 * traffic.stable_slow_share(),
            samples: d.status.sample_count,
            timeline: d.timeline,
        }
    }

    /// `runs` runs with seeds `seed`, `seed + 1`, ..., spread over `threads` threads; the
    /// results do not depend on the thread count.
    pub fn run_many(&self, runs: u32, seed: u64, threads: usize, trace: bool) -> Vec<RunResult> {
        let threads = threads.clamp(1, runs.max(1) as usize);
        let per = runs.div_ceil(threads as u32).max(1);
        let mut out: Vec<RunResult> = Vec::with_capacity(runs as usize);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads as u32)
                .map(|t| {
                    let from = t * per;
                    let to = ((t + 1) * per).min(runs);
                    s.spawn(move || {
                        (from..to)
                            .map(|i| self.run(i, seed.wrapping_add(u64::from(i)), trace))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                // A panicking run is a bug in the machine or the model: let it surface.
                match h.join() {
                    Ok(v) => out.extend(v),
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
        });
        out
    }

    /// Whether the scenario's canary is healthy (see [`Scenario::canary_is_healthy`]).
    pub fn healthy(&self) -> bool {
        self.scenario.canary_is_healthy()
    }
}

/// What `rollguard simulate` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: PathBuf,
    pub scenario: PathBuf,
    pub runs: u32,
    /// Seed of the first run; random when `None` (and printed, to replay).
    pub seed: Option<u64>,
    /// Leave the per-run records out (with many runs, only the aggregates matter).
    pub aggregate_only: bool,
}

/// The tier a simulation ran with.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierInfo {
    pub name: String,
    pub reason: String,
    pub decision: &'static str,
    pub router: &'static str,
    pub steps: Vec<String>,
    pub interval: String,
}

/// What `rollguard simulate` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub policy: String,
    pub scenario: String,
    pub tier: TierInfo,
    pub seed: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
}

/// The command line of `rollguard simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The RolloutPolicy file (YAML; a whole policy or only its spec).
    #[arg(long)]
    pub policy: PathBuf,
    /// The scenario file (YAML; see docs/analysis/simulate.md).
    #[arg(long)]
    pub scenario: PathBuf,
    /// How many runs; with more than one, the aggregates are printed too.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Seed of the first run (run i uses seed + i); random when omitted, printed either way.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print only the aggregates, not one record per run.
    #[arg(long)]
    pub aggregate_only: bool,
}

/// `rollguard simulate`: prints the report as JSON, or the error; returns the exit code.
pub fn main(args: Args) -> u8 {
    let opts = Options {
        policy: args.policy,
        scenario: args.scenario,
        runs: args.runs,
        seed: args.seed,
        aggregate_only: args.aggregate_only,
    };
    match simulate(&opts)
        .and_then(|r| serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string())))
    {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("rollguard simulate: {e}");
            1
        }
    }
}

/// Runs `rollguard simulate`.
pub fn simulate(opts: &Options) -> Result<Report, Error> {
    let sim = Simulation::from_files(&opts.policy, &opts.scenario)?;
    let runs = opts.runs.max(1);
    let seed = opts.seed.unwrap_or_else(rand::random);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results = sim.run_many(runs, seed, threads, runs == 1);
    let aggregate = (runs > 1).then(|| Aggregate::of(&results, sim.healthy()));
    let plan = &sim.setup.plan;
    Ok(Report {
        policy: opts.policy.display().to_string(),
        scenario: opts.scenario.display().to_string(),
        tier: TierInfo {
            name: sim.setup.spec.tier.name.clone(),
            reason: sim.setup.spec.tier.reason.clone(),
            decision: match plan.judge {
                Judge::Threshold { .. } => "threshold",
                Judge::Sequential { .. } => "sequential",
            },
            router: sim.setup.router.name(),
            steps: plan
                .steps
                .iter()
                .map(|(w, p)| format!("{w} for {}", crate::api::quantity::format_duration(*p)))
                .collect(),
            interval: crate::api::quantity::format_duration(plan.interval),
        },
        seed,
        runs: if opts.aggregate_only { vec![] } else { results },
        aggregate,
    })
}

/// How long the canary's slices take to carry `requests` requests at `rps` total, with no
/// measurement lag: the time Wald's expected sample size corresponds to. `None` when the
/// steps end first (the last slice is then held).
pub fn time_to_carry(
    steps: &[(crate::api::quantity::Ratio, Duration)],
    rps: f64,
    requests: f64,
) -> Option<f64> {
    let mut t = 0.0;
    let mut left = requests;
    for (i, (w, pause)) in steps.iter().enumerate() {
        let rate = rps * w.as_f64();
        let last = i + 1 == steps.len();
        if rate <= 0.0 {
            t += pause.as_secs_f64();
            continue;
        }
        let need = left / rate;
        if last || need <= pause.as_secs_f64() {
            return Some(t + need);
        }
        left -= rate * pause.as_secs_f64();
        t += pause.as_secs_f64();
    }
    None
}

#[cfg(test)]
mod tests;
