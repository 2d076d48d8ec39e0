//! The last step: Events about the Deployment and the operator's metrics, from what was
//! applied (an Event is only emitted for a transition whose status write succeeded).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::super::Context;
use crate::api::run::{Phase, RolloutRun, RolloutRunStatus};
use crate::run::Outcome;

/// Counts the new samples and a run's end, and says so in the log.
pub(super) fn record(ctx: &Context, run: &RolloutRun, out: &Outcome, before: &RolloutRunStatus) {
    let ns = run.metadata.namespace.as_deref().unwrap_or_default();
    ctx.metrics
        .weight
        .with_label_values(&[ns, &run.spec.deployment])
        .set(out.desired.weight.as_f64());
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
    publish_as(ctx, d, run, warning, reason, reason, note).await
}

/// [`publish`] with an action other than the reason. The recorder folds Events that share
/// type, reason, action and objects into one series that keeps the first note: a distinct
/// action keeps a distinct note.
pub async fn publish_as(
    ctx: &Context,
    d: &Deployment,
    run: Option<&RolloutRun>,
    warning: bool,
    reason: &str,
    action: &str,
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
        action: action.into(),
        secondary: related,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        ctx.metrics.errors.with_label_values(&["event"]).inc();
        warn!(error = %e, reason, "could not publish an Event");
    }
}
