//! `rollguard check-install`: what the chart's `helm test` hook runs in the operator image,
//! with a ServiceAccount that may only read the two CRDs and the operator Deployment. The
//! install is good when both CRDs are Established and the operator Deployment has all its
//! replicas ready on its current generation; the verdict is a pure function of the objects.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

/// The CRDs the operator serves.
pub const CRDS: [&str; 2] = ["rolloutpolicies.rollguard.dev", "rolloutruns.rollguard.dev"];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The operator Deployment.
    #[arg(long)]
    pub deployment: String,
    /// Its namespace (default: the pod's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub namespace: String,
}

/// What keeps a CRD from being served, or `None` when it is Established.
pub fn crd_problem(name: &str, crd: Option<&CustomResourceDefinition>) -> Option<String> {
    let Some(crd) = crd else {
        return Some(format!("CRD {name} is not installed"));
    };
    let established = crd
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Established"));
    match established {
        Some(c) if c.status == "True" => None,
        Some(c) => Some(format!(
            "CRD {name} is not Established: {}",
            c.message.as_deref().unwrap_or(&c.status)
        )),
        None => Some(format!("CRD {name} is not Established yet")),
    }
}

/// What keeps the operator Deployment from being ready, or `None` when every replica of its
/// current generation is ready.
pub fn deployment_problem(d: &Deployment) -> Option<String> {
    let name = d
        .metadata
        .name
        .as_deref()
        .unwrap_or("the operator Deployment");
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Some(format!(
            "Deployment {name}: generation {generation} is not observed yet"
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    if want == 0 {
        return Some(format!("Deployment {name} is scaled to 0"));
    }
    if updated < want || ready < want {
        return Some(format!(
            "Deployment {name}: {ready} of {want} replicas ready, {updated} updated"
        ));
    }
    None
}

async fn check(args: &Args) -> Result<Vec<String>, String> {
    let client = crate::controller::client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut problems = Vec::new();
    for name in CRDS {
        let crd = crds
            .get_opt(name)
            .await
            .map_err(|e| format!("reading CRD {name}: {e}"))?;
        problems.extend(crd_problem(name, crd.as_ref()));
    }
    let deployments: Api<Deployment> = Api::namespaced(client, &args.namespace);
    match deployments
        .get_opt(&args.deployment)
        .await
        .map_err(|e| format!("reading Deployment {}: {e}", args.deployment))?
    {
        Some(d) => problems.extend(deployment_problem(&d)),
        None => problems.push(format!(
            "Deployment {}/{} does not exist",
            args.namespace, args.deployment
        )),
    }
    Ok(problems)
}

/// Prints what it checked; exit code 0 when the install is good, 1 when not, 2 when it
/// could not look.
pub fn main(args: Args) -> u8 {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|rt| rt.block_on(check(&args)));
    match result {
        Ok(problems) if problems.is_empty() => {
            println!(
                "ok: CRDs {} Established; Deployment {}/{} ready",
                CRDS.join(", "),
                args.namespace,
                args.deployment
            );
            0
        }
        Ok(problems) => {
            for p in problems {
                println!("not ready: {p}");
            }
            1
        }
        Err(e) => {
            eprintln!("rollguard check-install: {e}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(status: &str) -> CustomResourceDefinition {
        serde_json::from_value(json!({
            "metadata": {"name": CRDS[0]},
            "spec": {"group": "rollguard.dev", "names": {"plural": "rolloutpolicies", "kind": "RolloutPolicy"},
                     "scope": "Namespaced", "versions": []},
            "status": {"conditions": [{"type": "Established", "status": status, "message": "pending"}]},
        }))
        .expect("a CRD")
    }

    fn deployment(replicas: i32, ready: i32, generation: i64, observed: i64) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "rollguard", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": ready},
        }))
        .expect("a Deployment")
    }

    #[test]
    fn crds_must_be_installed_and_established() {
        assert_eq!(crd_problem(CRDS[0], Some(&crd("True"))), None);
        assert!(crd_problem(CRDS[0], Some(&crd("False"))).is_some_and(|p| p.contains("pending")));
        assert!(crd_problem(CRDS[0], None).is_some_and(|p| p.contains("not installed")));
    }

    #[test]
    fn the_operator_must_have_every_replica_of_its_generation_ready() {
        assert_eq!(deployment_problem(&deployment(2, 2, 3, 3)), None);
        assert!(deployment_problem(&deployment(2, 1, 3, 3)).is_some_and(|p| p.contains("1 of 2")));
        assert!(
            deployment_problem(&deployment(2, 2, 4, 3)).is_some_and(|p| p.contains("generation 4"))
        );
        assert!(deployment_problem(&deployment(0, 0, 1, 1)).is_some());
    }
}
