//! `rollguard backtest`: replays a policy's analysis over data Prometheus recorded, and says
//! what the policy would have done and when.
//!
//! The canary is taken to have started at `--from`. The policy's query templates are
//! rendered for the canary workload `<deployment>-canary` and combined into one query by the
//! same [`AnalysisRequest`] the operator uses, and evaluated with one range query
//! (`/api/v1/query_range`) from `--from` plus one analysis interval to `--to`, one point per
//! interval: exactly the instants at which the operator would have sampled. The points then
//! feed the operator's run state machine through the same virtual-time driver as
//! `rollguard simulate`, so steps, verdicts, rollbacks and promotions are the machine's own.
//!
//! A range query renders its template once, so `{{elapsed}}` (the time since the canary
//! started, different at every sample) becomes the whole span `--to − --from` plus one
//! interval: at every point the range reaches back to before `--from`. That counts exactly
//! the canary's requests since `--from` when the canary's series start at `--from`, which
//! holds for rollguard's canaries (a fresh `<deployment>-canary` Deployment per run); pick
//! `--from` at the canary's start. The stable revision's counts, for `baseline: stable`,
//! then cover a longer window than the operator's, which changes the baseline's precision
//! but not its rate. The traffic split is what was recorded, not what the policy would have
//! set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::analysis::prometheus::{
    self, Address, Answer, Endpoint, QueryError, RangeSeries, Series, parse_matrix,
};
use crate::analysis::query::Track;
use crate::analysis::request::{
    AnalysisRequest, Counts, Part, RevisionUnknown, SampleVars, points_by_part,
};
use crate::api::run::Phase;
use crate::plan::{Judge, RevisionMeta};
use crate::simulate::driver::{Entry, Setup, Source, drive};
use crate::simulate::policy;

/// Prometheus answers at most 11,000 points per series; longer spans are asked in chunks.
const MAX_POINTS: u64 = 10_000;

/// What `rollguard backtest` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub policy: PathBuf,
    /// The governed Deployment; its canary is `<deployment>-canary`.
    pub deployment: String,
    pub namespace: String,
    /// Prometheus' base URL.
    pub prometheus: String,
    /// When the canary started.
    pub from: Timestamp,
    /// Replay up to here.
    pub to: Timestamp,
    /// Use this tier instead of matching one.
    pub tier: Option<String>,
    /// Pod-template annotations of the revision, for tier matching.
    pub annotations: BTreeMap<String, String>,
    /// Pod-template labels of the revision, for tier matching.
    pub labels: BTreeMap<String, String>,
    /// `{{service}}` (default: the Deployment's name).
    pub service: Option<String>,
    /// `{{route}}` (default: the service).
    pub route: Option<String>,
    /// `{{revision}}` for the canary query: the canary pods' `pod-template-hash`.
    pub revision: Option<String>,
    /// `{{revision}}` for the stable baseline query.
    pub stable_revision: Option<String>,
    /// A file holding a bearer token sent with every query.
    pub token_file: Option<PathBuf>,
    /// The token may go over a plain `http://` address.
    pub insecure: bool,
    /// Per-query timeout.
    pub timeout: Duration,
}

impl Options {
    /// A backtest of `policy` on `deployment` between `from` and `to`, with everything else
    /// as the command line's defaults: the tier matched from no labels or annotations, the
    /// Deployment's name for `{{service}}` and `{{route}}`, no token, 30 s per query.
    pub fn new(
        policy: PathBuf,
        deployment: &str,
        namespace: &str,
        prometheus: String,
        (from, to): (Timestamp, Timestamp),
    ) -> Options {
        Options {
            policy,
            deployment: deployment.into(),
            namespace: namespace.into(),
            prometheus,
            from,
            to,
            tier: None,
            annotations: BTreeMap::new(),
            labels: BTreeMap::new(),
            service: None,
            route: None,
            revision: None,
            stable_revision: None,
            token_file: None,
            insecure: false,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The command line of `rollguard backtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The RolloutPolicy file (YAML; a whole policy or only its spec).
    #[arg(long)]
    pub policy: PathBuf,
    /// The governed Deployment; the canary measured is `<deployment>-canary`.
    #[arg(long)]
    pub deployment: String,
    /// Its namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Prometheus' base URL, e.g. http://prometheus.monitoring:9090.
    #[arg(long, env = "ROLLGUARD_PROMETHEUS_ADDRESS")]
    pub prometheus: String,
    /// When the canary started (RFC 3339 or Unix seconds).
    #[arg(long, value_parser = parse_time)]
    pub from: Timestamp,
    /// Replay up to here (RFC 3339 or Unix seconds).
    #[arg(long, value_parser = parse_time)]
    pub to: Timestamp,
    /// Judge with this tier instead of the one the revision matches.
    #[arg(long)]
    pub tier: Option<String>,
    /// A pod-template annotation of the revision (key=value, repeatable), for tier matching.
    #[arg(long = "annotation", value_parser = parse_key_value)]
    pub annotations: Vec<(String, String)>,
    /// A pod-template label of the revision (key=value, repeatable), for tier matching.
    #[arg(long = "label", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// `{{service}}` in the templates (default: the Deployment's name).
    #[arg(long)]
    pub service: Option<String>,
    /// `{{route}}` in the templates (default: the service).
    #[arg(long)]
    pub route: Option<String>,
    /// `{{revision}}` in the canary query: the canary pods' `pod-template-hash` (required
    /// when the templates use `{{revision}}`).
    #[arg(long)]
    pub revision: Option<String>,
    /// `{{revision}}` in the stable baseline query: the stable pods' `pod-template-hash`.
    #[arg(long)]
    pub stable_revision: Option<String>,
    /// A file holding a bearer token for Prometheus (sent over https:// only, unless
    /// --insecure).
    #[arg(long)]
    pub bearer_token_file: Option<PathBuf>,
    /// Send the bearer token over a plain http:// address, where anyone on the path can
    /// read it.
    #[arg(long)]
    pub insecure: bool,
    /// How long one range query may take.
    #[arg(long, default_value = "30s", value_parser = crate::api::quantity::parse_duration)]
    pub timeout: Duration,
}

/// `rollguard backtest`: prints the report as JSON, or the error; returns the exit code.
pub fn main(args: Args) -> u8 {
    let opts = Options {
        policy: args.policy,
        deployment: args.deployment,
        namespace: args.namespace,
        prometheus: args.prometheus,
        from: args.from,
        to: args.to,
        tier: args.tier,
        annotations: args.annotations.into_iter().collect(),
        labels: args.labels.into_iter().collect(),
        service: args.service,
        route: args.route,
        revision: args.revision,
        stable_revision: args.stable_revision,
        token_file: args.bearer_token_file,
        insecure: args.insecure,
        timeout: args.timeout,
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the runtime: {e}")))
        .and_then(|rt| rt.block_on(backtest(&opts)))
        .and_then(|r| serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string())));
    match result {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err(e) => {
            eprintln!("rollguard backtest: {e}");
            1
        }
    }
}

/// Why a backtest could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Policy(#[from] crate::simulate::Error),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("{0}")]
    Invalid(String),
}

/// Runs one range query from `start` to `end` (inclusive) every `step`, in chunks Prometheus
/// accepts. Series with the same labels in different chunks are joined.
pub async fn query_range(
    http: &reqwest::Client,
    ep: &Endpoint,
    promql: &str,
    start: Timestamp,
    end: Timestamp,
    step: Duration,
) -> Result<Vec<RangeSeries>, QueryError> {
    let step_s = step.as_secs_f64().max(0.001);
    let chunk = SignedDuration::try_from(step.saturating_mul(MAX_POINTS as u32))
        .unwrap_or(SignedDuration::MAX);
    let mut joined: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    let mut from = start;
    while from <= end {
        let to = from.checked_add(chunk).unwrap_or(end).min(end);
        let form = [
            ("query", promql.to_string()),
            ("start", secs(from)),
            ("end", secs(to)),
            ("step", format!("{step_s}")),
        ];
        let series = prometheus::post(http, ep, "query_range", &form, parse_matrix).await?;
        for (labels, points) in series {
            joined.entry(labels).or_default().extend(points);
        }
        // The next chunk starts one step after this one ended.
        from = match to.checked_add(SignedDuration::try_from(step).unwrap_or(SignedDuration::MAX)) {
            Ok(t) if to < end => t,
            _ => break,
        };
    }
    Ok(joined.into_iter().collect())
}

/// Runs one instant query evaluated at `at`.
pub async fn query_at(
    http: &reqwest::Client,
    ep: &Endpoint,
    promql: &str,
    at: Timestamp,
) -> Result<Vec<prometheus::Series>, QueryError> {
    let form = [("query", promql.to_string()), ("time", secs(at))];
    prometheus::post(http, ep, "query", &form, prometheus::parse_vector).await
}

fn secs(t: Timestamp) -> String {
    format!("{:.3}", t.as_millisecond() as f64 / 1000.0)
}

/// Parses `key=value` (a label or annotation given on the command line).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not key=value")),
    }
}

/// Parses a time given on the command line: RFC 3339 (`2026-05-01T12:00:00Z`) or Unix
/// seconds (`1777636800`, `1777636800.5`).
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Timestamp::from_millisecond((x * 1000.0).round() as i64)
            .map_err(|e| format!("{s}: {e}")),
        _ => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-05-01T12:00:00Z) nor Unix seconds"
        )),
    }
}

/// The recorded answers, one per analysis instant: each instant's series as an instant query
/// would have returned them, read by the same [`AnalysisRequest::counts`] as the operator's
/// (errors, the latency histogram's buckets, the checks).
struct Recorded {
    start: Timestamp,
    /// Unix milliseconds to the series at that instant.
    points: BTreeMap<i64, Vec<Series>>,
    step: Duration,
    request: AnalysisRequest,
}

/// The range query's answer as one instant vector per evaluation time.
fn instants(series: &[RangeSeries]) -> BTreeMap<i64, Vec<Series>> {
    let mut out: BTreeMap<i64, Vec<Series>> = BTreeMap::new();
    for (labels, points) in series {
        for (t, v) in points {
            out.entry((t * 1000.0).round() as i64)
                .or_default()
                .push((labels.clone(), *v));
        }
    }
    out
}

impl Source for Recorded {
    fn advance(&mut self, _to: Duration, _share: f64) {}

    fn counts(&mut self, now: Duration, _window: Duration, _stable: bool) -> Counts {
        let t = self.start.as_millisecond() + now.as_millis() as i64;
        let step = (self.step.as_millis() as i64).max(1);
        // The point at `t`, or the latest before it within one step.
        let got = self
            .points
            .range(t - step + 1..=t)
            .next_back()
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default();
        self.request
            .counts(got)
            .unwrap_or_else(|e| Counts::NoData(e.to_string()))
    }
}

/// One entry of the decision timeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// When (RFC 3339).
    pub time: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// What `rollguard backtest` prints.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub policy: String,
    pub namespace: String,
    pub deployment: String,
    pub tier: String,
    pub tier_reason: String,
    pub decision: &'static str,
    pub from: String,
    pub to: String,
    /// The combined query as sent to `/api/v1/query_range`.
    pub query: String,
    /// `RolledBack`, `Promoted` or `Undecided` (still in flight at `--to`).
    pub outcome: &'static str,
    /// When the run would have ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    pub phase: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub steps_reached: u32,
    /// What may make the replay differ from what the operator would have seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

/// Runs `rollguard backtest`.
pub async fn backtest(opts: &Options) -> Result<Report, Error> {
    if opts.to <= opts.from {
        return Err(Error::Invalid(format!(
            "--to ({}) must be later than --from ({})",
            opts.to, opts.from
        )));
    }
    let file = opts.policy.display().to_string();
    let mut policy = policy::load(&crate::simulate::read(&opts.policy)?, &file)
        .map_err(crate::simulate::Error::from)?;
    policy.namespace = opts.namespace.clone();
    if policy.model.service_wide {
        return Err(Error::Invalid(format!(
            "{file}: simulate.measure: service models a peer's query in rollguard simulate; backtest sends the policy's own queries to Prometheus, so write them over the whole service instead"
        )));
    }
    let meta = RevisionMeta {
        template_labels: Some(&opts.labels),
        template_annotations: Some(&opts.annotations),
        ..Default::default()
    };
    let tier = policy
        .choose_tier(opts.tier.as_deref(), &meta)
        .map_err(Error::Invalid)?;
    let setup = Setup::new(&policy, tier, &opts.deployment, 1)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let interval = setup.plan.interval;
    let span = Duration::try_from(opts.to.duration_since(opts.from)).unwrap_or(Duration::ZERO);
    let service = opts
        .service
        .clone()
        .unwrap_or_else(|| opts.deployment.clone());
    let sample = SampleVars {
        namespace: policy.namespace.clone(),
        deployment: opts.deployment.clone(),
        route: opts.route.clone().unwrap_or_else(|| service.clone()),
        service,
        elapsed: span + interval,
        canary_revision: opts.revision.clone(),
        stable_revision: opts.stable_revision.clone(),
    };
    let query = combined_query(&setup.request, &sample)?;
    let token = match &opts.token_file {
        Some(p) => Some(crate::simulate::read(p)?.trim().to_string()),
        None => None,
    };
    let ep = Endpoint {
        address: Address::parse_flag("--prometheus", &opts.prometheus).map_err(Error::Invalid)?,
        token,
        timeout: opts.timeout,
        insecure: opts.insecure,
    };
    let http = reqwest::Client::builder()
        .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let first = opts
        .from
        .checked_add(SignedDuration::try_from(interval).unwrap_or(SignedDuration::MAX))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut recorded = Recorded {
        start: opts.from,
        points: BTreeMap::new(),
        step: interval,
        request: setup.request.clone(),
    };
    if first <= opts.to {
        let series = query_range(&http, &ep, &query, first, opts.to, interval).await?;
        // A part with several series (a template without `sum`) is refused up front.
        points_by_part(&series)?;
        recorded.points = instants(&series);
    }
    let mut warnings = Vec::new();
    // The range reaches back before --from: the canary's series must be silent there, or
    // an earlier canary's history leaks into the counts.
    let before = query_at(&http, &ep, &query, opts.from)
        .await
        .and_then(|series| prometheus::split(&series, &[Part::Requests.tag()]));
    if let Ok(parts) = before
        && let Some(Answer::Value(n)) = parts.get(Part::Requests.tag())
        && *n >= 0.5
    {
        warnings.push(format!(
            "the canary's requests query already counts {n:.0} requests at --from: the canary served traffic before --from (an earlier run?), and those requests are counted as if they were this run's; set --from to when this canary started"
        ));
    }
    let d = drive(
        &setup,
        opts.from,
        span,
        Default::default(),
        &mut recorded,
        true,
    );
    let at_time = |secs: f64| {
        opts.from
            .checked_add(SignedDuration::from_millis((secs * 1000.0).round() as i64))
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let outcome = match d.status.phase {
        Phase::RolledBack | Phase::Aborted => "RolledBack",
        Phase::Succeeded => "Promoted",
        _ => "Undecided",
    };
    Ok(Report {
        policy: file,
        namespace: opts.namespace.clone(),
        deployment: opts.deployment.clone(),
        tier: setup.spec.tier.name.clone(),
        tier_reason: setup.spec.tier.reason.clone(),
        decision: match setup.plan.judge {
            Judge::Threshold { .. } => "threshold",
            Judge::Sequential { .. } => "sequential",
        },
        from: opts.from.to_string(),
        to: opts.to.to_string(),
        query,
        outcome,
        decided_at: d.ended.map(|e| at_time(e.as_secs_f64())),
        phase: d.status.phase.as_str().to_string(),
        reason: d.status.reason.clone(),
        message: d.status.message.clone(),
        steps_reached: d.steps_reached,
        warnings,
        timeline: d
            .timeline
            .into_iter()
            .map(|entry| TimelineEntry {
                time: at_time(entry.at_seconds),
                entry,
            })
            .collect(),
    })
}

/// The operator's combined query for the canary (and the stable revision when the tier
/// measures its baseline there). A revision the queries need must be given on the command
/// line.
fn combined_query(request: &AnalysisRequest, sample: &SampleVars) -> Result<String, Error> {
    match request.render(sample) {
        Ok(rendered) => Ok(rendered.combined()),
        Err(RevisionUnknown(track)) => {
            let flag = match track {
                Track::Canary => "--revision",
                Track::Stable => "--stable-revision",
            };
            Err(Error::Invalid(format!(
                "the policy's queries use {{{{revision}}}}: pass {flag} (the pods' pod-template-hash label)"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request of a policy with `requests: r`, `errors: e` and `extra` analysis fields.
    fn request(extra: serde_json::Value) -> AnalysisRequest {
        let mut v =
            serde_json::json!({"interval": "15s", "requests": "sum(r)", "errors": "sum(e)"});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let spec: crate::api::policy::AnalysisSpec = serde_json::from_value(v).expect("spec");
        AnalysisRequest::new(&spec, false).expect("request")
    }

    /// A recorded instant is read as the operator reads an instant query: a check's value
    /// comes back by its name, from the same range query.
    #[test]
    fn checks_are_replayed_from_the_range_query() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"rollguard_part":"requests"},"values":[[100,"10"]]},
            {"metric":{"rollguard_part":"errors"},"values":[[100,"0"]]},
            {"metric":{"rollguard_part":"check:cpu"},"values":[[100,"0.93"]]}]}}"#;
        let m = parse_matrix(body).expect("matrix");
        let mut rec = Recorded {
            start: Timestamp::from_second(85).expect("ts"),
            points: instants(&m),
            step: Duration::from_secs(15),
            request: request(
                serde_json::json!({"checks": [{"name": "cpu", "query": "max(cpu)", "max": 0.9}]}),
            ),
        };
        let Counts::Values { checks, .. } =
            rec.counts(Duration::from_secs(15), Duration::ZERO, false)
        else {
            panic!("values expected");
        };
        assert_eq!(checks[0].value, Ok(0.93));
    }

    /// `simulate.measure: service` has nothing to model in a backtest (its queries are the
    /// policy's own): refused by name before Prometheus is asked anything.
    #[tokio::test]
    async fn a_service_wide_model_is_refused() {
        let dir = std::env::temp_dir().join(format!("rollguard-bt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let policy = dir.join("argo.yaml");
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/blast-radius/d-argo.yaml"
        ))
        .expect("d-argo.yaml");
        std::fs::write(&policy, text).expect("write");
        let span = (
            Timestamp::from_second(1_800_000_000).expect("ts"),
            Timestamp::from_second(1_800_003_600).expect("ts"),
        );
        // Nothing listens there: the refusal must come first.
        let opts = Options {
            timeout: Duration::from_secs(1),
            ..Options::new(policy, "web", "default", "http://127.0.0.1:9".into(), span)
        };
        let err = backtest(&opts).await.err().map(|e| e.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let err = err.unwrap_or_default();
        assert!(err.contains("simulate.measure: service"), "{err}");
    }

    #[test]
    fn matrices_are_read() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"rollguard_part":"requests"},"values":[[100,"10"],[115,"25.5"]]},
            {"metric":{"rollguard_part":"errors"},"values":[[100,"0"],[115,"NaN"]]}]}}"#;
        let m = parse_matrix(body).expect("matrix");
        assert_eq!(m.len(), 2);
        let p = points_by_part(&m).expect("parts");
        assert_eq!(p[&115_000]["requests"], 25.5);
        assert!(p[&115_000]["errors"].is_nan());
        let mut rec = Recorded {
            start: Timestamp::from_second(85).expect("ts"),
            points: instants(&m),
            step: Duration::from_secs(15),
            request: request(serde_json::json!({})),
        };
        assert_eq!(
            rec.counts(Duration::from_secs(15), Duration::ZERO, false),
            Counts::Values {
                requests: 10.0,
                errors: 0.0,
                stable: None,
                latency: None,
                checks: vec![]
            }
        );
        assert!(
            matches!(rec.counts(Duration::from_secs(30), Duration::ZERO, false), Counts::NoData(w) if w.contains("NaN"))
        );
        assert!(
            matches!(rec.counts(Duration::from_secs(60), Duration::ZERO, false), Counts::NoData(w) if w.contains("empty"))
        );
        let two = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"rollguard_part":"errors","code":"500"},"values":[[1,"1"]]},
            {"metric":{"rollguard_part":"errors","code":"503"},"values":[[1,"2"]]}]}}"#;
        let e = points_by_part(&parse_matrix(two).expect("m")).expect_err("shape");
        assert_eq!(e.category(), "query_shape");
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(matches!(
            parse_matrix(bad),
            Err(QueryError::Rejected { .. })
        ));
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_matrix(vector).is_err());
    }

    #[test]
    fn times_parse_as_rfc3339_or_unix_seconds() {
        assert_eq!(
            parse_time("2026-05-01T12:00:00Z").map(|t| t.as_second()),
            Ok(1_777_636_800)
        );
        assert_eq!(
            parse_time("1777636800.5").map(|t| t.as_millisecond()),
            Ok(1_777_636_800_500)
        );
        assert!(parse_time("yesterday").is_err());
    }
}
