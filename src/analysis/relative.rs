//! The canary against the stable revision, within the same window: of the errors both
//! revisions served, how many were the canary's, given its share of the requests. Under "the
//! canary fails like stable" each error is the canary's with probability equal to that share,
//! whatever the error rate is doing, so an incident that hits both revisions moves the
//! statistic nowhere. Also: how a run's repeated tests share one false-rollback budget.

use super::decision::{DecisionError, SequentialOutcome, SequentialVerdict, Sprt};

/// The k-th test of a run (k from 1) may roll back a good canary with probability
/// `alpha / (k (k + 1))`: the sum over every k is `alpha`, so restarting the test at each
/// slice and at each acceptance keeps the run's false-rollback rate within `alpha` by the
/// union bound, and the price of the k-th restart is only `ln(k (k + 1))` nats of boundary.
pub fn spent_alpha(alpha: f64, k: i32) -> f64 {
    let k = f64::from(k.max(1));
    alpha / (k * (k + 1.0))
}

/// Wald's SPRT on the conditional binomial: given `E` errors in a window, the canary's count
/// `K` is Binomial(E, π) where π is its share of the window's requests if it fails like stable
/// (H0), and `ρπ / (ρπ + 1 − π)` if it fails `ρ` times as often (H1), `ρ = p1 / p0` from the
/// tier. The log-likelihood ratio is `K ln(π1/π0) + S ln((1−π1)/(1−π0))` with `S` stable's
/// errors.
///
/// Two adjustments:
/// * a floor: stable's errors count as at least `p0` times its requests, so a stable revision
///   quieter than `p0` never makes the test stricter than the configured fixed test (the
///   extra errors only pull the statistic down, so the false-rollback bound still holds);
/// * a dispersion allowance: errors that come in clumps (retries, one user's burst) carry less
///   evidence than as many independent errors; the statistic is divided by the dispersion
///   (variance over mean of error counts), the quasi-likelihood correction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeSprt {
    /// The configured good rate, the floor of stable's measured rate.
    pub p0: f64,
    /// How many times stable's rate a bad canary fails (`p1 / p0`), above 1.
    pub ratio: f64,
    pub alpha: f64,
    pub beta: f64,
    /// Variance over mean of error counts; 1 for independent errors.
    pub dispersion: f64,
}

impl RelativeSprt {
    /// Validates the pair through [`Sprt::new`] (so the same messages name the same fields).
    ///
    /// # Errors
    /// A [`DecisionError`] naming the first parameter out of range.
    pub fn new(
        p0: f64,
        p1: f64,
        alpha: f64,
        beta: f64,
        dispersion: f64,
    ) -> Result<Self, DecisionError> {
        Sprt::new(p0, p1, alpha, beta)?;
        Ok(RelativeSprt {
            p0,
            ratio: p1 / p0,
            alpha,
            beta,
            dispersion: if dispersion.is_finite() && dispersion >= 1.0 {
                dispersion
            } else {
                1.0
            },
        })
    }

    /// Rollback boundary `ln((1 − beta) / alpha)`.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// Accept boundary `ln(beta / (1 − alpha))`.
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    /// The log-likelihood ratio over one window: canary `(n, k)` and stable `(m, s)` requests
    /// and errors. 0 when either revision served nothing (no comparison is possible); NaN for
    /// unusable counts.
    pub fn llr(&self, n: f64, k: f64, m: f64, s: f64) -> f64 {
        if [n, k, m, s].iter().any(|x| !x.is_finite() || *x < 0.0) {
            return f64::NAN;
        }
        if n <= 0.0 || m <= 0.0 {
            return 0.0;
        }
        let k = k.min(n);
        let s = s.min(m).max(self.p0 * m);
        let pi0 = n / (n + m);
        let pi1 = self.ratio * pi0 / (self.ratio * pi0 + 1.0 - pi0);
        (k * (pi1 / pi0).ln() + s * ((1.0 - pi1) / (1.0 - pi0)).ln()) / self.dispersion
    }

    /// Evaluates the test over one window.
    pub fn decide(&self, n: f64, k: f64, m: f64, s: f64) -> SequentialOutcome {
        let (upper, lower) = (self.upper(), self.lower());
        let statistic = self.llr(n, k, m, s);
        let verdict = if statistic.is_nan() {
            SequentialVerdict::Invalid
        } else if statistic >= upper {
            SequentialVerdict::Rollback
        } else if statistic <= lower {
            SequentialVerdict::AcceptGood
        } else {
            SequentialVerdict::Continue
        };
        SequentialOutcome {
            statistic,
            upper,
            lower: Some(lower),
            verdict,
        }
    }
}

/// Fewer intervals than this are too few to estimate the dispersion from.
pub const MIN_INTERVALS: i32 = 5;

/// The dispersion assumed until [`MIN_INTERVALS`] intervals were seen: errors in clumps of
/// three (retries) are common, and a canary's first clump must not roll it back before
/// stable's counts have shown whether errors clump. Measured cost: a canary failing 10x from
/// the start at 1,000 requests/s serves a few more errors before its rollback
/// (docs/analysis/simulate.md, "Decisions away from the design point").
pub const ASSUMED_DISPERSION: f64 = 3.0;

/// The standard normal quantile of the confidence the dispersion is taken at (80%, one-sided).
const DISPERSION_Z: f64 = 0.8416;

/// Dispersion of stable's error counts over the run's intervals, taken at its upper 80%
/// confidence bound: Pearson's statistic `X² = Q / p̂ − S` (with `Q = Σ s_i² / m_i`,
/// `S = Σ s_i`, `p̂ = S / Σ m_i`) over the lower 20% quantile of the chi-square distribution
/// with `I − 1` degrees of freedom (Wilson and Hilferty's approximation), for `I` intervals;
/// floored at 1. The point estimate `X² / (I − 1)` is as often too low as too high, and a
/// low one lets a healthy canary's first clump roll it back (2% of runs at 1,000 requests/s
/// with errors in clumps of 3); the bound is too low in one run in five, and then by less.
/// It tends to the point estimate as intervals accumulate (1.19x it after 60, 1.09x after 200).
/// [`ASSUMED_DISPERSION`] with fewer than [`MIN_INTERVALS`] intervals; 1 when stable served
/// no errors (nothing clumps).
pub fn dispersion(intervals: i32, squares: f64, requests: f64, errors: f64) -> f64 {
    if intervals < MIN_INTERVALS {
        return ASSUMED_DISPERSION;
    }
    if !(errors > 0.0 && requests > 0.0 && squares.is_finite()) {
        return 1.0;
    }
    let p = errors / requests;
    let x2 = squares / p - errors;
    (x2 / chi_square_lower(f64::from(intervals - 1), DISPERSION_Z)).max(1.0)
}

/// The chi-square quantile with `nu` degrees of freedom `z` standard deviations below the
/// median, by Wilson and Hilferty's cube-root normal approximation (within 1% of the exact
/// quantile from 4 degrees of freedom at the 20% point).
fn chi_square_lower(nu: f64, z: f64) -> f64 {
    let c = 2.0 / (9.0 * nu);
    nu * (1.0 - c - z * c.sqrt()).max(0.05).powi(3)
}

/// [`dispersion`] of a list of `(requests, errors)` intervals.
pub fn dispersion_of(intervals: &[(f64, f64)]) -> f64 {
    let used: Vec<&(f64, f64)> = intervals
        .iter()
        .filter(|(m, s)| m.is_finite() && s.is_finite() && *m > 0.0 && *s >= 0.0)
        .collect();
    let (m, s, q) = used.iter().fold((0.0, 0.0, 0.0), |(a, b, c), (m, s)| {
        (a + m, b + s, c + s * s / m)
    });
    dispersion(used.len() as i32, q, m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test() -> RelativeSprt {
        RelativeSprt::new(0.001, 0.005, 0.01, 0.05, 1.0).expect("valid")
    }

    #[test]
    fn spending_sums_to_alpha_and_starts_at_half() {
        assert!((spent_alpha(0.01, 1) - 0.005).abs() < 1e-15);
        assert!((spent_alpha(0.01, 2) - 0.01 / 6.0).abs() < 1e-15);
        let total: f64 = (1..100_000).map(|k| spent_alpha(0.01, k)).sum();
        assert!(total < 0.01 && total > 0.00999, "{total}");
        // A k of 0 or below (an older run) counts as the first test.
        assert_eq!(spent_alpha(0.01, 0), spent_alpha(0.01, 1));
    }

    /// Table: the statistic for windows worked out by hand.
    #[test]
    fn the_statistic_is_the_conditional_binomial() {
        let t = test();
        // 1% share, no errors anywhere and stable above the floor: only the floor counts.
        // π0 = 0.01, π1 = 0.05/1.04; s' = 0.001 × 99 000 = 99.
        let pi0: f64 = 100.0 / 10_000.0;
        let pi1 = 5.0 * pi0 / (5.0 * pi0 + 1.0 - pi0);
        let cases = [
            // (n, k, m, s, want)
            (
                100.0,
                0.0,
                9_900.0,
                20.0,
                20.0 * ((1.0 - pi1) / (1.0 - pi0)).ln(),
            ),
            (
                100.0,
                2.0,
                9_900.0,
                20.0,
                2.0 * (pi1 / pi0).ln() + 20.0 * ((1.0 - pi1) / (1.0 - pi0)).ln(),
            ),
            // Stable quieter than p0: its errors count as 0.1% of 9 900 = 9.9.
            (
                100.0,
                0.0,
                9_900.0,
                0.0,
                9.9 * ((1.0 - pi1) / (1.0 - pi0)).ln(),
            ),
            // Nothing to compare.
            (0.0, 0.0, 9_900.0, 3.0, 0.0),
            (100.0, 1.0, 0.0, 0.0, 0.0),
        ];
        for (n, k, m, s, want) in cases {
            let got = t.llr(n, k, m, s);
            assert!(
                (got - want).abs() < 1e-9,
                "llr({n}, {k}, {m}, {s}) = {got}, want {want}"
            );
        }
        assert!(t.llr(f64::NAN, 0.0, 1.0, 0.0).is_nan());
        assert!(t.llr(1.0, -1.0, 1.0, 0.0).is_nan());
        assert_eq!(
            t.decide(1.0, f64::INFINITY, 1.0, 0.0).verdict,
            SequentialVerdict::Invalid
        );
    }

    /// An incident that multiplies both revisions' error rate by 20 leaves the statistic
    /// where the share puts it: at a 2% incident rate the canary's expected share of errors
    /// is its share of requests, and the statistic drifts down, not up.
    #[test]
    fn an_incident_on_both_revisions_does_not_push_towards_rollback() {
        let t = test();
        let (n, m) = (5_000.0, 95_000.0);
        let calm = t.llr(n, n * 0.001, m, m * 0.001);
        let incident = t.llr(n, n * 0.02, m, m * 0.02);
        assert!(
            calm < 0.0 && incident < calm,
            "calm {calm}, incident {incident}"
        );
        // A canary failing 5x stable during the same incident is rolled back.
        assert_eq!(
            t.decide(n, n * 0.1, m, m * 0.02).verdict,
            SequentialVerdict::Rollback
        );
    }

    #[test]
    fn clumped_errors_count_for_less() {
        let clumped = RelativeSprt::new(0.001, 0.005, 0.01, 0.05, 3.0).expect("valid");
        let (a, b) = (
            test().llr(500.0, 3.0, 9_500.0, 10.0),
            clumped.llr(500.0, 3.0, 9_500.0, 10.0),
        );
        assert!((a / 3.0 - b).abs() < 1e-12, "{a} {b}");
        // A dispersion below 1 or not a number means none.
        let none = RelativeSprt::new(0.001, 0.005, 0.01, 0.05, f64::NAN).expect("valid");
        assert_eq!(none.dispersion, 1.0);
    }

    #[test]
    fn dispersion_is_estimated_from_clumps() {
        // Independent: counts at their mean give no allowance.
        let flat = vec![(1_000.0, 1.0); 10];
        assert_eq!(dispersion_of(&flat), 1.0);
        // Errors in clumps of 3: the same mean, three times the variance. Pearson's point
        // estimate is X² / 11 = 3; the bound is above it.
        let clumps: Vec<(f64, f64)> = [0.0, 3.0, 0.0, 0.0, 3.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0, 0.0]
            .iter()
            .map(|s| (3_000.0, *s))
            .collect();
        let d = dispersion_of(&clumps);
        assert!(d > 3.0 && d < 5.0, "{d}");
        // Too few intervals: assumed; no errors: none.
        assert_eq!(dispersion_of(&clumps[..4]), ASSUMED_DISPERSION);
        assert_eq!(dispersion_of(&[(100.0, 0.0); 8]), 1.0);
        // The running sums give the same as the list.
        let (m, s, q) = clumps.iter().fold((0.0, 0.0, 0.0), |(a, b, c), (m, s)| {
            (a + m, b + s, c + s * s / m)
        });
        assert_eq!(dispersion(clumps.len() as i32, q, m, s), d);
    }

    /// Table: the bound over the point estimate, for a given number of intervals, against
    /// the exact chi-square quantiles (20% point: 1.649 for 4 degrees of freedom, 14.578 for
    /// 20, 49.718 for 59, 87.005 for 99 and 182.045 for 199; bisection on the regularised
    /// incomplete gamma function).
    #[test]
    fn the_bound_tends_to_the_point_estimate() {
        for (nu, exact) in [
            (4.0, 1.649),
            (20.0, 14.578),
            (59.0, 49.718),
            (99.0, 87.005),
            (199.0, 182.045),
        ] {
            let got = chi_square_lower(nu, DISPERSION_Z);
            assert!(
                (got / exact - 1.0).abs() < 0.01,
                "nu {nu}: {got} vs {exact}"
            );
        }
        // Clumps of 3 at their expected Pearson statistic, X² = 3 (I − 1): the bound falls
        // towards 3 as intervals accumulate.
        let at = |i: i32| {
            let x2 = 3.0 * f64::from(i - 1);
            // One error per interval on average over 1 000 requests each: S = I, Q = X² p̂ + S.
            let (m, s) = (1_000.0 * f64::from(i), f64::from(i));
            dispersion(i, (x2 + s) * (s / m), m, s)
        };
        let (b5, b21, b60, b200) = (at(5), at(21), at(60), at(200));
        assert!(b5 > b21 && b21 > b60 && b60 > b200 && b200 > 3.0);
        assert!(
            b5 / 3.0 > 2.0 && b60 / 3.0 < 1.2 && b200 / 3.0 < 1.1,
            "{b5} {b60} {b200}"
        );
    }
}
