//! Names rollguard writes into the cluster: the field manager, labels, annotations and the
//! names of the objects it creates. One place, so the operator, the CLI and the tests agree.

/// The one field manager for every server-side apply the operator does.
pub const FIELD_MANAGER: &str = "rollguard";

/// The User-Agent of the operator's requests to the API server. kube-rs sends none, so
/// without it the API server's audit log cannot tell rollguard's requests from another
/// kube-rs client's.
pub const USER_AGENT: &str = concat!("rollguard/", env!("CARGO_PKG_VERSION"));

/// Pod-template label marking the canary's pods (value `canary`).
pub const ROLE_LABEL: &str = "rollguard.dev/role";
/// Value of [`ROLE_LABEL`] on canary pods.
pub const ROLE_CANARY: &str = "canary";

/// Deployment annotation: hash of the stable pod template.
pub const STABLE_REVISION: &str = "rollguard.dev/stable-revision";
/// Deployment annotation: hash of the last template that was rolled back or aborted; it is
/// not retried until the template changes again (or `kubectl rollguard retry`).
pub const FAILED_REVISION: &str = "rollguard.dev/failed-revision";
/// Deployment annotation: the policy governing it.
pub const GOVERNED_BY: &str = "rollguard.dev/policy";
/// Label on runs naming their policy (the same key as [`GOVERNED_BY`], on another kind).
pub const POLICY_LABEL: &str = "rollguard.dev/policy";
/// Label on runs, canaries and routing Services naming the governed Deployment (the
/// EndpointSlice controller copies it onto the routing Services' EndpointSlices).
pub const DEPLOYMENT_LABEL: &str = "rollguard.dev/deployment";
/// The label by which an EndpointSlice names its Service (set by Kubernetes).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Deployment annotation: the run in flight rollguard started for it, `<name>/<uid>`, written
/// by the operator right after it creates the run. A run in flight that the Deployment does not
/// record is not executed ([`crate::ownership::trusted`]): run names are predictable, so a run
/// someone else created under the next name must not pass for rollguard's.
pub const RUN_RECORD: &str = "rollguard.dev/run";
/// The field manager of [`RUN_RECORD`] alone: the governed fields' applies (under
/// [`FIELD_MANAGER`]) are built from the cache, and one built before the record was cached
/// would drop it.
pub const RUN_RECORD_MANAGER: &str = "rollguard-run-record";
/// The annotation (or label) CI sets on a pod template to say where a change came from.
pub const CHANGE_ORIGIN: &str = "rollguard.dev/change-origin";
/// Deployment annotation naming the HTTPRoute to use when several reference its Services.
pub const HTTPROUTE_ANNOTATION: &str = "rollguard.dev/httproute";
/// Deployment annotation naming the Service to use when several select its pods.
pub const SERVICE_ANNOTATION: &str = "rollguard.dev/service";
/// Finalizer on policies: releasing Deployments touches objects rollguard does not own.
/// On a Deployment rollguard let go of while its template was unvetted: why it stays paused
/// and how to roll it out anyway. Removed once someone unpauses it.
pub const HELD: &str = "rollguard.dev/held";
pub const POLICY_FINALIZER: &str = "rollguard.dev/release";
/// Deployment annotation stamped at admission by the chart's unpause stamp (a
/// MutatingAdmissionPolicy): the authenticated user of the request, other than the operator,
/// that unpaused a governed Deployment. Read to name them, then removed.
pub const UNPAUSED_BY: &str = "rollguard.dev/unpaused-by";
/// Deployment annotation stamped at admission by the chart's pause gate (a
/// MutatingAdmissionPolicy) in the write that changes a governed Deployment's pod template:
/// the authenticated user of that request, the change's author.
pub const CHANGED_BY: &str = "rollguard.dev/changed-by";
/// Pod-template annotation of the operator's dry-run that proves the pause gate is in force
/// ([`crate::controller`]); never stored.
pub const GATE_PROBE: &str = "rollguard.dev/gate-probe";

/// The canary Deployment of a governed Deployment.
pub fn canary_name(deployment: &str) -> String {
    format!("{deployment}-canary")
}

/// The Service selecting only stable pods (Gateway API router).
pub fn stable_service_name(service: &str) -> String {
    format!("{service}-stable")
}

/// The Service selecting only canary pods (Gateway API router).
pub fn canary_service_name(service: &str) -> String {
    format!("{service}-canary")
}

/// The RolloutRun name for a revision of a Deployment: deterministic, so a retried create
/// after a crash finds the run it already made instead of making a second.
pub fn run_name(deployment: &str, revision: &str, attempt: u32) -> String {
    let base = if deployment.len() > 200 {
        &deployment[..200]
    } else {
        deployment
    };
    if attempt <= 1 {
        format!("{base}-{revision}")
    } else {
        format!("{base}-{revision}-{attempt}")
    }
}
