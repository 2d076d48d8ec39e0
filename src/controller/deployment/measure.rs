//! Measure, the second step: one analysis sample of the canary (and of stable, when the tier
//! measures its baseline there) from Prometheus, as a [`Measurement`] for the run machine.
//! The request (templates, interval, endpoint, combined query) is built once per reconcile
//! by the caller, from the run's snapshot ([`AnalysisRequest`]).

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use super::super::Context;
use super::super::observe::{Revisions, Routing};
use crate::analysis::request::{AnalysisRequest, Counts, RevisionUnknown, SampleVars};
use crate::api::policy::AnalysisSpec;
use crate::api::run::RolloutRun;
use crate::run::{Measurement, Queries, elapsed};

/// The analysis a sample uses: the run's snapshot (queries, interval, thresholds), with the
/// Prometheus endpoint and its credential references of the governing policy. Whatever the
/// run's copy says, a token is only ever sent where the policy says (issue #14, point 3).
pub(super) fn endpoint_from_policy(run: &AnalysisSpec, policy: &AnalysisSpec) -> AnalysisSpec {
    AnalysisSpec {
        prometheus: policy.prometheus.clone(),
        ..run.clone()
    }
}

/// Takes one sample with `analysis` (see [`endpoint_from_policy`]). Never fails: a query that
/// cannot be sent or answered is a [`Measurement::Failed`] the machine records and judges.
// One sample's inputs, each its own borrow from the reconcile that takes it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn measure(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    analysis: &AnalysisSpec,
    request: &AnalysisRequest,
    routing: &Routing,
    revisions: &Revisions,
    now: Timestamp,
) -> Measurement {
    let a = analysis;
    let ns = d.namespace().unwrap_or_default();
    let sample = SampleVars {
        namespace: ns.clone(),
        deployment: d.name_any(),
        service: routing.service.name_any(),
        route: routing
            .routes
            .first()
            .map(|r| r.route.clone())
            .unwrap_or_default(),
        // The window starts when the canary got traffic and no earlier: a series that outlives
        // one canary (say `workload="<name>-canary"`) must not lend the next one its history.
        elapsed: elapsed(&ctx.run_status(run), now),
        canary_revision: revisions.canary.clone(),
        stable_revision: revisions.stable.clone(),
    };
    let rendered = match request.render(&sample) {
        Ok(r) => r,
        Err(RevisionUnknown(track)) => {
            let why = format!(
                "the queries use {{{{revision}}}} but the {} pods' pod-template-hash is not known yet (no ReplicaSet of theirs in the cache)",
                track.as_str()
            );
            return Measurement::Failed {
                why,
                queries: Queries::default(),
            };
        }
    };
    let queries = Queries {
        requests: rendered.requests.clone(),
        errors: rendered.errors.clone(),
        latency: rendered.latency.as_ref().map(|(canary, _)| canary.clone()),
        checks: rendered.checks.clone(),
    };
    let mut ep = match request.endpoint(ctx.config.prometheus_address.as_ref()) {
        Ok(ep) => ep,
        Err(e) => {
            return Measurement::Failed {
                why: e.to_string(),
                queries,
            };
        }
    };
    let http = match ctx.secrets.for_spec(&ns, a.prometheus.as_ref()).await {
        Ok((http, token)) => {
            ep.token = token;
            http
        }
        Err(why) => {
            ctx.metrics
                .queries
                .with_label_values(&["credentials"])
                .inc();
            return Measurement::Failed { why, queries };
        }
    };
    let counts = http
        .query(&ep, &rendered.combined())
        .await
        .and_then(|series| request.counts(&series));
    let (outcome, measurement) = match counts {
        Ok(Counts::Values {
            requests,
            errors,
            stable,
            latency,
            checks,
        }) => (
            "ok",
            Measurement::Counts {
                requests,
                errors,
                stable,
                latency,
                checks,
                queries,
            },
        ),
        Ok(Counts::NoData(why)) => ("no_data", Measurement::NoData { why, queries }),
        Err(e) => (
            e.category(),
            Measurement::Failed {
                why: e.to_string(),
                queries,
            },
        ),
    };
    ctx.metrics.queries.with_label_values(&[outcome]).inc();
    measurement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(address: &str, secret: Option<&str>) -> AnalysisSpec {
        let mut prometheus = serde_json::json!({"address": address, "insecure": true});
        if let Some(name) = secret {
            prometheus["bearerTokenSecret"] = serde_json::json!({"name": name, "key": "token"});
        }
        serde_json::from_value(serde_json::json!({
            "interval": "5s", "requests": "run_requests", "errors": "run_errors",
            "prometheus": prometheus,
        }))
        .expect("an analysis")
    }

    #[test]
    fn the_endpoint_and_its_credentials_come_from_the_policy() {
        let run = analysis("http://127.0.0.1:1", Some("database-password"));
        let policy = analysis("http://prometheus:9090", Some("prometheus-token"));
        let used = endpoint_from_policy(&run, &policy);
        assert_eq!(used.prometheus, policy.prometheus);
        // The rest is the run's snapshot.
        assert_eq!(
            (
                used.requests.as_deref().unwrap_or_default(),
                used.interval.as_str()
            ),
            ("run_requests", "5s")
        );
        // A policy without an address (the operator's flag) sends nothing the run names.
        let mut flag = policy.clone();
        flag.prometheus = None;
        assert_eq!(endpoint_from_policy(&run, &flag).prometheus, None);
    }
}
