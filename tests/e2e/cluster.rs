//! The local test cluster itself (issue 2, "What must hold"), checked against the real thing:
//! kube-apiserver, the Deployment/ReplicaSet/namespace controllers, RBAC, CEL validation, and
//! Prometheus.
//!
//! Run: `tests/cluster/cluster.sh up && source .cluster/env && cargo test --features e2e --test e2e cluster::`

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, Pod, PodSpec, PodTemplateSpec, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams,
};
use rand::Rng;
use serde_json::json;

use crate::support::{self, claim, test_namespace, wait_for};

fn existing_cluster() -> bool {
    std::env::var("ROLLGUARD_EXISTING_CLUSTER").as_deref() == Ok("1")
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..Default::default()
    }
}

fn api_status(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error status, got {other:?}"),
    }
}

#[tokio::test]
async fn server_reports_pinned_version() {
    let _cluster = claim::shared().await;
    let client = support::client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    let pinned = support::pinned_version("K8S_VERSION");
    if existing_cluster() {
        eprintln!(
            "existing cluster reports {}; the pinned v{pinned} is checked only on the local control plane",
            info.git_version
        );
        return;
    }
    assert_eq!(info.git_version, format!("v{pinned}"));
    assert_eq!(info.major, "1");
    assert_eq!(Some(info.minor.as_str()), pinned.split('.').nth(1));
}

#[tokio::test]
async fn deployment_scales_on_kwok_nodes_and_namespace_deletion_completes() {
    let client = support::client().await;
    let ns = test_namespace(&client, "e2e-deploy").await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let deployment = Deployment {
        metadata: meta("web"),
        spec: Some(DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".into(),
                        image: Some("registry.k8s.io/pause:3.10".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    deploys
        .create(&PostParams::default(), &deployment)
        .await
        .expect("creating the Deployment");

    let available = async |n: i32| {
        let d = deploys.get("web").await.ok()?;
        (d.status?.available_replicas.unwrap_or(0) == n).then_some(())
    };
    wait_for(
        Duration::from_secs(90),
        "Deployment web: 3 available replicas",
        async || available(3).await,
    )
    .await;

    let lp = ListParams::default().labels("app=web");
    let running = wait_for(
        Duration::from_secs(30),
        "3 Running pods of web",
        async || {
            let list = pods.list(&lp).await.ok()?;
            let running: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() == 3).then_some(running)
        },
    )
    .await;
    if !existing_cluster() {
        let nodes: Api<Node> = Api::all(client.clone());
        for pod in &running {
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .expect("a Running pod is bound to a node");
            let node = nodes.get(&node_name).await.expect("the pod's node");
            let managed_by_kwok = node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kwok.x-k8s.io/node"))
                .map(String::as_str);
            assert_eq!(
                managed_by_kwok,
                Some("fake"),
                "pod on non-kwok node {node_name}"
            );
        }
    }
    let before: BTreeSet<String> = running
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();

    deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .expect("scaling web to 1");
    let left = wait_for(
        Duration::from_secs(60),
        "web scaled to 1: two pods deleted",
        async || {
            let list = pods.list(&lp).await.ok()?;
            (list.items.len() == 1).then_some(list.items)
        },
    )
    .await;
    let survivor = left[0].metadata.name.clone().unwrap_or_default();
    assert!(
        before.contains(&survivor),
        "the remaining pod {survivor} is one of {before:?}"
    );
    wait_for(
        Duration::from_secs(30),
        "Deployment web: 1 available replica",
        async || available(1).await,
    )
    .await;

    // Deleting the namespace must complete: kwok plays the kubelet's part for the pods.
    let name = ns.name.clone();
    ns.cleanup().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for(
        Duration::from_secs(120),
        "namespace deletion to complete",
        async || matches!(namespaces.get_opt(&name).await, Ok(None)).then_some(()),
    )
    .await;
}

#[tokio::test]
async fn rbac_is_enforced_for_a_service_account() {
    let client = support::client().await;
    let ns = test_namespace(&client, "e2e-rbac").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: meta("reader"),
            ..Default::default()
        },
    )
    .await
    .expect("creating the ServiceAccount");

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the ServiceAccount")
        .status
        .and_then(|s| s.token)
        .expect("TokenRequest returns a token");
    let reader = support::client_with_token(&token).await;
    let deploys: Api<Deployment> = Api::namespaced(reader.clone(), &ns.name);

    let denied = api_status(deploys.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(denied.code, 403, "without a RoleBinding: {denied:?}");
    let user = format!("system:serviceaccount:{}:reader", ns.name);
    assert!(
        denied.message.contains(&user),
        "403 names {user}: {}",
        denied.message
    );

    let roles: Api<Role> = Api::namespaced(client.clone(), &ns.name);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("deployment-reader"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["apps".into()]),
                    resources: Some(vec!["deployments".into()]),
                    verbs: vec!["get".into(), "list".into(), "watch".into()],
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("creating the Role");
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns.name);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("deployment-reader"),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "deployment-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(ns.name.clone()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("creating the RoleBinding");

    wait_for(
        Duration::from_secs(30),
        "the RoleBinding to allow listing Deployments",
        async || deploys.list(&ListParams::default()).await.ok(),
    )
    .await;
    // The grant is namespaced: other namespaces stay forbidden.
    let elsewhere: Api<Deployment> = Api::namespaced(reader, "default");
    let denied = api_status(elsewhere.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(
        denied.code, 403,
        "outside the granted namespace: {denied:?}"
    );

    ns.cleanup().await;
}

#[tokio::test]
async fn crd_cel_rule_rejects_invalid_objects_with_its_message() {
    let client = support::client().await;
    let ns = test_namespace(&client, "e2e-cel").await;
    let group = format!("e2e{}.rollguard.test", support::unique_suffix());
    let crd_name = format!("widgets.{group}");
    let message = "replicas must not exceed maxReplicas";
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["replicas", "maxReplicas"],
                        "properties": {
                            "replicas": { "type": "integer" },
                            "maxReplicas": { "type": "integer" }
                        },
                        "x-kubernetes-validations": [
                            { "rule": "self.replicas <= self.maxReplicas", "message": message }
                        ]
                    }}
                }}
            }]
        }
    }))
    .expect("CRD manifest");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("creating the CRD");
    wait_for(
        Duration::from_secs(30),
        "the CRD to be Established",
        async || {
            let crd = crds.get(&crd_name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        },
    )
    .await;

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &ar);
    let valid =
        DynamicObject::new("ok", &ar).data(json!({ "spec": { "replicas": 2, "maxReplicas": 3 } }));
    // The new resource's handler can answer 404 for a moment after Established.
    wait_for(
        Duration::from_secs(30),
        "a valid Widget to be accepted",
        async || widgets.create(&PostParams::default(), &valid).await.ok(),
    )
    .await;

    let invalid = DynamicObject::new("too-many", &ar)
        .data(json!({ "spec": { "replicas": 5, "maxReplicas": 3 } }));
    let rejected = api_status(
        widgets
            .create(&PostParams::default(), &invalid)
            .await
            .expect_err("the CEL rule must reject replicas > maxReplicas"),
    );
    assert_eq!(rejected.code, 422, "{rejected:?}");
    assert!(
        rejected.message.contains(message),
        "rejection carries the rule's message: {}",
        rejected.message
    );

    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("deleting the CRD");
    ns.cleanup().await;
}

#[tokio::test]
async fn prometheus_scrapes_a_registered_target() {
    let _cluster = claim::shared().await;
    let url = support::prometheus_url();
    let job = format!("rollguard_e2e_{}", support::unique_suffix());
    // A value to look for, from the test seed (the job name is what is unique to the run).
    let value = 1000 + u64::from(support::fuzz::rng(0).random::<u16>() % 1000);
    let body = format!("# TYPE rollguard_e2e_probe gauge\nrollguard_e2e_probe {value}\n");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the metrics server");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let body = body.clone();
            async move { body }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let target = support::register_scrape_target(&job, &addr.to_string());
    wait_for(
        Duration::from_secs(30),
        &format!("Prometheus: up{{job=\"{job}\"}} == 1"),
        async || {
            let up = support::prom_query(&url, &format!("up{{job=\"{job}\"}}")).await?;
            (up == 1.0).then_some(())
        },
    )
    .await;
    let seen = wait_for(
        Duration::from_secs(30),
        "Prometheus: the probe metric",
        async || support::prom_query(&url, &format!("rollguard_e2e_probe{{job=\"{job}\"}}")).await,
    )
    .await;
    assert_eq!(seen, value as f64);

    std::fs::remove_file(target).expect("removing the scrape target");
    server.abort();
}
