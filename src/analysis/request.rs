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
use crate::api::policy::{AnalysisSpec, Preset, PrometheusSpec};
use crate::api::quantity::parse_duration;

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
}

impl Part {
    /// Every part, the canary's first.
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
        }
    }
}

/// A field of the analysis spec that does not resolve, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    /// The field as the API names it, e.g. `spec.analysis.interval`.
    pub field: &'static str,
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
        parts
    }

    /// The one query that asks for every part (see [`prometheus::combine`]).
    pub fn combined(&self) -> String {
        let tagged: Vec<(&str, &str)> = self
            .parts()
            .into_iter()
            .map(|(p, q)| (p.tag(), q))
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
    /// `spec.analysis.prometheus.insecure`: the token may go over plain `http://`.
    insecure: bool,
    timeout: Duration,
}

/// The requests and errors templates in force (the policy's own, else its preset's), parsed;
/// the first one missing or not parsing is named.
pub fn parse_templates(spec: &AnalysisSpec) -> Result<(Template, Template), InvalidField> {
    let parse = |field, src: Option<&str>| {
        let src = src.ok_or_else(|| InvalidField {
            field,
            message: missing_template(),
        })?;
        Template::parse(src).map_err(|e| InvalidField {
            field,
            message: e.to_string(),
        })
    };
    Ok((
        parse("spec.analysis.requests", spec.requests_template())?,
        parse("spec.analysis.errors", spec.errors_template())?,
    ))
}

impl AnalysisRequest {
    /// Resolves `spec` (its templates or its preset's) for a tier that measures its baseline
    /// on the stable revision (`stable_baseline`) or not. The first field that does not parse
    /// is named.
    pub fn new(spec: &AnalysisSpec, stable_baseline: bool) -> Result<Self, InvalidField> {
        let (requests, errors) = parse_templates(spec)?;
        let interval = parse_duration(&spec.interval).map_err(|e| InvalidField {
            field: "spec.analysis.interval",
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
            insecure: spec.prometheus.as_ref().is_some_and(|p| p.insecure),
            timeout: timeout(spec)?,
        })
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

    /// Whether either template uses `variable`.
    pub fn uses(&self, variable: Variable) -> bool {
        [&self.requests, &self.errors]
            .iter()
            .any(|t| t.variables().contains(&variable))
    }

    /// The parts this request asks for.
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
        let stable = (self.stable_baseline && stable_known).then(|| {
            let v = self.vars(sample, Track::Stable);
            (self.requests.render(&v), self.errors.render(&v))
        });
        Ok(Rendered {
            requests: self.requests.render(&canary),
            errors: self.errors.render(&canary),
            stable,
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
        Ok(Counts::from_answers(
            |p| {
                answers
                    .get(p.tag())
                    .cloned()
                    .unwrap_or_else(|| Answer::of(p.tag(), None))
            },
            self.stable_baseline,
        ))
    }
}

/// Why a token with an `http://` address is refused (the CRD's rule says the same).
pub const TOKEN_OVER_HTTP: &str = "the bearer token would be sent over plain http://, where anyone on the path can read it: use an https:// address, or set spec.analysis.prometheus.insecure: true to allow it";

/// `spec.analysis.prometheus.address`, parsed ([`Address::parse`]), with a bearer token
/// only over `https://` unless `insecure` says otherwise. The field at fault is named.
pub fn prometheus_address(p: &PrometheusSpec) -> Result<Address, InvalidField> {
    let address = Address::parse(&p.address).map_err(|e| InvalidField {
        field: "spec.analysis.prometheus.address",
        message: format!("the URL {e}"),
    })?;
    if p.bearer_token_secret.is_some() && address.is_plain_http() && !p.insecure {
        return Err(InvalidField {
            field: "spec.analysis.prometheus.bearerTokenSecret",
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
            field: "spec.analysis.prometheus.timeout",
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
            .filter(|(l, _)| l.get(prometheus::PART_LABEL).map(String::as_str) == Some(tag))
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
