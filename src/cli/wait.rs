//! `wait`: for CI. Blocks until the revision the Deployment holds now has a verdict and
//! exits with it: 0 promoted (or already stable), and distinct codes for rolled back,
//! aborted, superseded and timeout, printing the evidence when it failed. Follows the run
//! through watches; the judging of what the watches show is a pure function.

use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;

use super::cluster::{KubeArgs, Session};
use super::errors::{CliError, exit};
use super::feed::{Feed, FeedScope};
use super::render::{Style, evidence_lines};
use super::view::{DeploymentRollouts, phase};
use crate::api::quantity::parse_duration;
use crate::api::run::{Phase, RolloutRun};
use crate::run::condition;

/// `wait` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct WaitArgs {
    /// The governed Deployment.
    pub deployment: String,
    /// Give up after this long (e.g. `30m`), exiting with 13; default: no limit.
    #[arg(long, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| format!("{e} (use a duration such as 90s, 10m or 1h)"))
}

/// How the wait ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The revision is stable (promoted by `run`, or it already was).
    Promoted(Option<RolloutRun>),
    /// The analysis rolled it back.
    RolledBack(RolloutRun),
    /// Someone aborted it.
    Aborted(RolloutRun),
    /// A newer template, a revert or a released policy replaced it.
    Superseded {
        run: Option<RolloutRun>,
        why: String,
    },
}

impl Outcome {
    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Promoted(_) => exit::OK,
            Outcome::RolledBack(_) => exit::WAIT_ROLLED_BACK,
            Outcome::Aborted(_) => exit::WAIT_ABORTED,
            Outcome::Superseded { .. } => exit::WAIT_SUPERSEDED,
        }
    }
}

/// What the watches show about the target revision.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Not decided yet; the line says where it is.
    Pending(String),
    /// Decided.
    Done(Box<Outcome>),
}

impl Verdict {
    fn done(o: Outcome) -> Verdict {
        Verdict::Done(Box::new(o))
    }
}

/// Where a run in flight is, in one line. Counts are left out so the line changes only when
/// the run moves (one line per step in a CI log, not one per sample).
pub fn progress_line(run: &RolloutRun) -> String {
    let st = run.status.clone().unwrap_or_default();
    let total = run.spec.plan.steps.len();
    let mut line = format!(
        "run {}: {}, step {}/{total} at {}",
        run.name_any(),
        st.phase.as_str(),
        st.step.max(0) + 1,
        st.weight.unwrap_or_default()
    );
    if let Some(w) = st.conditions.iter().find(|c| c.type_ == condition::WAITING) {
        line.push_str(&format!("; {}: {}", w.reason, w.message));
    }
    line
}

/// Judges the view for the revision `target` (the template when the wait began).
pub fn judge(v: &DeploymentRollouts, target: &str) -> Result<Verdict, CliError> {
    let template = v.template_revision.as_deref().unwrap_or_default();
    let moved_on = template != target;
    let newest = v
        .current
        .iter()
        .chain(v.history.iter())
        .find(|r| r.spec.canary_revision == target);
    let pending = |s: String| Ok(Verdict::Pending(s));
    match newest {
        Some(r) if !phase(r).is_terminal() => pending(progress_line(r)),
        Some(r) => {
            let failed_mark = v.failed_revision.as_deref() == Some(target);
            let reason = r
                .status
                .as_ref()
                .and_then(|s| s.reason.clone())
                .unwrap_or_default();
            match phase(r) {
                Phase::Succeeded => Ok(Verdict::done(Outcome::Promoted(Some(r.clone())))),
                // Without the failed mark (cleared by `retry`) a new attempt is coming.
                Phase::RolledBack if failed_mark || moved_on => {
                    Ok(Verdict::done(Outcome::RolledBack(r.clone())))
                }
                Phase::Aborted if failed_mark || moved_on => {
                    Ok(Verdict::done(Outcome::Aborted(r.clone())))
                }
                Phase::Superseded if moved_on || reason == "Released" => {
                    let why = r
                        .status
                        .as_ref()
                        .and_then(|s| s.message.clone())
                        .unwrap_or_else(|| format!("the template changed to {template}"));
                    Ok(Verdict::done(Outcome::Superseded {
                        run: Some(r.clone()),
                        why,
                    }))
                }
                _ => pending(format!(
                    "revision {target}: run {} ended {}; waiting for the operator to start the next attempt",
                    r.name_any(),
                    phase(r).as_str()
                )),
            }
        }
        None if v.stable_revision.as_deref() == Some(target) => {
            Ok(Verdict::done(Outcome::Promoted(None)))
        }
        None if moved_on => Ok(Verdict::done(Outcome::Superseded {
            run: None,
            why: format!("the template changed to {template} before a run of {target} started"),
        })),
        None if v.policies.len() != 1 => Err(CliError::NotGoverned {
            namespace: v.namespace.clone(),
            name: v.deployment.clone(),
            why: if v.policies.is_empty() {
                "no RolloutPolicy selects it, so no run will start; add a policy whose spec.selector matches its labels".into()
            } else {
                format!(
                    "it is selected by {} policies ({}), so rollguard leaves it alone; change their selectors so exactly one selects it",
                    v.policies.len(),
                    v.policies.join(", ")
                )
            },
        }),
        None if v.stable_revision.is_none() => pending(format!(
            "waiting for rollguard to adopt the Deployment (revision {target})"
        )),
        None => pending(format!(
            "waiting for the operator to start a run of revision {target}"
        )),
    }
}

/// What `wait` prints when it ends, and the exit code.
pub fn report(v: &DeploymentRollouts, outcome: &Outcome, now: Timestamp, style: Style) -> String {
    let target = format!("{}/{}", v.namespace, v.deployment);
    let message = |r: &RolloutRun| {
        r.status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default()
    };
    match outcome {
        Outcome::Promoted(Some(r)) => format!(
            "promoted: revision {} of {target} is stable (run {}, tier {})\n",
            r.spec.canary_revision,
            r.name_any(),
            r.spec.tier.name
        ),
        Outcome::Promoted(None) => format!(
            "promoted: revision {} of {target} is stable; nothing to roll out\n",
            v.stable_revision.as_deref().unwrap_or("?")
        ),
        Outcome::RolledBack(r) | Outcome::Aborted(r) => {
            let word = if matches!(outcome, Outcome::RolledBack(_)) {
                "rolled back"
            } else {
                "aborted"
            };
            format!(
                "{word}: revision {} of {target} (run {}, tier {}): {}\n{}",
                r.spec.canary_revision,
                r.name_any(),
                r.spec.tier.name,
                message(r),
                evidence_lines(r, now, style)
            )
        }
        Outcome::Superseded { run, why } => format!(
            "superseded: {}{why}\n",
            run.as_ref()
                .map(|r| format!("run {} of {target}: ", r.name_any()))
                .unwrap_or_else(|| format!("{target}: "))
        ),
    }
}

/// Runs `wait`; returns the exit code.
pub async fn run(session: &Session, args: &WaitArgs) -> Result<u8, CliError> {
    let style = Style::for_stdout();
    let (_, first) = session.governed(&args.deployment).await?;
    let Some(target) = first.template_revision.clone() else {
        return Err(CliError::Other(format!(
            "Deployment {}/{} has no pod template",
            session.namespace, args.deployment
        )));
    };
    let ns = session.namespace.clone();
    let mut feed = Feed::start(
        session,
        &FeedScope {
            namespace: Some(ns.clone()),
            deployment: Some(args.deployment.clone()),
        },
    );
    let deadline = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut view = first;
    let mut said = String::new();
    loop {
        match judge(&view, &target)? {
            Verdict::Done(outcome) => {
                print!("{}", report(&view, &outcome, Timestamp::now(), style));
                return Ok(outcome.exit_code());
            }
            Verdict::Pending(line) => {
                if line != said {
                    eprintln!("{line}");
                    said = line;
                }
            }
        }
        let changed = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, feed.changed()).await.ok(),
                None => Some(feed.changed().await),
            }
        };
        match changed.await {
            Some(r) => r?,
            None => {
                let t = args.timeout.unwrap_or_default();
                println!(
                    "timed out after {}: revision {target} of {ns}/{} has no verdict yet; last seen: {said}",
                    crate::api::quantity::format_duration(t),
                    args.deployment
                );
                if let Some(r) = view.current.as_ref() {
                    print!("{}", evidence_lines(r, Timestamp::now(), style));
                }
                return Ok(exit::WAIT_TIMEOUT);
            }
        }
        view = feed
            .view_of(&ns, &args.deployment)
            .ok_or_else(|| CliError::NoSuchDeployment {
                namespace: ns.clone(),
                name: args.deployment.clone(),
            })?;
    }
}

#[cfg(test)]
mod tests;
