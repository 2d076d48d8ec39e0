//! Notifications end to end: the operator sends to an HTTP receiver on 127.0.0.1 while a
//! real run goes on (real API server, Prometheus and traffic simulator via the World). Every
//! notification arrives once and in order, with what people need (the evidence, the approve
//! command), and a receiver that is down or slow changes nothing in the run. The sink URLs
//! carry a token that must never show up anywhere but in the request line.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use rollguard::api::run::Phase;
use serde_json::{Value, json};

use crate::support::procs::{Proc, rollguard_bin, start_operator_named};
use crate::support::world::{APP, World};
use crate::support::{self, free_port, kubeconfig_path, poll, wait_for};

/// In every sink URL: it must never appear in a message, a log line, an Event or a metric.
const TOKEN: &str = "tok-5ecr3t-d0-n0t-leak";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    /// The first path segment: which sink sent it.
    sink: String,
    content_type: String,
    body: Value,
}

/// An HTTP receiver on 127.0.0.1 that records every POST to `/<sink>/<token>` as it arrives;
/// a sink whose name starts with `slow` is answered only after 10 s.
struct Receiver {
    addr: String,
    got: Arc<Mutex<Vec<Got>>>,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(got): State<Arc<Mutex<Vec<Got>>>>,
    Path((sink, _token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let slow = sink.starts_with("slow");
    // Recorded on arrival: the client gives up on a slow answer, and axum then drops this.
    got.lock().expect("lock").push(Got {
        sink,
        content_type,
        body,
    });
    if slow {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/{sink}/{token}", post(receive))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, got, server }
    }

    fn url(&self, sink: &str) -> String {
        format!("http://{}/{sink}/{TOKEN}", self.addr)
    }

    fn of(&self, sink: &str) -> Vec<Got> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|g| g.sink == sink)
            .cloned()
            .collect()
    }

    /// The CloudEvents types a webhook sink got, in arrival order.
    fn types(&self, sink: &str) -> Vec<String> {
        self.of(sink)
            .iter()
            .map(|g| g.body["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A Secret `name` whose key `url` holds `url`.
fn url_secret(name: &str, url: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"url": format!("{url}\n")},
    }))
    .expect("a Secret")
}

fn sink(name: &str, kind: &str, secret: &str) -> Value {
    json!({"name": name, "type": kind, "urlSecretRef": {"name": secret, "key": "url"}})
}

/// Sets the policy's sinks (the World's policy has none).
async fn set_sinks(w: &World, sinks: Value) {
    w.policies()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"notifications": sinks}})),
        )
        .await
        .expect("patch the policy's notifications");
}

/// The policy's `NotificationsReady` condition (status, message), once it is written.
async fn sinks_condition(w: &World) -> (String, String) {
    wait_for(Duration::from_secs(30), "NotificationsReady", async || {
        let p = w.policies().get("shop").await.ok()?;
        let c = p
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "NotificationsReady")?;
        Some((c.status, c.message))
    })
    .await
}

/// The token appears nowhere the operator writes: its log, the namespace's Events, the
/// policy and run objects, its metrics, and the bodies of the messages.
async fn token_nowhere(w: &World, r: &Receiver) {
    let log = std::fs::read_to_string(&w.op().log).unwrap_or_default();
    assert!(!log.contains(TOKEN), "the operator logged a sink URL");
    let events =
        kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(w.client.clone(), w.n())
            .list(&Default::default())
            .await
            .expect("events");
    let events = serde_json::to_string(&events.items).expect("json");
    assert!(!events.contains(TOKEN), "an Event holds a sink URL");
    let objects = format!(
        "{}{}",
        serde_json::to_string(&w.policies().get("shop").await.expect("policy")).expect("json"),
        serde_json::to_string(
            &w.runs()
                .list(&Default::default())
                .await
                .expect("runs")
                .items
        )
        .expect("json"),
    );
    assert!(!objects.contains(TOKEN), "a status holds a sink URL");
    let metrics = reqwest::get(format!("http://{}/metrics", w.op().addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(!metrics.contains(TOKEN), "a metric holds a sink URL");
    let bodies = format!("{:?}", r.got.lock().expect("lock"));
    assert!(!bodies.contains(TOKEN), "a message holds a sink URL");
}

/// Waits until `sink` has `n` messages, then over a further 5 s (longer than a retry's
/// backoff and a notification's way through the queue) that no more arrive.
async fn exactly(r: &Receiver, sink: &str, n: usize, what: &str) -> Vec<Got> {
    wait_for(Duration::from_secs(30), what, async || {
        (r.of(sink).len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = r.of(sink);
    assert_eq!(got.len(), n, "{what}: {:#?}", got);
    got
}

#[tokio::test]
async fn a_rolled_back_run_notifies_started_step_and_rolled_back_once_in_order() {
    let r = Receiver::start().await;
    let w = World::builder("notify-rb")
        .secret(url_secret("ce-url", &r.url("ce")))
        .secret(url_secret("slack-url", &r.url("slack")))
        .build()
        .await;
    set_sinks(
        &w,
        json!([
            sink("ce", "webhook", "ce-url"),
            sink("team", "slack", "slack-url")
        ]),
    )
    .await;
    assert_eq!(sinks_condition(&w).await.0, "True");

    // 30% errors: rolled back at the 10% slice.
    w.deploy("0.3", "example.com/web:2", Some("human")).await;
    let run = w
        .wait_phase(Phase::RolledBack, Duration::from_secs(60))
        .await;
    let st = run.status.clone().expect("status");

    // Rolled back at the first slice almost always; the steps it reached, from its status.
    let reached = usize::try_from(st.step + 1).expect("step");
    let n = reached + 2;
    let ce = exactly(&r, "ce", n, "started, the steps, rolled back").await;
    let mut want = vec!["dev.rollguard.run.started"];
    want.extend(std::iter::repeat_n("dev.rollguard.run.step", reached));
    want.push("dev.rollguard.run.rolledback");
    assert_eq!(r.types("ce"), want);
    let run_name = run.metadata.name.clone().expect("name");
    for g in &ce {
        assert_eq!(g.content_type, "application/cloudevents+json");
        assert_eq!(g.body["specversion"], "1.0");
        assert_eq!(g.body["subject"], run_name.as_str());
        assert_eq!(g.body["data"]["namespace"], w.n());
        assert_eq!(g.body["data"]["deployment"], APP);
        assert_eq!(
            g.body["data"]["revision"],
            run.spec.canary_revision.as_str()
        );
        assert!(g.body["time"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let ids: std::collections::BTreeSet<&str> =
        ce.iter().filter_map(|g| g.body["id"].as_str()).collect();
    assert_eq!(ids.len(), n, "one id per transition");
    let step = &ce[1].body["data"];
    assert_eq!(
        (step["step"].clone(), step["weight"].clone()),
        (json!(1), json!("10%"))
    );
    let rb = &ce[n - 1].body["data"];
    assert_eq!(rb["reason"], st.reason.clone().expect("reason").as_str());
    let evidence = st.evidence.clone().expect("evidence");
    assert_eq!(
        rb["evidence"]["errors"],
        json!(evidence.errors.expect("errors"))
    );
    assert_eq!(
        rb["evidence"]["requests"],
        json!(evidence.requests.expect("requests"))
    );
    assert_eq!(
        rb["failedRequests"],
        json!(evidence.errors.expect("errors"))
    );
    assert!(evidence.errors.unwrap_or(0) > 0);

    let slack = exactly(&r, "slack", n, "as many Slack messages").await;
    let texts: Vec<&str> = slack
        .iter()
        .filter_map(|g| g.body["text"].as_str())
        .collect();
    assert_eq!(texts.len(), n, "{slack:?}");
    assert!(texts[0].contains("run started"), "{}", texts[0]);
    assert!(
        texts[1].contains("step reached") && texts[1].contains("Step 1/2 at 10%"),
        "{}",
        texts[1]
    );
    assert!(
        texts[n - 1].contains("rolled back")
            && texts[n - 1].contains("Evidence:")
            && texts[n - 1].contains("canary requests failed"),
        "{}",
        texts[n - 1]
    );
    assert_eq!(
        w.op()
            .metric(r#"rollguard_notifications_sent_total{sink_type="webhook"}"#)
            .await,
        Some(n as f64)
    );
    token_nowhere(&w, &r).await;
    w.finish().await;
}

#[tokio::test]
async fn a_promoted_run_ends_with_promoted_and_the_approval_carries_the_command() {
    let r = Receiver::start().await;
    let w = World::builder("notify-ok")
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}], "maxErrorRate": "5%", "requireApproval": true}]))
        .secret(url_secret("ce-url", &r.url("ce")))
        .secret(url_secret("ends-url", &r.url("ends")))
        .build()
        .await;
    let mut ends = sink("ends", "webhook", "ends-url");
    ends["events"] = json!(["rolledBack", "promoted"]);
    set_sinks(&w, json!([sink("ce", "webhook", "ce-url"), ends])).await;
    assert_eq!(sinks_condition(&w).await.0, "True");

    w.deploy("0", "example.com/web:2", Some("human")).await;
    w.wait_phase(Phase::AwaitingApproval, Duration::from_secs(60))
        .await;
    wait_for(
        Duration::from_secs(20),
        "the approval notification",
        async || (r.types("ce").len() >= 4).then_some(()),
    )
    .await;
    let approval = r.of("ce")[3].body.clone();
    assert_eq!(approval["type"], "dev.rollguard.run.approvalneeded");
    let command = format!("kubectl rollguard approve {APP} -n {}", w.n());
    assert_eq!(approval["data"]["approveCommand"], command.as_str());
    assert!(
        approval["data"]["evidence"]["requests"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "the evidence so far: {approval}"
    );
    // The command as sent works, for an approver other than the change's author (the admin).
    w.approvers(&["bob"]).await;
    let out = std::process::Command::new(rollguard_bin())
        .args(command.split_whitespace().skip(2).chain(["--as", "bob"]))
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .expect("rollguard approve");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.wait_phase(Phase::Succeeded, Duration::from_secs(60))
        .await;

    exactly(&r, "ce", 5, "started, 2 steps, approval, promoted").await;
    assert_eq!(
        r.types("ce"),
        [
            "dev.rollguard.run.started",
            "dev.rollguard.run.step",
            "dev.rollguard.run.step",
            "dev.rollguard.run.approvalneeded",
            "dev.rollguard.run.promoted"
        ]
    );
    // The filtered sink got only the end.
    exactly(&r, "ends", 1, "only promoted").await;
    assert_eq!(r.types("ends"), ["dev.rollguard.run.promoted"]);
    token_nowhere(&w, &r).await;
    w.finish().await;
}

/// A promoted run through a receiver that refuses connections, one that answers after 10 s
/// (the sink's timeout is 1 s), a sink whose Secret is missing and one whose URL is not
/// http(s), with one message of room per sink: the run walks its steps on the plan's
/// timing, and what was not delivered is counted.
#[tokio::test]
async fn a_receiver_that_is_down_or_slow_changes_nothing_in_the_run() {
    let r = Receiver::start().await;
    let down = format!("http://127.0.0.1:{}/down/{TOKEN}", free_port());
    let client = support::client().await;
    let ns = support::test_namespace(&client, "notify-down").await;
    let op: Proc =
        start_operator_named(&ns.name, "operator", &["--notification-queue-size", "1"]).await;
    let mut w = World::builder("notify-down")
        .namespace(ns)
        .without_operator()
        .secret(url_secret("down-url", &down))
        .secret(url_secret("slow-url", &r.url("slow")))
        .secret(url_secret("ftp-url", "ftp://example.com/x"))
        .build()
        .await;
    w.set_op(op);
    let mut slow = sink("slow", "webhook", "slow-url");
    slow["timeout"] = json!("1s");
    set_sinks(
        &w,
        json!([
            sink("down", "slack", "down-url"),
            slow,
            sink("gone", "webhook", "no-such-secret"),
            sink("ftp", "webhook", "ftp-url"),
        ]),
    )
    .await;
    let (ready, why) = sinks_condition(&w).await;
    assert_eq!(ready, "False");
    assert!(
        why.contains("spec.notifications[2] (gone)") && why.contains("no-such-secret"),
        "{why}"
    );
    assert!(
        why.contains("spec.notifications[3] (ftp)") && why.contains("http://"),
        "{why}"
    );
    assert!(
        !why.contains("example.com"),
        "the condition quotes a URL: {why}"
    );

    let start = Instant::now();
    w.deploy("0", "example.com/web:2", Some("human")).await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    let st = run.status.expect("status");
    let canary = st.canary_started_at.expect("canary started").0;
    let ended = st.ended_at.expect("ended").0;
    let took = ended.duration_since(canary).as_secs_f64();
    println!(
        "canary start to promoted {took:.1}s, template change to Succeeded {:.1}s",
        start.elapsed().as_secs_f64()
    );
    // Two 3 s pauses and the promotion. Each slow message holds its sink ~7.5 s (4 tries of
    // 1 s and 3.5 s of backoff): had delivery been waited for, the run's 4 transitions would
    // have taken 30 s more.
    assert!(
        took < 20.0,
        "the run took {took:.1}s from canary start to promotion"
    );

    let metric = async |series: &str| w.op().metric(series).await.unwrap_or(0.0);
    wait_for(
        Duration::from_secs(40),
        "the failures and drops counted",
        async || {
            let unreachable = metric(
                r#"rollguard_notifications_failed_total{reason="unreachable",sink_type="slack"}"#,
            )
            .await;
            let timeout = metric(
                r#"rollguard_notifications_failed_total{reason="timeout",sink_type="webhook"}"#,
            )
            .await;
            let dropped = metric(
                r#"rollguard_notifications_dropped_total{reason="queue_full",sink_type="webhook"}"#,
            )
            .await;
            let secret = metric(
                r#"rollguard_notifications_failed_total{reason="secret",sink_type="webhook"}"#,
            )
            .await;
            let url =
                metric(r#"rollguard_notifications_failed_total{reason="url",sink_type="webhook"}"#)
                    .await;
            (unreachable >= 1.0 && timeout >= 1.0 && dropped >= 1.0 && secret >= 1.0 && url >= 1.0)
                .then_some(())
        },
    )
    .await;
    // The slow receiver was reached (and kept the operator's worker, not the run, waiting).
    let late = poll(
        Duration::from_secs(15),
        Duration::from_millis(250),
        async || (!r.of("slow").is_empty()).then_some(()),
    )
    .await;
    assert!(late.is_some(), "the slow receiver never got a message");
    token_nowhere(&w, &r).await;
    w.finish().await;
}

/// The chart's cluster-wide sinks (`--cluster-notifications`, their Secrets in the operator's
/// namespace, here the test's) hear the runs of a policy that declares no sink, filtered by
/// their own `events`.
#[tokio::test]
async fn a_cluster_wide_sink_hears_a_policy_that_has_none() {
    let r = Receiver::start().await;
    let client = support::client().await;
    let ns = support::test_namespace(&client, "notify-cluster").await;
    let n = ns.name.clone();
    let sinks = json!([{
        "name": "ops", "type": "webhook",
        "urlSecretRef": {"name": "ops-url", "key": "url"},
        "events": ["started", "rolledBack"],
    }])
    .to_string();
    let op = start_operator_named(
        &n,
        "operator",
        &[
            "--cluster-notifications",
            &sinks,
            "--notification-secret-namespace",
            &n,
        ],
    )
    .await;
    let mut w = World::builder("notify-cluster")
        .namespace(ns)
        .without_operator()
        .secret(url_secret("ops-url", &r.url("ops")))
        .build()
        .await;
    w.set_op(op);

    w.deploy("0.3", "example.com/web:2", Some("human")).await;
    w.wait_phase(Phase::RolledBack, Duration::from_secs(60))
        .await;
    exactly(&r, "ops", 2, "started and rolled back").await;
    assert_eq!(
        r.types("ops"),
        ["dev.rollguard.run.started", "dev.rollguard.run.rolledback"]
    );
    // The policy itself declares no sink: it gets no NotificationsReady condition.
    let p = w.policies().get("shop").await.expect("policy");
    let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions.iter().all(|c| c.type_ != "NotificationsReady"),
        "{conditions:?}"
    );
    token_nowhere(&w, &r).await;
    w.finish().await;
}

/// The chart hands `notifications.sinks` to the operator in a form it reads: the rendered
/// `ROLLGUARD_CLUSTER_NOTIFICATIONS` parses into the same sinks, and none is rendered by
/// default.
#[test]
fn the_charts_cluster_wide_sinks_reach_the_operator_as_it_reads_them() {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/rollguard");
    let render = |sets: &[&str]| {
        let mut cmd = std::process::Command::new(support::helm_bin());
        cmd.args(["template", "rg", chart.to_str().expect("chart path")]);
        for s in sets {
            cmd.args(["--set", s]);
        }
        let out = cmd.output().expect("helm template");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let env_of = |manifests: &str| -> Option<String> {
        serde_yaml_ng::Deserializer::from_str(manifests)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter(|v: &Value| v["kind"] == "Deployment")
            .flat_map(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .find(|e| e["name"] == "ROLLGUARD_CLUSTER_NOTIFICATIONS")
            .and_then(|e| e["value"].as_str().map(str::to_string))
    };
    assert_eq!(env_of(&render(&[])), None);
    let value = env_of(&render(&[
        "notifications.sinks[0].name=ops",
        "notifications.sinks[0].type=slack",
        "notifications.sinks[0].urlSecretRef.name=rollguard-notify",
        "notifications.sinks[0].urlSecretRef.key=slack",
        "notifications.sinks[0].events={rolledBack,approvalNeeded}",
    ]))
    .expect("the sinks in the operator's environment");
    let sinks = rollguard::notify::ClusterSinks::parse(&value, "rollguard-system")
        .expect("the operator reads what the chart renders");
    assert_eq!(sinks.sinks.len(), 1);
    assert_eq!(sinks.sinks[0].name, "ops");
    assert_eq!(sinks.sinks[0].url_secret_ref.name, "rollguard-notify");
    assert_eq!(sinks.sinks[0].events.len(), 2);
}
