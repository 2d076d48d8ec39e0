//! The latency model shared by `rollguard simulate` and the traffic simulator: a request's
//! time is log-normal, its median the revision's and the spread (sigma of the log) the
//! scenario's, so the share of requests within any bound and any quantile follow in closed
//! form. Pure.

/// The standard normal distribution function, from the complementary error function
/// (Numerical Recipes' Chebyshev fit, relative error below 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    0.5 * if x >= 0.0 { erfc } else { 2.0 - erfc }
}

/// The `q` quantile of the standard normal distribution, by bisection on [`normal_cdf`].
pub fn normal_quantile(q: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0, 10.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if normal_cdf(mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The share of requests done within `seconds` when their median is `median` seconds and
/// the spread `spread` (1 for a median of 0).
pub fn within(seconds: f64, median: f64, spread: f64) -> f64 {
    if median <= 0.0 {
        return 1.0;
    }
    normal_cdf((seconds / median).ln() / spread)
}

/// The `q` quantile of the latency, in seconds.
pub fn quantile(q: f64, median: f64, spread: f64) -> f64 {
    median * (normal_quantile(q) * spread).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_distribution_matches_its_table() {
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (-1.0, 0.158_655_3),
            (2.326_347_9, 0.99),
            (-3.0, 0.001_349_9),
        ] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "z {z}: {}", normal_cdf(z));
            assert!((normal_quantile(p) - z).abs() < 1e-5, "p {p}");
        }
    }

    #[test]
    fn latency_shares_and_quantiles() {
        // Half by the median; the p99 is e^(2.326 x 0.5) = 3.2 times it.
        assert!((within(0.1, 0.1, 0.5) - 0.5).abs() < 1e-6);
        assert!((quantile(0.99, 0.3, 0.5) - 0.9597).abs() < 1e-3);
        // A 300ms median puts 15.4% of requests past 500ms, a 100ms median 0.06%.
        assert!((1.0 - within(0.5, 0.3, 0.5) - 0.154).abs() < 1e-3);
        assert!((1.0 - within(0.5, 0.1, 0.5) - 0.000_64).abs() < 1e-4);
    }
}
