//! Apply, the third step of the Deployment reconciler: the writes that make the run machine's
//! [`Outcome`] (or a release) true, planned as an ordered list without I/O and then executed
//! in that order. The order is the contract; [`plan`] and [`plan_release`] are unit-tested.
//!
//! A run in flight:
//! 1. the canary first when it grows, so it is ready before it gets traffic (one of another
//!    revision is deleted instead, one being deleted is left to go);
//! 2. the traffic: the pinned `-stable`/`-canary` Services and the route weights;
//! 3. the Deployment: paused or not, and the verdict on its revision;
//! 4. the canary goes when it is no longer wanted (traffic has already left it);
//! 5. the run's status, last: a crash before it repeats the same writes from the same status.
//!
//! When the run ends (rolled back, promoted, aborted, superseded), 4 and 5 swap: its end is
//! recorded before the canary is deleted. A crash after the deletion but before the status
//! would leave a run in flight without its canary, and the next pass would make the canary
//! of a revision already marked failed (or stable) again; in this order the next pass finds
//! the run ended and removes the canary as a leftover. A crash before the status write
//! leaves the canary and repeats the pass: the sample that ended the run is still due, so
//! the run ends again in the first pass, before any traffic goes back to the canary.
//!
//! A release: weights to stable and the stable Service unpinned, the run's status, then the
//! canary, then the Deployment given up: a crash before the last write leaves the
//! Deployment annotated, so the next pass releases it again.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::apply::{self, GovernedFields};
use super::observe::{CanarySight, Routing, Snapshot};
use super::{Context, Error};
use crate::api::quantity::Ratio;
use crate::api::run::RolloutRunStatus;
use crate::governance::verdict::Verdict;
use crate::names::{
    FAILED_REVISION, STABLE_REVISION, canary_name, canary_service_name, stable_service_name,
};
use crate::ownership::Foreign;
use crate::run::{Outcome, RevisionMark, Router};
use crate::traffic::{self, RouteTarget};

/// One write, in the order planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<'a> {
    /// Create or resize the canary Deployment (written only when it differs from `have`).
    Canary {
        want: Box<Deployment>,
        have: Option<&'a Deployment>,
    },
    /// Delete `<name>-canary` (foreground: its pods go with it).
    DeleteCanary,
    /// A routing Service (written only when it differs from `have`).
    Service {
        want: Box<Service>,
        have: Option<&'a Service>,
    },
    /// The weights of one route rule; `last` is the weight rollguard last recorded, `None`
    /// to write whatever the cache shows.
    Weights {
        target: &'a RouteTarget,
        weight: Ratio,
        last: Option<Ratio>,
    },
    /// The fields rollguard owns on the Deployment.
    Deployment(GovernedFields),
    /// Give the Deployment up: `spec.paused` and rollguard's annotations; with `hold` (why
    /// its template must not roll out) it stays paused.
    ReleaseDeployment { hold: Option<String> },
    /// The run's status.
    RunStatus(&'a RolloutRunStatus),
}

/// The writes that make a run's outcome true, in order.
// The observations and the decision of one pass, each its own borrow: bundling them would
// only move the list into a struct built at the one call site.
#[allow(clippy::too_many_arguments)]
pub fn plan<'a>(
    d: &Deployment,
    router: Router,
    out: &'a Outcome,
    before: &RolloutRunStatus,
    canary: &CanarySight<'a>,
    routing: Option<&'a Routing>,
    snapshot: &'a Snapshot,
    verdict: &Verdict,
) -> Vec<Write<'a>> {
    let mut writes = Vec::new();
    let desired = out.desired;
    // 1.
    if let Some(n) = desired.canary_replicas
        && let Some(want) = traffic::canary_deployment(d, n)
    {
        if canary.stray().is_some() {
            writes.push(Write::DeleteCanary);
        } else if !canary.terminating() {
            writes.push(Write::Canary {
                want: Box::new(want),
                have: canary.live,
            });
        }
    }
    // 2.
    if let (Router::GatewayApi, Some(r)) = (router, routing) {
        writes.extend(routing_writes(
            d,
            r,
            snapshot,
            desired.weight,
            before.weight,
        ));
    }
    // 3.
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
    fields.set_verdict(d, verdict);
    writes.push(Write::Deployment(fields));
    // 4. and 5.; when the run ends, its status goes before the canary does.
    let delete =
        desired.canary_replicas.is_none() && canary.found.is_some() && !canary.terminating();
    if out.status.phase.is_terminal() {
        writes.push(Write::RunStatus(&out.status));
        if delete {
            writes.push(Write::DeleteCanary);
        }
    } else {
        if delete {
            writes.push(Write::DeleteCanary);
        }
        writes.push(Write::RunStatus(&out.status));
    }
    writes
}

/// The writes that release a Deployment, with its run's final status when one was in flight.
pub fn plan_release<'a>(
    d: &Deployment,
    run: Option<(Router, &'a Outcome)>,
    routing: Option<&'a Routing>,
    snapshot: &'a Snapshot,
    hold: Option<String>,
) -> Vec<Write<'a>> {
    let mut writes = Vec::new();
    if let Some((router, out)) = run {
        if let (Router::GatewayApi, Some(r)) = (router, routing) {
            // Always written: the cache may not show the last weight rollguard wrote.
            writes.extend(r.routes.iter().map(|target| Write::Weights {
                target,
                weight: Ratio::ZERO,
                last: None,
            }));
            // Unpinned: after release the stable Service serves whatever the Deployment runs.
            let (stable, _) = traffic::routing_services(d, &r.service, None);
            let have = snapshot.service(&stable_service_name(&r.service.name_any()));
            writes.push(Write::Service {
                want: Box::new(stable),
                have,
            });
        }
        writes.push(Write::RunStatus(&out.status));
    }
    writes.push(Write::DeleteCanary);
    writes.push(Write::ReleaseDeployment { hold });
    writes
}

/// Between runs: everything on the stable Service, pinned to the stable pods once the
/// Deployment has rolled out. Mid-rollout (a revert, an abort while promoting) it selects
/// all of the Deployment's pods: pinned to the newest ReplicaSet, a barely scaled one would
/// take all the traffic.
pub fn plan_idle_routing<'a>(
    d: &Deployment,
    routing: &'a Routing,
    snapshot: &'a Snapshot,
    rolled_out: bool,
) -> Vec<Write<'a>> {
    let hash = rolled_out
        .then(|| snapshot.newest_pod_template_hash(d))
        .flatten();
    routing_writes_pinned(d, routing, snapshot, Ratio::ZERO, Some(Ratio::ZERO), hash)
}

/// Pins the `-stable` and `-canary` Services and sets the weights on every governed rule.
fn routing_writes<'a>(
    d: &Deployment,
    r: &'a Routing,
    snapshot: &'a Snapshot,
    weight: Ratio,
    last: Option<Ratio>,
) -> Vec<Write<'a>> {
    let hash = snapshot.newest_pod_template_hash(d);
    routing_writes_pinned(d, r, snapshot, weight, last, hash)
}

fn routing_writes_pinned<'a>(
    d: &Deployment,
    r: &'a Routing,
    snapshot: &'a Snapshot,
    weight: Ratio,
    last: Option<Ratio>,
    hash: Option<String>,
) -> Vec<Write<'a>> {
    let (stable, canary) = traffic::routing_services(d, &r.service, hash.as_deref());
    let svc = r.service.name_any();
    let mut writes = vec![
        Write::Service {
            want: Box::new(stable),
            have: snapshot.service(&stable_service_name(&svc)),
        },
        Write::Service {
            want: Box::new(canary),
            have: snapshot.service(&canary_service_name(&svc)),
        },
    ];
    writes.extend(r.routes.iter().map(|target| Write::Weights {
        target,
        weight,
        last,
    }));
    writes
}

/// Leaves out every write to an object that is not rollguard's (`foreign`, from the caches): a
/// canary Deployment or routing Service under a colliding name is never deleted or
/// overwritten; the run holds and names it instead ([`crate::ownership::blocked`]).
pub fn spare<'a>(writes: Vec<Write<'a>>, d: &Deployment, foreign: &[Foreign]) -> Vec<Write<'a>> {
    let is_foreign =
        |kind: &str, name: &str| foreign.iter().any(|f| f.kind == kind && f.name == name);
    let canary = canary_name(&d.name_any());
    writes
        .into_iter()
        .filter(|w| match w {
            Write::Canary { .. } | Write::DeleteCanary => !is_foreign("Deployment", &canary),
            Write::Service { want, .. } => !is_foreign("Service", &want.name_any()),
            _ => true,
        })
        .collect()
}

impl Write<'_> {
    /// A short name for logs and the test fail point ([`super::failpoint`]).
    pub fn name(&self) -> &'static str {
        match self {
            Write::Canary { .. } => "canary",
            Write::DeleteCanary => "delete-canary",
            Write::Service { .. } => "service",
            Write::Weights { .. } => "weights",
            Write::Deployment(_) => "deployment",
            Write::ReleaseDeployment { .. } => "release-deployment",
            Write::RunStatus(_) => "run-status",
        }
    }
}

/// Executes the writes in order; the first refusal stops the rest.
pub async fn execute(
    ctx: &Context,
    d: &Deployment,
    run: Option<&crate::api::RolloutRun>,
    writes: &[Write<'_>],
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    // The run status this pass writes: what the test fail point is keyed on.
    let phase = writes.iter().find_map(|w| match w {
        Write::RunStatus(s) => Some(s.phase.as_str()),
        _ => None,
    });
    for w in writes {
        let done = match w {
            Write::Canary { want, have } => apply::canary(ctx, d, want, *have).await?,
            Write::DeleteCanary => apply::delete_canary(ctx, d).await?,
            Write::Service { want, have } => apply::service(ctx, d, want, *have).await?,
            Write::Weights {
                target,
                weight,
                last,
            } => apply::route_weights(ctx, &ns, target, *weight, *last).await?,
            Write::Deployment(fields) => apply::governed_fields(ctx, d, fields).await?,
            Write::ReleaseDeployment { hold } => {
                apply::release_deployment(ctx, d, hold.as_deref()).await?;
                true
            }
            Write::RunStatus(status) => match run {
                Some(run) => {
                    if run.status.as_ref() != Some(*status) {
                        super::failpoint::before(phase, w.name());
                    }
                    apply::run_status(ctx, run, status).await?
                }
                None => false,
            },
        };
        if done {
            super::failpoint::after(phase, w.name());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
