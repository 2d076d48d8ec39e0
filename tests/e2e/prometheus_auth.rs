//! Prometheus behind authentication: the local control plane's real Prometheus sits behind a
//! TLS reverse proxy that wants a bearer token (tests/support/auth_proxy.rs). With the token
//! and the CA from Secrets a run is analysed and promoted; without the CA, with another CA
//! or with a wrong token it never promotes and says why; and the token shows up nowhere the
//! operator writes: its logs, Events, the RolloutRun and RolloutPolicy, its /metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, ObjectMeta};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::{Phase, RolloutRun, Verdict};
use serde_json::json;

use crate::support;
use crate::support::auth_proxy::{
    AuthProxy, Pki, start_auth_proxy, throwaway_pki, unrelated_ca_pem,
};
use crate::support::world::{World, holds_over, newest_run};

fn secret(name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

fn token() -> String {
    format!(
        "rgtoken-{}{}",
        support::unique_suffix(),
        support::unique_suffix()
    )
}

/// What a test sets up: the proxy, and what the policy's Secrets hold.
struct Setup {
    /// The token the proxy wants.
    proxy_token: String,
    /// The token in the policy's Secret.
    secret_token: String,
    /// The CA bundle in the policy's Secret, if any.
    ca: Option<String>,
}

struct Env {
    w: World,
    proxy: AuthProxy,
    runs: Api<RolloutRun>,
}

async fn start(prefix: &str, s: &Setup, pki: &Pki) -> Env {
    let proxy = start_auth_proxy(&support::prometheus_url(), &s.proxy_token, pki).await;
    let mut secrets = vec![secret("prom-token", "token", &s.secret_token)];
    let mut prometheus = json!({
        "address": proxy.url,
        "timeout": "2s",
        "bearerTokenSecret": {"name": "prom-token", "key": "token"},
    });
    if let Some(ca) = &s.ca {
        secrets.push(secret("prom-ca", "ca.crt", ca));
        prometheus["caSecret"] = json!({"name": "prom-ca", "key": "ca.crt"});
    }
    let mut b = World::builder(prefix).analysis(json!({"prometheus": prometheus}));
    for s in secrets {
        b = b.secret(s);
    }
    let w = b.build().await;
    let runs = w.runs();
    Env { w, proxy, runs }
}

async fn new_template(env: &Env) {
    env.w.new_template().await;
}

/// Waits until the run's Analysis condition is a failed query whose message satisfies
/// `names_cause`, then, well past the whole plan (6 s of pauses), checks it never moved on.
async fn held_because(env: &Env, what: &str, names_cause: impl Fn(&str) -> bool) -> String {
    let message = support::wait_for(Duration::from_secs(60), what, async || {
        let r = newest_run(&env.runs).await?;
        let c = r
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Analysis")?;
        (c.status == "False" && c.reason == "QueryFailed" && names_cause(&c.message))
            .then_some(c.message)
    })
    .await;
    // Over 8 more samples, past the plan's 6 s of pauses, it never moves on.
    let st = holds_over(&env.runs, 8).await;
    assert!(
        !st.samples.is_empty() && st.samples.iter().all(|s| s.verdict == Verdict::Error),
        "{:?}",
        st.samples
    );
    let d = env.w.deployment().await;
    assert_eq!(
        d.spec.and_then(|s| s.paused),
        Some(true),
        "the Deployment stays paused on stable"
    );
    message
}

/// The tokens appear nowhere the operator writes or serves.
async fn assert_no_token_leaks(env: &Env, tokens: &[&str]) {
    let ns = env.w.n();
    let log = std::fs::read_to_string(&env.w.op().log).expect("operator log");
    // The log is the operator's, busy with this run: the check below is not vacuous.
    assert!(
        log.contains(ns) && log.lines().count() > 10,
        "{}",
        env.w.op().tail(20)
    );
    let events = Api::<Event>::namespaced(env.w.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(!events.items.is_empty(), "the operator emitted Events");
    let runs = env.runs.list(&ListParams::default()).await.expect("runs");
    assert!(!runs.items.is_empty());
    let policies = Api::<RolloutPolicy>::namespaced(env.w.client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("policies");
    let metrics = reqwest::get(format!("http://{}/metrics", env.w.op().addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    assert!(metrics.contains("rollguard_prometheus_queries_total"));
    let places = [
        ("the operator's log", log),
        ("Events", serde_json::to_string(&events).expect("json")),
        ("RolloutRuns", serde_json::to_string(&runs).expect("json")),
        (
            "RolloutPolicies",
            serde_json::to_string(&policies).expect("json"),
        ),
        ("/metrics", metrics),
    ];
    for (place, text) in &places {
        for t in tokens {
            assert!(!text.contains(t), "the token leaked into {place}");
        }
    }
}

#[tokio::test]
async fn token_and_ca_from_secrets_let_the_run_promote() {
    let pki = throwaway_pki();
    let t = token();
    let s = Setup {
        proxy_token: t.clone(),
        secret_token: t.clone(),
        ca: Some(pki.ca_pem.clone()),
    };
    let env = start("promauth-ok", &s, &pki).await;
    new_template(&env).await;
    let r = support::wait_for(
        Duration::from_secs(120),
        "the run to succeed through the authenticating proxy",
        async || {
            let r = newest_run(&env.runs).await?;
            (r.status.as_ref()?.phase == Phase::Succeeded).then_some(r)
        },
    )
    .await;
    let st = r.status.expect("status");
    let passed = st
        .samples
        .iter()
        .filter(|s| s.verdict == Verdict::Pass)
        .count();
    assert!(passed > 0, "analysed, not promoted blind: {:?}", st.samples);
    assert!(
        env.proxy.forwarded() >= passed,
        "every sample went through the proxy"
    );
    assert_eq!(
        env.proxy.refused(),
        0,
        "refused: {:?}",
        env.proxy.refused_requests()
    );
    assert_eq!(env.proxy.certificates_refused(), 0);
    println!(
        "promoted after {} samples ({passed} passed); the proxy forwarded {} queries",
        st.sample_count,
        env.proxy.forwarded()
    );
    assert_no_token_leaks(&env, &[&t]).await;
    env.w.finish().await;
}

/// TLS verification is on by default: a proxy whose CA is not trusted is never asked.
async fn untrusted_certificate_holds_the_run(prefix: &str, ca: Option<String>) {
    let pki = throwaway_pki();
    let t = token();
    let s = Setup {
        proxy_token: t.clone(),
        secret_token: t.clone(),
        ca,
    };
    let env = start(prefix, &s, &pki).await;
    new_template(&env).await;
    let message = held_because(&env, "the run to name the untrusted certificate", |m| {
        m.contains("certificate") && m.contains("UnknownIssuer")
    })
    .await;
    println!("held: {message}");
    assert!(env.proxy.certificates_refused() > 0);
    assert_eq!(
        env.proxy.forwarded() + env.proxy.refused(),
        0,
        "no request got through"
    );
    assert_no_token_leaks(&env, &[&t]).await;
    env.w.finish().await;
}

#[tokio::test]
async fn without_a_ca_the_certificate_is_not_trusted() {
    untrusted_certificate_holds_the_run("promauth-noca", None).await;
}

#[tokio::test]
async fn with_another_ca_the_certificate_is_not_trusted() {
    untrusted_certificate_holds_the_run("promauth-otherca", Some(unrelated_ca_pem())).await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_named() {
    let pki = throwaway_pki();
    let (right, wrong) = (token(), token());
    let s = Setup {
        proxy_token: right.clone(),
        secret_token: wrong.clone(),
        ca: Some(pki.ca_pem.clone()),
    };
    let env = start("promauth-token", &s, &pki).await;
    new_template(&env).await;
    let message = held_because(&env, "the run to name the 401", |m| m.contains("HTTP 401")).await;
    println!("held: {message}");
    assert!(env.proxy.refused() > 0);
    assert_eq!(env.proxy.forwarded(), 0);
    assert_no_token_leaks(&env, &[&right, &wrong]).await;
    env.w.finish().await;
}

/// The Secrets Role narrowed to names (docs/operations/rbac.md, "Narrowing the Role to the
/// named Secrets"): with the token of a ServiceAccount that may only list and watch Secret
/// `prometheus-token`, the operator's own Secrets reader reads that Secret and not another one,
/// and the API refuses a list by another name or without a name.
#[tokio::test]
async fn the_operator_reads_a_secret_granted_by_name_only() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

    let client = support::client().await;
    let ns = support::test_namespace(&client, "secret-names").await;
    let n = ns.name.clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &n);
    for (name, value) in [("prometheus-token", "granted"), ("other", "not-granted")] {
        support::create(
            &secrets,
            json!({"metadata": {"name": name}, "stringData": {"token": value}}),
        )
        .await;
    }
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &n);
    support::create(&sas, json!({"metadata": {"name": "op"}})).await;
    let roles: Api<Role> = Api::namespaced(client.clone(), &n);
    support::create(
        &roles,
        json!({"metadata": {"name": "named-secrets"}, "rules": [{
            "apiGroups": [""], "resources": ["secrets"],
            "resourceNames": ["prometheus-token"], "verbs": ["list", "watch"],
        }]}),
    )
    .await;
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &n);
    support::create(
        &bindings,
        json!({"metadata": {"name": "named-secrets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "named-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": n}]}),
    )
    .await;
    let token = support::service_account_token(&client, &n, "op", 600).await;
    let op = support::client_with_token(&token).await;
    let api: Api<Secret> = Api::namespaced(op.clone(), &n);
    let by_name = |name: &str| ListParams::default().fields(&format!("metadata.name={name}"));
    // The binding reaches the authorizer's cache within moments.
    let granted = support::wait_for(
        Duration::from_secs(30),
        "a list of the granted Secret by name",
        async || api.list(&by_name("prometheus-token")).await.ok(),
    )
    .await;
    assert_eq!(granted.items.len(), 1);
    for (what, params) in [
        ("by another name", by_name("other")),
        ("without a name", ListParams::default()),
    ] {
        match api.list(&params).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "a list {what}: {s:?}"),
            other => panic!("a list {what} was not refused: {other:?}"),
        }
    }
    // The operator's reader: a list and a watch selecting the name.
    let reader = rollguard::controller::secrets::Secrets::new(
        op,
        rollguard::analysis::prometheus::Client::new(None, false).expect("client"),
    );
    let spec = |name: &str| -> rollguard::api::policy::PrometheusSpec {
        serde_json::from_value(json!({
            "address": "https://prometheus.example:9091",
            "bearerTokenSecret": {"name": name, "key": "token"},
        }))
        .expect("a Prometheus spec")
    };
    match reader.for_spec(&n, Some(&spec("prometheus-token"))).await {
        Ok((_, token)) => assert_eq!(token.as_deref(), Some("granted")),
        Err(e) => panic!("the granted Secret is not read: {e}"),
    }
    match reader.for_spec(&n, Some(&spec("other"))).await {
        Ok((_, token)) => panic!("a Secret outside the Role was read: {token:?}"),
        Err(e) => assert!(e.contains("not readable by rollguard"), "{e}"),
    }
    ns.cleanup().await;
}
