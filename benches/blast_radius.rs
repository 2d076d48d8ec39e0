//! The blast-radius benchmark: how many bad requests a canary serves before a policy acts,
//! over a grid of canary error rates and traffic levels, with `rollguard simulate`'s engine
//! (the operator's own run state machine in virtual time).
//!
//! ```text
//! cargo bench --bench blast_radius                 # 1000 runs per cell
//! cargo bench --bench blast_radius -- --runs 200   # quicker, noisier
//! ```
//!
//! Policies (files in `benches/blast-radius/`):
//! (a) the built-in `ai-assisted` tier (`decision: sequential`);
//! (b) the same tier with `decision: threshold` (everything else unchanged);
//! (c) Flagger's documented example; (d) Argo Rollouts' documented background analysis;
//! (e) Wald's expected values for (a)'s p0, p1, alpha and beta.
//!
//! It prints one Markdown table (the one in `docs/analysis/simulate.md`) and checks the
//! targets of issue 5 for (a).

use std::time::{Duration, Instant};

use rollguard::api::policy::Decision;
use rollguard::plan::{Judge, default_tiers};
use rollguard::simulate::report::Aggregate;
use rollguard::simulate::scenario::Scenario;
use rollguard::simulate::{Simulation, policy, time_to_carry, wald};

const BASELINE: &str = "0.1%";
const CANARY_RATES: [&str; 5] = ["0.1%", "0.5%", "1%", "5%", "50%"];
const RPS: [u32; 3] = [10, 100, 1000];
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/blast-radius");

fn scenario(rate: &str, rps: u32) -> Scenario {
    let text = format!(
        "duration: 1h\nrps: {rps}\nscrapeInterval: 15s\nreplicas: 10\n\
         stable: {{errorRate: \"{BASELINE}\"}}\ncanary: {{errorRate: \"{rate}\"}}\n\
         revision: {{annotations: {{rollguard.dev/change-origin: ai-assisted}}}}\n"
    );
    match Scenario::parse(&text, "grid") {
        Ok(s) => s,
        Err(e) => fail(&format!("the grid's scenario does not parse: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("blast_radius: {msg}");
    std::process::exit(2)
}

fn load(name: &str) -> policy::PolicyFile {
    let path = format!("{DIR}/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    policy::load(&text, &path).unwrap_or_else(|e| fail(&e.to_string()))
}

struct Cell {
    agg: Aggregate,
}

fn fmt_count(x: Option<f64>) -> String {
    match x {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn fmt_time(x: Option<f64>) -> String {
    match x {
        Some(s) => {
            let t = s.round() as u64;
            format!("{}m{:02}s", t / 60, t % 60)
        }
        None => "–".into(),
    }
}

fn fmt_rate(x: Option<f64>) -> String {
    x.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: u32 = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    let a = load("a-builtin-ai.yaml");
    // (b): the built-in tiers with the AI tier switched to threshold, nothing else changed.
    let mut b = a.clone();
    let mut tiers = default_tiers();
    tiers[0].decision = Decision::Threshold;
    tiers[0].sequential = None;
    b.spec.tiers = Some(tiers);
    let c = load("c-flagger.yaml");
    let d = load("d-argo.yaml");
    let policies = [
        ("(a) built-in AI tier, sequential", &a),
        ("(b) same tier, threshold", &b),
        ("(c) Flagger example", &c),
        ("(d) Argo background analysis", &d),
    ];

    let started = Instant::now();
    let mut grid: Vec<(String, u32, Vec<Cell>)> = Vec::new();
    let mut cell_seed: u64 = 1;
    for rate in CANARY_RATES {
        for rps in RPS {
            let s = scenario(rate, rps);
            let mut cells = Vec::new();
            for (_, p) in &policies {
                let sim = Simulation::new(p, s.clone()).unwrap_or_else(|e| fail(&e.to_string()));
                let results = sim.run_many(runs, cell_seed * 1_000_003, threads, false);
                cell_seed += 1;
                cells.push(Cell {
                    agg: Aggregate::of(&results, sim.healthy()),
                });
            }
            grid.push((rate.to_string(), rps, cells));
        }
    }
    let elapsed = started.elapsed();

    // (e): Wald's expectations for (a)'s test.
    let sim_a = Simulation::new(&a, scenario("1%", 100)).unwrap_or_else(|e| fail(&e.to_string()));
    let Judge::Sequential {
        p0,
        p1,
        alpha,
        beta,
        ..
    } = sim_a.setup.plan.judge
    else {
        fail("policy (a) is not sequential")
    };
    let steps = sim_a.setup.plan.steps.clone();

    println!(
        "Blast radius: baseline {BASELINE}, scrape interval 15s, {runs} seeded runs per cell, \
         Wald (e) for p0 {:.1}%, p1 {:.1}%, alpha {:.0}%, beta {:.0}%.\n",
        p0 * 100.0,
        p1 * 100.0,
        alpha * 100.0,
        beta * 100.0
    );
    println!(
        "| canary | rps | policy | mean canary errors | p95 canary errors | mean time to rollback | false rollback | miss | undecided | ratio | new-revision errors in 1 h |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut checks: Vec<(String, bool)> = Vec::new();
    let mut worst_c_ratio = f64::INFINITY;
    let mut worst_d_ratio = f64::INFINITY;
    let mut worst_c_hour = f64::INFINITY;
    let mut worst_d_hour = f64::INFINITY;
    let mut worst_false = 0.0f64;
    for (rate, rps, cells) in &grid {
        let p = rollguard::api::quantity::parse_percent(rate).map_or(0.0, |r| r.as_f64());
        let healthy = cells[0].agg.canary == "healthy";
        let e = wald::expectation(p0, p1, alpha, beta, p);
        let a_mean = cells[0].agg.canary_errors.mean.unwrap_or(f64::NAN);
        let a_hour = cells[0].agg.errors_within_duration.mean.unwrap_or(f64::NAN);
        for (i, cell) in cells.iter().enumerate() {
            let agg = &cell.agg;
            let mean = agg.canary_errors.mean.unwrap_or(f64::NAN);
            let hour = agg.errors_within_duration.mean.unwrap_or(f64::NAN);
            let ratio = match i {
                _ if healthy => String::new(),
                0 => e.map_or("–".into(), |e| format!("(a)/(e) {:.2}", mean / e.errors)),
                1 => format!("(b)/(a) {:.1}", mean / a_mean),
                _ => {
                    let label = if i == 2 { "(c)/(a)" } else { "(d)/(a)" };
                    let missed = agg.miss_rate.unwrap_or(0.0) > 0.5;
                    let note = if missed { " (promoted it)" } else { "" };
                    format!("{label} {:.1}{note}", mean / a_mean)
                }
            };
            match i {
                2 if !healthy => {
                    worst_c_ratio = worst_c_ratio.min(mean / a_mean);
                    worst_c_hour = worst_c_hour.min(hour / a_hour);
                }
                3 if !healthy => {
                    worst_d_ratio = worst_d_ratio.min(mean / a_mean);
                    worst_d_hour = worst_d_hour.min(hour / a_hour);
                }
                0 if healthy => {
                    worst_false = worst_false.max(agg.false_rollback_rate.unwrap_or(0.0));
                }
                _ => {}
            }
            let hour_col = match i {
                _ if healthy => "–".to_string(),
                0 => fmt_count(Some(hour)),
                _ => format!("{} ({:.1}x (a))", fmt_count(Some(hour)), hour / a_hour),
            };
            println!(
                "| {rate} | {rps} | {} | {} | {} | {} | {} | {} | {} | {ratio} | {hour_col} |",
                policies[i].0,
                fmt_count(agg.canary_errors.mean),
                fmt_count(agg.canary_errors.p95),
                fmt_time(agg.time_to_rollback_seconds.mean),
                fmt_rate(agg.false_rollback_rate),
                fmt_rate(agg.miss_rate),
                fmt_rate(Some(agg.undecided_rate)),
            );
        }
        if let Some(e) = e {
            let t = time_to_carry(&steps, f64::from(*rps), e.requests);
            println!(
                "| {rate} | {rps} | (e) Wald | {} | – | {} | {} | {} | – | | |",
                fmt_count(Some(e.errors)),
                fmt_time(t.filter(|_| !healthy)),
                fmt_rate(healthy.then_some(e.rollback_probability)),
                fmt_rate((!healthy).then_some(1.0 - e.rollback_probability)),
            );
        }
        if rate == "1%" {
            let r = a_mean / e.map_or(f64::NAN, |e| e.errors);
            checks.push((
                format!("(a) mean canary errors within 1.5x of (e) at 1%, {rps} rps: {r:.2}x"),
                r <= 1.5,
            ));
        }
    }
    checks.push((
        format!(
            "(a) false rollback rate <= 1% on healthy canaries: worst {:.2}%",
            worst_false * 100.0
        ),
        worst_false <= 0.01,
    ));
    checks.push((
        format!("(a) at least 10x fewer canary errors than (c) on bad canaries: worst {worst_c_ratio:.1}x"),
        worst_c_ratio >= 10.0,
    ));
    checks.push((
        format!("(a) at least 10x fewer canary errors than (d) on bad canaries: worst {worst_d_ratio:.1}x"),
        worst_d_ratio >= 10.0,
    ));
    checks.push((
        format!(
            "(context, not the target) counting a promoted bad revision's errors to 1 h: \
             (c)/(a) worst {worst_c_hour:.1}x, (d)/(a) worst {worst_d_hour:.1}x"
        ),
        worst_c_hour >= 10.0 && worst_d_hour >= 10.0,
    ));
    checks.push((
        format!(
            "the grid runs in under a minute: {:.1}s on {threads} threads",
            elapsed.as_secs_f64()
        ),
        elapsed < Duration::from_secs(60),
    ));
    sensitivity(&a, runs, threads);
    println!("\nTargets for (a):");
    for (what, ok) in &checks {
        println!("- [{}] {what}", if *ok { "met" } else { "MISSED" });
    }
}

/// How (a)'s errors at the 1% canary depend on what sets the measurement lag: the scrape
/// interval (infrastructure), the analysis interval (the policy) and the first slice (the
/// tier). Each row changes one thing from (a). Not part of the timed grid.
fn sensitivity(a: &policy::PolicyFile, runs: u32, threads: usize) {
    let with = |interval: &str, first: &str| {
        let mut p = a.clone();
        p.spec.analysis.interval = interval.into();
        let mut tiers = default_tiers();
        tiers[0].steps[0].weight = first.into();
        p.spec.tiers = Some(tiers);
        p
    };
    let variants: [(&str, policy::PolicyFile, u64); 5] = [
        (
            "(a): scrape 15s, interval 15s, first slice 1%",
            with("15s", "1%"),
            15,
        ),
        ("scrape 5s", with("15s", "1%"), 5),
        ("interval 5s", with("5s", "1%"), 15),
        ("scrape 5s and interval 5s", with("5s", "1%"), 5),
        ("first slice 0.5%", with("15s", "0.5%"), 15),
    ];
    let e = wald::expectation(0.001, 0.005, 0.01, 0.05, 0.01).map_or(f64::NAN, |e| e.errors);
    println!(
        "\nSensitivity of (a) at the 1% canary: mean canary errors ((a)/(e), (e) = {e:.2}), mean time to rollback.\n"
    );
    println!("| variant | 10 rps | 100 rps | 1000 rps |");
    println!("|---|---|---|---|");
    for (k, (name, p, scrape)) in variants.iter().enumerate() {
        let mut row = format!("| {name} |");
        for rps in RPS {
            let mut s = scenario("1%", rps);
            s.scrape_interval = Duration::from_secs(*scrape);
            let sim = Simulation::new(p, s).unwrap_or_else(|e| fail(&e.to_string()));
            let seed = 9_000_000 + k as u64 * 1_000 + u64::from(rps);
            let agg = Aggregate::of(&sim.run_many(runs, seed, threads, false), false);
            let mean = agg.canary_errors.mean.unwrap_or(f64::NAN);
            row.push_str(&format!(
                " {} ({:.2}x), {} |",
                fmt_count(Some(mean)),
                mean / e,
                fmt_time(agg.time_to_rollback_seconds.mean)
            ));
        }
        println!("{row}");
    }
}
