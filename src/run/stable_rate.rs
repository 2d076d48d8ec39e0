//! Whether the stable revision fails more often than a sequential tier's fixed p0: then the
//! test judges the canary against a rate its own stable revision does not meet, and a canary
//! as good as stable is likely rolled back. The run says so (the `Baseline` condition and a
//! rate-limited Warning Event); it never changes the decision. Pure.

use std::time::Duration;

use jiff::Timestamp;

use super::fmt_rate;
use crate::analysis::bound::shown_above;

/// The chance, over a whole run, that a stable revision failing at p0 or less is said to fail
/// more often: each sample's check spends `WARN_ALPHA / (k (k + 1))` of it.
pub const WARN_ALPHA: f64 = 0.01;

/// How often the warning is repeated while it holds.
pub const REMIND_EVERY: Duration = Duration::from_secs(3600);

/// What stable's counts since the canary started say about the tier's fixed p0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StableVsP0 {
    /// Stable's rate is above p0, and its counts show it: at p0, so many errors would have
    /// had a chance of at most `WARN_ALPHA / (k (k + 1))` at the run's k-th sample (the exact
    /// binomial tail, on counts divided by the dispersion of stable's errors). With that
    /// spending a stable revision at p0 is flagged in at most 1% of runs, however long.
    Above {
        rate: f64,
        p0: f64,
        requests: f64,
        errors: f64,
    },
    /// Stable's rate is at or below p0: any earlier warning no longer holds.
    AtOrBelow,
    /// Above p0, but too few requests yet to say so; nothing changes.
    Unshown,
}

/// Checks stable's cumulative `requests` and `errors` against `p0` at the run's `k`-th sample.
/// `dispersion` (at least 1) is stable's variance over mean of error counts: clumped errors
/// carry less evidence, so the counts are divided by it (the quasi-binomial correction).
pub fn stable_vs_p0(requests: f64, errors: f64, p0: f64, dispersion: f64, k: i64) -> StableVsP0 {
    if !(requests.is_finite() && errors.is_finite() && requests > 0.0 && errors >= 0.0) {
        return StableVsP0::Unshown;
    }
    let rate = errors.min(requests) / requests;
    if rate <= p0 {
        return StableVsP0::AtOrBelow;
    }
    let phi = if dispersion.is_finite() {
        dispersion.max(1.0)
    } else {
        1.0
    };
    let k = k.max(1) as f64;
    let alpha = WARN_ALPHA / (k * (k + 1.0));
    if shown_above(requests / phi, errors / phi, p0, alpha) {
        StableVsP0::Above {
            rate,
            p0,
            requests,
            errors,
        }
    } else {
        StableVsP0::Unshown
    }
}

/// The warning: what was measured, what it does to the test, and the two fixes.
pub fn message(rate: f64, p0: f64, requests: f64, errors: f64) -> String {
    format!(
        "the stable revision failed {} of its requests since the canary started ({requests:.0} requests, {errors:.0} errors), above this tier's fixed sequential.p0 of {}: the test judges the canary against a rate stable itself does not meet, so a canary as good as stable is likely rolled back. Set sequential.baseline: stable (the canary is then compared with stable in the same window), or raise sequential.p0 to at least {}",
        fmt_rate(rate),
        fmt_rate(p0),
        fmt_rate(rate)
    )
}

/// Whether the Warning Event is due: when the condition is newly set, then once every
/// [`REMIND_EVERY`] after it was set (the first sample past each whole multiple).
pub fn event_due(set_at: Option<Timestamp>, previous: Option<Timestamp>, now: Timestamp) -> bool {
    let Some(set_at) = set_at else {
        return true;
    };
    let periods = |t: Timestamp| {
        let secs = t.duration_since(set_at).as_secs().max(0) as u64;
        secs / REMIND_EVERY.as_secs()
    };
    match previous {
        Some(prev) => periods(now) > periods(prev),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_above_p0_only_when_its_counts_show_it() {
        use StableVsP0::*;
        let above = |r: f64, e: f64| Above {
            rate: e / r,
            p0: 0.001,
            requests: r,
            errors: e,
        };
        // (requests, errors, dispersion, k-th sample) -> verdict, for p0 = 0.1%
        let cases = [
            // 0.3% over 20,000 requests: plainly above.
            ((20_000.0, 60.0, 1.0, 1), above(20_000.0, 60.0)),
            // The same rate over 1,000 requests: 3 errors where 1 is expected; not shown.
            ((1_000.0, 3.0, 1.0, 1), Unshown),
            // At or below p0 clears.
            ((20_000.0, 20.0, 1.0, 1), AtOrBelow),
            ((20_000.0, 0.0, 1.0, 1), AtOrBelow),
            // Clumps of 3: the same counts carry a third of the evidence.
            ((20_000.0, 40.0, 3.0, 1), Unshown),
            ((200_000.0, 600.0, 3.0, 1), above(200_000.0, 600.0)),
            // Late in a run each look spends less: 40 errors in 20,000 shows it at the first
            // sample but not at the 100th.
            ((20_000.0, 40.0, 1.0, 1), above(20_000.0, 40.0)),
            ((20_000.0, 40.0, 1.0, 100), Unshown),
            // No requests, unusable counts: nothing said.
            ((0.0, 0.0, 1.0, 1), Unshown),
            ((f64::NAN, 1.0, 1.0, 1), Unshown),
            ((100.0, -1.0, 1.0, 1), Unshown),
            // A NaN dispersion counts as none.
            ((20_000.0, 60.0, f64::NAN, 1), above(20_000.0, 60.0)),
        ];
        for ((r, e, d, k), want) in cases {
            assert_eq!(stable_vs_p0(r, e, 0.001, d, k), want, "{r} {e} {d} {k}");
        }
    }

    /// A stable revision at exactly p0, checked at every one of 120 samples with growing
    /// counts: flagged in at most WARN_ALPHA of runs (the union bound), by Monte Carlo.
    #[test]
    fn a_stable_revision_at_p0_is_rarely_flagged_over_a_whole_run() {
        use rand::SeedableRng;
        use rand_distr::{Binomial, Distribution};
        let p0 = 0.001;
        let runs = 2_000;
        let mut rng = rand::rngs::StdRng::seed_from_u64(crate::fuzz::stream(16));
        let mut flagged = 0;
        let interval = Binomial::new(3_000, p0).expect("binomial");
        for _ in 0..runs {
            let (mut r, mut e) = (0.0, 0.0);
            for k in 1..=120 {
                // 3,000 stable requests per interval.
                r += 3_000.0;
                e += interval.sample(&mut rng) as f64;
                if matches!(stable_vs_p0(r, e, p0, 1.0, k), StableVsP0::Above { .. }) {
                    flagged += 1;
                    break;
                }
            }
        }
        let rate = f64::from(flagged) / f64::from(runs);
        assert!(rate <= WARN_ALPHA, "flagged {rate}");
    }

    #[test]
    fn the_event_is_rate_limited() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).expect("ts");
        // (set at, previous sample, now) -> due
        let cases = [
            (None, Some(t(0)), t(30), true),
            (None, None, t(30), true),
            (Some(t(0)), Some(t(0)), t(30), false),
            (Some(t(0)), Some(t(3570)), t(3600), true),
            (Some(t(0)), Some(t(3600)), t(3630), false),
            (Some(t(0)), Some(t(7190)), t(7220), true),
            (Some(t(0)), None, t(30), false),
        ];
        for (set, prev, now, want) in cases {
            assert_eq!(event_due(set, prev, now), want, "{set:?} {prev:?} {now:?}");
        }
    }

    #[test]
    fn the_message_names_the_rate_p0_and_the_fixes() {
        let m = message(0.0031, 0.001, 20_000.0, 62.0);
        for want in [
            "0.31%",
            "0.1%",
            "20000 requests, 62 errors",
            "baseline: stable",
            "raise sequential.p0",
        ] {
            assert!(m.contains(want), "{want} in {m}");
        }
    }
}
