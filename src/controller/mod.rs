//! The operator: watches feed in-memory stores, a Deployment controller drives runs from
//! them, and a policy controller writes policy status and releases Deployments when a policy
//! goes away. Only watches: nothing is polled; timers come from the run machine's `wake_at`.

mod apply;
mod deployment;
mod failpoint;
mod gate;
pub mod leader;
pub mod lenient;
mod observe;
mod outcome;
mod policy;

/// What the operator checks on a policy beyond the API server's validation (templates, plans).
pub use policy::validate as policy_validate;
pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, future};
use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use crate::analysis::prometheus;
use crate::api::{RolloutPolicy, RolloutRun};
use crate::names::DEPLOYMENT_LABEL;
use crate::names::GOVERNED_BY;
use crate::telemetry::{Health, Metrics};

/// Deployment reconciles in flight at once. Unbounded, adopting 1000 Deployments started
/// 1000 reconciles together: their requests queued in the API server (a reconcile took
/// seconds) and their buffers set the operator's memory high-water mark. 64 keeps 50
/// simultaneous runs moving while a burst waits its turn in the controller's queue; the
/// step delay metric includes that wait.
pub const MAX_CONCURRENT_RECONCILES: u16 = 64;

mod context;
mod watch;

pub(crate) use context::kube_err;
pub use context::{Config, Context, Error, Stores, check_crds, client, identify, instance_client};
use context::{crd_present, scoped};
use watch::{
    Synced, policy_targets, readable_watch, service_targets, skip_undecodable, slim,
    spec_or_deletion, tokio_stream_from,
};

pub use crate::selection::is_canary;

/// Runs the operator over `namespaces` (all namespaces when empty) until the process is asked
/// to stop. Several namespaces get one set of watches and controllers each, side by side in
/// this process (a watch serves one namespace or all, and a cache is filled by one watch):
/// each governs its namespace exactly as an operator watching only it would, `health` is
/// ready once every one of them is, and the first error ends them all.
pub async fn run_in(
    client: Client,
    config: Config,
    namespaces: &[String],
    metrics: Metrics,
    health: Health,
) -> Result<(), Error> {
    if namespaces.len() <= 1 {
        let config = Config {
            namespace: namespaces.first().cloned(),
            ..config
        };
        return run(client, config, metrics, health).await;
    }
    let each: Vec<Health> = namespaces.iter().map(|_| Health::default()).collect();
    let all = each.clone();
    tokio::spawn(async move {
        while !all.iter().all(Health::is_ready) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        health.set_ready();
    });
    let runs = namespaces.iter().zip(each).map(|(ns, h)| {
        let config = Config {
            namespace: Some(ns.clone()),
            ..config.clone()
        };
        run(client.clone(), config, metrics.clone(), h)
    });
    future::try_join_all(runs).await.map(|_| ())
}

/// Runs the operator in `config.namespace` (all namespaces when `None`) until the process is
/// asked to stop.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Metrics,
    health: Health,
) -> Result<(), Error> {
    let ns = config.namespace.clone();
    check_crds(&client, &ns).await?;
    let routes_api: Api<HttpRoute> = scoped(&client, &ns);
    let have_routes = crd_present(&routes_api).await.unwrap_or(false);
    if !have_routes {
        tracing::info!(
            "the Gateway API HTTPRoute CRD is not installed; the gatewayAPI router is unavailable"
        );
    }

    let wc = watcher::Config::default().any_semantic();
    // Ready once every watch has listed its objects. (Awaiting the stores' own readiness from
    // a second task would steal the controller's wake-up: the store signals one waiter.)
    let all_synced = Health::default();
    let synced = Synced::new(
        if have_routes { 7 } else { 6 },
        vec![health.clone(), all_synced.clone()],
    );
    let (deployments, deploy_writer) = reflector::store::<Deployment>();
    let (runs, run_writer) = reflector::store::<RolloutRun>();
    let (policies, policy_writer) = reflector::store::<RolloutPolicy>();
    let (services, svc_writer) = reflector::store::<Service>();
    let (replicasets, rs_writer) = reflector::store::<PartialObjectMeta<ReplicaSet>>();
    let (endpoint_slices, eps_writer) = reflector::store::<EndpointSlice>();
    let (routes, route_writer) = if have_routes {
        let (r, w) = reflector::store::<HttpRoute>();
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let stores = Stores {
        deployments: deployments.clone(),
        runs: runs.clone(),
        policies: policies.clone(),
        services: services.clone(),
        routes: routes.clone(),
        replicasets: replicasets.clone(),
        endpoint_slices: endpoint_slices.clone(),
    };

    let (refresh_tx, refresh_rx) = mpsc::unbounded_channel::<ObjectRef<RolloutPolicy>>();
    let prom = prometheus::Client::new(None, false).map_err(Error::Invalid)?;
    let reporter = Reporter {
        controller: "rollguard".into(),
        instance: config.instance.clone(),
    };
    let secrets = Arc::new(secrets::Secrets::new(client.clone(), prom.clone()));
    let notifier =
        crate::notify::Notifier::new(secrets.clone(), metrics.clone(), config.notification_queue)
            .map_err(Error::Invalid)?;
    let ctx = Arc::new(Context {
        client: client.clone(),
        config: config.clone(),
        stores: stores.clone(),
        prometheus: prom.clone(),
        secrets,
        notifier,
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        policy_refresh: refresh_tx,
        synced: all_synced,
        written: Default::default(),
        announced: Default::default(),
        gates: Default::default(),
    });

    // Deployments (governed and canaries) drive the Deployment controller; a canary's events
    // wake its governed Deployment.
    let dstore = deployments.clone();
    let deploy_stream = watcher(scoped::<Deployment>(&client, &ns), wc.clone())
        .default_backoff()
        .modify(slim::<Deployment>)
        .reflect(deploy_writer)
        .inspect_ok(synced.watch("deployments"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("Deployment", r)))
        .map_ok(move |d| {
            if is_canary(&d)
                && let Some(parent) = d.labels().get(DEPLOYMENT_LABEL)
                && let Some(p) =
                    dstore.get(&ObjectRef::new(parent).within(&d.namespace().unwrap_or_default()))
            {
                return (*p).clone();
            }
            d
        });
    let run_stream = readable_watch::<RolloutRun>(&client, &ns, wc.clone(), &metrics)
        .modify(slim::<RolloutRun>)
        .reflect(run_writer)
        .inspect_ok(synced.watch("rolloutruns"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutRun", r)));
    // Only a policy's spec or its deletion concerns its Deployments: its status (which the
    // policy controller rewrites as Deployments are adopted and runs start and end) would
    // wake every Deployment it selects on each write.
    let policy_stream = readable_watch::<RolloutPolicy>(&client, &ns, wc.clone(), &metrics)
        .modify(slim::<RolloutPolicy>)
        .reflect(policy_writer)
        .inspect_ok(synced.watch("rolloutpolicies"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutPolicy", r)))
        .predicate_filter(spec_or_deletion, Default::default());
    let svc_stream = watcher(scoped::<Service>(&client, &ns), wc.clone())
        .default_backoff()
        .modify(slim::<Service>)
        .reflect(svc_writer)
        .inspect_ok(synced.watch("services"))
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("Service", r)));
    let rs_stream = watcher(
        scoped::<PartialObjectMeta<ReplicaSet>>(&client, &ns),
        wc.clone(),
    )
    .default_backoff()
    .modify(slim::<PartialObjectMeta<ReplicaSet>>)
    .reflect(rs_writer)
    .inspect_ok(synced.watch("replicasets"))
    .touched_objects()
    .filter_map(|r| future::ready(skip_undecodable("ReplicaSet", r)));

    // The routing Services' EndpointSlices, which carry the Deployment's label: a slice starts
    // only once the gateway can route to the canary's pods (docs/routers.md).
    let eps_stream = watcher(
        scoped::<EndpointSlice>(&client, &ns),
        wc.clone().labels(DEPLOYMENT_LABEL),
    )
    .default_backoff()
    .modify(slim::<EndpointSlice>)
    .reflect(eps_writer)
    .inspect_ok(synced.watch("endpointslices"))
    .touched_objects()
    .filter_map(|r| future::ready(skip_undecodable("EndpointSlice", r)));

    let d1 = deployments.clone();
    let d2 = deployments.clone();
    let d3 = deployments.clone();
    let mut deploy_ctl = Controller::for_stream(deploy_stream, deployments.clone())
        .with_config(controller::Config::default().concurrency(MAX_CONCURRENT_RECONCILES))
        .watches_stream(run_stream, |r: RolloutRun| {
            Some(ObjectRef::new(&r.spec.deployment).within(&r.namespace().unwrap_or_default()))
        })
        .watches_stream(policy_stream, move |p: RolloutPolicy| {
            policy_targets(&d1, &p)
        })
        .watches_stream(svc_stream, move |s: Service| service_targets(&d2, &s))
        .watches_stream(rs_stream, |rs: PartialObjectMeta<ReplicaSet>| {
            rs.owner_references()
                .iter()
                .find(|o| o.kind == "Deployment")
                .map(|o| ObjectRef::new(&o.name).within(&rs.namespace().unwrap_or_default()))
        })
        .watches_stream(eps_stream, |s: EndpointSlice| {
            let d = s.labels().get(DEPLOYMENT_LABEL)?;
            Some(ObjectRef::new(d).within(&s.namespace().unwrap_or_default()))
        });
    if let Some(w) = route_writer {
        let route_stream = watcher(routes_api, wc.clone())
            .default_backoff()
            .modify(slim::<HttpRoute>)
            .reflect(w)
            .inspect_ok(synced.watch("httproutes"))
            .touched_objects()
            .filter_map(|r| future::ready(skip_undecodable("HTTPRoute", r)));
        deploy_ctl = deploy_ctl.watches_stream(route_stream, move |r: HttpRoute| {
            let ns = r.namespace().unwrap_or_default();
            d3.state()
                .into_iter()
                .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                .filter(|d| d.annotations().contains_key(GOVERNED_BY))
                .map(|d| ObjectRef::from_obj(&*d))
                .collect::<Vec<_>>()
        });
    }

    // The policy controller watches policies its own way too, unreadable ones left out.
    let (policy_ctl_store, policy_ctl_writer) = reflector::store::<RolloutPolicy>();
    let policy_ctl_stream = readable_watch::<RolloutPolicy>(&client, &ns, wc, &metrics)
        .modify(slim::<RolloutPolicy>)
        .reflect(policy_ctl_writer)
        .touched_objects()
        .filter_map(|r| future::ready(skip_undecodable("RolloutPolicy", r)));
    let policy_ctl = Controller::for_stream(policy_ctl_stream, policy_ctl_store)
        .with_config(controller::Config::default().debounce(Duration::from_millis(300)))
        .reconcile_on(tokio_stream_from(refresh_rx))
        .shutdown_on_signal()
        .run(policy::reconcile, policy::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    let deploy_ctl = deploy_ctl
        .shutdown_on_signal()
        .run(deployment::reconcile, deployment::error_policy, ctx.clone())
        .for_each(|_| future::ready(()));
    tokio::join!(policy_ctl, deploy_ctl);
    Ok(())
}
