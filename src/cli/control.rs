//! The commands people give a run: `abort`, `promote`, `pause`, `resume` (written to the
//! run's `spec.control`, each with the authenticated user) and `retry` (clears the
//! Deployment's failed-revision mark so the operator starts a new run). Each checks the
//! run's state first, so a command that would do nothing is refused with the reason.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::cluster::{FIELD_MANAGER, Identity, KubeArgs, Session};
use super::errors::{Attempt, CliError, resource};
use crate::api::run::{Command, Phase, PromoteCommand, RolloutRun};
use crate::names::{FAILED_REVISION, run_name};

/// Arguments naming a Deployment.
#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// The governed Deployment.
    pub deployment: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `abort` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct AbortArgs {
    /// The governed Deployment whose run to abort.
    pub deployment: String,
    /// Why, recorded on the run with your user name.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `promote` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct PromoteArgs {
    /// The governed Deployment whose run to promote.
    pub deployment: String,
    /// Skip all remaining steps, not only the current pause.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// `pause` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct PauseArgs {
    /// The governed Deployment whose run to hold.
    pub deployment: String,
    /// Why, recorded on the run with your user name.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

fn phase(run: &RolloutRun) -> Phase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

fn step_of(run: &RolloutRun) -> (i32, usize) {
    let step = run.status.as_ref().map(|s| s.step).unwrap_or(0).max(0);
    (step, run.spec.plan.steps.len())
}

fn refused(run: &RolloutRun, what: &str, why: &str) -> CliError {
    CliError::Refused(format!("cannot {what} run {}: {why}", run.name_any()))
}

/// The ops that set `spec.control.<field>`, creating `spec.control` when absent.
fn set_control(run: &RolloutRun, field: &str, value: serde_json::Value) -> Vec<serde_json::Value> {
    if run.spec.control.is_some() {
        vec![json!({"op": "add", "path": format!("/spec/control/{field}"), "value": value})]
    } else {
        vec![json!({"op": "add", "path": "/spec/control", "value": {field: value}})]
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, CliError> {
    serde_json::to_value(v).map_err(|e| CliError::Other(format!("encoding the command: {e}")))
}

fn command(me: &Identity, reason: Option<&String>, now: Timestamp) -> Command {
    Command {
        user: me.user.clone(),
        time: Time(now),
        reason: reason.cloned(),
    }
}

/// Whether `abort` applies: while the run is in flight, promoting included (the rollout then
/// stops where it stands), and not twice.
pub fn check_abort(run: &RolloutRun) -> Result<(), CliError> {
    if let Some(a) = run.spec.control.as_ref().and_then(|c| c.abort.as_ref()) {
        return Err(refused(
            run,
            "abort",
            &format!(
                "{} aborted it already; the operator is rolling it back",
                a.user
            ),
        ));
    }
    match phase(run) {
        p if p.is_terminal() => Err(refused(run, "abort", &format!("it ended {}", p.as_str()))),
        _ => Ok(()),
    }
}

/// Whether `promote` applies: only while progressing, not while paused, and never while the
/// tier requires an approval that is missing (promote does not replace an approval, and an
/// approval is given only once the steps have passed, so a tier that requires one walks all
/// its steps).
pub fn check_promote(run: &RolloutRun) -> Result<(), CliError> {
    let needs_approval = run.spec.plan.require_approval && run.spec.approvals.is_empty();
    if needs_approval {
        return Err(CliError::Refused(format!(
            "cannot promote run {}: its tier {} requires an approval and it has none; promote cannot skip an approval, which is given on the evidence of all the steps (once the run awaits it: `kubectl rollguard approve {} -n {}`)",
            run.name_any(),
            run.spec.tier.name,
            run.spec.deployment,
            run.namespace().unwrap_or_default()
        )));
    }
    if let Some(p) = run.spec.control.as_ref().and_then(|c| c.pause.as_ref()) {
        return Err(refused(
            run,
            "promote",
            &format!("{} paused it; `resume` it first", p.user),
        ));
    }
    match phase(run) {
        Phase::Progressing => Ok(()),
        Phase::AwaitingApproval => Err(refused(run, "promote", "it has passed all steps already")),
        Phase::Promoting => Err(refused(run, "promote", "it is already promoting")),
        p => Err(refused(run, "promote", &format!("it ended {}", p.as_str()))),
    }
}

/// Whether `pause` applies: only while progressing (the only phase that moves by itself
/// between steps), and not twice.
pub fn check_pause(run: &RolloutRun) -> Result<(), CliError> {
    if let Some(p) = run.spec.control.as_ref().and_then(|c| c.pause.as_ref()) {
        return Err(refused(
            run,
            "pause",
            &format!("{} paused it already; `resume` releases it", p.user),
        ));
    }
    match phase(run) {
        Phase::Progressing => Ok(()),
        Phase::AwaitingApproval => Err(refused(
            run,
            "pause",
            "it is waiting for an approval and does not move until it gets one",
        )),
        Phase::Promoting => Err(refused(
            run,
            "pause",
            "it is promoting: the Deployment is rolling out the new revision",
        )),
        p => Err(refused(run, "pause", &format!("it ended {}", p.as_str()))),
    }
}

/// Whether `resume` applies: the run is paused.
pub fn check_resume(run: &RolloutRun) -> Result<(), CliError> {
    if run
        .spec
        .control
        .as_ref()
        .and_then(|c| c.pause.as_ref())
        .is_none()
    {
        return Err(refused(run, "resume", "it is not paused"));
    }
    Ok(())
}

/// Runs `abort`.
pub async fn abort(session: &Session, args: &AbortArgs) -> Result<(), CliError> {
    let (_, v) = session.governed(&args.deployment).await?;
    let run = session.in_flight(&v)?;
    check_abort(&run)?;
    let me = session.whoami().await?;
    let updated = session
        .patch_run(&run.name_any(), |r| {
            check_abort(r)?;
            Ok(set_control(
                r,
                "abort",
                encode(&command(&me, args.reason.as_ref(), Timestamp::now()))?,
            ))
        })
        .await?;
    if phase(&updated) == Phase::Promoting {
        println!(
            "aborted run {} as {} while promoting: the operator stops the Deployment's rollout where it stands (paused) and marks revision {} failed; revert the pod template of deployment/{} -n {} to revision {} (in Git, or apply the previous manifest) and rollguard rolls it back out (`kubectl rollout undo` refuses a paused Deployment)",
            updated.name_any(),
            me.user,
            updated.spec.canary_revision,
            updated.spec.deployment,
            updated.namespace().unwrap_or_default(),
            updated.spec.stable_revision
        );
    } else {
        println!(
            "aborted run {} as {}: the operator moves all traffic to stable {} and marks revision {} failed",
            updated.name_any(),
            me.user,
            updated.spec.stable_revision,
            updated.spec.canary_revision
        );
    }
    Ok(())
}

/// Runs `promote`.
pub async fn promote(session: &Session, args: &PromoteArgs) -> Result<(), CliError> {
    let (_, v) = session.governed(&args.deployment).await?;
    let run = session.in_flight(&v)?;
    check_promote(&run)?;
    let me = session.whoami().await?;
    let mut skipped = String::new();
    let updated = session
        .patch_run(&run.name_any(), |r| {
            check_promote(r)?;
            let (step, total) = step_of(r);
            skipped = if args.full {
                "all remaining steps".to_string()
            } else {
                let w = r
                    .spec
                    .plan
                    .steps
                    .get(step as usize)
                    .map(|s| s.weight.clone())
                    .unwrap_or_default();
                format!("the pause of step {}/{total} ({w})", step + 1)
            };
            let cmd = PromoteCommand {
                user: me.user.clone(),
                time: Time(Timestamp::now()),
                step,
                full: args.full,
            };
            Ok(set_control(r, "promote", encode(&cmd)?))
        })
        .await?;
    // An override, said as one: it does not wait for a judging sample.
    let after = if args.full {
        "the run promotes now, without waiting for evidence; recorded in the run's status.overrides with a Warning Event"
    } else {
        "the run moves to the next step now, without waiting for a judging sample; recorded in the run's status.overrides with a Warning Event"
    };
    println!(
        "run {}: {} skips {skipped}; {after}",
        updated.name_any(),
        me.user
    );
    Ok(())
}

/// Runs `pause`.
pub async fn pause(session: &Session, args: &PauseArgs) -> Result<(), CliError> {
    let (_, v) = session.governed(&args.deployment).await?;
    let run = session.in_flight(&v)?;
    check_pause(&run)?;
    let me = session.whoami().await?;
    let updated = session
        .patch_run(&run.name_any(), |r| {
            check_pause(r)?;
            Ok(set_control(
                r,
                "pause",
                encode(&command(&me, args.reason.as_ref(), Timestamp::now()))?,
            ))
        })
        .await?;
    let (step, total) = step_of(&updated);
    println!(
        "paused run {} at step {}/{total} as {}: the canary keeps its slice and is still analysed (a bad sample still rolls back); `resume` releases it",
        updated.name_any(),
        step + 1,
        me.user
    );
    Ok(())
}

/// Runs `resume`.
pub async fn resume(session: &Session, args: &TargetArgs) -> Result<(), CliError> {
    let (_, v) = session.governed(&args.deployment).await?;
    let run = session.in_flight(&v)?;
    check_resume(&run)?;
    let updated = session
        .patch_run(&run.name_any(), |r| {
            check_resume(r)?;
            Ok(vec![json!({"op": "remove", "path": "/spec/control/pause"})])
        })
        .await?;
    println!(
        "resumed run {}: it continues from its current step",
        updated.name_any()
    );
    Ok(())
}

/// Runs `retry`: the revision on the Deployment was rolled back (or aborted) and is marked
/// failed; clearing the mark makes the operator start a new run of it.
pub async fn retry(session: &Session, args: &TargetArgs) -> Result<(), CliError> {
    let (d, v) = session.governed(&args.deployment).await?;
    if let Some(run) = &v.current {
        return Err(CliError::Refused(format!(
            "cannot retry Deployment {}/{}: run {} is still in flight ({}); retry applies once a revision was rolled back or aborted",
            session.namespace,
            args.deployment,
            run.name_any(),
            phase(run).as_str()
        )));
    }
    let template = v.template_revision.clone().unwrap_or_default();
    let Some(failed) = v.failed_revision.clone() else {
        let last = v
            .last()
            .map(|r| {
                format!(
                    " (the last run {} ended {})",
                    r.name_any(),
                    phase(r).as_str()
                )
            })
            .unwrap_or_default();
        return Err(CliError::Refused(format!(
            "nothing to retry for Deployment {}/{}: no revision is marked failed{last}",
            session.namespace, args.deployment
        )));
    };
    if failed != template {
        return Err(CliError::Refused(format!(
            "nothing to retry for Deployment {}/{}: the failed revision {failed} is no longer its template ({template}); a new template gets a run by itself",
            session.namespace, args.deployment
        )));
    }
    let key = FAILED_REVISION.replace('~', "~0").replace('/', "~1");
    let ops = json!([
        {"op": "test", "path": format!("/metadata/annotations/{key}"), "value": failed},
        {"op": "remove", "path": format!("/metadata/annotations/{key}")},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(ops)
        .map_err(|e| CliError::Other(format!("building the patch: {e}")))?;
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let attempt = Attempt::new("patch", resource::DEPLOYMENTS, &session.namespace);
    session
        .deployments_api()
        .patch(&d.name_any(), &params, &Patch::<()>::Json(patch))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 422 || s.code == 409 || s.code == 500 => CliError::Refused(format!(
                "Deployment {}/{} changed while retrying ({}); look again with `kubectl rollguard get {}`",
                session.namespace, args.deployment, s.message, args.deployment
            )),
            e => session.fail(e, &attempt),
        })?;
    let attempt_no = v
        .history
        .iter()
        .filter(|r| r.spec.canary_revision == failed)
        .count() as u32
        + 1;
    println!(
        "retrying revision {failed} of Deployment {}/{}: the operator starts run {} (follow it with `kubectl rollguard get {} -w`)",
        session.namespace,
        args.deployment,
        run_name(&args.deployment, &failed, attempt_no),
        args.deployment
    );
    Ok(())
}
