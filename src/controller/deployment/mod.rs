//! Reconciles one governed Deployment as a pipeline: ask the governance index who governs
//! it, observe the caches ([`super::observe`], pure), measure when an analysis is due
//! ([`measure`]), decide with the pure run machine, apply its outcome in the documented
//! order ([`super::outcome`]), then report (Events, metrics). A Deployment no policy
//! governs any more is released ([`release`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, info, info_span, warn};

use super::apply::{self, GovernedFields};
use super::observe::{self, Seen, Snapshot};
use super::{Context, Error, gate, is_canary, outcome};
use crate::analysis::request::AnalysisRequest;
use crate::api::RolloutPolicy;
use crate::api::run::{MatchedTier, RolloutRun, RolloutRunSpec};
use crate::governance::verdict::Verdict;
use crate::governance::{self, Governor, Index, retag};
use crate::names::{
    CHANGED_BY, DEPLOYMENT_LABEL, GOVERNED_BY, HELD, POLICY_LABEL, STABLE_REVISION,
    canary_service_name, run_name,
};
use crate::ownership;
use crate::plan::{Plan, match_tier_or_untagged};
use crate::run::govern::{DeploymentView, Governance, govern};
use crate::run::{
    Measurement, Queries, Router, RunView, analysis_due, pause_ended, reconcile as run_machine,
};
use crate::traffic;

mod claim;
mod measure;
mod release;
mod report;
mod weights;

pub use report::publish;

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
    let policies = ctx.stores.policies.state();
    let runs = ctx.stores.runs.state();
    let ns = d.namespace();
    // A run of this Deployment that rollguard did not start is left out: never executed.
    let ours = |r: &RolloutRun| {
        r.spec.deployment != d.name_any()
            || ownership::trusted(r, &d, ctx.run_status(r).phase.is_terminal()).is_ok()
    };
    let index = Index::new(
        policies
            .iter()
            .map(|p| &**p)
            .filter(|p| p.namespace() == ns),
        runs.iter()
            .map(|r| &**r)
            .filter(|r| r.namespace() == ns && ours(r)),
        |r| ctx.run_status(r).phase,
    );
    let governor = index.governor(&d);
    // Policy status (governed counts, conflicts) follows from what happens here.
    let selecting = match &governor {
        Governor::Nobody => vec![],
        Governor::One(p) => vec![*p],
        Governor::Conflict(ps) => ps.clone(),
    };
    for p in selecting {
        let _ = ctx.policy_refresh.send(ObjectRef::from_obj(p));
    }
    match governor {
        Governor::Nobody => {
            if governance::governed_by(&d).is_some() {
                let why = "its RolloutPolicy no longer selects it";
                release::release(ctx, &d, index.active_run(&d), why).await?;
            } else if d.annotations().contains_key(HELD) && !GovernedFields::of(&d).paused {
                // Someone rolled the held template out on purpose: the note is stale.
                apply::release_deployment(ctx, &d, None).await?;
            }
            Ok(Action::await_change())
        }
        Governor::One(p) => match index.active_run(&d) {
            Some(run) => drive(ctx, &d, run, p).await,
            None => between_runs(ctx, &d, p, &index).await,
        },
        // Two policies: leave the Deployment alone; both report Conflict, and a run in
        // flight says it is stalled until one of them lets go.
        Governor::Conflict(ps) => {
            if let Some(run) = index.active_run(&d) {
                let names: Vec<String> = ps.iter().map(|p| p.name_any()).collect();
                let status = ctx.run_status(run);
                let stalled = crate::run::stalled_by_conflict(&status, &names, Timestamp::now());
                if stalled != status {
                    apply::run_status(ctx, run, &stalled).await?;
                }
                // A policy deleted outright (before it had its finalizer) sends no event
                // the Deployment hears: look again, so the run goes on once one is left.
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            Ok(Action::await_change())
        }
    }
}

/// Someone else unpaused a Deployment rollguard holds paused (`kubectl rollout resume`, a
/// GitOps tool applying `paused: false`): it is paused again in this pass, and a Warning
/// Event names the user (from the admission stamp) and the field manager that did it.
async fn unpaused_by_other(ctx: &Context, d: &Deployment, run: Option<&RolloutRun>) {
    if GovernedFields::of(d).paused {
        return;
    }
    // The caches drop managedFields: read who owns the field from the live object (rare: an
    // unpaused Deployment that should be paused).
    let live = match ctx
        .api::<Deployment>(&d.namespace().unwrap_or_default())
        .get(&d.name_any())
        .await
    {
        Ok(live) => live,
        Err(e) => {
            warn!(error = %e, "cannot read the Deployment to see who unpaused it");
            return;
        }
    };
    let Some(who) = governance::paused_by_other(&live) else {
        return;
    };
    let template = governance::template_revision(d);
    let (action, who) = who.describe();
    report::publish_as(
        ctx,
        d,
        run,
        true,
        "UnpausedByOther",
        &action,
        format!(
            "{who} unpaused the Deployment while rollguard holds it (template revision {template}); rollguard paused it again. Pods of that template the Deployment started meanwhile stay until it rolls again; to stop governing it, remove it from the RolloutPolicy's selector"
        ),
    )
    .await;
    if live.annotations().contains_key(crate::names::UNPAUSED_BY)
        && let Err(e) = apply::forget_unpause_stamp(ctx, &live).await
    {
        warn!(error = %e, "cannot remove the unpause stamp");
    }
}

/// A new template arrived while the Deployment was unpaused: the pause gate did not pause
/// it (removed, unbound, or never there while the Deployment was left unpaused), so the
/// Deployment controller may have started its pods before any verdict. rollguard pauses it in
/// this pass and says so; the gate is proven again before anything is left unpaused.
async fn ungated_change(ctx: &Context, d: &Deployment, revision: &str) {
    let ns = d.namespace().unwrap_or_default();
    let was = ctx.gates.last(&ns).map(|g| g.why).unwrap_or_default();
    ctx.gates.forget(&ns);
    warn!(revision, "a new template arrived unpaused");
    publish(
        ctx,
        d,
        None,
        true,
        "UngatedChange",
        format!(
            "template revision {revision} arrived while the Deployment was unpaused, so its pods may have started before any verdict; rollguard paused it and starts its run. The pause gate (the chart's MutatingAdmissionPolicy) did not pause it: check that it is installed and bound ({})",
            if was.is_empty() { "not proven yet" } else { was.as_str() }
        ),
    )
    .await;
}

/// Writes rollguard's fields on a governed Deployment between runs, with its verdict.
async fn write_governed(
    ctx: &Context,
    d: &Deployment,
    mut fields: GovernedFields,
    verdict: Option<&Verdict>,
) -> Result<(), Error> {
    if let Some(v) = verdict {
        fields.set_verdict(d, v);
    }
    apply::governed_fields(ctx, d, &fields).await?;
    Ok(())
}

fn router_of(p: &RolloutPolicy) -> Router {
    if p.spec.traffic.gateway_api.is_some() {
        Router::GatewayApi
    } else {
        Router::Replicas
    }
}

/// A governed Deployment with no run in flight: adopt it, start a run for a new template,
/// or keep it paused on its stable revision.
async fn between_runs(
    ctx: &Context,
    d: &Deployment,
    p: &RolloutPolicy,
    index: &Index<'_>,
) -> Result<Action, Error> {
    let mut fields = GovernedFields::of(d);
    fields.annotations.insert(GOVERNED_BY.into(), p.name_any());
    let view = governance::view(d);
    let decision = govern(&view);
    let last = index.finished_runs(d).last().copied();
    let last_status = last.map(|r| ctx.run_status(r));
    let verdict = Verdict::between_runs(
        &decision,
        governance::mid_rollout(d),
        view.stable_revision.as_deref(),
        last.map(|r| &r.spec).zip(last_status.as_ref()),
    );
    let snapshot = Snapshot::read(&ctx.stores, d);
    if !matches!(decision, Governance::WaitForRollout) {
        // Between runs the route sends everything to the pinned stable Service.
        let routing = (router_of(p) == Router::GatewayApi)
            .then(|| snapshot.routing(d, Router::GatewayApi).ok())
            .flatten();
        let mut writes = routing
            .as_ref()
            .map(|r| {
                let settled = governance::mid_rollout(d) != Some(true);
                outcome::plan_idle_routing(d, r, &snapshot, settled)
            })
            .unwrap_or_default();
        // A canary with no run in flight is a leftover (say, a create the cache had not
        // shown when the run ended): remove it.
        if snapshot.sight("").stray().is_some() {
            writes.push(outcome::Write::DeleteCanary);
        }
        let foreign = snapshot.foreign(d, routing.as_ref().map(|r| &r.service));
        let writes = outcome::spare(writes, d, &foreign);
        outcome::execute(ctx, d, None, &writes).await?;
    }
    // The newest run's end Event, in case a crash came between its status write and it.
    if let (Some(last), Some(st)) = (last, &last_status) {
        report::announce_end(ctx, d, last, st, true).await;
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
            write_governed(ctx, d, fields, verdict.as_ref()).await?;
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
            // With the pause gate, the stable template runs unpaused: the next template is
            // paused at admission. Without it, the stable template may roll (after a revert
            // mid-rollout) until it is done: paused half-way, the Deployment would keep two
            // revisions for good. Only a status that has seen the latest spec decides, or
            // every pause write would flap.
            let gated = matches!(decision, Governance::Steady) && gate::in_force(ctx, d).await;
            fields.paused = match (&decision, governance::mid_rollout(d)) {
                _ if gated => false,
                (Governance::Steady, Some(mid)) => !mid,
                (Governance::Steady, None) => fields.paused,
                _ => true,
            };
            if fields.paused {
                unpaused_by_other(ctx, d, None).await;
            }
            write_governed(ctx, d, fields, verdict.as_ref()).await?;
            prune_history(ctx, d, &index.finished_runs(d), p.spec.history_limit).await?;
            // The gate is proven again when its proof expires: a stable Deployment left
            // unpaused is paused if it no longer holds, and one held paused without it is
            // unpaused once it does.
            Ok(if matches!(decision, Governance::Steady) {
                Action::requeue(ctx.config.gate_check_interval)
            } else {
                Action::await_change()
            })
        }
        Governance::StartRun { revision } => {
            let ungated = !GovernedFields::of(d).paused;
            fields.paused = true;
            unpaused_by_other(ctx, d, None).await;
            write_governed(ctx, d, fields, verdict.as_ref()).await?;
            if ungated {
                ungated_change(ctx, d, &revision).await;
            }
            start_run(ctx, d, p, &view, &revision, &index.runs_of(d), ungated).await
        }
    }
}

async fn start_run(
    ctx: &Context,
    d: &Deployment,
    p: &RolloutPolicy,
    view: &DeploymentView,
    revision: &str,
    runs: &[&RolloutRun],
    ungated: bool,
) -> Result<Action, Error> {
    let tiers = p
        .spec
        .tiers
        .clone()
        .unwrap_or_else(crate::plan::default_tiers);
    let meta = governance::revision_meta(d);
    let Some(matched) = match_tier_or_untagged(&tiers, &meta, p.spec.untagged_origin.as_deref())
    else {
        // A validated policy always has a catch-all tier; say so if one slipped through.
        ctx.metrics.errors.with_label_values(&["no_tier"]).inc();
        let _ = ctx.policy_refresh.send(ObjectRef::from_obj(p));
        return Ok(Action::await_change());
    };
    // Re-tagging a change on trial (or replacing it before its verdict) never makes it laxer.
    let replaced = retag::replaced(runs, revision, view.stable_revision.as_deref());
    let (tier, why) = retag::no_laxer(&tiers, matched, replaced);
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
    // The author, where the pause gate stamped it in the write that brought this template
    // (an older stamp would name someone else's change).
    let author = (!ungated
        && ctx
            .gates
            .last(&d.namespace().unwrap_or_default())
            .is_some_and(|g| g.in_force))
    .then(|| d.annotations().get(CHANGED_BY).cloned())
    .flatten();
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
            author: author.clone(),
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
    if let Some(run) = claim::start(ctx, d, &run).await? {
        let run_name = run.name_any();
        ctx.metrics
            .runs_started
            .with_label_values(&[&tier.name])
            .inc();
        info!(run = %run_name, tier = %tier.name, why = %why, "run started");
        let author = author
            .map(|u| format!("; changed by {u}"))
            .unwrap_or_default();
        let note = format!(
            "revision {revision} matched tier {} ({why}){author}",
            tier.name
        );
        publish(ctx, d, Some(&run), false, "RunStarted", note.clone()).await;
        report::notify(ctx, Some(p), &run, &Default::default(), "RunStarted", &note);
    }
    Ok(Action::await_change())
}

/// Keeps `limit` finished runs per Deployment (`finished` oldest first).
async fn prune_history(
    ctx: &Context,
    d: &Deployment,
    finished: &[&RolloutRun],
    limit: i32,
) -> Result<(), Error> {
    for r in prunable(finished, limit) {
        apply::delete_run(ctx, &d.namespace().unwrap_or_default(), &r.name_any()).await?;
    }
    Ok(())
}

/// The finished runs (oldest first) history pruning deletes: the oldest beyond `limit` of
/// those without approvals. A run with an approval is the record of who approved what, so
/// pruning never deletes it (people delete it once it is archived).
fn prunable<'a>(finished: &[&'a RolloutRun], limit: i32) -> Vec<&'a RolloutRun> {
    let plain: Vec<&RolloutRun> = finished
        .iter()
        .copied()
        .filter(|r| r.spec.approvals.is_empty())
        .collect();
    let excess = plain.len().saturating_sub(limit.max(1) as usize);
    plain.into_iter().take(excess).collect()
}

/// A run in flight: observe, measure when due, run the machine, apply, report.
async fn drive(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    p: &RolloutPolicy,
) -> Result<Action, Error> {
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
    // Observe.
    let snapshot = Snapshot::read(&ctx.stores, d);
    let routing = snapshot.routing(d, router);
    // An object under a name rollguard writes that is not its own holds the run, named.
    let foreign = snapshot.foreign(
        d,
        routing
            .as_ref()
            .ok()
            .filter(|_| router == Router::GatewayApi)
            .map(|r| &r.service),
    );
    let held = ownership::blocked(&foreign);
    let routing = match &held {
        Some(b) => Err(b.clone()),
        None => routing,
    };
    let sight = snapshot.sight(&run.spec.canary_revision);
    let revisions = snapshot.revisions(d, &sight);
    // Measure.
    // Where Prometheus is and which credentials go there come from the policy, not the run.
    let analysis = measure::endpoint_from_policy(&run.spec.analysis, &p.spec.analysis);
    let measurement = match &routing {
        Ok(r) if analysis_due(&view, &status, now) => {
            Some(match AnalysisRequest::for_plan(&analysis, &plan) {
                Ok(request) => {
                    measure::measure(ctx, d, run, &analysis, &request, r, &revisions, now).await
                }
                // Recorded like any failed query: the run holds and says why.
                Err(e) => Measurement::Failed {
                    why: format!("the run's analysis is invalid: {e}"),
                    queries: Queries::default(),
                },
            })
        }
        _ => None,
    };
    // Someone else wrote the route's weights since the last pass: who (written back below).
    let weight_fight = match &routing {
        Ok(r) if router == Router::GatewayApi && !status.phase.is_terminal() => {
            weights::fight(ctx, d, r, status.weight).await
        }
        _ => None,
    };
    let canary_endpoints = match &routing {
        Ok(r) if router == Router::GatewayApi => {
            Some(snapshot.ready_endpoints(&canary_service_name(&r.service.name_any())))
        }
        _ => None,
    };
    let seen = Seen {
        now,
        sight: &sight,
        routing: &routing,
        measurement,
        released: None,
        pause_gate: gate::in_force(ctx, d).await,
        weight_fight,
        canary_endpoints,
    };
    let world = observe::world(d, &snapshot, seen);
    // Decide.
    let out = run_machine(&view, &status, &world);
    let pause_end = pause_ended(&view, &status, &out.status);
    // Apply.
    if out.desired.paused {
        unpaused_by_other(ctx, d, Some(run)).await;
    }
    let verdict = Verdict::of_run(&d.namespace().unwrap_or_default(), &run.spec, &out.status);
    let writes = outcome::plan(
        d,
        router,
        &out,
        &status,
        &sight,
        routing.as_ref().ok(),
        &snapshot,
        &verdict,
    );
    let writes = outcome::spare(writes, d, &foreign);
    outcome::execute(ctx, d, Some(run), &writes).await?;
    // Report.
    if let Some(b) = &held {
        let routing_said = |st: &crate::api::run::RolloutRunStatus| {
            st.conditions
                .iter()
                .find(|c| c.type_ == crate::run::condition::ROUTING)
                .map(|c| c.message.clone())
        };
        // Once per collision (the condition keeps saying it).
        if routing_said(&status).as_ref() != Some(&b.message) {
            publish(ctx, d, Some(run), true, &b.reason, b.message.clone()).await;
        }
    }
    report::record(ctx, run, &out, &status);
    let ended = out.status.phase.is_terminal() && !status.phase.is_terminal();
    for e in &out.events {
        if ended && report::end_reason(&out.status) == Some(e.reason) {
            report::announce_end(ctx, d, run, &out.status, false).await;
        } else if e.reason == "StepStarted" {
            report::announce_step(ctx, d, run, &out.status, e.reason, &e.message).await;
        } else {
            publish(ctx, d, Some(run), e.warning, e.reason, e.message.clone()).await;
        }
        report::notify(ctx, None, run, &out.status, e.reason, &e.message);
    }
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
    // An object in the way need not wake this Deployment when it goes (a foreign Service
    // selects other pods, a foreign canary is no canary of ours): look again.
    if !foreign.is_empty() {
        return Ok(Action::requeue(Duration::from_secs(5)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_limit_and_never_deletes_an_approved_run() {
        let run = |name: &str, approved: bool| {
            // `succeeded` carries an approval.
            let mut r = crate::cli::fixtures::succeeded(name, "r1");
            if !approved {
                r.spec.approvals.clear();
            }
            r
        };
        // (runs oldest first as (name, approved), limit, pruned)
        type Case<'a> = (&'a [(&'a str, bool)], i32, &'a [&'a str]);
        let cases: [Case; 5] = [
            (&[("a", false), ("b", false), ("c", false)], 2, &["a"]),
            (&[("a", false), ("b", false)], 2, &[]),
            // The approved oldest stays, and does not count against the limit.
            (&[("a", true), ("b", false), ("c", false)], 2, &[]),
            (
                &[("a", true), ("b", false), ("c", false), ("d", false)],
                2,
                &["b"],
            ),
            (&[("a", true), ("b", true), ("c", true)], 1, &[]),
        ];
        for (runs, limit, want) in cases {
            let runs: Vec<RolloutRun> = runs.iter().map(|(n, a)| run(n, *a)).collect();
            let refs: Vec<&RolloutRun> = runs.iter().collect();
            let got: Vec<String> = prunable(&refs, limit)
                .iter()
                .map(|r| r.name_any())
                .collect();
            assert_eq!(got, *want, "{runs:?} limit {limit}");
        }
    }
}
