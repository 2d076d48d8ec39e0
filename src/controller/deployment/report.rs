//! The last step: Events about the Deployment, notifications to the policy's sinks and
//! the operator's metrics, from what was applied (an Event or a notification is only sent
//! for a transition whose status write succeeded).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::super::Context;
use crate::api::RolloutPolicy;
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

/// Queues a notification of the transition behind a run Event (`reason`, with its `note`)
/// for the sinks of the run's policy and the cluster-wide sinks, if it stands for one.
/// Never waits: delivery is [`crate::notify::deliver`]'s.
pub fn notify(
    ctx: &Context,
    policy: Option<&RolloutPolicy>,
    run: &RolloutRun,
    st: &RolloutRunStatus,
    reason: &str,
    note: &str,
) {
    use kube::ResourceExt;
    let Some(event) = crate::notify::event_of_reason(reason) else {
        return;
    };
    let ns = run.namespace().unwrap_or_default();
    // The policy as it is now: sinks are where to tell people, not part of the run's plan.
    let cached = match policy {
        Some(_) => None,
        None => ctx
            .stores
            .policies
            .get(&kube::runtime::reflector::ObjectRef::new(&run.spec.policy).within(&ns)),
    };
    let policy = policy.or(cached.as_deref());
    let sinks = policy.map_or(&[][..], |p| p.spec.notifications.as_slice());
    let cluster = &ctx.config.cluster_sinks;
    if sinks.is_empty() && cluster.sinks.is_empty() {
        return;
    }
    let n = crate::notify::of_run(event, run, st, note, jiff::Timestamp::now());
    if let Some(p) = policy.filter(|_| !sinks.is_empty()) {
        ctx.notifier.send(&ns, &p.name_any(), sinks, n.clone());
    }
    if !cluster.sinks.is_empty() {
        let c = crate::notify::cluster::CLUSTER;
        ctx.notifier.send(&cluster.namespace, c, &cluster.sinks, n);
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

/// The reason of the Event that announces a run's end, for the ends whose Event the run's
/// status promises (a released run's end is told about on the Deployment instead).
pub fn end_reason(st: &RolloutRunStatus) -> Option<&'static str> {
    match st.phase {
        Phase::Superseded if st.reason.as_deref() == Some("Released") => None,
        p if p.is_terminal() => Some(crate::run::end_event_reason(p)),
        _ => None,
    }
}

/// How long the API server keeps Events (its `--event-ttl` default): a run that ended
/// longer ago has no Event left to miss.
const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Announces a run's end exactly once: the Event is named after the run and its end
/// (`<run>.<reason>`), so creating it again is refused (409) rather than repeated. It is
/// created after the status write that records the end; a crash between the two would lose
/// it, so the first time a process sees a run that ended within the Event TTL it creates it
/// again (`recovering`), which is a no-op when the Event exists.
pub async fn announce_end(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    st: &RolloutRunStatus,
    recovering: bool,
) {
    use kube::ResourceExt;

    let Some(reason) = end_reason(st) else {
        return;
    };
    let ns = run.namespace().unwrap_or_default();
    let key = (ns, run.name_any());
    if recovering {
        let recent = st
            .ended_at
            .as_ref()
            .is_some_and(|t| jiff::Timestamp::now().duration_since(t.0).unsigned_abs() < EVENT_TTL);
        let seen = !ctx
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        if seen || !recent {
            return;
        }
    }
    let warning = matches!(st.phase, Phase::RolledBack | Phase::Aborted);
    let name = format!("{}.{}", run.name_any(), reason.to_lowercase());
    let note = st.message.clone().unwrap_or_default();
    match create_named(ctx, d, run, &name, warning, reason, &note).await {
        Ok(created) => {
            if created && recovering {
                info!(run = %key.1, reason, "announced a run's end whose Event a crash had lost");
                // The crash most likely lost its notification too (same id if not).
                notify(ctx, None, run, st, reason, &note);
            }
            ctx.announced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key);
        }
        // Tried again the next time this run is seen.
        Err(()) => {
            ctx.announced
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

/// Announces the start of a step: one Event per start, named after the run, the step and
/// when it started (`<run>.step-<n>-<unix seconds>`). Through the Event recorder, whose
/// series key leaves out the note, the second step's start within its cache TTL only
/// counted up the first one's Event (still saying `step 1/2`), so the Event of step 2 was
/// never seen; a step started again (its canary lost) gets an Event of its own.
pub async fn announce_step(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    st: &RolloutRunStatus,
    reason: &str,
    note: &str,
) {
    use kube::ResourceExt;
    let at = st.step_started_at.as_ref().map_or(0, |t| t.0.as_second());
    let name = format!("{}.step-{}-{at}", run.name_any(), st.step + 1);
    let _ = create_named(ctx, d, run, &name, false, reason, note).await;
}

/// Creates an Event with a given name, about `d` and related to `run`, as the recorder
/// would have written it. `Ok(false)` when it exists already; `Err` is counted and logged.
async fn create_named(
    ctx: &Context,
    d: &Deployment,
    run: &RolloutRun,
    name: &str,
    warning: bool,
    reason: &str,
    note: &str,
) -> Result<bool, ()> {
    use k8s_openapi::api::events::v1::Event as Ev;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use kube::ResourceExt;
    use kube::api::{Api, PostParams};

    let ns = run.namespace().unwrap_or_default();
    let ev = Ev {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some(reason.into()),
        reason: Some(reason.into()),
        note: Some(note.chars().take(1000).collect()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        regarding: Some(d.object_ref(&())),
        related: Some(run.object_ref(&())),
        reporting_controller: Some("rollguard".into()),
        reporting_instance: Some(
            ctx.config
                .instance
                .clone()
                .unwrap_or_else(|| "rollguard".into()),
        ),
        ..Default::default()
    };
    match Api::<Ev>::namespaced(ctx.client.clone(), &ns)
        .create(&PostParams::default(), &ev)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => {
            ctx.metrics.errors.with_label_values(&["event"]).inc();
            warn!(error = %e, reason, "could not publish an Event");
            Err(())
        }
    }
}
