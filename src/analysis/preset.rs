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

use crate::api::policy::{LatencyUnit, Preset};

/// A preset's templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Templates {
    pub requests: &'static str,
    pub errors: &'static str,
    /// The latency histogram's buckets by `le` and the unit of its bounds; `None` where the
    /// data plane exports no histogram.
    pub latency: Option<(&'static str, LatencyUnit)>,
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
                latency: Some((
                    r#"sum by (le) (increase(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{namespace}}",destination_workload="{{workload}}"}[{{elapsed}}]))"#,
                    LatencyUnit::Milliseconds,
                )),
            },
            // Envoy's cluster stats; with the EnvoyProxy's mergeBackends every backend Service
            // has its own cluster, `service/<namespace>/<service>/<port>/http`.
            Preset::EnvoyGateway => Templates {
                requests: r#"sum(increase(envoy_cluster_upstream_rq_total{envoy_cluster_name=~"service/{{namespace}}/{{service}}-{{track}}/[0-9]+/http"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(envoy_cluster_upstream_rq_xx{envoy_cluster_name=~"service/{{namespace}}/{{service}}-{{track}}/[0-9]+/http",envoy_response_code_class="5"}[{{elapsed}}])) or vector(0)"#,
                latency: Some((
                    r#"sum by (le) (increase(envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=~"service/{{namespace}}/{{service}}-{{track}}/[0-9]+/http"}[{{elapsed}}]))"#,
                    LatencyUnit::Milliseconds,
                )),
            },
            // Linkerd's proxy, inbound side; `deployment` is added by Linkerd's scrape
            // configuration from the pod label linkerd.io/proxy-deployment.
            Preset::Linkerd => Templates {
                requests: r#"sum(increase(response_total{namespace="{{namespace}}",deployment="{{workload}}",direction="inbound"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(response_total{namespace="{{namespace}}",deployment="{{workload}}",direction="inbound",status_code=~"5.."}[{{elapsed}}])) or vector(0)"#,
                latency: Some((
                    r#"sum by (le) (increase(response_latency_ms_bucket{namespace="{{namespace}}",deployment="{{workload}}",direction="inbound"}[{{elapsed}}]))"#,
                    LatencyUnit::Milliseconds,
                )),
            },
            // NGINX Plus' per-peer counters; the upstream is `<namespace>_<service>_<port>`.
            Preset::NginxGatewayFabricPlus => Templates {
                requests: r#"sum(increase(nginx_http_upstream_peer_requests_total{nginx_upstream_name=~"{{namespace}}_{{service}}-{{track}}_[0-9]+"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(nginx_http_upstream_peer_responses_total{nginx_upstream_name=~"{{namespace}}_{{service}}-{{track}}_[0-9]+",nginx_status_range="5xx"}[{{elapsed}}])) or vector(0)"#,
                latency: None,
            },
            // Traefik's per-service metrics; a Gateway API backendRef is the service
            // `<namespace>-<service>-http-<port>@kubernetesgateway`.
            Preset::Traefik => Templates {
                requests: r#"sum(increase(traefik_service_requests_total{service=~"{{namespace}}-{{service}}-{{track}}-http-[0-9]+@kubernetesgateway"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(traefik_service_requests_total{service=~"{{namespace}}-{{service}}-{{track}}-http-[0-9]+@kubernetesgateway",code=~"5.."}[{{elapsed}}])) or vector(0)"#,
                latency: Some((
                    r#"sum by (le) (increase(traefik_service_request_duration_seconds_bucket{service=~"{{namespace}}-{{service}}-{{track}}-http-[0-9]+@kubernetesgateway"}[{{elapsed}}]))"#,
                    LatencyUnit::Seconds,
                )),
            },
            // The HTTP server semantic conventions' duration histogram; its count is the
            // requests. k8s.namespace.name and k8s.deployment.name must be promoted to labels.
            Preset::OpenTelemetry => Templates {
                requests: r#"sum(increase(http_server_request_duration_seconds_count{k8s_namespace_name="{{namespace}}",k8s_deployment_name="{{workload}}"}[{{elapsed}}]))"#,
                errors: r#"sum(increase(http_server_request_duration_seconds_count{k8s_namespace_name="{{namespace}}",k8s_deployment_name="{{workload}}",http_response_status_code=~"5.."}[{{elapsed}}])) or vector(0)"#,
                latency: Some((
                    r#"sum by (le) (increase(http_server_request_duration_seconds_bucket{k8s_namespace_name="{{namespace}}",k8s_deployment_name="{{workload}}"}[{{elapsed}}]))"#,
                    LatencyUnit::Seconds,
                )),
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

    /// The latency histogram in force: the policy's `latency.buckets`, else its preset's;
    /// its unit is the policy's `latency.unit`, else the preset's, else seconds. `None`
    /// without a buckets template.
    pub fn latency_template(&self) -> Option<(&str, LatencyUnit)> {
        let preset = self.preset.and_then(|p| p.templates().latency);
        let own = self.latency.as_ref();
        let buckets = own
            .and_then(|l| l.buckets.as_deref())
            .or(preset.map(|(t, _)| t))?;
        let unit = own
            .and_then(|l| l.unit)
            .or(preset.map(|(_, u)| u))
            .unwrap_or_default();
        Some((buckets, unit))
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
            let latency = t.latency.map(|(l, _)| ("latency", l));
            for (field, src) in [("requests", t.requests), ("errors", t.errors)]
                .into_iter()
                .chain(latency)
            {
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
            // The histogram answers one series per bound, over the requests' selector.
            if let Some((l, _)) = t.latency {
                assert!(l.starts_with("sum by (le) (increase("), "{p}");
                assert!(l.contains("_bucket{"), "{p}");
            }
            assert_eq!(
                t.latency.is_none(),
                p == Preset::NginxGatewayFabricPlus,
                "{p}"
            );
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
            for q in [t.requests, t.errors]
                .into_iter()
                .chain(t.latency.map(|(l, _)| l))
            {
                assert!(docs.contains(q), "docs/analysis.md lacks the {p} query {q}");
            }
            assert!(docs.contains(&format!("`{}`", p.name())), "{p}");
        }
    }

    /// The policy's latency fields override the preset's one by one.
    #[test]
    fn latency_fields_override_the_presets() {
        let spec = |extra: serde_json::Value| -> crate::api::policy::AnalysisSpec {
            let mut v = serde_json::json!({"preset": "istio"});
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            serde_json::from_value(v).expect("spec")
        };
        let istio = Preset::Istio.templates().latency;
        assert_eq!(spec(serde_json::json!({})).latency_template(), istio);
        let own = spec(serde_json::json!({"latency": {"buckets": "sum by (le) (x)"}}));
        assert_eq!(
            own.latency_template(),
            Some(("sum by (le) (x)", LatencyUnit::Milliseconds))
        );
        let unit = spec(serde_json::json!({"latency": {"unit": "seconds"}}));
        assert_eq!(
            unit.latency_template().map(|(_, u)| u),
            Some(LatencyUnit::Seconds)
        );
        let nginx: crate::api::policy::AnalysisSpec =
            serde_json::from_value(serde_json::json!({"preset": "nginxGatewayFabricPlus"}))
                .expect("spec");
        assert_eq!(nginx.latency_template(), None);
    }
}
