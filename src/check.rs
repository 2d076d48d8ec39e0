//! The checks on a `RolloutPolicy` spec that go beyond its schema: the query templates
//! parse, every tier resolves to a plan, and the templates carry what each tier's decision
//! needs. The operator reports the first problem in the policy's `InvalidSpec` condition;
//! `rollguard simulate` and `backtest` point it at a line of the file. The API server's CEL
//! rules refuse some of these too; they are checked again here because a policy may come
//! from a file, or from a cluster whose CRD predates a rule.

use crate::analysis::query::{Template, Variable};
use crate::analysis::request::parse_templates;
use crate::api::policy::{Baseline, Decision, RolloutPolicySpec, Tier};
use crate::api::quantity::format_duration;
use crate::plan::{Plan, PlanError, default_tiers};

/// A field of the spec and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field as the API names it, e.g. `spec.tiers[0].steps[1].pause`, or the built-in
    /// tier (`built-in tier ai-assisted`) when the policy has no tiers of its own.
    pub field: String,
    pub message: String,
}

impl Invalid {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<PlanError> for Invalid {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Quantity { field, source } => Invalid::new(field, source.to_string()),
            PlanError::Invalid { field, message } => Invalid::new(field, message),
        }
    }
}

/// Why `tiers: []` is refused: no revision could match a tier.
pub const NO_TIERS: &str = "list at least one tier, or omit spec.tiers to use the built-in tiers";

/// The parsed query templates of a spec that passed [`check`].
#[derive(Debug, Clone)]
pub struct Templates {
    pub requests: Template,
    pub errors: Template,
}

/// How a tier is named in messages: its place in `spec.tiers`, or the built-in tier's name.
pub fn tier_field(builtin: bool, index: usize, tier: &Tier) -> String {
    if builtin {
        format!("built-in tier {}", tier.name)
    } else {
        format!("spec.tiers[{index}]")
    }
}

/// Checks a spec; the first problem found names its field.
pub fn check(spec: &RolloutPolicySpec) -> Result<Templates, Invalid> {
    let a = &spec.analysis;
    let (requests, errors) = parse_templates(a).map_err(|e| Invalid::new(e.field, e.message))?;
    crate::analysis::request::parse_checks(a).map_err(|e| Invalid::new(e.field, e.message))?;
    if let Some(p) = a.preset.filter(|p| p.needs_backend_services())
        && spec.traffic.gateway_api.is_none()
        && (a.requests.is_none() || a.errors.is_none())
    {
        return Err(Invalid::new(
            "spec.analysis.preset",
            format!(
                "the {p} preset tells canary from stable by their backend Services (<service>-canary and <service>-stable), which only the Gateway API router has; with the replicas router one Service fronts both: use spec.traffic.gatewayAPI, or give requests and errors"
            ),
        ));
    }
    let (tiers, builtin) = match &spec.tiers {
        // The API server refuses an empty list too; a file for `simulate` does not pass it.
        Some(t) if t.is_empty() => return Err(Invalid::new("spec.tiers", NO_TIERS)),
        Some(t) => (t.clone(), false),
        None => (default_tiers(), true),
    };
    if !builtin && tiers.last().is_some_and(|t| t.match_.is_some()) {
        return Err(Invalid::new(
            format!("spec.tiers[{}].match", tiers.len() - 1),
            "the last tier must have no match, so every revision gets a tier",
        ));
    }
    for (i, t) in tiers.iter().enumerate() {
        let field = tier_field(builtin, i, t);
        let plan = Plan::resolve(t, a, &field)?;
        if let Some(j) = plan.steps.iter().position(|(_, p)| *p < plan.interval) {
            return Err(Invalid::new(
                format!("{field}.steps[{j}].pause"),
                format!(
                    "{} is shorter than spec.analysis.interval; every step needs at least one analysis sample",
                    format_duration(plan.steps[j].1)
                ),
            ));
        }
        if t.latency.is_some() {
            // The histogram must exist and parse; a sequential test needs it since the start.
            crate::analysis::request::AnalysisRequest::for_plan(a, &plan)
                .map_err(|e| Invalid::new(e.field, format!("{field}.latency: {}", e.message)))?;
            let since_start = a
                .latency_template()
                .and_then(|(src, _)| crate::analysis::query::Template::parse(src).ok())
                .is_some_and(|t| t.variables().contains(&Variable::Elapsed));
            if t.decision == Decision::Sequential && !since_start {
                return Err(Invalid::new(
                    "spec.analysis.latency.buckets",
                    format!(
                        "{field} uses decision: sequential, which tests the canary's counts since it started, so the query must use [{{{{elapsed}}}}] as its range"
                    ),
                ));
            }
        }
        if t.decision == Decision::Sequential {
            let baseline = t
                .sequential
                .as_ref()
                .map(|s| s.baseline)
                .unwrap_or_default();
            for (name, tpl) in [("requests", &requests), ("errors", &errors)] {
                let vars = tpl.variables();
                if !vars.contains(&Variable::Elapsed) {
                    return Err(Invalid::new(
                        format!("spec.analysis.{name}"),
                        format!(
                            "{field} uses decision: sequential, which tests the canary's counts since it started, so the query must use [{{{{elapsed}}}}] as its range"
                        ),
                    ));
                }
                // A built-in tier falls back to its fixed p0 instead (`Plan::resolve`).
                if baseline == Baseline::Stable
                    && !builtin
                    && !vars.contains(&Variable::Workload)
                    && !vars.contains(&Variable::Track)
                {
                    return Err(Invalid::new(
                        format!("spec.analysis.{name}"),
                        format!(
                            "{field} measures its baseline on the stable revision, so the query must select the measured pods with {{{{workload}}}} or {{{{track}}}}"
                        ),
                    ));
                }
            }
        }
    }
    // The schema's pattern lets through a timeout too long to represent; every sample would
    // fail on it.
    crate::analysis::request::timeout(a).map_err(|e| Invalid::new(e.field, e.message))?;
    // The schema's rules refuse these too, on a cluster whose CRD has them.
    if let Some(p) = &a.prometheus {
        crate::analysis::request::prometheus_address(p)
            .map_err(|e| Invalid::new(e.field, e.message))?;
    }
    Ok(Templates { requests, errors })
}

/// Property tests of policy input: they drive these checks, the plans and `simulate`.
#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    /// Table: a preset fills what the policy leaves out, an explicit template wins field by
    /// field, and a policy with neither, or a backend-Service preset without the Gateway API
    /// router, is refused naming the field.
    #[test]
    fn presets_fill_templates_the_policy_leaves_out() {
        use crate::api::policy::Preset;
        let spec = |traffic: serde_json::Value, analysis: serde_json::Value| -> RolloutPolicySpec {
            serde_json::from_value(serde_json::json!({
                "selector": {"matchLabels": {"app": "web"}},
                "traffic": traffic,
                "analysis": analysis,
            }))
            .expect("a spec")
        };
        let gateway = serde_json::json!({"gatewayAPI": {}});
        let replicas = serde_json::json!({});
        let own = "sum(increase(mine{w=\"{{workload}}\"}[{{elapsed}}]))";
        // (traffic, analysis) -> Ok((requests, errors)) or Err(field)
        type Want = Result<(&'static str, &'static str), &'static str>;
        let cases: Vec<(serde_json::Value, serde_json::Value, Want)> = vec![
            (
                replicas.clone(),
                serde_json::json!({"preset": "istio"}),
                Ok((
                    Preset::Istio.templates().requests,
                    Preset::Istio.templates().errors,
                )),
            ),
            (
                gateway.clone(),
                serde_json::json!({"preset": "traefik", "requests": own}),
                Ok((own, Preset::Traefik.templates().errors)),
            ),
            (
                replicas.clone(),
                serde_json::json!({"preset": "linkerd", "errors": own}),
                Ok((Preset::Linkerd.templates().requests, own)),
            ),
            (
                replicas.clone(),
                serde_json::json!({"requests": own}),
                Err("spec.analysis.errors"),
            ),
            (
                replicas.clone(),
                serde_json::json!({}),
                Err("spec.analysis.requests"),
            ),
            (
                replicas.clone(),
                serde_json::json!({"preset": "envoyGateway"}),
                Err("spec.analysis.preset"),
            ),
            // Both templates given: the preset only names the data plane.
            (
                replicas.clone(),
                serde_json::json!({"preset": "traefik", "requests": own, "errors": own}),
                Ok((own, own)),
            ),
        ];
        for (traffic, analysis, want) in cases {
            let got = check(&spec(traffic.clone(), analysis.clone()));
            match (got, want) {
                (Ok(t), Ok((r, e))) => {
                    assert_eq!(t.requests.source(), r, "{analysis}");
                    assert_eq!(t.errors.source(), e, "{analysis}");
                }
                (Err(e), Err(field)) => {
                    assert_eq!(e.field, field, "{analysis}");
                    assert!(e.message.contains("preset"), "{}", e.message);
                }
                (got, want) => panic!("{traffic} {analysis}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_timeout_the_operator_cannot_resolve_is_refused() {
        let spec = |timeout: &str| -> RolloutPolicySpec {
            serde_json::from_value(serde_json::json!({
                "selector": {"matchLabels": {"app": "web"}},
                "traffic": {},
                "analysis": {
                    "requests": "sum(a[{{elapsed}}])",
                    "errors": "sum(b[{{elapsed}}])",
                    "prometheus": {"address": "http://p:9090", "timeout": timeout},
                },
            }))
            .expect("a spec")
        };
        assert!(check(&spec("10s")).is_ok());
        let e = check(&spec("99999999999999999999h")).expect_err("overflows");
        assert_eq!(e.field, "spec.analysis.prometheus.timeout");
    }

    #[test]
    fn a_prometheus_the_operator_would_not_ask_is_refused() {
        let spec = |prometheus: serde_json::Value| -> RolloutPolicySpec {
            serde_json::from_value(serde_json::json!({
                "selector": {"matchLabels": {"app": "web"}},
                "traffic": {},
                "analysis": {
                    "requests": "sum(a[{{elapsed}}])",
                    "errors": "sum(b[{{elapsed}}])",
                    "prometheus": prometheus,
                },
            }))
            .expect("a spec")
        };
        let token = serde_json::json!({"name": "t", "key": "k"});
        let cases = [
            (
                serde_json::json!({"address": "http://p:9090/api/v1/query?query=up"}),
                Some("spec.analysis.prometheus.address"),
            ),
            (
                serde_json::json!({"address": "http://u:p@p:9090"}),
                Some("spec.analysis.prometheus.address"),
            ),
            (
                serde_json::json!({"address": "http://p:9090", "bearerTokenSecret": token}),
                Some("spec.analysis.prometheus.bearerTokenSecret"),
            ),
            (
                serde_json::json!({"address": "http://p:9090", "bearerTokenSecret": token, "insecure": true}),
                None,
            ),
            (
                serde_json::json!({"address": "https://p:9091/prom/", "bearerTokenSecret": token}),
                None,
            ),
        ];
        for (prometheus, field) in cases {
            let got = check(&spec(prometheus.clone())).err().map(|e| e.field);
            assert_eq!(got.as_deref(), field, "{prometheus}");
        }
    }

    /// A latency objective without a histogram to read, or with one a sequential tier
    /// cannot test from the start, is refused naming the field.
    #[test]
    fn a_latency_objective_needs_a_histogram() {
        let policy = |analysis: serde_json::Value, decision: &str| -> RolloutPolicySpec {
            serde_json::from_value(serde_json::json!({
                "selector": {"matchLabels": {"app": "web"}},
                "analysis": analysis,
                "tiers": [{"name": "t", "steps": [{"weight": "10%", "pause": "1m"}],
                           "decision": decision, "latency": {"objective": "500ms"}}]
            }))
            .expect("policy")
        };
        let own = r#"sum(increase(r{workload="{{workload}}"}[{{elapsed}}]))"#;
        let e = check(&policy(
            serde_json::json!({"requests": own, "errors": own}),
            "threshold",
        ))
        .expect_err("no histogram");
        assert_eq!(e.field, "spec.analysis.latency.buckets");
        assert!(
            e.message.starts_with("spec.tiers[0].latency: required"),
            "{}",
            e.message
        );
        let e = check(&policy(
            serde_json::json!({"preset": "nginxGatewayFabricPlus", "requests": own, "errors": own}),
            "threshold",
        ))
        .expect_err("NGINX Plus has no histogram");
        assert_eq!(e.field, "spec.analysis.latency.buckets");
        assert!(
            check(&policy(
                serde_json::json!({"preset": "istio"}),
                "sequential"
            ))
            .is_ok()
        );
        let last_minute = serde_json::json!({"requests": own, "errors": own,
            "latency": {"buckets": "sum by (le) (increase(b[1m]))"}});
        let e = check(&policy(last_minute.clone(), "sequential")).expect_err("not since start");
        assert_eq!(e.field, "spec.analysis.latency.buckets");
        assert!(check(&policy(last_minute, "threshold")).is_ok());
    }
}
