//! How sure a count of errors makes us that an error rate is above a given rate: the binomial
//! upper tail (the exact one-sided test) and the one-sided lower confidence bound it inverts
//! to. Threshold mode rolls back on it, and the stable-rate check warns on it. Pure.

use super::decision::{beta_continued_fraction, ln_beta};

/// `ln P(X >= k)` for `X ~ Binomial(n, p)`: how likely `k` or more errors among `n` requests
/// are when the true rate is `p`. Through the regularized incomplete beta function,
/// `P(X >= k) = I_p(k, n - k + 1)`, which also gives fractional counts (Prometheus'
/// `increase()` extrapolates) a smooth value. `k` is clamped into `[0, n]`; `k <= 0` gives 0
/// (certain). NaN for unusable counts or a rate outside [0, 1].
pub fn ln_binomial_tail(n: f64, k: f64, p: f64) -> f64 {
    if !(n.is_finite() && k.is_finite() && p.is_finite()) || n < 0.0 || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    let k = k.min(n);
    if k <= 0.0 {
        return 0.0;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return 0.0;
    }
    ln_regularized_beta(p, k, n - k + 1.0)
}

/// `ln I_x(a, b)` for `0 < x < 1`, `a, b > 0`, in log space so a tail of 1e-300 is still a
/// number.
fn ln_regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front - a.ln() + beta_continued_fraction(x, a, b).ln()
    } else {
        // I_x(a, b) = 1 - I_{1-x}(b, a); here the complement is the small side.
        let upper = (ln_front - b.ln() + beta_continued_fraction(1.0 - x, b, a).ln()).exp();
        (-upper.min(1.0)).ln_1p()
    }
}

/// Whether `k` errors among `n` requests show the rate above `p` at level `alpha`: the
/// chance of so many errors at rate `p` is at most `alpha`. Equivalently, the one-sided
/// `1 - alpha` lower confidence bound of the rate (Clopper-Pearson) is above `p`. False for
/// unusable inputs.
pub fn shown_above(n: f64, k: f64, p: f64, alpha: f64) -> bool {
    let tail = ln_binomial_tail(n, k, p);
    !tail.is_nan() && alpha > 0.0 && tail <= alpha.ln()
}

/// The one-sided `1 - alpha` lower confidence bound of the rate after `k` errors in `n`
/// requests (Clopper-Pearson): the rate `p` at which `P(X >= k) = alpha`. 0 without errors;
/// `None` for unusable inputs. For messages: the decisions use [`shown_above`], which needs
/// no inversion.
pub fn lower_bound(n: f64, k: f64, alpha: f64) -> Option<f64> {
    if !(n.is_finite() && k.is_finite() && n >= 0.0 && alpha > 0.0 && alpha < 1.0) {
        return None;
    }
    let k = k.min(n);
    if k <= 0.0 {
        return Some(0.0);
    }
    // The tail rises with p: bisect on it.
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    let target = alpha.ln();
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ln_binomial_tail(n, k, mid) > target {
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

    fn binomial_pmf(n: u64, k: u64, p: f64) -> f64 {
        let mut c = 1.0;
        for i in 0..k {
            c *= (n - i) as f64 / (i + 1) as f64;
        }
        c * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32)
    }

    fn tail_by_sum(n: u64, k: u64, p: f64) -> f64 {
        (k..=n).map(|i| binomial_pmf(n, i, p)).sum()
    }

    #[test]
    fn the_tail_is_the_binomial_sum() {
        // (n, k, p): both branches of the continued fraction, small and large tails.
        for (n, k, p) in [
            (10, 2, 0.1),
            (10, 1, 0.5),
            (10, 9, 0.5),
            (100, 1, 0.001),
            (100, 3, 0.005),
            (200, 1, 0.5),
            (500, 10, 0.01),
            (1000, 4, 0.001),
            (50, 50, 0.9),
            (30, 15, 0.005),
        ] {
            let want = tail_by_sum(n, k, p);
            let got = ln_binomial_tail(n as f64, k as f64, p).exp();
            assert!(
                (got - want).abs() <= 1e-10 * want.max(1e-300) + 1e-300,
                "n={n} k={k} p={p}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn edges() {
        // (n, k, p, ln tail)
        for (n, k, p, want) in [
            (100.0, 0.0, 0.01, 0.0),
            (100.0, -1.0, 0.01, 0.0),
            (0.0, 0.0, 0.01, 0.0),
            (100.0, 1.0, 0.0, f64::NEG_INFINITY),
            (100.0, 5.0, 1.0, 0.0),
        ] {
            assert_eq!(ln_binomial_tail(n, k, p), want, "n={n} k={k} p={p}");
        }
        for (n, k, p) in [
            (f64::NAN, 1.0, 0.1),
            (-1.0, 0.0, 0.1),
            (10.0, f64::INFINITY, 0.1),
            (10.0, 1.0, 1.5),
            (10.0, 1.0, -0.1),
        ] {
            assert!(ln_binomial_tail(n, k, p).is_nan(), "n={n} k={k} p={p}");
            assert!(!shown_above(n, k, p, 0.01));
        }
        // More errors than requests (extrapolated counts) read as all failed.
        assert_eq!(
            ln_binomial_tail(10.0, 12.0, 0.5),
            ln_binomial_tail(10.0, 10.0, 0.5)
        );
        // Deep tails stay finite in log space.
        let t = ln_binomial_tail(1e6, 5e4, 0.001);
        assert!(t.is_finite() && t < -1e4, "{t}");
    }

    #[test]
    fn fractional_counts_sit_between_their_neighbours() {
        let p = 0.01;
        for k in [1.0, 2.0, 5.0] {
            let lo = ln_binomial_tail(300.0, k, p);
            let mid = ln_binomial_tail(300.0, k + 0.5, p);
            let hi = ln_binomial_tail(300.0, k + 1.0, p);
            assert!(lo > mid && mid > hi, "k={k}: {lo} {mid} {hi}");
        }
    }

    #[test]
    fn shown_above_and_the_lower_bound_agree() {
        // (n, k, p, alpha, shown): a 50%-error canary shows itself above 0.5% in a handful of
        // requests; 1 error in 100 does not show a rate above 0.5%.
        for (n, k, p, alpha, shown) in [
            (4.0, 2.0, 0.005, 0.005, true),
            (2.0, 1.0, 0.005, 0.005, false),
            (100.0, 1.0, 0.005, 0.005, false),
            (100.0, 5.0, 0.005, 0.005, true),
            (1000.0, 10.0, 0.005, 0.01, false),
            (1000.0, 14.0, 0.005, 0.01, true),
            (10.0, 1.0, 0.0, 0.01, true),
        ] {
            assert_eq!(shown_above(n, k, p, alpha), shown, "n={n} k={k} p={p}");
            let lcb = lower_bound(n, k, alpha).expect("a bound");
            assert_eq!(lcb > p, shown, "n={n} k={k}: bound {lcb} vs {p}");
        }
        assert_eq!(lower_bound(100.0, 0.0, 0.01), Some(0.0));
        // One error in one request: P(X >= 1) = p = alpha.
        let b = lower_bound(1.0, 1.0, 0.05).expect("bound");
        assert!((b - 0.05).abs() < 1e-9, "{b}");
        assert_eq!(lower_bound(f64::NAN, 1.0, 0.05), None);
        assert_eq!(lower_bound(10.0, 1.0, 0.0), None);
    }
}
