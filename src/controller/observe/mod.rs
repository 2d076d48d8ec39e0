//! Observe, the first step of the Deployment reconciler: what the watch caches hold about one
//! governed Deployment (its canary, ReplicaSets, Services, HTTPRoutes), read once into a
//! [`Snapshot`], and the run machine's [`World`] worked out from it without I/O.

mod canary;

use std::sync::Arc;

use gateway_api::apis::standard::httproutes::HttpRoute;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;

pub use canary::{CanarySight, earlier_canary, newest_pod_template_hash};

use super::Stores;
use crate::governance;
use crate::names::{SERVICE_NAME_LABEL, canary_name, canary_service_name, stable_service_name};
use crate::ownership::{self, Foreign};
use crate::run::{CanaryObserved, Measurement, Router, World};
use crate::traffic::{self, Blocked, RouteTarget};

/// What the caches hold about one governed Deployment, shared with the caches (not copied).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The object named `<name>-canary`, whatever its revision or state.
    pub canary: Option<Arc<Deployment>>,
    /// The ReplicaSets of the Deployment's namespace (metadata only).
    pub replicasets: Vec<Arc<PartialObjectMeta<ReplicaSet>>>,
    /// The Services of the Deployment's namespace.
    pub services: Vec<Arc<Service>>,
    /// The HTTPRoutes of the namespace; `None` when the HTTPRoute CRD is not installed.
    pub routes: Option<Vec<Arc<HttpRoute>>>,
    /// The EndpointSlices of the namespace's routing Services.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
}

/// What the router found: the user's Service and the route rules that send to it.
#[derive(Debug, Clone)]
pub struct Routing {
    pub service: Service,
    pub routes: Vec<RouteTarget>,
}

/// The `pod-template-hash` each side runs, for `{{revision}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revisions {
    pub canary: Option<String>,
    pub stable: Option<String>,
}

impl Snapshot {
    /// Reads the caches (the only step here that looks at them).
    pub fn read(stores: &Stores, d: &Deployment) -> Snapshot {
        let ns = d.namespace();
        let in_ns = |o: &Option<String>| *o == ns;
        Snapshot {
            canary: stores.deployments.get(
                &ObjectRef::new(&canary_name(&d.name_any())).within(ns.as_deref().unwrap_or("")),
            ),
            replicasets: stores
                .replicasets
                .state()
                .into_iter()
                .filter(|rs| in_ns(&rs.namespace()))
                .collect(),
            services: stores
                .services
                .state()
                .into_iter()
                .filter(|s| in_ns(&s.namespace()))
                .collect(),
            routes: stores.routes.as_ref().map(|r| {
                r.state()
                    .into_iter()
                    .filter(|r| in_ns(&r.namespace()))
                    .collect()
            }),
            endpoint_slices: stores
                .endpoint_slices
                .state()
                .into_iter()
                .filter(|s| in_ns(&s.namespace()))
                .collect(),
        }
    }

    /// The ready endpoints the EndpointSlices of Service `service` list, each pod once
    /// (an address family per slice). A gateway routes only to these: a weight on a Service
    /// without them is answered by the gateway itself (503).
    pub fn ready_endpoints(&self, service: &str) -> i32 {
        let mut seen = std::collections::BTreeSet::new();
        for slice in &self.endpoint_slices {
            if slice.labels().get(SERVICE_NAME_LABEL).map(String::as_str) != Some(service) {
                continue;
            }
            for e in slice.endpoints.iter().flatten() {
                // `ready` unset means ready (the EndpointSlice API); terminating is not.
                let ready = e
                    .conditions
                    .as_ref()
                    .is_none_or(|c| c.ready != Some(false) && c.terminating != Some(true));
                if ready {
                    let key = e
                        .target_ref
                        .as_ref()
                        .and_then(|t| t.name.clone())
                        .or_else(|| e.addresses.first().cloned())
                        .unwrap_or_default();
                    seen.insert(key);
                }
            }
        }
        seen.len() as i32
    }

    /// The ReplicaSets' metadata.
    pub fn replicaset_meta(&self) -> Vec<&ObjectMeta> {
        self.replicasets.iter().map(|rs| &rs.metadata).collect()
    }

    /// A cached Service of the namespace by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .map(|s| &**s)
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }

    /// The objects under names rollguard writes for `d` that are not its own: the canary
    /// Deployment and, given the user's Service (only the Gateway API router writes routing
    /// Services), its `-stable` and `-canary` Services.
    pub fn foreign(&self, d: &Deployment, service: Option<&Service>) -> Vec<Foreign> {
        let services: Vec<(String, Option<&Service>)> = service
            .map(|s| {
                let name = s.name_any();
                [stable_service_name(&name), canary_service_name(&name)]
                    .into_iter()
                    .map(|n| {
                        let have = self.service(&n);
                        (n, have)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ownership::foreign(d, self.canary.as_deref(), &services)
    }

    /// The canary as the run on `revision` sees it (`""`: no run, nothing is live).
    pub fn sight(&self, revision: &str) -> CanarySight<'_> {
        CanarySight::of(self.canary.as_deref(), revision)
    }

    /// The user's Service and, with the Gateway API router, the route rules to weight; or
    /// why traffic cannot be routed.
    pub fn routing(&self, d: &Deployment, router: Router) -> Result<Routing, Blocked> {
        let refs: Vec<&Service> = self.services.iter().map(|s| &**s).collect();
        let service = traffic::find_service(d, &refs)?.clone();
        let routes = match router {
            Router::Replicas => vec![],
            Router::GatewayApi => {
                let Some(all) = &self.routes else {
                    return Err(Blocked {
                        reason: "GatewayAPIMissing".into(),
                        message: "the policy uses the gatewayAPI router but the HTTPRoute CRD is not installed (or was installed after the operator started: restart it)".into(),
                    });
                };
                let refs: Vec<&HttpRoute> = all.iter().map(|r| &**r).collect();
                traffic::find_routes(d, &service.name_any(), &refs)?
            }
        };
        Ok(Routing { service, routes })
    }

    /// The `pod-template-hash` of the Deployment's newest ReplicaSet: its stable pods while
    /// it is paused, the new revision's pods once it rolls.
    pub fn newest_pod_template_hash(&self, d: &Deployment) -> Option<String> {
        newest_pod_template_hash(&d.uid()?, &self.replicaset_meta())
    }

    /// What the canary and stable pods run.
    pub fn revisions(&self, d: &Deployment, sight: &CanarySight) -> Revisions {
        let sets = self.replicaset_meta();
        Revisions {
            canary: sight
                .live
                .and_then(|c| c.uid())
                .and_then(|uid| newest_pod_template_hash(&uid, &sets)),
            stable: d
                .uid()
                .and_then(|uid| newest_pod_template_hash(&uid, &sets)),
        }
    }
}

/// What the run machine is told about the world this time round.
pub struct Seen<'a> {
    pub now: Timestamp,
    pub sight: &'a CanarySight<'a>,
    pub routing: &'a Result<Routing, Blocked>,
    pub measurement: Option<Measurement>,
    /// Why the Deployment is being released, when it is.
    pub released: Option<String>,
    /// The pause gate is in force in the Deployment's namespace.
    pub pause_gate: bool,
    /// Another field manager wrote the route's weights, as the live route shows.
    pub weight_fight: Option<crate::traffic::fight::Fight>,
    /// With the Gateway API router: the canary's ready endpoints behind `<service>-canary`.
    pub canary_endpoints: Option<i32>,
}

/// The run machine's input for a governed Deployment.
pub fn world(d: &Deployment, snapshot: &Snapshot, seen: Seen) -> World {
    World {
        now: seen.now,
        template_revision: governance::template_revision(d),
        stable_replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        rollout_complete: governance::rollout_complete(d),
        mid_rollout: governance::mid_rollout(d),
        canary: seen.sight.observed().map(|c| CanaryObserved {
            endpoints: seen.canary_endpoints,
            ..c
        }),
        earlier_canary: earlier_canary(seen.sight, &d.name_any(), &snapshot.replicaset_meta()),
        routing: seen
            .routing
            .as_ref()
            .map(|_| ())
            .map_err(|b| (b.reason.clone(), b.message.clone())),
        measurement: seen.measurement,
        released: seen.released,
        pause_gate: seen.pause_gate,
        weight_fight: seen.weight_fight,
    }
}

#[cfg(test)]
mod tests;
