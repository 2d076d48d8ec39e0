//! The real data path (issue #22; `make test-gateway`, ignored otherwise): rollguard's weights
//! on an HTTPRoute, honoured by a real Gateway API implementation (Traefik v3.6, built from its
//! module source), real HTTP answered by the pod server on the pods' loopback IPs, users'
//! requests sent and counted by the load generator, and the policy judging the canary from the
//! counters Traefik itself exports (`traefik_service_requests_total`, scraped by Prometheus).
//!
//! Before the first request each test checks the network rule (`support::gateway::check_loopback`):
//! the pod range, every EndpointSlice address and every server Traefik routes to are in
//! 127.0.0.0/8; the load generator checks Traefik's servers again every 500 ms.

use std::time::{Duration, Instant};

use rollguard::api::run::Phase;
use serde_json::{Value, json};

use crate::support::gateway::{
    Gateway, burst, by_track, check_loopback, loadgen_stats, pod_counts, start_loadgen,
    traefik_weights,
};
use crate::support::procs::rollguard_bin;
use crate::support::world::{APP, World};

/// A world on the real data path, waited for until Traefik routes the namespace's host to the
/// stable pods, with the network rule checked.
async fn real_world(prefix: &str, tiers: Value) -> (World, Gateway) {
    real_world_with(prefix, json!({}), tiers).await
}

/// [`real_world`] with keys of the policy's `analysis` replaced.
async fn real_world_with(prefix: &str, analysis: Value, tiers: Value) -> (World, Gateway) {
    let gw = Gateway::from_env();
    let w = World::builder(prefix)
        .real_gateway()
        .analysis(analysis)
        .tiers(tiers)
        .build()
        .await;
    let n = w.n().to_string();
    w.wait(
        "Traefik to route to the 3 stable pods",
        Duration::from_secs(60),
        async || {
            let weights = traefik_weights(&gw, &n).await;
            let stable = format!("{n}-web-stable-http-80@kubernetesgateway");
            let servers = servers_of(&gw, &stable).await;
            (weights
                .iter()
                .any(|(s, wt)| s == &format!("{n}-web-stable-http-80") && *wt == 100)
                && servers == 3)
                .then_some(())
        },
    )
    .await;
    let (addresses, servers) = check_loopback(&w.client, &n, &gw).await;
    println!(
        "network rule: {addresses} endpoint addresses in {n} and {servers} Traefik servers, all in 127.0.0.0/8"
    );
    (w, gw)
}

/// How many servers Traefik's service `name` has.
async fn servers_of(gw: &Gateway, name: &str) -> usize {
    let url = format!("{}/api/http/services/{name}", gw.api);
    let Ok(r) = reqwest::get(url).await else {
        return 0;
    };
    let v: Value = r.json().await.unwrap_or_default();
    v["loadBalancer"]["servers"].as_array().map_or(0, Vec::len)
}

/// Traefik applies (stable, canary) weights for the namespace's route, and the canary's
/// service has `canary_pods` servers.
async fn traefik_applies(gw: &Gateway, n: &str, want: (i64, i64), canary_pods: usize) -> bool {
    let weights = traefik_weights(gw, n).await;
    let w = |track: &str| {
        weights
            .iter()
            .find(|(s, _)| s == &format!("{n}-web-{track}-http-80"))
            .map(|(_, w)| *w)
    };
    w("stable") == Some(want.0)
        && w("canary") == Some(want.1)
        && servers_of(gw, &format!("{n}-web-canary-http-80@kubernetesgateway")).await == canary_pods
}

/// Every failure users saw is an error a pod answered (stable's template fails 0.1% of its
/// requests): none came from the gateway itself (a 502 from a missing server, say, has no
/// revision header) and none was a transport error.
fn no_gateway_errors(users: &Value) {
    let by_revision = users["by_revision"].as_object().expect("by_revision");
    assert!(
        !by_revision.contains_key(""),
        "answers without a pod: {users}"
    );
    let pod_errors: u64 = by_revision
        .values()
        .map(|a| a["errors"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(users["failed"].as_u64(), Some(pod_errors), "{users}");
    assert_eq!(users["failed_transport"], 0, "{users}");
}

/// `rollguard promote web -n <ns>`: skips the current step's pause.
async fn promote(n: &str) {
    let out = tokio::process::Command::new(rollguard_bin())
        .args(["promote", APP, "-n", n])
        .env("KUBECONFIG", crate::support::kubeconfig_path())
        .output()
        .await
        .expect("rollguard promote");
    assert!(out.status.success(), "rollguard promote: {out:?}");
}

/// Requests needed so that the 99.9% binomial interval around `p` (z = 3.29) is narrower than
/// `half_gap` on each side.
fn requests_to_tell(p: f64, half_gap: f64) -> u64 {
    let z = 3.29_f64;
    (z * z * p * (1.0 - p) / (half_gap * half_gap)).ceil() as u64
}

#[tokio::test]
#[ignore = "the real data path: make test-gateway (Traefik's cold build is ~9 min)"]
async fn traefik_sends_the_canary_the_share_rollguard_writes_at_0_5_5_and_50_percent() {
    let long = "30m";
    let (w, gw) = real_world(
        "gw-weights",
        json!([{"name": "standard",
                "steps": [{"weight": "0.5%", "pause": long}, {"weight": "5%", "pause": long},
                          {"weight": "50%", "pause": long}],
                "maxErrorRate": "5%"}]),
    )
    .await;
    let n = w.n().to_string();
    // A trickle of users' traffic throughout, so every analysis sample has data.
    let trickle = start_loadgen(&gw, &n, 50);
    w.deploy("0", "example.com/web:2", Some("human")).await;
    // (step, route weights, canary pods with 3 replicas, the share, the gap it must be told from)
    let steps = [
        (0, (199, 1), 1, 0.005, 0.005), // 0.5% vs 1%
        (1, (19, 1), 1, 0.05, 0.05),    // 5% vs 10%
        (2, (1, 1), 2, 0.5, 0.1),       // 50% vs 60%
    ];
    let mut report = Vec::new();
    for (step, weights, pods, p, gap) in steps {
        if step > 0 {
            promote(&n).await;
        }
        w.wait(
            &format!("Traefik to apply {weights:?} with {pods} canary servers"),
            Duration::from_secs(90),
            async || {
                let st = w.run().await?.status?;
                (st.step == step
                    && w.route_weights().await == (weights.0 as i32, weights.1 as i32)
                    && traefik_applies(&gw, &n, weights, pods).await)
                    .then_some(())
            },
        )
        .await;
        check_loopback(&w.client, &n, &gw).await;
        let requests = requests_to_tell(p, gap / 2.0).max(2000);
        let (s0, c0) = by_track(&w.sim).await;
        let users = burst(&gw, &n, requests, 500).await;
        // The trickle's requests land in the same window: count what the pods served.
        let (s1, c1) = by_track(&w.sim).await;
        let (stable, canary) = (s1 - s0, c1 - c0);
        let total = stable + canary;
        let share = canary as f64 / total as f64;
        let bound = 3.29 * (p * (1.0 - p) / total as f64).sqrt();
        let line = format!(
            "weight {p:.3}: {canary} of {total} requests reached canary pods = {:.3}% \
             (expected {:.1}% ± {:.3}% at 99.9%, {requests} sent in the burst; users saw {} failed)",
            share * 100.0,
            p * 100.0,
            bound * 100.0,
            users["failed"]
        );
        println!("{line}");
        report.push(line.clone());
        no_gateway_errors(&users);
        assert_eq!(
            users["skipped"], 0,
            "the load generator kept the rate: {users}"
        );
        assert!(
            total >= requests,
            "the pods served the burst: {total} < {requests}"
        );
        assert!((share - p).abs() <= bound, "{line}");
    }
    // Done measuring: the good change is promoted.
    let out = tokio::process::Command::new(rollguard_bin())
        .args(["promote", APP, "-n", &n, "--full"])
        .env("KUBECONFIG", crate::support::kubeconfig_path())
        .output()
        .await
        .expect("rollguard promote --full");
    assert!(out.status.success(), "{out:?}");
    w.wait_phase(Phase::Succeeded, Duration::from_secs(120))
        .await;
    let users = loadgen_stats(&trickle).await;
    println!("{}", report.join("\n"));
    println!("the trickle (50/s) over the whole run: {users}");
    drop(trickle);
    w.finish().await;
}

#[tokio::test]
#[ignore = "the real data path: make test-gateway (Traefik's cold build is ~9 min)"]
async fn a_bad_ai_change_is_rolled_back_at_its_first_slice_judged_from_traefiks_metrics() {
    const RPS: u32 = 600;
    let (w, gw) = real_world_with(
        "gw-bad-ai",
        json!({"interval": "2s"}),
        json!([
            {"name": "ai-assisted",
             "match": {"annotations": {"rollguard.dev/change-origin": ["ai-assisted", "ai-generated"]}},
             "steps": [{"weight": "1%", "pause": "10m"}, {"weight": "5%", "pause": "10m"}],
             "maxErrorRate": "1%",
             // The design's AI tier (and the demo's): Wald's sequential test, p0 0.1%.
             "decision": "sequential",
             "sequential": {"p0": "0.1%", "alpha": "1%", "beta": "5%"}},
            {"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}], "maxErrorRate": "5%"}
        ]),
    )
    .await;
    let n = w.n().to_string();
    let load = start_loadgen(&gw, &n, RPS);
    w.deploy("0.05", "example.com/web:2", Some("ai-assisted"))
        .await;
    let run = w
        .wait_reason("SequentialTestRejected", Duration::from_secs(120))
        .await;
    let st = run.status.clone().expect("status");
    assert_eq!(run.spec.tier.name, "ai-assisted");
    assert_eq!(st.step, 0, "rolled back at its first slice: {st:?}");
    let ended = st.ended_at.expect("ended_at").0;
    // Traefik stops sending to the canary once the route is 100:0 again.
    w.wait(
        "Traefik back to 100:0",
        Duration::from_secs(30),
        async || {
            let weights = traefik_weights(&gw, &n).await;
            weights
                .iter()
                .all(|(s, wt)| !s.contains("-web-canary-") || *wt == 0)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let users = loadgen_stats(&load).await;
    drop(load);
    let rows = pod_counts(&w.sim).await;
    let canary: Vec<&Value> = rows.iter().filter(|r| r["track"] == "canary").collect();
    let first = canary
        .iter()
        .filter_map(|r| r["first_request"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let (canary_requests, canary_errors): (u64, u64) = canary.iter().fold((0, 0), |(a, b), r| {
        (
            a + r["requests"].as_u64().unwrap_or(0),
            b + r["errors"].as_u64().unwrap_or(0),
        )
    });
    let to_rollback = ended.as_millisecond() as f64 / 1000.0 - first;
    let evidence = st
        .evidence
        .as_ref()
        .map(|e| serde_json::to_string(e).unwrap_or_default());
    println!(
        "bad AI change: rolled back {to_rollback:.1} s after the canary's first real request; \
         the canary served {canary_requests} requests, {canary_errors} of them errors; users \
         saw {} failed of {} sent ({} 5xx, {} transport); evidence {}",
        users["failed"],
        users["sent"],
        users["failed_5xx"],
        users["failed_transport"],
        evidence.unwrap_or_default()
    );
    println!("users' view: {users}");
    assert!(canary_requests > 0, "the canary got real requests");
    assert!(to_rollback > 0.0 && to_rollback < 120.0, "{to_rollback}");
    // Users saw the canary's errors (all of them: every request the canary served came from
    // the load generator) and stable's usual 0.1%, and none from Traefik itself: rollguard
    // gives the canary its slice only once its pods are endpoints of `web-canary`, so the
    // route never names a Service Traefik has no server for (before, 14 503s in 0.7 s at 800
    // requests/s in the demo: the weight reached Traefik before the endpoint).
    let from_gateway = users["by_revision"][""]["requests"].as_u64().unwrap_or(0);
    println!("users saw {from_gateway} failures made by Traefik itself (no pod answered)");
    // A transport error is a request that got no answer in 5 s. On an idle machine there are
    // none; when the load generator itself cannot keep the rate (it skips requests it cannot
    // send in time: the cores are busy elsewhere), its late requests time out too, and those
    // say nothing about the data path: they are printed, not judged.
    let (skipped, transport) = (
        users["skipped"].as_u64().unwrap_or(0),
        users["failed_transport"].as_u64().unwrap_or(0),
    );
    if skipped == 0 {
        assert_eq!(transport, 0, "{users}");
    } else {
        println!(
            "the machine was overloaded: the load generator skipped {skipped} requests and \
             {transport} timed out; transport errors are not judged in this run"
        );
    }
    assert_eq!(from_gateway, 0, "answers without a pod: {users}");
    let from_canary: u64 = users["by_revision"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|a| a["track"] == "canary")
        .map(|a| a["errors"].as_u64().unwrap_or(0))
        .sum();
    println!("users saw {from_canary} failed requests from the canary");
    assert_eq!(from_canary, canary_errors, "{users}");
    w.finish().await;
}

#[tokio::test]
#[ignore = "the real data path: make test-gateway (Traefik's cold build is ~9 min)"]
async fn a_good_change_is_promoted_and_then_the_stable_pods_serve_every_request() {
    let (w, gw) = real_world(
        "gw-good",
        json!([{"name": "standard",
                "steps": [{"weight": "10%", "pause": "5s"}, {"weight": "50%", "pause": "5s"}],
                "maxErrorRate": "1%"}]),
    )
    .await;
    let n = w.n().to_string();
    let load = start_loadgen(&gw, &n, 200);
    let t0 = Instant::now();
    w.deploy("0", "example.com/web:2", Some("human")).await;
    w.wait_phase(Phase::Succeeded, Duration::from_secs(180))
        .await;
    let took = t0.elapsed();
    let new_revision = w
        .deployment()
        .await
        .metadata
        .annotations
        .unwrap_or_default()
        .get("rollguard.dev/stable-revision")
        .cloned()
        .unwrap_or_default();
    // Traefik back on -stable only, with the new ReplicaSet's 3 pods behind it.
    w.wait(
        "Traefik on the new stable pods only",
        Duration::from_secs(60),
        async || {
            let weights = traefik_weights(&gw, &n).await;
            let canary_off = weights
                .iter()
                .all(|(s, wt)| !s.contains("-web-canary-") || *wt == 0);
            // The pod server answers only for the 3 pods of one revision (the old and the
            // canary's pods are gone and drained).
            let rows = pod_counts(&w.sim).await;
            let serving: Vec<&Value> = rows.iter().filter(|r| r["serving"] == true).collect();
            let one_revision = serving.len() == 3
                && serving
                    .iter()
                    .all(|r| r["track"] == "stable" && r["revision"] == serving[0]["revision"]);
            (canary_off
                && one_revision
                && servers_of(&gw, &format!("{n}-web-stable-http-80@kubernetesgateway")).await == 3)
                .then_some(())
        },
    )
    .await;
    // Traefik applies a change after its providers' throttle (2 s by default).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = loadgen_stats(&load).await;
    drop(load);
    check_loopback(&w.client, &n, &gw).await;
    let before = pod_counts(&w.sim).await;
    let users = burst(&gw, &n, 2000, 500).await;
    let after = pod_counts(&w.sim).await;
    let served = |rows: &[Value], pod: &str| {
        rows.iter()
            .find(|r| r["pod"] == pod)
            .and_then(|r| r["requests"].as_u64())
            .unwrap_or(0)
    };
    let mut by_pod = Vec::new();
    for r in &after {
        let pod = r["pod"].as_str().unwrap_or_default();
        let d = served(&after, pod) - served(&before, pod);
        if d > 0 {
            by_pod.push((
                pod.to_string(),
                r["track"].clone(),
                r["revision"].clone(),
                d,
            ));
        }
    }
    println!(
        "good change: Succeeded {:.1} s after the deploy; users saw {} failed of {} during the run; \
         after it {} requests: {by_pod:?}",
        took.as_secs_f64(),
        during["failed"],
        during["sent"],
        users["sent"]
    );
    assert_eq!(users["failed"], 0, "{users}");
    let total: u64 = by_pod.iter().map(|p| p.3).sum();
    assert_eq!(
        Some(total),
        users["sent"].as_u64(),
        "every request sent was served: {by_pod:?}"
    );
    assert!(total >= 1000, "{users}");
    for (pod, track, revision, _) in &by_pod {
        assert_eq!(track, "stable", "{pod} is no canary");
        assert!(
            !revision.as_str().unwrap_or_default().is_empty()
                && pod.starts_with("web-")
                && !pod.starts_with("web-canary"),
            "{pod}"
        );
    }
    let revisions: std::collections::BTreeSet<_> = by_pod
        .iter()
        .map(|p| p.2.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        revisions.len(),
        1,
        "one revision serves everyone: {by_pod:?} (stable revision {new_revision})"
    );
    w.finish().await;
}
