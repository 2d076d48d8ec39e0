//! Reconciles a RolloutPolicy: validates what the API server could not (query templates,
//! plans, routes), counts what it governs, reports conflicts, and on deletion releases its
//! Deployments before letting the policy go.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info_span, warn};

use super::{Context, Error, apply, is_canary};
use crate::api::RolloutPolicy;
use crate::api::policy::RolloutPolicyStatus;
use crate::governance::{self, Index};
use crate::run::Router;

pub use crate::selection::selects;

/// Checks what CEL cannot ([`crate::check`]): the first problem, naming the field.
pub fn validate(p: &RolloutPolicy) -> Result<(), String> {
    crate::check::check(&p.spec)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    old: &[Condition],
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: last,
        observed_generation: generation,
    }
}

pub async fn reconcile(p: Arc<RolloutPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("policy", namespace = %p.namespace().unwrap_or_default(), policy = %p.name_any());
    let _g = span.enter();
    let timer = ctx
        .metrics
        .reconcile
        .with_label_values(&["policy"])
        .start_timer();
    let r = reconcile_inner(&p, &ctx).await;
    timer.observe_duration();
    r
}

pub fn error_policy(p: Arc<RolloutPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[err.category()])
        .inc();
    warn!(policy = %p.name_any(), error = %err, "policy reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(p: &RolloutPolicy, ctx: &Context) -> Result<Action, Error> {
    if !ctx.synced.is_ready() {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let in_ns: Vec<Arc<Deployment>> = ctx
        .stores
        .deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()) && !is_canary(d))
        .collect();

    if p.meta().deletion_timestamp.is_some() {
        // The Deployment controller releases every Deployment this policy governed (one
        // writer per Deployment, so a release never races a run's own writes); the policy
        // goes once none is left.
        let left = in_ns
            .iter()
            .filter(|d| governance::governed_by(d) == Some(name.as_str()))
            .count();
        if left > 0 {
            return Ok(Action::requeue(Duration::from_millis(500)));
        }
        apply::policy_finalizer(ctx, p, false).await?;
        return Ok(Action::await_change());
    }
    apply::policy_finalizer(ctx, p, true).await?;

    let policies = ctx.stores.policies.state();
    let runs = ctx.stores.runs.state();
    let index = Index::new(
        policies
            .iter()
            .map(|q| &**q)
            .filter(|q| q.namespace().as_deref() == Some(ns.as_str())),
        runs.iter()
            .map(|r| &**r)
            .filter(|r| r.namespace().as_deref() == Some(ns.as_str())),
        |r| ctx.run_status(r).phase,
    );
    let reach = index.reach(p, in_ns.iter().map(|d| &**d));
    let governed = &reach.governed;
    let conflicts: Vec<String> = reach
        .conflicts
        .iter()
        .map(|(d, others)| format!("{} (also selected by {})", d.name_any(), others.join(", ")))
        .collect();
    let active = index.active_runs(Some(p));

    let generation = p.meta().generation;
    let old = p.status.clone().unwrap_or_default().conditions;
    let mut conds = Vec::new();
    let invalid = validate(p).err();
    conds.push(match &invalid {
        Some(msg) => condition(
            "InvalidSpec",
            true,
            "Invalid",
            msg.clone(),
            generation,
            &old,
        ),
        None => condition(
            "InvalidSpec",
            false,
            "Valid",
            "the policy is valid".into(),
            generation,
            &old,
        ),
    });
    conds.push(if conflicts.is_empty() {
        condition(
            "Conflict",
            false,
            "NoConflict",
            "no selected Deployment is selected by another policy".into(),
            generation,
            &old,
        )
    } else {
        condition(
            "Conflict",
            true,
            "SelectedByAnotherPolicy",
            format!(
                "left alone because another policy selects them too: {}",
                conflicts.join("; ")
            ),
            generation,
            &old,
        )
    });
    let router = if p.spec.traffic.gateway_api.is_some() {
        Router::GatewayApi
    } else {
        Router::Replicas
    };
    let blocked: Vec<String> = governed
        .iter()
        .filter_map(|d| routing_problem(ctx, d, router).map(|m| format!("{}: {m}", d.name_any())))
        .collect();
    conds.push(if blocked.is_empty() {
        condition(
            "RoutesReady",
            true,
            "Found",
            "every governed Deployment's traffic can be routed".into(),
            generation,
            &old,
        )
    } else {
        condition(
            "RoutesReady",
            false,
            "Missing",
            blocked.join("; "),
            generation,
            &old,
        )
    });
    conds.push(match ctx.gates.last(&ns) {
        Some(g) if g.in_force => condition("PauseGate", true, "InForce", g.why, generation, &old),
        Some(g) => condition("PauseGate", false, "NotInForce", g.why, generation, &old),
        None => condition(
            "PauseGate",
            false,
            "NotProven",
            "not proven yet in this namespace (no Deployment governed here has been checked): governed Deployments stay paused between runs until it is".into(),
            generation,
            &old,
        ),
    });
    // Sinks are checked only where some are declared, so other policies' status is as it was.
    let sinks = &p.spec.notifications;
    if !sinks.is_empty() {
        let problems = crate::notify::problems(&ctx.secrets, &ns, sinks).await;
        conds.push(if problems.is_empty() {
            condition(
                "NotificationsReady",
                true,
                "SinksUsable",
                format!("{} notification sink(s) have a usable URL", sinks.len()),
                generation,
                &old,
            )
        } else {
            condition(
                "NotificationsReady",
                false,
                "SinkUnusable",
                format!(
                    "runs go on; these sinks are not notified: {}",
                    problems.join("; ")
                ),
                generation,
                &old,
            )
        });
    }
    conds.push(match &invalid {
        None => condition(
            "Ready",
            true,
            "InForce",
            format!(
                "governing {} Deployment(s), {} run(s) in flight",
                governed.len(),
                active
            ),
            generation,
            &old,
        ),
        Some(msg) => condition(
            "Ready",
            false,
            "InvalidSpec",
            format!("new runs wait until the policy is fixed: {msg}"),
            generation,
            &old,
        ),
    });
    // kstatus' Reconciling and Stalled (crate::governance::kstatus).
    for m in governance::kstatus::policy(invalid.as_deref()) {
        conds.push(condition(
            &m.type_, m.status, &m.reason, m.message, generation, &old,
        ));
    }
    // Conditions sorted by type so the status is stable between passes.
    conds.sort_by(|a, b| a.type_.cmp(&b.type_));
    let status = RolloutPolicyStatus {
        observed_generation: generation,
        conditions: conds,
        router: Some(router.name().into()),
        governed_deployments: governed.len() as i32,
        active_runs: active as i32,
    };
    apply::policy_status(ctx, p, &status).await?;
    update_gauges(ctx);
    if !sinks.is_empty() {
        // A sink's Secret sends the policy no event: look again, so a Secret created or
        // fixed later is seen (from the watch's cache, no API request).
        return Ok(Action::requeue(Duration::from_secs(30)));
    }
    Ok(Action::await_change())
}

fn routing_problem(ctx: &Context, d: &Deployment, router: Router) -> Option<String> {
    let ns = d.namespace();
    let services: Vec<_> = ctx
        .stores
        .services
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns)
        .collect();
    let refs: Vec<&k8s_openapi::api::core::v1::Service> = services.iter().map(|s| &**s).collect();
    let svc = match crate::traffic::find_service(d, &refs) {
        Ok(s) => s,
        Err(b) => return Some(b.message),
    };
    if router == Router::GatewayApi {
        let Some(store) = &ctx.stores.routes else {
            return Some("the HTTPRoute CRD is not installed".into());
        };
        let all = store.state();
        let rrefs: Vec<_> = all.iter().map(|r| &**r).collect();
        if let Err(b) = crate::traffic::find_routes(d, &svc.name_any(), &rrefs) {
            return Some(b.message);
        }
    }
    None
}

fn update_gauges(ctx: &Context) {
    let runs = ctx.stores.runs.state();
    let active =
        Index::new([], runs.iter().map(|r| &**r), |r| ctx.run_status(r).phase).active_runs(None);
    let governed = ctx
        .stores
        .deployments
        .state()
        .iter()
        .filter(|d| governance::governed_by(d).is_some())
        .count();
    let scope = ctx.config.namespace.as_deref().unwrap_or_default();
    ctx.metrics
        .set_counts(scope, active as i64, governed as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_tier_list_is_refused() {
        // With `tiers: []` no revision matches a tier: the policy must be refused, not left
        // to fail at the first run.
        let mut p: RolloutPolicy =
            serde_yaml_ng::from_str(include_str!("../../deploy/examples/replicas-router.yaml"))
                .expect("example");
        assert_eq!(validate(&p), Ok(()));
        p.spec.tiers = Some(Vec::new());
        assert_eq!(
            validate(&p),
            Err(format!("spec.tiers: {}", crate::check::NO_TIERS))
        );
    }
}
