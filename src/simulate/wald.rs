//! Wald's approximations for the SPRT at any true error rate `p`: the operating
//! characteristic (the chance of accepting H0) and the average sample number. They ignore
//! the overshoot of the boundaries, which a discrete look every analysis interval makes
//! larger; the blast-radius benchmark compares the simulated machine with them.

/// What Wald's formulas expect of an SPRT when the canary's true error rate is `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expectation {
    /// Chance that the test rolls back.
    pub rollback_probability: f64,
    /// Mean number of canary requests to a decision.
    pub requests: f64,
    /// Mean number of canary errors served by then (`p` × requests).
    pub errors: f64,
}

/// Wald's expectations for the SPRT of `p0` against `p1` with risks `alpha`, `beta`, when
/// the true error rate is `p`. `None` for parameters outside `0 < p0 < p1 < 1`,
/// `alpha, beta` in (0, 1), `p` in [0, 1].
pub fn expectation(p0: f64, p1: f64, alpha: f64, beta: f64, p: f64) -> Option<Expectation> {
    let valid = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
    let parameters_ok = valid(p0) && valid(p1) && valid(alpha) && valid(beta) && p0 < p1;
    if !parameters_ok || !(0.0..=1.0).contains(&p) {
        return None;
    }
    let a = ((1.0 - beta) / alpha).ln();
    let b = (beta / (1.0 - alpha)).ln();
    let u = (p1 / p0).ln();
    let d = ((1.0 - p1) / (1.0 - p0)).ln();
    // Mean and second moment of the log-likelihood-ratio increment of one request.
    let mean = p * u + (1.0 - p) * d;
    let second = p * u * u + (1.0 - p) * d * d;
    if mean.abs() < 1e-12 * second.max(1e-300) {
        // p sits where the drift vanishes: L = a / (a - b), E[N] = -a b / E[z²].
        let rollback = -b / (a - b);
        let n = -a * b / second;
        return Some(Expectation {
            rollback_probability: rollback,
            requests: n,
            errors: p * n,
        });
    }
    let h = oc_exponent(p, u, d, mean)?;
    // L(p) = (A^h - 1) / (A^h - B^h), in logs: A^h = e^{a h}, B^h = e^{b h}.
    let (ah, bh) = (a * h, b * h);
    let accept = if ah > 700.0 || bh > 700.0 {
        // Divide through by the larger exponential.
        let m = ah.max(bh);
        ((ah - m).exp() - (-m).exp()) / ((ah - m).exp() - (bh - m).exp())
    } else {
        (ah.exp() - 1.0) / (ah.exp() - bh.exp())
    };
    let accept = accept.clamp(0.0, 1.0);
    let n = (accept * b + (1.0 - accept) * a) / mean;
    Some(Expectation {
        rollback_probability: 1.0 - accept,
        requests: n,
        errors: p * n,
    })
}

/// The information bound: the fewest requests, on average, that *any* test can take to roll
/// back a canary whose error rate is `p` with probability at least `1 - beta`, if it rolls
/// back a canary at `p0` with probability at most `alpha`; errors = `p` × requests. By Wald's
/// identity and the data-processing inequality, E_p[N] · D(p‖p0) ≥ d(1 - beta ‖ alpha), with
/// D and d the Bernoulli divergences. Unlike [`expectation`] it holds for a test tuned to this
/// very `p`, so it is the floor no policy can beat; `None` unless `0 < p0 < p < 1` and
/// `alpha, beta` in (0, 1) with `alpha < 1 - beta`.
pub fn information_bound(p0: f64, alpha: f64, beta: f64, p: f64) -> Option<Expectation> {
    let valid = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
    if !(valid(p0) && valid(p) && valid(alpha) && valid(beta)) || p <= p0 || alpha >= 1.0 - beta {
        return None;
    }
    let kl = |x: f64, y: f64| x * (x / y).ln() + (1.0 - x) * ((1.0 - x) / (1.0 - y)).ln();
    let requests = kl(1.0 - beta, alpha) / kl(p, p0);
    Some(Expectation {
        rollback_probability: 1.0 - beta,
        requests,
        errors: p * requests,
    })
}

/// The non-zero root `h` of `p e^{h u} + (1 - p) e^{h d} = 1`, by bisection: positive when
/// the drift is negative (a good canary), negative otherwise.
fn oc_exponent(p: f64, u: f64, d: f64, mean: f64) -> Option<f64> {
    let g = |h: f64| p * (h * u).exp() + (1.0 - p) * (h * d).exp() - 1.0;
    let sign = if mean < 0.0 { 1.0 } else { -1.0 };
    // g < 0 just off zero on the root's side, g > 0 far enough out (convexity).
    let mut lo = sign * 1e-9;
    let mut hi = sign;
    let mut tries = 0;
    while g(hi) <= 0.0 {
        lo = hi;
        hi *= 2.0;
        tries += 1;
        if tries > 200 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if g(mid) > 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::decision::Sprt;

    #[test]
    fn matches_the_closed_forms_at_p0_and_p1() {
        let s = Sprt::new(0.001, 0.01, 0.01, 0.05).expect("valid");
        let at_p1 = expectation(0.001, 0.01, 0.01, 0.05, 0.01).expect("p1");
        assert!(
            (at_p1.requests / s.expected_requests_h1() - 1.0).abs() < 1e-6,
            "{at_p1:?}"
        );
        assert!((at_p1.rollback_probability - 0.95).abs() < 1e-3);
        let at_p0 = expectation(0.001, 0.01, 0.01, 0.05, 0.001).expect("p0");
        assert!(
            (at_p0.requests / s.expected_requests_h0() - 1.0).abs() < 1e-6,
            "{at_p0:?}"
        );
        assert!((at_p0.rollback_probability - 0.01).abs() < 1e-3);
        // The note's worked example: about 297 requests and 3 errors at p1.
        assert!((at_p1.requests - 297.0).abs() < 1.0);
        assert!((at_p1.errors - 2.97).abs() < 0.01);
    }

    #[test]
    fn the_information_bound_is_wald_at_p1_and_below_any_sprt_elsewhere() {
        // At p1 the bound is the SPRT's own E1[N] (the note's 297 requests for 0.1% vs 1%).
        let s = Sprt::new(0.001, 0.01, 0.01, 0.05).expect("valid");
        let b = information_bound(0.001, 0.01, 0.05, 0.01).expect("bound");
        assert!(
            (b.requests / s.expected_requests_h1() - 1.0).abs() < 1e-9,
            "{b:?}"
        );
        // Elsewhere an SPRT tuned to another p1 needs more than a test tuned to p.
        for p in [0.005, 0.05, 0.5] {
            let b = information_bound(0.001, 0.01, 0.05, p).expect("bound");
            let e = expectation(0.001, 0.005, 0.01, 0.05, p).expect("valid");
            assert!(b.errors <= e.errors * 1.001, "p={p}: {b:?} vs {e:?}");
        }
        // A 5% canary: about 28 requests, 1.4 errors.
        let b = information_bound(0.001, 0.01, 0.05, 0.05).expect("bound");
        assert!((b.errors - 1.41).abs() < 0.01, "{b:?}");
        assert!(information_bound(0.001, 0.01, 0.05, 0.001).is_none());
        assert!(information_bound(0.001, 0.6, 0.5, 0.01).is_none());
    }

    #[test]
    fn rollback_becomes_certain_and_fast_as_the_canary_gets_worse() {
        let mut prev = expectation(0.001, 0.005, 0.01, 0.05, 0.001).expect("p0");
        for p in [0.002, 0.003, 0.005, 0.01, 0.05, 0.5] {
            let e = expectation(0.001, 0.005, 0.01, 0.05, p).expect("valid");
            assert!(
                e.rollback_probability >= prev.rollback_probability,
                "p={p}: {e:?}"
            );
            prev = e;
        }
        let bad = expectation(0.001, 0.005, 0.01, 0.05, 0.5).expect("valid");
        // Two or three errors at a 50% error rate: about 5.7 requests.
        assert!(bad.requests > 4.0 && bad.requests < 7.0, "{bad:?}");
        assert!(expectation(0.01, 0.001, 0.01, 0.05, 0.1).is_none());
        // Where the drift vanishes the formula's limit applies.
        let star = ((0.995f64 / 0.999).ln() / ((0.995f64 / 0.999).ln() - 5f64.ln())).abs();
        let e = expectation(0.001, 0.005, 0.01, 0.05, star).expect("valid");
        assert!(e.requests.is_finite() && e.requests > 0.0);
    }
}
