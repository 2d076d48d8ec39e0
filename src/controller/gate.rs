//! The pause gate: whether the cluster pauses a governed Deployment's new pod template at
//! admission (the chart's MutatingAdmissionPolicy `<release>-pause-gate`). Where it does, a
//! governed Deployment is left unpaused between runs; where it does not (an older cluster,
//! the policy not installed, not bound or failing), it stays paused between runs as before.
//! The operator proves the gate per namespace with a server-side dry-run of a template change
//! and keeps the answer for a while; [`judge`] reads the answer, purely.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use super::Context;
use crate::names::{GATE_PROBE, GOVERNED_BY};

/// What the operator last found about the gate in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// A new template of a governed Deployment comes back paused from admission.
    pub in_force: bool,
    /// Why, in a sentence naming the Deployment the proof was made on.
    pub why: String,
}

/// The outcome of the dry-run: the `spec.paused` the API server answered with, or why the
/// request failed.
pub type Probe = Result<bool, String>;

/// Reads a dry-run of a template change that also set `spec.paused: false` on `deployment`.
pub fn judge(ns: &str, deployment: &str, probe: &Probe) -> Gate {
    match probe {
        Ok(true) => Gate {
            in_force: true,
            why: format!(
                "a server-side dry-run of a pod template change on deployment/{deployment} -n {ns} came back paused: new templates are paused at admission, so governed Deployments are left unpaused between runs"
            ),
        },
        Ok(false) => Gate {
            in_force: false,
            why: format!(
                "a server-side dry-run of a pod template change on deployment/{deployment} -n {ns} came back unpaused: no admission policy pauses new templates here (the chart's pause gate needs Kubernetes 1.36+ and pauseGate.enabled), so governed Deployments stay paused between runs"
            ),
        },
        Err(e) => Gate {
            in_force: false,
            why: format!(
                "the dry-run of a pod template change on deployment/{deployment} -n {ns} failed ({e}), so governed Deployments stay paused between runs"
            ),
        },
    }
}

/// The gate per namespace, with when each was proven.
#[derive(Default)]
pub struct Gates {
    by_namespace: Mutex<HashMap<String, (Gate, Instant)>>,
}

impl Gates {
    /// The last answer for `ns`, if younger than `max_age`.
    pub fn fresh(&self, ns: &str, max_age: Duration) -> Option<Gate> {
        let map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        map.get(ns)
            .filter(|(_, at)| at.elapsed() < max_age)
            .map(|(g, _)| g.clone())
    }

    /// The last answer for `ns`, however old.
    pub fn last(&self, ns: &str) -> Option<Gate> {
        let map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        map.get(ns).map(|(g, _)| g.clone())
    }

    /// Records an answer; returns the one it replaces.
    fn record(&self, ns: &str, gate: Gate) -> Option<Gate> {
        let mut map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(ns.to_string(), (gate, Instant::now()))
            .map(|(g, _)| g)
    }

    /// Forgets the answer for `ns`: the next governed Deployment there proves it again.
    pub fn forget(&self, ns: &str) {
        let mut map = self.by_namespace.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(ns);
    }
}

/// Whether the gate is in force in `d`'s namespace: the recent answer, else a new proof made
/// on `d`. A change of answer is logged, counted in the `rollguard_pause_gate` gauge and sent
/// to the namespace's policies' status.
pub async fn in_force(ctx: &Context, d: &Deployment) -> bool {
    let ns = d.namespace().unwrap_or_default();
    if let Some(g) = ctx.gates.fresh(&ns, ctx.config.gate_check_interval) {
        return g.in_force;
    }
    // The gate matches Deployments rollguard governs already (annotated with their policy):
    // a dry-run on one it is adopting would prove nothing.
    if !d.annotations().contains_key(GOVERNED_BY) {
        return false;
    }
    let gate = judge(&ns, &d.name_any(), &probe(ctx, d).await);
    ctx.metrics
        .pause_gate
        .with_label_values(&[&ns])
        .set(i64::from(gate.in_force));
    let before = ctx.gates.record(&ns, gate.clone());
    if before.as_ref().map(|b| b.in_force) != Some(gate.in_force) {
        if gate.in_force {
            info!(namespace = %ns, why = %gate.why, "the pause gate is in force");
        } else {
            warn!(namespace = %ns, why = %gate.why, "the pause gate is not in force");
        }
        for p in ctx.stores.policies.state() {
            if p.namespace().as_deref() == Some(ns.as_str()) {
                let _ = ctx
                    .policy_refresh
                    .send(kube::runtime::reflector::ObjectRef::from_obj(&*p));
            }
        }
    }
    gate.in_force
}

/// A server-side dry-run of a pod template change that also asks for `spec.paused: false`:
/// the gate answers paused, nothing else does. Nothing is stored.
async fn probe(ctx: &Context, d: &Deployment) -> Probe {
    let ns = d.namespace().unwrap_or_default();
    let nonce = jiff::Timestamp::now().as_nanosecond().to_string();
    let body = json!({
        "spec": {
            "paused": false,
            "template": {"metadata": {"annotations": {GATE_PROBE: nonce}}},
        }
    });
    let params = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    match ctx
        .api::<Deployment>(&ns)
        .patch(&d.name_any(), &params, &Patch::Merge(body))
        .await
    {
        Ok(answer) => Ok(answer.spec.and_then(|s| s.paused).unwrap_or(false)),
        Err(kube::Error::Api(s)) => Err(format!("{} {}: {}", s.code, s.reason, s.message)),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_answer_is_the_gate_and_anything_else_keeps_deployments_paused() {
        let table: [(Probe, bool, &str); 3] = [
            (Ok(true), true, "came back paused"),
            (Ok(false), false, "came back unpaused"),
            (
                Err("500 InternalError: policy failed".into()),
                false,
                "failed (500 InternalError: policy failed)",
            ),
        ];
        for (probe, in_force, says) in table {
            let g = judge("shop", "web", &probe);
            assert_eq!(g.in_force, in_force, "{probe:?}");
            assert!(g.why.contains(says), "{}", g.why);
            assert!(g.why.contains("deployment/web -n shop"), "{}", g.why);
        }
    }

    #[test]
    fn an_answer_is_kept_for_its_interval_and_can_be_forgotten() {
        let gates = Gates::default();
        assert_eq!(gates.fresh("a", Duration::from_secs(60)), None);
        let g = judge("a", "web", &Ok(true));
        assert_eq!(gates.record("a", g.clone()), None);
        assert_eq!(gates.fresh("a", Duration::from_secs(60)), Some(g.clone()));
        assert_eq!(
            gates.fresh("a", Duration::ZERO),
            None,
            "older than its interval"
        );
        assert_eq!(gates.last("a"), Some(g));
        assert_eq!(gates.fresh("b", Duration::from_secs(60)), None);
        gates.forget("a");
        assert_eq!(gates.last("a"), None);
    }
}
