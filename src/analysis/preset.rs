//! Presets: the `requests` and `errors` templates for common data planes, with the metric and
//! label names each project documents (sources in docs/analysis.md, "Presets"). An explicit
//! template in the policy overrides the preset's, field by field.
//!
//! Every errors template ends in `or vector(0)`: data planes create a 5xx series at the first
//! such response, and without the fallback a canary that never failed would have no errors
//! answer at all (no data, never promoted).
//!
//! The pods are told apart in one of two ways:
//! * by Deployment (`{{workload}}`: `<deployment>-canary` or `<deployment>`): Istio's
//!   `destination_workload`, Linkerd's `deployment`, OpenTelemetry's promoted
//!   `k8s.deployment.name`. These work with either router;
//! * by the backend Service (`{{service}}-{{track}}`: the Gateway API router's
//!   `<service>-canary` and `<service>-stable`): Envoy Gateway's per-backend clusters,
//!   NGINX's upstreams, Traefik's services. With the replicas router one Service fronts both
//!   tracks, so these are refused there ([`Preset::needs_backend_services`]).

use crate::api::policy::Preset;

/// A preset's templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Templates {
    pub requests: &'static str,
    pub errors: &'static str,
}

impl Preset {
    /// Every preset, in the order the docs list them.
    pub const ALL: [Preset; 6] = [
        Preset::Istio,
        Preset::EnvoyGateway,
        Preset::Linkerd,
        Preset::NginxGatewayFabricPlus,
        Preset::Traefik,
        Preset::OpenTelemetry,
    ];

    /// The name a policy gives it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Istio => "istio",
            Preset::EnvoyGateway => "envoyGateway",
            Preset::Linkerd => "linkerd",
            Preset::NginxGatewayFabricPlus => "nginxGatewayFabricPlus",
            Preset::Traefik => "traefik",
            Preset::OpenTelemetry => "openTelemetry",
        }
    }

    /// Whether its metrics name the backend Service rather than the Deployment, so that
    /// canary and stable are told apart only with the Gateway API router.
    pub fn needs_backend_services(self) -> bool {
        matches!(
            self,
            Preset::EnvoyGateway | Preset::NginxGatewayFabricPlus | Preset::Traefik
        )
    }

    /// The templates.
    pub fn templates(self) -> Templates {
        match self {
            // Istio's standard metrics, reported by the destination's sidecar.
            Preset::Istio => Templates {
                requests: r#"sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload="{{workload}}"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(istio_requests_total{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload="{{workload}}",response_code=~"5.."}[{{elapsed}}])) or vector(0)"#,
            },
            // Envoy's cluster stats; with the EnvoyProxy's mergeBackends every backend Service
            // has its own cluster, `service/<namespace>/<service>/<port>/http`.
            Preset::EnvoyGateway => Templates {
                requests: r#"sum(increase(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"service/{{namespace}}/{{service}}-{{track}}/[0-9]+/http"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=~"service/{{namespace}}/{{service}}-{{track}}/[0-9]+/http",envoy_response_code_class="5"}[{{elapsed}}])) or vector(0)"#,
            },
            // Linkerd's proxy, inbound side; `deployment` is added by Linkerd's scrape
            // configuration from the pod label linkerd.io/proxy-deployment.
            Preset::Linkerd => Templates {
                requests: r#"sum(increase(response_total{namespace="{{namespace}}",deployment="{{workload}}",direction="inbound"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(response_total{namespace="{{namespace}}",deployment="{{workload}}",direction="inbound",status_code=~"5.."}[{{elapsed}}])) or vector(0)"#,
            },
            // NGINX Plus' per-peer counters; the upstream is `<namespace>_<service>_<port>`.
            Preset::NginxGatewayFabricPlus => Templates {
                requests: r#"sum(increase(nginx_http_upstream_peer_requests_total{nginx_upstream_name=~"{{namespace}}_{{service}}-{{track}}_[0-9]+"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(nginx_http_upstream_peer_responses_total{nginx_upstream_name=~"{{namespace}}_{{service}}-{{track}}_[0-9]+",nginx_status_range="5xx"}[{{elapsed}}])) or vector(0)"#,
            },
            // Traefik's per-service metrics; a Gateway API backendRef is the service
            // `<namespace>-<service>-http-<port>@kubernetesgateway`.
            Preset::Traefik => Templates {
                requests: r#"sum(increase(traefik_service_requests_total{service=~"{{namespace}}-{{service}}-{{track}}-http-[0-9]+@kubernetesgateway"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(traefik_service_requests_total{service=~"{{namespace}}-{{service}}-{{track}}-http-[0-9]+@kubernetesgateway",code=~"5.."}[{{elapsed}}])) or vector(0)"#,
            },
            // The HTTP server semantic conventions' duration histogram; its count is the
            // requests. k8s.namespace.name and k8s.deployment.name must be promoted to labels.
            Preset::OpenTelemetry => Templates {
                requests: r#"sum(increase(http_server_request_duration_seconds_count{k8s_namespace_name="{{namespace}}",k8s_deployment_name="{{workload}}"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(http_server_request_duration_seconds_count{k8s_namespace_name="{{namespace}}",k8s_deployment_name="{{workload}}",http_response_status_code=~"5.."}[{{elapsed}}])) or vector(0)"#,
            },
        }
    }
}

impl crate::api::policy::AnalysisSpec {
    /// The requests template in force: the policy's own, else its preset's; `None` when it
    /// has neither (the API server refuses such a policy).
    pub fn requests_template(&self) -> Option<&str> {
        self.requests
            .as_deref()
            .or_else(|| self.preset.map(|p| p.templates().requests))
    }

    /// The errors template in force, as [`Self::requests_template`].
    pub fn errors_template(&self) -> Option<&str> {
        self.errors
            .as_deref()
            .or_else(|| self.preset.map(|p| p.templates().errors))
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::query::{Template, Variable};

    /// Every preset's templates parse, use only known variables, range over `{{elapsed}}`,
    /// end their errors in `or vector(0)`, and tell the tracks apart by the variable the
    /// preset says.
    #[test]
    fn every_preset_renders() {
        for p in Preset::ALL {
            let t = p.templates();
            for (field, src) in [("requests", t.requests), ("errors", t.errors)] {
                let parsed = Template::parse(src).unwrap_or_else(|e| panic!("{p} {field}: {e}"));
                let vars = parsed.variables();
                assert!(vars.contains(&Variable::Elapsed), "{p} {field}");
                if p.needs_backend_services() {
                    assert!(
                        vars.contains(&Variable::Service) && vars.contains(&Variable::Track),
                        "{p} {field}"
                    );
                } else {
                    assert!(vars.contains(&Variable::Workload), "{p} {field}");
                }
            }
            assert!(t.errors.ends_with(" or vector(0)"), "{p}");
            // The errors query selects what the requests query selects, and more.
            let requests_selector = t.requests.split('{').nth(1).unwrap_or_default();
            let first_label = requests_selector.split(',').next().unwrap_or_default();
            assert!(t.errors.contains(first_label), "{p}");
            // The name round-trips through the API's serialisation.
            let json = serde_json::to_string(&p).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
    }

    /// docs/analysis.md shows every preset's queries as the code has them.
    #[test]
    fn the_docs_show_every_presets_queries() {
        let docs = include_str!("../../docs/analysis.md");
        for p in Preset::ALL {
            let t = p.templates();
            for q in [t.requests, t.errors] {
                assert!(docs.contains(q), "docs/analysis.md lacks the {p} query {q}");
            }
            assert!(docs.contains(&format!("`{}`", p.name())), "{p}");
        }
    }
}
