//! End-to-end tests of `simulate` on policies and scenarios written as files would be.

use super::*;
use crate::api::run::Verdict;
use crate::fuzz::stream;

const POLICY: &str = r#"apiVersion: rollguard.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: shop, namespace: shop}
spec:
  selector: {matchLabels: {app: shop}}
  traffic: {gatewayAPI: {}}
  analysis:
    interval: 15s
    requests: sum(increase(http_requests_total{workload="{{workload}}"}[{{elapsed}}]))
    errors: sum(increase(http_requests_total{workload="{{workload}}",code=~"5.."}[{{elapsed}}]))
"#;

fn sim(policy: &str, scenario: &str) -> Simulation {
    let p = policy::load(policy, "policy.yaml").expect("policy");
    let s = Scenario::parse(scenario, "scenario.yaml").expect("scenario");
    Simulation::new(&p, s).expect("simulation")
}

/// The samples of a traced run's timeline, with their times (seconds since the start).
fn samples_of(r: &RunResult) -> Vec<(f64, &crate::api::run::Sample)> {
    r.timeline
        .iter()
        .filter_map(|e| match &e.what {
            driver::What::Sample(s) => Some((e.at_seconds, &**s)),
            driver::What::Event { .. } => None,
        })
        .collect()
}

fn ai(rate: &str, rps: u32) -> String {
    format!(
        "duration: 1h\nrps: {rps}\nscrapeInterval: 15s\nstable: {{errorRate: \"0.1%\"}}\ncanary: {{errorRate: \"{rate}\"}}\nrevision: {{annotations: {{rollguard.dev/change-origin: ai-assisted}}}}\n"
    )
}

#[test]
fn the_built_in_ai_tier_is_chosen_for_ai_changes() {
    let s = sim(POLICY, &ai("0.1%", 100));
    assert_eq!(s.setup.spec.tier.name, "ai-assisted");
    assert_eq!(s.setup.router, crate::run::Router::GatewayApi);
    assert_eq!(s.setup.window, driver::QueryWindow::SinceStart);
    let human = ai("0.1%", 100).replace("ai-assisted", "human");
    assert_eq!(sim(POLICY, &human).setup.spec.tier.name, "standard");
}

#[test]
fn a_seeded_run_reproduces() {
    let s = sim(POLICY, &ai("1%", 100));
    let a = s.run(0, stream(42), true);
    let b = s.run(0, stream(42), true);
    assert_eq!(serde_json::to_value(&a).ok(), serde_json::to_value(&b).ok());
    assert!(!a.timeline.is_empty());
    // Thread count does not change results.
    let one = s.run_many(20, stream(7), 1, false);
    let four = s.run_many(20, stream(7), 4, false);
    assert_eq!(
        serde_json::to_value(&one).ok(),
        serde_json::to_value(&four).ok()
    );
    assert_eq!(one[3].seed, stream(7).wrapping_add(3));
    // Another seed, another run.
    let c = s.run(0, stream(43), false);
    assert_ne!(
        (a.canary_requests, a.canary_errors),
        (c.canary_requests, c.canary_errors)
    );
}

#[test]
fn a_healthy_canary_is_promoted_only_on_evidence() {
    // 1000 requests/s: enough that every slice's test accepts within its pause.
    let s = sim(POLICY, &ai("0.1%", 1000));
    let runs = s.run_many(200, stream(1), 2, false);
    let agg = Aggregate::of(&runs, s.healthy());
    assert_eq!(agg.canary, "healthy");
    let fr = agg.false_rollback_rate.expect("healthy");
    assert!(fr <= 0.03, "false rollback rate {fr}");
    assert!(agg.promoted as f64 >= 0.9 * 200.0, "{agg:?}");
    // Promotion takes all five steps: at least 35 minutes of pauses.
    let t = agg.time_to_decision_seconds.p50.expect("decided");
    assert!((35.0 * 60.0..=40.0 * 60.0).contains(&t), "{t}");
    assert_eq!(agg.steps_reached.p50, Some(5.0));
    // At 1 request/s the 0.5% slice sees a request every 200 s: its test cannot accept
    // within the hour, so the run is never promoted and waits at its first slice.
    let s = sim(POLICY, &ai("0.1%", 1));
    let runs = s.run_many(50, stream(2), 2, false);
    let agg = Aggregate::of(&runs, s.healthy());
    assert_eq!(agg.promoted, 0, "{agg:?}");
    assert_eq!(agg.steps_reached.p95, Some(1.0), "{agg:?}");
}

#[test]
fn a_fifty_percent_canary_always_rolls_back_after_a_few_errors() {
    for rps in [10, 100, 1000] {
        let s = sim(POLICY, &ai("50%", rps));
        let runs = s.run_many(200, stream(9), 2, false);
        let agg = Aggregate::of(&runs, s.healthy());
        assert_eq!(agg.rolled_back, 200, "rps {rps}: {agg:?}");
        assert_eq!(agg.miss_rate, Some(0.0));
        // Three errors suffice for the test; the rest is the lag of one analysis interval
        // plus up to one scrape interval at the first slice (0.5%; the bound allows 1%).
        let p95 = agg.canary_errors.p95.expect("errors");
        assert!(
            p95 <= 3.0 + 0.5 * 0.01 * f64::from(rps) * 30.0 + 6.0,
            "rps {rps}: {agg:?}"
        );
        // At 10 rps the 0.5% slice carries about 15 requests in its 5 minutes, so now and
        // then the third error comes only in the 5% slice.
        let most_steps = if rps == 10 { 2 } else { 1 };
        for r in &runs {
            assert_eq!(r.reason.as_deref(), Some("SequentialTestRejected"));
            assert!(r.steps_reached <= most_steps, "rps {rps}: {r:?}");
        }
        let first = runs.iter().filter(|r| r.steps_reached == 1).count();
        assert!(first >= 190, "rps {rps}: {first} of 200 at the first slice");
    }
}

#[test]
fn no_data_holds_the_run() {
    let scenario = format!("{}noData: [{{from: 0s, to: 20m}}]\n", ai("50%", 100));
    let s = sim(POLICY, &scenario);
    let r = s.run(0, stream(5), true);
    // Nothing is known for 20 minutes: the run holds at its first step, then rolls back.
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(
        r.time_to_decision_seconds.is_some_and(|t| t >= 20.0 * 60.0),
        "{r:?}"
    );
    assert_eq!(r.steps_reached, 1);
    assert!(
        samples_of(&r)
            .iter()
            .any(|(_, s)| s.verdict == Verdict::NoData)
    );
}

#[test]
fn the_replicas_router_gives_the_canary_its_pods_share() {
    let policy = POLICY.replace("traffic: {gatewayAPI: {}}", "traffic: {replicas: {}}");
    let scenario = format!("{}replicas: 4\n", ai("0.1%", 100).replace("1h", "4m"));
    let s = sim(&policy, &scenario);
    let r = s.run(0, stream(3), false);
    // The 0.5% slice asks for one canary pod next to four stable ones: 20% of 100 rps for
    // 4 minutes.
    let expect = 0.2 * 100.0 * 240.0;
    assert!(
        (r.canary_requests as f64 - expect).abs() < 0.1 * expect,
        "{r:?}"
    );
    assert_eq!(r.outcome, Outcome::Undecided);
}

/// A release (the policy deleted or no longer selecting the Deployment) ends the run the way
/// the operator ends it: through the machine, superseded, all traffic back to stable.
#[test]
fn a_release_ends_the_run_without_a_verdict() {
    let scenario = "rps: 100\ncanary: {errorRate: 0.1%}\nreleaseAfter: 3m\n";
    let s = sim(POLICY, scenario);
    let r = s.run(0, 1, true);
    assert_eq!(r.outcome, Outcome::Released, "{r:?}");
    assert_eq!(r.phase, "Superseded");
    assert_eq!(r.reason.as_deref(), Some("Released"));
    assert!(
        (179.0..=181.0).contains(&r.time_to_decision_seconds.expect("ended")),
        "{r:?}"
    );
    // The canary served nothing after the release.
    let later = sim(POLICY, &scenario.replace("3m", "30m")).run(0, 1, false);
    assert!(
        r.canary_requests < later.canary_requests,
        "{r:?} vs {later:?}"
    );
}

#[test]
fn approvals_are_given_after_the_scenario_says() {
    let policy = format!(
        "{POLICY}  tiers:\n  - name: only\n    steps: [{{weight: 10%, pause: 1m}}]\n    requireApproval: true\n"
    );
    let scenario = "rps: 100\ncanary: {errorRate: 0%}\napproveAfter: 10m\n";
    let r = sim(&policy, scenario).run(0, stream(1), true);
    assert_eq!(r.outcome, Outcome::Promoted);
    let t = r.time_to_decision_seconds.expect("decided");
    assert!((660.0..=700.0).contains(&t), "{t}");
}

#[test]
fn windowed_queries_are_read_over_their_window() {
    // Flagger-style: the last interval's success rate, five failed checks to roll back.
    let policy = POLICY
        .replace("[{{elapsed}}]", "[{{interval}}]")
        .replace("interval: 15s", "interval: 1m")
        + "  tiers:\n  - name: flagger\n    steps: [{weight: 10%, pause: 1m}, {weight: 20%, pause: 1m}]\n    maxErrorRate: 1%\n    failureLimit: 4\n";
    let s = sim(
        &policy,
        "rps: 100\ncanary: {schedule: [{at: 0s, errorRate: 0%}, {at: 90s, errorRate: 50%}]}\nduration: 30m\n",
    );
    assert_eq!(
        s.setup.window,
        driver::QueryWindow::Last(Duration::from_secs(60))
    );
    let r = s.run(0, stream(11), false);
    assert_eq!(r.outcome, Outcome::RolledBack);
    // Good for 90 s, then five failed one-minute checks.
    let t = r.time_to_decision_seconds.expect("decided");
    assert!((300.0..=420.0).contains(&t), "{t}");
}

#[test]
fn simulate_runs_the_operators_machine_and_nothing_else() {
    // The driver feeds crate::run::reconcile; no module of simulate judges samples itself.
    let driver = include_str!("driver.rs");
    assert!(driver.contains("let out = reconcile(&view, &status, &world);"));
    for (name, src) in [
        ("driver.rs", driver),
        ("traffic.rs", include_str!("traffic.rs")),
        ("mod.rs", include_str!("mod.rs")),
        ("report.rs", include_str!("report.rs")),
    ] {
        for forbidden in ["decision::", "Sprt", "threshold("] {
            assert!(!src.contains(forbidden), "{name} uses {forbidden}");
        }
    }
    // What the machine says ends up in the report verbatim.
    let r = sim(POLICY, &ai("50%", 1000)).run(0, stream(2), true);
    let Some(driver::What::Event { message, .. }) = r
        .timeline
        .iter()
        .map(|e| &e.what)
        .find(|w| matches!(w, driver::What::Event { reason, .. } if reason == "RolledBack"))
    else {
        panic!("no RolledBack event: {r:?}");
    };
    assert!(
        message.contains("the sequential test's statistic"),
        "{message}"
    );
}

#[test]
fn time_to_carry_walks_the_slices() {
    let p = crate::api::quantity::parse_percent;
    let steps = [
        (p("1%").expect("w"), Duration::from_secs(300)),
        (p("10%").expect("w"), Duration::from_secs(300)),
    ];
    // 1 rps for 300 s, then 10 rps.
    assert_eq!(time_to_carry(&steps, 100.0, 150.0), Some(150.0));
    assert_eq!(time_to_carry(&steps, 100.0, 400.0), Some(310.0));
    assert_eq!(time_to_carry(&steps, 100.0, 10_000.0), Some(300.0 + 970.0));
}

/// A source that records how traffic was asked to flow.
#[derive(Default)]
struct Flows(Vec<(Duration, f64)>);

impl Source for Flows {
    fn advance(&mut self, to: Duration, share: f64) {
        self.0.push((to, share));
    }
    fn counts(&mut self, _: Duration, _: Duration, _: bool) -> driver::Counts {
        driver::Counts::NoData("none".into())
    }
}

#[test]
fn a_new_share_takes_effect_after_the_routing_delay() {
    use driver::Routed;
    let s = Duration::from_secs;
    // (delay, asks as (at, share), flow to) -> shares in effect along the way
    type Case = (u64, &'static [(u64, f64)], u64, &'static [(u64, f64)]);
    let cases: [Case; 4] = [
        // No delay: at once.
        (0, &[(0, 0.1)], 30, &[(30, 0.1)]),
        // 10 s: the old share until then, the new one after.
        (10, &[(0, 0.1)], 30, &[(10, 0.0), (30, 0.1)]),
        // Asked again for the same share: still due at the first ask's time.
        (10, &[(0, 0.1), (5, 0.1)], 30, &[(10, 0.0), (30, 0.1)]),
        // Asked for another before the first took effect (a rollback during a widening):
        // each in turn, from its own ask.
        (
            10,
            &[(0, 0.5), (5, 0.0)],
            30,
            &[(10, 0.0), (15, 0.5), (30, 0.0)],
        ),
    ];
    for (delay, asks, to, want) in cases {
        let mut r = Routed::default();
        let mut src = Flows::default();
        for (at, share) in asks {
            r.flow(&mut src, s(*at));
            r.ask(*share, s(*at), s(delay));
        }
        src.0.clear();
        r.flow(&mut src, s(to));
        let got: Vec<(Duration, f64)> = src.0.clone();
        let want: Vec<(Duration, f64)> = want.iter().map(|(t, x)| (s(*t), *x)).collect();
        // Each ask flowed to its own time first; what matters is the flow to the end.
        assert_eq!(got, want, "delay {delay}s, asks {asks:?}");
        assert_eq!(r.due(), None);
    }
}

#[test]
fn the_rollback_delay_adds_what_the_canary_serves_until_traffic_moves() {
    let quick = sim(POLICY, &ai("50%", 100));
    let slow = sim(POLICY, &format!("{}rollbackDelay: 30s\n", ai("50%", 100)));
    let fast = quick.run_many(100, stream(11), 2, false);
    let late = slow.run_many(100, stream(11), 2, false);
    for (a, b) in fast.iter().zip(&late) {
        // The same draws until the decision; after it, only the delay's errors.
        assert_eq!(a.errors_after_decision, 0);
        assert_eq!(b.canary_errors - b.errors_after_decision, a.canary_errors);
        assert_eq!(a.time_to_decision_seconds, b.time_to_decision_seconds);
    }
    // 30 s at the 0.5% slice of 100 requests/s, half of them failing: about 7.5 errors.
    let agg = Aggregate::of(&late, slow.healthy());
    let mean = agg.errors_after_decision.mean.expect("runs");
    assert!((5.0..=10.0).contains(&mean), "{mean}");
}

#[test]
fn traffic_never_moved_within_the_routing_delay() {
    let scenario =
        format!("{}routingDelay: 10m\n", ai("50%", 100)).replace("duration: 1h", "duration: 5m");
    let s = sim(POLICY, &scenario);
    for r in s.run_many(5, stream(12), 1, false) {
        assert_eq!(r.canary_requests, 0, "{r:?}");
        assert_eq!(r.outcome, Outcome::Undecided);
    }
    // Shorter than the first slice: the canary serves, later, and is still caught.
    let scenario = format!("{}routingDelay: 1m\n", ai("50%", 100));
    let agg = Aggregate::of(
        &sim(POLICY, &scenario).run_many(50, stream(12), 2, false),
        false,
    );
    assert_eq!(agg.rolled_back, 50, "{agg:?}");
    let t = agg.time_to_rollback_seconds.p50.expect("rolled back");
    assert!(t >= 60.0, "decided at {t}s, before the canary had traffic");
}

#[test]
fn a_lazily_created_error_series_needs_or_vector_zero() {
    // A canary that never fails: its error series never exists.
    let scenario = format!("{}lazyErrorSeries: true\n", ai("0%", 1000));
    let without = sim(POLICY, &scenario);
    let agg = Aggregate::of(&without.run_many(20, stream(13), 2, false), true);
    assert_eq!(agg.promoted, 0, "no data is never evidence: {agg:?}");
    let with = POLICY.replace(
        "code=~\"5..\"}[{{elapsed}}]))",
        "code=~\"5..\"}[{{elapsed}}])) or vector(0)",
    );
    assert!(with.contains("or vector(0)"));
    let s = sim(&with, &scenario);
    assert!(s.setup.errors_or_zero);
    let agg = Aggregate::of(&s.run_many(20, stream(13), 2, false), true);
    assert_eq!(agg.promoted, 20, "{agg:?}");
}

#[test]
fn prometheus_unkindness_still_rolls_a_bad_canary_back() {
    for extra in [
        "extrapolate: true\n",
        "lazyErrorSeries: true\n",
        "extrapolate: true\nlazyErrorSeries: true\n",
    ] {
        let s = sim(POLICY, &format!("{}{extra}", ai("5%", 100)));
        let agg = Aggregate::of(&s.run_many(50, stream(14), 2, false), false);
        assert_eq!(agg.rolled_back, 50, "{extra:?}: {agg:?}");
    }
}

/// `simulate.threshold: asMeasured` models the peers' check: a healthy canary at exactly the
/// maximum is rolled back by an unlucky sample about half the time, where the operator's
/// check (a confidence bound) almost never does; a policy without the key is judged as the
/// operator judges it.
#[test]
fn the_peers_check_is_modelled_only_when_asked() {
    let threshold = |model: &str| {
        format!(
            "{POLICY}  tiers:\n  - name: t\n    steps: [{{weight: 10%, pause: 5m}}]\n    maxErrorRate: 1%\n    decision: threshold\n    failureLimit: 0\n{model}"
        )
    };
    let scenario = "duration: 30m\nrps: 100\nscrapeInterval: 15s\nstable: {errorRate: \"1%\"}\ncanary: {errorRate: \"1%\"}\n";
    let rolled_back = |policy: &str| {
        let s = sim(policy, scenario);
        let runs = s.run_many(200, stream(3), 2, false);
        Aggregate::of(&runs, s.healthy()).rolled_back
    };
    let peers = rolled_back(&threshold("simulate: {threshold: asMeasured}\n"));
    let ours = rolled_back(&threshold(""));
    let explicit = rolled_back(&threshold("simulate: {threshold: confidenceBound}\n"));
    assert!(peers >= 60, "as measured: {peers} of 200 rolled back");
    assert!(ours <= 4, "confidence bound: {ours} of 200 rolled back");
    assert_eq!(ours, explicit);
    // An unknown model is refused, naming it.
    let err = policy::load(&threshold("simulate: {threshold: raw}\n"), "p.yaml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("raw") && err.contains("asMeasured"), "{err}");
}

/// A policy whose AI tier judges latency beside errors (objective 250ms), through the Istio
/// preset, and gates on the canary's p99 as a check.
const LATENCY_POLICY: &str = r#"apiVersion: rollguard.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: shop, namespace: shop}
spec:
  selector: {matchLabels: {app: shop}}
  traffic: {gatewayAPI: {}}
  analysis:
    interval: 15s
    preset: istio
  tiers:
  - name: ai-assisted
    steps: [{weight: 5%, pause: 2m}, {weight: 50%, pause: 2m}]
    maxErrorRate: 1%
    decision: sequential
    sequential: {baseline: stable}
    latency: {objective: 250ms, maxSlowRate: 5%, p0: 1%}
"#;

fn timed(canary_latency: &str, extra: &str) -> String {
    format!(
        "duration: 1h\nrps: 100\nstable: {{errorRate: \"0.1%\", latency: 50ms}}\ncanary: {{errorRate: \"0.1%\", latency: {canary_latency}}}\n{extra}"
    )
}

/// Given a latency objective and a preset, `simulate` rolls a canary three times slower
/// back on its slow requests, counting them, and promotes one as fast as stable; the scenario
/// gives each revision its latency.
#[test]
fn simulate_judges_latency_objectives_through_a_preset() {
    let slow = sim(LATENCY_POLICY, &timed("150ms", ""));
    assert!(!slow.healthy(), "a slower canary is a bad one");
    let runs = slow.run_many(40, stream(3), 2, false);
    let a = Aggregate::of(&runs, false);
    assert_eq!(a.rolled_back, 40, "{a:?}");
    assert!(
        runs.iter()
            .all(|r| r.reason.as_deref() == Some("SlowRequestsTestRejected")),
        "{:?}",
        runs.iter().map(|r| r.reason.clone()).collect::<Vec<_>>()
    );
    // About 15% of its requests are slow, against 0.06% of stable's.
    assert!(
        runs.iter()
            .all(|r| r.canary_slow > 0 && r.slow_above_baseline > 0.0)
    );
    let fast = sim(LATENCY_POLICY, &timed("50ms", ""));
    assert!(fast.healthy());
    let runs = fast.run_many(40, stream(4), 2, false);
    let a = Aggregate::of(&runs, true);
    assert!(a.promoted >= 38, "{a:?}");
    // The rendered queries came from the preset.
    let r = fast.run(0, stream(5), true);
    let sample = samples_of(&r)
        .into_iter()
        .find_map(|(_, s)| s.latency.clone())
        .expect("a sample with latency evidence");
    assert!(
        sample
            .query
            .as_deref()
            .is_some_and(|q| q.contains("istio_request_duration_milliseconds_bucket")),
        "{sample:?}"
    );
}

/// Given a check on the canary's p99, the scenario's quantile of the canary's latency is
/// what it returns: a slow canary fails it past its limit, a fast one passes. Slow requests
/// are counted for the report against the scenario's `slowAbove`.
#[test]
fn simulate_judges_checks_with_the_scenarios_values() {
    let policy = POLICY.to_string()
        + "    checks: [{name: p99, query: 'histogram_quantile(0.99, sum by (le) (rate(b{workload=\"{{workload}}\"}[1m])))', max: 0.5, failureLimit: 1}]\n";
    let scenario = |latency: &str| {
        timed(
            latency,
            "checks: {p99: {quantile: 0.99}}\nslowAbove: 250ms\nrevision: {annotations: {rollguard.dev/change-origin: human}}\n",
        )
    };
    let slow = sim(&policy, &scenario("300ms"));
    let r = slow.run(0, stream(6), false);
    assert_eq!(r.reason.as_deref(), Some("CheckFailed"), "{r:?}");
    assert!(r.canary_slow > 0);
    let fast = sim(&policy, &scenario("50ms"));
    let r = fast.run(0, stream(6), false);
    assert_eq!(r.outcome, Outcome::Promoted, "{r:?}");
    // As fast as stable: its few slow requests (0.06%) are stable's share too.
    assert!(r.slow_above_baseline.abs() < 12.0, "{r:?}");
    // The p99 of a 300ms median with spread 0.5 is 300ms x e^(2.326 x 0.5) = 960ms.
    let q = crate::simulate::scenario::CheckValueSpec::Quantile { quantile: 0.99 };
    assert!((q.value(std::time::Duration::from_millis(300), 0.5) - 0.9597).abs() < 1e-3);
    // A slowAbove that disagrees with the tier's objective is refused.
    let p = policy::load(LATENCY_POLICY, "policy.yaml").expect("policy");
    let s = Scenario::parse(&timed("50ms", "slowAbove: 300ms\n"), "s.yaml").expect("scenario");
    let Err(e) = Simulation::new(&p, s) else {
        panic!("a slowAbove that disagrees must be refused")
    };
    assert!(e.to_string().contains("slowAbove (300ms) differs"), "{e}");
}

/// A peer's documented canary as a policy file: `steps` and the tier's check over the last
/// interval's counts, with the file's `simulate` key.
fn peer(steps: &str, max: &str, limit: u32, interval: &str, simulate: &str) -> String {
    format!(
        r#"simulate: {{{simulate}}}
apiVersion: rollguard.dev/v1alpha1
kind: RolloutPolicy
metadata: {{name: peer, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: shop}}}}
  traffic: {{gatewayAPI: {{}}}}
  analysis:
    interval: {interval}
    requests: sum(increase(http_requests_total{{workload="{{{{workload}}}}"}}[{{{{interval}}}}]))
    errors: sum(increase(http_requests_total{{workload="{{{{workload}}}}",code=~"5.."}}[{{{{interval}}}}]))
    minRequests: 0
  tiers:
  - name: peer
    steps: {steps}
    maxErrorRate: {max}
    decision: threshold
    failureLimit: {limit}
"#
    )
}

fn flat(rps: &str, stable: &str, canary: &str, duration: &str) -> String {
    format!(
        "duration: {duration}\nrps: {rps}\nscrapeInterval: 15s\nstable: {{errorRate: \"{stable}\"}}\ncanary: {{errorRate: \"{canary}\"}}\n"
    )
}

/// `simulate.onNoData: fail` counts a sample without requests as a failed check, as Flagger
/// and Argo Rollouts do: at 0.2 requests/s a 5% slice is empty in about half its 1-minute
/// intervals, so a healthy canary is often rolled back by its empty samples, where the
/// default holds it.
#[test]
fn a_peer_that_fails_on_no_data_rolls_back_a_quiet_healthy_canary() {
    let steps = "[{weight: 5%, pause: 1m}, {weight: 10%, pause: 1m}]";
    let scenario = flat("0.2", "0.1%", "0.1%", "1h");
    let run = |simulate: &str| {
        let s = sim(&peer(steps, "1%", 1, "1m", simulate), &scenario);
        s.run_many(100, stream(21), 2, false)
    };
    let fails = run("threshold: asMeasured, onNoData: fail");
    let holds = run("threshold: asMeasured");
    let by_no_data = fails
        .iter()
        .filter(|r| r.reason.as_deref() == Some("NoDataFailedCheck"))
        .count();
    // Two failed checks roll back: about 40% of runs meet two empty minutes at the 5% slice
    // before a passing one.
    assert!(
        by_no_data >= 25,
        "{by_no_data} of 100 rolled back by no data"
    );
    let rolled_back = holds.iter().filter(|r| r.phase == "RolledBack").count();
    assert!(
        rolled_back <= 5,
        "holding: {rolled_back} of 100 rolled back"
    );
    // The rollback says why, with the sample that had no data.
    let s = sim(
        &peer(
            steps,
            "1%",
            0,
            "1m",
            "threshold: asMeasured, onNoData: fail",
        ),
        &flat("0.01", "0.1%", "0.1%", "1h"),
    );
    let r = s.run(0, stream(22), true);
    assert_eq!(r.reason.as_deref(), Some("NoDataFailedCheck"), "{r:?}");
    let samples = samples_of(&r);
    let (_, sample) = samples.first().expect("a sample");
    assert_eq!(sample.verdict, Verdict::Fail);
    assert!(
        sample
            .message
            .as_deref()
            .is_some_and(|m| m.contains("no data is a failed check")),
        "{sample:?}"
    );
}

/// A failed check holds the slice by default (the operator, and Flagger's halt); with
/// `simulate.steps: onPause` the steps move on their pauses whatever the samples say and the
/// last one promotes (Argo Rollouts' background analysis, which can only abort).
#[test]
fn a_peer_whose_steps_move_on_their_pauses_does_not_wait_for_evidence() {
    let steps = "[{weight: 20%, pause: 10m}, {weight: 40%, pause: 10m}, {weight: 60%, pause: 10m}]";
    // 1.2% against a 1% maximum: most 5-minute samples fail, some pass.
    let scenario = flat("100", "0.1%", "1.2%", "2h");
    let run = |simulate: &str| {
        let s = sim(&peer(steps, "1%", 100, "5m", simulate), &scenario);
        s.run(0, stream(23), false)
    };
    let halts = run("threshold: asMeasured");
    let moves = run("threshold: asMeasured, steps: onPause");
    // On its pauses: three steps of 10 minutes, then promoted, failed samples and all.
    assert_eq!(moves.phase, "Succeeded", "{moves:?}");
    let t = moves.time_to_decision_seconds.expect("decided");
    assert!((1800.0..1830.0).contains(&t), "{t}");
    // On evidence: each slice waits for a passing sample, so the same run takes longer.
    let slower = halts.time_to_decision_seconds.is_none_or(|h| h > t + 300.0);
    assert!(slower, "{halts:?}");
}

/// `simulate.measure: service` counts stable and canary together, and `analysisFromStep`
/// takes the first sample as that step starts (Argo Rollouts' documented background
/// analysis, from the 40% step): a 5% canary against a 5% maximum never shows above it over
/// the whole service, and is promoted, where the canary's own counts roll it back.
#[test]
fn a_peer_that_measures_the_service_from_a_later_step_misses_a_bad_canary() {
    let steps = "[{weight: 20%, pause: 10m}, {weight: 40%, pause: 10m}, {weight: 60%, pause: 10m}, {weight: 80%, pause: 10m}]";
    let scenario = flat("100", "0.1%", "6%", "2h");
    let argo = "threshold: asMeasured, onNoData: fail, steps: onPause";
    let canary = sim(&peer(steps, "5%", 3, "5m", argo), &scenario);
    let service = sim(
        &peer(
            steps,
            "5%",
            3,
            "5m",
            &format!("{argo}, measure: service, analysisFromStep: 2"),
        ),
        &scenario,
    );
    let r = canary.run(0, stream(24), false);
    assert_eq!(r.phase, "RolledBack", "{r:?}");
    let r = service.run(0, stream(24), true);
    assert_eq!(r.phase, "Succeeded", "{r:?}");
    let samples = samples_of(&r);
    // The first sample comes as the second step starts, then one every 5 minutes.
    assert_eq!(samples.first().map(|(t, _)| *t), Some(600.0), "{samples:?}");
    assert_eq!(samples.get(1).map(|(t, _)| *t), Some(900.0));
    // It counts the whole service: many more requests than the canary's 40% share.
    let (_, first) = &samples[0];
    let requests = first.requests.unwrap_or_default();
    assert!(requests > 25_000, "{first:?}");
    assert!(samples.iter().all(|(_, s)| s.verdict == Verdict::Pass));
}

#[test]
fn a_peer_model_that_cannot_be_modelled_is_refused_with_its_field() {
    let steps = "[{weight: 20%, pause: 10m}, {weight: 40%, pause: 10m}]";
    let cases = [
        ("onNoData: fail", "simulate.onNoData: models a peer's check"),
        ("steps: onPause", "simulate.steps: models a peer's check"),
        (
            "threshold: asMeasured, analysisFromStep: 2",
            "simulate.analysisFromStep: without samples the steps before step 2",
        ),
        (
            "threshold: asMeasured, steps: onPause, analysisFromStep: 0",
            "simulate.analysisFromStep: steps are counted from 1",
        ),
        ("onNoData: drop", "unknown variant `drop`"),
    ];
    for (simulate, want) in cases {
        let err = policy::load(&peer(steps, "5%", 3, "5m", simulate), "p.yaml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(want), "{simulate}: {err}");
        assert!(err.starts_with("p.yaml:1:"), "{simulate}: {err}");
    }
    // Past the tier's last step: refused when the tier is chosen.
    let p = policy::load(
        &peer(
            steps,
            "5%",
            3,
            "5m",
            "threshold: asMeasured, steps: onPause, analysisFromStep: 3",
        ),
        "p.yaml",
    )
    .expect("loads");
    let err = p
        .choose_tier(None, &crate::plan::RevisionMeta::default())
        .err()
        .unwrap_or_default();
    assert!(
        err.contains("simulate.analysisFromStep: 3 is past the last step of tier peer (2 steps)"),
        "{err}"
    );
}

/// The modelled documented peers (benches/blast-radius/) against what their real controllers
/// did on the cluster in the same cell (docs/analysis/peers.md, a 5% canary at 50
/// requests/s): Flagger rolled it back after 11 minutes and 84 errors (ten failed checks, its
/// weight halted at 5%); Argo Rollouts' service-wide analysis never did in 30 minutes.
#[test]
fn the_peers_model_agrees_with_their_controllers() {
    let scenario = include_str!("../../benches/peers/model-bad-5pct.yaml");
    let model = |file: &str| {
        let p = policy::load(file, "peer.yaml").expect("policy");
        let s = Scenario::parse(scenario, "model-bad-5pct.yaml").expect("scenario");
        let s = Simulation::new(&p, s).expect("simulation");
        let runs = s.run_many(100, stream(25), 2, false);
        (Aggregate::of(&runs, false), runs)
    };
    let (flagger, runs) = model(include_str!("../../benches/blast-radius/c-flagger.yaml"));
    assert_eq!(flagger.rolled_back, 100, "{flagger:?}");
    let t = flagger.time_to_decision_seconds.p50.expect("decided");
    assert!((540.0..=720.0).contains(&t), "Flagger rolled back at {t} s");
    let errors = flagger.canary_errors.mean.expect("errors");
    assert!((50.0..=120.0).contains(&errors), "{errors} errors");
    // Halted at 5%: a passing check (at most 1 error in about 150 requests) is rare.
    let halted = runs.iter().filter(|r| r.steps_reached == 1).count();
    assert!(halted >= 90, "{halted} of 100 stayed at 5%");
    let (argo, _) = model(include_str!("../../benches/blast-radius/d-argo.yaml"));
    assert_eq!(argo.rolled_back, 0, "{argo:?}");
    assert_eq!(argo.promoted, 100, "{argo:?}");
}
