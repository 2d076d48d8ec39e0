//! Which transition tells what: given a run in a known state, the notification's fields.

use jiff::Timestamp;

use super::{event_of_reason, of_run};
use crate::api::notification::NotificationEvent as E;
use crate::cli::fixtures::{self, now};

#[test]
fn the_run_events_that_notify() {
    let table = [
        ("RunStarted", Some(E::Started)),
        ("StepStarted", Some(E::StepReached)),
        ("AwaitingApproval", Some(E::ApprovalNeeded)),
        ("RolledBack", Some(E::RolledBack)),
        ("Promoted", Some(E::Promoted)),
        ("Promoting", None),
        ("Aborted", None),
        ("CanaryLost", None),
        ("AnalysisBlind", None),
    ];
    for (reason, want) in table {
        assert_eq!(event_of_reason(reason), want, "{reason}");
    }
}

#[test]
fn a_rollback_tells_the_reason_the_step_and_the_deciding_evidence() {
    let run = fixtures::rolled_back("web-8d3e41f0", "8d3e41f0");
    let st = run.status.clone().unwrap_or_default();
    let n = of_run(E::RolledBack, &run, &st, "rolled back: ...", now());
    assert_eq!(n.id, "shop/web-8d3e41f0/rolledback");
    assert_eq!(n.time, fixtures::ago(300).0, "the end's time, not now");
    assert_eq!(
        (n.namespace.as_str(), n.deployment.as_str()),
        ("shop", "web")
    );
    assert_eq!(n.revision, "8d3e41f0");
    assert_eq!(n.tier, "ai-assisted");
    assert_eq!(n.step, Some((1, 3)));
    assert_eq!(
        n.weight.as_deref(),
        Some("1%"),
        "the step's share, not 0% after it"
    );
    assert_eq!(n.reason.as_deref(), Some("ErrorRateAboveThreshold"));
    let e = n.evidence.expect("evidence");
    assert_eq!((e.requests, e.errors), (Some(420), Some(9)));
    assert_eq!(e.verdict, "Fail");
    assert_eq!(e.samples, 6);
    assert_eq!(n.approve_command, None);
}

#[test]
fn an_approval_carries_the_command_and_the_evidence_so_far() {
    let run = fixtures::awaiting_approval();
    let st = run.status.clone().unwrap_or_default();
    let n = of_run(E::ApprovalNeeded, &run, &st, "passed all steps", now());
    assert_eq!(
        n.approve_command.as_deref(),
        Some("kubectl rollguard approve web -n shop")
    );
    assert_eq!(n.id, "shop/web-8d3e41f0/approvalneeded");
    assert_eq!(n.time, now());
    let e = n.evidence.expect("the newest sample");
    assert_eq!((e.requests, e.errors, e.samples), (Some(1520), Some(2), 18));
    assert_eq!(n.reason, None);
}

#[test]
fn each_step_start_is_its_own_transition() {
    let run = fixtures::progressing();
    let mut st = run.status.clone().unwrap_or_default();
    let first = of_run(E::StepReached, &run, &st, "step 2/3", now());
    assert_eq!(first.step, Some((2, 3)));
    assert_eq!(first.weight.as_deref(), Some("5%"));
    assert_eq!(first.time, fixtures::ago(240).0);
    assert_eq!(
        first.id,
        format!(
            "shop/web-8d3e41f0/step-2-{}",
            fixtures::ago(240).0.as_second()
        )
    );
    // The same transition seen again: the same id, so a receiver can drop it.
    assert_eq!(
        of_run(E::StepReached, &run, &st, "step 2/3", Timestamp::now()).id,
        first.id
    );
    // The step started over (its canary lost): a new id.
    st.step_started_at = Some(fixtures::ago(10));
    assert_ne!(
        of_run(E::StepReached, &run, &st, "step 2/3", now()).id,
        first.id
    );
}

#[test]
fn a_started_run_has_no_step_or_evidence_yet() {
    let run = fixtures::progressing();
    let n = of_run(
        E::Started,
        &run,
        &Default::default(),
        "revision 8d3e41f0 matched",
        now(),
    );
    assert_eq!(n.id, "shop/web-8d3e41f0/started");
    assert_eq!((n.step, n.weight, n.evidence), (None, None, None));
    assert_eq!(n.stable_revision, "6f1c2a9b");
}

/// The example a newcomer copies is a policy with both kinds of sink.
#[test]
fn the_notifications_example_is_a_policy_with_two_sinks() {
    use crate::api::RolloutPolicy;
    use crate::api::notification::SinkType;
    let text = include_str!("../../deploy/examples/notifications.yaml");
    let policy = serde_yaml_ng::Deserializer::from_str(text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .find(|v: &serde_json::Value| v["kind"] == "RolloutPolicy")
        .expect("a policy");
    let p: RolloutPolicy = serde_json::from_value(policy).expect("a RolloutPolicy");
    let kinds: Vec<SinkType> = p.spec.notifications.iter().map(|s| s.type_).collect();
    assert_eq!(kinds, [SinkType::Webhook, SinkType::Slack]);
    assert_eq!(
        p.spec.notifications[0].timeout, "5s",
        "the schema's default"
    );
    assert_eq!(p.spec.notifications[1].events.len(), 3);
    crate::check::check(&p.spec).expect("valid");
}
