//! Reconciles one governed Deployment, as a pipeline: find its policy, decide with the pure
//! governance and run logic, apply what they want, then write status and Events from what
//! was applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use super::apply::{self, GovernedFields};
use super::observe::{self, CanarySight};
use super::{Context, Error, is_canary, policy};
use crate::analysis::prometheus::{self, Answer, Endpoint};
use crate::analysis::query::{Template, Track, Variable, Vars};
use crate::api::RolloutPolicy;
use crate::api::policy::Baseline;
use crate::api::quantity::{Ratio, parse_duration};
use crate::api::run::{DEPLOYMENT_LABEL, MatchedTier, Phase, RolloutRun, RolloutRunSpec};
use crate::names::{
    FAILED_REVISION, GOVERNED_BY, STABLE_REVISION, canary_name, canary_service_name, run_name,
    stable_service_name,
};
use crate::plan::{Judge, Plan, RevisionMeta, match_tier, template_hash};
use crate::run::govern::{DeploymentView, Governance, govern};
use crate::run::{
    Measurement, Outcome, Queries, RevisionMark, Router, RunView, World, analysis_due, elapsed,
    pause_ended, reconcile as run_machine,
};
use crate::traffic::{self, Blocked, RouteTarget};

/// Label on runs naming their policy.
pub const POLICY_LABEL: &str = "rollguard.dev/policy";

pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!("reconcile", namespace = %d.namespace().unwrap_or_default(), deployment = %d.name_any(), run = tracing::field::Empty, step = tracing::field::Empty);
    let timer = ctx
        .metrics
        .reconcile
        .with_label_values(&["deployment"])
        .start_timer();
    let result = reconcile_inner(d, &ctx).instrument(span).await;
    timer.observe_duration();
    result
}

pub fn error_policy(d: Arc<Deployment>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[err.category()])
        .inc();
    warn!(namespace = %d.namespace().unwrap_or_default(), deployment = %d.name_any(), error = %err, category = err.category(), "reconcile failed; retrying");
    // Conflicts resolve on the next pass with fresh caches; anything else backs off a bit.
    match err.category() {
        "conflict" => Action::requeue(Duration::from_millis(200)),
        "invalid" => Action::requeue(Duration::from_secs(60)),
        _ => Action::requeue(Duration::from_secs(5)),
    }
}

async fn reconcile_inner(d: Arc<Deployment>, ctx: &Context) -> Result<Action, Error> {
    if is_canary(&d) || d.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.synced.is_ready() {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = d.namespace().unwrap_or_default();
    let selecting: Vec<Arc<RolloutPolicy>> = ctx
        .stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| p.meta().deletion_timestamp.is_none() && policy::selects(p, &d))
        .collect();
    // Policy status (governed counts, conflicts) follows from what happens here.
    for p in &selecting {
        let _ = ctx.policy_refresh.send(ObjectRef::from_obj(&**p));
    }
    match selecting.as_slice() {
        [] => {
            if d.annotations().contains_key(GOVERNED_BY) {
                release(ctx, &d, "its RolloutPolicy no longer selects it").await?;
            }
            Ok(Action::await_change())
        }
        [p] => governed(ctx, &d, p).await,
        // Two policies: leave the Deployment alone; both report Conflict.
        _ => Ok(Action::await_change()),
    }
}

/// The runs of a Deployment, oldest first.
fn runs_of(ctx: &Context, d: &Deployment) -> Vec<Arc<RolloutRun>> {
    let ns = d.namespace();
    let name = d.name_any();
    let mut runs: Vec<Arc<RolloutRun>> = ctx
        .stores
        .runs
        .state()
        .into_iter()
        .filter(|r| r.namespace() == ns && r.spec.deployment == name)
        .collect();
    runs.sort_by_key(|r| r.creation_timestamp().map(|t| t.0));
    runs
}

fn active_run(ctx: &Context, runs: &[Arc<RolloutRun>]) -> Option<Arc<RolloutRun>> {
    runs.iter()
        .rev()
        .find(|r| !ctx.run_status(r).phase.is_terminal())
        .cloned()
}

/// The Deployment has rolled out its current template completely.
pub fn rollout_complete(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && st.updated_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
}

fn template_meta(d: &Deployment) -> RevisionMeta<'_> {
    let tm = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
    RevisionMeta {
        template_labels: tm.and_then(|m| m.labels.as_ref()),
        template_annotations: tm.and_then(|m| m.annotations.as_ref()),
        deployment_labels: d.metadata.labels.as_ref(),
        deployment_annotations: d.metadata.annotations.as_ref(),
    }
}

fn revision_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .map(|s| template_hash(&s.template))
        .unwrap_or_default()
}

fn router_of(p: &RolloutPolicy) -> Router {
    if p.spec.traffic.gateway_api.is_some() {
        Router::GatewayApi
    } else {
        Router::Replicas
    }
}

async fn governed(ctx: &Context, d: &Deployment, p: &RolloutPolicy) -> Result<Action, Error> {
    let runs = runs_of(ctx, d);
    if let Some(run) = active_run(ctx, &runs) {
        return drive(ctx, d, &run).await;
    }
    let mut fields = GovernedFields::of(d);
    fields.annotations.insert(GOVERNED_BY.into(), p.name_any());
    let view = DeploymentView {
        template_revision: revision_of(d),
        stable_revision: fields.annotations.get(STABLE_REVISION).cloned(),
        failed_revision: fields.annotations.get(FAILED_REVISION).cloned(),
        rollout_complete: rollout_complete(d),
    };
    let decision = govern(&view);
    if !matches!(decision, Governance::WaitForRollout) && router_of(p) == Router::GatewayApi {
        // Between runs the route sends everything to the pinned stable Service.
        if let Ok(r) = find_routing(ctx, d, Router::GatewayApi) {
            ensure_routing(ctx, d, &r, Ratio::ZERO, Some(Ratio::ZERO)).await?;
        }
    }
    // A canary with no run in flight is a leftover (say, a create the cache had not shown
    // when the run ended): remove it.
    let found = found_canary(ctx, d);
    if !matches!(decision, Governance::WaitForRollout)
        && CanarySight::of(found.as_deref(), "").stray().is_some()
    {
        apply::delete_canary(
            ctx,
            &d.namespace().unwrap_or_default(),
            &canary_name(&d.name_any()),
        )
        .await?;
    }
    match decision {
        Governance::WaitForRollout => {
            info!("newly selected but mid-rollout; adopting once it completes");
            Ok(Action::await_change())
        }
        Governance::Adopt { stable } => {
            fields.paused = true;
            fields
                .annotations
                .insert(STABLE_REVISION.into(), stable.clone());
            apply::governed_fields(ctx, d, &fields).await?;
            publish(
                ctx,
                d,
                None,
                false,
                "Adopted",
                format!(
                    "governed by RolloutPolicy {}; stable revision {stable}",
                    p.name_any()
                ),
            )
            .await;
            info!(stable, "adopted");
            Ok(Action::await_change())
        }
        Governance::Steady | Governance::KnownBad { .. } => {
            fields.paused = true;
            apply::governed_fields(ctx, d, &fields).await?;
            prune_history(ctx, d, &runs, p.spec.history_limit).await?;
            Ok(Action::await_change())
        }
        Governance::StartRun { revision } => {
            fields.paused = true;
            apply::governed_fields(ctx, d, &fields).await?;
            start_run(ctx, d, p, &view, &revision, &runs).await
        }
    }
}

async fn start_run(
    ctx: &Context,
    d: &Deployment,
    p: &RolloutPolicy,
    view: &DeploymentView,
    revision: &str,
    runs: &[Arc<RolloutRun>],
) -> Result<Action, Error> {
    let tiers = p
        .spec
        .tiers
        .clone()
        .unwrap_or_else(crate::plan::default_tiers);
    let meta = template_meta(d);
    let Some((tier, why)) = match_tier(&tiers, &meta) else {
        // A validated policy always has a catch-all tier; say so if one slipped through.
        ctx.metrics.errors.with_label_values(&["no_tier"]).inc();
        let _ = ctx.policy_refresh.send(ObjectRef::from_obj(p));
        return Ok(Action::await_change());
    };
    let at = p
        .spec
        .tiers
        .as_ref()
        .and_then(|ts| ts.iter().position(|t| t.name == tier.name))
        .map(|i| format!("spec.tiers[{i}]"))
        .unwrap_or_else(|| format!("built-in tier {}", tier.name));
    if let Err(e) = Plan::resolve(tier, &p.spec.analysis, &at) {
        // Invalid input waits for a change; the policy's InvalidSpec condition says why.
        warn!(error = %e, "cannot start a run: the policy is invalid");
        let _ = ctx.policy_refresh.send(ObjectRef::from_obj(p));
        return Ok(Action::await_change());
    }
    let name = d.name_any();
    let attempt = runs
        .iter()
        .filter(|r| r.spec.canary_revision == revision)
        .count() as u32
        + 1;
    let run_name = run_name(&name, revision, attempt);
    let mut run = RolloutRun::new(
        &run_name,
        RolloutRunSpec {
            deployment: name.clone(),
            policy: p.name_any(),
            stable_revision: view.stable_revision.clone().unwrap_or_default(),
            canary_revision: revision.to_string(),
            tier: MatchedTier {
                name: tier.name.clone(),
                reason: why.clone(),
            },
            plan: tier.clone(),
            analysis: p.spec.analysis.clone(),
            router: router_of(p).name().into(),
            approvals: vec![],
            control: None,
        },
    );
    run.metadata = ObjectMeta {
        name: Some(run_name.clone()),
        namespace: d.namespace(),
        labels: Some(BTreeMap::from([
            (DEPLOYMENT_LABEL.to_string(), name.clone()),
            (POLICY_LABEL.to_string(), p.name_any()),
        ])),
        owner_references: traffic::owner_ref(d).map(|o| vec![o]),
        ..Default::default()
    };
    if apply::create_run(ctx, &run).await? {
        ctx.metrics
            .runs_started
            .with_label_values(&[&tier.name])
            .inc();
        info!(run = %run_name, tier = %tier.name, why = %why, "run started");
        publish(
            ctx,
            d,
            Some(&run),
            false,
            "RunStarted",
            format!("revision {revision} matched tier {} ({why})", tier.name),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Keeps `limit` finished runs per Deployment.
async fn prune_history(
    ctx: &Context,
    d: &Deployment,
    runs: &[Arc<RolloutRun>],
    limit: i32,
) -> Result<(), Error> {
    let finished: Vec<&Arc<RolloutRun>> = runs
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.phase.is_terminal()))
        .collect();
    let excess = finished.len().saturating_sub(limit.max(1) as usize);
    for r in finished.into_iter().take(excess) {
        apply::delete_run(ctx, &d.namespace().unwrap_or_default(), &r.name_any()).await?;
    }
    Ok(())
}

/// What the router found.
struct Routing {
    service: Service,
    routes: Vec<RouteTarget>,
}

fn find_routing(ctx: &Context, d: &Deployment, router: Router) -> Result<Routing, Blocked> {
    let ns = d.namespace();
    let services: Vec<Arc<Service>> = ctx
        .stores
        .services
        .state()
        .into_iter()
        .filter(|s| s.namespace() == ns)
        .collect();
    let refs: Vec<&Service> = services.iter().map(|s| &**s).collect();
    let service = traffic::find_service(d, &refs)?.clone();
    let routes = match router {
        Router::Replicas => vec![],
        Router::GatewayApi => {
            let Some(store) = &ctx.stores.routes else {
                return Err(Blocked {
                    reason: "GatewayAPIMissing".into(),
                    message: "the policy uses the gatewayAPI router but the HTTPRoute CRD is not installed (or was installed after the operator started: restart it)".into(),
                });
            };
            let all = store.state();
            let refs: Vec<&gateway_api::apis::standard::httproutes::HttpRoute> =
                all.iter().map(|r| &**r).collect();
            traffic::find_routes(d, &service.name_any(), &refs)?
        }
    };
    Ok(Routing { service, routes })
}

/// Every cached ReplicaSet in the Deployment's namespace (shared with the cache, not copied).
fn replicasets_of(ctx: &Context, d: &Deployment) -> Vec<Arc<PartialObjectMeta<ReplicaSet>>> {
    let ns = d.namespace();
    ctx.stores
        .replicasets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace() == ns)
        .collect()
}

/// The cached `<name>-canary` Deployment, whatever its revision or state.
fn found_canary(ctx: &Context, d: &Deployment) -> Option<Arc<Deployment>> {
    ctx.stores.deployments.get(
        &ObjectRef::new(&canary_name(&d.name_any())).within(&d.namespace().unwrap_or_default()),
    )
}

/// The `pod-template-hash` of the Deployment's newest ReplicaSet: its stable pods while it
/// is paused, the new revision's pods once it rolls.
fn newest_pod_template_hash(ctx: &Context, d: &Deployment) -> Option<String> {
    let sets = replicasets_of(ctx, d);
    let refs: Vec<&ObjectMeta> = sets.iter().map(|rs| &rs.metadata).collect();
    observe::newest_pod_template_hash(&d.uid()?, &refs)
}

/// The `pod-template-hash` each side runs, for `{{revision}}`.
struct Revisions {
    canary: Option<String>,
    stable: Option<String>,
}

async fn measure(
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

async fn drive(ctx: &Context, d: &Deployment, run: &RolloutRun) -> Result<Action, Error> {
    let span = tracing::Span::current();
    span.record("run", run.name_any().as_str());
    let now = Timestamp::now();
    let status = ctx.run_status(run);
    let router = Router::from_name(&run.spec.router);
    let plan = match Plan::resolve(&run.spec.plan, &run.spec.analysis, "spec.plan") {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "the run's plan does not parse; it waits");
            return Ok(Action::await_change());
        }
    };
    let view = RunView {
        spec: &run.spec,
        plan: &plan,
        router,
    };
    span.record("step", status.step);
    let routing = find_routing(ctx, d, router);
    let found = found_canary(ctx, d);
    let sight = CanarySight::of(found.as_deref(), &run.spec.canary_revision);
    let sets = replicasets_of(ctx, d);
    let set_refs: Vec<&ObjectMeta> = sets.iter().map(|rs| &rs.metadata).collect();
    let revisions = Revisions {
        canary: sight
            .live
            .and_then(|c| c.uid())
            .and_then(|uid| observe::newest_pod_template_hash(&uid, &set_refs)),
        stable: d
            .uid()
            .and_then(|uid| observe::newest_pod_template_hash(&uid, &set_refs)),
    };
    let baseline_stable = matches!(
        plan.judge,
        Judge::Sequential {
            baseline: Baseline::Stable,
            ..
        }
    );
    let measurement = match &routing {
        Ok(r) if analysis_due(&view, &status, now) => {
            Some(measure(ctx, d, run, baseline_stable, r, &revisions, now).await)
        }
        _ => None,
    };
    let world = World {
        now,
        template_revision: revision_of(d),
        stable_replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        rollout_complete: rollout_complete(d),
        canary: sight.observed(),
        earlier_canary: observe::earlier_canary(&sight, &d.name_any(), &set_refs),
        routing: routing
            .as_ref()
            .map(|_| ())
            .map_err(|b| (b.reason.clone(), b.message.clone())),
        measurement,
    };
    let out = run_machine(&view, &status, &world);
    let pause_end = pause_ended(&view, &status, &out.status);
    apply_outcome(ctx, d, run, &out, routing.ok(), &sight, &status).await?;
    // The run moved on from a step: how long after its pause ended were the writes for the
    // next slice done (the slice itself, or the bigger canary it waits for)? A `promote`
    // that skipped the pause has no delay to measure.
    if let Some(end) = pause_end {
        let late = Timestamp::now().duration_since(end).as_secs_f64();
        if late >= 0.0 {
            ctx.metrics
                .step_delay
                .with_label_values(&[router.name()])
                .observe(late);
        }
    }

    if out.status.phase.is_terminal() {
        // Once more, with the finished run in the store: prune history, start the next run.
        return Ok(Action::requeue(Duration::from_millis(50)));
    }
    Ok(match out.wake_at {
        Some(t) => {
            let d = t.duration_since(Timestamp::now());
            Action::requeue(
                Duration::try_from(d)
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(20)),
            )
        }
        None => Action::await_change(),
    })
}

async fn apply_outcome(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    out: &Outcome,
    routing: Option<Routing>,
    canary: &CanarySight<'_>,
    before: &crate::api::run::RolloutRunStatus,
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let router = Router::from_name(&run.spec.router);
    let desired = out.desired;

    // 1. The canary first when it grows, so it is ready before it gets traffic. A canary
    // being deleted is made again only once it is gone, and one of another revision is
    // deleted rather than changed: a canary's pods are always of one run.
    if let Some(n) = desired.canary_replicas
        && let Some(want) = traffic::canary_deployment(d, n)
    {
        if canary.stray().is_some() {
            apply::delete_canary(ctx, &ns, &canary_name(&name)).await?;
        } else if !canary.terminating() {
            apply::canary(ctx, &want, canary.live).await?;
        }
    }

    // 2. Traffic.
    if let (Router::GatewayApi, Some(r)) = (router, &routing) {
        ensure_routing(ctx, d, r, desired.weight, before.weight).await?;
    }
    ctx.metrics
        .weight
        .with_label_values(&[&ns, &name])
        .set(desired.weight.as_f64());
    // 3. The Deployment: paused or not, and the verdict on the revision.
    let mut fields = GovernedFields::of(d);
    fields.paused = desired.paused;
    match &out.mark {
        Some(RevisionMark::Stable(rev)) => {
            fields
                .annotations
                .insert(STABLE_REVISION.into(), rev.clone());
            fields.annotations.remove(FAILED_REVISION);
        }
        Some(RevisionMark::Failed(rev)) => {
            fields
                .annotations
                .insert(FAILED_REVISION.into(), rev.clone());
        }
        None => {}
    }
    apply::governed_fields(ctx, d, &fields).await?;

    // 4. The canary goes last when it is no longer wanted (traffic already left it).
    if desired.canary_replicas.is_none() && canary.found.is_some() && !canary.terminating() {
        apply::delete_canary(ctx, &ns, &canary_name(&name)).await?;
    }

    // 5. Status, then Events: an Event is only emitted for a transition that was recorded.
    apply::run_status(ctx, run, &out.status).await?;
    for s in out
        .status
        .samples
        .iter()
        .skip(before.samples.len().min(out.status.samples.len()))
    {
        ctx.metrics
            .samples
            .with_label_values(&[s.verdict.as_str()])
            .inc();
    }
    if out.status.sample_count > before.sample_count
        && out.status.samples.len() == before.samples.len()
    {
        // The window is full: the newest sample is the new one.
        if let Some(s) = out.status.samples.last() {
            ctx.metrics
                .samples
                .with_label_values(&[s.verdict.as_str()])
                .inc();
        }
    }
    if out.status.phase != before.phase && out.status.phase.is_terminal() {
        ctx.metrics
            .runs
            .with_label_values(&[&run.spec.tier.name, out.status.phase.as_str()])
            .inc();
        if out.status.phase == Phase::RolledBack {
            ctx.metrics
                .rollbacks
                .with_label_values(&[out.status.reason.as_deref().unwrap_or("Unknown")])
                .inc();
        }
        info!(phase = out.status.phase.as_str(), reason = ?out.status.reason, message = ?out.status.message, "run ended");
    }
    for e in &out.events {
        publish(ctx, d, Some(run), e.warning, e.reason, e.message.clone()).await;
    }
    Ok(())
}

/// Pins the `-stable` and `-canary` Services and sets the weights on every governed route
/// rule, writing only what differs.
async fn ensure_routing(
    ctx: &Context,
    d: &Deployment,
    r: &Routing,
    weight: Ratio,
    last: Option<Ratio>,
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let hash = newest_pod_template_hash(ctx, d);
    let (stable_svc, canary_svc) = traffic::routing_services(d, &r.service, hash.as_deref());
    let have = |n: &str| ctx.stores.services.get(&ObjectRef::new(n).within(&ns));
    let svc_name = r.service.name_any();
    apply::service(
        ctx,
        &stable_svc,
        have(&stable_service_name(&svc_name)).as_deref(),
    )
    .await?;
    apply::service(
        ctx,
        &canary_svc,
        have(&canary_service_name(&svc_name)).as_deref(),
    )
    .await?;
    for t in &r.routes {
        apply::route_weights(ctx, &ns, t, weight, last).await?;
    }
    Ok(())
}

/// Emits an Event regarding the Deployment (where people look), related to the run.
pub async fn publish(
    ctx: &Context,
    d: &Deployment,
    run: Option<&RolloutRun>,
    warning: bool,
    reason: &str,
    note: String,
) {
    let reference: ObjectReference = d.object_ref(&());
    let related = run.map(|r| r.object_ref(&()));
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.into(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        ctx.metrics.errors.with_label_values(&["event"]).inc();
        warn!(error = %e, reason, "could not publish an Event");
    }
}

/// Lets go of a Deployment: ends its run, sends all traffic to stable, removes the canary,
/// and gives up `spec.paused` and rollguard's annotations.
pub async fn release(ctx: &Context, d: &Deployment, why: &str) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let runs = runs_of(ctx, d);
    if let Some(run) = active_run(ctx, &runs) {
        let mut st = ctx.run_status(&run);
        st.phase = Phase::Superseded;
        st.reason = Some("Released".into());
        st.message = Some(format!("the run ended because {why}"));
        st.ended_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        st.weight = Some(Ratio::ZERO);
        if Router::from_name(&run.spec.router) == Router::GatewayApi
            && let Ok(r) = find_routing(ctx, d, Router::GatewayApi)
        {
            for t in &r.routes {
                // Always written: the cache may not show the last weight rollguard wrote.
                apply::route_weights(ctx, &ns, t, Ratio::ZERO, None).await?;
                info!(route = %t.route, "released: all traffic to stable");
            }
            // Unpin the stable Service: after release it serves whatever the Deployment runs.
            let (stable_svc, _) = traffic::routing_services(d, &r.service, None);
            let have = ctx
                .stores
                .services
                .get(&ObjectRef::new(&stable_service_name(&r.service.name_any())).within(&ns));
            apply::service(ctx, &stable_svc, have.as_deref()).await?;
        }
        apply::run_status(ctx, &run, &st).await?;
    }
    apply::delete_canary(ctx, &ns, &canary_name(&name)).await?;
    apply::release_deployment(ctx, d).await?;
    publish(
        ctx,
        d,
        None,
        false,
        "Released",
        format!("rollguard released the Deployment: {why}"),
    )
    .await;
    info!(why, "released");
    Ok(())
}
