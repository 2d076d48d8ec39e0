//! What a governed Deployment says about itself in each situation.

use serde_json::json;

use super::*;

fn run(phase: &str, message: Option<&str>) -> (RolloutRunSpec, RolloutRunStatus) {
    let spec: RolloutRunSpec = serde_json::from_value(json!({
        "deployment": "web", "policy": "p", "stableRevision": "old", "canaryRevision": "new",
        "tier": {"name": "ai-assisted", "reason": "test"},
        "plan": {"name": "ai-assisted", "steps": [{"weight": "1%", "pause": "1m"}]},
        "analysis": {"interval": "15s", "requests": "r", "errors": "e"},
        "router": "replicas"
    }))
    .expect("a run spec");
    let mut st = json!({"phase": phase, "step": 0});
    if let Some(m) = message {
        st["message"] = json!(m);
    }
    if phase == "Progressing" {
        st["stepDisplay"] = json!("1/3");
        st["weight"] = json!("1%");
    }
    (spec, serde_json::from_value(st).expect("a run status"))
}

#[test]
fn a_run_in_each_phase_gives_its_verdict() {
    let cases = [
        (
            "Progressing",
            None,
            State::Progressing,
            "canary new at step 1/3 (1%), tier ai-assisted",
        ),
        (
            "AwaitingApproval",
            None,
            State::AwaitingApproval,
            "canary new passed its steps; approve: kubectl rollguard approve web -n shop",
        ),
        (
            "Promoting",
            None,
            State::Progressing,
            "canary new passed; the Deployment rolls it out",
        ),
        ("Succeeded", None, State::Steady, "revision new promoted"),
        (
            "RolledBack",
            Some("rolled back: 5% errors"),
            State::RolledBack,
            "rolled back: 5% errors",
        ),
        (
            "Aborted",
            Some("aborted by alice"),
            State::Aborted,
            "aborted by alice",
        ),
        (
            "Superseded",
            Some("a newer template"),
            State::Progressing,
            "a newer template",
        ),
    ];
    for (phase, message, state, says) in cases {
        let (spec, st) = run(phase, message);
        let v = Verdict::of_run("shop", &spec, &st);
        assert_eq!(v.state, state, "{phase}");
        assert_eq!(v.message, says, "{phase}");
    }
}

/// A decision, mid-rollout or not, the newest finished run, and the verdict wanted.
type Case<'a> = (
    Governance,
    Option<bool>,
    Option<(&'a RolloutRunSpec, &'a RolloutRunStatus)>,
    Option<(State, &'a str)>,
);

#[test]
fn between_runs_the_decision_and_the_last_run_give_the_verdict() {
    let (bad_spec, bad) = run("RolledBack", Some("rolled back: 5% errors"));
    let (_, aborted) = run("Aborted", Some("aborted by alice"));
    let known_bad = Governance::KnownBad {
        revision: "new".into(),
    };
    let cases: [Case; 8] = [
        (Governance::WaitForRollout, None, None, None),
        (
            Governance::Adopt {
                stable: "s1".into(),
            },
            Some(false),
            None,
            Some((State::Steady, "adopted; stable revision s1")),
        ),
        (
            Governance::Steady,
            Some(false),
            None,
            Some((State::Steady, "revision old is stable")),
        ),
        (
            Governance::Steady,
            None,
            None,
            Some((State::Steady, "revision old is stable")),
        ),
        (
            Governance::Steady,
            Some(true),
            None,
            Some((State::Progressing, "rolling out the stable revision old")),
        ),
        (
            known_bad.clone(),
            Some(false),
            Some((&bad_spec, &bad)),
            Some((
                State::RolledBack,
                "revision new failed its canary: rolled back: 5% errors; revert the template, or retry with kubectl rollguard retry",
            )),
        ),
        (
            known_bad.clone(),
            Some(false),
            Some((&bad_spec, &aborted)),
            Some((
                State::Aborted,
                "revision new failed its canary: aborted by alice; revert the template, or retry with kubectl rollguard retry",
            )),
        ),
        (
            Governance::StartRun {
                revision: "n2".into(),
            },
            Some(false),
            None,
            Some((State::Progressing, "a run starts for revision n2")),
        ),
    ];
    for (decision, mid, last, want) in cases {
        let got = Verdict::between_runs(&decision, mid, Some("old"), last);
        assert_eq!(
            got.as_ref().map(|v| (v.state, v.message.as_str())),
            want,
            "{decision:?} {mid:?}"
        );
    }
    // A known-bad revision whose run is gone (pruned): still rolled back, without the why.
    let v = Verdict::between_runs(&known_bad, Some(false), Some("old"), None).expect("a verdict");
    assert_eq!(v.state, State::RolledBack);
    assert!(
        v.message.starts_with("revision new failed its canary; "),
        "{}",
        v.message
    );
}

#[test]
fn the_annotations_carry_state_generation_and_a_bounded_message() {
    let mut a = BTreeMap::new();
    let long = Verdict::new(State::RolledBack, "x".repeat(1000));
    long.annotate(&mut a, 7);
    assert_eq!(a.get(VERDICT).map(String::as_str), Some("RolledBack"));
    assert_eq!(a.get(VERDICT_GENERATION).map(String::as_str), Some("7"));
    let m = a.get(VERDICT_MESSAGE).expect("a message");
    assert_eq!(m.chars().count(), MESSAGE_MAX);
    assert!(m.ends_with("..."));
}

#[test]
fn a_write_moves_the_generation_and_no_write_keeps_it() {
    assert_eq!(generation_after(4, true), 5);
    assert_eq!(generation_after(4, false), 4);
}
