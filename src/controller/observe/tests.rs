//! Given what the caches hold, then this is what the run machine is told: no cluster needed.

use std::sync::Arc;

use serde_json::json;

use super::*;

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "uid": "u-web", "generation": 1},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "web:2"}]}}},
        "status": {"observedGeneration": 1, "replicas": 4, "updatedReplicas": 4,
                   "availableReplicas": 4}
    }))
    .expect("a Deployment")
}

fn service(name: &str, app: &str) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"app": app}}
        }))
        .expect("a Service"),
    )
}

fn route() -> Arc<HttpRoute> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"rules": [{"backendRefs": [
                {"name": "web-stable", "port": 80, "weight": 100},
                {"name": "web-canary", "port": 80, "weight": 0}]}]}
        }))
        .expect("an HTTPRoute"),
    )
}

fn replicaset(
    name: &str,
    owner: &str,
    hash: &str,
    revision: &str,
) -> Arc<PartialObjectMeta<ReplicaSet>> {
    let meta: ObjectMeta = serde_json::from_value(json!({
        "name": name, "namespace": "shop",
        "labels": {"pod-template-hash": hash},
        "annotations": {"deployment.kubernetes.io/revision": revision},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                             "uid": owner, "controller": true}]
    }))
    .expect("metadata");
    Arc::new(PartialObjectMeta {
        types: None,
        metadata: meta,
        _phantom: Default::default(),
    })
}

#[test]
fn the_users_service_is_found_and_rollguards_own_are_not_candidates() {
    let d = deployment();
    let snapshot = Snapshot {
        services: vec![service("web", "web"), service("api", "api")],
        ..Default::default()
    };
    let r = snapshot.routing(&d, Router::Replicas).expect("routable");
    assert_eq!(r.service.name_any(), "web");
    assert!(r.routes.is_empty());
    assert_eq!(
        snapshot.service("api").map(|s| s.name_any()).as_deref(),
        Some("api")
    );
}

#[test]
fn missing_pieces_block_routing_with_the_reason_the_condition_shows() {
    let d = deployment();
    let none = Snapshot::default();
    assert_eq!(
        none.routing(&d, Router::Replicas)
            .expect_err("no Service")
            .reason,
        "ServiceNotFound"
    );
    let no_crd = Snapshot {
        services: vec![service("web", "web")],
        routes: None,
        ..Default::default()
    };
    assert_eq!(
        no_crd
            .routing(&d, Router::GatewayApi)
            .expect_err("no CRD")
            .reason,
        "GatewayAPIMissing"
    );
    let with_route = Snapshot {
        services: vec![service("web", "web")],
        routes: Some(vec![route()]),
        ..Default::default()
    };
    let r = with_route
        .routing(&d, Router::GatewayApi)
        .expect("routable");
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.routes[0].route, "web");
}

#[test]
fn the_stable_revision_is_the_newest_replicaset_of_the_deployment() {
    let d = deployment();
    let snapshot = Snapshot {
        replicasets: vec![
            replicaset("web-old", "u-web", "old", "1"),
            replicaset("web-new", "u-web", "new", "2"),
            replicaset("other", "u-other", "zzz", "9"),
        ],
        ..Default::default()
    };
    let sight = snapshot.sight("");
    assert_eq!(
        snapshot.revisions(&d, &sight),
        Revisions {
            canary: None,
            stable: Some("new".into())
        }
    );
}

#[test]
fn the_world_carries_the_deployment_routing_and_release() {
    let d = deployment();
    let snapshot = Snapshot::default();
    let sight = snapshot.sight("abc");
    let routing = snapshot.routing(&d, Router::Replicas);
    let now = Timestamp::UNIX_EPOCH;
    let w = world(
        &d,
        &snapshot,
        Seen {
            now,
            sight: &sight,
            routing: &routing,
            measurement: None,
            released: Some("its RolloutPolicy no longer selects it".into()),
            pause_gate: false,
            weight_fight: None,
            canary_endpoints: None,
        },
    );
    assert_eq!(w.now, now);
    assert_eq!(w.template_revision, governance::template_revision(&d));
    assert_eq!(w.stable_replicas, 4);
    assert!(w.rollout_complete);
    assert_eq!(w.canary, None);
    assert_eq!(w.earlier_canary, None);
    assert_eq!(
        w.routing.as_ref().map_err(|(reason, _)| reason.as_str()),
        Err("ServiceNotFound")
    );
    assert_eq!(
        w.released.as_deref(),
        Some("its RolloutPolicy no longer selects it")
    );
}

fn slice(service: &str, endpoints: serde_json::Value) -> Arc<EndpointSlice> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-x"), "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": service,
                                    "rollguard.dev/deployment": "web"}},
            "addressType": "IPv4",
            "endpoints": endpoints
        }))
        .expect("an EndpointSlice"),
    )
}

/// Given the routing Services' EndpointSlices, the canary's routable pods are its ready
/// endpoints, each pod once: not ready and terminating ones do not count, `ready` unset
/// counts (the API's meaning), a pod listed in two slices (two address families) is one,
/// and another Service's slice is not the canary's.
#[test]
fn the_canarys_ready_endpoints_are_counted_from_its_routing_services_slices() {
    let pod = |name: &str, ip: &str, conditions: serde_json::Value| {
        json!({"addresses": [ip], "conditions": conditions,
               "targetRef": {"kind": "Pod", "name": name, "namespace": "shop"}})
    };
    let snapshot = Snapshot {
        endpoint_slices: vec![
            slice(
                "web-canary",
                json!([
                    pod("c1", "10.0.0.1", json!({"ready": true})),
                    pod("c2", "10.0.0.2", json!({"ready": false})),
                    pod(
                        "c3",
                        "10.0.0.3",
                        json!({"ready": true, "terminating": true})
                    ),
                    pod("c4", "10.0.0.4", json!({})),
                ]),
            ),
            // The same pod in an IPv6 slice.
            slice(
                "web-canary",
                json!([pod("c1", "fd00::1", json!({"ready": true}))]),
            ),
            slice(
                "web-stable",
                json!([
                    pod("s1", "10.0.1.1", json!({"ready": true})),
                    pod("s2", "10.0.1.2", json!({"ready": true})),
                ]),
            ),
        ],
        ..Snapshot::default()
    };
    assert_eq!(snapshot.ready_endpoints("web-canary"), 2);
    assert_eq!(snapshot.ready_endpoints("web-stable"), 2);
    assert_eq!(snapshot.ready_endpoints("api-canary"), 0);
    // No slice yet (the EndpointSlice controller has not written one): none.
    assert_eq!(Snapshot::default().ready_endpoints("web-canary"), 0);
}
