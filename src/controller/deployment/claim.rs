//! Starting a run without trusting a name: run names are predictable, so a run found under the
//! name rollguard was about to use is not taken as its own. The run rollguard creates, or an
//! unrecorded one that plans exactly what it would create, is recorded on the Deployment
//! ([`crate::ownership`]); a run someone else made is left alone (not executed, not deleted)
//! and named in a Warning Event, and rollguard's run gets a name the API server makes unique.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use tracing::warn;

use super::super::{Context, Error, apply};
use super::report::publish;
use crate::api::run::RolloutRun;
use crate::ownership::{UNTRUSTED_RUN, adoptable, trusted};

/// Starts `run` (named as predicted) for `d`: the run created, or `None` when rollguard's own
/// run for this revision already exists (it is recorded now if it was not yet).
pub(super) async fn start(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
) -> Result<Option<RolloutRun>, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let runs = ctx.stores.runs.state();
    // Runs in flight of this Deployment that it does not record: the index left them out.
    let unrecorded: Vec<&RolloutRun> = runs
        .iter()
        .map(|r| &**r)
        .filter(|r| r.namespace().as_deref() == Some(ns.as_str()) && r.spec.deployment == name)
        .filter(|r| !ctx.run_status(r).phase.is_terminal() && trusted(r, d, false).is_err())
        .collect();
    if let Some(mine) = unrecorded.iter().find(|r| adoptable(r, d, &run.spec)) {
        apply::record_run(ctx, d, mine).await?;
        return Ok(None);
    }
    let mut warned = Vec::new();
    for r in &unrecorded {
        untrusted(ctx, d, r).await;
        warned.push(r.name_any());
    }
    if let Some(created) = apply::create_run(ctx, run).await? {
        apply::record_run(ctx, d, &created).await?;
        return Ok(Some(created));
    }
    // The name is taken: rollguard's own run from a pass that did not get to record it (or
    // that the cache does not show yet), or a run someone else put there.
    let taken = run.name_any();
    if let Some(existing) = apply::get_run(ctx, &ns, &taken).await? {
        if trusted(&existing, d, false).is_ok() {
            return Ok(None);
        }
        if adoptable(&existing, d, &run.spec) {
            apply::record_run(ctx, d, &existing).await?;
            return Ok(None);
        }
        if !warned.contains(&taken) {
            untrusted(ctx, d, &existing).await;
        }
    }
    let mut fresh = run.clone();
    fresh.metadata.name = None;
    fresh.metadata.generate_name = Some(format!("{taken}-"));
    match apply::create_run(ctx, &fresh).await? {
        Some(created) => {
            apply::record_run(ctx, d, &created).await?;
            Ok(Some(created))
        }
        // A generated name collided: the next pass tries again.
        None => Ok(None),
    }
}

/// Says that `run` is not rollguard's and is not executed.
async fn untrusted(ctx: &Context, d: &Deployment, run: &RolloutRun) {
    let why = trusted(run, d, false)
        .err()
        .unwrap_or_else(|| "it is not recorded".into());
    warn!(run = %run.name_any(), why, "a run rollguard did not start is not executed");
    ctx.metrics
        .errors
        .with_label_values(&["untrusted_run"])
        .inc();
    publish(
        ctx,
        d,
        None,
        true,
        UNTRUSTED_RUN,
        format!(
            "RolloutRun {} was not started by rollguard ({why}): rollguard does not execute it and leaves it in place; it runs its own run for this revision instead. Delete it once you know who made it",
            run.name_any()
        ),
    )
    .await;
}
