//! What kstatus is told in each situation: the run by phase, the Deployment by verdict, the
//! policy by validity. kstatus's own reading (the generic conditions first: `Reconciling`
//! True is InProgress, `Stalled` True is Failed, then `Ready`) is checked against the real
//! library in `tests/e2e/kstatus.rs`; `kstatus_reads` below is that order, for the tables.

use serde_json::json;

use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

fn status(phase: &str, message: Option<&str>) -> RolloutRunStatus {
    let mut st = json!({"phase": phase, "step": 1, "stepDisplay": "2/3", "weight": "5%"});
    if let Some(m) = message {
        st["message"] = json!(m);
    }
    serde_json::from_value(st).expect("a run status")
}

/// kstatus's generic reading of conditions (cli-utils v0.37.2 `checkGenericProperties`, then
/// `checkReadyCondition` for a custom resource), observedGeneration already matching.
fn kstatus_reads(conds: &[Condition]) -> &'static str {
    for c in conds {
        if c.type_ == RECONCILING && c.status == "True" {
            return "InProgress";
        }
        if c.type_ == STALLED && c.status == "True" {
            return "Failed";
        }
    }
    match conds
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.status.as_str())
    {
        Some("True") | None => "Current",
        _ => "InProgress",
    }
}

fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

#[test]
fn a_run_in_each_phase_tells_kstatus_where_it_is() {
    // (phase, message, Ready, Reconciling, Stalled, what kstatus reads)
    let cases = [
        ("Progressing", None, "False", "True", None, "InProgress"),
        (
            "AwaitingApproval",
            None,
            "False",
            "True",
            None,
            "InProgress",
        ),
        ("Promoting", None, "False", "True", None, "InProgress"),
        (
            "Succeeded",
            Some("promoted"),
            "True",
            "False",
            None,
            "Current",
        ),
        (
            "Superseded",
            Some("a newer template"),
            "True",
            "False",
            None,
            "Current",
        ),
        (
            "RolledBack",
            Some("5% errors"),
            "False",
            "False",
            Some("True"),
            "Failed",
        ),
        (
            "Aborted",
            Some("aborted by alice"),
            "False",
            "False",
            Some("True"),
            "Failed",
        ),
    ];
    for (phase, message, ready, reconciling, stalled, reads) in cases {
        let st = run_status(&status(phase, message), Some(3), at("2027-01-15T08:00:00Z"));
        let c = &st.conditions;
        assert_eq!(
            find(c, READY).map(|c| c.status.as_str()),
            Some(ready),
            "{phase}"
        );
        assert_eq!(
            find(c, READY).map(|c| c.reason.as_str()),
            Some(phase),
            "{phase}"
        );
        assert_eq!(
            find(c, RECONCILING).map(|c| c.status.as_str()),
            Some(reconciling),
            "{phase}"
        );
        assert_eq!(
            find(c, STALLED).map(|c| c.status.as_str()),
            stalled,
            "{phase}"
        );
        assert_eq!(kstatus_reads(c), reads, "{phase}");
        assert_eq!(st.observed_generation, Some(3), "{phase}");
        assert!(
            c.iter().all(|c| c.observed_generation == Some(3)),
            "{phase}"
        );
        if let Some(m) = message {
            assert!(c.iter().all(|c| c.message.contains(m)), "{phase}: {c:?}");
        }
    }
}

#[test]
fn a_run_in_flight_says_its_step_and_why_it_waits() {
    let st = run_status(
        &status("Progressing", Some("waiting for the canary's pods")),
        None,
        at("2027-01-15T08:00:00Z"),
    );
    let r = find(&st.conditions, RECONCILING).expect("Reconciling");
    assert_eq!(r.message, "step 2/3 at 5%: waiting for the canary's pods");
}

#[test]
fn a_run_the_machine_stalled_reads_failed_until_the_machine_clears_it() {
    let mut st = status("Progressing", None);
    st.conditions.push(Condition {
        type_: STALLED.into(),
        status: "True".into(),
        reason: "AnalysisBlind".into(),
        message: "8 samples without data".into(),
        last_transition_time: Time(at("2027-01-15T07:59:00Z")),
        observed_generation: None,
    });
    let out = run_status(&st, Some(1), at("2027-01-15T08:00:00Z"));
    let s = find(&out.conditions, STALLED).expect("kept");
    assert_eq!(
        (s.reason.as_str(), s.message.as_str()),
        ("AnalysisBlind", "8 samples without data")
    );
    assert_eq!(
        find(&out.conditions, RECONCILING).map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("False", STALLED))
    );
    assert_eq!(kstatus_reads(&out.conditions), "Failed");
    // The machine cleared it: in progress again.
    let mut moving = out.clone();
    moving.conditions.retain(|c| c.type_ != STALLED);
    let again = run_status(&moving, Some(1), at("2027-01-15T08:00:10Z"));
    assert_eq!(kstatus_reads(&again.conditions), "InProgress");
    // A run that ends while stalled keeps no stale Stalled once it succeeded.
    let mut ended = out.clone();
    ended.phase = Phase::Superseded;
    let ended = run_status(&ended, Some(1), at("2027-01-15T08:00:20Z"));
    assert!(find(&ended.conditions, STALLED).is_none());
    assert_eq!(kstatus_reads(&ended.conditions), "Current");
}

#[test]
fn run_conditions_are_stable_between_passes_and_other_conditions_stay() {
    let mut st = status("RolledBack", Some("5% errors"));
    st.conditions.push(Condition {
        type_: "Analysis".into(),
        status: "True".into(),
        reason: "Judged".into(),
        message: "m".into(),
        last_transition_time: Time(at("2027-01-15T07:00:00Z")),
        observed_generation: None,
    });
    let once = run_status(&st, Some(2), at("2027-01-15T08:00:00Z"));
    let twice = run_status(&once, Some(2), at("2027-01-15T08:05:00Z"));
    assert_eq!(once, twice, "nothing to write the second time");
    assert!(find(&twice.conditions, "Analysis").is_some());
    // A transition moves the time; a condition whose status holds keeps it.
    let mut later = twice.clone();
    later.phase = Phase::Succeeded;
    let later = run_status(&later, Some(2), at("2027-01-15T09:00:00Z"));
    assert_eq!(
        find(&later.conditions, READY).map(|c| c.last_transition_time.0),
        Some(at("2027-01-15T09:00:00Z"))
    );
    assert_eq!(
        find(&later.conditions, RECONCILING).map(|c| c.last_transition_time.0),
        Some(at("2027-01-15T08:00:00Z"))
    );
}

#[test]
fn a_governed_deployment_carries_its_verdict_as_kstatus_conditions() {
    // (verdict, the conditions rollguard adds) — kstatus reads Reconciling as InProgress and
    // Stalled as Failed before the Deployment's own rules; with none, those rules decide.
    let cases = [
        (State::Steady, vec![]),
        (State::Progressing, vec![(RECONCILING, "Progressing")]),
        (
            State::AwaitingApproval,
            vec![(RECONCILING, "AwaitingApproval")],
        ),
        (State::RolledBack, vec![(STALLED, "RolledBack")]),
        (State::Aborted, vec![(STALLED, "Aborted")]),
    ];
    for (state, want) in cases {
        let v = Verdict {
            state,
            message: "why".into(),
        };
        let got: Vec<(String, String)> = deployment(&v)
            .into_iter()
            .inspect(|m| assert!(m.status && m.message == "why", "{state:?}"))
            .map(|m| (m.type_, m.reason))
            .collect();
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(t, r)| (t.to_string(), r.to_string()))
            .collect();
        assert_eq!(got, want, "{state:?}");
    }
}

#[test]
fn deployment_conditions_read_back_as_written_and_keep_their_transition_time() {
    let v = Verdict {
        state: State::RolledBack,
        message: "5% errors".into(),
    };
    let marks = deployment(&v);
    let first = deployment_conditions(&[], &marks, at("2027-01-15T08:00:00Z"));
    assert_eq!(deployment_marks(&first), marks);
    // The Deployment controller's own conditions are not rollguard's.
    let mut have = first.clone();
    have.push(DeploymentCondition {
        type_: "Progressing".into(),
        status: "Unknown".into(),
        reason: Some("DeploymentPaused".into()),
        ..Default::default()
    });
    assert_eq!(deployment_marks(&have), marks);
    let again = deployment_conditions(&have, &marks, at("2027-01-15T08:10:00Z"));
    assert_eq!(
        again[0].last_transition_time,
        Some(Time(at("2027-01-15T08:00:00Z")))
    );
}

#[test]
fn a_policy_is_stalled_only_while_it_is_invalid() {
    let valid = policy(None);
    assert_eq!(valid.len(), 1);
    assert_eq!(
        (valid[0].type_.as_str(), valid[0].status),
        (RECONCILING, false)
    );
    let invalid = policy(Some("tiers[0].steps is empty"));
    let stalled = invalid
        .iter()
        .find(|m| m.type_ == STALLED)
        .expect("Stalled");
    assert!(stalled.status);
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(stalled.message.contains("tiers[0].steps is empty"));
}
