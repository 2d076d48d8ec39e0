//! rollguard's verdict on a governed Deployment, carried on the Deployment itself so that a
//! health check (an Argo CD Lua check, a script, a dashboard) needs only that object: the
//! state, the Deployment generation it is about, and a short message.
//!
//! A verdict whose generation is not the Deployment's `metadata.generation` is stale: the
//! spec changed since (a new template, a scale) and rollguard has not looked yet. The API
//! server adds one to a Deployment's generation at every write that changes its spec or its
//! annotations (annotations are copied to ReplicaSets), so a write of the verdict moves the
//! generation itself: see [`generation_after`].

use std::collections::BTreeMap;

use crate::api::run::{Phase, RolloutRunSpec, RolloutRunStatus};
use crate::run::govern::Governance;

/// Deployment annotation: the verdict's state (see [`State`]).
pub const VERDICT: &str = "rollguard.dev/verdict";
/// Deployment annotation: the `metadata.generation` the verdict is about.
pub const VERDICT_GENERATION: &str = "rollguard.dev/verdict-generation";
/// Deployment annotation: one line on why.
pub const VERDICT_MESSAGE: &str = "rollguard.dev/verdict-message";

/// The longest message written (characters), so the annotation stays one readable line.
const MESSAGE_MAX: usize = 256;

/// Where a governed Deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The template is the stable revision (and rolled out).
    Steady,
    /// A change is being judged or promoted, or the Deployment is rolling its stable
    /// template back out.
    Progressing,
    /// The canary passed its steps; a person must approve.
    AwaitingApproval,
    /// The template was judged bad and rolled back; it stays paused until it changes.
    RolledBack,
    /// Someone aborted the run of the current template.
    Aborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Steady => "Steady",
            State::Progressing => "Progressing",
            State::AwaitingApproval => "AwaitingApproval",
            State::RolledBack => "RolledBack",
            State::Aborted => "Aborted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub state: State,
    pub message: String,
}

impl Verdict {
    fn new(state: State, message: String) -> Verdict {
        let message = if message.chars().count() > MESSAGE_MAX {
            let cut: String = message.chars().take(MESSAGE_MAX - 3).collect();
            format!("{cut}...")
        } else {
            message
        };
        Verdict { state, message }
    }

    /// The verdict while a run is in flight or has just ended. `namespace` is the
    /// Deployment's, for the approve command.
    pub fn of_run(namespace: &str, spec: &RolloutRunSpec, st: &RolloutRunStatus) -> Verdict {
        let rev = &spec.canary_revision;
        let ended = || st.message.clone().unwrap_or_default();
        match st.phase {
            Phase::Progressing => {
                let at = match (&st.step_display, st.weight) {
                    (Some(step), Some(w)) => format!("at step {step} ({w})"),
                    _ => "starting".into(),
                };
                Verdict::new(
                    State::Progressing,
                    format!("canary {rev} {at}, tier {}", spec.tier.name),
                )
            }
            Phase::AwaitingApproval => Verdict::new(
                State::AwaitingApproval,
                format!(
                    "canary {rev} passed its steps; approve: kubectl rollguard approve {} -n {namespace}",
                    spec.deployment
                ),
            ),
            Phase::Promoting => Verdict::new(
                State::Progressing,
                format!("canary {rev} passed; the Deployment rolls it out"),
            ),
            Phase::Succeeded => Verdict::new(State::Steady, format!("revision {rev} promoted")),
            Phase::RolledBack => Verdict::new(State::RolledBack, ended()),
            Phase::Aborted => Verdict::new(State::Aborted, ended()),
            Phase::Superseded => Verdict::new(State::Progressing, ended()),
        }
    }

    /// The verdict with no run in flight. `last` is the newest finished run, which says how
    /// a known-bad revision failed. `None` for a Deployment not adopted yet.
    pub fn between_runs(
        decision: &Governance,
        mid_rollout: Option<bool>,
        stable: Option<&str>,
        last: Option<(&RolloutRunSpec, &RolloutRunStatus)>,
    ) -> Option<Verdict> {
        let stable = stable.unwrap_or_default();
        Some(match decision {
            Governance::WaitForRollout => return None,
            Governance::Adopt { stable } => {
                Verdict::new(State::Steady, format!("adopted; stable revision {stable}"))
            }
            Governance::Steady if mid_rollout == Some(true) => Verdict::new(
                State::Progressing,
                format!("rolling out the stable revision {stable}"),
            ),
            Governance::Steady => {
                Verdict::new(State::Steady, format!("revision {stable} is stable"))
            }
            Governance::KnownBad { revision } => {
                let run = last.filter(|(spec, _)| &spec.canary_revision == revision);
                let state = match run.map(|(_, st)| st.phase) {
                    Some(Phase::Aborted) => State::Aborted,
                    _ => State::RolledBack,
                };
                let why = run
                    .and_then(|(_, st)| st.message.clone())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                Verdict::new(
                    state,
                    format!(
                        "revision {revision} failed its canary{why}; revert the template, or retry with kubectl rollguard retry"
                    ),
                )
            }
            Governance::StartRun { revision } => Verdict::new(
                State::Progressing,
                format!("a run starts for revision {revision}"),
            ),
        })
    }

    /// Writes the verdict into `annotations`, about Deployment generation `generation`.
    pub fn annotate(&self, annotations: &mut BTreeMap<String, String>, generation: i64) {
        annotations.insert(VERDICT.into(), self.state.as_str().into());
        annotations.insert(VERDICT_GENERATION.into(), generation.to_string());
        annotations.insert(VERDICT_MESSAGE.into(), self.message.clone());
    }
}

/// The generation to write into the verdict: the Deployment's own when rollguard's fields
/// (with the verdict about that generation) are already what the Deployment has, so there is
/// no write; one more otherwise, since the write changes annotations or `spec.paused` and the
/// API server counts it. Written so, the next pass finds nothing to change.
pub fn generation_after(generation: i64, write_needed: bool) -> i64 {
    generation + i64::from(write_needed)
}

#[cfg(test)]
mod tests;
