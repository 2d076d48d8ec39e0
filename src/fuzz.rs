//! The knobs of the property and random tests: how many cases each property tries, and the
//! one seed every random draw of a test starts from. The defaults keep `cargo test --lib`
//! quick and every run the same; `PROPTEST_CASES=100000 ROLLGUARD_TEST_SEED=$RANDOM cargo
//! test --lib prop_` runs a deep session somewhere new. A failing test prints its seed (the
//! harness shows a failing test's output): set `ROLLGUARD_TEST_SEED` to it to replay the run.
//! Property failures also print the shrunk input; write it down as a regression unit test.
//!
//! One file, compiled into each test target that draws (the library's unit tests, the
//! `trafficsim` example's, the e2e binary) with `#[path]`, since none of them can see
//! another's `#[cfg(test)]` code.
#![allow(dead_code)] // each target uses its part

use proptest::test_runner::{Config, RngSeed};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The seed without `ROLLGUARD_TEST_SEED`: 0, so every stream is the number its test was
/// written and tuned with.
pub const DEFAULT_SEED: u64 = 0;

/// The run's seed: `ROLLGUARD_TEST_SEED` (decimal, or hex with `0x`), else [`DEFAULT_SEED`].
/// Printed, so a failing test's output says how to replay it.
pub fn seed() -> u64 {
    let seed = std::env::var("ROLLGUARD_TEST_SEED")
        .ok()
        .map(|v| {
            let v = v.trim();
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            }
            .unwrap_or_else(|e| panic!("ROLLGUARD_TEST_SEED={v}: {e}"))
        })
        .unwrap_or(DEFAULT_SEED);
    eprintln!("test seed {seed} (replay with ROLLGUARD_TEST_SEED={seed})");
    seed
}

/// The seed of a test's random stream `n`: streams differ from each other, and all move
/// together with `ROLLGUARD_TEST_SEED`.
pub fn stream(n: u64) -> u64 {
    seed().wrapping_add(n)
}

/// A generator for a test's random stream `n` (see [`stream`]).
pub fn rng(n: u64) -> StdRng {
    StdRng::seed_from_u64(stream(n))
}

/// A property's configuration: `default_cases` cases, unless `PROPTEST_CASES` says otherwise;
/// cases drawn from the run's [`seed`] (proptest's own `PROPTEST_RNG_SEED` wins when set). No
/// failure files are written into the source tree.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let defaults = Config::default();
    let rng_seed = match defaults.rng_seed {
        RngSeed::Random => RngSeed::Fixed(seed()),
        fixed => {
            eprintln!("test seed {fixed} (PROPTEST_RNG_SEED)");
            fixed
        }
    };
    Config {
        cases,
        failure_persistence: None,
        // Generators that reject (prop_filter) may skip up to this many inputs.
        max_global_rejects: cases.saturating_mul(4).max(1024),
        rng_seed,
        ..defaults
    }
}
