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

/// `approve` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct ApproveArgs {
    /// The governed Deployment whose run to approve.
    pub deployment: String,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// Whether `run` takes an approval now: it waits for one, or its tier requires one that is
/// not there yet (an approval given during the steps lets it promote without waiting).
pub fn check(run: &RolloutRun) -> Result<(), CliError> {
    let name = run.name_any();
    let phase = run.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let refuse = |why: String| CliError::NotAwaitingApproval {
        run: name.clone(),
        why,
    };
    if let Some(a) = run.spec.approvals.first() {
        return Err(refuse(format!(
            "{} approved it already; nothing to do",
            a.user
        )));
    }
    match phase {
        Phase::AwaitingApproval => Ok(()),
        Phase::Progressing if run.spec.plan.require_approval => Ok(()),
        Phase::Progressing => Err(refuse(format!(
            "its tier {} does not require an approval; it promotes by itself when all steps pass (skip pauses with `promote`)",
            run.spec.tier.name
        ))),
        Phase::Promoting => Err(refuse("it is already promoting".into())),
        p => Err(refuse(format!("it ended {}", p.as_str()))),
    }
}

/// The JSON patch operations that record the approval.
pub fn approval_ops(me: &Identity, now: Timestamp) -> Result<Vec<serde_json::Value>, CliError> {
    let approval = Approval {
        user: me.user.clone(),
        groups: me.groups.clone(),
        time: Time(now),
    };
    let value = serde_json::to_value(&approval)
        .map_err(|e| CliError::Other(format!("encoding the approval: {e}")))?;
    Ok(vec![
        json!({"op": "add", "path": "/spec/approvals", "value": [value]}),
    ])
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
            approval_ops(&me, Timestamp::now())
        })
        .await?;
    let phase = updated.status.as_ref().map(|s| s.phase).unwrap_or_default();
    let next = if phase == Phase::AwaitingApproval {
        "the run promotes now"
    } else {
        "the run promotes without waiting once all steps pass"
    };
    println!(
        "approved run {} of Deployment {}/{} as {}: {next}",
        updated.name_any(),
        session.namespace,
        args.deployment,
        me.user
    );
    Ok(())
}
