//! The synthetic traffic model: requests arrive as a Poisson process at the scenario's rate,
//! each goes to the canary with the probability of its current share (a binomial split),
//! and fails with its revision's error rate (binomial again). Counts are drawn per segment
//! between scrapes (and between changes of share or error rate), so the totals are as noisy
//! as real traffic and reproducible from the seed.
//!
//! Prometheus sees the counters only when it scrapes them, every `scrapeInterval` with a
//! random phase per run; a query reads the counters as of the last scrape, so they are up
//! to one scrape interval stale. An `increase(...[w])` query returns the difference between
//! the last scrape and the last scrape at least `w` earlier (no extrapolation); the canary's
//! series exist at 0 from the moment its pods are ready, as they do for a fresh canary
//! Deployment.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};

use super::driver::{Counts, Source};
use super::scenario::Scenario;

/// Cumulative counters of both revisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub canary_requests: u64,
    pub canary_errors: u64,
    pub stable_requests: u64,
    pub stable_errors: u64,
}

impl Counters {
    fn minus(self, o: Counters) -> Counters {
        Counters {
            canary_requests: self.canary_requests.saturating_sub(o.canary_requests),
            canary_errors: self.canary_errors.saturating_sub(o.canary_errors),
            stable_requests: self.stable_requests.saturating_sub(o.stable_requests),
            stable_errors: self.stable_errors.saturating_sub(o.stable_errors),
        }
    }
}

/// One run's traffic: what was served (exactly) and what Prometheus scraped.
pub struct Traffic<'s> {
    scenario: &'s Scenario,
    rng: StdRng,
    /// Traffic has been drawn up to here (since the start of the run).
    drawn: Duration,
    next_scrape: Duration,
    /// What was really served so far.
    served: Counters,
    /// Scrapes, oldest first.
    scrapes: Vec<(Duration, Counters)>,
    canary_baseline: f64,
}

impl<'s> Traffic<'s> {
    /// A fresh run seeded with `seed`: the scrape phase and every draw follow from it.
    pub fn new(scenario: &'s Scenario, seed: u64) -> Traffic<'s> {
        let mut rng = StdRng::seed_from_u64(seed);
        let every = scenario.scrape_interval.as_millis().max(1) as u64;
        let phase = Duration::from_millis(rng.random_range(0..every));
        Traffic {
            scenario,
            rng,
            drawn: Duration::ZERO,
            next_scrape: phase,
            served: Counters::default(),
            scrapes: Vec::with_capacity(256),
            canary_baseline: 0.0,
        }
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
        self.served.canary_requests += canary;
        let stable_rate = self.scenario.stable.rate_at(self.drawn);
        self.served.canary_errors += self.errors(canary, canary_rate);
        self.served.stable_requests += stable;
        self.served.stable_errors += self.errors(stable, stable_rate);
        self.canary_baseline += canary as f64 * stable_rate;
    }

    /// Errors among `n` requests at `rate`, in clumps of the scenario's `errorClump`.
    fn errors(&mut self, n: u64, rate: f64) -> u64 {
        let clump = u64::from(self.scenario.error_clump.max(1));
        (clump * binomial(&mut self.rng, n, rate / clump as f64)).min(n)
    }

    /// The errors the canary would have served at stable's error rate of the moment.
    pub fn canary_baseline(&self) -> f64 {
        self.canary_baseline
    }

    /// The counters Prometheus holds as of `t`: those of the last scrape at or before `t`.
    fn scraped_at(&self, t: Duration) -> Counters {
        let i = self.scrapes.partition_point(|(at, _)| *at <= t);
        i.checked_sub(1)
            .and_then(|i| self.scrapes.get(i))
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }
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
        let delta = self
            .scraped_at(now)
            .minus(self.scraped_at(now.saturating_sub(window)));
        Counts::Values {
            requests: delta.canary_requests as f64,
            errors: delta.canary_errors as f64,
            stable: stable.then_some((delta.stable_requests as f64, delta.stable_errors as f64)),
        }
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
}
