//! A small governed service for tests that inject faults: one Deployment, its Service, a
//! fast policy, the operator and the traffic simulator.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::RolloutRun;
use serde_json::json;

use super::procs::{Proc, start_operator, start_operator_named, start_trafficsim};

/// A namespace with a governed Deployment `web` behind a Service at 100 requests/s, a
/// policy with a 1 s analysis interval and a 10%/3s, 50%/3s plan, the operator (with
/// leader election when `operators` > 1: the first one, which takes the Lease) and the
/// simulator.
pub async fn setup(
    prefix: &str,
    operators: usize,
) -> (kube::Client, super::TestNamespace, Proc, Proc) {
    setup_with(prefix, operators, serde_json::Value::Null, Vec::new()).await
}

/// As [`setup`], with `analysis` merged over the policy's `spec.analysis` (a JSON merge:
/// the keys given replace the defaults) and `secrets` created before the policy.
pub async fn setup_with(
    prefix: &str,
    operators: usize,
    analysis: serde_json::Value,
    secrets: Vec<Secret>,
) -> (kube::Client, super::TestNamespace, Proc, Proc) {
    let client = super::client().await;
    let ns = super::test_namespace(&client, prefix).await;
    for s in secrets {
        Api::<Secret>::namespaced(client.clone(), &ns.name)
            .create(&PostParams::default(), &s)
            .await
            .expect("create Secret");
    }
    let (op, sim) = populate(&client, &ns.name, operators, analysis).await;
    (client, ns, op, sim)
}

/// As [`setup`], in a namespace the test already made (and cleans up).
pub async fn setup_in(
    ns: &super::TestNamespace,
    operators: usize,
) -> (kube::Client, String, Proc, Proc) {
    let client = super::client().await;
    let (op, sim) = populate(&client, &ns.name, operators, serde_json::Value::Null).await;
    (client, ns.name.clone(), op, sim)
}

async fn populate(
    client: &kube::Client,
    n: &str,
    operators: usize,
    analysis: serde_json::Value,
) -> (Proc, Proc) {
    let n = n.to_string();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"sim.rollguard.dev/error-rate": "0.001"}},
                "spec": {"containers": [{"name": "app", "image": "example.com/web:1"}]}}}
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"sim.rollguard.dev/rps": "100"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &s)
        .await
        .expect("create");
    let mut policy = json!({
        "metadata": {"name": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/part-of": "shop"}},
            "analysis": {
                "interval": "1s",
                "prometheus": {"address": super::prometheus_url(), "timeout": "2s"},
                "requests": "sum(increase(http_requests_total{namespace=\"{{namespace}}\",workload=\"{{workload}}\"}[{{elapsed}}]))",
                "errors": "sum(increase(http_requests_total{namespace=\"{{namespace}}\",workload=\"{{workload}}\",code=~\"5..\"}[{{elapsed}}]))",
                "minRequests": 10
            },
            "tiers": [{"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}], "maxErrorRate": "5%"}]
        }
    });
    if let serde_json::Value::Object(over) = analysis {
        for (k, v) in over {
            policy["spec"]["analysis"][k] = v;
        }
    }
    let p: RolloutPolicy = serde_json::from_value(policy).expect("policy");
    Api::<RolloutPolicy>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &p)
        .await
        .expect("create");
    let op = if operators == 1 {
        start_operator(&n).await
    } else {
        start_operator_named(
            &n,
            "op-0",
            &[
                "--leader-elect",
                "--lease-namespace",
                &n,
                "--lease-duration",
                "6s",
            ],
        )
        .await
    };
    let sim = start_trafficsim(&n).await;
    super::wait_for(Duration::from_secs(30), "adoption", async || {
        let d = Api::<Deployment>::namespaced(client.clone(), &n)
            .get("web")
            .await
            .ok()?;
        d.annotations()
            .contains_key("rollguard.dev/stable-revision")
            .then_some(())
    })
    .await;
    (op, sim)
}

/// Gives `web` in `namespace` a new pod template (image `web:2`): a run starts.
pub async fn new_template(client: &kube::Client, namespace: &str) {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:2"}]}}}});
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("new template");
}

/// The newest run behind `api`.
pub async fn newest_run(api: &Api<RolloutRun>) -> Option<RolloutRun> {
    let mut runs = api.list(&ListParams::default()).await.ok()?.items;
    runs.sort_by_key(|r| r.creation_timestamp().map(|t| t.0));
    runs.pop()
}
