//! The operator's ServiceAccount can make every API call the operator makes and nothing
//! it must not, checked with a token for it (a TokenRequest).
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::REPO;
use super::helm::chart_dir;
use super::release::{
    Release, alone, dynamic, policies_resource, release_name, routes_resource, run_object,
    runs_resource, status_code, token_for,
};
use crate::support::{self, test_namespace, wait_for};

fn must<T>(what: &str, r: Result<T, kube::Error>) -> T {
    r.unwrap_or_else(|e| panic!("the operator's ServiceAccount must be allowed to {what}: {e}"))
}

fn must_not<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>) {
    assert_eq!(
        status_code(&r),
        Some(403),
        "the operator's ServiceAccount must NOT be allowed to {what}; got {r:?}"
    );
}

/// Opens a watch and reads until the server closes it (a 1 s server-side timeout): a
/// forbidden watch fails on open.
async fn can_watch<K>(api: &Api<K>) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let stream = api.watch(&WatchParams::default().timeout(1), "0").await?;
    let mut stream = Box::pin(stream);
    while let Some(ev) = stream.next().await {
        ev?;
    }
    Ok(())
}

/// [`can_watch`] for one object, selected by name as the operator's Secrets watch does.
async fn can_watch_named<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(1);
    let stream = api.watch(&params, "0").await?;
    let mut stream = Box::pin(stream);
    while let Some(ev) = stream.next().await {
        ev?;
    }
    Ok(())
}

/// What the test sets up as admin: a Deployment, its Service, an HTTPRoute, a policy, and a
/// Secret in another namespace.
async fn permission_fixtures(admin: &Client, ns: &str, other: &str) {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]},
            },
        },
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .expect("creating the Deployment");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .expect("a Service");
    Api::<Service>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .expect("creating the Service");
    let route = dynamic(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"rules": [{"backendRefs": [
            {"name": "web-stable", "port": 80, "weight": 100},
            {"name": "web-canary", "port": 80, "weight": 0},
        ]}]},
    }));
    Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &routes_resource())
        .create(&PostParams::default(), &route)
        .await
        .expect("creating the HTTPRoute");
    let example =
        std::fs::read_to_string(Path::new(REPO).join("deploy/examples/replicas-router.yaml"))
            .expect("example policy");
    let mut policy: Value = serde_yaml_ng::from_str(&example).expect("the example policy");
    policy["metadata"]["namespace"] = json!(ns);
    Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &policies_resource())
        .create(&PostParams::default(), &dynamic(policy))
        .await
        .expect("creating the policy");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "prometheus-token"},
        "stringData": {"token": "not-for-the-operator"},
    }))
    .expect("a Secret");
    for n in [ns, other] {
        Api::<Secret>::namespaced(admin.clone(), n)
            .create(&PostParams::default(), &secret)
            .await
            .expect("creating a Secret");
    }
    // A Secret that `rbac.secretNames` does not name, next to one it does.
    let unnamed: Secret = serde_json::from_value(json!({
        "metadata": {"name": "unnamed"},
        "stringData": {"token": "not-for-the-operator"},
    }))
    .expect("a Secret");
    Api::<Secret>::namespaced(admin.clone(), other)
        .create(&PostParams::default(), &unnamed)
        .await
        .expect("creating a Secret");
}

#[tokio::test]
async fn operator_service_account_has_exactly_the_permissions_it_needs() {
    let _cluster = alone().await;
    // The hand-applied copies of the admission policies are made for release `rollguard`:
    // their run guard would refuse this release's ServiceAccount. The next world applies
    // them again.
    support::admission::remove();
    let admin = support::client().await;
    let ns = test_namespace(&admin, "chart-rbac").await;
    let other = test_namespace(&admin, "chart-rbac-other").await;
    let n = ns.name.clone();
    let name = release_name("rg-rbac");
    let (release, _) = Release::install(&admin, &chart_dir(), &name, &n, &["replicaCount=1"]).await;
    permission_fixtures(&admin, &n, &other.name).await;
    let op = operator_client(&admin, &release).await;

    watches_what_it_governs(&op).await;
    let uid = governs_a_deployment(&op, &n).await;
    routes_traffic(&op, &n, &uid).await;
    is_fenced(&op, &admin, &n).await;
    writes_runs(&op, &n).await;
    writes_policy_status_and_finalizer(&op, &n).await;
    publishes_events(&op, &n).await;
    holds_its_lease(&op, &n, &other.name).await;
    cannot_do_what_it_must_not(&op, &n, &other.name, &release).await;
    reads_secrets_only_where_opted_in(&op, &release, &n, &other.name).await;
    reads_named_secrets_only(&op, &release, &other.name).await;
    watches_one_namespace_with_a_role(&op, &admin, &release, &n, &other.name).await;

    release.uninstall();
    ns.cleanup().await;
    other.cleanup().await;
}

/// A client with a token for the release's ServiceAccount, once its RBAC is in force (the
/// authorizer caches it).
async fn operator_client(admin: &Client, release: &Release) -> Client {
    let token = token_for(admin, &release.namespace, &release.fullname()).await;
    let op = support::client_with_token(&token).await;
    wait_for(
        Duration::from_secs(20),
        "the operator's RBAC to be in force",
        async || {
            Api::<Deployment>::all(op.clone())
                .list(&ListParams::default().limit(1))
                .await
                .ok()
        },
    )
    .await;
    op
}

/// How the operator writes: server-side apply as `rollguard`, forced.
fn ssa() -> PatchParams {
    PatchParams::apply("rollguard").force()
}

/// Lists and watches, cluster-wide, of everything it governs and reads.
async fn watches_what_it_governs(op: &Client) {
    // Watches (list + watch), cluster-wide.
    must(
        "list Deployments",
        Api::<Deployment>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must(
        "watch Deployments",
        can_watch(&Api::<Deployment>::all(op.clone())).await,
    );
    let rs: Api<ReplicaSet> = Api::all(op.clone());
    must(
        "list ReplicaSets (metadata)",
        rs.list_metadata(&ListParams::default()).await,
    );
    must("watch ReplicaSets (metadata)", {
        let s = rs
            .watch_metadata(&WatchParams::default().timeout(1), "0")
            .await;
        match s {
            Ok(s) => {
                let mut s = Box::pin(s);
                let mut r = Ok(());
                while let Some(ev) = s.next().await {
                    if let Err(e) = ev {
                        r = Err(e);
                    }
                }
                r
            }
            Err(e) => Err(e),
        }
    });
    must(
        "list Services",
        Api::<Service>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must(
        "watch Services",
        can_watch(&Api::<Service>::all(op.clone())).await,
    );
    for (what, ar) in [
        ("HTTPRoutes", routes_resource()),
        ("RolloutPolicies", policies_resource()),
        ("RolloutRuns", runs_resource()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(op.clone(), &ar);
        must(
            &format!("list {what}"),
            api.list(&ListParams::default()).await,
        );
        must(&format!("watch {what}"), can_watch(&api).await);
    }
}

/// A governed Deployment: spec.paused and rollguard's annotations; its canary created,
/// resized and deleted. Returns the governed Deployment's uid.
async fn governs_a_deployment(op: &Client, n: &str) -> String {
    // A governed Deployment: server-side apply of spec.paused and rollguard's annotations.
    let deploys: Api<Deployment> = Api::namespaced(op.clone(), n);
    let governed = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"rollguard.dev/policy": "shop", "rollguard.dev/stable-revision": "5d8f7c9b6"}},
        "spec": {"paused": true},
    });
    let d = must(
        "server-side apply spec.paused on a Deployment",
        deploys.patch("web", &ssa(), &Patch::Apply(governed)).await,
    );
    assert_eq!(d.spec.and_then(|s| s.paused), Some(true));
    // kstatus' conditions in its status: server-side apply on the status subresource, then
    // removed by an apply that names none.
    let stalled = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "status": {"conditions": [{"type": "Stalled", "status": "True", "reason": "RolledBack", "message": "test"}]},
    });
    let s = must(
        "server-side apply a condition in a Deployment's status",
        deploys
            .patch_status("web", &ssa(), &Patch::Apply(stalled))
            .await,
    );
    let types = |d: &Deployment| -> Vec<String> {
        d.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .map(|c| c.type_.clone())
            .collect()
    };
    assert!(types(&s).contains(&"Stalled".to_string()), "{:?}", s.status);
    let none = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "status": {}});
    let s = must(
        "remove rollguard's conditions from a Deployment's status",
        deploys
            .patch_status("web", &ssa(), &Patch::Apply(none))
            .await,
    );
    assert!(
        !types(&s).contains(&"Stalled".to_string()),
        "{:?}",
        s.status
    );
    // The canary: created by server-side apply (owned by the governed Deployment), resized, deleted.
    let uid = d.metadata.uid.expect("uid");
    let canary = |replicas: i32| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web-canary",
                "labels": {"rollguard.dev/role": "canary", "rollguard.dev/deployment": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid,
                                     "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web", "rollguard.dev/role": "canary"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "rollguard.dev/role": "canary"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.example/web:2"}]},
                },
            },
        })
    };
    must(
        "create the canary Deployment (server-side apply)",
        deploys
            .patch("web-canary", &ssa(), &Patch::Apply(canary(1)))
            .await,
    );
    must(
        "resize the canary Deployment",
        deploys
            .patch("web-canary", &ssa(), &Patch::Apply(canary(2)))
            .await,
    );
    must(
        "delete the canary Deployment",
        deploys
            .delete("web-canary", &DeleteParams::foreground())
            .await,
    );
    uid
}

/// The owner reference rollguard puts on what it makes for Deployment `web`.
fn owned_by_web(uid: &str) -> Value {
    json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid,
            "controller": true, "blockOwnerDeletion": true}])
}

/// Routing Services and HTTPRoute weights.
async fn routes_traffic(op: &Client, n: &str, uid: &str) {
    // Routing Services: created and pinned by server-side apply, owned by the Deployment.
    let services: Api<Service> = Api::namespaced(op.clone(), n);
    for (svc, role) in [("web-stable", "stable"), ("web-canary", "canary")] {
        let body = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc, "labels": {"rollguard.dev/deployment": "web"},
                         "ownerReferences": owned_by_web(uid)},
            "spec": {"selector": {"app": "web", "rollguard.dev/track": role}, "ports": [{"port": 80, "targetPort": 8080}]},
        });
        must(
            &format!("create Service {svc} (server-side apply)"),
            services
                .patch(svc, &ssa(), &Patch::Apply(body.clone()))
                .await,
        );
        must(
            &format!("re-apply Service {svc}"),
            services.patch(svc, &ssa(), &Patch::Apply(body)).await,
        );
    }

    // HTTPRoute weights: a JSON patch.
    let routes: Api<DynamicObject> = Api::namespaced_with(op.clone(), n, &routes_resource());
    let weights: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "web-stable"},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": 995},
        {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": 5},
    ]))
    .expect("a JSON patch");
    let r = must(
        "JSON-patch HTTPRoute weights",
        routes
            .patch("web", &PatchParams::default(), &Patch::Json::<()>(weights))
            .await,
    );
    assert_eq!(r.data["spec"]["rules"][0]["backendRefs"][1]["weight"], 5);
}

/// A 403 from the operator fence, its message saying `says`.
fn fenced<T: std::fmt::Debug>(what: &str, r: Result<T, kube::Error>, says: &str) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(says) => {}
        other => panic!(
            "the fence must refuse the operator's token to {what} (403 saying {says:?}); got {other:?}"
        ),
    }
}

/// The operator fence (the chart's `<fullname>-operator-fence`): with the operator's own token,
/// every write RBAC allows but rollguard never makes is refused, naming the object; a dry run
/// (the pause gate's proof) is let through.
async fn is_fenced(op: &Client, admin: &Client, n: &str) {
    let deploys: Api<Deployment> = Api::namespaced(op.clone(), n);
    // The API server loads the policy asynchronously: wait for its first refusal.
    let pod_starter = |name: &str, ns: &str, sa: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"serviceAccountName": sa, "containers": [{"name": "x", "image": "registry.example/x:1"}]},
                },
            },
        })
    };
    let first = support::poll(
        Duration::from_secs(30),
        Duration::from_millis(300),
        async || {
            let r = deploys
                .patch(
                    "evil",
                    &ssa(),
                    &Patch::Apply(pod_starter("evil", n, "default")),
                )
                .await;
            match &r {
                Ok(_) => {
                    // Not in force yet: take it away and try again.
                    let _ = Api::<Deployment>::namespaced(admin.clone(), n)
                        .delete("evil", &DeleteParams::default())
                        .await;
                    None
                }
                Err(_) => Some(r),
            }
        },
    )
    .await
    .expect("the fence in force within 30 s");
    fenced(
        "create a Deployment that is not a canary",
        first,
        "creates only canary Deployments",
    );
    // A canary-shaped Deployment in kube-system, owned by a Deployment there.
    let system: Api<Deployment> = Api::namespaced(op.clone(), "kube-system");
    let mut canary = pod_starter("coredns-canary", "kube-system", "generic-garbage-collector");
    canary["metadata"]["labels"] =
        json!({"rollguard.dev/role": "canary", "rollguard.dev/deployment": "coredns"});
    canary["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "coredns", "uid": "00000000-0000-0000-0000-000000000000", "controller": true}]);
    fenced(
        "create a Deployment in kube-system",
        system
            .patch("coredns-canary", &ssa(), &Patch::Apply(canary))
            .await,
        "writes nothing in namespace kube-system",
    );
    // The governed Deployment: its template, its replicas, its tag.
    for (what, body) in [
        (
            "change a governed Deployment's image",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.example/evil:1"}]}}}}),
        ),
        (
            "scale a governed Deployment",
            json!({"spec": {"replicas": 5}}),
        ),
        (
            "re-tag a governed Deployment",
            json!({"metadata": {"annotations": {"rollguard.dev/change-origin": "human"}}}),
        ),
    ] {
        fenced(
            what,
            deploys
                .patch("web", &PatchParams::default(), &Patch::Merge(body))
                .await,
            "changes only spec.paused and its rollguard.dev/ annotations on Deployment",
        );
    }
    fenced(
        "delete a Deployment that is not a canary",
        deploys.delete("web", &DeleteParams::default()).await,
        "deletes only canary Deployments",
    );
    // The pause gate's proof, a dry-run template change, passes.
    let probe = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    must(
        "dry-run a template change (the pause gate's proof)",
        deploys
            .patch("web", &probe, &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"rollguard.dev/gate-probe": "1"}}}}})))
            .await,
    );
    // The user's Service, repointed; a Service of the same name as rollguard's but not owned.
    let services: Api<Service> = Api::namespaced(op.clone(), n);
    fenced(
        "repoint the user's Service",
        services
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"selector": {"app": "evil"}}})),
            )
            .await,
        "writes only its routing Services",
    );
    let unowned = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "other-stable", "labels": {"rollguard.dev/deployment": "web"}},
        "spec": {"selector": {"app": "evil"}, "ports": [{"port": 80}]}});
    fenced(
        "create a Service without rollguard's owner reference",
        services
            .patch("other-stable", &ssa(), &Patch::Apply(unowned))
            .await,
        "writes only its routing Services",
    );
    // The route: a match added, a backend swapped; weights alone pass (routes_traffic).
    let routes: Api<DynamicObject> = Api::namespaced_with(op.clone(), n, &routes_resource());
    for (what, patch) in [
        (
            "edit an HTTPRoute's match",
            json!([{"op": "add", "path": "/spec/rules/0/matches", "value": [{"path": {"type": "PathPrefix", "value": "/admin"}}]}]),
        ),
        (
            "point an HTTPRoute at another backend",
            json!([{"op": "replace", "path": "/spec/rules/0/backendRefs/1/name", "value": "web"}]),
        ),
    ] {
        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a JSON patch");
        fenced(
            what,
            routes
                .patch("web", &PatchParams::default(), &Patch::Json::<()>(patch))
                .await,
            "changes only backendRef weights on HTTPRoute",
        );
    }
}

/// RolloutRuns: create, status, delete; no patch.
async fn writes_runs(op: &Client, n: &str) {
    // Runs: create, status, delete; a patch of the run itself is not granted.
    let runs: Api<DynamicObject> = Api::namespaced_with(op.clone(), n, &runs_resource());
    must(
        "create a RolloutRun",
        runs.create(&PostParams::default(), &run_object("web-7f6b5c4d3", n))
            .await,
    );
    let labels = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
                        "metadata": {"name": "web-7f6b5c4d3", "labels": {"rollguard.dev/policy": "shop"}}});
    must_not(
        "server-side apply a RolloutRun (its spec is immutable, its status a subresource)",
        runs.patch("web-7f6b5c4d3", &ssa(), &Patch::Apply(labels))
            .await,
    );
    let status = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun", "metadata": {"name": "web-7f6b5c4d3"},
                        "status": {"phase": "Progressing", "step": 0, "weight": "10%"}});
    let r = must(
        "patch rolloutruns/status",
        runs.patch_status("web-7f6b5c4d3", &ssa(), &Patch::Apply(status))
            .await,
    );
    assert_eq!(r.data["status"]["phase"], "Progressing");
    must(
        "delete a RolloutRun",
        runs.delete("web-7f6b5c4d3", &DeleteParams::default()).await,
    );
}

/// A RolloutPolicy's status and finalizer.
async fn writes_policy_status_and_finalizer(op: &Client, n: &str) {
    // Policies: the status, and the finalizer (added, then removed at once so the namespace
    // can go).
    let policies: Api<DynamicObject> = Api::namespaced_with(op.clone(), n, &policies_resource());
    let pstatus = json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy", "metadata": {"name": "shop"},
                         "status": {"governedDeployments": 1, "activeRuns": 0, "router": "replicas"}});
    must(
        "patch rolloutpolicies/status",
        policies
            .patch_status("shop", &ssa(), &Patch::Apply(pstatus))
            .await,
    );
    let fin = |f: Vec<&str>| json!({"apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy", "metadata": {"name": "shop", "finalizers": f}});
    must(
        "add the policy finalizer",
        policies
            .patch(
                "shop",
                &ssa(),
                &Patch::Apply(fin(vec!["rollguard.dev/release"])),
            )
            .await,
    );
    must(
        "remove the policy finalizer",
        policies
            .patch("shop", &ssa(), &Patch::Apply(fin(vec![])))
            .await,
    );
}

/// Events, created and patched.
async fn publishes_events(op: &Client, n: &str) {
    // Events (events.k8s.io/v1): create, then patch (a repeated Event's series).
    let events: Api<Event> = Api::namespaced(op.clone(), n);
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "web.rollguard-test"},
        "eventTime": MicroTime(jiff::Timestamp::now()),
        "reportingController": "rollguard",
        "reportingInstance": "rollguard-0",
        "action": "Canary",
        "reason": "StepStarted",
        "type": "Normal",
        "note": "step 1 of 2: 10%",
        "regarding": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": n},
    }))
    .expect("an Event");
    must(
        "create an Event",
        events.create(&PostParams::default(), &ev).await,
    );
    let series =
        json!({"series": {"count": 2, "lastObservedTime": MicroTime(jiff::Timestamp::now())}});
    must(
        "patch an Event",
        events
            .patch(
                "web.rollguard-test",
                &PatchParams::default(),
                &Patch::Merge(&series),
            )
            .await,
    );
}

/// Its leader-election Lease in the release namespace, and no other.
async fn holds_its_lease(op: &Client, n: &str, other: &str) {
    // The leader-election Lease in the release namespace.
    let leases: Api<Lease> = Api::namespaced(op.clone(), n);
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "rollguard-leader"},
        "spec": {"holderIdentity": "rollguard-0", "leaseDurationSeconds": 15},
    }))
    .expect("a Lease");
    must(
        "create the Lease",
        leases.create(&PostParams::default(), &lease).await,
    );
    let mut l = must("get the Lease", leases.get("rollguard-leader").await);
    l.spec.get_or_insert_with(Default::default).holder_identity = Some("rollguard-1".into());
    must(
        "update the Lease",
        leases
            .replace("rollguard-leader", &PostParams::default(), &l)
            .await,
    );
    let renew = json!({"spec": {"renewTime": MicroTime(jiff::Timestamp::now())}});
    must(
        "patch the Lease",
        leases
            .patch(
                "rollguard-leader",
                &PatchParams::default(),
                &Patch::Merge(&renew),
            )
            .await,
    );
    must_not("get another Lease", leases.get("someone-elses-lease").await);
    must_not("get Leases outside the release namespace", {
        Api::<Lease>::namespaced(op.clone(), other)
            .get("rollguard-leader")
            .await
    });
}

/// Nothing it must not do: Secrets, Namespaces, escalation, Pods, reads outside its watch
/// cache, writes it never makes.
async fn cannot_do_what_it_must_not(op: &Client, n: &str, other: &str, release: &Release) {
    // What it must not do.
    let deploys: Api<Deployment> = Api::namespaced(op.clone(), n);
    let services: Api<Service> = Api::namespaced(op.clone(), n);
    let policies: Api<DynamicObject> = Api::namespaced_with(op.clone(), n, &policies_resource());
    must_not(
        "list Secrets cluster-wide",
        Api::<Secret>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    must_not(
        "get a Secret in another namespace",
        Api::<Secret>::namespaced(op.clone(), other)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "get a Secret in its own namespace",
        Api::<Secret>::namespaced(op.clone(), n)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "delete a Namespace",
        Api::<Namespace>::all(op.clone())
            .delete(other, &DeleteParams::default())
            .await,
    );
    let crb = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{}-escalate", release.name)),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: release.fullname(),
            namespace: Some(n.to_string()),
            ..Default::default()
        }]),
    };
    must_not(
        "create a ClusterRoleBinding",
        Api::<ClusterRoleBinding>::all(op.clone())
            .create(&PostParams::default(), &crb)
            .await,
    );
    must_not("create Pods", {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}))
            .expect("a Pod");
        Api::<Pod>::namespaced(op.clone(), n)
            .create(&PostParams::default(), &pod)
            .await
    });
    let web = must(
        "list Deployments",
        deploys.list(&ListParams::default()).await,
    )
    .items
    .into_iter()
    .find(|d| d.name_any() == "web")
    .expect("Deployment web");
    must_not(
        "get a Deployment (the operator reads from its watch cache)",
        deploys.get("web").await,
    );
    must_not(
        "update a Deployment (PUT)",
        deploys.replace("web", &PostParams::default(), &web).await,
    );
    must_not(
        "delete a Service",
        services.delete("web", &DeleteParams::default()).await,
    );
    must_not(
        "delete a RolloutPolicy",
        policies.delete("shop", &DeleteParams::default()).await,
    );
    must_not("create Roles", {
        let role = Role {
            metadata: ObjectMeta {
                name: Some("escalate".into()),
                ..Default::default()
            },
            rules: None,
        };
        Api::<Role>::namespaced(op.clone(), n)
            .create(&PostParams::default(), &role)
            .await
    });
}

/// With `rbac.secretNamespaces`, Secrets by name in those namespaces only.
async fn reads_secrets_only_where_opted_in(op: &Client, release: &Release, n: &str, other: &str) {
    // Opt-in Secrets: get, and the by-name watch the operator uses, in the listed namespace
    // only.
    release.upgrade(
        &chart_dir(),
        &[
            "replicaCount=1",
            &format!("rbac.secretNamespaces={{{}}}", other),
        ],
    );
    wait_for(
        Duration::from_secs(20),
        "get on Secrets in the opted-in namespace",
        async || {
            Api::<Secret>::namespaced(op.clone(), other)
                .get("prometheus-token")
                .await
                .ok()
        },
    )
    .await;
    must(
        "list Secrets by name in the opted-in namespace (its watch lists first)",
        Api::<Secret>::namespaced(op.clone(), other)
            .list(&ListParams::default().fields("metadata.name=prometheus-token"))
            .await,
    );
    must_not(
        "get a Secret outside the opted-in namespaces",
        Api::<Secret>::namespaced(op.clone(), n)
            .get("prometheus-token")
            .await,
    );
    must_not(
        "list Secrets cluster-wide",
        Api::<Secret>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
}

/// With `rbac.secretNames`, the named Secrets only, by the list and watch the operator uses.
async fn reads_named_secrets_only(op: &Client, release: &Release, other: &str) {
    release.upgrade(
        &chart_dir(),
        &[
            "replicaCount=1",
            &format!("rbac.secretNames.{other}={{prometheus-token}}"),
        ],
    );
    let secrets = Api::<Secret>::namespaced(op.clone(), other);
    let by_name = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    // The upgrade replaces the namespace-wide Role (no more `get`) with the named one.
    wait_for(
        Duration::from_secs(20),
        "get on Secrets to give way to the named Role",
        async || (status_code(&secrets.get("prometheus-token").await) == Some(403)).then_some(()),
    )
    .await;
    must(
        "list the named Secret by name (its watch lists first)",
        secrets.list(&by_name("prometheus-token")).await,
    );
    must(
        "watch the named Secret by name",
        can_watch_named(&secrets, "prometheus-token").await,
    );
    must_not(
        "list another Secret by name",
        secrets.list(&by_name("unnamed")).await,
    );
    must_not(
        "list the namespace's Secrets",
        secrets.list(&ListParams::default()).await,
    );
}

/// With `watchNamespace`, a Role in that namespace instead of the ClusterRole.
async fn watches_one_namespace_with_a_role(
    op: &Client,
    admin: &Client,
    release: &Release,
    n: &str,
    other: &str,
) {
    // watchNamespace: a Role in that namespace replaces the ClusterRole.
    let deploys: Api<Deployment> = Api::namespaced(op.clone(), n);
    release.upgrade(
        &chart_dir(),
        &["replicaCount=1", &format!("watchNamespace={n}")],
    );
    wait_for(
        Duration::from_secs(20),
        "the ClusterRole to give way to a Role",
        async || {
            (status_code(
                &Api::<Deployment>::all(op.clone())
                    .list(&ListParams::default())
                    .await,
            ) == Some(403))
            .then_some(())
        },
    )
    .await;
    must(
        "list Deployments in the watched namespace",
        deploys.list(&ListParams::default()).await,
    );
    must(
        "watch Deployments in the watched namespace",
        can_watch(&deploys).await,
    );
    must_not(
        "list Deployments in another namespace",
        Api::<Deployment>::namespaced(op.clone(), other)
            .list(&ListParams::default())
            .await,
    );
    must_not(
        "get a Secret once the opt-in is gone",
        Api::<Secret>::namespaced(op.clone(), other)
            .get("prometheus-token")
            .await,
    );
    let rb: Option<RoleBinding> = Api::namespaced(admin.clone(), n)
        .get_opt(&release.fullname())
        .await
        .expect("get");
    assert!(rb.is_some(), "the RoleBinding in the watched namespace");

    // watchNamespaces: a Role in each listed namespace and nothing elsewhere.
    let third = test_namespace(admin, "chart-rbac-third").await;
    release.upgrade(
        &chart_dir(),
        &[
            "replicaCount=1",
            &format!("watchNamespaces={{{n},{other}}}"),
        ],
    );
    let in_other: Api<Deployment> = Api::namespaced(op.clone(), other);
    wait_for(
        Duration::from_secs(20),
        "a Role in the second listed namespace",
        async || in_other.list(&ListParams::default()).await.ok(),
    )
    .await;
    must(
        "list Deployments in the first listed namespace",
        deploys.list(&ListParams::default()).await,
    );
    must(
        "watch Deployments in the second listed namespace",
        can_watch(&in_other).await,
    );
    must_not(
        "list Deployments in a namespace not listed",
        Api::<Deployment>::namespaced(op.clone(), &third.name)
            .list(&ListParams::default())
            .await,
    );
    must_not(
        "list Deployments cluster-wide",
        Api::<Deployment>::all(op.clone())
            .list(&ListParams::default())
            .await,
    );
    // Its Deployment names the list for the operator.
    let chart_deploy: Deployment = Api::namespaced(admin.clone(), &release.namespace)
        .get(&release.fullname())
        .await
        .expect("the chart's Deployment");
    let args = chart_deploy
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].args.clone().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        args.contains(&format!("--namespace={n},{other}")),
        "{args:?}"
    );
    third.cleanup().await;
}
