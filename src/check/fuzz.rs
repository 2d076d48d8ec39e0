//! Property tests of policy input: a RolloutPolicy as JSON or YAML (what the API server hands
//! the operator, and what `rollguard simulate` reads from a file), with hostile values in
//! every field. Parsing and checking never panic, and a policy that passes the checks
//! resolves to plans the run machine and its decision engines can work with.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::analysis::decision::{MixtureSprt, Sprt};
use crate::api::RolloutPolicy;
use crate::controller::policy_validate as validate;
use crate::fuzz::config;
use crate::plan::{Judge, Plan, RevisionMeta, default_tiers, match_tier};
use crate::simulate::policy::load;
use crate::simulate::scenario::Scenario;

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

/// Any JSON, small.
fn junk() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Usually a well-typed value from `good`, sometimes a hostile string or any JSON.
fn field(good: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        8 => good,
        1 => any::<String>().prop_map(Value::String),
        1 => junk(),
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<Value> {
    field(
        prop_oneof![
            prop::sample::select(vec![
                "1s", "15s", "30s", "1m", "5m", "1h", "0s", "500ms", "1m30s"
            ])
            .prop_map(String::from),
            "[0-9]{1,3}(h|m|s|ms)",
            "[-+0-9.hmsd ]{0,8}",
            "[0-9]{18,24}(h|ms)",
        ]
        .prop_map(Value::String)
        .boxed(),
    )
}

fn percent() -> BoxedStrategy<Value> {
    field(
        prop_oneof![
            prop::sample::select(vec![
                "0%", "0.1%", "0.5%", "1%", "5%", "10%", "50%", "99.9999%", "100%", "101%"
            ])
            .prop_map(String::from),
            "(0|[1-9][0-9]{0,2})(\\.[0-9]{1,5})?%",
            "[-+0-9.%eE ]{0,8}",
        ]
        .prop_map(Value::String)
        .boxed(),
    )
}

/// Query templates: the usual ones, fragments of PromQL and placeholders put together, or
/// anything.
fn template() -> BoxedStrategy<Value> {
    let fragment = prop::sample::select(vec![
        "sum(increase(http_requests_total{",
        "namespace=\"{{namespace}}\"",
        "workload=\"{{workload}}\"",
        "track=\"{{ track }}\"",
        ",code=~\"5..\"",
        "}[{{elapsed}}]))",
        "[{{interval}}]",
        "{{",
        "}}",
        "{{nope}}",
        "{{namespace}}",
        "\"",
        "'",
        "`",
        "\\",
        "#",
        "\n",
        " or vector(0)",
    ]);
    field(
        prop_oneof![
            Just(
                "sum(increase(http_requests_total{namespace=\"{{namespace}}\",workload=\"{{workload}}\"}[{{elapsed}}]))"
                    .to_owned()
            ),
            prop::collection::vec(fragment, 1..10).prop_map(|v| v.concat()),
        ]
        .prop_map(Value::String)
        .boxed(),
    )
}

fn string_map() -> BoxedStrategy<Value> {
    prop::collection::btree_map(
        prop_oneof![
            Just("rollguard.dev/change-origin".to_owned()),
            any::<String>()
        ],
        prop::collection::vec(
            prop_oneof![Just("ai-assisted".to_owned()), any::<String>()],
            0..3,
        ),
        0..3,
    )
    .prop_map(|m| json!(m))
    .boxed()
}

fn tier() -> BoxedStrategy<Value> {
    let step = (duration(), percent())
        .prop_map(|(pause, weight)| json!({"weight": weight, "pause": pause}));
    let sequential = (
        maybe(prop::sample::select(vec!["sprt", "mixture", "wald"]).prop_map(Value::from)),
        maybe(prop::sample::select(vec!["fixed", "stable", "other"]).prop_map(Value::from)),
        maybe(percent()),
        maybe(percent()),
        maybe(percent()),
        maybe(percent()),
    )
        .prop_map(|(test, baseline, p0, p1, alpha, beta)| {
            object(&[
                ("test", test),
                ("baseline", baseline),
                ("p0", p0),
                ("p1", p1),
                ("alpha", alpha),
                ("beta", beta),
            ])
        });
    (
        prop_oneof![
            Just(json!("standard")),
            Just(json!("ai")),
            "[a-z0-9-]{0,8}".prop_map(Value::from)
        ],
        maybe(
            (maybe(string_map()), maybe(string_map())).prop_map(|(labels, annotations)| {
                object(&[("labels", labels), ("annotations", annotations)])
            }),
        ),
        prop::collection::vec(step, 0..4),
        maybe(percent()),
        maybe(prop_oneof![
            Just(json!("threshold")),
            Just(json!("sequential")),
            junk()
        ]),
        maybe(prop_oneof![(-3i64..5).prop_map(Value::from), junk()]),
        maybe(sequential),
        maybe(prop_oneof![
            any::<i64>().prop_map(Value::from),
            Just(json!(-1))
        ]),
        maybe(any::<bool>().prop_map(Value::Bool)),
    )
        .prop_map(
            |(name, m, steps, max, decision, failure_limit, seq, min_requests, approval)| {
                object(&[
                    ("name", Some(name)),
                    ("match", m),
                    ("steps", Some(Value::Array(steps))),
                    ("maxErrorRate", max),
                    ("decision", decision),
                    ("failureLimit", failure_limit),
                    ("sequential", seq),
                    ("minRequests", min_requests),
                    ("requireApproval", approval),
                ])
            },
        )
        .boxed()
}

fn object(fields: &[(&str, Option<Value>)]) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert((*k).to_owned(), v.clone());
        }
    }
    Value::Object(m)
}

/// A whole RolloutPolicy, shaped like the real thing, hostile in its values.
fn policy() -> impl Strategy<Value = Value> {
    let prometheus = (
        prop_oneof![
            Just(json!("http://prometheus:9090")),
            Just(json!("https://prometheus:9091/prom/")),
            Just(json!("http://user:pw@prometheus:9090")),
            Just(json!("http://prometheus:9090/?query=up")),
            Just(json!("http://evil#@prometheus:9090")),
            "(https?|HTTP|ftp)://[a-z@:/?#. \\\\]{0,16}".prop_map(Value::from),
            any::<String>().prop_map(Value::from)
        ],
        maybe(Just(json!({"name": "prom", "key": "token"}))),
        maybe(any::<bool>().prop_map(Value::Bool)),
        maybe(any::<bool>().prop_map(Value::Bool)),
        maybe(duration()),
    )
        .prop_map(|(address, token, skip_verify, insecure, timeout)| {
            object(&[
                ("address", Some(address)),
                ("bearerTokenSecret", token),
                ("insecureSkipVerify", skip_verify),
                ("insecure", insecure),
                ("timeout", timeout),
            ])
        });
    let analysis = (
        maybe(duration()),
        maybe(prometheus),
        template(),
        template(),
        maybe(prop_oneof![any::<i64>().prop_map(Value::from), junk()]),
        maybe(prop_oneof![
            Just(json!("hold")),
            Just(json!("rollback")),
            junk()
        ]),
        maybe(any::<i32>().prop_map(Value::from)),
    )
        .prop_map(
            |(interval, prometheus, requests, errors, min, on_no_data, limit)| {
                object(&[
                    ("interval", interval),
                    ("prometheus", prometheus),
                    ("requests", Some(requests)),
                    ("errors", Some(errors)),
                    ("minRequests", min),
                    ("onNoData", on_no_data),
                    ("noDataLimit", limit),
                ])
            },
        );
    (
        maybe(prop::collection::vec(tier(), 0..4).prop_map(Value::Array)),
        analysis,
        maybe(prop_oneof![
            Just(json!({"replicas": {}})),
            Just(json!({"gatewayAPI": {}})),
            junk()
        ]),
        prop_oneof![
            Just(json!({"matchLabels": {"app": "web"}})),
            Just(
                json!({"matchExpressions": [{"key": "app", "operator": "Nope", "values": ["x"]}]})
            ),
            junk()
        ],
        maybe(junk()),
    )
        .prop_map(|(tiers, analysis, traffic, selector, extra)| {
            let spec = object(&[
                ("selector", Some(selector)),
                ("traffic", traffic),
                ("analysis", Some(analysis)),
                ("tiers", tiers),
                ("unknownField", extra),
            ]);
            json!({
                "apiVersion": "rollguard.dev/v1alpha1",
                "kind": "RolloutPolicy",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": spec,
            })
        })
}

/// What the run machine needs of a checked policy's plans: at least one step, weights
/// strictly increasing within (0%, 100%], and decision parameters its engines accept.
fn check_plans(p: &RolloutPolicy) -> Result<(), TestCaseError> {
    // The operator resolves the analysis the same way, Prometheus address included.
    let request = crate::analysis::request::AnalysisRequest::new(&p.spec.analysis, false);
    prop_assert!(request.is_ok(), "validate passed but {:?}", request);
    let tiers = p.spec.tiers.clone().unwrap_or_else(default_tiers);
    for t in &tiers {
        let plan = Plan::resolve(t, &p.spec.analysis, "tier");
        prop_assert!(plan.is_ok(), "validate passed but {:?}", plan);
        let plan = plan.unwrap();
        prop_assert!(!plan.steps.is_empty());
        prop_assert!(
            plan.steps.windows(2).all(|w| w[0].0 < w[1].0),
            "{:?}",
            plan.steps
        );
        prop_assert!(
            plan.steps
                .iter()
                .all(|(w, _)| w.ppm() > 0 && w.ppm() <= 1_000_000)
        );
        if let Judge::Sequential {
            p0,
            p1,
            alpha,
            beta,
            ..
        } = plan.judge
        {
            let sprt = Sprt::new(p0, p1, alpha, beta);
            prop_assert!(
                sprt.is_ok(),
                "validate passed, the SPRT refuses: {:?}",
                sprt
            );
            let mixture = MixtureSprt::with_default_prior(p0, alpha);
            prop_assert!(
                mixture.is_ok(),
                "validate passed, the mixture test refuses: {:?}",
                mixture
            );
        }
    }
    Ok(())
}

const EXAMPLE: &str = include_str!("../../deploy/examples/strict-ai-tier.yaml");

/// Edits that hostile or careless hands make to a YAML file.
fn edited(text: &'static str) -> impl Strategy<Value = String> {
    let edit = (
        any::<prop::sample::Index>(),
        0usize..8,
        prop_oneof![
            Just(String::new()),
            prop::sample::select(vec![
                ":",
                "- ",
                "  ",
                "\n",
                "{",
                "}",
                "[",
                "]",
                "\"",
                "'",
                "&a ",
                "*a",
                "!!binary ",
                "? ",
                "%",
                "#",
                "\t",
                "---\n",
                "...\n",
                "\u{0}",
                "\u{feff}",
                "😀",
                "0x",
                "1e400",
                "~",
            ])
            .prop_map(String::from),
            any::<String>(),
        ],
    );
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut s: Vec<char> = text.chars().collect();
        for (at, delete, insert) in edits {
            let i = at.index(s.len() + 1);
            let end = (i + delete).min(s.len());
            s.splice(i..end, insert.chars());
        }
        s.into_iter().collect()
    })
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn prop_policies_parse_and_check_without_panic(doc in policy()) {
        let Ok(p) = serde_json::from_value::<RolloutPolicy>(doc.clone()) else {
            return Ok(());
        };
        let verdict = validate(&p);
        if verdict.is_ok() {
            check_plans(&p)?;
        }
        // Tier matching and selection take any labels.
        let labels = std::collections::BTreeMap::from([("rollguard.dev/change-origin".to_owned(), "ai-assisted".to_owned())]);
        let tiers = p.spec.tiers.clone().unwrap_or_else(default_tiers);
        let _ = match_tier(&tiers, &RevisionMeta { template_annotations: Some(&labels), ..Default::default() });
        let _ = crate::selection::selector_matches(&p.spec.selector, &labels);
        // The same policy as a file for `rollguard simulate`: what it accepts, the operator
        // accepts too.
        let yaml = serde_yaml_ng::to_string(&doc).unwrap();
        if let Ok(file) = load(&yaml, "p.yaml") {
            prop_assert!(verdict.is_ok(), "simulate accepted what the operator refuses: {:?}\n{}", verdict, yaml);
            let chosen = file.choose_tier(None, &RevisionMeta::default());
            prop_assert!(chosen.is_ok(), "{:?}", chosen);
        }
    }

    #[test]
    fn prop_edited_policy_files_load_without_panic(text in edited(EXAMPLE)) {
        if let Ok(file) = load(&text, "p.yaml") {
            let p: Result<RolloutPolicy, _> = serde_yaml_ng::from_str(&text);
            if let Ok(p) = p {
                prop_assert!(validate(&p).is_ok(), "simulate accepted what the operator refuses:\n{}", text);
            }
            let _ = file.choose_tier(None, &RevisionMeta::default());
        }
        let _ = serde_json::from_str::<RolloutPolicy>(&text);
    }

    #[test]
    fn prop_edited_scenarios_load_without_panic(text in edited(SCENARIO)) {
        if let Ok(s) = Scenario::parse(&text, "s.yaml") {
            prop_assert!(s.rps.is_finite() && s.rps >= 0.0);
            prop_assert!(s.replicas >= 1);
            prop_assert!(!s.canary.schedule.is_empty());
            prop_assert!(s.canary.schedule.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(s.no_data.iter().all(|w| w.from < w.to));
        }
    }

    #[test]
    fn prop_any_text_loads_without_panic(text in any::<String>()) {
        let _ = load(&text, "p.yaml");
        let _ = Scenario::parse(&text, "s.yaml");
        let _ = serde_yaml_ng::from_str::<RolloutPolicy>(&text);
    }
}

const SCENARIO: &str = "\
duration: 30m
rps: 100
scrapeInterval: 15s
replicas: 10
stable: {errorRate: \"0.1%\"}
canary:
  schedule:
  - {at: 0s, errorRate: \"0.1%\"}
  - {at: 5m, errorRate: \"5%\"}
revision: {annotations: {rollguard.dev/change-origin: ai-assisted}}
noData: [{from: 2m, to: 4m}]
approveAfter: 30s
";

#[test]
fn yaml_bombs_and_deep_nesting_are_refused_quickly() {
    // Aliases that expand exponentially (9^9 strings).
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, name) = (w[0], w[1]);
        let refs = vec![format!("*{prev}"); 9].join(",");
        bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    bomb.push_str("spec: *i\n");
    let started = std::time::Instant::now();
    assert!(load(&bomb, "p.yaml").is_err());
    assert!(Scenario::parse(&bomb, "s.yaml").is_err());
    assert!(serde_yaml_ng::from_str::<RolloutPolicy>(&bomb).is_err());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Nesting far deeper than any policy: refused before the YAML scanner, whose time grows
    // with the square of the depth.
    let deep = format!("spec: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_map = format!("spec: {}1{}", "{a: ".repeat(100_000), "}".repeat(100_000));
    for text in [deep, deep_map] {
        let started = std::time::Instant::now();
        let err = load(&text, "p.yaml").expect_err("deep").to_string();
        assert!(err.contains("nested deeper than"), "{err}");
        assert!(Scenario::parse(&text, "s.yaml").is_err());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
