//! How long the simulated requests take: each pod's requests follow a log-normal latency with
//! the median from its `sim.rollguard.dev/latency` annotation (50ms without one) and a fixed
//! spread (sigma 0.5 of the log: the 99th percentile is 3.2 times the median). A tick's
//! requests are not timed one by one: they are counted into the histogram buckets every
//! exported shape uses, by sequential binomial draws over the distribution
//! (`rollguard::simulate::latency`, the model `rollguard simulate` uses too).

use rand::Rng;

use crate::model::binomial;

/// The annotation that sets a pod's median latency, as a duration (`120ms`, `1s`).
pub const LATENCY_ANNOTATION: &str = "sim.rollguard.dev/latency";

/// The median latency of a pod without the annotation, in seconds.
pub const DEFAULT_MEDIAN_SECONDS: f64 = 0.05;

/// The standard deviation of the latency's natural logarithm.
pub const SIGMA: f64 = 0.5;

/// Every bucket bound (seconds) of every exported histogram, ascending: the simulator's own
/// (Prometheus' default buckets), Istio's and Envoy's (milliseconds: 0.5 ... 3,600,000),
/// Linkerd's (milliseconds: 1, 2, 3, 4, 5, 10 ... 50,000), Traefik's (0.1, 0.3, 1.2, 5) and
/// OpenTelemetry's (0.005 ... 10). Each shape reads its own bounds from these counts.
pub const BOUNDS: [f64; 38] = [
    0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.01, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
    0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.2, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Requests at or below each bound of [`BOUNDS`] (cumulative, like a histogram's buckets;
/// the `+Inf` bucket is the request count).
pub type Buckets = [u64; BOUNDS.len()];

/// No request at all.
pub const NONE: Buckets = [0; BOUNDS.len()];

/// Parses the latency annotation: a positive duration, in seconds.
pub fn parse_latency(value: &str) -> Result<f64, String> {
    match rollguard::api::quantity::parse_duration(value.trim()) {
        Ok(d) if !d.is_zero() => Ok(d.as_secs_f64()),
        Ok(_) => Err(format!("expected a positive duration, got {value:?}")),
        Err(e) => Err(format!("expected a duration such as 120ms: {e}")),
    }
}

/// The chance that one request of a pod with this median is done within `seconds`.
pub fn within(seconds: f64, median: f64) -> f64 {
    rollguard::simulate::latency::within(seconds, median, SIGMA)
}

/// Counts `n` requests with median latency `median` (seconds) into the buckets.
pub fn draw<R: Rng + ?Sized>(rng: &mut R, n: u64, median: f64) -> Buckets {
    let mut out = NONE;
    let (mut below, mut placed) = (0.0, 0);
    for (slot, &bound) in out.iter_mut().zip(&BOUNDS) {
        let here = within(bound, median);
        // Of the requests not yet placed, those that finish by this bound.
        let rest = 1.0 - below;
        let k = if rest > 0.0 {
            binomial(rng, n - placed, (here - below) / rest)
        } else {
            0
        };
        placed += k;
        below = here;
        *slot = placed;
    }
    out
}

/// Adds `b` to `a`, bucket by bucket.
pub fn add(a: &mut Buckets, b: &Buckets) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The count at the bound `seconds`, which must be one of [`BOUNDS`]; `None` if it is not.
pub fn at(buckets: &Buckets, seconds: f64) -> Option<u64> {
    BOUNDS
        .iter()
        .position(|b| (b - seconds).abs() <= 1e-9 * seconds.max(1.0))
        .map(|i| buckets[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn bounds_ascend_and_every_shape_finds_its_own() {
        assert!(BOUNDS.windows(2).all(|w| w[0] < w[1]));
        let ms = |v: &[f64]| v.iter().map(|m| m / 1000.0).collect::<Vec<_>>();
        let istio = ms(&[
            0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
            30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
        ]);
        let linkerd = ms(&[
            1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 100.0, 200.0, 300.0, 400.0,
            500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 10000.0, 20000.0, 30000.0, 40000.0,
            50000.0,
        ]);
        let zero = NONE;
        for b in istio
            .iter()
            .chain(&linkerd)
            .chain(&[0.1, 0.3, 1.2, 5.0, 0.075, 7.5])
        {
            assert!(at(&zero, *b).is_some(), "{b}s is not a bound");
        }
    }

    #[test]
    fn draws_follow_the_distribution_and_stay_cumulative() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 200_000;
        let b = draw(&mut rng, n, 0.1);
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
        assert!(*b.last().expect("bounds") <= n);
        // Half the requests by the median; e^(2.326 * 0.5) = 3.2x the median for the 99th
        // percentile, so 250ms holds about 96.6% of them.
        let half = at(&b, 0.1).expect("0.1") as f64 / n as f64;
        assert!((half - 0.5).abs() < 0.005, "{half}");
        let p = at(&b, 0.25).expect("0.25") as f64 / n as f64;
        assert!((p - within(0.25, 0.1)).abs() < 0.003, "{p}");
        assert!((within(0.25, 0.1) - 0.966).abs() < 0.001);
        // Three times slower: most requests are past 250ms.
        let slow = draw(&mut rng, n, 0.3);
        assert!((at(&slow, 0.25).expect("0.25") as f64 / n as f64) < 0.4);
    }

    #[test]
    fn latency_annotations_parse_as_durations() {
        assert_eq!(parse_latency("120ms"), Ok(0.12));
        assert_eq!(parse_latency(" 2s "), Ok(2.0));
        assert!(parse_latency("0s").is_err());
        assert!(parse_latency("fast").is_err());
    }
}
