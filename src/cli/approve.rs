//! `approve`: records an approval on the run in flight with the approver's identity as the
//! API server authenticates it (SelfSubjectReview), never a name typed by the user. The
//! chart's ValidatingAdmissionPolicy refuses approvals whose recorded user is not the
//! requesting user, so this is the only way to write one.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde_json::json;

use super::cluster::{Identity, KubeArgs, Session};
use super::errors::CliError;
use crate::api::run::{Approval, Phase, RolloutRun};
use crate::run::approval;

/// `approve` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ApproveArgs {
    /// The governed Deployment whose run to approve.
    pub deployment: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Whether `run` takes an approval now: it waits for one. An approval counts only for the
/// evidence it is given on, so one given while the steps still run is refused.
pub fn check(run: &RolloutRun) -> Result<(), CliError> {
    let name = run.name_any();
    let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let refuse = |why: String| CliError::NotAwaitingApproval {
        run: name.clone(),
        why,
    };
    match phase {
        Phase::AwaitingApproval => Ok(()),
        Phase::Progressing if run.spec.plan.require_approval => Err(refuse(
            "its steps are still running; an approval counts only once the canary has passed them and the run awaits it (`kubectl rollguard wait` returns then)".into(),
        )),
        Phase::Progressing => Err(refuse(format!(
            "its tier {} does not require an approval; it promotes by itself when all steps pass (skip pauses with `promote`)",
            run.spec.tier.name
        ))),
        Phase::Promoting => Err(refuse("it is already promoting".into())),
        p => Err(refuse(format!("it ended {}", p.as_str()))),
    }
}

/// The approval `me` gives `run` now, bound to the evidence the run waits on; refused when it
/// would not count (four eyes) or when a counting one is there already.
pub fn approval(run: &RolloutRun, me: &Identity, now: Timestamp) -> Result<Approval, CliError> {
    let step = run.status.as_ref().map(|s| s.step).unwrap_or_default();
    let refuse = |why: String| CliError::NotAwaitingApproval {
        run: run.name_any(),
        why,
    };
    let (counted, _) = approval::tally(&run.spec, step);
    if let Some(a) = counted.first() {
        return Err(refuse(format!(
            "{} approved it already; nothing to do",
            a.user
        )));
    }
    let approval = Approval {
        user: me.user.clone(),
        groups: me.groups.clone(),
        time: Time(now),
        run: Some(run.name_any()),
        revision: Some(run.spec.canary_revision.clone()),
        step: Some(step),
    };
    match approval::not_counted(&run.spec, step, &approval) {
        Some(why) => Err(CliError::Refused(format!(
            "cannot approve run {}: {why}",
            run.name_any()
        ))),
        None => Ok(approval),
    }
}

/// The JSON patch operations that append `approval` (the list is append-only).
pub fn approval_ops(
    run: &RolloutRun,
    approval: &Approval,
) -> Result<Vec<serde_json::Value>, CliError> {
    let value = serde_json::to_value(approval)
        .map_err(|e| CliError::Other(format!("encoding the approval: {e}")))?;
    Ok(vec![if run.spec.approvals.is_empty() {
        json!({"op": "add", "path": "/spec/approvals", "value": [value]})
    } else {
        json!({"op": "add", "path": "/spec/approvals/-", "value": value})
    }])
}

/// Runs `approve`.
pub async fn run(session: &Session, args: &ApproveArgs) -> Result<(), CliError> {
    let (_, v) = session.governed(&args.deployment).await?;
    let run = session.in_flight(&v)?;
    check(&run)?;
    let me = session.whoami().await?;
    let updated = session
        .patch_run(&run.name_any(), |r| {
            check(r)?;
            approval_ops(r, &approval(r, &me, Timestamp::now())?)
        })
        .await?;
    println!(
        "approved run {} of Deployment {}/{} as {}: the run promotes now",
        updated.name_any(),
        session.namespace,
        args.deployment,
        me.user
    );
    Ok(())
}
