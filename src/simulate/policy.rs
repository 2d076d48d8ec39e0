//! Policy files for `rollguard simulate` and `rollguard backtest`: a `RolloutPolicy` as
//! `kubectl apply` takes it (or only its `spec`), parsed into the API types, checked the way
//! the operator checks a policy, and matched to a tier. Every error names the line and the
//! field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::yaml::{self, FileError, Segment, locate, parse_path};
use crate::analysis::query::Template;
use crate::api::policy::{RolloutPolicySpec, Tier};
use crate::check::tier_field;
use crate::plan::{PeerCheck, Plan, RevisionMeta, default_tiers, match_tier_or_untagged};

/// A loaded, checked policy.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    /// The file as the user named it.
    pub file: String,
    /// `metadata.name`, or `policy` for a bare spec.
    pub name: String,
    /// `metadata.namespace`, or `default`.
    pub namespace: String,
    /// The policy.
    pub spec: RolloutPolicySpec,
    /// The parsed query templates.
    pub requests: Template,
    pub errors: Template,
    /// How `simulate` models another tool with this file (its `simulate` key).
    pub model: Model,
}

/// How `rollguard simulate` models another tool with a policy file: its `simulate` key,
/// which the operator never reads (docs/analysis/simulate.md, "Modelling another tool").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Model {
    /// Threshold tiers judged as the peer's check (`threshold: asMeasured`), with its
    /// `onNoData` and `steps`.
    pub peer: Option<PeerCheck>,
    /// The queries count the whole service, stable and canary together (`measure: service`).
    pub service_wide: bool,
    /// The step whose start the first sample waits for, counted from 1
    /// (`analysisFromStep`; 1 by default).
    pub analysis_from_step: u32,
}

/// Settings only `rollguard simulate` reads, beside the policy (a whole policy file only):
/// how to model another tool with a rollguard policy.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SimulateOptions {
    #[serde(default)]
    threshold: ThresholdModel,
    #[serde(default)]
    on_no_data: NoDataModel,
    #[serde(default)]
    steps: StepsModel,
    #[serde(default)]
    measure: MeasureModel,
    #[serde(default)]
    analysis_from_step: Option<u32>,
}

/// How `rollguard simulate` judges a threshold tier.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum ThresholdModel {
    /// The operator's check: the rate shown above the maximum by a confidence bound.
    #[default]
    ConfidenceBound,
    /// The peers' check: the measured rate above the maximum.
    AsMeasured,
}

/// What a sample without data does to a modelled peer's check.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum NoDataModel {
    /// The operator's way: the run holds.
    #[default]
    Hold,
    /// Flagger's and Argo Rollouts' way: a failed check.
    Fail,
}

/// When a modelled peer's step moves on.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum StepsModel {
    /// The operator's and Flagger's way: after its pause, on a passing sample.
    #[default]
    OnEvidence,
    /// Argo Rollouts' background analysis: when its pause ends, whatever the samples say.
    OnPause,
}

/// What the queries count.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum MeasureModel {
    /// The canary's requests, as the templates say.
    #[default]
    Canary,
    /// The whole service's, stable and canary together (Argo Rollouts' documented query).
    Service,
}

impl SimulateOptions {
    /// The model, or the first setting that cannot be modelled, named.
    fn model(&self) -> Result<Model, (&'static str, String)> {
        let as_measured = self.threshold == ThresholdModel::AsMeasured;
        let needs_peer = |field: &'static str| {
            (
                field,
                "models a peer's check: set simulate.threshold: asMeasured too".to_string(),
            )
        };
        if !as_measured && self.on_no_data != NoDataModel::Hold {
            return Err(needs_peer("onNoData"));
        }
        if !as_measured && self.steps != StepsModel::OnEvidence {
            return Err(needs_peer("steps"));
        }
        let from = self.analysis_from_step.unwrap_or(1);
        if from == 0 {
            return Err(("analysisFromStep", "steps are counted from 1".to_string()));
        }
        if from > 1 && self.steps != StepsModel::OnPause {
            return Err((
                "analysisFromStep",
                format!(
                    "without samples the steps before step {from} would never move on: set simulate.steps: onPause too"
                ),
            ));
        }
        Ok(Model {
            peer: as_measured.then_some(PeerCheck {
                no_data_fails: self.on_no_data == NoDataModel::Fail,
                steps_on_pause: self.steps == StepsModel::OnPause,
            }),
            service_wide: self.measure == MeasureModel::Service,
            analysis_from_step: from,
        })
    }
}

/// The tier a revision gets, resolved.
#[derive(Debug, Clone)]
pub struct ChosenTier {
    pub tier: Tier,
    /// Why it matched (as the operator records it on the run).
    pub reason: String,
    pub plan: Plan,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyDoc {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    spec: RolloutPolicySpec,
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    simulate: Option<SimulateOptions>,
}

/// Where a field of the spec is in the file: under `spec` in a whole policy, at the top in
/// a bare spec.
struct Layout<'a> {
    text: &'a str,
    file: &'a str,
    whole: bool,
}

impl Layout<'_> {
    /// An error about `field`, written as the operator writes it (`spec.tiers[0].steps`).
    fn error(&self, field: &str, message: String) -> FileError {
        let mut path = parse_path(field);
        let in_file = match path.first() {
            Some(Segment::Key(k)) if k == "spec" => {
                if !self.whole {
                    path.remove(0);
                }
                true
            }
            _ => false,
        };
        FileError {
            file: self.file.to_string(),
            position: if in_file {
                locate(self.text, &path)
            } else {
                None
            },
            field: field.to_string(),
            message,
        }
    }
}

/// Parses and checks a policy file.
pub fn load(text: &str, file: &str) -> Result<PolicyFile, FileError> {
    yaml::check_depth(text, file)?;
    let whole = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
        .ok()
        .and_then(|v| v.as_mapping().map(|m| m.contains_key("spec")))
        .unwrap_or(true);
    let layout = Layout { text, file, whole };
    let (name, namespace, spec, model) = if whole {
        // Unknown fields in metadata and status are the API server's business, not ours.
        let doc: PolicyDoc = yaml::parse(
            text,
            file,
            &|p| matches!(p.first(), Some(Segment::Key(k)) if k == "metadata" || k == "status"),
        )?;
        if let Some(kind) = doc.kind.as_deref().filter(|k| *k != "RolloutPolicy") {
            return Err(FileError {
                file: file.into(),
                position: locate(text, &[Segment::Key("kind".into())]),
                field: "kind".into(),
                message: format!("expected RolloutPolicy, found {kind}"),
            });
        }
        if let Some(v) = doc
            .api_version
            .as_deref()
            .filter(|v| !v.starts_with(&format!("{}/", crate::api::GROUP)))
        {
            return Err(FileError {
                file: file.into(),
                position: locate(text, &[Segment::Key("apiVersion".into())]),
                field: "apiVersion".into(),
                message: format!("expected rollguard.dev/v1alpha1, found {v}"),
            });
        }
        let meta = doc.metadata.unwrap_or_default();
        let model = doc
            .simulate
            .unwrap_or_default()
            .model()
            .map_err(|(field, message)| FileError {
                file: file.into(),
                position: locate(
                    text,
                    &[Segment::Key("simulate".into()), Segment::Key(field.into())],
                ),
                field: format!("simulate.{field}"),
                message,
            })?;
        (meta.name, meta.namespace, doc.spec, model)
    } else {
        let spec: RolloutPolicySpec = yaml::parse(text, file, &|_| false)?;
        (None, None, spec, Model::default())
    };
    let (requests, errors) = check(&spec, &layout)?;
    Ok(PolicyFile {
        file: file.to_string(),
        name: name.unwrap_or_else(|| "policy".into()),
        namespace: namespace.unwrap_or_else(|| "default".into()),
        spec,
        requests,
        errors,
        model,
    })
}

/// The operator's checks ([`crate::check`]), with the failing field pointed at its line.
fn check(spec: &RolloutPolicySpec, at: &Layout) -> Result<(Template, Template), FileError> {
    crate::check::check(spec)
        .map(|t| (t.requests, t.errors))
        .map_err(|e| at.error(&e.field, e.message))
}

impl PolicyFile {
    /// The tiers in force: the policy's, or the built-in ones.
    pub fn tiers(&self) -> Vec<Tier> {
        self.spec.tiers.clone().unwrap_or_else(default_tiers)
    }

    /// The tier named `name`, or else the tier a revision with this metadata matches, as
    /// the operator picks it.
    pub fn choose_tier(
        &self,
        name: Option<&str>,
        meta: &RevisionMeta,
    ) -> Result<ChosenTier, String> {
        let tiers = self.tiers();
        let (i, tier, reason) = match name {
            Some(n) => {
                let i = tiers.iter().position(|t| t.name == n).ok_or_else(|| {
                    let names: Vec<&str> = tiers.iter().map(|t| t.name.as_str()).collect();
                    format!(
                        "{}: no tier named {n} (tiers: {})",
                        self.file,
                        names.join(", ")
                    )
                })?;
                (i, &tiers[i], format!("chosen by name ({n})"))
            }
            None => {
                let (tier, why) =
                    match_tier_or_untagged(&tiers, meta, self.spec.untagged_origin.as_deref())
                        .ok_or_else(|| format!("{}: no tier matches the revision", self.file))?;
                let i = tiers.iter().position(|t| t.name == tier.name).unwrap_or(0);
                (i, tier, why)
            }
        };
        let at = tier_field(self.spec.tiers.is_none(), i, tier);
        let mut plan = Plan::resolve(tier, &self.spec.analysis, &at).map_err(|e| e.to_string())?;
        if let Some(peer) = self.model.peer {
            plan.set_peer(peer);
        }
        if self.model.analysis_from_step as usize > plan.steps.len() {
            return Err(format!(
                "{}: simulate.analysisFromStep: {} is past the last step of tier {} ({} steps)",
                self.file,
                self.model.analysis_from_step,
                tier.name,
                plan.steps.len()
            ));
        }
        Ok(ChosenTier {
            tier: tier.clone(),
            reason,
            plan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"apiVersion: rollguard.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: shop
  namespace: shop
spec:
  selector:
    matchLabels: {app: shop}
  traffic:
    gatewayAPI: {}
  analysis:
    interval: 15s
    requests: sum(increase(http_requests_total{workload="{{workload}}"}[{{elapsed}}]))
    errors: sum(increase(http_requests_total{workload="{{workload}}",code=~"5.."}[{{elapsed}}]))
  tiers:
  - name: ai
    match:
      annotations: {rollguard.dev/change-origin: [ai-assisted]}
    steps:
    - {weight: 1%, pause: 5m}
    - weight: 10%
      pause: 5m
    decision: sequential
  - name: standard
    steps:
    - {weight: 10%, pause: 2m}
"#;

    fn err(text: &str) -> String {
        load(text, "p.yaml").expect_err("must fail").to_string()
    }

    #[test]
    fn a_policy_loads_and_picks_the_tier_the_operator_would() {
        let p = load(POLICY, "p.yaml").expect("loads");
        assert_eq!((p.name.as_str(), p.namespace.as_str()), ("shop", "shop"));
        let ai = std::collections::BTreeMap::from([(
            "rollguard.dev/change-origin".to_string(),
            "ai-assisted".to_string(),
        )]);
        let meta = RevisionMeta {
            template_annotations: Some(&ai),
            ..Default::default()
        };
        let t = p.choose_tier(None, &meta).expect("tier");
        assert_eq!(t.tier.name, "ai");
        assert_eq!(
            t.reason,
            "pod template annotation rollguard.dev/change-origin=ai-assisted"
        );
        let t = p.choose_tier(None, &RevisionMeta::default()).expect("tier");
        assert_eq!(t.tier.name, "standard");
        assert!(p.choose_tier(Some("nope"), &meta).is_err());
        // A bare spec loads too.
        let bare: String = POLICY
            .lines()
            .skip_while(|l| !l.starts_with("spec:"))
            .skip(1)
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect();
        let p = load(&bare, "p.yaml").expect("bare spec loads");
        assert_eq!(p.tiers().len(), 2);
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let cases = [
            // A type error while parsing.
            (
                POLICY.replace("interval: 15s", "interval: [15s]"),
                "p.yaml:12:15: spec.analysis.interval: invalid type: sequence",
            ),
            // A typo in a field name.
            (
                POLICY.replace("decision: sequential", "decison: sequential"),
                "p.yaml:23:14: spec.tiers[0]: unknown field `decison`",
            ),
            // A value the API types accept but the plan does not.
            (
                POLICY.replace("pause: 2m", "pause: soon"),
                "p.yaml:26:28: spec.tiers[1].steps[0].pause: invalid duration \"soon\"",
            ),
            (
                POLICY.replace("      pause: 5m", "      pause: 5s"),
                "p.yaml:22:14: spec.tiers[0].steps[1].pause: 5s is shorter than spec.analysis.interval",
            ),
            // A template the operator refuses.
            (
                POLICY.replace(
                    "{{workload}}\"}[{{elapsed}}]))\n    errors",
                    "{{workloads}}\"}[{{elapsed}}]))\n    errors",
                ),
                "p.yaml:13:15: spec.analysis.requests: unknown template variable \"workloads\"",
            ),
            (
                POLICY.replace("[{{elapsed}}]))\n    errors", "[5m]))\n    errors"),
                "p.yaml:13:15: spec.analysis.requests: spec.tiers[0] uses decision: sequential",
            ),
            (
                POLICY.replace("kind: RolloutPolicy", "kind: Rollout"),
                "p.yaml:2:7: kind: expected RolloutPolicy, found Rollout",
            ),
            (
                POLICY.replace("  traffic:\n", "  trafic:\n"),
                "p.yaml:10:5: spec: unknown field `trafic`",
            ),
            // No tier at all: refused with the field named, not left to the first run.
            (
                format!(
                    "{}  tiers: []\n",
                    POLICY.split("  tiers:\n").next().unwrap_or_default()
                ),
                "p.yaml:15:10: spec.tiers: list at least one tier",
            ),
        ];
        for (doc, want) in cases {
            let got = err(&doc);
            assert!(got.starts_with(want), "\n got: {got}\nwant: {want}");
        }
    }
}
