//! Issue #14, points 3 and 6: rollguard acts only on what it made. A run planted under the
//! name rollguard predicts is never executed (and its Prometheus address never asked), and a
//! `<name>-canary` Deployment or `<svc>-stable` Service rollguard does not own is never
//! deleted or overwritten: the run holds and names it.
//!
//! Run: `tests/cluster/cluster.sh up && source .cluster/env && cargo test --features e2e --test e2e ownership::`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rollguard::api::run::RolloutRun;
use rollguard::names::{RUN_RECORD, run_name};
use rollguard::plan::template_hash;
use serde_json::{Value, json};

use crate::support::procs::start_operator;
use crate::support::world::{APP, ERRORS, REQUESTS, Router, World, run_phase};
use crate::support::{self, create};

/// A namespace the test copy of the run guard leaves out (`support::admission::UNGUARDED`):
/// what a cluster without the chart's guard looks like.
async fn unguarded(client: &Client, prefix: &str) -> support::TestNamespace {
    let ns = support::test_namespace(client, prefix).await;
    support::label_namespace(
        client,
        &ns.name,
        support::admission::UNGUARDED,
        Some("true"),
    )
    .await;
    ns
}

/// A ServiceAccount bound to a Role with exactly `rules`, and a client with its token.
async fn restricted(client: &Client, ns: &str, name: &str, rules: Value) -> Client {
    let token = support::restricted_service_account(client, ns, name, rules).await;
    support::client_with_token(&token).await
}

/// A TCP listener on loopback that counts the connections made to it (and answers none).
async fn recording_listener() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("an address");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (format!("http://{addr}"), hits)
}

const NEW_TEMPLATE: &str = "example.com/web:2";

/// Someone with `create rolloutruns` (and `get deployments`, to copy the owner reference) plants
/// a run under the name rollguard will use for the next template, with a lax plan and a
/// Prometheus address of theirs, before the template lands, while the operator is down (a
/// restart, an upgrade: it then sees the planted run and the new template together, as it
/// would if the plant came just before the change). rollguard does not execute it: its own run
/// (under another name) takes samples from the real Prometheus while not one connection
/// reaches the planted address, the planted run is never written to or deleted, and a Warning
/// Event names it.
#[tokio::test]
async fn a_run_planted_under_the_predicted_name_is_never_executed() {
    let admin = support::client().await;
    let ns = unguarded(&admin, "planted").await;
    let mut w = World::builder("planted").namespace(ns).build().await;
    let n = w.n().to_string();
    let (foreign, hits) = recording_listener().await;
    // The listener records what reaches it (a positive control for the count below).
    let _ = reqwest::get(&foreign).await;
    support::wait_for(
        Duration::from_secs(5),
        "the control connection",
        async || (hits.load(Ordering::SeqCst) == 1).then_some(()),
    )
    .await;
    let mallory = restricted(
        &admin,
        &n,
        "mallory",
        json!([
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
            {"apiGroups": ["rollguard.dev"], "resources": ["rolloutruns"], "verbs": ["create"]},
        ]),
    )
    .await;
    // The revision the next template will have, as the API server will store it.
    let template_patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": NEW_TEMPLATE}]}}}});
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let web = Api::<Deployment>::namespaced(mallory.clone(), &n)
        .get(APP)
        .await
        .expect("mallory reads the Deployment");
    let predicted = w
        .deployments()
        .patch(APP, &dry, &Patch::Strategic(&template_patch))
        .await
        .expect("a dry run of the new template");
    let revision = template_hash(&predicted.spec.expect("a spec").template);
    let name = run_name(APP, &revision, 1);
    let planted: RolloutRun = serde_json::from_value(json!({
        "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
        "metadata": {
            "name": name,
            "labels": {"rollguard.dev/deployment": APP, "rollguard.dev/policy": "shop"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": APP,
                                  "uid": web.uid().expect("a uid"), "controller": true}],
        },
        "spec": {
            "deployment": APP, "policy": "shop",
            "stableRevision": web.annotations().get("rollguard.dev/stable-revision").cloned().unwrap_or_default(),
            "canaryRevision": revision,
            "tier": {"name": "standard", "reason": "matched by default"},
            "plan": {"name": "standard", "steps": [{"weight": "50%", "pause": "1s"}], "maxErrorRate": "100%"},
            "analysis": {"interval": "1s", "prometheus": {"address": foreign, "timeout": "1s"},
                         "requests": REQUESTS, "errors": ERRORS},
            "router": "replicas",
        }
    }))
    .expect("a run");
    w.op_mut().kill9();
    Api::<RolloutRun>::namespaced(mallory, &n)
        .create(&PostParams::default(), &planted)
        .await
        .expect("mallory's create is allowed by RBAC, and no guard is in this namespace");
    w.deployments()
        .patch(
            APP,
            &PatchParams::default(),
            &Patch::Strategic(&template_patch),
        )
        .await
        .expect("the new template");
    w.set_op(start_operator(&n).await);
    // rollguard's own run samples the real Prometheus: a window in which the planted plan,
    // were it executed, would have asked the planted address every second.
    let ours = w
        .wait(
            "rollguard's own run to take 4 samples",
            Duration::from_secs(90),
            async || {
                let runs = w.runs().list(&Default::default()).await.ok()?.items;
                runs.into_iter().find(|r| {
                    r.name_any() != name && r.status.as_ref().is_some_and(|s| s.sample_count >= 4)
                })
            },
        )
        .await;
    assert_eq!(ours.spec.canary_revision, revision, "the same revision");
    assert_eq!(
        ours.spec.plan.max_error_rate, "5%",
        "the policy's plan, not the planted one"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "nothing but the control connection reached the planted Prometheus address"
    );
    let still = w
        .runs()
        .get(&name)
        .await
        .expect("the planted run is left in place");
    assert_eq!(
        still.status, None,
        "rollguard never wrote the planted run's status"
    );
    assert_eq!(run_phase(&still), rollguard::api::run::Phase::Progressing);
    let d = w.deployment().await;
    assert_eq!(
        d.annotations().get(RUN_RECORD),
        Some(&format!("{}/{}", ours.name_any(), ours.uid().expect("uid"))),
        "the Deployment records rollguard's own run"
    );
    let events = w.events("UntrustedRun").await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.note.as_deref().is_some_and(
                |m| m.contains(&format!("RolloutRun {name} was not started by rollguard"))
            )),
        "a Warning Event names the planted run: {events:?}"
    );
    // The canary is rollguard's, sized by the policy's plan (10% then 50% of 3), never the
    // planted plan's.
    if let Some(c) = w.canary().await {
        assert!(
            rollguard::ownership::owned(&c.metadata, &d, Some("canary")).is_ok(),
            "{c:?}"
        );
    }
    w.finish().await;
}

fn foreign_canary() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web-canary", "labels": {"app": "legacy"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "legacy"}},
            "template": {"metadata": {"labels": {"app": "legacy"}},
                         "spec": {"containers": [{"name": "app", "image": "example.com/legacy:1"}]}}
        }
    })
}

fn foreign_stable_service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web-stable", "labels": {"app": "legacy"}},
        "spec": {"selector": {"app": "legacy"}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

/// What must not change: everything but what the API server's own controllers write
/// (`status`, and with it `resourceVersion` and the status manager's managedFields entry).
fn as_written(mut v: Value) -> Value {
    v.as_object_mut().map(|o| o.remove("status"));
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        if let Some(Value::Array(fields)) = m.get_mut("managedFields") {
            fields.retain(|f| f["subresource"] != "status");
            for f in fields.iter_mut() {
                f.as_object_mut().map(|o| o.remove("time"));
            }
        }
    }
    v
}

/// A `web-canary` Deployment and a `web-stable` Service that are not rollguard's exist before
/// the Deployment is governed (the Gateway API router writes both names). Neither is deleted
/// or written: between runs, or once a run starts, which then holds with a condition and a
/// Warning Event naming both; as each is removed, the hold names what is left, and once both
/// are gone the run goes on with rollguard's own objects.
#[tokio::test]
async fn objects_rollguard_does_not_own_are_left_alone_and_named() {
    let admin = support::client().await;
    let ns = support::test_namespace(&admin, "notowned").await;
    let n = ns.name.clone();
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &n);
    create(&deployments, foreign_canary()).await;
    // As it stands once the Deployment controller has seen it (it adds its revision annotation).
    let theirs_d = support::wait_for(
        Duration::from_secs(30),
        "their web-canary to settle",
        async || {
            let d = deployments.get("web-canary").await.ok()?;
            let seen = d.status.as_ref()?.observed_generation == d.metadata.generation;
            (seen
                && d.annotations()
                    .contains_key("deployment.kubernetes.io/revision"))
            .then_some(d)
        },
    )
    .await;
    let theirs_s: Service = create(
        &Api::<Service>::namespaced(admin.clone(), &n),
        foreign_stable_service(),
    )
    .await;
    let w = World::builder("notowned")
        .namespace(ns)
        .router(Router::Gateway)
        .build()
        .await;
    let services: Api<Service> = Api::namespaced(w.client.clone(), &n);
    let unchanged = async || {
        let d = w.canary().await.expect("their web-canary is still there");
        let s = services
            .get("web-stable")
            .await
            .expect("their web-stable is still there");
        assert_eq!(d.uid(), theirs_d.uid(), "the same web-canary");
        assert_eq!(
            as_written(serde_json::to_value(&d).expect("json")),
            as_written(serde_json::to_value(&theirs_d).expect("json")),
            "web-canary as its owner wrote it"
        );
        assert_eq!(
            serde_json::to_value(&s).expect("json"),
            serde_json::to_value(&theirs_s).expect("json"),
            "web-stable byte for byte (resourceVersion included)"
        );
    };
    // Adopted (between runs the route and routing Services are written): untouched.
    unchanged().await;
    w.new_template().await;
    let held = w
        .wait(
            "the run to hold, naming both objects",
            Duration::from_secs(30),
            async || {
                let (r, c) = w.run_condition("Routing").await?;
                (c.status == "False"
                    && c.reason == "NotOwned"
                    && c.message
                        .contains("Deployment web-canary exists and is not rollguard's")
                    && c.message
                        .contains("Service web-stable exists and is not rollguard's"))
                .then_some(r)
            },
        )
        .await;
    let st = held.status.clone().expect("status");
    assert_eq!(st.step, 0);
    assert_eq!(st.sample_count, 0, "no analysis while held");
    assert_eq!(w.route_weights().await.1, 0, "the canary gets no traffic");
    let events = w.events("NotOwned").await;
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.note
                .as_deref()
                .is_some_and(|m| m.contains("Service web-stable"))),
        "a Warning Event names them: {events:?}"
    );
    unchanged().await;
    // Their Service goes: the hold now names only their Deployment, which the passes that saw
    // the change (and rewrote the condition) left alone too.
    services
        .delete("web-stable", &DeleteParams::default())
        .await
        .expect("deleting their Service");
    w.wait(
        "the hold to name only the Deployment",
        Duration::from_secs(30),
        async || {
            let (_, c) = w.run_condition("Routing").await?;
            (c.reason == "NotOwned"
                && c.message.contains("Deployment web-canary")
                && !c.message.contains("Service web-stable"))
            .then_some(())
        },
    )
    .await;
    let d = w.canary().await.expect("their web-canary is still there");
    assert_eq!(
        as_written(serde_json::to_value(&d).expect("json")),
        as_written(serde_json::to_value(&theirs_d).expect("json")),
        "web-canary as its owner wrote it"
    );
    // Their Deployment goes: the run goes on with rollguard's own canary and Services.
    w.deployments()
        .delete("web-canary", &DeleteParams::default())
        .await
        .expect("deleting their Deployment");
    let r = w
        .wait(
            "the run to sample its own canary",
            Duration::from_secs(60),
            async || {
                let r = w.run().await?;
                (r.status.as_ref()?.sample_count >= 1).then_some(r)
            },
        )
        .await;
    assert_eq!(r.name_any(), held.name_any());
    let gov = w.deployment().await;
    let canary = w.canary().await.expect("rollguard's canary");
    assert!(rollguard::ownership::owned(&canary.metadata, &gov, Some("canary")).is_ok());
    let stable = services
        .get("web-stable")
        .await
        .expect("rollguard's web-stable");
    assert!(rollguard::ownership::owned(&stable.metadata, &gov, None).is_ok());
    w.finish().await;
}
