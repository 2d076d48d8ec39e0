//! One operator given a list of namespaces (`--namespace a --namespace b`, the chart's
//! `watchNamespaces`): it governs each as an operator watching only it would, counts them
//! together in its metrics, and touches nothing in a namespace it was not given.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::json;

use crate::support::world::{self, World};
use crate::support::{self, create};

#[tokio::test]
async fn one_operator_governs_the_namespaces_it_is_given_and_no_other() {
    let client = support::client().await;
    let second = support::test_namespace(&client, "ns-second").await;
    let unwatched = support::test_namespace(&client, "ns-unwatched").await;
    // The operator of the first world watches the second namespace too.
    let a = World::builder("ns-first")
        .operator_args(&["--namespace", &second.name])
        .build()
        .await;
    // Adopted by that operator: the second world starts none of its own.
    let b = World::builder("ns-second")
        .namespace(second)
        .without_operator()
        .build()
        .await;
    // The same Deployment and policy where the operator was not told to look.
    let u = unwatched.name.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &u);
    create(&deployments, world::deployment()).await;
    let mut policy = serde_json::to_value(a.policies().get("shop").await.expect("the policy"))
        .expect("policy json");
    policy["metadata"] = json!({"name": "shop"});
    policy.as_object_mut().map(|p| p.remove("status"));
    let policies: Api<RolloutPolicy> = Api::namespaced(client.clone(), &u);
    create(&policies, policy).await;
    // A new template in all three namespaces.
    a.new_template().await;
    b.new_template().await;
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:2"}]}}}})),
        )
        .await
        .expect("a new template where the operator does not look");
    // Both watched namespaces carry their change through to promotion.
    for w in [&a, &b] {
        let run = w
            .wait_phase(Phase::Succeeded, Duration::from_secs(90))
            .await;
        assert_eq!(run.namespace().as_deref(), Some(w.n()));
    }
    // It counted the two governed Deployments together.
    let governed = a
        .wait(
            "the governed-Deployments gauge to count both namespaces",
            Duration::from_secs(20),
            async || {
                let n = a.op().metric("rollguard_governed_deployments").await?;
                (n == 2.0).then_some(n)
            },
        )
        .await;
    assert_eq!(governed, 2.0);
    // Over the same time, nothing happened in the namespace it was not given: its Deployment
    // was never adopted, its policy has no status, no run was started.
    let d = deployments
        .get("web")
        .await
        .expect("the unwatched Deployment");
    let ours: Vec<&String> = d
        .annotations()
        .keys()
        .filter(|k| k.starts_with("rollguard.dev/"))
        .collect();
    assert!(ours.is_empty(), "rollguard wrote {ours:?} in {u}");
    assert_eq!(d.spec.and_then(|s| s.paused), None, "paused in {u}");
    let p = policies.get("shop").await.expect("the unwatched policy");
    assert!(p.status.is_none(), "status written in {u}: {:?}", p.status);
    let runs: Api<RolloutRun> = Api::namespaced(client.clone(), &u);
    let listed = runs.list(&ListParams::default()).await.expect("runs");
    assert!(listed.items.is_empty(), "runs in {u}: {:?}", listed.items);
    a.finish().await;
    b.finish().await;
    unwatched.cleanup().await;
}
