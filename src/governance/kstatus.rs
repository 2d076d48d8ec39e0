//! What rollguard tells kstatus (sigs.k8s.io/cli-utils `pkg/kstatus/status`, the library Flux
//! and Helm 4's `--wait` judge health with): the `Ready`, `Reconciling` and `Stalled`
//! conditions of runs and policies, and the `Reconciling`/`Stalled` conditions rollguard adds
//! to a governed Deployment's `status.conditions`. Pure: the controller writes what this says.
//!
//! kstatus reads the generic conditions before any kind's own rules: `Reconciling` True is
//! InProgress and `Stalled` True is Failed, whatever else the object says. That is how a
//! Deployment held paused on a rolled-back template (which the Deployment rules alone would
//! call InProgress forever) reads Failed.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::DeploymentCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::verdict::{State, Verdict};
use crate::api::run::{Phase, RolloutRunStatus};

/// kstatus' `Ready`: True when the object is where it should be (a run that ended needing
/// nobody, a policy in force).
pub const READY: &str = "Ready";
/// kstatus' `Reconciling`: True while the object is still moving towards where it should be.
pub const RECONCILING: &str = "Reconciling";
/// kstatus' `Stalled`: True when it cannot get there without someone acting.
pub const STALLED: &str = "Stalled";

/// One condition rollguard sets: its type, whether it is True, why (CamelCase) and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Mark {
    fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Mark {
        Mark {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn status_text(&self) -> &'static str {
        if self.status { "True" } else { "False" }
    }
}

/// The conditions a governed Deployment carries for its verdict, all True (the Deployment
/// carries none when steady: its own rules then decide, and say Current once it is rolled out
/// and not paused).
pub fn deployment(v: &Verdict) -> Vec<Mark> {
    match v.state {
        State::Steady => vec![],
        State::Progressing | State::AwaitingApproval => {
            vec![Mark::new(RECONCILING, true, v.state.as_str(), &v.message)]
        }
        State::RolledBack | State::Aborted => {
            vec![Mark::new(STALLED, true, v.state.as_str(), &v.message)]
        }
    }
}

/// rollguard's conditions on a Deployment now (Reconciling and Stalled, as written).
pub fn deployment_marks(conditions: &[DeploymentCondition]) -> Vec<Mark> {
    conditions
        .iter()
        .filter(|c| c.type_ == RECONCILING || c.type_ == STALLED)
        .map(|c| Mark {
            type_: c.type_.clone(),
            status: c.status == "True",
            reason: c.reason.clone().unwrap_or_default(),
            message: c.message.clone().unwrap_or_default(),
        })
        .collect()
}

/// The Deployment conditions to apply for `marks`, keeping the transition time of one that
/// the Deployment already has with the same status.
pub fn deployment_conditions(
    have: &[DeploymentCondition],
    marks: &[Mark],
    now: Timestamp,
) -> Vec<DeploymentCondition> {
    marks
        .iter()
        .map(|m| {
            let since = have
                .iter()
                .find(|c| c.type_ == m.type_ && c.status == m.status_text())
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            DeploymentCondition {
                type_: m.type_.clone(),
                status: m.status_text().into(),
                reason: Some(m.reason.clone()),
                message: Some(m.message.clone()),
                last_transition_time: Some(since),
                last_update_time: Some(Time(now)),
            }
        })
        .collect()
}

/// What becomes of the run's `Stalled` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StalledIs {
    /// As the run machine left it (it sets and clears its own causes while the run is in
    /// flight).
    TheMachines,
    /// Set to this.
    Set(Mark),
    /// Removed (the run ended needing nobody).
    Gone,
}

/// `Ready`, `Reconciling` and what becomes of `Stalled` for a run's status.
fn run_marks(st: &RolloutRunStatus) -> (Mark, Mark, StalledIs) {
    let phase = st.phase.as_str();
    let said = st
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the run is {phase}"));
    let in_flight_said = st.message.clone().unwrap_or_default();
    match st.phase {
        Phase::Progressing | Phase::AwaitingApproval | Phase::Promoting => {
            let held = st
                .conditions
                .iter()
                .find(|c| c.type_ == STALLED && c.status == "True");
            if let Some(s) = held {
                return (
                    Mark::new(READY, false, phase, &s.message),
                    Mark::new(RECONCILING, false, STALLED, &s.message),
                    StalledIs::TheMachines,
                );
            }
            let doing = match (st.phase, &st.step_display, st.weight) {
                (Phase::Progressing, Some(step), Some(w)) => format!("step {step} at {w}"),
                (Phase::Progressing, _, _) => "the canary is starting".into(),
                (Phase::AwaitingApproval, _, _) => {
                    "the canary passed its steps; waiting for an approval".into()
                }
                _ => "the canary passed; the Deployment rolls the new revision out".into(),
            };
            let text = if in_flight_said.is_empty() {
                doing
            } else {
                format!("{doing}: {in_flight_said}")
            };
            (
                Mark::new(READY, false, phase, &text),
                Mark::new(RECONCILING, true, phase, &text),
                StalledIs::TheMachines,
            )
        }
        Phase::Succeeded | Phase::Superseded => (
            Mark::new(READY, true, phase, &said),
            Mark::new(RECONCILING, false, phase, &said),
            StalledIs::Gone,
        ),
        Phase::RolledBack | Phase::Aborted => (
            Mark::new(READY, false, phase, &said),
            Mark::new(RECONCILING, false, phase, &said),
            StalledIs::Set(Mark::new(STALLED, true, phase, &said)),
        ),
    }
}

/// A run's status with its kstatus conditions and `observedGeneration` (the run's
/// `metadata.generation`) set; other conditions are left as they are.
pub fn run_status(
    st: &RolloutRunStatus,
    generation: Option<i64>,
    now: Timestamp,
) -> RolloutRunStatus {
    let mut out = st.clone();
    out.observed_generation = generation;
    let (ready, reconciling, stalled) = run_marks(st);
    set(&mut out.conditions, &ready, generation, now);
    set(&mut out.conditions, &reconciling, generation, now);
    match stalled {
        StalledIs::TheMachines => {}
        StalledIs::Set(m) => set(&mut out.conditions, &m, generation, now),
        StalledIs::Gone => out.conditions.retain(|c| c.type_ != STALLED),
    }
    out
}

/// A policy's `Reconciling` (never True: a policy is judged in one pass, and
/// `observedGeneration` says which generation) and, while it is invalid, `Stalled` (new runs
/// wait for a fix). Its `Ready` is set beside its other conditions.
pub fn policy(invalid: Option<&str>) -> Vec<Mark> {
    let mut marks = vec![Mark::new(
        RECONCILING,
        false,
        "Reconciled",
        "the status describes the policy's current generation",
    )];
    if let Some(why) = invalid {
        marks.push(Mark::new(
            STALLED,
            true,
            "InvalidSpec",
            format!("new runs wait until the policy is fixed: {why}"),
        ));
    }
    marks
}

/// Sets one condition, keeping its transition time when its status does not change.
fn set(conds: &mut Vec<Condition>, m: &Mark, generation: Option<i64>, now: Timestamp) {
    let status = m.status_text();
    let since = conds
        .iter()
        .find(|c| c.type_ == m.type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let c = Condition {
        type_: m.type_.clone(),
        status: status.into(),
        reason: m.reason.clone(),
        message: m.message.clone(),
        last_transition_time: since,
        observed_generation: generation,
    };
    match conds.iter_mut().find(|c| c.type_ == m.type_) {
        Some(old) => *old = c,
        None => conds.push(c),
    }
}

#[cfg(test)]
mod tests;
