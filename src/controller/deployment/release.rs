//! Release: a Deployment no policy governs any more is given up. A run in flight ends through
//! the run machine (its `released` input), so `simulate` and the machine's table tests see
//! the same ending the operator writes; the writes follow [`outcome::plan_release`].

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use tracing::info;

use super::super::observe::{self, Seen, Snapshot};
use super::super::outcome;
use super::super::{Context, Error};
use super::report::publish;
use crate::api::RolloutRun;
use crate::api::run::Phase;
use crate::governance;
use crate::plan::Plan;
use crate::run::{Router, RunView, reconcile as run_machine};

/// Lets go of a Deployment: ends its run, sends all traffic to stable, removes the canary,
/// and gives up `spec.paused` and rollguard's annotations. A template rollguard has not
/// passed (rolled back, under trial, never judged) never rolls out on the way: the
/// Deployment stays paused, annotated with why, and a Warning Event says how to force it.
pub async fn release(
    ctx: &Context,
    d: &Deployment,
    active: Option<&RolloutRun>,
    why: &str,
) -> Result<(), Error> {
    let snapshot = Snapshot::read(&ctx.stores, d);
    let now = Timestamp::now();
    let judging = active.filter(|r| r.spec.canary_revision == governance::template_revision(d));
    let promoting = judging.is_some_and(|r| ctx.run_status(r).phase == Phase::Promoting);
    let hold = governance::unvetted(d, judging.map(|r| r.name_any()).as_deref(), promoting);
    let ended_why = match &hold {
        Some(h) => format!("{why}; the Deployment stays paused: {h}"),
        None => why.to_string(),
    };
    let why = ended_why.as_str();
    let ended = active.map(|run| {
        let router = Router::from_name(&run.spec.router);
        let routing = snapshot.routing(d, router);
        let status = ctx.run_status(run);
        let out = match Plan::resolve(&run.spec.plan, &run.spec.analysis, "spec.plan") {
            Ok(plan) => {
                let view = RunView {
                    spec: &run.spec,
                    plan: &plan,
                    router,
                };
                let sight = snapshot.sight(&run.spec.canary_revision);
                let seen = Seen {
                    now,
                    sight: &sight,
                    routing: &routing,
                    measurement: None,
                    released: Some(why.to_string()),
                    // Released: rollguard gives the Deployment up, gate or not.
                    pause_gate: false,
                    weight_fight: None,
                    // A released run starts no slice.
                    canary_endpoints: None,
                };
                run_machine(&view, &status, &observe::world(d, &snapshot, seen))
            }
            // A plan that no longer parses cannot hold a release up.
            Err(_) => crate::run::release(&status, why, now),
        };
        (router, out, routing.ok())
    });
    let writes = outcome::plan_release(
        d,
        ended.as_ref().map(|(router, out, _)| (*router, out)),
        ended.as_ref().and_then(|(_, _, r)| r.as_ref()),
        &snapshot,
        hold.clone(),
    );
    let service = ended
        .as_ref()
        .and_then(|(router, _, r)| r.as_ref().filter(|_| *router == Router::GatewayApi))
        .map(|r| &r.service);
    let writes = outcome::spare(writes, d, &snapshot.foreign(d, service));
    outcome::execute(ctx, d, active, &writes).await?;
    let note = format!("rollguard released the Deployment: {why}");
    let (warning, reason, note) = match &hold {
        None => (false, "Released", note),
        Some(_) => {
            let (ns, name) = (d.namespace().unwrap_or_default(), d.name_any());
            (
                true,
                "ReleasedPaused",
                format!(
                    "{note}. To roll it out anyway: `kubectl rollout resume deployment/{name} -n {ns}`; to go back, revert its pod template to the stable revision (in Git, or apply the previous manifest; `kubectl rollout undo` refuses a paused Deployment)"
                ),
            )
        }
    };
    publish(ctx, d, None, warning, reason, note).await;
    info!(why, held = hold.is_some(), "released");
    Ok(())
}
