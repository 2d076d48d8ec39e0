//! Release: a Deployment no policy governs any more is given up. A run in flight ends through
//! the run machine (its `released` input), so `simulate` and the machine's table tests see
//! the same ending the operator writes; the writes follow [`outcome::plan_release`].

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use tracing::info;

use super::super::observe::{self, Seen, Snapshot};
use super::super::outcome;
use super::super::{Context, Error};
use super::report::publish;
use crate::api::RolloutRun;
use crate::plan::Plan;
use crate::run::{Router, RunView, reconcile as run_machine};

/// Lets go of a Deployment: ends its run, sends all traffic to stable, removes the canary,
/// and gives up `spec.paused` and rollguard's annotations.
pub async fn release(
    ctx: &Context,
    d: &Deployment,
    active: Option<&RolloutRun>,
    why: &str,
) -> Result<(), Error> {
    let snapshot = Snapshot::read(&ctx.stores, d);
    let now = Timestamp::now();
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
    );
    outcome::execute(ctx, d, active, &writes).await?;
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
