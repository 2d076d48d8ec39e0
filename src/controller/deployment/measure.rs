//! Measure, the second step: one analysis sample of the canary (and of stable, when the tier
//! measures its baseline there) from Prometheus, as a [`Measurement`] for the run machine.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use super::super::Context;
use super::super::observe::{Revisions, Routing};
use crate::analysis::prometheus::{self, Answer, Endpoint};
use crate::analysis::query::{Template, Track, Variable, Vars};
use crate::api::quantity::parse_duration;
use crate::api::run::RolloutRun;
use crate::run::{Measurement, Queries, elapsed};

/// Takes one sample. Never fails: a query that cannot be sent or answered is a
/// [`Measurement::Failed`] the machine records and judges.
pub(super) async fn measure(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    baseline_stable: bool,
    routing: &Routing,
    revisions: &Revisions,
    now: Timestamp,
) -> Measurement {
    let a = &run.spec.analysis;
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let status = ctx.run_status(run);
    let interval = parse_duration(&a.interval).unwrap_or(Duration::from_secs(30));
    let mut vars = Vars::for_track(Track::Canary, &ns, &name);
    vars.service = routing.service.name_any();
    vars.route = routing
        .routes
        .first()
        .map(|r| r.route.clone())
        .unwrap_or_default();
    vars.interval = interval;
    // The window starts when the canary got traffic and no earlier: a series that outlives
    // one canary (say `workload="<name>-canary"`) must not lend the next one its history.
    vars.elapsed = elapsed(&status, now);
    let parsed =
        Template::parse(&a.requests).and_then(|r| Template::parse(&a.errors).map(|e| (r, e)));
    let (req_t, err_t) = match parsed {
        Ok(t) => t,
        Err(e) => {
            return Measurement::Failed {
                why: format!("the query template is invalid: {e}"),
                queries: Queries::default(),
            };
        }
    };
    let uses_revision = [&req_t, &err_t]
        .iter()
        .any(|t| t.variables().contains(&Variable::Revision));
    let (canary_rev, stable_rev) = match (&revisions.canary, &revisions.stable) {
        (Some(c), Some(s)) => (c.clone(), s.clone()),
        (c, s) if uses_revision && (c.is_none() || (baseline_stable && s.is_none())) => {
            return Measurement::Failed {
                why: format!(
                    "the queries use {{{{revision}}}} but the {} pods' pod-template-hash is not known yet (no ReplicaSet of theirs in the cache)",
                    if c.is_none() { "canary" } else { "stable" }
                ),
                queries: Queries::default(),
            };
        }
        (c, s) => (c.clone().unwrap_or_default(), s.clone().unwrap_or_default()),
    };
    vars.revision = canary_rev;
    let mut parts = vec![
        ("requests", req_t.render(&vars)),
        ("errors", err_t.render(&vars)),
    ];
    if baseline_stable {
        let mut sv = vars.clone();
        let stable = Vars::for_track(Track::Stable, &ns, &name);
        sv.workload = stable.workload;
        sv.track = stable.track;
        sv.revision = stable_rev;
        parts.push(("stable_requests", req_t.render(&sv)));
        parts.push(("stable_errors", err_t.render(&sv)));
    }
    let queries = Queries {
        requests: parts[0].1.clone(),
        errors: parts[1].1.clone(),
    };
    let refs: Vec<(&str, &str)> = parts.iter().map(|(t, q)| (*t, q.as_str())).collect();
    let combined = prometheus::combine(&refs);
    let address = a
        .prometheus
        .as_ref()
        .map(|p| p.address.clone())
        .or_else(|| ctx.config.prometheus_address.clone());
    let Some(address) = address else {
        return Measurement::Failed {
            why: "no Prometheus address: set spec.analysis.prometheus.address or the operator's --prometheus-address".into(),
            queries,
        };
    };
    let timeout = a
        .prometheus
        .as_ref()
        .and_then(|p| parse_duration(&p.timeout).ok())
        .unwrap_or(Duration::from_secs(10));
    let (http, token) = match ctx.secrets.for_spec(&ns, a.prometheus.as_ref()).await {
        Ok(x) => x,
        Err(why) => {
            ctx.metrics
                .queries
                .with_label_values(&["credentials"])
                .inc();
            return Measurement::Failed { why, queries };
        }
    };
    let ep = Endpoint {
        address,
        token,
        timeout,
    };
    let tags: Vec<&str> = parts.iter().map(|(t, _)| *t).collect();
    let answer = http
        .query(&ep, &combined)
        .await
        .and_then(|series| prometheus::split(&series, &tags));
    let answers = match answer {
        Ok(a) => a,
        Err(e) => {
            ctx.metrics.queries.with_label_values(&[e.category()]).inc();
            return Measurement::Failed {
                why: e.to_string(),
                queries,
            };
        }
    };
    let value = |tag: &str| match answers.get(tag) {
        Some(Answer::Value(v)) => Ok(*v),
        Some(Answer::NoData(why)) => Err(why.clone()),
        None => Err(format!("no answer for {tag}")),
    };
    let (requests, errors) = match (value("requests"), value("errors")) {
        (Ok(r), Ok(e)) => (r, e),
        (Err(why), _) | (_, Err(why)) => {
            ctx.metrics.queries.with_label_values(&["no_data"]).inc();
            return Measurement::NoData { why, queries };
        }
    };
    ctx.metrics.queries.with_label_values(&["ok"]).inc();
    let stable = if baseline_stable {
        value("stable_requests")
            .ok()
            .zip(value("stable_errors").ok())
    } else {
        None
    };
    Measurement::Counts {
        requests,
        errors,
        stable,
        queries,
    }
}
