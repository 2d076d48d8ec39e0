//! The scenario file of `rollguard simulate`: how much traffic the service gets, how often
//! Prometheus scrapes it, the stable and canary error rates (fixed or on a schedule), the
//! revision's labels and annotations (which pick the tier), and windows without data.
//!
//! ```yaml
//! duration: 30m          # how long to simulate at most
//! rps: 100               # total requests per second to the service
//! scrapeInterval: 15s    # how fresh the counters are when the engine reads them
//! replicas: 10           # stable pods (the replicas router's slices depend on it)
//! stable: {errorRate: "0.1%"}  # or a schedule, for incidents
//! canary: {errorRate: "1%"}
//! errorClump: 1          # errors come in clumps of this many (dispersion)
//! # or: canary: {schedule: [{at: 0s, errorRate: "0.1%"}, {at: 5m, errorRate: "5%"}]}
//! revision: {annotations: {rollguard.dev/change-origin: ai-assisted}}
//! noData: [{from: 2m, to: 4m}]
//! approveAfter: 0s       # when a tier requires approval, given this long after it is asked
//! extrapolate: true      # increase() extrapolates to its range's edges, as Prometheus does
//! lazyErrorSeries: true  # the canary's error series appears at its first error
//! routingDelay: 5s       # a new share takes effect this long after the run asks for it
//! rollbackDelay: 20s     # after a rollback the canary keeps its share this long
//! # latency (for a tier's latency objective): each revision's median, log-normal with sigma
//! # latencySpread; the objective's slow share follows from it
//! # stable: {errorRate: "0.1%", latency: 50ms}; canary: {errorRate: "0.1%", latency: 150ms}
//! latencySpread: 0.5
//! checks: {cpu-saturation: 0.95, p99: {quantile: 0.99}}   # each check's value for the canary:
//! #   a number, or a quantile of the canary's latency in seconds (no data without requests)
//! slowAbove: 250ms       # count slow requests (blast radius) above this when the policy's
//! #   tier has no latency objective (one it has is used instead and must agree)
//! ```
//!
//! Times (`at`, `from`, `to`) count from the start of the simulated run, which is when the
//! canary is created; with instant readiness that is also when it first gets traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::yaml::{self, FileError};
use crate::api::quantity::{Ratio, parse_duration, parse_percent};

/// A parsed, checked scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// How long to simulate at most; a run still undecided then is reported as such.
    #[serde(default = "default_duration", deserialize_with = "positive_duration")]
    pub duration: Duration,
    /// Total requests per second to the service (stable and canary together).
    #[serde(deserialize_with = "rps")]
    pub rps: f64,
    /// How often Prometheus scrapes the counters: a query sees them as of the last scrape.
    #[serde(default = "default_scrape", deserialize_with = "positive_duration")]
    pub scrape_interval: Duration,
    /// Stable pods. With the replicas router the canary's share is its pods over all pods.
    #[serde(default = "default_replicas", deserialize_with = "replicas")]
    pub replicas: i32,
    /// The stable revision's error rate.
    #[serde(default)]
    pub stable: Stable,
    /// The canary's error rate, fixed or on a schedule.
    pub canary: Canary,
    /// Labels and annotations of the new revision's pod template (tier matching).
    #[serde(default)]
    pub revision: Revision,
    /// Windows in which the queries return nothing.
    #[serde(default)]
    pub no_data: Vec<Window>,
    /// When the tier requires an approval, it is given this long after the run asks.
    #[serde(default, deserialize_with = "duration")]
    pub approve_after: Duration,
    /// The policy stops governing the Deployment this long after the start (deleted, or its
    /// selector changed): the run ends as the operator ends it on release.
    #[serde(default, deserialize_with = "some_duration")]
    pub release_after: Option<Duration>,
    /// Errors come in clumps of this many (retries, one user's burst), on both revisions: the
    /// same error rate, with error counts this many times as variable as independent errors.
    #[serde(default = "default_clump")]
    pub error_clump: u32,
    /// `increase()` extrapolates to the edges of its range as Prometheus does (from the first
    /// and last samples in the range, by up to 1.1 average scrape intervals, never below a
    /// counter's zero), instead of returning the exact difference between two scrapes.
    #[serde(default)]
    pub extrapolate: bool,
    /// The canary's error series is created at its first error (Istio, Envoy, many client
    /// libraries with a status-code label): before that the errors query has no series, and
    /// `increase()` starts from the series' first scrape, so the errors before it are missed.
    /// Without `or vector(0)` in the policy's errors query, a sample with no series is no data.
    #[serde(default)]
    pub lazy_error_series: bool,
    /// A change of the canary's share the run asks for (a wider slice, or all traffic back to
    /// stable) takes effect this long later: route propagation, endpoints catching up.
    #[serde(default, deserialize_with = "duration")]
    pub routing_delay: Duration,
    /// After a rollback (or any end but a promotion) the canary keeps its share this long
    /// before traffic is back on stable: route propagation and pods draining. Defaults to
    /// `routingDelay`.
    #[serde(default, deserialize_with = "some_duration")]
    pub rollback_delay: Option<Duration>,
    /// The standard deviation of the log of a request's latency (each revision's `latency`
    /// is the median).
    #[serde(default = "default_spread", deserialize_with = "spread")]
    pub latency_spread: f64,
    /// What each of the policy's checks returns for the canary, by name; a check not listed
    /// returns nothing (no data).
    #[serde(default)]
    pub checks: BTreeMap<String, CheckValueSpec>,
    /// Slow requests are counted above this, for the report, when the policy's tier has no
    /// latency objective of its own.
    #[serde(default, deserialize_with = "some_duration")]
    pub slow_above: Option<Duration>,
}

/// What a check returns for the canary in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum CheckValueSpec {
    /// This number, every sample.
    Value(f64),
    /// A quantile of the canary's latency, in seconds (as `histogram_quantile` over its
    /// histogram would estimate it, without the estimate's noise), e.g. `{quantile: 0.99}`.
    Quantile { quantile: f64 },
}

impl CheckValueSpec {
    /// The check's value for a canary with median latency `median` and log spread `spread`.
    pub fn value(self, median: Duration, spread: f64) -> f64 {
        match self {
            CheckValueSpec::Value(v) => v,
            CheckValueSpec::Quantile { quantile } => {
                super::latency::quantile(quantile, median.as_secs_f64(), spread)
            }
        }
    }
}

fn default_spread() -> f64 {
    0.5
}

fn spread<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && v > 0.0 && v <= 5.0 {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "latencySpread must be within (0, 5], got {v}"
        )))
    }
}

/// The median latency of a revision that names none.
pub const DEFAULT_LATENCY: Duration = Duration::from_millis(50);

/// The share of a log-normal revision's requests (median `median`, log spread `spread`)
/// slower than `objective`.
pub fn slow_share(median: Duration, spread: f64, objective: Duration) -> f64 {
    1.0 - super::latency::within(objective.as_secs_f64(), median.as_secs_f64(), spread)
}

fn default_clump() -> u32 {
    1
}

fn default_duration() -> Duration {
    Duration::from_secs(3600)
}
fn default_scrape() -> Duration {
    Duration::from_secs(15)
}
fn default_replicas() -> i32 {
    10
}

/// The stable revision's error rate: `errorRate` or `schedule` (incidents), as the canary's;
/// 0% when omitted.
pub type Stable = Rates;

/// The canary's error rate.
pub type Canary = Rates;

/// A revision's error rate: `errorRate` or `schedule`, exactly one; and its median latency.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RateFields")]
pub struct Rates {
    /// `(from, rate)` pairs, `from` strictly increasing and the first at 0s.
    pub schedule: Vec<(Duration, Ratio)>,
    /// The median latency of its requests ([`DEFAULT_LATENCY`] when not given).
    pub latency: Duration,
}

impl Default for Rates {
    fn default() -> Rates {
        Rates {
            schedule: vec![(Duration::ZERO, Ratio::default())],
            latency: DEFAULT_LATENCY,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RateFields {
    #[serde(default, deserialize_with = "opt_ratio")]
    error_rate: Option<Ratio>,
    #[serde(default)]
    schedule: Option<Vec<Change>>,
    #[serde(default, deserialize_with = "some_duration")]
    latency: Option<Duration>,
}

/// One change of a revision's error rate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Change {
    /// From when (since the run started).
    #[serde(deserialize_with = "duration")]
    pub at: Duration,
    /// The revision's error rate from then on.
    #[serde(deserialize_with = "ratio")]
    pub error_rate: Ratio,
}

impl TryFrom<RateFields> for Rates {
    type Error = String;
    fn try_from(c: RateFields) -> Result<Rates, String> {
        let latency = c.latency.unwrap_or(DEFAULT_LATENCY);
        if latency.is_zero() {
            return Err("latency must be above 0s".into());
        }
        match (c.error_rate, c.schedule) {
            (Some(r), None) => Ok(Rates {
                schedule: vec![(Duration::ZERO, r)],
                latency,
            }),
            (None, Some(s)) => {
                if s.is_empty() {
                    return Err("schedule must list at least one change".into());
                }
                let mut out: Vec<(Duration, Ratio)> = Vec::with_capacity(s.len() + 1);
                if s[0].at > Duration::ZERO {
                    // The revision serves from the start, so the schedule must say how.
                    return Err(format!(
                        "schedule[0].at is {}: the first change must be at 0s (the revision serves from the start)",
                        crate::api::quantity::format_duration(s[0].at)
                    ));
                }
                for (i, ch) in s.iter().enumerate() {
                    if let Some((prev, _)) = out.last()
                        && ch.at <= *prev
                    {
                        return Err(format!(
                            "schedule[{i}].at must be later than schedule[{}].at",
                            i - 1
                        ));
                    }
                    out.push((ch.at, ch.error_rate));
                }
                Ok(Rates {
                    schedule: out,
                    latency,
                })
            }
            (Some(_), Some(_)) => Err("give errorRate or schedule, not both".into()),
            (None, None) => Err("missing field `errorRate` (or `schedule`)".into()),
        }
    }
}

impl Rates {
    /// The error rate `t` after the start.
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.schedule
            .iter()
            .rev()
            .find(|(at, _)| *at <= t)
            .or(self.schedule.first())
            .map_or(0.0, |(_, r)| r.as_f64())
    }

    /// The first error rate (at the start).
    pub fn first(&self) -> f64 {
        self.rate_at(Duration::ZERO)
    }

    /// When the rate changes next after `t`.
    pub fn next_change(&self, t: Duration) -> Option<Duration> {
        self.schedule.iter().map(|(at, _)| *at).find(|at| *at > t)
    }

    /// The highest error rate the revision ever has.
    pub fn max_rate(&self) -> f64 {
        self.schedule
            .iter()
            .map(|(_, r)| r.as_f64())
            .fold(0.0, f64::max)
    }
}

/// The new revision's pod-template metadata.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revision {
    /// Pod-template labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pod-template annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// A time window since the start of the run, `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "WindowFields")]
pub struct Window {
    pub from: Duration,
    pub to: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFields {
    #[serde(deserialize_with = "duration")]
    from: Duration,
    #[serde(deserialize_with = "duration")]
    to: Duration,
}

impl TryFrom<WindowFields> for Window {
    type Error = String;
    fn try_from(w: WindowFields) -> Result<Window, String> {
        if w.to <= w.from {
            return Err("`to` must be later than `from`".into());
        }
        Ok(Window {
            from: w.from,
            to: w.to,
        })
    }
}

impl Scenario {
    /// Parses a scenario; errors name the file, line and field.
    pub fn parse(text: &str, file: &str) -> Result<Scenario, FileError> {
        yaml::parse(text, file, &|_| false)
    }

    /// How long the canary keeps its share after the run ends other than by promotion.
    pub fn rollback_delay(&self) -> Duration {
        self.rollback_delay.unwrap_or(self.routing_delay)
    }

    /// Whether the queries return nothing `t` after the start.
    pub fn no_data_at(&self, t: Duration) -> bool {
        self.no_data.iter().any(|w| w.from <= t && t < w.to)
    }

    /// A canary that never fails more often than stable and is no slower is healthy;
    /// rolling it back is a false rollback. Any other canary is bad; promoting it is a miss.
    pub fn canary_is_healthy(&self) -> bool {
        self.canary.latency <= self.stable.latency
            && self
                .canary
                .schedule
                .iter()
                .chain(self.stable.schedule.iter())
                .all(|(t, _)| self.canary.rate_at(*t) <= self.stable.rate_at(*t))
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn positive_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = duration(d)?;
    if v.is_zero() {
        return Err(serde::de::Error::custom("must be longer than 0s"));
    }
    Ok(v)
}

fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Ratio, D::Error> {
    let s = String::deserialize(d)?;
    parse_percent(&s).map_err(serde::de::Error::custom)
}

fn opt_ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ratio>, D::Error> {
    ratio(d).map(Some)
}

fn rps<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v < 0.0 {
        return Err(serde::de::Error::custom(format!(
            "rps must be a number of requests per second, at least 0 (got {v})"
        )));
    }
    Ok(v)
}

fn replicas<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let v = i32::deserialize(d)?;
    if v < 1 {
        return Err(serde::de::Error::custom(format!(
            "replicas must be at least 1 (got {v})"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"
duration: 30m          # how long to simulate at most
rps: 100               # total requests per second to the service
scrapeInterval: 15s    # how fresh the counters are when the engine reads them
stable: {errorRate: "0.1%"}
canary: {errorRate: "1%"}
revision: {annotations: {rollguard.dev/change-origin: ai-assisted}}
noData: [{from: 2m, to: 4m}]
"#;

    #[test]
    fn the_issue_example_parses() {
        let s = Scenario::parse(ISSUE_EXAMPLE, "s.yaml").expect("parses");
        assert_eq!(s.duration, Duration::from_secs(1800));
        assert_eq!(s.rps, 100.0);
        assert_eq!(s.scrape_interval, Duration::from_secs(15));
        assert_eq!(s.replicas, 10);
        assert_eq!(s.stable.first(), 0.001);
        assert_eq!(s.canary.rate_at(Duration::from_secs(99)), 0.01);
        assert_eq!(
            s.revision
                .annotations
                .get("rollguard.dev/change-origin")
                .map(String::as_str),
            Some("ai-assisted")
        );
        assert!(s.no_data_at(Duration::from_secs(120)));
        assert!(!s.no_data_at(Duration::from_secs(240)));
        assert!(!s.canary_is_healthy());
    }

    #[test]
    fn schedules_change_the_rate() {
        let s = Scenario::parse(
            "rps: 10\ncanary:\n  schedule:\n  - {at: 0s, errorRate: \"0.1%\"}\n  - {at: 5m, errorRate: \"5%\"}\n",
            "s.yaml",
        )
        .expect("parses");
        assert_eq!(s.canary.rate_at(Duration::from_secs(299)), 0.001);
        assert_eq!(s.canary.rate_at(Duration::from_secs(300)), 0.05);
        assert_eq!(s.canary.max_rate(), 0.05);
        assert_eq!(s.duration, Duration::from_secs(3600));
    }

    #[test]
    fn prometheus_and_routing_unkindness_are_opt_in() {
        // (extra fields) -> (extrapolate, lazyErrorSeries, routingDelay, rollbackDelay)
        let cases = [
            ("", (false, false, 0, 0)),
            ("extrapolate: true\n", (true, false, 0, 0)),
            ("lazyErrorSeries: true\n", (false, true, 0, 0)),
            ("routingDelay: 5s\n", (false, false, 5, 5)),
            (
                "routingDelay: 5s\nrollbackDelay: 20s\n",
                (false, false, 5, 20),
            ),
            ("rollbackDelay: 20s\n", (false, false, 0, 20)),
        ];
        for (extra, (extrapolate, lazy, routing, rollback)) in cases {
            let s = Scenario::parse(
                &format!("rps: 1\ncanary: {{errorRate: 1%}}\n{extra}"),
                "s.yaml",
            )
            .expect("parses");
            assert_eq!(
                (
                    s.extrapolate,
                    s.lazy_error_series,
                    s.routing_delay.as_secs(),
                    s.rollback_delay().as_secs()
                ),
                (extrapolate, lazy, routing, rollback),
                "{extra:?}"
            );
        }
        assert!(
            err("rps: 1\ncanary: {errorRate: 1%}\nroutingDelay: soon\n")
                .contains("s.yaml:3:15: routingDelay: invalid duration")
        );
    }

    fn err(text: &str) -> String {
        Scenario::parse(text, "s.yaml")
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn errors_name_the_line_and_field() {
        // (document, expected message)
        let cases = [
            (
                "rps: 100\ncanary:\n  errorRate: 1 percent\n",
                "s.yaml:3:14: canary.errorRate: invalid percentage \"1 percent\"",
            ),
            (
                "rps: lots\ncanary: {errorRate: 1%}\n",
                "s.yaml:1:6: rps: invalid type: string \"lots\"",
            ),
            (
                "rps: -5\ncanary: {errorRate: 1%}\n",
                "s.yaml:1:6: rps: rps must be a number",
            ),
            (
                "rps: 1\nscrapeInterval: 15 s\ncanary: {errorRate: 1%}\n",
                "s.yaml:2:17: scrapeInterval: invalid duration \"15 s\"",
            ),
            (
                "rps: 1\ncanary: {errorRate: 1%}\nstable:\n  errorRat: 1%\n",
                "s.yaml:4:13: stable.errorRat: unknown field `errorRat`, expected one of `errorRate`",
            ),
            ("rps: 1\n", "s.yaml:1:1: missing field `canary`"),
            (
                "rps: 1\ncanary: {errorRate: 1%}\nnoData:\n- {from: 1m, to: 2m}\n- {from: 3m, to: 2m}\n",
                "s.yaml:5:3: noData[1]: `to` must be later than `from`",
            ),
            (
                "rps: 1\ncanary:\n  schedule:\n  - {at: 0s, errorRate: 1%}\n  - {at: 0s, errorRate: 2%}\n",
                "s.yaml:3:3: canary: schedule[1].at must be later than schedule[0].at",
            ),
            (
                "rps: 1\ncanary: {errorRate: 1%, schedule: []}\n",
                "canary: give errorRate or schedule, not both",
            ),
            (
                "rps: 1\ncanary: {}\n",
                "s.yaml:2:9: canary: missing field `errorRate` (or `schedule`)",
            ),
            (
                "rps: 1\ncanary: {errorRate: 1%}\nreplicas: 0\n",
                "s.yaml:3:11: replicas: replicas must be at least 1",
            ),
        ];
        for (doc, want) in cases {
            let got = err(doc);
            assert!(got.contains(want), "for {doc:?}\n got: {got}\nwant: {want}");
        }
    }
}
