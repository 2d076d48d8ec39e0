//! The API against the real API server: every bad policy is refused with a message that
//! names the field, the examples in `deploy/examples/` are accepted, and `kubectl explain`
//! reads the field docs. What CEL cannot check is reported in the policy's conditions. A run
//! whose status was written before it was typed is accepted and reads back typed.

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams, PostParams};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::{Phase, RolloutRun, Verdict};
use serde_json::{Value, json};

use crate::support;

fn analysis() -> Value {
    json!({
        "interval": "10s",
        "requests": "sum(increase(http_requests_total{namespace=\"{{namespace}}\",workload=\"{{workload}}\"}[{{elapsed}}]))",
        "errors": "sum(increase(http_requests_total{namespace=\"{{namespace}}\",workload=\"{{workload}}\",code=~\"5..\"}[{{elapsed}}]))"
    })
}

fn policy(spec: Value) -> Value {
    json!({
        "apiVersion": "rollguard.dev/v1alpha1",
        "kind": "RolloutPolicy",
        "metadata": {"name": "bad"},
        "spec": spec
    })
}

fn with(mut base: Value, path: &[&str], v: Value) -> Value {
    let mut cur = &mut base;
    for p in &path[..path.len() - 1] {
        cur = cur.get_mut(*p).expect("path");
    }
    cur[path[path.len() - 1]] = v;
    base
}

fn good() -> Value {
    json!({
        "selector": {"matchLabels": {"app.kubernetes.io/part-of": "shop"}},
        "traffic": {"replicas": {}},
        "analysis": analysis(),
        "tiers": [{"name": "standard", "steps": [{"weight": "10%", "pause": "1m"}, {"weight": "50%", "pause": "1m"}]}]
    })
}

fn tier(steps: Value, extra: Value) -> Value {
    let mut t = json!({"name": "t", "steps": steps});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            t[k] = v;
        }
    }
    t
}

/// Creates via the real API server (dry run) and returns the error message, if any.
async fn attempt(api: &Api<RolloutPolicy>, spec: Value) -> Result<(), String> {
    let p: RolloutPolicy = match serde_json::from_value(policy(spec.clone())) {
        Ok(p) => p,
        // Shapes our Rust types cannot even hold go through kubectl instead.
        Err(_) => return kubectl_create(api, spec).await,
    };
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &p,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn kubectl_create(_api: &Api<RolloutPolicy>, spec: Value) -> Result<(), String> {
    let ns = std::env::var("RG_TEST_NS").unwrap_or_default();
    let body = serde_json::to_string(&policy(spec)).expect("json");
    let mut child = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(["create", "--dry-run=server", "-n", &ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl output");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn bad_policies_are_refused_with_a_message_naming_the_field() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "api").await;
    // SAFETY of the env var: only this test in this binary reads it.
    unsafe { std::env::set_var("RG_TEST_NS", &ns.name) };
    let api: Api<RolloutPolicy> = Api::namespaced(client.clone(), &ns.name);
    attempt(&api, good())
        .await
        .expect("the good policy is accepted");

    let steps = |s: Value| with(good(), &["tiers"], json!([tier(s, json!({}))]));
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "no steps",
            steps(json!([])),
            &["spec.tiers[0].steps", "at least 1 items"],
        ),
        (
            "weights not strictly increasing",
            steps(json!([{"weight": "10%", "pause": "1m"}, {"weight": "5%", "pause": "1m"}])),
            &["spec.tiers[0].steps", "step weights must strictly increase"],
        ),
        (
            "a repeated weight",
            steps(json!([{"weight": "10%", "pause": "1m"}, {"weight": "10.0%", "pause": "1m"}])),
            &["spec.tiers[0].steps", "strictly increase"],
        ),
        (
            "a 0% weight",
            steps(json!([{"weight": "0%", "pause": "1m"}])),
            &["spec.tiers[0].steps", "within (0%, 100%]"],
        ),
        (
            "a weight over 100%",
            steps(json!([{"weight": "150%", "pause": "1m"}])),
            &["spec.tiers[0].steps", "within (0%, 100%]"],
        ),
        (
            "a malformed percentage",
            steps(json!([{"weight": "ten", "pause": "1m"}])),
            &["spec.tiers[0].steps[0].weight", "should match"],
        ),
        (
            "a malformed duration",
            steps(json!([{"weight": "1%", "pause": "soon"}])),
            &["spec.tiers[0].steps[0].pause", "should match"],
        ),
        (
            "a pause shorter than the interval",
            steps(json!([{"weight": "1%", "pause": "5s"}])),
            &["spec.tiers", "at least spec.analysis.interval"],
        ),
        (
            "an interval under 1s",
            with(good(), &["analysis", "interval"], json!("500ms")),
            &["spec.analysis.interval", "at least 1s"],
        ),
        (
            "two routers",
            with(
                good(),
                &["traffic"],
                json!({"replicas": {}, "gatewayAPI": {}}),
            ),
            &["spec.traffic", "exactly one router"],
        ),
        (
            "no router",
            with(good(), &["traffic"], json!({})),
            &["spec.traffic", "exactly one router"],
        ),
        (
            "an empty query template",
            with(good(), &["analysis", "requests"], json!("")),
            &["spec.analysis.requests", "at least 1 chars"],
        ),
        (
            "an unknown template variable",
            with(
                good(),
                &["analysis", "errors"],
                json!("sum(x{a=\"{{pod}}\"})"),
            ),
            &["spec.analysis.errors", "unknown template variable"],
        ),
        (
            "duplicate tier names",
            with(
                good(),
                &["tiers"],
                json!([
                    tier(
                        json!([{"weight": "1%", "pause": "1m"}]),
                        json!({"match": {"labels": {"team": ["a"]}}})
                    ),
                    tier(json!([{"weight": "1%", "pause": "1m"}]), json!({}))
                ]),
            ),
            &["spec.tiers", "tier names must be unique"],
        ),
        (
            "maxErrorRate over 100%",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"maxErrorRate": "101%"})
                )]),
            ),
            &["spec.tiers[0].maxErrorRate", "within [0%, 100%]"],
        ),
        (
            "alpha out of range",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"decision": "sequential", "sequential": {"alpha": "60%"}})
                )]),
            ),
            &["spec.tiers[0].sequential.alpha", "within (0%, 50%)"],
        ),
        (
            "beta out of range",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"decision": "sequential", "sequential": {"beta": "0%"}})
                )]),
            ),
            &["spec.tiers[0].sequential.beta", "within (0%, 50%)"],
        ),
        (
            "p0 not below p1",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"decision": "sequential", "sequential": {"p0": "2%", "p1": "1%"}})
                )]),
            ),
            &["spec.tiers[0]", "p0 must be lower than sequential.p1"],
        ),
        (
            "a latency objective of 0s",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"latency": {"objective": "0s"}})
                )]),
            ),
            &["spec.tiers[0].latency.objective", "must be above 0s"],
        ),
        (
            "a latency p0 not below maxSlowRate",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"latency": {"objective": "500ms", "p0": "5%"}})
                )]),
            ),
            &[
                "spec.tiers[0].latency",
                "latency.p0 (default 1%) must be lower than latency.maxSlowRate",
            ],
        ),
        (
            "a latency maxSlowRate of 100%",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"latency": {"objective": "500ms", "maxSlowRate": "100%"}})
                )]),
            ),
            &["spec.tiers[0].latency.maxSlowRate", "within (0%, 100%)"],
        ),
        (
            "an unknown variable in the latency buckets",
            with(
                good(),
                &["analysis", "latency"],
                json!({"buckets": "sum by (le) (x{pod=\"{{pod}}\"})"}),
            ),
            &["spec.analysis.latency.buckets", "unknown template variable"],
        ),
        (
            "a check without bounds",
            with(
                good(),
                &["analysis", "checks"],
                json!([{"name": "cpu", "query": "max(cpu)"}]),
            ),
            &["spec.analysis.checks[0]", "a check needs min, max or both"],
        ),
        (
            "a check whose min is above its max",
            with(
                good(),
                &["analysis", "checks"],
                json!([{"name": "cpu", "query": "max(cpu)", "min": 2, "max": 1}]),
            ),
            &["spec.analysis.checks[0]", "min must not be above its max"],
        ),
        (
            "two checks with one name",
            with(
                good(),
                &["analysis", "checks"],
                json!([{"name": "cpu", "query": "max(a)", "max": 1}, {"name": "cpu", "query": "max(b)", "max": 1}]),
            ),
            &["spec.analysis.checks", "check names must be unique"],
        ),
        (
            "an unknown variable in a check",
            with(
                good(),
                &["analysis", "checks"],
                json!([{"name": "cpu", "query": "max(cpu{pod=\"{{pod}}\"})", "max": 1}]),
            ),
            &["spec.analysis.checks[0].query", "unknown template variable"],
        ),
        (
            "an empty selector",
            with(good(), &["selector"], json!({})),
            &["spec.selector", "must not be empty"],
        ),
        (
            "a last tier with a match",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"match": {"labels": {"team": ["a"]}}})
                )]),
            ),
            &["spec.tiers", "the last tier must have no match"],
        ),
        (
            "a Prometheus address with a query",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "http://prometheus.monitoring:9090/api/v1/query?query=up"}),
            ),
            &["spec.analysis.prometheus.address", "must not have a query"],
        ),
        (
            "a Prometheus address with a fragment",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "http://evil.example#@prometheus.monitoring:9090"}),
            ),
            &[
                "spec.analysis.prometheus.address",
                "must not have a fragment",
            ],
        ),
        (
            "a Prometheus address with credentials",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "http://admin:hunter2@prometheus.monitoring:9090"}),
            ),
            &[
                "spec.analysis.prometheus.address",
                "must not contain credentials",
            ],
        ),
        (
            "a Prometheus address without a host",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "http:///api"}),
            ),
            &[
                "spec.analysis.prometheus.address",
                "must be a URL with a host",
            ],
        ),
        (
            "a Prometheus address of another scheme",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "file:///etc/passwd"}),
            ),
            &[
                "spec.analysis.prometheus.address",
                "must start with http:// or https://",
            ],
        ),
        (
            "a bearer token over plain http",
            with(
                good(),
                &["analysis", "prometheus"],
                json!({"address": "http://prometheus.monitoring:9090", "bearerTokenSecret": {"name": "t", "key": "token"}}),
            ),
            &[
                "spec.analysis.prometheus.bearerTokenSecret",
                "insecure: true",
            ],
        ),
        (
            "neither templates nor a preset",
            with(good(), &["analysis"], json!({"interval": "10s"})),
            &["spec.analysis", "give requests and errors, or a preset"],
        ),
        (
            "an errors template alone",
            with(
                good(),
                &["analysis"],
                json!({"interval": "10s", "errors": analysis()["errors"]}),
            ),
            &["spec.analysis", "give requests and errors, or a preset"],
        ),
        (
            "an unknown preset",
            with(good(), &["analysis"], json!({"preset": "haproxy"})),
            &["spec.analysis.preset", "Unsupported value", "traefik"],
        ),
        (
            "an unknown decision",
            with(
                good(),
                &["tiers"],
                json!([tier(
                    json!([{"weight": "1%", "pause": "1m"}]),
                    json!({"decision": "vibes"})
                )]),
            ),
            &["spec.tiers[0].decision", "Unsupported value"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, spec, needles) in &cases {
        match attempt(&api, spec.clone()).await {
            Ok(()) => failures.push(format!("{what}: accepted")),
            Err(msg) => {
                if !needles.iter().all(|n| msg.contains(n)) {
                    failures.push(format!("{what}: message lacks {needles:?}: {msg}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad policies misjudged:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(cases.len() >= 12);
    // What the address rules let through: a base path, https with a token, and a token over
    // plain http the policy allows explicitly.
    for prometheus in [
        json!({"address": "http://prometheus.monitoring:9090/prom/"}),
        json!({"address": "https://prometheus.monitoring:9091", "bearerTokenSecret": {"name": "t", "key": "token"}}),
        json!({"address": "http://127.0.0.1:9090", "bearerTokenSecret": {"name": "t", "key": "token"}, "insecure": true}),
    ] {
        attempt(
            &api,
            with(good(), &["analysis", "prometheus"], prometheus.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{prometheus} is refused: {e}"));
    }
    ns.cleanup().await;
}

/// Sends a policy to the real API server (dry run) in `ns`, whatever namespace it names.
async fn accepted(client: &kube::Client, ns: &str, mut p: RolloutPolicy, what: &str) {
    p.metadata.namespace = Some(ns.to_string());
    Api::<RolloutPolicy>::namespaced(client.clone(), ns)
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &p,
        )
        .await
        .unwrap_or_else(|e| panic!("{what} is refused: {e}"));
}

#[tokio::test]
async fn the_examples_are_accepted_and_explain_reads_well() {
    let client = support::client().await;
    // Each example goes into a fresh namespace, whatever namespace it names.
    let ns = support::test_namespace(&client, "examples").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("yaml");
            if v.is_null() || v["kind"] != "RolloutPolicy" {
                continue;
            }
            let p: RolloutPolicy = serde_json::from_value(v).expect("a RolloutPolicy");
            accepted(&client, &ns.name, p, &path.display().to_string()).await;
            checked += 1;
        }
    }
    // The README's first policy too.
    let readme = std::fs::read_to_string(dir.join("../../README.md")).expect("README");
    for block in readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
    {
        if !block.contains("kind: RolloutPolicy") {
            continue;
        }
        let p: RolloutPolicy = serde_yaml_ng::from_str(block).expect("README policy");
        accepted(&client, &ns.name, p, "the README's policy").await;
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} example policies found");
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(["explain", "rolloutpolicy.spec.tiers"])
        .output()
        .expect("kubectl explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "Risk tiers",
        "steps",
        "maxErrorRate",
        "requireApproval",
        "decision",
    ] {
        assert!(
            text.contains(needle),
            "kubectl explain lacks {needle}:\n{text}"
        );
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn what_cel_cannot_check_is_reported_in_conditions() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "invalid").await;
    let api: Api<RolloutPolicy> = Api::namespaced(client.clone(), &ns.name);
    // Valid for the API server, but a sequential tier needs cumulative counts ({{elapsed}}).
    let mut spec = good();
    spec["analysis"]["requests"] =
        json!("sum(rate(http_requests_total{namespace=\"{{namespace}}\"}[{{interval}}]))");
    spec["tiers"] = json!([tier(
        json!([{"weight": "1%", "pause": "1m"}]),
        json!({"decision": "sequential"})
    )]);
    let mut p: RolloutPolicy = serde_json::from_value(policy(spec)).expect("policy");
    p.metadata.name = Some("needs-elapsed".into());
    api.create(&PostParams::default(), &p)
        .await
        .expect("accepted by the API server");
    let _op = support::procs::start_operator(&ns.name).await;
    support::wait_for(
        Duration::from_secs(20),
        "an InvalidSpec condition",
        async || {
            let p = api.get("needs-elapsed").await.ok()?;
            let c = p
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "InvalidSpec")?;
            (c.status == "True"
                && c.message.contains("spec.analysis.requests")
                && c.message.contains("{{elapsed}}"))
            .then_some(())
        },
    )
    .await;
    let ready = api
        .get("needs-elapsed")
        .await
        .expect("get")
        .status
        .expect("status");
    let r = ready
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(r.status, "False");
    ns.cleanup().await;
}

/// One sample as the operator wrote it before counts and verdicts were typed.
fn old_sample(at: &str, step: i32, requests: &str, errors: &str, verdict: &str) -> Value {
    json!({"time": at, "step": step, "requestsQuery": "r", "errorsQuery": "e",
           "requests": requests, "errors": errors, "rate": "0.3947%", "threshold": "1%",
           "statistic": "0.114", "upperBound": "4.554", "lowerBound": "-2.986",
           "baseline": "0.1%", "verdict": verdict})
}

#[tokio::test]
async fn a_run_written_before_its_status_was_typed_is_accepted_and_reads_back_typed() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "oldrun").await;
    let runs: Api<RolloutRun> = Api::namespaced(client.clone(), &ns.name);
    support::create(
        &runs,
        json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
            "metadata": {"name": "web-old", "namespace": ns.name},
            "spec": {
                "deployment": "web", "policy": "shop",
                "stableRevision": "5d8f7c9b6", "canaryRevision": "7f6b5c4d3",
                "tier": {"name": "standard", "reason": "test"},
                "plan": {"name": "standard", "maxErrorRate": "1%", "decision": "sequential",
                         "steps": [{"weight": "1%", "pause": "30s"}, {"weight": "5%", "pause": "60s"}]},
                "analysis": analysis(),
                "router": "gatewayAPI",
            },
        }),
    )
    .await;
    // The status in its old form, strings and all, through the status subresource.
    let old = json!({
        "phase": "Progressing", "step": 1, "stepDisplay": "2/2", "weight": "5%",
        "errorRate": "0.3947%", "canaryStartedAt": "2027-01-15T08:00:00Z",
        "stepStartedAt": "2027-01-15T08:00:30Z", "lastAnalysisAt": "2027-01-15T08:00:40Z",
        "failedSamples": 0, "noDataSamples": 0, "sampleCount": 4,
        "samples": [
            old_sample("2027-01-15T08:00:30Z", 0, "1140", "4", "Continue"),
            old_sample("2027-01-15T08:00:40Z", 1, "1520", "6", "Continue"),
        ],
    });
    let status = |s: Value| Patch::Merge(json!({"status": s}));
    runs.patch_status("web-old", &PatchParams::default(), &status(old))
        .await
        .expect("the API server accepts the old form");
    let st = runs
        .get("web-old")
        .await
        .expect("the typed client reads it")
        .status
        .expect("status");
    assert_eq!(st.phase, Phase::Progressing);
    assert_eq!(st.weight.map(|w| w.ppm()), Some(50_000));
    let latest = st.samples.last().expect("samples");
    assert_eq!(
        (latest.requests, latest.errors, latest.verdict),
        (Some(1520), Some(6), Verdict::Continue)
    );
    // `kubectl get` prints the same columns as before.
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args([
            "get",
            "rolloutruns",
            "web-old",
            "-n",
            &ns.name,
            "--no-headers",
        ])
        .output()
        .expect("kubectl get");
    let line = String::from_utf8_lossy(&out.stdout);
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols.get(1..6),
        Some(&["web", "standard", "Progressing", "2/2", "5%"][..]),
        "{line}"
    );
    assert_eq!(cols.get(6), Some(&"0.3947%"), "{line}");
    // What the typed fields could not read is refused, naming the field.
    let bad_sample = |field: &str, v: &str| {
        let mut s = old_sample("2027-01-15T08:00:50Z", 1, "1900", "6", "Pass");
        s[field] = json!(v);
        json!({"samples": [s]})
    };
    for (field, bad) in [
        ("status.weight", json!({"weight": "5"})),
        (
            "status.samples[0].requests",
            bad_sample("requests", "1.9e3"),
        ),
        ("status.samples[0].errors", bad_sample("errors", "-1")),
        ("status.samples[0].verdict", bad_sample("verdict", "Passed")),
    ] {
        let err = runs
            .patch_status("web-old", &PatchParams::default(), &status(bad))
            .await
            .expect_err(field)
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    ns.cleanup().await;
}

/// A backend-Service preset (Traefik's metrics name the backend Service) with the replicas
/// router: the API server accepts it (the router is another part of the spec), the operator
/// reports it in InvalidSpec naming spec.analysis.preset and governs nothing with it; a
/// workload preset with the same router is Ready.
#[tokio::test]
async fn a_preset_the_router_cannot_serve_is_reported_in_conditions() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "preset").await;
    let api: Api<RolloutPolicy> = Api::namespaced(client.clone(), &ns.name);
    for (name, preset) in [("traefik-replicas", "traefik"), ("istio-replicas", "istio")] {
        let spec = with(good(), &["analysis"], json!({"preset": preset}));
        let mut p: RolloutPolicy = serde_json::from_value(policy(spec)).expect("policy");
        p.metadata.name = Some(name.into());
        api.create(&PostParams::default(), &p)
            .await
            .expect("accepted by the API server");
    }
    let _op = support::procs::start_operator(&ns.name).await;
    let condition = |name: &'static str, type_: &'static str| {
        let api = api.clone();
        async move || {
            let p = api.get(name).await.ok()?;
            p.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == "True")
        }
    };
    let invalid = support::wait_for(
        Duration::from_secs(20),
        "InvalidSpec on the Traefik policy",
        condition("traefik-replicas", "InvalidSpec"),
    )
    .await;
    assert!(
        invalid.message.contains("spec.analysis.preset") && invalid.message.contains("Gateway API"),
        "{}",
        invalid.message
    );
    support::wait_for(
        Duration::from_secs(20),
        "the Istio policy to be Ready",
        condition("istio-replicas", "Ready"),
    )
    .await;
    ns.cleanup().await;
}
