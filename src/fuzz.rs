//! The one knob of the property tests (fuzzing): how many cases each property tries.
//! The defaults keep `cargo test --lib` quick; `PROPTEST_CASES=100000 cargo test --lib
//! prop_` runs a deep session. Failures print the shrunk input; write it down as a
//! regression unit test next to the property.

use proptest::test_runner::Config;

/// A property's configuration: `default_cases` cases, unless `PROPTEST_CASES` says otherwise.
/// No failure files are written into the source tree.
pub fn config(default_cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    Config {
        cases,
        failure_persistence: None,
        // Generators that reject (prop_filter) may skip up to this many inputs.
        max_global_rejects: cases.saturating_mul(4).max(1024),
        ..Config::default()
    }
}
