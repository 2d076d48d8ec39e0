//! The synthetic traffic model: requests arrive as a Poisson process at the scenario's rate,
//! each goes to the canary with the probability of its current share (a binomial split),
//! and fails with its revision's error rate. Arrivals and the split are drawn per segment
//! between scrapes (and between changes of share or error rate), so the totals are as noisy
//! as real traffic and reproducible from the seed.
//!
//! Failures are placed on each revision's requests by their index ([`ErrorStream`]), from a
//! stream of their own: the n-th request the canary serves fails or not whatever share
//! schedule brought it there. Two policies run with the same seed therefore serve their
//! canary the same failures (common random numbers), so a benchmark compares their decisions
//! on the same luck, not on different draws.
//!
//! Prometheus sees the counters only when it scrapes them, every `scrapeInterval` with a
//! random phase per run; a query reads the counters as of the last scrape, so they are up
//! to one scrape interval stale. By default an `increase(...[w])` query returns the exact
//! difference between the last scrape and the last scrape at least `w` earlier, and the
//! canary's series exist at 0 from the moment its pods are ready. The scenario can make it
//! as Prometheus is: `extrapolate` (increase() from the samples inside the range, stretched
//! to its edges: [`extrapolated_increase`]) and `lazyErrorSeries` (the canary's error series
//! appears at its first error, so those before its first scrape are never counted).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};

use super::driver::{Counts, Source};
use super::scenario::Scenario;
use crate::analysis::request::{CheckValue, LatencyCounts, Slow};

/// Cumulative counters of both revisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub stable_requests: u64,
    pub stable_errors: u64,
    /// Requests slower than the tier's latency objective (0 without one).
    pub canary_slow: u64,
    pub stable_slow: u64,
}

/// One run's traffic: what was served (exactly) and what Prometheus scraped.
pub struct Traffic<'s> {
    scenario: &'s Scenario,
    /// Arrivals, the canary/stable split and the scrape phase.
    rng: StdRng,
    canary_failures: ErrorStream,
    stable_failures: ErrorStream,
    /// The tier's latency objective, with each revision's slow requests placed by index as
    /// its failures are, from streams of their own (`None`: no objective).
    slow: Option<SlowStreams>,
    /// The policy's checks, by name.
    checks: Vec<String>,
    /// The tier has a latency objective: the queries answer its histogram.
    answer_latency: bool,
    /// Traffic has been drawn up to here (since the start of the run).
    drawn: Duration,
    next_scrape: Duration,
    /// What was really served so far.
    served: Counters,
    /// Scrapes, oldest first.
    scrapes: Vec<(Duration, Counters)>,
    canary_baseline: f64,
    /// The policy's errors query answers 0 when it has no series (`or vector(0)`).
    errors_or_zero: bool,
}

impl<'s> Traffic<'s> {
    /// A fresh run seeded with `seed`: the scrape phase and every draw follow from it.
    pub fn new(scenario: &'s Scenario, seed: u64) -> Traffic<'s> {
        let mut rng = StdRng::seed_from_u64(seed);
        let every = scenario.scrape_interval.as_millis().max(1) as u64;
        let phase = Duration::from_millis(rng.random_range(0..every));
        let clump = u64::from(scenario.error_clump.max(1));
        Traffic {
            scenario,
            rng,
            canary_failures: ErrorStream::new(
                substream(seed, 1),
                scenario.canary.max_rate(),
                clump,
            ),
            stable_failures: ErrorStream::new(
                substream(seed, 2),
                scenario.stable.max_rate(),
                clump,
            ),
            drawn: Duration::ZERO,
            next_scrape: phase,
            served: Counters::default(),
            scrapes: Vec::with_capacity(256),
            canary_baseline: 0.0,
            errors_or_zero: false,
            slow: None,
            checks: Vec::new(),
            answer_latency: false,
        }
    }

    /// Counts the requests slower than `objective` (a tier's latency objective, else the
    /// scenario's `slowAbove`): each revision's share of them follows from its median latency
    /// and the scenario's spread. Only a tier's objective is answered to the queries.
    pub fn latency_objective(mut self, objective: Option<Duration>, seed: u64) -> Traffic<'s> {
        self.answer_latency = objective.is_some();
        self.slow = objective.or(self.scenario.slow_above).map(|o| {
            let share =
                |median| super::scenario::slow_share(median, self.scenario.latency_spread, o);
            let (canary, stable) = (
                share(self.scenario.canary.latency),
                share(self.scenario.stable.latency),
            );
            SlowStreams {
                canary: ErrorStream::new(substream(seed, 3), canary, 1),
                stable: ErrorStream::new(substream(seed, 4), stable, 1),
                canary_share: canary,
                stable_share: stable,
            }
        });
        self
    }

    /// Stable's share of slow requests (0 without an objective).
    pub fn stable_slow_share(&self) -> f64 {
        self.slow.as_ref().map_or(0.0, |s| s.stable_share)
    }

    /// The policy's checks, whose values the scenario's `checks` give.
    pub fn checks(mut self, names: Vec<String>) -> Traffic<'s> {
        self.checks = names;
        self
    }

    /// Whether the errors query falls back to 0 when it has no series (`... or vector(0)`):
    /// with `lazyErrorSeries`, the difference between no data and 0 errors.
    pub fn errors_or_zero(mut self, yes: bool) -> Traffic<'s> {
        self.errors_or_zero = yes;
        self
    }

    /// What was really served so far (not what Prometheus saw).
    pub fn served(&self) -> Counters {
        self.served
    }

    fn draw(&mut self, dt: Duration, share: f64, canary_rate: f64) {
        let lambda = self.scenario.rps * dt.as_secs_f64();
        let total = poisson(&mut self.rng, lambda);
        let canary = binomial(&mut self.rng, total, share);
        let stable = total - canary;
        let stable_rate = self.scenario.stable.rate_at(self.drawn);
        if let Some(slow) = &mut self.slow {
            self.served.canary_slow +=
                slow.canary
                    .take(self.served.canary_requests, canary, slow.canary_share);
            self.served.stable_slow +=
                slow.stable
                    .take(self.served.stable_requests, stable, slow.stable_share);
        }
        self.served.canary_errors +=
            self.canary_failures
                .take(self.served.canary_requests, canary, canary_rate);
        self.served.canary_requests += canary;
        self.served.stable_errors +=
            self.stable_failures
                .take(self.served.stable_requests, stable, stable_rate);
        self.served.stable_requests += stable;
        self.canary_baseline += canary as f64 * stable_rate;
    }

    /// The errors the canary would have served at stable's error rate of the moment.
    pub fn canary_baseline(&self) -> f64 {
        self.canary_baseline
    }

    /// `increase()` of one series over `(now - window, now]`, as the scenario's Prometheus
    /// computes it; `None` when the series has no answer (it does not exist, or has fewer
    /// than two samples in the range). `value` is the series at a scrape (`None` while it
    /// does not exist yet); `fresh` says it starts at 0 within the run (the canary's), so
    /// extrapolation stops at its zero.
    fn increase(
        &self,
        now: Duration,
        window: Duration,
        value: impl Fn(&Counters) -> Option<u64>,
        fresh: bool,
    ) -> Option<f64> {
        let from = now.saturating_sub(window);
        let upto = self.scrapes.partition_point(|(at, _)| *at <= now);
        let before = self.scrapes.partition_point(|(at, _)| *at <= from);
        let inside = self.scrapes.get(before..upto).unwrap_or_default();
        if self.scenario.extrapolate {
            let points: Vec<(f64, f64)> = inside
                .iter()
                .filter_map(|(at, c)| value(c).map(|v| (at.as_secs_f64(), v as f64)))
                .collect();
            return extrapolated_increase(&points, from.as_secs_f64(), now.as_secs_f64(), fresh);
        }
        // The exact difference: from the last scrape at or before the range's start (0 before
        // any scrape), or, for a series created inside the range, from its first sample.
        let end = self
            .scrapes
            .get(..upto)
            .and_then(|s| s.last())
            .map_or(Some(0), |(_, c)| value(c))?;
        let start = match before.checked_sub(1).and_then(|i| self.scrapes.get(i)) {
            None if value(&Counters::default()).is_some() => Some(0),
            Some((_, c)) if value(c).is_some() => value(c),
            _ => {
                // Created inside the range: its first sample is the start, and a series with
                // one sample has no increase.
                let mut seen = inside.iter().filter_map(|(_, c)| value(c));
                let first = seen.next()?;
                seen.next()?;
                Some(first)
            }
        }?;
        Some(end.saturating_sub(start) as f64)
    }
}

/// Prometheus' `increase()` of a counter over the range `(start, end]` from its samples
/// `(time, value)` in the range, oldest first (promql `extrapolatedRate`, without counter
/// resets: the simulated counters never reset). Fewer than two samples: no result. The
/// difference between the first and last sample is stretched to the range's edges when a
/// sample lies within 1.1 average sample intervals of the edge, else by half an interval;
/// for a `fresh` counter (one that started at 0 inside the run) never past the point where
/// the line through the samples reaches 0.
pub fn extrapolated_increase(
    points: &[(f64, f64)],
    start: f64,
    end: f64,
    fresh: bool,
) -> Option<f64> {
    let (&(t1, v1), &(t2, v2)) = (points.first()?, points.last()?);
    if points.len() < 2 || t2 <= t1 {
        return None;
    }
    let result = v2 - v1;
    let sampled = t2 - t1;
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    let mut to_start = t1 - start;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    // Prometheus applies this to every counter; a stable revision's counter has been
    // counting long before the run, so its zero point is far away (`fresh` is false).
    if fresh && result > 0.0 && v1 >= 0.0 {
        to_start = to_start.min(sampled * (v1 / result));
    }
    let mut to_end = end - t2;
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    Some(result * (sampled + to_start + to_end) / sampled)
}

impl Source for Traffic<'_> {
    fn advance(&mut self, to: Duration, share: f64) {
        let share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        while self.drawn < to {
            let mut end = to.min(self.next_scrape.max(self.drawn));
            for change in [
                self.scenario.canary.next_change(self.drawn),
                self.scenario.stable.next_change(self.drawn),
            ]
            .into_iter()
            .flatten()
            {
                end = end.min(change);
            }
            if end > self.drawn {
                let rate = self.scenario.canary.rate_at(self.drawn);
                self.draw(end - self.drawn, share, rate);
                self.drawn = end;
            }
            if self.drawn >= self.next_scrape {
                self.scrapes.push((self.next_scrape, self.served));
                self.next_scrape += self.scenario.scrape_interval;
            }
        }
        // A scrape due exactly now is taken before anyone reads.
        if self.drawn >= self.next_scrape {
            self.scrapes.push((self.next_scrape, self.served));
            self.next_scrape += self.scenario.scrape_interval;
        }
    }

    fn counts(&mut self, now: Duration, window: Duration, stable: bool) -> Counts {
        if self.scenario.no_data_at(now) {
            return Counts::NoData(
                "the scenario's noData window: the queries returned an empty vector".into(),
            );
        }
        let lazy = self.scenario.lazy_error_series;
        let requests = self.increase(now, window, |c| Some(c.canary_requests), true);
        let errors = self.increase(
            now,
            window,
            |c| (!lazy || c.canary_errors > 0).then_some(c.canary_errors),
            true,
        );
        let Some(requests) = requests else {
            return Counts::NoData(
                "the canary's requests series has fewer than two samples in the range".into(),
            );
        };
        let errors = match errors {
            Some(e) => e,
            None if self.errors_or_zero => 0.0,
            None => {
                return Counts::NoData(
                    "the canary's errors series does not exist yet (created at its first error) or has fewer than two samples in the range, and the query has no `or vector(0)`".into(),
                );
            }
        };
        // Stable's requests, once for its errors and its slow requests alike.
        let stable_requests = stable
            .then(|| self.increase(now, window, |c| Some(c.stable_requests), false))
            .flatten();
        let stable_counts = || {
            let r = stable_requests?;
            let e = self.increase(now, window, |c| Some(c.stable_errors), false)?;
            Some((r, e))
        };
        let latency = self.slow.as_ref().filter(|_| self.answer_latency).map(|_| {
            let canary_slow = self.increase(now, window, |c| Some(c.canary_slow), true);
            let stable_slow = || {
                let r = stable_requests?;
                let s = self.increase(now, window, |c| Some(c.stable_slow), false)?;
                Some(Slow {
                    requests: r,
                    slow: s,
                })
            };
            match canary_slow {
                Some(slow) => LatencyCounts::Values {
                    canary: Slow { requests, slow },
                    stable: if stable { stable_slow() } else { None },
                },
                None => LatencyCounts::NoData(
                    "the canary's latency histogram has fewer than two samples in the range".into(),
                ),
            }
        });
        let checks = self
            .checks
            .iter()
            .map(|name| CheckValue {
                name: name.clone(),
                value: match self.scenario.checks.get(name) {
                    None => Err(format!(
                        "the scenario gives the check {name} no value (scenario checks)"
                    )),
                    // Like a query over the canary's own series: nothing before it served.
                    Some(_) if requests <= 0.0 => Err(format!(
                        "the check {name}'s query returned an empty vector (the canary served no request in the window)"
                    )),
                    Some(v) => Ok(v.value(
                        self.scenario.canary.latency,
                        self.scenario.latency_spread,
                    )),
                },
            })
            .collect();
        Counts::Values {
            requests,
            errors,
            stable: if stable { stable_counts() } else { None },
            latency,
            checks,
        }
    }
}

/// The slow requests' streams and each revision's share of slow requests.
struct SlowStreams {
    canary: ErrorStream,
    stable: ErrorStream,
    canary_share: f64,
    stable_share: f64,
}

/// The seed of the `k`-th independent stream of a run seeded with `seed` (SplitMix64's
/// finaliser, so nearby seeds give unrelated streams).
fn substream(seed: u64, k: u64) -> u64 {
    let mut z = seed
        .wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One revision's failures, placed on its requests by index. Candidate failures (clumps of
/// `clump` errors) fall on the requests of a Bernoulli process at the highest rate the
/// revision's schedule reaches, divided by `clump`; each candidate is kept with probability
/// `rate / max` for the rate of the moment (thinning), so the errors among any `n` requests
/// are distributed as `clump × Binomial(n, rate / clump)`, capped at `n`. Every candidate
/// draws its mark whether or not it is needed, so the stream's state depends only on how many
/// requests the revision served.
struct ErrorStream {
    rng: StdRng,
    /// Per-request probability of a candidate (`max / clump`).
    p: f64,
    max: f64,
    clump: u64,
    /// The 1-based index of the request the next candidate falls on; `u64::MAX` for none.
    next: u64,
}

impl ErrorStream {
    fn new(seed: u64, max: f64, clump: u64) -> ErrorStream {
        let clump = clump.max(1);
        let p = if max.is_finite() { max.max(0.0) } else { 0.0 } / clump as f64;
        let mut s = ErrorStream {
            rng: StdRng::seed_from_u64(seed),
            p,
            max,
            clump,
            next: 0,
        };
        s.next = s.gap();
        s
    }

    /// Requests until the next candidate, at least 1 (geometric); `u64::MAX` when none come.
    fn gap(&mut self) -> u64 {
        if self.p <= 0.0 {
            return u64::MAX;
        }
        if self.p >= 1.0 {
            return 1;
        }
        let u: f64 = 1.0 - self.rng.random::<f64>(); // in (0, 1]
        let g = (u.ln() / (1.0 - self.p).ln()).floor();
        if g.is_finite() && g < 1e18 {
            1 + g as u64
        } else {
            u64::MAX
        }
    }

    /// Errors among requests `served + 1 ..= served + n`, at `rate` for all of them.
    fn take(&mut self, served: u64, n: u64, rate: f64) -> u64 {
        let end = served.saturating_add(n);
        let keep = if self.max > 0.0 { rate / self.max } else { 0.0 };
        let mut errors = 0u64;
        while self.next <= end {
            let mark: f64 = self.rng.random();
            if mark < keep {
                errors += self.clump;
            }
            self.next = self.next.saturating_add(self.gap());
        }
        errors.min(n)
    }
}

/// Draws from Binomial(n, p); `p` at or outside the ends gives 0 or n.
fn binomial<R: Rng>(rng: &mut R, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).map_or(0, |d| d.sample(rng))
}

/// Draws from Poisson(lambda); a non-positive or non-finite lambda gives 0.
fn poisson<R: Rng>(rng: &mut R, lambda: f64) -> u64 {
    if !lambda.is_finite() || lambda <= 0.0 {
        return 0;
    }
    let lambda = lambda.min(Poisson::<f64>::MAX_LAMBDA);
    Poisson::new(lambda).map_or(0, |d| d.sample(rng) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::stream;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text, "s.yaml").expect("scenario")
    }

    #[test]
    fn queries_see_the_counters_of_the_last_scrape() {
        let s = scenario(
            "rps: 100\nscrapeInterval: 10s\ncanary: {errorRate: 50%}\nstable: {errorRate: 0%}\n",
        );
        let mut t = Traffic::new(&s, stream(7));
        t.advance(Duration::from_secs(60), 0.5);
        let served = t.served();
        assert!(
            served.canary_requests > 2_500 && served.canary_requests < 3_500,
            "{served:?}"
        );
        assert_eq!(served.stable_errors, 0);
        // At 60 s the last scrape is at most 10 s old: the query sees less than was served.
        let Counts::Values {
            requests,
            errors,
            stable,
            ..
        } = t.counts(Duration::from_secs(60), Duration::from_secs(3600), true)
        else {
            panic!("values expected");
        };
        assert!(requests <= served.canary_requests as f64);
        assert!(requests >= served.canary_requests as f64 - 10.0 * 50.0 * 2.0);
        assert!(errors <= requests);
        assert!(stable.is_some_and(|(r, e)| r > 0.0 && e == 0.0));
        // A 10 s window sees one scrape interval's worth.
        let Counts::Values {
            requests: last10, ..
        } = t.counts(Duration::from_secs(60), Duration::from_secs(10), false)
        else {
            panic!("values expected");
        };
        assert!(last10 > 300.0 && last10 < 700.0, "{last10}");
    }

    #[test]
    fn the_same_seed_draws_the_same_traffic() {
        let s = scenario(
            "rps: 1000\ncanary: {schedule: [{at: 0s, errorRate: 0.1%}, {at: 30s, errorRate: 5%}]}\n",
        );
        let run = |seed| {
            let mut t = Traffic::new(&s, seed);
            t.advance(Duration::from_secs(20), 0.1);
            t.advance(Duration::from_secs(90), 0.3);
            t.served()
        };
        assert_eq!(run(stream(3)), run(stream(3)));
        assert_ne!(run(stream(3)), run(stream(4)));
        // The schedule switches the canary's error rate at 30 s.
        let c = run(stream(5));
        let bad_requests = 0.3 * 1000.0 * 60.0;
        assert!(c.canary_errors as f64 > 0.8 * 0.05 * bad_requests, "{c:?}");
    }

    /// Common random numbers: the failures fall on the same requests however the requests
    /// are split into segments, so two share schedules serving the canary the same number of
    /// requests serve it the same failures.
    #[test]
    fn failures_depend_on_the_request_index_only() {
        for (max, clump) in [(0.01, 1), (0.05, 3), (0.5, 1)] {
            let whole = ErrorStream::new(stream(9), max, clump).take(0, 10_000, max);
            let mut parts = ErrorStream::new(stream(9), max, clump);
            let mut served = 0;
            let mut pieces = 0;
            for n in [1, 0, 999, 3_000, 17, 5_983] {
                pieces += parts.take(served, n, max);
                served += n;
            }
            assert_eq!(served, 10_000);
            // Clumps are capped at a segment's end, so only an unclumped stream is exact.
            if clump == 1 {
                assert_eq!(whole, pieces, "max {max}");
            } else {
                assert!(whole.abs_diff(pieces) <= 6 * clump, "{whole} vs {pieces}");
            }
            // Another stream draws other failures.
            let other = ErrorStream::new(stream(10), max, clump).take(0, 10_000, max);
            assert_ne!(whole, other, "max {max}");
        }
    }

    /// Table: the mean number of errors per request, over 200 000 requests (within 5
    /// standard errors of the rate), including a rate below the schedule's highest (thinning)
    /// and clumps (errors come in multiples of the clump).
    #[test]
    fn failures_come_at_the_rate_of_the_moment() {
        let n = 200_000u64;
        // (highest rate, clump, rate now)
        let cases = [
            (0.001, 1, 0.001),
            (0.01, 1, 0.001),
            (0.02, 3, 0.02),
            (0.05, 3, 0.01),
            (0.5, 1, 0.5),
            (1.0, 1, 1.0),
            (0.01, 1, 0.0),
            (0.0, 1, 0.0),
        ];
        for (max, clump, rate) in cases {
            let mut s = ErrorStream::new(stream(4), max, clump);
            let mut errors = 0;
            for i in 0..100 {
                let e = s.take(i * n / 100, n / 100, rate);
                assert_eq!(e % clump, 0, "clumps of {clump}");
                errors += e;
            }
            let mean = rate * n as f64;
            let sd = (clump as f64 * mean * (1.0 - rate / clump as f64)).sqrt();
            assert!(
                (errors as f64 - mean).abs() <= 5.0 * sd + 1e-9,
                "max {max} clump {clump} rate {rate}: {errors} vs {mean}"
            );
        }
    }

    #[test]
    fn no_data_windows_return_nothing() {
        let s = scenario("rps: 10\ncanary: {errorRate: 1%}\nnoData: [{from: 1m, to: 2m}]\n");
        let mut t = Traffic::new(&s, stream(1));
        t.advance(Duration::from_secs(90), 0.5);
        assert!(matches!(
            t.counts(Duration::from_secs(90), Duration::from_secs(90), false),
            Counts::NoData(_)
        ));
        t.advance(Duration::from_secs(120), 0.5);
        assert!(matches!(
            t.counts(Duration::from_secs(120), Duration::from_secs(120), false),
            Counts::Values { .. }
        ));
    }

    /// A run whose scrapes are given: (seconds, [canary requests, canary errors, stable
    /// requests, stable errors]).
    fn scraped<'s>(s: &'s Scenario, scrapes: &[(u64, [u64; 4])]) -> Traffic<'s> {
        let mut t = Traffic::new(s, stream(1));
        t.scrapes = scrapes
            .iter()
            .map(|(at, [cr, ce, sr, se])| {
                let c = Counters {
                    canary_requests: *cr,
                    canary_errors: *ce,
                    stable_requests: *sr,
                    stable_errors: *se,
                    ..Counters::default()
                };
                (Duration::from_secs(*at), c)
            })
            .collect();
        t
    }

    #[test]
    fn prometheus_extrapolation_by_hand() {
        // (samples, range start, range end, fresh) -> increase
        type Case = (&'static [(f64, f64)], f64, f64, bool, Option<f64>);
        let cases: [Case; 8] = [
            // Samples up to the range's end, one interval from its start: stretched to both.
            (
                &[(10.0, 100.0), (20.0, 200.0), (30.0, 300.0)],
                0.0,
                30.0,
                false,
                Some(300.0),
            ),
            // A fresh counter at 10/s since 0: its zero point is the range's start anyway.
            (
                &[(10.0, 100.0), (20.0, 200.0), (30.0, 300.0)],
                0.0,
                30.0,
                true,
                Some(300.0),
            ),
            // A fresh counter that started at 5 s: never extrapolated past its zero.
            (
                &[(10.0, 50.0), (20.0, 150.0), (30.0, 250.0)],
                0.0,
                30.0,
                true,
                Some(250.0),
            ),
            // ... while an old one (stable's) is stretched to the range's start.
            (
                &[(10.0, 50.0), (20.0, 150.0), (30.0, 250.0)],
                0.0,
                30.0,
                false,
                Some(300.0),
            ),
            // The range's end 5 s after the last sample: stretched to it (reads more than was
            // counted at any scrape: issue 21's 81 requests read as 101).
            (
                &[(15.0, 0.0), (30.0, 150.0), (45.0, 300.0)],
                0.0,
                50.0,
                true,
                Some(350.0),
            ),
            // Samples far from the start: only half an interval before the first.
            (
                &[(40.0, 1000.0), (50.0, 1100.0), (60.0, 1200.0)],
                0.0,
                60.0,
                false,
                Some(250.0),
            ),
            // One sample, or none: no result.
            (&[(10.0, 100.0)], 0.0, 30.0, false, None),
            (&[], 0.0, 30.0, false, None),
        ];
        for (points, start, end, fresh, want) in cases {
            let got = extrapolated_increase(points, start, end, fresh);
            assert_eq!(got, want, "{points:?} over ({start}, {end}] fresh {fresh}");
        }
    }

    #[test]
    fn what_the_queries_see_with_prometheus_unkindness() {
        // Scrapes every 15 s; the canary serves 10 requests/s, its first error between 30 s
        // and 45 s (two of them), a third before 60 s. Stable: 90/s, 0.1%.
        let scrapes = [
            (15, [150, 0, 1350, 1]),
            (30, [300, 0, 2700, 3]),
            (45, [450, 2, 4050, 4]),
            (60, [600, 3, 5400, 5]),
        ];
        let doc = |extra: &str| {
            scenario(&format!(
                "rps: 100\nscrapeInterval: 15s\ncanary: {{errorRate: 1%}}\n{extra}"
            ))
        };
        type Want = Option<(f64, f64, Option<(f64, f64)>)>;
        // (scenario fields, `or vector(0)`, query time, range) -> (requests, errors, stable)
        let cases: [(&str, bool, u64, u64, Want); 9] = [
            // Exact differences between scrapes (the default).
            ("", false, 60, 60, Some((600.0, 3.0, Some((5400.0, 5.0))))),
            ("", false, 50, 50, Some((450.0, 2.0, Some((4050.0, 4.0))))),
            // The error series created at the first error: the two before its first scrape
            // are never counted.
            (
                "lazyErrorSeries: true",
                false,
                60,
                60,
                Some((600.0, 1.0, Some((5400.0, 5.0)))),
            ),
            // One sample of it yet: no series in the answer, so no data...
            ("lazyErrorSeries: true", false, 50, 50, None),
            // ... unless the query falls back to 0.
            (
                "lazyErrorSeries: true",
                true,
                50,
                50,
                Some((450.0, 0.0, Some((4050.0, 4.0)))),
            ),
            // A range starting after the series exists: nothing missed within it.
            (
                "lazyErrorSeries: true",
                false,
                60,
                10,
                Some((150.0, 1.0, Some((1350.0, 1.0)))),
            ),
            // Extrapolated: the canary's requests to its zero at 0 s and to the range's end;
            // stable's to the range's start (it counted before the run).
            (
                "extrapolate: true",
                false,
                60,
                60,
                Some((600.0, 3.0, Some((5400.0, 16.0 / 3.0)))),
            ),
            (
                "extrapolate: true",
                false,
                65,
                65,
                Some((650.0, 3.0 * 50.0 / 45.0, Some((5850.0, 4.0 * 65.0 / 45.0)))),
            ),
            // Both: the lazy series' two samples, stretched half an interval back.
            (
                "extrapolate: true\nlazyErrorSeries: true",
                false,
                60,
                60,
                Some((600.0, 1.5, Some((5400.0, 16.0 / 3.0)))),
            ),
        ];
        for (extra, or_zero, now, range, want) in cases {
            let s = doc(extra);
            let mut t = scraped(&s, &scrapes).errors_or_zero(or_zero);
            let got = t.counts(Duration::from_secs(now), Duration::from_secs(range), true);
            let case = format!("{extra:?} or-zero {or_zero} at {now}s over {range}s");
            match (got, want) {
                (Counts::NoData(_), None) => {}
                (
                    Counts::Values {
                        requests,
                        errors,
                        stable,
                        ..
                    },
                    Some((r, e, st)),
                ) => {
                    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
                    assert!(
                        close(requests, r) && close(errors, e),
                        "{case}: {requests} {errors}"
                    );
                    match (stable, st) {
                        (Some((a, b)), Some((c, d))) => {
                            assert!(close(a, c) && close(b, d), "{case}: stable {a} {b}")
                        }
                        (a, b) => assert_eq!(a, b, "{case}"),
                    }
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }
}
