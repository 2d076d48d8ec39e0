//! Writes to the API server, each the smallest that does the job: server-side apply with
//! one field manager for what rollguard owns, a guarded JSON patch for HTTPRoute weights,
//! and a write only when the stored object differs from what is wanted.

use std::collections::BTreeMap;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Context, Error, kube_err};
use crate::api::quantity::Ratio;
use crate::api::run::{RolloutRun, RolloutRunStatus};
use crate::api::{RolloutPolicy, policy::RolloutPolicyStatus};
use crate::governance::verdict::{self, Verdict};
use crate::names::{FIELD_MANAGER, GOVERNED_BY};
use crate::traffic::{RouteTarget, weight_patch, weights_match};

fn ssa() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The fields rollguard owns on a governed Deployment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernedFields {
    pub paused: bool,
    /// Our annotations (stable and failed revision, policy).
    pub annotations: BTreeMap<String, String>,
}

impl GovernedFields {
    /// What rollguard has now on the Deployment.
    pub fn of(d: &Deployment) -> GovernedFields {
        let annotations = d
            .annotations()
            .iter()
            .filter(|(k, _)| {
                [
                    crate::names::STABLE_REVISION,
                    crate::names::FAILED_REVISION,
                    GOVERNED_BY,
                    verdict::VERDICT,
                    verdict::VERDICT_GENERATION,
                    verdict::VERDICT_MESSAGE,
                ]
                .contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        GovernedFields {
            paused: d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false),
            annotations,
        }
    }
}

impl GovernedFields {
    /// Carries `v` on the Deployment, about the generation it will have once these fields
    /// are written (the same when nothing needs writing).
    pub fn set_verdict(&mut self, d: &Deployment, v: &Verdict) {
        let now = d.metadata.generation.unwrap_or(0);
        let mut as_is = self.clone();
        v.annotate(&mut as_is.annotations, now);
        let write_needed = as_is != GovernedFields::of(d);
        v.annotate(
            &mut self.annotations,
            verdict::generation_after(now, write_needed),
        );
    }
}

/// Sets `spec.paused` and rollguard's annotations on a governed Deployment, when they differ.
pub async fn governed_fields(
    ctx: &Context,
    d: &Deployment,
    want: &GovernedFields,
) -> Result<bool, Error> {
    if &GovernedFields::of(d) == want {
        return Ok(false);
    }
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let mut body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": want.annotations},
        "spec": {"paused": want.paused},
    });
    // Unpausing is decided for the template rollguard saw: a new template written since
    // (paused at admission by the pause gate, or while the Deployment was held paused) must
    // not be rolled out by this write, so it applies only to the version it was decided on
    // (409 otherwise, and the next pass decides again).
    if !want.paused {
        body["metadata"]["resourceVersion"] = json!(d.resource_version());
    }
    ctx.api::<Deployment>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "setting spec.paused={} on Deployment {ns}/{name}",
            want.paused
        )))?;
    Ok(true)
}

/// Removes the unpause stamp (`rollguard.dev/unpaused-by`) once it has been reported, so a
/// later unpause the stamp does not record (the policy missing or failing open) is not put
/// on the same user. The admission policy wrote it under the unpausing request's field
/// manager, so a merge patch, not an apply, removes it.
pub async fn forget_unpause_stamp(ctx: &Context, d: &Deployment) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let body = json!({"metadata": {"annotations": {crate::names::UNPAUSED_BY: null}}});
    ctx.api::<Deployment>(&ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(body))
        .await
        .map_err(kube_err(format!(
            "removing the unpause stamp from Deployment {ns}/{name}"
        )))?;
    Ok(())
}

/// Gives up every field rollguard owns on a Deployment: its annotations and `spec.paused`
/// (so it is unpaused), leaving the user's fields alone. With `hold`, the template must not
/// roll out: `spec.paused` stays set and the `held` annotation says why.
pub async fn release_deployment(
    ctx: &Context,
    d: &Deployment,
    hold: Option<&str>,
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let body = match hold {
        None => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}}),
        Some(why) => json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "annotations": {crate::names::HELD: why}},
            "spec": {"paused": true},
        }),
    };
    ctx.api::<Deployment>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!("releasing Deployment {ns}/{name}")))?;
    // The admission stamps were written under the requests' own field managers, so the apply
    // above leaves them: they are about governance, which ends here.
    let stamps = [crate::names::CHANGED_BY, crate::names::UNPAUSED_BY];
    if stamps.iter().any(|k| d.annotations().contains_key(*k)) {
        let gone: serde_json::Map<String, serde_json::Value> = stamps
            .iter()
            .map(|k| (k.to_string(), serde_json::Value::Null))
            .collect();
        ctx.api::<Deployment>(&ns)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": gone}})),
            )
            .await
            .map_err(kube_err(format!(
                "removing the admission stamps from Deployment {ns}/{name}"
            )))?;
    }
    Ok(())
}

/// Creates or resizes the canary Deployment when the stored one differs.
pub async fn canary(
    ctx: &Context,
    want: &Deployment,
    have: Option<&Deployment>,
) -> Result<bool, Error> {
    let same = have.is_some_and(|h| {
        let (hs, ws) = (h.spec.as_ref(), want.spec.as_ref());
        hs.map(|s| (&s.replicas, &s.template)) == ws.map(|s| (&s.replicas, &s.template))
    });
    if same {
        return Ok(false);
    }
    let ns = want.namespace().unwrap_or_default();
    let name = want.name_any();
    let mut body = serde_json::to_value(want).map_err(|e| Error::Invalid(e.to_string()))?;
    body["apiVersion"] = json!("apps/v1");
    body["kind"] = json!("Deployment");
    ctx.api::<Deployment>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "applying the canary Deployment {ns}/{name}"
        )))?;
    Ok(true)
}

/// Deletes the canary Deployment if it exists (foreground, so its pods go with it).
pub async fn delete_canary(ctx: &Context, ns: &str, name: &str) -> Result<bool, Error> {
    match ctx
        .api::<Deployment>(ns)
        .delete(name, &DeleteParams::foreground())
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(kube_err(format!(
            "deleting the canary Deployment {ns}/{name}"
        ))(e)),
    }
}

/// Applies a routing Service when the stored one differs in selector or ports.
pub async fn service(ctx: &Context, want: &Service, have: Option<&Service>) -> Result<bool, Error> {
    let key = |s: &Service| {
        s.spec
            .as_ref()
            .map(|sp| (sp.selector.clone(), sp.ports.clone()))
    };
    if have.is_some_and(|h| key(h) == key(want)) {
        return Ok(false);
    }
    let ns = want.namespace().unwrap_or_default();
    let name = want.name_any();
    let mut body = serde_json::to_value(want).map_err(|e| Error::Invalid(e.to_string()))?;
    body["apiVersion"] = json!("v1");
    body["kind"] = json!("Service");
    ctx.api::<Service>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "applying the routing Service {ns}/{name}"
        )))?;
    Ok(true)
}

/// Sets the weights of one governed HTTPRoute rule. `last` is the weight rollguard wrote
/// last: when the wanted weight is a new one it is always written (the cached route may not
/// show rollguard's own previous write yet); when it is the same, it is written only if the
/// route drifted, and a drift rollguard did not cause (someone edited the route) is logged.
pub async fn route_weights(
    ctx: &Context,
    ns: &str,
    t: &RouteTarget,
    weight: Ratio,
    last: Option<Ratio>,
) -> Result<bool, Error> {
    let unchanged = last == Some(weight);
    if unchanged && weights_match(t, weight) {
        return Ok(false);
    }
    if unchanged {
        tracing::warn!(
            route = %t.route,
            stable = ?t.stable.current,
            canary = ?t.canary.current,
            want = %weight,
            "HTTPRoute weights were changed by someone else; rollguard writes them back"
        );
    }
    let patch: json_patch::Patch = serde_json::from_value(weight_patch(t, weight))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    ctx.api::<HttpRoute>(ns)
        .patch(&t.route, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(kube_err(format!(
            "setting weights on HTTPRoute {ns}/{}",
            t.route
        )))?;
    Ok(true)
}

/// Writes a run's status (server-side apply on the status subresource) when it changed.
pub async fn run_status(
    ctx: &Context,
    run: &RolloutRun,
    status: &RolloutRunStatus,
) -> Result<bool, Error> {
    if run.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let body = json!({
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RolloutRun",
        "metadata": {"name": name},
        "status": status,
    });
    ctx.api::<RolloutRun>(&ns)
        .patch_status(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "writing the status of RolloutRun {ns}/{name}"
        )))?;
    // Until the watch delivers this write, the cached run is older than what was written:
    // remember it, so a reconcile in between does not act on the old status again.
    if let Some(rv) = run.resource_version() {
        ctx.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns, name), (rv, status.clone()));
    }
    Ok(true)
}

/// Creates a run; one that already exists (a retried create after a crash) is fine.
pub async fn create_run(ctx: &Context, run: &RolloutRun) -> Result<bool, Error> {
    let ns = run.namespace().unwrap_or_default();
    match ctx
        .api::<RolloutRun>(&ns)
        .create(&PostParams::default(), run)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(kube_err(format!(
            "creating RolloutRun {ns}/{}",
            run.name_any()
        ))(e)),
    }
}

/// Deletes a finished run (history pruning).
pub async fn delete_run(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    match ctx
        .api::<RolloutRun>(ns)
        .delete(name, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!("deleting RolloutRun {ns}/{name}"))(e)),
    }
}

/// Writes a policy's status when it changed.
pub async fn policy_status(
    ctx: &Context,
    p: &RolloutPolicy,
    status: &RolloutPolicyStatus,
) -> Result<(), Error> {
    if p.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let body = json!({
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RolloutPolicy",
        "metadata": {"name": name},
        "status": status,
    });
    ctx.api::<RolloutPolicy>(&ns)
        .patch_status(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "writing the status of RolloutPolicy {ns}/{name}"
        )))?;
    Ok(())
}

/// Adds or removes rollguard's finalizer on a policy (server-side apply owns only our entry
/// of the finalizer set).
pub async fn policy_finalizer(
    ctx: &Context,
    p: &RolloutPolicy,
    present: bool,
) -> Result<(), Error> {
    let has = p
        .finalizers()
        .iter()
        .any(|f| f == crate::names::POLICY_FINALIZER);
    if has == present {
        return Ok(());
    }
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    let finalizers: Vec<&str> = if present {
        vec![crate::names::POLICY_FINALIZER]
    } else {
        vec![]
    };
    let body = json!({
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RolloutPolicy",
        "metadata": {"name": name, "finalizers": finalizers},
    });
    match ctx
        .api::<RolloutPolicy>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!(
            "updating the finalizer of RolloutPolicy {ns}/{name}"
        ))(e)),
    }
}
