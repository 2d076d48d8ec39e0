//! Notifications about runs to the sinks a policy declares (`spec.notifications`): which
//! transition tells what ([`of_run`], pure), how it is written for each kind of sink
//! ([`message`], pure) and how it is delivered without ever holding up a run ([`deliver`]).
//! The chart's cluster-wide sinks ([`cluster`]) are told about every policy's runs.

pub mod cluster;
pub mod deliver;
pub mod message;
pub mod url;

use jiff::Timestamp;
use kube::ResourceExt;

pub use cluster::ClusterSinks;
pub use deliver::Notifier;
pub use message::{Evidence, Notification};

use crate::api::notification::{NotificationEvent, NotificationSink};
use crate::api::run::{RolloutRun, RolloutRunStatus};
use crate::controller::secrets::Secrets;

/// The notification a run Event's reason stands for, if any. `RolledBack` and `Promoted`
/// are the reasons of the Events that announce a run's end.
pub fn event_of_reason(reason: &str) -> Option<NotificationEvent> {
    match reason {
        "RunStarted" => Some(NotificationEvent::Started),
        "StepStarted" => Some(NotificationEvent::StepReached),
        "AwaitingApproval" => Some(NotificationEvent::ApprovalNeeded),
        "RolledBack" => Some(NotificationEvent::RolledBack),
        "Promoted" => Some(NotificationEvent::Promoted),
        _ => None,
    }
}

/// The command an approver runs for this run's Deployment.
pub fn approve_command(namespace: &str, deployment: &str) -> String {
    format!("kubectl rollguard approve {deployment} -n {namespace}")
}

/// What `event` tells about `run`, whose status (as just written) is `st`; `summary` is the
/// Event's note.
pub fn of_run(
    event: NotificationEvent,
    run: &RolloutRun,
    st: &RolloutRunStatus,
    summary: &str,
    now: Timestamp,
) -> Notification {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let steps = run.spec.plan.steps.len();
    // The id names the transition, as the Event names do: a step started again (its canary
    // lost) is a new transition, so its start time is part of it.
    let what = match event {
        NotificationEvent::StepReached => format!(
            "step-{}-{}",
            st.step + 1,
            st.step_started_at.as_ref().map_or(0, |t| t.0.as_second())
        ),
        e => e.type_suffix().to_string(),
    };
    let time = match event {
        NotificationEvent::StepReached => st.step_started_at.as_ref().map(|t| t.0),
        NotificationEvent::RolledBack | NotificationEvent::Promoted => {
            st.ended_at.as_ref().map(|t| t.0)
        }
        _ => None,
    }
    .unwrap_or(now);
    // The step's planned share, not the status's: after a rollback that is 0%.
    let reached = event != NotificationEvent::Started;
    let weight = usize::try_from(st.step)
        .ok()
        .and_then(|i| run.spec.plan.steps.get(i))
        .map(|s| s.weight.clone());
    let samples = st.sample_count.max(st.samples.len() as i32);
    let decisive = match event {
        NotificationEvent::RolledBack => st.evidence.as_ref().or(st.samples.last()),
        NotificationEvent::Started => None,
        _ => st.samples.last(),
    };
    Notification {
        event,
        id: format!("{ns}/{name}/{what}"),
        time,
        namespace: ns.clone(),
        deployment: run.spec.deployment.clone(),
        run: name,
        policy: run.spec.policy.clone(),
        revision: run.spec.canary_revision.clone(),
        stable_revision: run.spec.stable_revision.clone(),
        tier: run.spec.tier.name.clone(),
        step: reached.then_some((st.step + 1, steps)),
        weight: reached.then_some(weight).flatten(),
        reason: matches!(
            event,
            NotificationEvent::RolledBack | NotificationEvent::Promoted
        )
        .then(|| st.reason.clone())
        .flatten(),
        summary: summary.to_string(),
        evidence: decisive.map(|s| Evidence {
            verdict: s.verdict.as_str().into(),
            requests: s.requests,
            errors: s.errors,
            rate: s.rate.clone(),
            threshold: s.threshold.clone(),
            statistic: s.statistic.clone(),
            upper_bound: s.upper_bound.clone(),
            baseline: s.baseline.clone(),
            samples,
        }),
        approve_command: (event == NotificationEvent::ApprovalNeeded)
            .then(|| approve_command(&ns, &run.spec.deployment)),
    }
}

/// What keeps each sink from being used (its Secret missing or unreadable, a bad URL),
/// one sentence per sink naming the field and the Secret; empty when every sink is usable.
pub async fn problems(secrets: &Secrets, ns: &str, sinks: &[NotificationSink]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, s) in sinks.iter().enumerate() {
        let r = &s.url_secret_ref;
        let at = format!("spec.notifications[{i}] ({})", s.name);
        match secrets.value(ns, r).await {
            Err(e) => out.push(format!("{at}: urlSecretRef: {e}")),
            Ok(raw) => {
                if let Err(e) = url::WebhookUrl::parse(&raw) {
                    out.push(format!(
                        "{at}: the URL in Secret {ns}/{} key {} {e}",
                        r.name, r.key
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
