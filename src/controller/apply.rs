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
use crate::governance::kstatus::{self, Mark};
use crate::governance::verdict::{self, Verdict};
use crate::names::{FIELD_MANAGER, GOVERNED_BY, RUN_RECORD, RUN_RECORD_MANAGER};
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
    /// kstatus' `Reconciling` or `Stalled` in `status.conditions` (status subresource), for
    /// the verdict: [`kstatus::deployment`].
    pub conditions: Vec<Mark>,
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
            conditions: kstatus::deployment_marks(deployment_conditions(d)),
        }
    }

    /// The part written to the Deployment itself (the conditions go to its status).
    fn object_part(&self) -> (bool, &BTreeMap<String, String>) {
        (self.paused, &self.annotations)
    }
}

fn deployment_conditions(d: &Deployment) -> &[k8s_openapi::api::apps::v1::DeploymentCondition] {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

impl GovernedFields {
    /// Carries `v` on the Deployment, about the generation it will have once these fields
    /// are written (the same when nothing needs writing).
    pub fn set_verdict(&mut self, d: &Deployment, v: &Verdict) {
        let now = d.metadata.generation.unwrap_or(0);
        let mut as_is = self.clone();
        v.annotate(&mut as_is.annotations, now);
        // A status write does not move the generation: only the object part counts.
        let write_needed = as_is.object_part() != GovernedFields::of(d).object_part();
        v.annotate(
            &mut self.annotations,
            verdict::generation_after(now, write_needed),
        );
        self.conditions = kstatus::deployment(v);
    }
}

/// Sets `spec.paused` and rollguard's annotations on a governed Deployment, then its kstatus
/// conditions, each when they differ.
pub async fn governed_fields(
    ctx: &Context,
    d: &Deployment,
    want: &GovernedFields,
) -> Result<bool, Error> {
    let have = GovernedFields::of(d);
    if &have == want {
        return Ok(false);
    }
    if have.object_part() != want.object_part() {
        governed_object(ctx, d, want).await?;
    }
    if have.conditions != want.conditions {
        deployment_status(ctx, d, &want.conditions).await?;
    }
    Ok(true)
}

/// Applies rollguard's kstatus conditions to a Deployment's `status.conditions` (server-side
/// apply on the status subresource: a list keyed by `type`, so rollguard owns only its own
/// entries, and the Deployment controller copies conditions it does not know when it rewrites
/// the status). Fewer marks than before remove the others: an apply drops what it no longer
/// names.
async fn deployment_status(ctx: &Context, d: &Deployment, marks: &[Mark]) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let conditions =
        kstatus::deployment_conditions(deployment_conditions(d), marks, jiff::Timestamp::now());
    let body = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "status": if conditions.is_empty() { json!({}) } else { json!({"conditions": conditions}) },
    });
    ctx.api::<Deployment>(&ns)
        .patch_status(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "writing rollguard's conditions in the status of Deployment {ns}/{name}"
        )))?;
    Ok(())
}

async fn governed_object(
    ctx: &Context,
    d: &Deployment,
    want: &GovernedFields,
) -> Result<(), Error> {
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
    Ok(())
}

/// Removes the unpause stamp (`rollguard.dev/unpaused-by`) once it has been reported, so a
/// later unpause the stamp does not record (the policy missing or failing open) is not put
/// on the same user. The admission policy wrote it under the unpausing request's field
/// manager, so a merge patch, not an apply, removes it.
pub async fn forget_unpause_stamp(ctx: &Context, d: &Deployment) -> Result<(), Error> {
    drop_annotations(ctx, d, &[crate::names::UNPAUSED_BY], "the unpause stamp").await
}

/// Removes `keys` from the Deployment's annotations with one merge patch: for annotations
/// written under field managers other than `rollguard` (the admission stamps, the run
/// record), which giving up rollguard's fields in an apply leaves in place.
async fn drop_annotations(
    ctx: &Context,
    d: &Deployment,
    keys: &[&str],
    what: &str,
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let gone: serde_json::Map<String, serde_json::Value> = keys
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
            "removing {what} from Deployment {ns}/{name}"
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
    // The run record (its own field manager, see `record_run`) and the admission stamps (the
    // requests' field managers) are about governance, which ends here: the apply above
    // leaves them, one merge patch removes them.
    let others = [
        RUN_RECORD,
        crate::names::CHANGED_BY,
        crate::names::UNPAUSED_BY,
    ];
    if others.iter().any(|k| d.annotations().contains_key(*k)) {
        drop_annotations(ctx, d, &others, "the run record and the admission stamps").await?;
    }
    // kstatus' conditions are about governance too: a Deployment let go is judged by its own
    // rules again.
    if !kstatus::deployment_marks(deployment_conditions(d)).is_empty() {
        deployment_status(ctx, d, &[]).await?;
    }
    Ok(())
}

/// Records on the Deployment the run rollguard started for it (`<name>/<uid>`,
/// [`crate::ownership::record`]); only a recorded run in flight is executed. Its own field
/// manager owns the annotation, so the governed fields' applies, which a cache a write behind
/// would build without it, never drop it.
pub async fn record_run(ctx: &Context, d: &Deployment, run: &RolloutRun) -> Result<(), Error> {
    let record = crate::ownership::record(run)
        .ok_or_else(|| Error::Invalid(format!("RolloutRun {} has no uid", run.name_any())))?;
    if d.annotations().get(RUN_RECORD) == Some(&record) {
        return Ok(());
    }
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let body = json!({"metadata": {"annotations": {RUN_RECORD: record}}});
    let params = PatchParams {
        field_manager: Some(RUN_RECORD_MANAGER.into()),
        ..Default::default()
    };
    ctx.api::<Deployment>(&ns)
        .patch(&name, &params, &Patch::Merge(body))
        .await
        .map_err(kube_err(format!(
            "recording the run on Deployment {ns}/{name}"
        )))?;
    Ok(())
}

/// The live object under `name`, read just before rollguard writes or deletes it: `None` when
/// there is none, an error naming it when it is not rollguard's (`role`: the role label it
/// must carry too). The caches decide the hold ([`crate::ownership`]); this read makes sure a
/// cache behind the cluster never lets a write reach someone else's object.
async fn live_owned<K>(
    ctx: &Context,
    d: &Deployment,
    name: &str,
    role: Option<&str>,
) -> Result<Option<K>, Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let ns = d.namespace().unwrap_or_default();
    let kind = K::kind(&());
    let live = by_name::<K>(ctx, &ns, name)
        .await
        .map_err(kube_err(format!("reading {kind} {ns}/{name}")))?;
    if let Some(o) = &live
        && let Err(why) = crate::ownership::owned(o.meta(), d, role)
    {
        return Err(Error::NotOwned(format!(
            "{kind} {ns}/{name} is not rollguard's ({why}); nothing was written to it"
        )));
    }
    Ok(live)
}

/// The server-side apply body of an object rollguard owns.
fn apply_body(
    want: &impl serde::Serialize,
    api_version: &str,
    kind: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut body = serde_json::to_value(want)?;
    body["apiVersion"] = json!(api_version);
    body["kind"] = json!(kind);
    Ok(body)
}

/// Creates or resizes the canary Deployment when the stored one differs; never one that is
/// not rollguard's.
pub async fn canary(
    ctx: &Context,
    d: &Deployment,
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
    live_owned::<Deployment>(ctx, d, &name, Some(crate::names::ROLE_CANARY)).await?;
    let body =
        apply_body(want, "apps/v1", "Deployment").map_err(|e| Error::Invalid(e.to_string()))?;
    ctx.api::<Deployment>(&ns)
        .patch(&name, &ssa(), &Patch::Apply(body))
        .await
        .map_err(kube_err(format!(
            "applying the canary Deployment {ns}/{name}"
        )))?;
    Ok(true)
}

/// Deletes the canary Deployment if it exists and is rollguard's (foreground, so its pods go
/// with it; preconditioned on the object checked, so nothing that replaced it is deleted).
pub async fn delete_canary(ctx: &Context, d: &Deployment) -> Result<bool, Error> {
    let ns = d.namespace().unwrap_or_default();
    let name = crate::names::canary_name(&d.name_any());
    let Some(live) =
        live_owned::<Deployment>(ctx, d, &name, Some(crate::names::ROLE_CANARY)).await?
    else {
        return Ok(false);
    };
    let mut params = DeleteParams::foreground();
    params.preconditions = Some(kube::api::Preconditions {
        uid: live.metadata.uid.clone(),
        resource_version: None,
    });
    match ctx.api::<Deployment>(&ns).delete(&name, &params).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(kube_err(format!(
            "deleting the canary Deployment {ns}/{name}"
        ))(e)),
    }
}

/// Applies a routing Service when the stored one differs in selector or ports; never one that
/// is not rollguard's.
pub async fn service(
    ctx: &Context,
    d: &Deployment,
    want: &Service,
    have: Option<&Service>,
) -> Result<bool, Error> {
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
    live_owned::<Service>(ctx, d, &name, None).await?;
    let body = apply_body(want, "v1", "Service").map_err(|e| Error::Invalid(e.to_string()))?;
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
    // Named, so managedFields say rollguard wrote the rules (the weight-fight check reads
    // that) and an Argo CD `managedFieldsManagers` recipe can name it (docs/gitops.md).
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    ctx.api::<HttpRoute>(ns)
        .patch(&t.route, &params, &Patch::Json::<()>(patch))
        .await
        .map_err(kube_err(format!(
            "setting weights on HTTPRoute {ns}/{}",
            t.route
        )))?;
    Ok(true)
}

/// Writes a run's status (server-side apply on the status subresource) when it changed, with
/// its kstatus conditions and `observedGeneration` ([`kstatus::run_status`]).
pub async fn run_status(
    ctx: &Context,
    run: &RolloutRun,
    status: &RolloutRunStatus,
) -> Result<bool, Error> {
    let status = &kstatus::run_status(status, run.metadata.generation, jiff::Timestamp::now());
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

/// Creates a run: the run as created, or `None` when a run of that name exists already
/// (whose it is, the caller decides: [`crate::ownership`]).
pub async fn create_run(ctx: &Context, run: &RolloutRun) -> Result<Option<RolloutRun>, Error> {
    let ns = run.namespace().unwrap_or_default();
    match ctx
        .api::<RolloutRun>(&ns)
        .create(&PostParams::default(), run)
        .await
    {
        Ok(created) => Ok(Some(created)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(None),
        Err(e) => Err(kube_err(format!(
            "creating RolloutRun {ns}/{}",
            run.metadata
                .name
                .as_deref()
                .or(run.metadata.generate_name.as_deref())
                .unwrap_or_default()
        ))(e)),
    }
}

/// A run by name, read from the API server (the cache may not show it yet).
pub async fn get_run(ctx: &Context, ns: &str, name: &str) -> Result<Option<RolloutRun>, Error> {
    by_name::<RolloutRun>(ctx, ns, name)
        .await
        .map_err(kube_err(format!("reading RolloutRun {ns}/{name}")))
}

/// One object by name, read with a list selecting the name: the operator's Role grants
/// `list`, not `get`, and a read is not worth a wider Role (the same way Secrets are read).
async fn by_name<K>(ctx: &Context, ns: &str, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let params = kube::api::ListParams::default().fields(&format!("metadata.name={name}"));
    let list = ctx.api::<K>(ns).list(&params).await?;
    Ok(list.items.into_iter().next())
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
