//! Traffic routers: how a desired canary share becomes objects in the cluster. This module
//! builds those objects and patches (pure), and finds what a Deployment's traffic flows
//! through (its Service, and with the Gateway API router its HTTPRoutes). The controller
//! applies what it builds.

use std::collections::BTreeMap;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::quantity::Ratio;
use crate::names::DEPLOYMENT_LABEL;
use crate::names::{
    HTTPROUTE_ANNOTATION, ROLE_CANARY, ROLE_LABEL, SERVICE_ANNOTATION, canary_name,
    canary_service_name, stable_service_name,
};
use crate::plan::route_weights;

pub mod fight;

/// Why a Deployment's traffic cannot be routed; the run holds and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// CamelCase reason, e.g. `ServiceNotFound`.
    pub reason: String,
    /// For people: what is missing and what to do.
    pub message: String,
}

fn blocked(reason: &str, message: String) -> Blocked {
    Blocked {
        reason: reason.into(),
        message,
    }
}

/// The owner reference that ties what rollguard creates to the governed Deployment, so it
/// is garbage-collected with it.
pub fn owner_ref(d: &Deployment) -> Option<OwnerReference> {
    d.controller_owner_ref(&())
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Service that carries a Deployment's traffic: the one whose selector selects its
/// pods (named by the `rollguard.dev/service` annotation when several do). rollguard's own
/// `-stable`/`-canary` Services are never the answer.
pub fn find_service<'a>(d: &Deployment, services: &[&'a Service]) -> Result<&'a Service, Blocked> {
    let labels = pod_labels(d);
    let ours = |s: &Service| s.labels().contains_key(DEPLOYMENT_LABEL);
    let candidates: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|s| s.namespace() == d.namespace() && !ours(s))
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .is_some_and(|sel| selector_matches(sel, &labels))
        })
        .collect();
    if let Some(name) = d.annotations().get(SERVICE_ANNOTATION) {
        return candidates
            .into_iter()
            .find(|s| &s.name_any() == name)
            .ok_or_else(|| {
                blocked(
                    "ServiceNotFound",
                    format!(
                        "the annotation {SERVICE_ANNOTATION}={name} names a Service that does not exist or does not select the Deployment's pods"
                    ),
                )
            });
    }
    match candidates.len() {
        0 => Err(blocked(
            "ServiceNotFound",
            format!(
                "no Service in namespace {} selects the pods of Deployment {}; create one (traffic stays on the stable pods until then)",
                d.namespace().unwrap_or_default(),
                d.name_any()
            ),
        )),
        1 => Ok(candidates[0]),
        _ => {
            let names: Vec<String> = candidates.iter().map(|s| s.name_any()).collect();
            Err(blocked(
                "AmbiguousService",
                format!(
                    "several Services select the pods of Deployment {}: {}; name one with the annotation {SERVICE_ANNOTATION}",
                    d.name_any(),
                    names.join(", ")
                ),
            ))
        }
    }
}

/// A backendRef rollguard writes: where in the route it is and which weight it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSlot {
    pub rule: usize,
    pub backend: usize,
    pub name: String,
    pub current: Option<i32>,
}

/// A governed HTTPRoute rule: the stable and canary backendRefs of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTarget {
    pub route: String,
    pub stable: WeightSlot,
    pub canary: WeightSlot,
}

/// Finds the HTTPRoute rules that reference both `<service>-stable` and `<service>-canary`
/// (only routes named by `rollguard.dev/httproute` when the Deployment has it).
pub fn find_routes(
    d: &Deployment,
    service: &str,
    routes: &[&HttpRoute],
) -> Result<Vec<RouteTarget>, Blocked> {
    let stable = stable_service_name(service);
    let canary = canary_service_name(service);
    let only = d.annotations().get(HTTPROUTE_ANNOTATION);
    let mut out = Vec::new();
    for r in routes.iter().filter(|r| r.namespace() == d.namespace()) {
        if only.is_some_and(|n| n != &r.name_any()) {
            continue;
        }
        for (ri, rule) in r.spec.rules.iter().flatten().enumerate() {
            let refs = rule.backend_refs.as_deref().unwrap_or_default();
            let slot = |name: &str| {
                refs.iter().enumerate().find_map(|(bi, b)| {
                    let is_service = b.kind.as_deref().unwrap_or("Service") == "Service"
                        && b.group.as_deref().unwrap_or("").is_empty();
                    let same_ns = b.namespace.is_none() || b.namespace == r.namespace();
                    (is_service && same_ns && b.name == name).then(|| WeightSlot {
                        rule: ri,
                        backend: bi,
                        name: name.to_string(),
                        current: b.weight,
                    })
                })
            };
            if let (Some(s), Some(c)) = (slot(&stable), slot(&canary)) {
                out.push(RouteTarget {
                    route: r.name_any(),
                    stable: s,
                    canary: c,
                });
            }
        }
    }
    if out.is_empty() {
        let hint = match only {
            Some(n) => {
                format!("the HTTPRoute {n} (named by {HTTPROUTE_ANNOTATION}) has no rule that")
            }
            None => format!(
                "no HTTPRoute in namespace {} has a rule that",
                d.namespace().unwrap_or_default()
            ),
        };
        return Err(blocked(
            "HTTPRouteNotFound",
            format!(
                "{hint} lists both backendRefs {stable} and {canary}; add them (traffic stays on stable until then)"
            ),
        ));
    }
    Ok(out)
}

/// A JSON patch that sets the weights of one route target, guarded by `test` operations so
/// it fails instead of writing the wrong backend if the rule changed since it was read.
/// HTTPRoute `rules` is an atomic list, so server-side apply cannot own just the weights.
pub fn weight_patch(t: &RouteTarget, weight: Ratio) -> Value {
    let (s, c) = route_weights(weight);
    let path =
        |slot: &WeightSlot| format!("/spec/rules/{}/backendRefs/{}", slot.rule, slot.backend);
    let set = |slot: &WeightSlot, w: i32| {
        // `add` replaces an existing member and creates a missing one.
        json!({"op": "add", "path": format!("{}/weight", path(slot)), "value": w})
    };
    json!([
        {"op": "test", "path": format!("{}/name", path(&t.stable)), "value": t.stable.name},
        {"op": "test", "path": format!("{}/name", path(&t.canary)), "value": t.canary.name},
        set(&t.stable, s),
        set(&t.canary, c),
    ])
}

/// Whether a route target already has the weights for `weight` (compared as a share, so
/// `99:1` and `990:10` agree).
pub fn weights_match(t: &RouteTarget, weight: Ratio) -> bool {
    let (ws, wc) = route_weights(weight);
    // A missing weight means 1 in the Gateway API.
    let (s, c) = (
        t.stable.current.unwrap_or(1) as i64,
        t.canary.current.unwrap_or(1) as i64,
    );
    s * wc as i64 == c * ws as i64 && (s + c > 0)
}

/// The canary Deployment for a governed Deployment: its pod template plus the canary role
/// label, a selector that cannot overlap the stable pods' ReplicaSets' claims, and an owner
/// reference to the governed Deployment.
pub fn canary_deployment(d: &Deployment, replicas: i32) -> Option<Deployment> {
    let spec = d.spec.as_ref()?;
    let name = d.name_any();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(ROLE_LABEL.into(), ROLE_CANARY.into());
    labels.insert(DEPLOYMENT_LABEL.into(), name.clone());
    let mut match_labels = spec.selector.match_labels.clone().unwrap_or_default();
    match_labels.insert(ROLE_LABEL.into(), ROLE_CANARY.into());
    match_labels.insert(DEPLOYMENT_LABEL.into(), name.clone());
    Some(Deployment {
        metadata: ObjectMeta {
            name: Some(canary_name(&name)),
            namespace: d.namespace(),
            labels: Some(BTreeMap::from([
                (ROLE_LABEL.into(), ROLE_CANARY.into()),
                (DEPLOYMENT_LABEL.into(), name.clone()),
            ])),
            owner_references: owner_ref(d).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(match_labels),
                match_expressions: spec.selector.match_expressions.clone(),
            },
            template,
            strategy: spec.strategy.clone(),
            min_ready_seconds: spec.min_ready_seconds,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            revision_history_limit: Some(1),
            paused: None,
        }),
        status: None,
    })
}

/// The two Services the Gateway API router pins: `<service>-stable` selects the stable
/// pods (the user's selector plus the stable ReplicaSet's `pod-template-hash`) and
/// `<service>-canary` the canary's pods. Ports are the user Service's.
pub fn routing_services(
    d: &Deployment,
    user: &Service,
    stable_pod_template_hash: Option<&str>,
) -> (Service, Service) {
    let sel = user
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let ports: Vec<ServicePort> = user
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            node_port: None,
            ..p
        })
        .collect();
    let mk = |name: String, selector: BTreeMap<String, String>| Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: d.namespace(),
            labels: Some(BTreeMap::from([(DEPLOYMENT_LABEL.into(), d.name_any())])),
            owner_references: owner_ref(d).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(ports.clone()),
            type_: Some("ClusterIP".into()),
            ..Default::default()
        }),
        status: None,
    };
    let mut stable = sel.clone();
    if let Some(h) = stable_pod_template_hash {
        stable.insert("pod-template-hash".into(), h.into());
    }
    let mut canary = sel;
    canary.insert(ROLE_LABEL.into(), ROLE_CANARY.into());
    let name = user.name_any();
    (
        mk(stable_service_name(&name), stable),
        mk(canary_service_name(&name), canary),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quantity::parse_percent;
    use gateway_api::apis::standard::httproutes::{HttpRouteRules, HttpRouteRulesBackendRefs};
    use k8s_openapi::api::core::v1::PodTemplateSpec;

    fn deployment(name: &str, labels: &[(&str, &str)]) -> Deployment {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                uid: Some("uid-1".into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: None,
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn service(name: &str, selector: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(
                    selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn route(name: &str, backends: &[(&str, Option<i32>)]) -> HttpRoute {
        let mut r = HttpRoute::new(name, Default::default());
        r.metadata.namespace = Some("shop".into());
        r.spec.rules = Some(vec![
            HttpRouteRules::default(),
            HttpRouteRules {
                backend_refs: Some(
                    backends
                        .iter()
                        .map(|(n, w)| HttpRouteRulesBackendRefs {
                            name: n.to_string(),
                            weight: *w,
                            port: Some(80),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            },
        ]);
        r
    }

    #[test]
    fn the_service_is_found_by_selector_and_ambiguity_is_reported() {
        let d = deployment("web", &[("app", "web")]);
        let web = service("web", &[("app", "web")]);
        let other = service("other", &[("app", "other")]);
        let found = find_service(&d, &[&web, &other]).expect("found");
        assert_eq!(found.name_any(), "web");
        let none = find_service(&d, &[&other]).expect_err("none");
        assert_eq!(none.reason, "ServiceNotFound");
        let twin = service("web-admin", &[("app", "web")]);
        let amb = find_service(&d, &[&web, &twin]).expect_err("ambiguous");
        assert_eq!(amb.reason, "AmbiguousService");
        assert!(amb.message.contains("web, web-admin"), "{}", amb.message);
        let mut named = d.clone();
        named
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(SERVICE_ANNOTATION.into(), "web-admin".into());
        assert_eq!(
            find_service(&named, &[&web, &twin])
                .expect("named")
                .name_any(),
            "web-admin"
        );
        // An empty selector selects nothing (as Kubernetes treats a selector-less Service).
        let empty = service("empty", &[]);
        assert!(find_service(&d, &[&empty]).is_err());
    }

    #[test]
    fn routes_are_found_by_their_backend_refs_and_patched_exactly() {
        let d = deployment("web", &[("app", "web")]);
        let r = route("r", &[("web-stable", Some(100)), ("web-canary", None)]);
        let unrelated = route("u", &[("api-stable", Some(1)), ("api-canary", Some(1))]);
        let t = find_routes(&d, "web", &[&r, &unrelated]).expect("found");
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].stable.rule, t[0].stable.backend, t[0].canary.backend),
            (1, 0, 1)
        );
        let patch = weight_patch(&t[0], parse_percent("0.5%").expect("pct"));
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/spec/rules/1/backendRefs/0/name", "value": "web-stable"},
                {"op": "test", "path": "/spec/rules/1/backendRefs/1/name", "value": "web-canary"},
                {"op": "add", "path": "/spec/rules/1/backendRefs/0/weight", "value": 199},
                {"op": "add", "path": "/spec/rules/1/backendRefs/1/weight", "value": 1},
            ])
        );
        assert!(
            !weights_match(&t[0], parse_percent("0%").expect("pct")),
            "missing weight is 1"
        );
        let pinned = route("r", &[("web-stable", Some(990)), ("web-canary", Some(10))]);
        let t = find_routes(&d, "web", &[&pinned]).expect("found");
        assert!(weights_match(&t[0], parse_percent("1%").expect("pct")));
        let missing = find_routes(&d, "web", &[&unrelated]).expect_err("missing");
        assert_eq!(missing.reason, "HTTPRouteNotFound");
        assert!(
            missing.message.contains("web-stable and web-canary"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn the_canary_copies_the_template_and_never_overlaps_the_stable_selector() {
        let d = deployment("web", &[("app", "web")]);
        let c = canary_deployment(&d, 2).expect("canary");
        assert_eq!(c.name_any(), "web-canary");
        let spec = c.spec.expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let sel = spec.selector.match_labels.expect("labels");
        assert_eq!(sel.get(ROLE_LABEL).map(String::as_str), Some(ROLE_CANARY));
        let tl = spec
            .template
            .metadata
            .and_then(|m| m.labels)
            .expect("labels");
        assert!(
            selector_matches(&sel, &tl),
            "the canary selects its own pods"
        );
        assert_eq!(c.metadata.owner_references.expect("owner")[0].name, "web");
        let (stable, canary) =
            routing_services(&d, &service("web", &[("app", "web")]), Some("abc"));
        let ss = stable.spec.and_then(|s| s.selector).expect("sel");
        assert_eq!(ss.get("pod-template-hash").map(String::as_str), Some("abc"));
        assert!(
            !selector_matches(&ss, &tl),
            "the stable Service never selects canary pods"
        );
        let cs = canary.spec.and_then(|s| s.selector).expect("sel");
        assert!(selector_matches(&cs, &tl));
    }
}
