//! Rollback decision rules for canary analysis: Wald's SPRT, a one-sided beta-mixture
//! SPRT that stays valid under continuous monitoring, the plain error-rate threshold
//! check, and the stable-baseline adjustment of the SPRT hypotheses.
//! Everything here is a pure function of cumulative request and error counts (no I/O).

use std::error::Error;
use std::f64::consts::PI;
use std::fmt;

/// Largest error rate that [`relative_hypotheses`] will scale `p1` up to.
pub const MAX_SCALED_P1: f64 = 0.999;

/// An invalid decision-rule parameter.
///
/// The message names the offending parameter and shows its value, e.g.
/// `p1 (0.05%) must be greater than p0 (0.1%)`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionError {
    parameter: &'static str,
    message: String,
}

impl DecisionError {
    fn new(parameter: &'static str, message: String) -> Self {
        Self { parameter, message }
    }

    /// Name of the parameter that failed validation (`p0`, `p1`, `alpha`, `beta`,
    /// `prior_a` or `prior_b`).
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }
}

impl fmt::Display for DecisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for DecisionError {}

/// Formats a probability as a percentage without float noise: `0.0005` -> `0.05%`.
fn pct(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let s = format!("{:.10}", x * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn check_rate(name: &'static str, value: f64) -> Result<(), DecisionError> {
    if value.is_finite() && value > 0.0 && value < 1.0 {
        Ok(())
    } else {
        Err(DecisionError::new(
            name,
            format!(
                "{name} ({}) must be between 0% and 100% (exclusive)",
                pct(value)
            ),
        ))
    }
}

fn check_risk(name: &'static str, value: f64) -> Result<(), DecisionError> {
    if value.is_finite() && value > 0.0 && value < 0.5 {
        Ok(())
    } else {
        Err(DecisionError::new(
            name,
            format!(
                "{name} ({}) must be between 0% and 50% (exclusive)",
                pct(value)
            ),
        ))
    }
}

fn check_shape(name: &'static str, value: f64) -> Result<(), DecisionError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(DecisionError::new(
            name,
            format!("{name} ({value}) must be a positive finite number"),
        ))
    }
}

/// A usable cumulative count: finite and not negative.
fn valid_count(x: f64) -> bool {
    x.is_finite() && x >= 0.0
}

/// Bernoulli Kullback-Leibler divergence D(x || y) in nats.
fn bernoulli_kl(x: f64, y: f64) -> f64 {
    x * (x / y).ln() + (1.0 - x) * ((1.0 - x) / (1.0 - y)).ln()
}

/// What a sequential test concluded from the counts seen so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SequentialVerdict {
    /// Not enough evidence either way; keep the canary at its current step.
    Continue,
    /// The canary is worse than the baseline hypothesis: roll back.
    Rollback,
    /// The canary is consistent with the baseline error rate (Wald SPRT only).
    AcceptGood,
    /// The inputs (or the test's own parameters) were NaN, infinite or negative.
    /// Never a reason to promote; the caller should treat it as a failed check.
    Invalid,
}

/// Result of evaluating a sequential test at the current cumulative counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SequentialOutcome {
    /// The log-likelihood ratio (SPRT) or log mixture likelihood ratio (mSPRT);
    /// NaN when the verdict is [`SequentialVerdict::Invalid`].
    pub statistic: f64,
    /// Roll back when `statistic >= upper`.
    pub upper: f64,
    /// Accept when `statistic <= lower`; `None` for tests without an accept boundary.
    pub lower: Option<f64>,
    /// The decision.
    pub verdict: SequentialVerdict,
}

/// Wald's sequential probability ratio test on per-request Bernoulli errors.
///
/// H0: error rate `p = p0` (the canary is good) against H1: `p = p1` (the canary is
/// bad). `alpha` is the false-rollback probability, `beta` the probability of
/// promoting a canary whose error rate is `p1`. Build it with [`Sprt::new`], which
/// validates `0 < p0 < p1 < 1` and `alpha, beta` in (0, 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sprt {
    /// Error rate of a good canary (null hypothesis).
    pub p0: f64,
    /// Error rate of a bad canary (alternative hypothesis).
    pub p1: f64,
    /// Target probability of rolling back a canary whose error rate is `p0`.
    pub alpha: f64,
    /// Target probability of accepting a canary whose error rate is `p1`.
    pub beta: f64,
}

impl Sprt {
    /// Builds a validated SPRT.
    ///
    /// # Errors
    /// Returns a [`DecisionError`] naming the first parameter that is out of range.
    pub fn new(p0: f64, p1: f64, alpha: f64, beta: f64) -> Result<Self, DecisionError> {
        let sprt = Self {
            p0,
            p1,
            alpha,
            beta,
        };
        sprt.validate()?;
        Ok(sprt)
    }

    /// Checks `0 < p0 < p1 < 1` and `alpha, beta` in (0, 0.5). The fields are public,
    /// so [`Sprt::decide`] re-checks this and returns `Invalid` for a bad test.
    ///
    /// # Errors
    /// Returns a [`DecisionError`] naming the first parameter that is out of range.
    pub fn validate(&self) -> Result<(), DecisionError> {
        check_rate("p0", self.p0)?;
        check_rate("p1", self.p1)?;
        if self.p1 <= self.p0 {
            return Err(DecisionError::new(
                "p1",
                format!(
                    "p1 ({}) must be greater than p0 ({})",
                    pct(self.p1),
                    pct(self.p0)
                ),
            ));
        }
        check_risk("alpha", self.alpha)?;
        check_risk("beta", self.beta)
    }

    /// Log-likelihood-ratio increment per error: `u = ln(p1/p0)`.
    fn error_weight(&self) -> f64 {
        (self.p1 / self.p0).ln()
    }

    /// Log-likelihood-ratio increment per success: `d = ln((1-p1)/(1-p0))` (negative).
    fn success_weight(&self) -> f64 {
        (-self.p1).ln_1p() - (-self.p0).ln_1p()
    }

    /// Cumulative log-likelihood ratio `k ln(p1/p0) + (n-k) ln((1-p1)/(1-p0))` after
    /// `requests = n` requests with `errors = k` errors.
    ///
    /// Counts may be fractional (Prometheus `increase()` extrapolates). `errors` is
    /// clamped into `[0, requests]`. Returns NaN when `requests` is negative or not
    /// finite, or `errors` is NaN.
    pub fn llr(&self, requests: f64, errors: f64) -> f64 {
        if !valid_count(requests) || errors.is_nan() {
            return f64::NAN;
        }
        let k = errors.max(0.0).min(requests);
        k * self.error_weight() + (requests - k) * self.success_weight()
    }

    /// Rollback boundary `a = ln((1-beta)/alpha)`.
    pub fn upper(&self) -> f64 {
        ((1.0 - self.beta) / self.alpha).ln()
    }

    /// Accept boundary `b = ln(beta/(1-alpha))` (negative).
    pub fn lower(&self) -> f64 {
        (self.beta / (1.0 - self.alpha)).ln()
    }

    /// Evaluates the test at the current cumulative counts.
    ///
    /// `Rollback` when `llr >= upper`, `AcceptGood` when `llr <= lower`, otherwise
    /// `Continue`. NaN, infinite or negative counts (or invalid parameters) give
    /// `Invalid`, never `AcceptGood`.
    pub fn decide(&self, requests: f64, errors: f64) -> SequentialOutcome {
        let upper = self.upper();
        let lower = self.lower();
        if self.validate().is_err() || !valid_count(requests) || !valid_count(errors) {
            return SequentialOutcome {
                statistic: f64::NAN,
                upper,
                lower: Some(lower),
                verdict: SequentialVerdict::Invalid,
            };
        }
        let statistic = self.llr(requests, errors);
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

    /// Wald's approximation of the mean number of requests to a decision when the
    /// true error rate is `p1`: `E1[N] ≈ [(1-beta) a + beta b] / D(p1 || p0)`.
    ///
    /// It ignores overshoot of the boundary, so it underestimates the real mean
    /// (297 vs about 360 simulated for p0 = 0.1 %, p1 = 1 %, alpha = 1 %, beta = 5 %).
    pub fn expected_requests_h1(&self) -> f64 {
        ((1.0 - self.beta) * self.upper() + self.beta * self.lower())
            / bernoulli_kl(self.p1, self.p0)
    }

    /// Wald's approximation of the mean number of requests to a decision when the
    /// true error rate is `p0`:
    /// `E0[N] ≈ [(1-alpha) ln((1-alpha)/beta) - alpha a] / D(p0 || p1)`.
    pub fn expected_requests_h0(&self) -> f64 {
        ((1.0 - self.alpha) * ((1.0 - self.alpha) / self.beta).ln() - self.alpha * self.upper())
            / bernoulli_kl(self.p0, self.p1)
    }

    /// Error count at which the test rolls back after `requests` requests: the
    /// straight line `k = (a - n d) / (u - d)` with `u = ln(p1/p0)` and
    /// `d = ln((1-p1)/(1-p0))`. The test rolls back once `errors >= ` this value.
    /// Fractional; NaN for negative or non-finite `requests`.
    pub fn rollback_errors_at(&self, requests: f64) -> f64 {
        if !valid_count(requests) {
            return f64::NAN;
        }
        let u = self.error_weight();
        let d = self.success_weight();
        (self.upper() - requests * d) / (u - d)
    }
}

/// One-sided mixture SPRT (mSPRT) on per-request Bernoulli errors; valid under
/// continuous monitoring.
///
/// The statistic is the likelihood ratio of a beta-binomial alternative against the
/// point null `p0`:
///
/// `Lambda_n = ∫ p^k (1-p)^(n-k) dPi(p) / (p0^k (1-p0)^(n-k))`
///
/// where `Pi` is `Beta(prior_a, prior_b)` **truncated to `p > p0`** and renormalised.
/// In closed form, with `J(a, b) = ∫_{p0}^1 t^(a-1) (1-t)^(b-1) dt` (an unregularised
/// upper incomplete beta integral),
///
/// `ln Lambda_n = ln J(a+k, b+n-k) - ln J(a, b) - k ln p0 - (n-k) ln(1-p0)`,
///
/// evaluated in log space with [`ln_gamma`] and a continued fraction, so it neither
/// overflows nor underflows for millions of requests.
///
/// Why truncate: `Lambda_n` is a mixture of likelihood ratios with a fixed prior, so
/// it is a non-negative martingale with `Lambda_0 = 1` when the canary's true error
/// rate is `p0`. By Ville's inequality, `P(Lambda_n >= 1/alpha for some n) <= alpha`:
/// the false-rollback probability is at most `alpha` however often the controller
/// looks and whenever it stops. Because every prior point `p` lies above `p0`, a
/// canary that is *better* than `p0` makes every term a supermartingale, so the
/// bound also holds for all true rates `<= p0`, and `Lambda_n` shrinks towards 0 as
/// clean traffic accumulates. An untruncated prior would put weight on `p < p0` and
/// eventually roll back a canary that is too *good* (zero errors for long enough).
/// With fixed `k`, `Lambda_n` strictly decreases in `n`, so between evaluations it
/// can only cross the boundary at the moment an error arrives.
///
/// The test has no accept boundary: [`MixtureSprt::decide`] returns `Continue` or
/// `Rollback` (or `Invalid`). A good canary is promoted by other means, typically
/// once it has served `minRequests` requests (and passed the threshold check)
/// without the mixture rolling it back. Stopping for promotion at any time does not
/// weaken the `alpha` guarantee.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixtureSprt {
    /// Error rate of a good canary (null hypothesis); the prior is truncated to `p > p0`.
    pub p0: f64,
    /// Bound on the false-rollback probability over the whole (unbounded) analysis.
    pub alpha: f64,
    /// First shape parameter of the Beta prior over the bad canary's error rate.
    pub prior_a: f64,
    /// Second shape parameter of the Beta prior over the bad canary's error rate.
    pub prior_b: f64,
}

/// Multiple of `p0` at which [`MixtureSprt::with_default_prior`] centres its prior.
const DEFAULT_PRIOR_MEAN_FACTOR: f64 = 5.0;

/// First shape parameter of the default prior (an exponential-like tail above `p0`).
const DEFAULT_PRIOR_A: f64 = 1.0;

impl MixtureSprt {
    /// Builds a validated mixture SPRT.
    ///
    /// # Errors
    /// Returns a [`DecisionError`] when `p0` is not in (0, 1), `alpha` not in
    /// (0, 0.5), or a prior shape parameter is not positive and finite.
    pub fn new(p0: f64, alpha: f64, prior_a: f64, prior_b: f64) -> Result<Self, DecisionError> {
        let test = Self {
            p0,
            alpha,
            prior_a,
            prior_b,
        };
        test.validate()?;
        Ok(test)
    }

    /// A mixture SPRT with the default prior `Beta(1, b)` whose (untruncated) mean is
    /// `5 * p0` (capped at halfway between `p0` and 1 for large `p0`).
    ///
    /// How it was chosen: the prior should put its mass on the regressions worth
    /// catching (2x to 20x the baseline rate) rather than on error rates near 100 %,
    /// which would cost power against every realistic alternative. `a = 1` gives a
    /// (truncated) density that is largest just above `p0` and decays exponentially,
    /// so the mixture adapts to small and large regressions alike. A simulation with
    /// p0 = 0.1 %, alpha = 1 %, a horizon of 50 000 requests and 2 000 runs per cell
    /// compared means of 2, 3, 5, 10 and 20 times `p0` with `a` = 0.5, 1 and 2. A
    /// mean of `5 * p0` with `a = 1` was within 11 % of the best cell for 2x to 10x
    /// regressions and within 18 % at 20x (mean requests to rollback: 15 200 at 2x,
    /// 4 460 at 3x, 1 400 at 5x, 440 at 10x, 170 at 20x; Wald's SPRT tuned exactly to
    /// 10x needs about 360). Means of 2-3x `p0` are slightly faster for small
    /// regressions and slower for large ones; 10-20x the reverse. Every cell kept the
    /// false-rollback rate under `p0` below alpha (0.2 % to 0.75 %).
    ///
    /// # Errors
    /// Returns a [`DecisionError`] when `p0` is not in (0, 1) or `alpha` not in (0, 0.5).
    pub fn with_default_prior(p0: f64, alpha: f64) -> Result<Self, DecisionError> {
        check_rate("p0", p0)?;
        let mean = (DEFAULT_PRIOR_MEAN_FACTOR * p0).min(0.5 * (1.0 + p0));
        let prior_b = DEFAULT_PRIOR_A * (1.0 - mean) / mean;
        Self::new(p0, alpha, DEFAULT_PRIOR_A, prior_b)
    }

    /// Checks `0 < p0 < 1`, `alpha` in (0, 0.5) and positive finite prior shapes.
    ///
    /// # Errors
    /// Returns a [`DecisionError`] naming the first parameter that is out of range.
    pub fn validate(&self) -> Result<(), DecisionError> {
        check_rate("p0", self.p0)?;
        check_risk("alpha", self.alpha)?;
        check_shape("prior_a", self.prior_a)?;
        check_shape("prior_b", self.prior_b)
    }

    /// Rollback boundary `ln(1/alpha)`.
    pub fn upper(&self) -> f64 {
        -self.alpha.ln()
    }

    /// `ln Lambda_n` after `requests = n` requests with `errors = k` errors.
    ///
    /// Counts may be fractional; `errors` is clamped into `[0, requests]`. Returns
    /// NaN when `requests` is negative or not finite, or `errors` is NaN.
    pub fn ln_lambda(&self, requests: f64, errors: f64) -> f64 {
        if !valid_count(requests) || errors.is_nan() {
            return f64::NAN;
        }
        let k = errors.max(0.0).min(requests);
        let (a, b, p0) = (self.prior_a, self.prior_b, self.p0);
        ln_upper_beta_integral(p0, a + k, b + requests - k)
            - ln_upper_beta_integral(p0, a, b)
            - k * p0.ln()
            - (requests - k) * (-p0).ln_1p()
    }

    /// Evaluates the test at the current cumulative counts.
    ///
    /// `Rollback` when `ln Lambda >= ln(1/alpha)`, otherwise `Continue`; there is no
    /// accept verdict (see the type docs). NaN, infinite or negative counts (or
    /// invalid parameters) give `Invalid`.
    pub fn decide(&self, requests: f64, errors: f64) -> SequentialOutcome {
        let upper = self.upper();
        if self.validate().is_err() || !valid_count(requests) || !valid_count(errors) {
            return SequentialOutcome {
                statistic: f64::NAN,
                upper,
                lower: None,
                verdict: SequentialVerdict::Invalid,
            };
        }
        let statistic = self.ln_lambda(requests, errors);
        let verdict = if statistic.is_nan() {
            SequentialVerdict::Invalid
        } else if statistic >= upper {
            SequentialVerdict::Rollback
        } else {
            SequentialVerdict::Continue
        };
        SequentialOutcome {
            statistic,
            upper,
            lower: None,
            verdict,
        }
    }
}

/// Lanczos coefficients for g = 7, n = 9 (relative error of Γ below about 1e-15).
const LANCZOS_G: f64 = 7.0;
const LANCZOS_COEF: [f64; 9] = [
    0.999_999_999_999_809_9,
    676.520_368_121_885_1,
    -1_259.139_216_722_402_8,
    771.323_428_777_653_1,
    -176.615_029_162_140_6,
    12.507_343_278_686_905,
    -0.138_571_095_265_720_12,
    9.984_369_578_019_572e-6,
    1.505_632_735_149_311_6e-7,
];

/// Natural logarithm of the gamma function for `x > 0` (Lanczos approximation,
/// g = 7, with the reflection formula below 0.5). Absolute error is around 1e-15 for
/// moderate arguments and relative error around 1e-15 for large ones.
/// Returns NaN for `x <= 0` or NaN, and `+inf` for `x = +inf`.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x < 0.5 {
        // Γ(x) Γ(1-x) = π / sin(πx); sin(πx) > 0 on (0, 0.5).
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let z = x - 1.0;
    let mut sum = LANCZOS_COEF[0];
    for (i, c) in LANCZOS_COEF.iter().enumerate().skip(1) {
        sum += c / (z + i as f64);
    }
    let t = z + LANCZOS_G + 0.5;
    0.5 * (2.0 * PI).ln() + (z + 0.5) * t.ln() - t + sum.ln()
}

/// `ln B(a, b)`.
pub(crate) fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Continued fraction for the incomplete beta function (modified Lentz), valid and
/// fast for `x < (a+1)/(a+b+2)`; needs O(sqrt(max(a, b))) iterations.
pub(crate) fn beta_continued_fraction(x: f64, a: f64, b: f64) -> f64 {
    const MAX_ITER: u32 = 200_000;
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// `ln ∫_{p0}^1 t^(a-1) (1-t)^(b-1) dt` for `0 < p0 < 1`, `a, b > 0`, i.e.
/// `ln[B(a, b) · P(Beta(a, b) > p0)]`, computed without under- or overflow.
fn ln_upper_beta_integral(p0: f64, a: f64, b: f64) -> f64 {
    let ln_p0 = p0.ln();
    let ln_q0 = (-p0).ln_1p();
    if p0 > (a + 1.0) / (a + b + 2.0) {
        // p0 lies in the upper part of the distribution: the upper tail is the small
        // side, and I_{1-p0}(b, a) = (1-p0)^b p0^a / (b B(a,b)) * CF(1-p0; b, a).
        a * ln_p0 + b * ln_q0 - b.ln() + beta_continued_fraction(1.0 - p0, b, a).ln()
    } else {
        // The lower tail I_{p0}(a, b) is the smaller side; take its complement.
        let ln_b = ln_beta(a, b);
        let ln_lower_reg =
            a * ln_p0 + b * ln_q0 - a.ln() - ln_b + beta_continued_fraction(p0, a, b).ln();
        ln_b + (-ln_lower_reg.min(0.0).exp_m1()).ln()
    }
}

/// What the plain error-rate threshold check concluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdVerdict {
    /// Fewer than `min_requests` requests (or no usable request count) so far.
    NotEnoughRequests,
    /// The error rate is at or below the maximum.
    Pass,
    /// The error rate is above the maximum.
    Fail,
    /// The error count or the configured maximum is NaN, infinite or negative.
    /// Never a pass; the caller should treat it as a failed check.
    Invalid,
}

/// Result of the threshold check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdOutcome {
    /// Observed error rate `errors / requests` (errors clamped to `requests`), when
    /// both counts are usable and `requests > 0`, even if there are too few requests
    /// to judge.
    pub rate: Option<f64>,
    /// The decision.
    pub verdict: ThresholdVerdict,
}

/// The error-rate threshold check, with confidence bounds that hold over a whole run.
///
/// `Fail` when the counts show the rate above `max_error_rate`, by either of two tests that
/// share the run's false-rollback budget `alpha` half and half:
/// * the exact binomial tail at the `look`-th sample of the run: at `max_error_rate`, so many
///   errors would have a chance of at most `alpha/2 / (look (look + 1))` (the one-sided
///   Clopper-Pearson lower bound is above the maximum at that level). Summed over every look
///   that is `alpha/2`: sharp at the first looks, so a canary failing half its requests fails
///   after a handful, with no `min_requests`;
/// * the mixture SPRT of [`MixtureSprt`] with p0 = `max_error_rate` at `alpha/2`, valid however
///   often it is looked at (Ville's inequality): it does not pay for the look count, so a
///   canary a little above the maximum is still caught late in a long run.
///
/// A canary whose rate is at or below the maximum is rolled back by either with a chance of
/// at most `alpha/2` over the whole run, so at most `alpha` (union bound). Both test the
/// counts divided by `dispersion` (at least 1: the variance over mean of error counts, when
/// errors come in clumps), the quasi-binomial correction. `Pass` when
/// `requests >= min_requests` (and `> 0`) and the rate is at or below the maximum. Otherwise
/// `NotEnoughRequests`: too few requests, or a rate above the maximum that the counts do not
/// show yet.
///
/// NaN, infinite or negative `requests` give `NotEnoughRequests`; NaN, infinite or negative
/// `errors` or `max_error_rate`, or an `alpha` outside (0, 1), give `Invalid`. A NaN
/// `min_requests` never lets the check pass.
pub fn threshold(
    requests: f64,
    errors: f64,
    max_error_rate: f64,
    min_requests: f64,
    alpha: f64,
    look: i32,
    dispersion: f64,
) -> ThresholdOutcome {
    let rate = match measured_rate(requests, errors, max_error_rate, alpha > 0.0 && alpha < 1.0) {
        Ok(rate) => rate,
        Err(unusable) => return unusable,
    };
    let half = alpha / 2.0;
    let phi = if dispersion.is_finite() {
        dispersion.max(1.0)
    } else {
        1.0
    };
    let (n, k) = (requests / phi, errors / phi);
    let bound = super::bound::shown_above(
        n,
        k,
        max_error_rate,
        super::relative::spent_alpha(half, look),
    );
    let mixture = max_error_rate > 0.0
        && max_error_rate < 1.0
        && MixtureSprt::with_default_prior(max_error_rate, half)
            .is_ok_and(|m| m.decide(n, k).verdict == SequentialVerdict::Rollback);
    let shown = max_error_rate <= 1.0 && (bound || mixture);
    let verdict = match rate {
        Some(_) if shown => ThresholdVerdict::Fail,
        Some(r) if requests >= min_requests && r <= max_error_rate => ThresholdVerdict::Pass,
        _ => ThresholdVerdict::NotEnoughRequests,
    };
    ThresholdOutcome { rate, verdict }
}

/// The rate both threshold checks judge, `errors / requests` with extrapolated errors above
/// the requests counted as a rate of 1 (`None` for no requests), or the outcome for counts
/// that cannot be judged: `NotEnoughRequests` for unusable `requests`, `Invalid` for unusable
/// `errors` or `max_error_rate` or when the caller's own parameters are not `usable`.
fn measured_rate(
    requests: f64,
    errors: f64,
    max_error_rate: f64,
    usable: bool,
) -> Result<Option<f64>, ThresholdOutcome> {
    if !valid_count(requests) {
        return Err(ThresholdOutcome {
            rate: None,
            verdict: ThresholdVerdict::NotEnoughRequests,
        });
    }
    if !(valid_count(errors) && valid_count(max_error_rate) && usable) {
        return Err(ThresholdOutcome {
            rate: None,
            verdict: ThresholdVerdict::Invalid,
        });
    }
    Ok((requests > 0.0).then(|| errors.min(requests) / requests))
}

/// The check as Flagger and Argo Rollouts make it: `Fail` when the measured rate
/// `errors / requests` is above `max_error_rate` (strictly, so a rate exactly at the maximum
/// passes) once `requests >= min_requests` and `requests > 0`, whatever the count; before
/// that `NotEnoughRequests`. No confidence bound: a healthy canary's unlucky sample fails.
/// Only `rollguard simulate` uses it, to model those tools (a policy file's
/// `simulate.threshold: asMeasured`); the operator never does. Invalid inputs as in
/// [`threshold`].
pub fn threshold_as_measured(
    requests: f64,
    errors: f64,
    max_error_rate: f64,
    min_requests: f64,
) -> ThresholdOutcome {
    let rate = match measured_rate(requests, errors, max_error_rate, true) {
        Ok(rate) => rate,
        Err(unusable) => return unusable,
    };
    let verdict = match rate {
        Some(r) if requests >= min_requests && r > max_error_rate => ThresholdVerdict::Fail,
        Some(_) if requests >= min_requests => ThresholdVerdict::Pass,
        _ => ThresholdVerdict::NotEnoughRequests,
    };
    ThresholdOutcome { rate, verdict }
}

/// Hypotheses `(p0, p1)` for the SPRT when the tier also measures the stable
/// revision's error rate over the same window.
///
/// `p0 = max(measured_p0, configured_p0)`: the configured rate is a floor, so a
/// quiet stable revision never makes the test stricter than configured, while a
/// global incident that raises the stable error rate raises the canary's null
/// hypothesis with it instead of blaming the canary. `p1 = max(configured_p1,
/// min(p0 * configured_p1 / configured_p0, 0.999))`: the alternative keeps the same
/// relative effect (`p1/p0`) as configured, capped at [`MAX_SCALED_P1`] so it stays a
/// probability, and is never below the configured `p1`.
///
/// A NaN, infinite or negative `measured_p0` is ignored (the configured values are
/// returned). The configured values are expected to be valid ([`Sprt::new`]); if the
/// stable revision fails almost every request, `p0` can reach `p1` and
/// [`Sprt::new`] then rejects the pair, as no relative test is possible.
pub fn relative_hypotheses(measured_p0: f64, configured_p0: f64, configured_p1: f64) -> (f64, f64) {
    if !valid_count(measured_p0) || measured_p0 <= configured_p0 {
        return (configured_p0, configured_p1);
    }
    let p0 = measured_p0;
    let scaled = (p0 * configured_p1 / configured_p0).min(MAX_SCALED_P1);
    (p0, configured_p1.max(scaled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::stream;

    /// Table: the peers' check, as measured.
    #[test]
    fn the_peers_check_compares_the_measured_rate() {
        use ThresholdVerdict::*;
        // (requests, errors, max, min_requests) -> verdict
        let cases = [
            // Exactly at the maximum passes; strictly above fails, at any count.
            (1000.0, 10.0, 0.01, 100.0, Pass),
            (1000.0, 10.001, 0.01, 100.0, Fail),
            (100.0, 2.0, 0.01, 0.0, Fail),
            // minRequests gates both ways, inclusive.
            (99.0, 50.0, 0.01, 100.0, NotEnoughRequests),
            (100.0, 50.0, 0.01, 100.0, Fail),
            // Zero requests never pass; extrapolated errors above requests count as a rate of 1.
            (0.0, 0.0, 0.01, 0.0, NotEnoughRequests),
            (10.2, 10.5, 0.5, 1.0, Fail),
            // Unusable numbers.
            (f64::NAN, 0.0, 0.01, 0.0, NotEnoughRequests),
            (100.0, -1.0, 0.01, 0.0, Invalid),
            (100.0, 1.0, f64::NAN, 0.0, Invalid),
            (1000.0, 0.0, 0.01, f64::NAN, NotEnoughRequests),
        ];
        for (n, k, max, min, want) in cases {
            assert_eq!(
                threshold_as_measured(n, k, max, min).verdict,
                want,
                "{n} {k} {max} {min}"
            );
        }
    }

    /// SplitMix64: tiny, seedable, good enough for Monte Carlo checks.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn next_f64(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        }
    }

    fn example() -> Sprt {
        Sprt::new(0.001, 0.01, 0.01, 0.05).expect("valid example parameters")
    }

    fn close(actual: f64, expected: f64, tol: f64) -> bool {
        (actual - expected).abs() <= tol
    }

    // ---- ln_gamma -------------------------------------------------------------

    #[test]
    fn ln_gamma_known_values() {
        let cases = [
            (0.5, 0.5 * PI.ln()),
            (1.0, 0.0),
            (2.0, 0.0),
            (2.5, 0.284_682_870_472_919_2),
            (10.0, 362_880.0_f64.ln()),
            (30.5, 72.953_471_184_169_41),
            (0.1, 2.252_712_651_734_206),
            (0.001, 6.907_178_885_383_854),
            (100.0, 359.134_205_369_575_4),
            (1000.0, 5_905.220_423_209_181),
        ];
        for (x, want) in cases {
            let got = ln_gamma(x);
            assert!(
                close(got, want, 1e-10),
                "ln_gamma({x}) = {got}, want {want}"
            );
        }
        // Large arguments: relative accuracy.
        for (x, want) in [(1e6, 12_815_504.569_147_612), (1e10, 220_258_509_288.810_6)] {
            let got = ln_gamma(x);
            assert!(
                ((got - want) / want).abs() < 1e-12,
                "ln_gamma({x}) = {got}, want {want}"
            );
        }
        // Recurrence ln Γ(x+1) = ln Γ(x) + ln x across the reflection switch.
        for x in [0.01, 0.3, 0.49, 0.5, 0.51, 3.7, 123.4] {
            let lhs = ln_gamma(x + 1.0);
            let rhs = ln_gamma(x) + f64::ln(x);
            assert!(close(lhs, rhs, 1e-10), "recurrence at {x}: {lhs} vs {rhs}");
        }
        assert!(ln_gamma(0.0).is_nan());
        assert!(ln_gamma(-1.5).is_nan());
        assert!(ln_gamma(f64::NAN).is_nan());
    }

    #[test]
    fn upper_beta_integral_matches_closed_forms_and_reference() {
        // a = 1: ∫_{p0}^1 (1-t)^(b-1) dt = (1-p0)^b / b.
        for (p0, b) in [(0.001, 199.0), (0.001, 20_000.0), (0.2, 3.0), (0.001, 2e6)] {
            let want = b * f64::ln_1p(-p0) - f64::ln(b);
            let got = ln_upper_beta_integral(p0, 1.0, b);
            assert!(
                close(got, want, 1e-9 * want.abs().max(1.0)),
                "a=1 b={b}: {got} vs {want}"
            );
        }
        // b = 1: ∫_{p0}^1 t^(a-1) dt = (1 - p0^a) / a.
        for (p0, a) in [(0.001_f64, 0.5), (0.3, 2.0), (0.001, 40.0)] {
            let want = f64::ln((1.0 - p0.powf(a)) / a);
            let got = ln_upper_beta_integral(p0, a, 1.0);
            assert!(close(got, want, 1e-10), "b=1 a={a}: {got} vs {want}");
        }
        // a = 2: ∫_{p0}^1 t (1-t)^(b-1) dt = p0 (1-p0)^b / b + (1-p0)^(b+1) / (b (b+1)),
        // deep in the upper-tail branch for large b.
        for (p0, b) in [(0.001, 1e6), (0.001, 5e4), (0.01, 10.0)] {
            let lq = f64::ln_1p(-p0);
            let t1 = f64::ln(p0) + b * lq - f64::ln(b);
            let t2 = (b + 1.0) * lq - f64::ln(b) - f64::ln(b + 1.0);
            let want = t1.max(t2) + f64::ln_1p(f64::exp(-(t1 - t2).abs()));
            let got = ln_upper_beta_integral(p0, 2.0, b);
            assert!(
                close(got, want, 1e-9 * want.abs().max(1.0)),
                "a=2 b={b}: {got} vs {want}"
            );
        }
        // Reference values from mpmath (betainc at 40 digits).
        let cases = [
            (0.001, 4.0, 695.0, -24.398_187_079_580_68),
            (0.001, 1.5, 20_299.0, -33.657_604_775_957_35),
            (0.001, 25.0, 20_299.0, -193.380_879_738_680_9),
            (0.001, 0.5, 50.0, -1.665_674_958_806_996),
            (0.3, 2.5, 3.5, -3.653_882_352_270_305_4),
        ];
        for (p0, a, b, want) in cases {
            let got = ln_upper_beta_integral(p0, a, b);
            assert!(
                close(got, want, 1e-9),
                "J({p0}, {a}, {b}) = {got}, want {want}"
            );
        }
    }

    // ---- Sprt -----------------------------------------------------------------

    #[test]
    fn sprt_boundaries_match_wald() {
        let s = example();
        assert!(close(s.upper(), 95.0_f64.ln(), 1e-12));
        assert!(close(s.upper(), 4.554, 1e-3));
        assert!(close(s.lower(), (0.05_f64 / 0.99).ln(), 1e-12));
        assert!(close(s.lower(), -2.986, 1e-3));
        let e1 = s.expected_requests_h1();
        let e0 = s.expected_requests_h0();
        assert!((e1 / 297.0 - 1.0).abs() < 0.01, "E1[N] = {e1}");
        assert!((e0 / 432.0 - 1.0).abs() < 0.01, "E0[N] = {e0}");
    }

    #[test]
    fn sprt_llr_and_rollback_line() {
        let s = example();
        assert_eq!(s.llr(0.0, 0.0), 0.0);
        let u = 10.0_f64.ln();
        let d = (0.99_f64 / 0.999).ln();
        assert!(close(s.llr(100.0, 2.0), 2.0 * u + 98.0 * d, 1e-12));
        // Fractional counts, and errors clamped into [0, requests].
        assert!(close(s.llr(10.5, 0.5), 0.5 * u + 10.0 * d, 1e-12));
        assert!(close(s.llr(3.0, 7.0), 3.0 * u, 1e-12));
        assert!(close(s.llr(3.0, -1.0), 3.0 * d, 1e-12));
        assert!(s.llr(-1.0, 0.0).is_nan());
        assert!(s.llr(f64::NAN, 0.0).is_nan());
        assert!(s.llr(10.0, f64::NAN).is_nan());
        // Note §3.1: 2 errors within 7 requests, 3 within 263, 4 within 518.
        for (errors, last_n) in [(2.0, 7.0), (3.0, 263.0), (4.0, 518.0)] {
            assert!(s.rollback_errors_at(last_n) <= errors);
            assert!(s.rollback_errors_at(last_n + 1.0) > errors);
            assert_eq!(
                s.decide(last_n, errors).verdict,
                SequentialVerdict::Rollback
            );
            assert_ne!(
                s.decide(last_n + 1.0, errors).verdict,
                SequentialVerdict::Rollback
            );
        }
        // Two errors in the first two requests: the absolute floor.
        assert_eq!(s.decide(2.0, 2.0).verdict, SequentialVerdict::Rollback);
        assert_eq!(s.decide(1.0, 1.0).verdict, SequentialVerdict::Continue);
        // Promote only after >= 330 clean requests.
        assert_eq!(s.decide(329.0, 0.0).verdict, SequentialVerdict::Continue);
        assert_eq!(s.decide(330.0, 0.0).verdict, SequentialVerdict::AcceptGood);
        let o = s.decide(330.0, 0.0);
        assert_eq!(o.lower, Some(s.lower()));
        assert_eq!(o.upper, s.upper());
    }

    #[test]
    fn sprt_validation_names_the_parameter() {
        let err = Sprt::new(0.001, 0.0005, 0.01, 0.05).expect_err("p1 < p0");
        assert_eq!(err.parameter(), "p1");
        assert_eq!(err.to_string(), "p1 (0.05%) must be greater than p0 (0.1%)");
        let err = Sprt::new(0.001, 0.001, 0.01, 0.05).expect_err("p1 == p0");
        assert_eq!(err.parameter(), "p1");
        for (p0, p1, alpha, beta, name) in [
            (0.0, 0.01, 0.01, 0.05, "p0"),
            (f64::NAN, 0.01, 0.01, 0.05, "p0"),
            (0.001, 1.0, 0.01, 0.05, "p1"),
            (0.001, 0.01, 0.0, 0.05, "alpha"),
            (0.001, 0.01, 0.5, 0.05, "alpha"),
            (0.001, 0.01, 0.01, 0.5, "beta"),
            (0.001, 0.01, 0.01, f64::INFINITY, "beta"),
        ] {
            let err = Sprt::new(p0, p1, alpha, beta).expect_err("invalid");
            assert_eq!(err.parameter(), name, "{err}");
            assert!(err.to_string().starts_with(name), "{err}");
        }
        let err = Sprt::new(0.001, 0.01, 0.6, 0.05).expect_err("alpha");
        assert_eq!(
            err.to_string(),
            "alpha (60%) must be between 0% and 50% (exclusive)"
        );
    }

    // ---- MixtureSprt ----------------------------------------------------------

    /// ln Lambda by direct numerical integration over p in (p0, 1), as an
    /// independent check of the closed form.
    fn ln_lambda_numeric(m: &MixtureSprt, n: f64, k: f64) -> f64 {
        let log_integrand =
            |p: f64| (m.prior_a - 1.0 + k) * p.ln() + (m.prior_b - 1.0 + n - k) * (-p).ln_1p();
        let prior_log = |p: f64| (m.prior_a - 1.0) * p.ln() + (m.prior_b - 1.0) * (-p).ln_1p();
        // Simpson on a log-spaced grid in p - p0 (the mass sits just above p0).
        let simpson = |f: &dyn Fn(f64) -> f64| {
            let steps = 200_000;
            let (lo, hi) = ((1e-12_f64).ln(), (1.0 - m.p0).ln());
            let h = (hi - lo) / f64::from(steps);
            let mut vals = Vec::with_capacity(steps as usize + 1);
            for i in 0..=steps {
                let s = lo + h * f64::from(i);
                let p = m.p0 + s.exp();
                vals.push(f(p.min(1.0 - 1e-15)) + s); // dp = e^s ds
            }
            let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for (i, v) in vals.iter().enumerate() {
                let w = if i == 0 || i == vals.len() - 1 {
                    1.0
                } else if i % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                sum += w * (v - max).exp();
            }
            max + (sum * h / 3.0).ln()
        };
        simpson(&log_integrand) - simpson(&prior_log) - k * m.p0.ln() - (n - k) * (-m.p0).ln_1p()
    }

    #[test]
    fn mixture_matches_numerical_integration() {
        let m = MixtureSprt::with_default_prior(0.001, 0.01).expect("valid");
        for (n, k) in [
            (0.0, 0.0),
            (50.0, 0.0),
            (500.0, 3.0),
            (2000.0, 1.0),
            (300.0, 6.5),
            (20_000.0, 40.0),
        ] {
            let got = m.ln_lambda(n, k);
            let want = ln_lambda_numeric(&m, n, k);
            assert!(
                close(got, want, 1e-6),
                "n={n} k={k}: {got} vs numeric {want}"
            );
        }
        let m = MixtureSprt::new(0.05, 0.05, 2.0, 8.0).expect("valid");
        for (n, k) in [(40.0, 6.0), (400.0, 10.0)] {
            let got = m.ln_lambda(n, k);
            let want = ln_lambda_numeric(&m, n, k);
            assert!(
                close(got, want, 1e-6),
                "n={n} k={k}: {got} vs numeric {want}"
            );
        }
    }

    #[test]
    fn mixture_is_one_sided_and_decreasing_between_errors() {
        let m = MixtureSprt::with_default_prior(0.001, 0.01).expect("valid");
        assert_eq!(m.ln_lambda(0.0, 0.0), 0.0);
        // A perfect canary is never rolled back, however long it runs.
        for n in [1e3, 1e5, 1e7, 1e9] {
            let o = m.decide(n, 0.0);
            assert_eq!(o.verdict, SequentialVerdict::Continue);
            assert!(
                o.statistic < 0.0 && o.statistic.is_finite(),
                "n={n}: {}",
                o.statistic
            );
            assert_eq!(o.lower, None);
        }
        // Half the baseline rate: statistic drifts down, never up.
        for n in [1e3, 1e4, 1e5, 1e6, 1e8] {
            assert_eq!(m.decide(n, 0.0005 * n).verdict, SequentialVerdict::Continue);
        }
        // Ten times the baseline rate is eventually caught.
        assert_eq!(m.decide(2000.0, 20.0).verdict, SequentialVerdict::Rollback);
        // Fixed k: strictly decreasing in n (only an error can push it over the line).
        for k in [0.0, 1.0, 3.0, 10.0] {
            let mut prev = m.ln_lambda(k, k);
            for n in (k as u32 + 1)..(k as u32 + 3000) {
                let cur = m.ln_lambda(f64::from(n), k);
                assert!(cur < prev, "k={k} n={n}: {cur} !< {prev}");
                prev = cur;
            }
        }
        // More errors at the same n: larger statistic.
        let mut prev = f64::NEG_INFINITY;
        for k in 0..20 {
            let cur = m.ln_lambda(1000.0, f64::from(k));
            assert!(cur > prev);
            prev = cur;
        }
    }

    #[test]
    fn mixture_validation_and_default_prior() {
        let m = MixtureSprt::with_default_prior(0.001, 0.01).expect("valid");
        assert!(close(m.prior_a / (m.prior_a + m.prior_b), 0.005, 1e-12));
        assert!(close(m.upper(), 100.0_f64.ln(), 1e-12));
        // Large p0: the prior mean is capped below 1.
        let m = MixtureSprt::with_default_prior(0.4, 0.01).expect("valid");
        assert!(close(m.prior_a / (m.prior_a + m.prior_b), 0.7, 1e-12));
        assert_eq!(
            MixtureSprt::with_default_prior(0.0, 0.01)
                .expect_err("p0")
                .parameter(),
            "p0"
        );
        assert_eq!(
            MixtureSprt::with_default_prior(0.01, 0.7)
                .expect_err("a")
                .parameter(),
            "alpha"
        );
        assert_eq!(
            MixtureSprt::new(0.01, 0.01, 0.0, 1.0)
                .expect_err("a")
                .parameter(),
            "prior_a"
        );
        assert_eq!(
            MixtureSprt::new(0.01, 0.01, 1.0, f64::NAN)
                .expect_err("b")
                .parameter(),
            "prior_b"
        );
    }

    // ---- NaN / negative inputs never roll forward -----------------------------

    #[test]
    fn bad_inputs_never_roll_forward() {
        let s = example();
        let m = MixtureSprt::with_default_prior(0.001, 0.01).expect("valid");
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -1e-9];
        for x in bad {
            for (n, k) in [(x, 0.0), (1000.0, x), (x, x)] {
                let o = s.decide(n, k);
                assert_eq!(o.verdict, SequentialVerdict::Invalid, "sprt n={n} k={k}");
                assert!(o.statistic.is_nan());
                let o = m.decide(n, k);
                assert_eq!(o.verdict, SequentialVerdict::Invalid, "mixture n={n} k={k}");
                let t = threshold(n, k, 0.01, 100.0, 0.01, 1, 1.0);
                assert_ne!(t.verdict, ThresholdVerdict::Pass, "threshold n={n} k={k}");
                assert_ne!(t.verdict, ThresholdVerdict::Fail, "threshold n={n} k={k}");
            }
            // A broken max_error_rate or min_requests never passes either.
            assert_ne!(
                threshold(1000.0, 0.0, x, 100.0, 0.01, 1, 1.0).verdict,
                ThresholdVerdict::Pass
            );
        }
        assert_eq!(
            threshold(1000.0, 0.0, 0.01, f64::NAN, 0.01, 1, 1.0).verdict,
            ThresholdVerdict::NotEnoughRequests
        );
        assert_eq!(
            threshold(f64::NAN, 0.0, 0.01, 0.0, 0.01, 1, 1.0).verdict,
            ThresholdVerdict::NotEnoughRequests
        );
        assert_eq!(
            threshold(100.0, f64::NAN, 0.01, 0.0, 0.01, 1, 1.0).verdict,
            ThresholdVerdict::Invalid
        );
        assert_eq!(
            threshold(100.0, -1.0, 0.01, 0.0, 0.01, 1, 1.0).verdict,
            ThresholdVerdict::Invalid
        );
        // A hand-built invalid test is Invalid, not AcceptGood.
        let broken = Sprt {
            p0: 0.01,
            p1: 0.001,
            alpha: 0.01,
            beta: 0.05,
        };
        assert_eq!(broken.decide(1e6, 0.0).verdict, SequentialVerdict::Invalid);
        let broken = MixtureSprt {
            p0: f64::NAN,
            alpha: 0.01,
            prior_a: 1.0,
            prior_b: 99.0,
        };
        assert_eq!(
            broken.decide(10.0, 10.0).verdict,
            SequentialVerdict::Invalid
        );
    }

    // ---- threshold ------------------------------------------------------------

    #[test]
    fn threshold_edges() {
        use ThresholdVerdict::*;
        // (requests, errors, maxErrorRate, minRequests, the run's alpha, look) -> verdict, rate
        let cases = [
            // Exactly at the maximum passes.
            ((1000.0, 10.0, 0.01, 100.0, 0.01, 1), Pass, Some(0.01)),
            // Above it, but 10 or 20 errors where 10 are expected show nothing yet: undecided.
            (
                (1000.0, 10.001, 0.01, 100.0, 0.01, 1),
                NotEnoughRequests,
                Some(0.010001),
            ),
            (
                (1000.0, 20.0, 0.01, 100.0, 0.01, 1),
                NotEnoughRequests,
                Some(0.02),
            ),
            // 25 where 10 are expected: shown by the exact bound at the first look (its tail is
            // 4e-5, below 0.5%/2)...
            ((1000.0, 25.0, 0.01, 100.0, 0.01, 1), Fail, Some(0.025)),
            // ... and still at the 100th, where the bound may spend only 0.5%/10100 but the
            // mixture, which pays nothing for looks, shows it (ln Lambda about 6.3 > ln 200).
            ((1000.0, 25.0, 0.01, 100.0, 0.01, 100), Fail, Some(0.025)),
            (
                (1000.0, 20.0, 0.01, 100.0, 0.01, 100),
                NotEnoughRequests,
                Some(0.02),
            ),
            // Before minRequests: a plainly bad canary fails (the bound alone: 2 errors in 4
            // requests against 0.5%), nothing passes.
            ((4.0, 2.0, 0.005, 100.0, 0.01, 1), Fail, Some(0.5)),
            ((99.0, 50.0, 0.01, 100.0, 0.01, 1), Fail, Some(50.0 / 99.0)),
            (
                (99.0, 0.0, 0.01, 100.0, 0.01, 1),
                NotEnoughRequests,
                Some(0.0),
            ),
            (
                (99.0, 2.0, 0.01, 100.0, 0.01, 1),
                NotEnoughRequests,
                Some(2.0 / 99.0),
            ),
            // minRequests gating of a pass, inclusive.
            ((100.0, 1.0, 0.01, 100.0, 0.01, 1), Pass, Some(0.01)),
            ((100.0, 50.0, 0.01, 100.0, 0.01, 1), Fail, Some(0.5)),
            // Zero requests can never pass, even with minRequests = 0.
            ((0.0, 0.0, 0.01, 0.0, 0.01, 1), NotEnoughRequests, None),
            // Extrapolated errors above requests are clamped to a rate of 1.
            ((10.2, 10.5, 0.5, 1.0, 0.01, 1), Fail, Some(1.0)),
            // Zero tolerance: any error fails, none passes.
            ((500.0, 0.0, 0.0, 1.0, 0.01, 1), Pass, Some(0.0)),
            ((500.0, 0.5, 0.0, 1.0, 0.01, 1), Fail, Some(0.001)),
            // A broken alpha never passes.
            ((1000.0, 0.0, 0.01, 100.0, 0.0, 1), Invalid, None),
            ((1000.0, 0.0, 0.01, 100.0, f64::NAN, 1), Invalid, None),
        ];
        for ((n, k, max, min, alpha, look), verdict, rate) in cases {
            let phi = 1.0;
            let o = threshold(n, k, max, min, alpha, look, phi);
            assert_eq!(
                o.verdict, verdict,
                "n={n} k={k} max={max} alpha={alpha} look={look}"
            );
            match (o.rate, rate) {
                (Some(a), Some(b)) => assert!(close(a, b, 1e-12), "n={n} k={k}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "n={n} k={k}"),
            }
        }
    }

    #[test]
    fn threshold_divides_clumped_counts_by_the_dispersion() {
        use ThresholdVerdict::*;
        // (requests, errors, dispersion) -> verdict, for maxErrorRate 1%, minRequests 100,
        // alpha 1%, the first look.
        for (n, k, phi, want) in [
            (1000.0, 25.0, 1.0, Fail),
            // In clumps of 3, 25 errors are about 8 independent ones among 333: not shown.
            (1000.0, 25.0, 3.0, NotEnoughRequests),
            (1000.0, 75.0, 3.0, Fail),
            // minRequests counts real requests: 150 pass, whatever the dispersion.
            (150.0, 0.0, 3.0, Pass),
            // Below 1, NaN: no allowance.
            (1000.0, 25.0, 0.5, Fail),
            (1000.0, 25.0, f64::NAN, Fail),
        ] {
            assert_eq!(
                threshold(n, k, 0.01, 100.0, 0.01, 1, phi).verdict,
                want,
                "n={n} k={k} dispersion {phi}"
            );
        }
    }

    /// A canary at exactly maxErrorRate, looked at after every 100 requests for 100 looks:
    /// rolled back in at most alpha of runs (Monte Carlo), while the plain check (fail when
    /// the rate is above the maximum) rolls back most of them.
    #[test]
    fn threshold_looks_spend_alpha_over_the_run() {
        let (max, alpha, runs) = (0.005, 0.01, 2_000);
        let mut rng = SplitMix64(stream(0x5EED_0005));
        let (mut spent, mut plain) = (0, 0);
        for _ in 0..runs {
            let (mut n, mut k) = (0.0, 0.0);
            let (mut failed, mut plain_failed) = (false, false);
            for look in 1..=100 {
                for _ in 0..100 {
                    n += 1.0;
                    if rng.next_f64() < max {
                        k += 1.0;
                    }
                }
                failed |=
                    threshold(n, k, max, 100.0, alpha, look, 1.0).verdict == ThresholdVerdict::Fail;
                plain_failed |= k / n > max;
            }
            spent += u32::from(failed);
            plain += u32::from(plain_failed);
        }
        let (fr, _) = rate_and_se(spent, runs);
        let (pr, _) = rate_and_se(plain, runs);
        eprintln!("threshold at maxErrorRate over 100 looks: spent alpha {fr:.4}, plain {pr:.4}");
        assert!(fr <= alpha, "false rollback {fr}");
        assert!(pr > 0.5, "the plain check {pr}");
    }

    // ---- relative_hypotheses --------------------------------------------------

    #[test]
    fn relative_hypotheses_scaling() {
        // Quiet stable revision: configured values.
        assert_eq!(relative_hypotheses(0.0002, 0.001, 0.01), (0.001, 0.01));
        assert_eq!(relative_hypotheses(0.001, 0.001, 0.01), (0.001, 0.01));
        // Global incident: same relative effect.
        let (p0, p1) = relative_hypotheses(0.02, 0.001, 0.01);
        assert_eq!(p0, 0.02);
        assert!(close(p1, 0.2, 1e-12));
        // Cap below 1.
        assert_eq!(relative_hypotheses(0.5, 0.001, 0.01), (0.5, MAX_SCALED_P1));
        // Garbage measurement: configured values.
        for bad in [f64::NAN, f64::INFINITY, -0.5] {
            assert_eq!(relative_hypotheses(bad, 0.001, 0.01), (0.001, 0.01));
        }
        // The scaled pair is a valid SPRT.
        let (p0, p1) = relative_hypotheses(0.05, 0.001, 0.01);
        assert!(Sprt::new(p0, p1, 0.01, 0.05).is_ok());
    }

    // ---- Monte Carlo ----------------------------------------------------------

    struct SprtSim {
        runs: u32,
        rollbacks: u32,
        total_n: f64,
        rollback_n: f64,
    }

    /// Per-request Bernoulli draws; decide after every request.
    fn simulate_sprt(s: &Sprt, p: f64, runs: u32, seed: u64) -> SprtSim {
        let mut rng = SplitMix64(seed);
        let mut sim = SprtSim {
            runs,
            rollbacks: 0,
            total_n: 0.0,
            rollback_n: 0.0,
        };
        for _ in 0..runs {
            let (mut n, mut k) = (0.0, 0.0);
            loop {
                n += 1.0;
                if rng.next_f64() < p {
                    k += 1.0;
                }
                match s.decide(n, k).verdict {
                    SequentialVerdict::Continue => {}
                    SequentialVerdict::Rollback => {
                        sim.rollbacks += 1;
                        sim.rollback_n += n;
                        break;
                    }
                    SequentialVerdict::AcceptGood | SequentialVerdict::Invalid => break,
                }
                assert!(n < 1e6, "SPRT did not terminate");
            }
            sim.total_n += n;
        }
        sim
    }

    fn rate_and_se(hits: u32, runs: u32) -> (f64, f64) {
        let r = f64::from(hits) / f64::from(runs);
        let p = r.clamp(1.0 / f64::from(runs), 1.0 - 1.0 / f64::from(runs));
        (r, (p * (1.0 - p) / f64::from(runs)).sqrt())
    }

    #[test]
    fn sprt_monte_carlo_error_rates_and_sample_size() {
        let s = example();
        let runs = 10_000;
        let h0 = simulate_sprt(&s, s.p0, runs, stream(0x5EED_0001));
        let (fr, _) = rate_and_se(h0.rollbacks, runs);
        let se_alpha = (s.alpha * (1.0 - s.alpha) / f64::from(runs)).sqrt();
        let mean_n0 = h0.total_n / f64::from(runs);
        let h1 = simulate_sprt(&s, s.p1, runs, stream(0x5EED_0002));
        let (power, _) = rate_and_se(h1.rollbacks, runs);
        let se_beta = (s.beta * (1.0 - s.beta) / f64::from(runs)).sqrt();
        let mean_n1 = h1.total_n / f64::from(runs);
        let mean_n1_rollback = h1.rollback_n / f64::from(h1.rollbacks.max(1));
        eprintln!(
            "SPRT {runs} runs: false rollback {fr:.4} (alpha {}), mean N under H0 {mean_n0:.1} \
             (Wald {:.1}); power {power:.4} (1-beta {}), mean N under H1 {mean_n1:.1} \
             (to rollback {mean_n1_rollback:.1}, Wald {:.1})",
            s.alpha,
            s.expected_requests_h0(),
            1.0 - s.beta,
            s.expected_requests_h1()
        );
        assert!(fr <= s.alpha + 3.0 * se_alpha, "false rollback {fr}");
        assert!(power >= 1.0 - s.beta - 3.0 * se_beta, "power {power}");
        let e1 = s.expected_requests_h1();
        assert!(
            (mean_n1 / e1 - 1.0).abs() <= 0.3,
            "mean N under H1 {mean_n1} vs {e1}"
        );
        assert!(
            (mean_n1_rollback / e1 - 1.0).abs() <= 0.3,
            "mean N to rollback {mean_n1_rollback}"
        );
        assert_eq!(h0.runs, runs);
    }

    /// Per-request Bernoulli draws up to `horizon`; returns (rollbacks, sum of N at
    /// rollback). The statistic is evaluated when an error arrives: with the error
    /// count fixed it only decreases (tested above), so it cannot first cross the
    /// boundary on a clean request.
    fn simulate_mixture(m: &MixtureSprt, p: f64, runs: u32, horizon: u32, seed: u64) -> (u32, f64) {
        let mut rng = SplitMix64(seed);
        let (mut rollbacks, mut sum_n) = (0, 0.0);
        for _ in 0..runs {
            let mut k = 0.0;
            for n in 1..=horizon {
                if rng.next_f64() < p {
                    k += 1.0;
                    if m.decide(f64::from(n), k).verdict == SequentialVerdict::Rollback {
                        rollbacks += 1;
                        sum_n += f64::from(n);
                        break;
                    }
                }
            }
        }
        (rollbacks, sum_n)
    }

    #[test]
    fn mixture_monte_carlo_false_rollback_and_power() {
        let m = MixtureSprt::with_default_prior(0.001, 0.01).expect("valid");
        let runs = 4_000;
        let horizon = 20_000;
        let (fr_hits, _) = simulate_mixture(&m, m.p0, runs, horizon, stream(0x5EED_0003));
        let (fr, _) = rate_and_se(fr_hits, runs);
        let se_alpha = (m.alpha * (1.0 - m.alpha) / f64::from(runs)).sqrt();
        let (hits, sum_n) = simulate_mixture(&m, 10.0 * m.p0, runs, horizon, stream(0x5EED_0004));
        let (power, _) = rate_and_se(hits, runs);
        let mean_n = sum_n / f64::from(hits.max(1));
        eprintln!(
            "mSPRT {runs} runs, horizon {horizon}: false rollback {fr:.4} (alpha {}); \
             10x p0: detected {power:.4}, mean N to rollback {mean_n:.1}",
            m.alpha
        );
        assert!(fr <= m.alpha + 3.0 * se_alpha, "false rollback {fr}");
        assert!(power >= 0.9, "power at 10x p0 {power}");
    }
}
