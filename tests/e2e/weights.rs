//! Weight fights with GitOps tools (issue #17, point 5; docs/gitops.md, "Weights and
//! GitOps"): a real server-side apply loop re-applies the HTTPRoute's Git manifest every
//! second, under the field manager Argo CD (`argocd-controller`) or Flux
//! (`kustomize-controller`) uses and with ownership forced as both do, during a run: without
//! a recipe, with each recipe, and with a manifest that states `stable: 1, canary: 0`. A watch
//! on the route measures how long the canary had more than the share rollguard wrote.

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_api::apis::standard::httproutes::HttpRoute;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use rollguard::api::run::Phase;
use rollguard::traffic::fight::rules_writer;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::support;
use crate::support::world::{APP, Builder, Router, World};

const ARGO: &str = "argocd-controller";
const FLUX: &str = "kustomize-controller";

/// 10% then 50%, 8 s each: long enough to see a run hold past its pause.
fn world(prefix: &str) -> Builder {
    World::builder(prefix)
        .router(Router::Gateway)
        .analysis(json!({
            "prometheus": {"address": support::prometheus_url()},
            "minRequests": 100,
        }))
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "8s"}, {"weight": "50%", "pause": "8s"}], "maxErrorRate": "2%"}]))
}

/// The HTTPRoute as Git has it: the world's route, with `weights` (stable, canary) or none.
fn git_route(weights: Option<(i32, i32)>) -> Value {
    let backend = |name: &str, w: Option<i32>| {
        let mut b = json!({"name": name, "port": 80});
        if let Some(w) = w {
            b["weight"] = json!(w);
        }
        b
    };
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": APP, "annotations": {"sim.rollguard.dev/rps": "2000"}},
        "spec": {
            "parentRefs": [{"name": "public"}],
            "rules": [{"backendRefs": [
                backend("web-stable", weights.map(|w| w.0)),
                backend("web-canary", weights.map(|w| w.1)),
            ]}]
        }
    })
}

/// How the GitOps tool re-applies the manifest.
#[derive(Clone, Copy, Debug)]
enum Sync {
    /// Self-heal (Argo CD) or drift correction (Flux): the manifest as it is, every second.
    AsInGit,
    /// Argo CD with `ignoreDifferences` on the weights and `RespectIgnoreDifferences=true`:
    /// the ignored fields are taken from the live object into the manifest it applies.
    RespectIgnoreDifferences,
    /// Flux with `kustomize.toolkit.fluxcd.io/ssa: IfNotPresent`: applied only when the
    /// object does not exist.
    IfNotPresent,
}

/// The apply loop: every second, server-side apply of `manifest` as `manager`, forced (Argo
/// CD's server-side sync forces conflicts, Flux forces ownership). Counts the applies sent.
fn gitops_loop(
    routes: Api<HttpRoute>,
    manager: &'static str,
    manifest: Value,
    sync: Sync,
    applies: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let params = PatchParams::apply(manager).force();
        loop {
            let mut body = manifest.clone();
            let go = match sync {
                Sync::AsInGit => true,
                Sync::IfNotPresent => routes.get_opt(APP).await.ok().flatten().is_none(),
                Sync::RespectIgnoreDifferences => {
                    if let Ok(live) = routes.get(APP).await {
                        let refs = live.spec.rules.unwrap_or_default()[0]
                            .backend_refs
                            .clone()
                            .unwrap_or_default();
                        for (i, r) in refs.iter().enumerate() {
                            if let Some(w) = r.weight {
                                body["spec"]["rules"][0]["backendRefs"][i]["weight"] = json!(w);
                            }
                        }
                    }
                    true
                }
            };
            if go {
                if let Err(e) = routes.patch(APP, &params, &Patch::Apply(&body)).await {
                    eprintln!("{manager} apply failed: {e}");
                }
                applies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Every version of the route the watch delivers: when, (stable, canary), who wrote the rules.
type Seen = Vec<(Instant, (i32, i32), Option<String>)>;

fn record(routes: Api<HttpRoute>) -> (JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Seen>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::new()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let wc = watcher::Config::default().fields(&format!("metadata.name={APP}"));
        let mut stream = watcher(routes, wc).boxed();
        while let Some(ev) = stream.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(r)) | Ok(watcher::Event::InitApply(r)) => vec![r],
                _ => vec![],
            };
            for r in objs {
                let refs = r.spec.rules.clone().unwrap_or_default()[0]
                    .backend_refs
                    .clone()
                    .unwrap_or_default();
                let w = (refs[0].weight.unwrap_or(1), refs[1].weight.unwrap_or(1));
                out.lock()
                    .expect("lock")
                    .push((Instant::now(), w, rules_writer(&r)));
            }
        }
    });
    (task, seen)
}

fn share((s, c): (i32, i32)) -> f64 {
    if s + c == 0 {
        0.0
    } else {
        f64::from(c) / f64::from(s + c)
    }
}

/// Over the recorded versions: each time another manager gave the canary more than the
/// share rollguard last wrote, for how long (until the next version). Returns (episodes,
/// longest, total) in seconds; an episode still open at `until` counts up to it.
fn over_share(seen: &Seen, until: Instant) -> (usize, f64, f64) {
    let mut ours: Option<f64> = None;
    let mut episodes = vec![];
    for (i, (t, w, by)) in seen.iter().enumerate() {
        if by.as_deref() == Some("rollguard") {
            ours = Some(share(*w));
            continue;
        }
        if let Some(o) = ours
            && share(*w) > o + 1e-9
        {
            let end = seen.get(i + 1).map_or(until, |n| n.0);
            episodes.push(end.duration_since(*t).as_secs_f64());
        }
    }
    let longest = episodes.iter().copied().fold(0.0, f64::max);
    (episodes.len(), longest, episodes.iter().sum())
}

async fn at_the_first_slice(w: &World) {
    w.wait("the 10% slice", Duration::from_secs(45), async || {
        (w.route_weights().await == (9, 1)).then_some(())
    })
    .await;
}

fn fights(r: &rollguard::api::run::RolloutRun) -> i32 {
    r.status
        .as_ref()
        .and_then(|s| s.weight_fights.as_ref())
        .map_or(0, |f| f.total)
}

/// No recipe: Argo CD's self-heal re-applies a manifest that omits the weights (the Gateway
/// API default 1:1 gives the canary 50%). rollguard writes its weights back at once, names
/// Argo CD, holds the run after three fights, and goes on when the loop stops.
#[tokio::test]
async fn a_weight_fight_is_noticed_named_and_holds_the_run_until_it_stops() {
    let w = world("weights-fight").build().await;
    let routes: Api<HttpRoute> = Api::namespaced(w.client.clone(), w.n());
    w.deploy("0.001", "example.com/web:2", Some("human")).await;
    at_the_first_slice(&w).await;
    let (watch, seen) = record(routes.clone());
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let argo = gitops_loop(
        routes.clone(),
        ARGO,
        git_route(None),
        Sync::AsInGit,
        applies.clone(),
    );
    let started = Instant::now();
    let (run, c) = w
        .wait("WeightsContested", Duration::from_secs(30), async || {
            let (r, c) = w.run_condition("WeightsContested").await?;
            (c.status == "True").then_some((r, c))
        })
        .await;
    println!(
        "held {:.1}s after the loop started, after {} fights: {}",
        started.elapsed().as_secs_f64(),
        fights(&run),
        c.message
    );
    assert_eq!(c.reason, "WeightFight");
    assert!(
        c.message.contains(ARGO) && c.message.contains("HTTPRoute web"),
        "{}",
        c.message
    );
    let event = w
        .wait(
            "the WeightFight Event",
            Duration::from_secs(10),
            async || w.events("WeightFight").await.into_iter().next(),
        )
        .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let note = event.note.unwrap_or_default();
    assert!(
        note.contains(ARGO) && note.contains("HTTPRoute web"),
        "{note}"
    );
    // Held past the 8 s pause: samples keep coming, the step does not change.
    let held = support::world::holds_over(&w.runs(), 12).await;
    assert_eq!(held.weight.map(|x| x.to_string()).as_deref(), Some("10%"));
    argo.abort();
    let stopped = Instant::now();
    // The canary never kept more than its share for longer than one reconcile.
    let (episodes, longest, total) = over_share(&seen.lock().expect("lock"), stopped);
    println!(
        "{} applies by {ARGO} in {:.1}s: the canary had more than its 10% share {episodes} times, {longest:.3}s at the longest, {total:.2}s in all",
        applies.load(std::sync::atomic::Ordering::Relaxed),
        stopped.duration_since(started).as_secs_f64(),
    );
    assert!(episodes >= 3, "the loop reset the weights");
    assert!(longest < 2.0, "one reconcile, not {longest:.3}s");
    // The loop stopped: the hold ends 30 s after the last fight and the run is promoted.
    w.wait(
        "WeightsContested to clear",
        Duration::from_secs(60),
        async || {
            w.run_condition("WeightsContested")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await;
    println!(
        "the hold ended {:.1}s after the loop stopped",
        stopped.elapsed().as_secs_f64()
    );
    assert!(!w.events("WeightFightOver").await.is_empty());
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(90))
        .await;
    println!("promoted; {} fights in the run", fights(&run));
    watch.abort();
    w.finish().await;
}

/// Argo CD with the recipe: the weights ignored in the diff and `RespectIgnoreDifferences`,
/// so each sync applies the live weights. The run promotes with no hold.
#[tokio::test]
async fn with_respect_ignore_differences_argo_cd_and_rollguard_do_not_fight() {
    let w = world("weights-argo").build().await;
    let routes: Api<HttpRoute> = Api::namespaced(w.client.clone(), w.n());
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let argo = gitops_loop(
        routes.clone(),
        ARGO,
        git_route(None),
        Sync::RespectIgnoreDifferences,
        applies.clone(),
    );
    w.deploy("0.001", "example.com/web:2", Some("human")).await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(120))
        .await;
    argo.abort();
    let live = routes.get(APP).await.expect("the route");
    let managers: Vec<String> = live
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    println!(
        "{} applies by {ARGO} during the run; {} fights; managers {managers:?}",
        applies.load(std::sync::atomic::Ordering::Relaxed),
        fights(&run)
    );
    assert!(
        managers.iter().any(|m| m == ARGO),
        "Argo CD really applied: {managers:?}"
    );
    assert!(w.events("WeightFight").await.is_empty(), "no hold");
    // Only a sync that read the live weights just before rollguard changed them can fight.
    assert!(
        fights(&run) <= 1,
        "{:?}",
        run.status.and_then(|s| s.weight_fights)
    );
    w.finish().await;
}

/// Flux with `ssa: IfNotPresent` on the route: the route exists, so Flux never applies it
/// again. The run promotes with no fight.
#[tokio::test]
async fn with_ssa_if_not_present_flux_leaves_the_weights_alone() {
    let w = world("weights-flux").build().await;
    let routes: Api<HttpRoute> = Api::namespaced(w.client.clone(), w.n());
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flux = gitops_loop(
        routes.clone(),
        FLUX,
        git_route(None),
        Sync::IfNotPresent,
        applies.clone(),
    );
    w.deploy("0.001", "example.com/web:2", Some("human")).await;
    let run = w
        .wait_phase(Phase::Succeeded, Duration::from_secs(120))
        .await;
    flux.abort();
    println!(
        "{} applies by {FLUX}; {} fights",
        applies.load(std::sync::atomic::Ordering::Relaxed),
        fights(&run)
    );
    assert_eq!(fights(&run), 0);
    assert!(w.events("WeightFight").await.is_empty());
    w.finish().await;
}

/// A manifest that states `stable: 1, canary: 0`, re-applied by Flux's drift correction
/// without a recipe: at idle every apply is a no-op (rollguard's idle weights are the same
/// share); mid-run each apply still resets the weights, to 0% canary instead of 50%. So it
/// still fights and holds the run, but the canary never gets more than its share.
#[tokio::test]
async fn a_manifest_with_stable_1_canary_0_limits_a_fight_to_0_percent_canary() {
    let w = world("weights-1-0").build().await;
    let routes: Api<HttpRoute> = Api::namespaced(w.client.clone(), w.n());
    let (watch, seen) = record(routes.clone());
    let applies = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flux = gitops_loop(
        routes.clone(),
        FLUX,
        git_route(Some((1, 0))),
        Sync::AsInGit,
        applies.clone(),
    );
    // Idle: after the first apply (which takes the fields), nothing changes the route.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rv = routes
        .get(APP)
        .await
        .expect("route")
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rv_after = routes
        .get(APP)
        .await
        .expect("route")
        .metadata
        .resource_version;
    assert_eq!(rv, rv_after, "at idle a re-apply of 1:0 writes nothing");
    println!("idle: 5 s of applies by {FLUX} left the route as it was");
    let started = Instant::now();
    let idle_applies = applies.load(std::sync::atomic::Ordering::Relaxed);
    w.deploy("0.001", "example.com/web:2", Some("human")).await;
    let (run, c) = w
        .wait("WeightsContested", Duration::from_secs(60), async || {
            let (r, c) = w.run_condition("WeightsContested").await?;
            (c.status == "True").then_some((r, c))
        })
        .await;
    assert!(c.message.contains(FLUX), "{}", c.message);
    println!("mid-run: held after {} fights: {}", fights(&run), c.message);
    support::world::holds_over(&w.runs(), 10).await;
    flux.abort();
    let (episodes, longest, _) = over_share(&seen.lock().expect("lock"), Instant::now());
    let resets = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, w, by)| by.as_deref() == Some(FLUX) && *w == (1, 0))
        .count();
    println!(
        "{} applies by {FLUX} in the {:.1}s since the new template: {resets} resets to 0% canary; the canary had more than its share {episodes} times ({longest:.3}s at the longest)",
        applies.load(std::sync::atomic::Ordering::Relaxed) - idle_applies,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        episodes, 0,
        "a reset to 1:0 never gives the canary more than its share"
    );
    assert!(resets >= 3);
    watch.abort();
    w.finish().await;
}
