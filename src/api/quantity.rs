//! String quantities used in the rollguard CRDs: percentages ("0.5%"), durations ("1m30s")
//! and counts ("1520"). Kubernetes API conventions forbid floats, so these are parsed from
//! strings into exact integer forms ([`Ratio`] in parts per million, [`Duration`] in
//! milliseconds, counts as `u64`) and formatted back canonically.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Anchored RE2 pattern for a percentage string, for the `pattern` field of a Kubernetes `OpenAPI` schema:
///
/// `^(0|[1-9][0-9]*)(\.[0-9]{1,4})?%$`
///
/// It accepts exactly the strings [`parse_percent`] accepts, except that the
/// "at most 100%" bound is not expressed in the pattern (the parser checks it).
/// No sign, no exponent, no leading zeros in the integer part ("05%"), at least
/// one digit on each side of the decimal point, at most four decimals (1 ppm).
pub const PERCENT_PATTERN: &str = r"^(0|[1-9][0-9]*)(\.[0-9]{1,4})?%$";

/// Anchored RE2 pattern for a duration string, for the `pattern` field of a Kubernetes `OpenAPI` schema:
///
/// `^([0-9]+h([0-9]+m)?([0-9]+s)?([0-9]+ms)?|[0-9]+m([0-9]+s)?([0-9]+ms)?|[0-9]+s([0-9]+ms)?|[0-9]+ms)$`
///
/// That is: one or more of `<digits>h`, `<digits>m`, `<digits>s`, `<digits>ms`,
/// each at most once and in that order (the alternation only exists to forbid
/// the empty string without look-ahead, which RE2 lacks). It accepts exactly the
/// strings [`parse_duration`] accepts, except that values too large to represent
/// are rejected only by the parser.
pub const DURATION_PATTERN: &str = r"^([0-9]+h([0-9]+m)?([0-9]+s)?([0-9]+ms)?|[0-9]+m([0-9]+s)?([0-9]+ms)?|[0-9]+s([0-9]+ms)?|[0-9]+ms)$";

/// Anchored RE2 pattern for a count string, for the `pattern` field of a Kubernetes `OpenAPI` schema:
///
/// `^(0|[1-9][0-9]*)$`
///
/// A non-negative integer without sign or leading zeros. It accepts exactly the strings
/// [`parse_count`] accepts, except that values above `u64::MAX` are rejected only by the parser.
pub const COUNT_PATTERN: &str = r"^(0|[1-9][0-9]*)$";

/// Parts per million in one whole (100%).
const PPM_PER_WHOLE: u32 = 1_000_000;
/// Parts per million in one percent.
const PPM_PER_PERCENT: u32 = 10_000;
/// Maximum number of decimals in a percentage (1 ppm = 0.0001%).
const MAX_PERCENT_DECIMALS: usize = 4;

/// Errors from parsing or constructing quantities. Every variant names the offending input.
#[derive(Debug, Clone, PartialEq)]
pub enum QuantityError {
    /// The string is not a syntactically valid percentage.
    InvalidPercent {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The percentage has more than four decimals (finer than 1 ppm).
    PercentTooPrecise {
        /// The rejected input.
        input: String,
    },
    /// The percentage is syntactically valid but greater than 100%.
    PercentOutOfRange {
        /// The rejected input.
        input: String,
    },
    /// A parts-per-million value greater than 1,000,000 (100%).
    PpmOutOfRange {
        /// The rejected value.
        ppm: u32,
    },
    /// The string is not a syntactically valid duration.
    InvalidDuration {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The duration is syntactically valid but too large to represent in milliseconds as a `u64`.
    DurationOverflow {
        /// The rejected input.
        input: String,
    },
    /// The string is not a count (a non-negative integer that fits a `u64`).
    InvalidCount {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPercent { input, reason } => write!(
                f,
                "invalid percentage {input:?}: {reason} (expected e.g. \"0.5%\" or \"10%\")"
            ),
            Self::PercentTooPrecise { input } => write!(
                f,
                "invalid percentage {input:?}: more than {MAX_PERCENT_DECIMALS} decimals (the finest step is 0.0001%)"
            ),
            Self::PercentOutOfRange { input } => {
                write!(f, "invalid percentage {input:?}: greater than 100%")
            }
            Self::PpmOutOfRange { ppm } => write!(
                f,
                "invalid ratio of {ppm} parts per million: greater than {PPM_PER_WHOLE} (100%)"
            ),
            Self::InvalidDuration { input, reason } => write!(
                f,
                "invalid duration {input:?}: {reason} (expected e.g. \"15s\", \"1m30s\" or \"500ms\")"
            ),
            Self::DurationOverflow { input } => {
                write!(f, "invalid duration {input:?}: too large")
            }
            Self::InvalidCount { input, reason } => write!(
                f,
                "invalid count {input:?}: {reason} (expected a whole number such as \"1520\")"
            ),
        }
    }
}

impl Error for QuantityError {}

/// A fraction between 0 and 1 inclusive, stored exactly as parts per million.
///
/// Parsed from and displayed as a percentage string: 1 ppm is "0.0001%",
/// 5,000 ppm is "0.5%", 1,000,000 ppm is "100%".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ratio(u32);

impl Ratio {
    /// 0%.
    pub const ZERO: Ratio = Ratio(0);
    /// 100%.
    pub const ONE: Ratio = Ratio(PPM_PER_WHOLE);

    /// Builds a ratio from parts per million.
    ///
    /// # Errors
    ///
    /// [`QuantityError::PpmOutOfRange`] if `ppm` is above 1,000,000 (100%).
    pub const fn from_ppm(ppm: u32) -> Result<Ratio, QuantityError> {
        if ppm > PPM_PER_WHOLE {
            Err(QuantityError::PpmOutOfRange { ppm })
        } else {
            Ok(Ratio(ppm))
        }
    }

    /// The ratio in parts per million (0..=1,000,000).
    #[must_use]
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// The ratio as a fraction of one: "1%" is 0.01, "100%" is 1.0.
    #[must_use]
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / f64::from(PPM_PER_WHOLE)
    }
}

impl fmt::Display for Ratio {
    /// Formats as the canonical shortest percentage: "0.5%", "10%", "0.0001%".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / PPM_PER_PERCENT;
        let frac = self.0 % PPM_PER_PERCENT;
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:04}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

impl FromStr for Ratio {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_percent(s)
    }
}

/// On the wire a ratio is its canonical percentage string, as people write it in a policy.
impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_percent(&text).map_err(serde::de::Error::custom)
    }
}

/// A string matching [`PERCENT_PATTERN`], inlined where it is used.
impl JsonSchema for Ratio {
    fn schema_name() -> Cow<'static, str> {
        "Ratio".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": PERCENT_PATTERN })
    }
}

/// Parses a percentage such as "0.5%", "1%", "100%", "0%" or "12.25%" into a [`Ratio`].
///
/// The accepted language is [`PERCENT_PATTERN`] plus the bound `<= 100%`.
/// Trailing zeros in the decimals are allowed ("0.50%"); [`Ratio`]'s `Display`
/// gives the canonical form.
///
/// # Errors
///
/// [`QuantityError::InvalidPercent`] for a syntax error,
/// [`QuantityError::PercentTooPrecise`] for more than four decimals and
/// [`QuantityError::PercentOutOfRange`] above 100%.
pub fn parse_percent(s: &str) -> Result<Ratio, QuantityError> {
    let invalid = |reason: String| QuantityError::InvalidPercent {
        input: s.to_owned(),
        reason,
    };
    if s.is_empty() {
        return Err(invalid("empty string".to_owned()));
    }
    if let Some((at, c)) = s.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(invalid(format!(
            "whitespace {c:?} at byte {at} is not allowed"
        )));
    }
    if s.starts_with('-') {
        return Err(invalid("negative percentages are not allowed".to_owned()));
    }
    if s.starts_with('+') {
        return Err(invalid("a sign is not allowed".to_owned()));
    }
    let Some(body) = s.strip_suffix('%') else {
        return Err(invalid("missing '%' suffix".to_owned()));
    };
    if body.is_empty() {
        return Err(invalid("missing number before '%'".to_owned()));
    }
    if let Some((at, c)) = body
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_digit() && c != '.')
    {
        return Err(invalid(format!("unexpected character {c:?} at byte {at}")));
    }
    let (int_part, frac_part) = match body.split_once('.') {
        None => (body, None),
        Some((_, rest)) if rest.contains('.') => {
            return Err(invalid("more than one decimal point".to_owned()));
        }
        Some((int_part, frac_part)) => (int_part, Some(frac_part)),
    };
    if int_part.is_empty() {
        return Err(invalid(
            "missing digits before the decimal point".to_owned(),
        ));
    }
    if int_part.len() > 1 && int_part.starts_with('0') {
        return Err(invalid("leading zeros are not allowed".to_owned()));
    }
    let frac_ppm = match frac_part {
        None => 0,
        Some("") => {
            return Err(invalid("missing digits after the decimal point".to_owned()));
        }
        Some(frac) if frac.len() > MAX_PERCENT_DECIMALS => {
            return Err(QuantityError::PercentTooPrecise {
                input: s.to_owned(),
            });
        }
        Some(frac) => {
            // Right-pad to four digits: "5" -> 5000 ppm-of-a-percent units.
            let mut value = 0u32;
            for i in 0..MAX_PERCENT_DECIMALS {
                let digit = frac.as_bytes().get(i).map_or(0, |b| u32::from(b - b'0'));
                value = value * 10 + digit;
            }
            value
        }
    };
    let out_of_range = || QuantityError::PercentOutOfRange {
        input: s.to_owned(),
    };
    // More than three integer digits (no leading zeros) is always > 100.
    if int_part.len() > 3 {
        return Err(out_of_range());
    }
    let whole = int_part
        .bytes()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    let ppm = whole * PPM_PER_PERCENT + frac_ppm;
    if ppm > PPM_PER_WHOLE {
        return Err(out_of_range());
    }
    Ok(Ratio(ppm))
}

/// Parses a count such as "0" or "1520": the accepted language is [`COUNT_PATTERN`] within
/// `u64`.
///
/// # Errors
///
/// [`QuantityError::InvalidCount`] for anything else, naming the input.
pub fn parse_count(s: &str) -> Result<u64, QuantityError> {
    let invalid = |reason: &str| QuantityError::InvalidCount {
        input: s.to_owned(),
        reason: reason.to_owned(),
    };
    if s.is_empty() {
        return Err(invalid("empty string"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("only the digits 0-9 are allowed"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(invalid("leading zeros are not allowed"));
    }
    s.parse().map_err(|_| invalid("too large"))
}

/// Duration units in the order they must appear, with their length in milliseconds.
const DURATION_UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a duration such as "15s", "1m30s", "2h", "500ms" or "1h2m3s".
///
/// The accepted language is [`DURATION_PATTERN`]: units `h`, `m`, `s`, `ms`,
/// each at most once, in descending order, each preceded by a non-negative
/// integer. Leading zeros ("05s") and values that would carry into a larger
/// unit ("90s", "1m90s") are accepted, as in Prometheus durations;
/// [`format_duration`] gives the canonical form.
///
/// # Errors
///
/// [`QuantityError::InvalidDuration`] for a syntax error and
/// [`QuantityError::DurationOverflow`] if the total does not fit in a `u64`
/// number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, QuantityError> {
    let invalid = |reason: String| QuantityError::InvalidDuration {
        input: s.to_owned(),
        reason,
    };
    let overflow = || QuantityError::DurationOverflow {
        input: s.to_owned(),
    };
    if s.is_empty() {
        return Err(invalid("empty string".to_owned()));
    }
    let bytes = s.as_bytes();
    let mut pos = 0;
    // Index into DURATION_UNITS of the next unit allowed; units must strictly descend.
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(invalid(unexpected_in_duration(s, pos, true)));
        }
        let digits = &s[digits_start..pos];
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[unit_start..pos];
        if unit.is_empty() {
            if pos == bytes.len() {
                return Err(invalid(format!(
                    "number {digits:?} has no unit (expected one of h, m, s, ms)"
                )));
            }
            return Err(invalid(unexpected_in_duration(s, pos, false)));
        }
        let Some(index) = DURATION_UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(format!(
                "unknown unit {unit:?} at byte {unit_start} (expected one of h, m, s, ms)"
            )));
        };
        if index < next_unit {
            let previous = DURATION_UNITS[next_unit - 1].0;
            let reason = if index == next_unit - 1 {
                format!("unit {unit:?} appears more than once")
            } else {
                format!(
                    "unit {unit:?} after {previous:?}: units must appear in the order h, m, s, ms"
                )
            };
            return Err(invalid(reason));
        }
        next_unit = index + 1;
        let value: u64 = digits.parse().map_err(|_| overflow())?;
        let unit_ms = DURATION_UNITS[index].1;
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(overflow)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Describes the unexpected character at byte `pos` of a duration string.
fn unexpected_in_duration(s: &str, pos: usize, expecting_number: bool) -> String {
    let Some(c) = s.get(pos..).and_then(|rest| rest.chars().next()) else {
        return "unexpected end of input".to_owned();
    };
    match c {
        '-' if pos == 0 => "negative durations are not allowed".to_owned(),
        '+' if pos == 0 => "a sign is not allowed".to_owned(),
        '.' | ',' => format!(
            "fractional values are not allowed (byte {pos}); use a smaller unit, e.g. \"1s500ms\""
        ),
        c if c.is_whitespace() => format!("whitespace {c:?} at byte {pos} is not allowed"),
        c if expecting_number && c.is_ascii_alphabetic() => {
            format!("unit at byte {pos} has no number before it")
        }
        c => format!("unexpected character {c:?} at byte {pos}"),
    }
}

/// Formats a duration in the canonical shortest form accepted by [`parse_duration`]:
/// "1m30s" for 90 s, "0s" for zero, "1s500ms" for 1.5 s.
///
/// The form is millisecond-granular: any sub-millisecond part is truncated.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let parts = [
        (secs / 3600, "h"),
        ((secs % 3600) / 60, "m"),
        (secs % 60, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ];
    let mut out = String::new();
    for (value, unit) in parts {
        if value > 0 {
            out.push_str(&value.to_string());
            out.push_str(unit);
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// Formats a duration as a PromQL range literal in whole seconds, rounded up,
/// with a minimum of one second: 1.5 s gives "2s", zero gives "1s", one hour gives "3600s".
#[must_use]
pub fn prometheus_range(d: Duration) -> String {
    let mut secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs = secs.saturating_add(1);
    }
    format!("{}s", secs.max(1))
}

/// Formats a duration as the longest whole-second PromQL range that fits in it, with a
/// minimum of one second: 2.9 s gives "2s". A `[{{elapsed}}]` range rendered this way never
/// reaches back before the moment it is measured from.
#[must_use]
pub fn prometheus_range_within(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* generator for property-style tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn percent_good_inputs() {
        let cases: &[(&str, u32)] = &[
            ("0%", 0),
            ("0.0%", 0),
            ("0.0001%", 1),
            ("0.001%", 10),
            ("0.01%", 100),
            ("0.1%", 1_000),
            ("0.5%", 5_000),
            ("0.50%", 5_000),
            ("1%", 10_000),
            ("1.0%", 10_000),
            ("10%", 100_000),
            ("12.25%", 122_500),
            ("33.3333%", 333_333),
            ("99.9999%", 999_999),
            ("100%", 1_000_000),
            ("100.0%", 1_000_000),
            ("100.0000%", 1_000_000),
        ];
        for &(input, ppm) in cases {
            let ratio = parse_percent(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(ratio.ppm(), ppm, "{input}");
            assert_eq!(input.parse::<Ratio>(), Ok(ratio), "{input}");
        }
    }

    #[test]
    fn percent_bad_inputs() {
        let cases = [
            "",
            "%",
            "1",
            "0.5",
            "-1%",
            "-0%",
            "+1%",
            "1e-2%",
            "1E2%",
            "NaN%",
            "nan%",
            "inf%",
            "Infinity%",
            " 1%",
            "1% ",
            "1 %",
            "\t1%",
            "1.2.3%",
            "1..2%",
            ".5%",
            "1.%",
            "01%",
            "00%",
            "00.5%",
            "1%%",
            "%1",
            "1,5%",
            "0x10%",
            "½%",
            "１%",
            "0.00001%",
            "1.23456%",
            "100.00001%",
            "100.0001%",
            "101%",
            "200%",
            "1000%",
            "99999999999999999999999%",
            "1_000%",
            "1 000%",
        ];
        for input in cases {
            let err = parse_percent(input).expect_err(input);
            assert!(
                err.to_string().contains(&format!("{input:?}")),
                "message for {input:?} does not name the input: {err}"
            );
        }
    }

    #[test]
    fn percent_error_kinds() {
        assert_eq!(
            parse_percent("0.00001%"),
            Err(QuantityError::PercentTooPrecise {
                input: "0.00001%".into()
            })
        );
        assert_eq!(
            parse_percent("101%"),
            Err(QuantityError::PercentOutOfRange {
                input: "101%".into()
            })
        );
        assert_eq!(
            parse_percent("100.0001%"),
            Err(QuantityError::PercentOutOfRange {
                input: "100.0001%".into()
            })
        );
        let reason = |s: &str| match parse_percent(s) {
            Err(QuantityError::InvalidPercent { reason, .. }) => reason,
            other => panic!("{s}: unexpected {other:?}"),
        };
        assert!(reason("1").contains("'%'"));
        assert!(reason("-1%").contains("negative"));
        assert!(reason("+1%").contains("sign"));
        assert!(reason("1e-2%").contains("'e'"));
        assert!(reason("NaN%").contains("'N'"));
        assert!(reason("1 %").contains("whitespace"));
        assert!(reason("1.2.3%").contains("more than one decimal point"));
        assert!(reason("").contains("empty"));
        assert!(reason("01%").contains("leading zeros"));
        assert!(reason(".5%").contains("before the decimal point"));
        assert!(reason("1.%").contains("after the decimal point"));
    }

    #[test]
    fn percent_display_is_canonical() {
        let cases: &[(&str, &str)] = &[
            ("0%", "0%"),
            ("0.0%", "0%"),
            ("0.50%", "0.5%"),
            ("0.5%", "0.5%"),
            ("10%", "10%"),
            ("10.00%", "10%"),
            ("12.25%", "12.25%"),
            ("0.0001%", "0.0001%"),
            ("0.0010%", "0.001%"),
            ("100.0%", "100%"),
            ("7.1%", "7.1%"),
        ];
        for &(input, canonical) in cases {
            let ratio = parse_percent(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(ratio.to_string(), canonical, "{input}");
            // Canonical strings are fixed points.
            assert_eq!(parse_percent(canonical), Ok(ratio));
        }
    }

    #[test]
    fn ratio_accessors() {
        assert_eq!(Ratio::from_ppm(1_000_000), Ok(Ratio::ONE));
        assert_eq!(Ratio::from_ppm(0), Ok(Ratio::ZERO));
        assert_eq!(Ratio::default(), Ratio::ZERO);
        assert_eq!(
            Ratio::from_ppm(1_000_001),
            Err(QuantityError::PpmOutOfRange { ppm: 1_000_001 })
        );
        assert!(
            QuantityError::PpmOutOfRange { ppm: 1_000_001 }
                .to_string()
                .contains("1000001")
        );
        assert_eq!(parse_percent("1%").map(Ratio::as_f64), Ok(0.01));
        assert_eq!(parse_percent("100%").map(Ratio::as_f64), Ok(1.0));
        assert_eq!(parse_percent("0.5%").map(Ratio::as_f64), Ok(0.005));
        assert_eq!(parse_percent("0%").map(Ratio::as_f64), Ok(0.0));
        assert!(parse_percent("0.5%").ok() < parse_percent("1%").ok());
    }

    #[test]
    fn ratio_round_trips_for_sampled_ppm() {
        let mut rng = Rng(0x5EED_0001);
        let mut samples: Vec<u32> = (0..=2_000).chain(998_000..=1_000_000).collect();
        samples.extend((0..50_000).map(|_| rng.below(1_000_001) as u32));
        for step in [10, 100, 1_000, 10_000] {
            samples.extend((0..=1_000_000).step_by(step));
        }
        for ppm in samples {
            let ratio = Ratio::from_ppm(ppm).unwrap_or_else(|e| panic!("{ppm}: {e}"));
            let text = ratio.to_string();
            assert_eq!(parse_percent(&text), Ok(ratio), "{ppm} -> {text}");
            // Shortest: no trailing zero in the decimals, no bare trailing dot.
            let body = text.trim_end_matches('%');
            if let Some((_, frac)) = body.split_once('.') {
                assert!(!frac.is_empty() && !frac.ends_with('0'), "{text}");
            }
            assert!((ratio.as_f64() * 1e6 - f64::from(ppm)).abs() < 1e-6);
        }
    }

    #[test]
    fn duration_good_inputs() {
        let cases: &[(&str, u64)] = &[
            ("0s", 0),
            ("0ms", 0),
            ("0h", 0),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("90s", 90_000),
            ("2h", 7_200_000),
            ("500ms", 500),
            ("1h2m3s", 3_723_000),
            ("1h2m3s4ms", 3_723_004),
            ("1h3s", 3_603_000),
            ("1h500ms", 3_600_500),
            ("1m500ms", 60_500),
            ("1s500ms", 1_500),
            ("2m", 120_000),
            ("05s", 5_000),
            ("1m90s", 150_000),
            ("1500ms", 1_500),
            ("18446744073709551615ms", u64::MAX),
        ];
        for &(input, ms) in cases {
            let d = parse_duration(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d, Duration::from_millis(ms), "{input}");
        }
    }

    #[test]
    fn duration_bad_inputs() {
        let cases = [
            "",
            "s",
            "ms",
            "h",
            "15",
            "0",
            "-1s",
            "+1s",
            "1.5s",
            "1,5s",
            "1d",
            "1w",
            "1y",
            "1us",
            "1ns",
            "1S",
            "1H",
            "1sec",
            "1 s",
            " 1s",
            "1s ",
            "1s 2ms",
            "1s1m",
            "30s1m",
            "1ms1s",
            "1s1s",
            "1m1m",
            "1h1h",
            "1h1m1s1ms1ms",
            "1m1h",
            "1ms500",
            "1m30",
            "1h-1m",
            "m1",
            "1m s",
            "1½s",
            "１s",
            "1s\n",
            "\u{0}1s",
            "18446744073709551616ms",
            "18446744073709551615s",
            "99999999999999999999999h",
            "5124095576030432h",
        ];
        for input in cases {
            let err = parse_duration(input).expect_err(input);
            assert!(
                err.to_string().contains(&format!("{input:?}")),
                "message for {input:?} does not name the input: {err}"
            );
        }
    }

    #[test]
    fn duration_error_reasons() {
        let reason = |s: &str| match parse_duration(s) {
            Err(QuantityError::InvalidDuration { reason, .. }) => reason,
            other => panic!("{s}: unexpected {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason("15").contains("no unit"));
        assert!(reason("-1s").contains("negative"));
        assert!(reason("+1s").contains("sign"));
        assert!(reason("1.5s").contains("fractional"));
        assert!(reason("1d").contains("unknown unit \"d\""));
        assert!(reason("1s1s").contains("more than once"));
        assert!(reason("1s1m").contains("order"));
        assert!(reason("1 s").contains("whitespace"));
        assert!(reason("s").contains("no number"));
        assert!(reason("1m30").contains("no unit"));
        assert_eq!(
            parse_duration("18446744073709551616ms"),
            Err(QuantityError::DurationOverflow {
                input: "18446744073709551616ms".into()
            })
        );
    }

    #[test]
    fn duration_format_is_canonical() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (1, "1ms"),
            (500, "500ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (1_500, "1s500ms"),
            (15_000, "15s"),
            (59_999, "59s999ms"),
            (60_000, "1m"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (3_600_500, "1h500ms"),
            (3_723_004, "1h2m3s4ms"),
            (86_400_000, "24h"),
        ];
        for &(ms, text) in cases {
            assert_eq!(format_duration(Duration::from_millis(ms)), text, "{ms}");
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        // format(parse(x)) is the canonical form of x.
        let non_canonical: &[(&str, &str)] = &[
            ("90s", "1m30s"),
            ("1500ms", "1s500ms"),
            ("0ms", "0s"),
            ("0h", "0s"),
            ("60m", "1h"),
            ("05s", "5s"),
            ("1m90s", "2m30s"),
            ("0h0m0s0ms", "0s"),
            ("1h0m", "1h"),
        ];
        for &(input, canonical) in non_canonical {
            let d = parse_duration(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(format_duration(d), canonical, "{input}");
        }
        // Sub-millisecond parts are truncated.
        assert_eq!(format_duration(Duration::from_micros(1_999)), "1ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0s");
        // Formatting never panics, even at the extreme.
        assert!(format_duration(Duration::MAX).ends_with("ms"));
    }

    #[test]
    fn duration_round_trips_for_generated_values() {
        let mut rng = Rng(0x5EED_0002);
        let scales = [1_000, 60_000, 3_600_000, 86_400_000, 1 << 40, u64::MAX];
        for i in 0..100_000 {
            let ms = rng.below(scales[i % scales.len()]);
            let d = Duration::from_millis(ms);
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "{ms} -> {text}");
            // The canonical form is a fixed point.
            assert_eq!(
                format_duration(parse_duration(&text).unwrap_or_default()),
                text
            );
        }
        // Random well-formed but non-canonical spellings parse to the expected value.
        for _ in 0..20_000 {
            let parts = [
                rng.below(100),
                rng.below(200),
                rng.below(200),
                rng.below(5_000),
            ];
            let mut text = String::new();
            let mut expected = 0;
            for (k, (unit, unit_ms)) in DURATION_UNITS.iter().enumerate() {
                if rng.below(2) == 0 {
                    text.push_str(&format!("{}{unit}", parts[k]));
                    expected += parts[k] * unit_ms;
                }
            }
            if text.is_empty() {
                continue;
            }
            assert_eq!(
                parse_duration(&text),
                Ok(Duration::from_millis(expected)),
                "{text}"
            );
        }
    }

    #[test]
    fn prometheus_range_rounds_up() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "1s"),
            (Duration::from_nanos(1), "1s"),
            (Duration::from_millis(999), "1s"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_001), "2s"),
            (Duration::from_millis(1_500), "2s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(300), "300s"),
            (Duration::from_secs(3_600), "3600s"),
            (Duration::MAX, "18446744073709551615s"),
        ];
        for &(d, text) in cases {
            assert_eq!(prometheus_range(d), text, "{d:?}");
        }
    }

    #[test]
    fn prometheus_range_within_rounds_down() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "1s"),
            (Duration::from_millis(1_999), "1s"),
            (Duration::from_secs(2), "2s"),
            (Duration::from_millis(2_900), "2s"),
            (Duration::from_secs(3_600), "3600s"),
        ];
        for &(d, text) in cases {
            assert_eq!(prometheus_range_within(d), text, "{d:?}");
        }
    }

    #[test]
    fn counts_parse_and_name_the_input_when_they_do_not() {
        for (input, n) in [
            ("0", 0),
            ("7", 7),
            ("1520", 1520),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_count(input), Ok(n), "{input}");
            assert_eq!(n.to_string(), input, "canonical");
        }
        let cases = [
            ("", "empty"),
            ("-1", "digits"),
            ("+1", "digits"),
            ("1.0", "digits"),
            ("1e3", "digits"),
            (" 1", "digits"),
            ("n/a", "digits"),
            ("１", "digits"),
            ("01", "leading zeros"),
            ("00", "leading zeros"),
            ("18446744073709551616", "too large"),
        ];
        for (input, why) in cases {
            let err = parse_count(input).expect_err(input);
            let text = err.to_string();
            assert!(
                text.contains(&format!("{input:?}")) && text.contains(why),
                "{text}"
            );
        }
    }

    #[test]
    fn a_ratio_is_its_percentage_string_on_the_wire() {
        let r = parse_percent("0.5%").expect("pct");
        assert_eq!(
            serde_json::to_value(r).expect("ser"),
            serde_json::json!("0.5%")
        );
        assert_eq!(
            serde_json::from_value::<Ratio>(serde_json::json!("0.50%")).ok(),
            Some(r)
        );
        for bad in [
            serde_json::json!("0.5"),
            serde_json::json!(0.5),
            serde_json::json!("101%"),
        ] {
            let err = serde_json::from_value::<Ratio>(bad.clone()).expect_err("bad");
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        let schema = serde_json::to_value(schemars::schema_for!(Ratio)).expect("schema");
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["pattern"], PERCENT_PATTERN);
    }

    #[test]
    fn patterns_are_anchored() {
        for pattern in [PERCENT_PATTERN, DURATION_PATTERN, COUNT_PATTERN] {
            assert!(
                pattern.starts_with('^') && pattern.ends_with('$'),
                "{pattern}"
            );
        }
    }
}
