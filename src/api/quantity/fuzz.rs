//! Property tests of the quantity parsers: no input panics them, and they accept exactly
//! the strings the CRD schema's patterns accept (checked with an independent regex engine),
//! with the value an independent computation gives.

use std::sync::LazyLock;

use proptest::prelude::*;
use regex::Regex;

use super::*;
use crate::fuzz::config;

/// The CRD schema's patterns, compiled once by an engine independent of the parsers.
static PERCENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(PERCENT_PATTERN).unwrap());
static DURATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(DURATION_PATTERN).unwrap());
static COUNT: LazyLock<Regex> = LazyLock::new(|| Regex::new(COUNT_PATTERN).unwrap());
static DURATION_PART: LazyLock<Regex> = LazyLock::new(|| Regex::new("([0-9]+)(h|ms|m|s)").unwrap());

/// Strings near the percentage grammar: digits, points, signs, exponents, spaces, `%`.
fn percent_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "(0|[1-9][0-9]{0,3}|0[0-9]{1,2})(\\.[0-9]{0,6})?%?",
        "[0-9]{0,40}(\\.[0-9]{0,40})?%",
        "[-+ .%0-9eExN½１\t\n]{0,12}",
        any::<String>(),
    ]
}

/// Strings near the duration grammar: numbers with known, unknown, repeated and misordered
/// units, huge numbers, fractions, signs and spaces.
fn duration_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "([0-9]{1,4}(h|m|s|ms)){1,4}",
        "([0-9]{0,22}(h|m|s|ms|d|us|ns|H|S|M)?){0,5}",
        "[-+ .,0-9hmsd\n]{0,12}",
        "0{0,30}[0-9]{18,21}(h|m|s|ms)",
        any::<String>(),
    ]
}

/// Strings near the count grammar: digits with leading zeros, signs, points, spaces, and
/// numbers around `u64::MAX`.
fn count_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "0{0,2}[0-9]{1,20}",
        "[-+ .0-9e]{0,8}",
        "1[0-9]{19,20}",
        any::<String>(),
    ]
}

/// The percentage's value in ppm by plain arithmetic on the digits; `None` above 100%.
fn percent_oracle(s: &str) -> Option<u32> {
    let body = s.strip_suffix('%')?;
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.len() > 3 {
        return None;
    }
    let whole: u64 = int.parse().ok()?;
    let frac_ppm: u64 = format!("{frac:0<4}").parse().ok()?;
    let ppm = whole * 10_000 + frac_ppm;
    (ppm <= 1_000_000).then(|| u32::try_from(ppm).unwrap_or(u32::MAX))
}

/// The duration's length in milliseconds by 128-bit arithmetic on each `<digits><unit>`;
/// `None` when it does not fit a `u64`.
fn duration_oracle(s: &str, part: &Regex) -> Option<u64> {
    let mut total: u128 = 0;
    for c in part.captures_iter(s) {
        let digits = c[1].trim_start_matches('0');
        if digits.len() > 30 {
            return None;
        }
        let n: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let unit: u128 = match &c[2] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            _ => 1,
        };
        total += n * unit;
    }
    u64::try_from(total).ok()
}

proptest! {
    #![proptest_config(config(4_000))]

    #[test]
    fn prop_percent_accepts_exactly_the_schema_pattern(s in percent_like()) {
        let pattern = &*PERCENT;
        let got = parse_percent(&s);
        let expected = if pattern.is_match(&s) { percent_oracle(&s) } else { None };
        match (&got, expected) {
            (Ok(r), Some(ppm)) => prop_assert_eq!(r.ppm(), ppm, "{:?}", s),
            (Err(e), None) => {
                // Every refusal names the input, so a user can find it in a large policy.
                prop_assert!(e.to_string().contains(&format!("{s:?}")), "{}", e);
            }
            _ => prop_assert!(false, "{:?}: parser says {:?}, pattern and bound say {:?}", s, got, expected),
        }
    }

    #[test]
    fn prop_percent_display_round_trips(ppm in 0u32..=1_000_000) {
        let pattern = &*PERCENT;
        let r = Ratio::from_ppm(ppm).unwrap();
        let text = r.to_string();
        prop_assert!(pattern.is_match(&text), "{}", text);
        prop_assert_eq!(parse_percent(&text), Ok(r));
    }

    #[test]
    fn prop_count_accepts_exactly_the_schema_pattern(s in count_like()) {
        let got = parse_count(&s);
        let expected = if COUNT.is_match(&s) { s.parse::<u128>().ok().and_then(|n| u64::try_from(n).ok()) } else { None };
        match (&got, expected) {
            (Ok(n), Some(m)) => {
                prop_assert_eq!(*n, m, "{:?}", s);
                prop_assert_eq!(n.to_string(), s);
            }
            (Err(e), None) => prop_assert!(e.to_string().contains(&format!("{s:?}")), "{}", e),
            _ => prop_assert!(false, "{:?}: parser says {:?}, pattern says {:?}", s, got, expected),
        }
    }

    #[test]
    fn prop_duration_accepts_exactly_the_schema_pattern(s in duration_like()) {
        let pattern = &*DURATION;
        let part = &*DURATION_PART;
        let got = parse_duration(&s);
        let expected = if pattern.is_match(&s) {
            Some(duration_oracle(&s, part))
        } else {
            None
        };
        match (&got, expected) {
            (Ok(d), Some(Some(ms))) => prop_assert_eq!(*d, Duration::from_millis(ms), "{:?}", s),
            (Err(QuantityError::DurationOverflow { .. }), Some(None)) => {}
            // Outside the pattern: refused, naming the input (a too-large number may be
            // reported before a later syntax error, as in "310000000000000h0").
            (Err(e), None) => {
                prop_assert!(e.to_string().contains(&format!("{s:?}")), "{}", e);
            }
            _ => prop_assert!(false, "{:?}: parser says {:?}, pattern says {:?}", s, got, expected),
        }
        if let Ok(d) = got {
            // The canonical form parses back to the same length and is a fixed point.
            let canonical = format_duration(d);
            prop_assert!(pattern.is_match(&canonical), "{}", canonical);
            prop_assert_eq!(parse_duration(&canonical), Ok(d));
            prop_assert_eq!(format_duration(parse_duration(&canonical).unwrap()), canonical);
        }
    }

    #[test]
    fn prop_duration_formatting_never_panics(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        let text = format_duration(d);
        let range = prometheus_range(d);
        prop_assert!(range.ends_with('s') && range[..range.len() - 1].parse::<u64>().is_ok(), "{}", range);
        // Within u64 milliseconds, the text is the length truncated to the millisecond.
        if let Ok(ms) = u64::try_from(d.as_millis()) {
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_millis(ms)));
        }
    }
}
