//! `wait`'s judging, scenario by scenario: what the watches show → pending or the verdict
//! and its exit code.

use super::*;
use crate::cli::fixtures::{self, now, web};

fn code(v: &DeploymentRollouts, target: &str) -> Option<u8> {
    match judge(v, target) {
        Ok(Verdict::Done(o)) => Some(o.exit_code()),
        Ok(Verdict::Pending(_)) => None,
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn a_run_in_flight_is_pending_and_says_where_it_is() {
    let v = web(Some(fixtures::awaiting_approval()), vec![]);
    match judge(&v, "8d3e41f0") {
        Ok(Verdict::Pending(line)) => assert_eq!(
            line,
            "run web-8d3e41f0: AwaitingApproval, step 3/3 at 25%; AwaitingApproval: all steps passed; waiting for `kubectl rollguard approve`"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_ending_has_its_exit_code() {
    // Promoted: the run succeeded and its revision is stable.
    let mut v = web(None, vec![fixtures::succeeded("web-8d3e41f0", "8d3e41f0")]);
    v.stable_revision = Some("8d3e41f0".into());
    v.template_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(0));

    // Rolled back: the revision is marked failed.
    let mut v = web(
        None,
        vec![fixtures::rolled_back("web-8d3e41f0", "8d3e41f0")],
    );
    v.failed_revision = Some("8d3e41f0".into());
    v.template_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(10));

    // Aborted.
    let mut v = web(None, vec![fixtures::aborted()]);
    v.failed_revision = Some("8d3e41f0".into());
    v.template_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(11));

    // Superseded: the template moved on while the run was in flight.
    let mut run = fixtures::progressing();
    if let Some(st) = run.status.as_mut() {
        st.phase = Phase::Superseded;
        st.reason = Some("Superseded".into());
        st.message = Some("revision 99aa replaced 8d3e41f0 before it was promoted".into());
    }
    let mut v = web(None, vec![run]);
    v.template_revision = Some("99aa".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(12));
}

#[test]
fn nothing_to_roll_out_is_a_success() {
    let v = web(None, vec![]);
    assert_eq!(code(&v, "6f1c2a9b"), Some(0));
}

#[test]
fn before_the_operator_starts_the_run_it_waits() {
    let mut v = web(None, vec![fixtures::succeeded("web-6f1c2a9b", "6f1c2a9b")]);
    v.template_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), None);
    // ... and a newer template before it started supersedes the wait.
    v.template_revision = Some("99aa".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(12));
}

#[test]
fn after_retry_the_old_rollback_does_not_count() {
    // `retry` cleared the failed mark: the rolled-back run is history, a new attempt comes.
    let mut v = web(
        None,
        vec![fixtures::rolled_back("web-8d3e41f0", "8d3e41f0")],
    );
    v.template_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), None);
    // The second attempt in flight, then succeeding.
    let mut second = fixtures::progressing();
    second.metadata.name = Some("web-8d3e41f0-2".into());
    v.current = Some(second);
    assert_eq!(code(&v, "8d3e41f0"), None);
    let mut done = fixtures::succeeded("web-8d3e41f0-2", "8d3e41f0");
    done.metadata.creation_timestamp = Some(fixtures::ago(10));
    v.current = None;
    v.history.insert(0, done);
    v.stable_revision = Some("8d3e41f0".into());
    assert_eq!(code(&v, "8d3e41f0"), Some(0));
}

#[test]
fn a_released_deployment_supersedes_the_run() {
    let mut run = fixtures::progressing();
    if let Some(st) = run.status.as_mut() {
        st.phase = Phase::Superseded;
        st.reason = Some("Released".into());
        st.message = Some("the run ended because its RolloutPolicy no longer selects it".into());
    }
    let mut v = web(None, vec![run]);
    v.policies.clear();
    assert_eq!(code(&v, "8d3e41f0"), Some(12));
}

#[test]
fn waiting_on_an_ungoverned_deployment_is_an_error() {
    let mut v = web(None, vec![]);
    v.policies = vec!["a".into(), "b".into()];
    v.template_revision = Some("8d3e41f0".into());
    let e = judge(&v, "8d3e41f0").err().map(|e| e.exit_code());
    assert_eq!(e, Some(exit::NOT_GOVERNED));
}

#[test]
fn the_report_prints_the_evidence_on_failure() {
    let run = fixtures::rolled_back("web-8d3e41f0", "8d3e41f0");
    let v = web(None, vec![run.clone()]);
    let text = report(&v, &Outcome::RolledBack(run), now(), Style::PLAIN);
    assert_eq!(
        text,
        "rolled back: revision 8d3e41f0 of shop/web (run web-8d3e41f0, tier ai-assisted): rolled back: 420 canary requests, 9 errors (2.1429%) is above the threshold 0.5% (1 failed sample(s))
Evidence:    5m ago, step 1: 420 requests, 9 errors, rate 2.1429% vs threshold 0.5%: Fail (6 samples)
             requests: sum(increase(http_requests_total{workload=\"web-canary\"}[4m]))
             errors:   sum(increase(http_requests_total{workload=\"web-canary\",code=~\"5..\"}[4m]))
"
    );
    let ok = report(
        &v,
        &Outcome::Promoted(Some(fixtures::succeeded("web-8d3e41f0", "8d3e41f0"))),
        now(),
        Style::PLAIN,
    );
    assert_eq!(
        ok,
        "promoted: revision 8d3e41f0 of shop/web is stable (run web-8d3e41f0, tier ai-assisted)\n"
    );
}
