//! One analysis request: a run's query templates parsed, its interval and Prometheus endpoint
//! resolved, once; per sample, the parts rendered (the canary's requests and errors, and the
//! stable revision's when the tier measures its baseline there), combined into one query, and
//! the answer split back into counts. The controller's `measure`, `simulate` and `backtest` all
//! ask through it, so they send the same query and read the answer the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use super::address::Address;
use super::prometheus::{self, Answer, Endpoint, QueryError, RangeSeries, Series};
use super::query::{Template, Track, Variable, Vars};
use crate::api::policy::{AnalysisSpec, LatencyUnit, Preset, PrometheusSpec};
use crate::api::quantity::parse_duration;
use crate::plan::Plan;

/// Why a policy with neither a template nor a preset is refused (the API server refuses it
/// first, so this names the same fix).
fn missing_template() -> String {
    let presets: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
    format!(
        "required without spec.analysis.preset: give the PromQL template, or a preset that fills it ({})",
        presets.join(", ")
    )
}

/// A query timeout when the spec names no Prometheus (the default of
/// `spec.analysis.prometheus.timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One part of the combined query, told apart in the answer by [`prometheus::PART_LABEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Requests,
    Errors,
    StableRequests,
    StableErrors,
    /// The latency histogram's buckets: one series per bound (`le`).
    Latency,
    StableLatency,
}

impl Part {
    /// Every part answered by one number, the canary's first.
    pub const ALL: [Part; 4] = [
        Part::Requests,
        Part::Errors,
        Part::StableRequests,
        Part::StableErrors,
    ];

    /// The part's value of [`prometheus::PART_LABEL`].
    pub const fn tag(self) -> &'static str {
        match self {
            Part::Requests => "requests",
            Part::Errors => "errors",
            Part::StableRequests => "stable_requests",
            Part::StableErrors => "stable_errors",
            Part::Latency => "latency",
            Part::StableLatency => "stable_latency",
        }
    }
}

/// A tier's latency objective as the request asks for it: the histogram's template and unit.
#[derive(Debug, Clone, PartialEq)]
struct LatencyRequest {
    buckets: Template,
    unit: LatencyUnit,
    objective: Duration,
}

/// The slow requests one histogram answer shows: `requests` in its `+Inf` bucket, `slow`
/// above the objective's bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slow {
    pub requests: f64,
    pub slow: f64,
}

/// What a sample's latency histogram answered.
#[derive(Debug, Clone, PartialEq)]
pub enum LatencyCounts {
    /// The canary's slow requests, and the stable revision's when asked for.
    Values { canary: Slow, stable: Option<Slow> },
    /// The canary's histogram returned nothing (or NaN).
    NoData(String),
    /// The histogram cannot be read against the objective (no `le`, no `+Inf`, or the
    /// objective is not one of its bounds).
    Invalid(String),
}

/// What one check answered: its number, or why there is none (an empty vector, NaN, or
/// more than one series).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckValue {
    pub name: String,
    pub value: Result<f64, String>,
}

/// The tag of a check's part in the combined query.
fn check_tag(name: &str) -> String {
    format!("check:{name}")
}

/// Formats a bound in the histogram's unit.
fn bound_text(v: f64, unit: LatencyUnit) -> String {
    match unit {
        LatencyUnit::Seconds => format!("{v}s"),
        LatencyUnit::Milliseconds => format!("{v}ms"),
    }
}

/// Reads one histogram answer (`(le, count)` per series) against `objective`, whose bound in
/// the histogram's unit is looked up among the `le` values (`1` and `1.0` alike). `which`
/// names the histogram in messages.
pub fn slow_requests(
    series: &[(Option<&str>, f64)],
    objective: Duration,
    unit: LatencyUnit,
    which: &str,
) -> Result<Slow, LatencyCounts> {
    if series.is_empty() {
        return Err(LatencyCounts::NoData(format!(
            "the {which} latency query returned an empty vector"
        )));
    }
    let mut bounds: BTreeMap<u64, f64> = BTreeMap::new();
    let mut inf = None;
    for (le, v) in series {
        let Some(le) = le else {
            return Err(LatencyCounts::Invalid(format!(
                "the {which} latency query returned a series without an le label: it must return one series per bucket bound, e.g. sum by (le) (increase(..._bucket{{...}}[{{{{elapsed}}}}]))"
            )));
        };
        if v.is_nan() {
            return Err(LatencyCounts::NoData(format!(
                "the {which} latency query returned NaN"
            )));
        }
        let le = le.trim();
        if le.eq_ignore_ascii_case("+inf") || le.eq_ignore_ascii_case("inf") {
            *inf.get_or_insert(0.0) += v;
            continue;
        }
        let Ok(b) = le.parse::<f64>() else {
            return Err(LatencyCounts::Invalid(format!(
                "the {which} latency query returned le=\"{le}\", which is not a number"
            )));
        };
        // Bounds keyed by their bits: `1` and `1.0` are one bound, summed.
        *bounds.entry(b.to_bits()).or_insert(0.0) += v;
    }
    let Some(requests) = inf else {
        return Err(LatencyCounts::Invalid(format!(
            "the {which} latency histogram has no le=\"+Inf\" bucket, which counts its requests"
        )));
    };
    let target = match unit {
        LatencyUnit::Seconds => objective.as_secs_f64(),
        LatencyUnit::Milliseconds => objective.as_secs_f64() * 1000.0,
    };
    let at = bounds
        .iter()
        .find(|(b, _)| (f64::from_bits(**b) - target).abs() <= 1e-9 * target.max(1.0))
        .map(|(_, v)| *v);
    let Some(fast) = at else {
        let mut listed: Vec<f64> = bounds.keys().map(|b| f64::from_bits(*b)).collect();
        listed.sort_by(f64::total_cmp);
        let listed: Vec<String> = listed.iter().map(|b| bound_text(*b, unit)).collect();
        return Err(LatencyCounts::Invalid(format!(
            "the latency objective {} is not a bucket bound of the {which} histogram, whose bounds are {}: choose one of them",
            bound_text(target, unit),
            if listed.is_empty() {
                "none but +Inf".to_string()
            } else {
                listed.join(", ")
            }
        )));
    };
    Ok(Slow {
        requests,
        slow: (requests - fast).max(0.0),
    })
}

/// A field of the analysis spec that does not resolve, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field as the API names it, e.g. `spec.analysis.interval`.
    pub field: String,
    pub message: String,
}

/// The templates use `{{revision}}` but the pods of this track have no known
/// `pod-template-hash`; the caller says where it should have come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionUnknown(pub Track);

/// No Prometheus to ask: neither the spec nor the operator names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "no Prometheus address: set spec.analysis.prometheus.address or the operator's --prometheus-address"
)]
pub struct NoAddress;

/// What one sample's queries answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Counts {
    /// Canary requests and errors, and the stable revision's when asked for.
    Values {
        requests: f64,
        errors: f64,
        stable: Option<(f64, f64)>,
        /// The latency histogram's answer, when the tier has an objective.
        latency: Option<LatencyCounts>,
        /// Each check's value, in the policy's order, or why it has none.
        checks: Vec<CheckValue>,
    },
    /// A canary query returned an empty vector (or NaN).
    NoData(String),
}

impl Counts {
    /// The counts from each part's answer. The canary's parts decide; the stable revision's
    /// count only when both answered (and only with `stable`).
    pub fn from_answers(answer: impl Fn(Part) -> Answer, stable: bool) -> Counts {
        let value = |part: Part| match answer(part) {
            Answer::Value(v) => Ok(v),
            Answer::NoData(why) => Err(why),
        };
        match (value(Part::Requests), value(Part::Errors)) {
            (Ok(requests), Ok(errors)) => Counts::Values {
                requests,
                errors,
                stable: if stable {
                    value(Part::StableRequests)
                        .ok()
                        .zip(value(Part::StableErrors).ok())
                } else {
                    None
                },
                latency: None,
                checks: Vec::new(),
            },
            (Err(why), _) | (_, Err(why)) => Counts::NoData(why),
        }
    }
}

/// The window the requests query counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryWindow {
    /// `[{{elapsed}}]`: everything since the canary started.
    SinceStart,
    /// A fixed range such as `[{{interval}}]` or `[5m]`: the last stretch only.
    Last(Duration),
}

/// The variables that change from sample to sample (or from caller to caller): what is
/// measured, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SampleVars {
    /// The governed Deployment's namespace.
    pub namespace: String,
    /// The governed Deployment; its canary is `<deployment>-canary`.
    pub deployment: String,
    /// `{{service}}`.
    pub service: String,
    /// `{{route}}`.
    pub route: String,
    /// `{{elapsed}}`: how long the canary has had traffic.
    pub elapsed: Duration,
    /// `{{revision}}` of the canary's queries: its pods' `pod-template-hash`, when known.
    pub canary_revision: Option<String>,
    /// `{{revision}}` of the stable revision's queries, when known.
    pub stable_revision: Option<String>,
}

/// The queries of one sample, rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The canary's requests.
    pub requests: String,
    /// The canary's errors.
    pub errors: String,
    /// The stable revision's requests and errors, when the baseline is measured there.
    pub stable: Option<(String, String)>,
    /// The latency histogram's query, the canary's and stable's (when measured there), when
    /// the tier has an objective.
    pub latency: Option<(String, Option<String>)>,
    /// Each check's name and query, in the policy's order.
    pub checks: Vec<(String, String)>,
}

impl Rendered {
    /// Each part and its query, the canary's first.
    pub fn parts(&self) -> Vec<(Part, &str)> {
        let mut parts = vec![
            (Part::Requests, self.requests.as_str()),
            (Part::Errors, self.errors.as_str()),
        ];
        if let Some((r, e)) = &self.stable {
            parts.push((Part::StableRequests, r.as_str()));
            parts.push((Part::StableErrors, e.as_str()));
        }
        if let Some((canary, stable)) = &self.latency {
            parts.push((Part::Latency, canary.as_str()));
            if let Some(s) = stable {
                parts.push((Part::StableLatency, s.as_str()));
            }
        }
        parts
    }

    /// The one query that asks for every part and every check (see [`prometheus::combine`]).
    pub fn combined(&self) -> String {
        let checks: Vec<(String, &str)> = self
            .checks
            .iter()
            .map(|(name, q)| (check_tag(name), q.as_str()))
            .collect();
        let tagged: Vec<(&str, &str)> = self
            .parts()
            .into_iter()
            .map(|(p, q)| (p.tag(), q))
            .chain(checks.iter().map(|(t, q)| (t.as_str(), *q)))
            .collect();
        prometheus::combine(&tagged)
    }
}

/// A run's analysis, resolved: what the operator asks Prometheus at every sample.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisRequest {
    requests: Template,
    errors: Template,
    interval: Duration,
    stable_baseline: bool,
    /// Stable's counts are wanted, not needed (a fixed p0 checked against them): without its
    /// `{{revision}}` the sample measures the canary alone instead of failing.
    stable_optional: bool,
    address: Option<Address>,
    latency: Option<LatencyRequest>,
    /// `spec.analysis.checks`: each name and its parsed query.
    checks: Vec<(String, Template)>,
    /// `spec.analysis.prometheus.insecure`: the token may go over plain `http://`.
    insecure: bool,
    timeout: Duration,
}

/// The requests and errors templates in force (the policy's own, else its preset's), parsed;
/// the first one missing or not parsing is named.
pub fn parse_templates(spec: &AnalysisSpec) -> Result<(Template, Template), InvalidField> {
    let parse = |field, src: Option<&str>| {
        let src = src.ok_or_else(|| InvalidField {
            field: String::from(field),
            message: missing_template(),
        })?;
        Template::parse(src).map_err(|e| InvalidField {
            field: String::from(field),
            message: e.to_string(),
        })
    };
    Ok((
        parse("spec.analysis.requests", spec.requests_template())?,
        parse("spec.analysis.errors", spec.errors_template())?,
    ))
}

/// `spec.analysis.checks`' queries, parsed; the first that does not parse is named.
pub fn parse_checks(spec: &AnalysisSpec) -> Result<Vec<(String, Template)>, InvalidField> {
    spec.checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Template::parse(&c.query)
                .map(|t| (c.name.clone(), t))
                .map_err(|e| InvalidField {
                    field: format!("spec.analysis.checks[{i}].query"),
                    message: e.to_string(),
                })
        })
        .collect()
}

impl AnalysisRequest {
    /// Resolves `spec` (its templates or its preset's) for a tier that measures its baseline
    /// on the stable revision (`stable_baseline`) or not. The first field that does not parse
    /// is named.
    pub fn new(spec: &AnalysisSpec, stable_baseline: bool) -> Result<Self, InvalidField> {
        let (requests, errors) = parse_templates(spec)?;
        let interval = parse_duration(&spec.interval).map_err(|e| InvalidField {
            field: "spec.analysis.interval".into(),
            message: e.to_string(),
        })?;
        let address = spec
            .prometheus
            .as_ref()
            .map(prometheus_address)
            .transpose()?;
        Ok(AnalysisRequest {
            requests,
            errors,
            interval,
            stable_baseline,
            stable_optional: false,
            address,
            latency: None,
            checks: parse_checks(spec)?,
            insecure: spec.prometheus.as_ref().is_some_and(|p| p.insecure),
            timeout: timeout(spec)?,
        })
    }

    /// The request a run of `plan` makes: the stable revision measured when the plan says
    /// so (needed for a `stable` baseline, wanted otherwise), and the latency histogram when
    /// its tier has an objective.
    pub fn for_plan(spec: &AnalysisSpec, plan: &Plan) -> Result<Self, InvalidField> {
        let mut request =
            Self::new(spec, plan.measure_stable)?.stable_optional(!plan.baseline_stable());
        if let Some(l) = &plan.latency {
            let (src, unit) = spec.latency_template().ok_or_else(|| InvalidField {
                field: "spec.analysis.latency.buckets".into(),
                message: format!(
                    "required for a tier's latency objective: give the histogram's buckets template, or a preset that has one ({})",
                    Preset::ALL
                        .iter()
                        .filter(|p| p.templates().latency.is_some())
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
            let buckets = Template::parse(src).map_err(|e| InvalidField {
                field: "spec.analysis.latency.buckets".into(),
                message: e.to_string(),
            })?;
            request.latency = Some(LatencyRequest {
                buckets,
                unit,
                objective: l.objective,
            });
        }
        Ok(request)
    }

    /// How often a sample is taken (`{{interval}}`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the stable revision is measured too.
    pub fn stable_baseline(&self) -> bool {
        self.stable_baseline
    }

    /// Stable's counts only inform (a sequential tier with a fixed p0 checks it against
    /// them): when the templates need stable's `{{revision}}` and nobody knows it, the sample
    /// measures the canary alone rather than failing.
    pub fn stable_optional(mut self, yes: bool) -> Self {
        self.stable_optional = yes;
        self
    }

    /// Whether any template uses `variable`.
    pub fn uses(&self, variable: Variable) -> bool {
        [&self.requests, &self.errors]
            .into_iter()
            .chain(self.latency.as_ref().map(|l| &l.buckets))
            .chain(self.checks.iter().map(|(_, t)| t))
            .any(|t| t.variables().contains(&variable))
    }

    /// The parts answered by one number that this request asks for.
    pub fn parts(&self) -> &'static [Part] {
        if self.stable_baseline {
            &Part::ALL
        } else {
            &Part::ALL[..2]
        }
    }

    /// The template variables for measuring `track`.
    fn vars(&self, sample: &SampleVars, track: Track) -> Vars {
        let mut vars = Vars::for_track(track, &sample.namespace, &sample.deployment);
        vars.service = sample.service.clone();
        vars.route = sample.route.clone();
        vars.interval = self.interval;
        vars.elapsed = sample.elapsed;
        let revision = match track {
            Track::Canary => &sample.canary_revision,
            Track::Stable => &sample.stable_revision,
        };
        vars.revision = revision.clone().unwrap_or_default();
        vars
    }

    /// The queries for `sample`. A revision the templates need but nobody knows is refused:
    /// an empty `{{revision}}` would count nothing, or the wrong pods.
    pub fn render(&self, sample: &SampleVars) -> Result<Rendered, RevisionUnknown> {
        if self.uses(Variable::Revision) {
            if sample.canary_revision.is_none() {
                return Err(RevisionUnknown(Track::Canary));
            }
            if self.stable_baseline && sample.stable_revision.is_none() && !self.stable_optional {
                return Err(RevisionUnknown(Track::Stable));
            }
        }
        let canary = self.vars(sample, Track::Canary);
        let stable_known = !self.uses(Variable::Revision) || sample.stable_revision.is_some();
        let stable_vars =
            (self.stable_baseline && stable_known).then(|| self.vars(sample, Track::Stable));
        let stable = stable_vars
            .as_ref()
            .map(|v| (self.requests.render(v), self.errors.render(v)));
        let latency = self.latency.as_ref().map(|l| {
            (
                l.buckets.render(&canary),
                stable_vars.as_ref().map(|v| l.buckets.render(v)),
            )
        });
        let checks = self
            .checks
            .iter()
            .map(|(name, t)| (name.clone(), t.render(&canary)))
            .collect();
        Ok(Rendered {
            requests: self.requests.render(&canary),
            errors: self.errors.render(&canary),
            stable,
            latency,
            checks,
        })
    }

    /// Which window the requests template counts over: `{{elapsed}}` means since the canary
    /// started, `{{interval}}` the last interval, a literal range such as `[5m]` that range,
    /// and a query without a range (raw counters of a fresh canary) since the start too.
    pub fn window(&self, sample: &SampleVars) -> QueryWindow {
        let t = &self.requests;
        if t.variables().contains(&Variable::Elapsed) {
            return QueryWindow::SinceStart;
        }
        if t.variables().contains(&Variable::Interval) {
            return QueryWindow::Last(self.interval);
        }
        let text = t.render(&self.vars(sample, Track::Canary));
        let mut rest = text.as_str();
        while let Some(open) = rest.find('[') {
            let after = &rest[open + 1..];
            let Some(close) = after.find(']') else { break };
            let inside = after[..close].split(':').next().unwrap_or("").trim();
            if let Ok(d) = parse_duration(inside)
                && !d.is_zero()
            {
                return QueryWindow::Last(d);
            }
            rest = &after[close..];
        }
        QueryWindow::SinceStart
    }

    /// Where to send the query: the spec's Prometheus, else the operator's `default_address`;
    /// no token yet (credentials are the caller's, and only the spec's Prometheus has any).
    pub fn endpoint(&self, default_address: Option<&Address>) -> Result<Endpoint, NoAddress> {
        let address = self
            .address
            .clone()
            .or_else(|| default_address.cloned())
            .ok_or(NoAddress)?;
        Ok(Endpoint {
            address,
            token: None,
            timeout: self.timeout,
            insecure: self.address.is_some() && self.insecure,
        })
    }

    /// Splits the answer to [`Rendered::combined`] into counts.
    pub fn counts(&self, series: &[Series]) -> Result<Counts, QueryError> {
        let tags: Vec<&str> = self.parts().iter().map(|p| p.tag()).collect();
        let answers = prometheus::split(series, &tags)?;
        let mut counts = Counts::from_answers(
            |p| {
                answers
                    .get(p.tag())
                    .cloned()
                    .unwrap_or_else(|| Answer::of(p.tag(), None))
            },
            self.stable_baseline,
        );
        if let Counts::Values {
            latency,
            stable,
            checks,
            ..
        } = &mut counts
        {
            if let Some(l) = &self.latency {
                *latency = Some(self.latency_counts(l, series, stable.is_some()));
            }
            *checks = self
                .checks
                .iter()
                .map(|(name, _)| CheckValue {
                    name: name.clone(),
                    value: check_value(series, name),
                })
                .collect();
        }
        Ok(counts)
    }

    /// The latency parts of an answer: the canary's histogram decides, the stable
    /// revision's counts when it was measured and can be read.
    fn latency_counts(&self, l: &LatencyRequest, series: &[Series], stable: bool) -> LatencyCounts {
        let of = |part: Part| -> Vec<(Option<&str>, f64)> {
            series
                .iter()
                .filter(|(labels, _)| prometheus::is_part(labels, part.tag()))
                .map(|(labels, v)| (labels.get("le").map(String::as_str), *v))
                .collect()
        };
        let canary = match slow_requests(&of(Part::Latency), l.objective, l.unit, "canary's") {
            Ok(c) => c,
            Err(why) => return why,
        };
        let stable = stable
            .then(|| slow_requests(&of(Part::StableLatency), l.objective, l.unit, "stable's").ok())
            .flatten();
        LatencyCounts::Values { canary, stable }
    }
}

/// A check's number in the answer to a combined query, or why it has none.
fn check_value(series: &[Series], name: &str) -> Result<f64, String> {
    match prometheus::values_of(series, &check_tag(name)).as_slice() {
        [] => Err(format!("the check {name}'s query returned an empty vector")),
        [v] if v.is_nan() => Err(format!("the check {name}'s query returned NaN")),
        [v] => Ok(*v),
        many => Err(format!(
            "the check {name}'s query returned {} series; wrap it in an aggregation (sum, max, ...) so it returns one number",
            many.len()
        )),
    }
}

/// Why a token with an `http://` address is refused (the CRD's rule says the same).
pub const TOKEN_OVER_HTTP: &str = "the bearer token would be sent over plain http://, where anyone on the path can read it: use an https:// address, or set spec.analysis.prometheus.insecure: true to allow it";

/// `spec.analysis.prometheus.address`, parsed ([`Address::parse`]), with a bearer token
/// only over `https://` unless `insecure` says otherwise. The field at fault is named.
pub fn prometheus_address(p: &PrometheusSpec) -> Result<Address, InvalidField> {
    let address = Address::parse(&p.address).map_err(|e| InvalidField {
        field: "spec.analysis.prometheus.address".into(),
        message: format!("the URL {e}"),
    })?;
    if p.bearer_token_secret.is_some() && address.is_plain_http() && !p.insecure {
        return Err(InvalidField {
            field: "spec.analysis.prometheus.bearerTokenSecret".into(),
            message: TOKEN_OVER_HTTP.into(),
        });
    }
    Ok(address)
}

/// `spec.analysis.prometheus.timeout`, parsed (10s when the spec names no Prometheus).
pub fn timeout(spec: &AnalysisSpec) -> Result<Duration, InvalidField> {
    match &spec.prometheus {
        None => Ok(DEFAULT_TIMEOUT),
        Some(p) => parse_duration(&p.timeout).map_err(|e| InvalidField {
            field: "spec.analysis.prometheus.timeout".into(),
            message: e.to_string(),
        }),
    }
}

/// Values per instant (Unix milliseconds) and part tag of a combined range query's answer.
pub type PointsByPart = BTreeMap<i64, BTreeMap<&'static str, f64>>;

/// Splits the answer to a combined range query into values per instant and part. Several
/// series for one part is the same error as for an instant query: the template lacks a `sum`.
pub fn points_by_part(series: &[RangeSeries]) -> Result<PointsByPart, QueryError> {
    let mut out = PointsByPart::new();
    for part in Part::ALL {
        let tag = part.tag();
        let mine: Vec<&RangeSeries> = series
            .iter()
            .filter(|(l, _)| prometheus::is_part(l, tag))
            .collect();
        if mine.len() > 1 {
            return Err(QueryError::TooManySeries { series: mine.len() });
        }
        for (_, points) in mine {
            for (t, v) in points {
                out.entry((t * 1000.0).round() as i64)
                    .or_default()
                    .insert(tag, *v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
