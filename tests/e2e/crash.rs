//! Crash consistency: the operator is killed right after each write of a rollback and of a
//! promotion (the test fail point `ROLLGUARD_FAIL_AFTER=<phase>:<write>`, compiled in with
//! the `e2e` feature only), then started again without it. Whatever write it died after, the
//! run ends once: one run per revision, one end Event for it (none lost, none repeated), and
//! the canary of a revision that has ended is never made again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::json;

use crate::support::claim;
use crate::support::procs::{start_operator, start_operator_with_env};
use crate::support::world::{Router, World, run_phase};

/// Every canary Deployment ever seen in the namespace, by revision: the uids of its objects.
/// A watch, not a poll: a canary made and deleted again between two polls is still seen.
#[derive(Clone, Default)]
struct Canaries(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl Canaries {
    fn watch(w: &World) -> Canaries {
        let seen = Canaries::default();
        let log = seen.clone();
        let api: Api<Deployment> = w.deployments();
        let cfg = watcher::Config::default().fields("metadata.name=web-canary");
        tokio::spawn(async move {
            let mut stream = watcher(api, cfg)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(ev) = stream.next().await {
                if let Ok(d) = ev
                    && let Some(spec) = d.spec.as_ref()
                {
                    let rev = rollguard::plan::template_hash(&spec.template);
                    log.0
                        .lock()
                        .unwrap()
                        .entry(rev)
                        .or_default()
                        .insert(d.uid().unwrap_or_default());
                }
            }
        });
        seen
    }

    fn made(&self, revision: &str) -> usize {
        self.0.lock().unwrap().get(revision).map_or(0, |s| s.len())
    }
}

/// Every canary weight the HTTPRoute had, with when the test saw it (a watch).
#[derive(Clone, Default)]
struct Weights(Arc<Mutex<Vec<(Instant, i32)>>>);

impl Weights {
    fn watch(w: &World) -> Weights {
        let seen = Weights::default();
        let log = seen.clone();
        let api: Api<HttpRoute> = Api::namespaced(w.client.clone(), w.n());
        let cfg = watcher::Config::default().fields("metadata.name=web");
        tokio::spawn(async move {
            let mut stream = watcher(api, cfg)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(ev) = stream.next().await {
                let canary = ev
                    .ok()
                    .and_then(|r| r.spec.rules?.first()?.backend_refs.as_ref()?.get(1)?.weight);
                if let Some(c) = canary {
                    log.0.lock().unwrap().push((Instant::now(), c));
                }
            }
        });
        seen
    }

    /// The canary weights set after `t`.
    fn since(&self, t: Instant) -> Vec<i32> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(at, _)| *at > t)
            .map(|(_, c)| *c)
            .collect()
    }
}

/// The Events about `run` with this reason (a series counts as its count).
async fn run_events(w: &World, run: &str, reason: &str) -> i32 {
    let events: Api<Event> = Api::namespaced(w.client.clone(), w.n());
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.related.as_ref().and_then(|r| r.name.as_deref()) == Some(run))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

async fn runs_of(w: &World, revision: &str) -> Vec<RolloutRun> {
    w.runs()
        .list(&ListParams::default())
        .await
        .expect("runs")
        .items
        .into_iter()
        .filter(|r| r.spec.canary_revision == revision)
        .collect()
}

/// One crash: the operator with the fail point `point`, a new template with `image` and
/// `error_rate`; waits for the operator to abort. Returns (revision, run name, when the
/// operator was seen dead).
async fn crash(
    w: &mut World,
    point: &str,
    error_rate: &str,
    image: &str,
) -> (String, String, Instant) {
    let n = w.n().to_string();
    let name = format!("op-{}", point.replace(':', "-").to_lowercase());
    w.set_op(start_operator_with_env(&n, &name, &[], &[("ROLLGUARD_FAIL_AFTER", point)]).await);
    w.deploy(error_rate, image, Some("human")).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.op_mut().alive() {
        assert!(
            Instant::now() < deadline,
            "the operator did not abort at {point}:\n{}",
            w.op().tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = Instant::now();
    assert!(
        w.op().tail(20).contains("fail point reached"),
        "it died at the fail point:\n{}",
        w.op().tail(20)
    );
    let d = w.deployment().await;
    let revision = rollguard::plan::template_hash(&d.spec.expect("spec").template);
    let run = w.run().await.expect("a run");
    assert_eq!(run.spec.canary_revision, revision);
    println!(
        "crash at {point}: run {} was {:?}",
        run.name_any(),
        run_phase(&run)
    );
    (revision, run.name_any(), dead)
}

/// A plain operator again; waits for run `name` to reach `end`.
async fn resume(w: &mut World, point: &str, name: &str, end: Phase) {
    let n = w.n().to_string();
    w.set_op(start_operator(&n).await);
    w.wait(
        &format!("run {name} to end {end:?} after the crash at {point}"),
        Duration::from_secs(120),
        async || {
            let r = w.runs().get(name).await.ok()?;
            (run_phase(&r) == end).then_some(())
        },
    )
    .await;
    println!("crash at {point}: run {name} ended {end:?} after the restart");
}

async fn crash_once(
    w: &mut World,
    point: &str,
    error_rate: &str,
    image: &str,
    end: Phase,
) -> (String, String, Instant) {
    let (revision, name, dead) = crash(w, point, error_rate, image).await;
    resume(w, point, &name, end).await;
    (revision, name, dead)
}

/// After every crash, with a later run as evidence that the operator moved on: each ended
/// run is the only run of its revision, has exactly one end Event, and its canary was made
/// once.
async fn check_ended(
    w: &World,
    canaries: &Canaries,
    ended: &[(String, String, String)],
    reason: &str,
) {
    for (point, revision, run) in ended {
        let runs = runs_of(w, revision).await;
        assert_eq!(runs.len(), 1, "{point}: one run of {revision}: {runs:#?}");
        let events = run_events(w, run, reason).await;
        assert_eq!(
            events, 1,
            "{point}: one {reason} Event for {run}, saw {events}"
        );
        let made = canaries.made(revision);
        assert_eq!(
            made, 1,
            "{point}: the canary of {revision} was made {made} times"
        );
    }
}

/// A 10 s analysis interval: the operator is back before the next sample is due, so what it
/// does then comes from the status and the cluster alone, not from a fresh judgement.
#[tokio::test]
async fn a_crash_after_any_write_of_a_rollback_rolls_back_once() {
    let mut w = World::builder("crash-rb")
        .router(Router::Gateway)
        .analysis(json!({"interval": "10s"}))
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "60s"}, {"weight": "50%", "pause": "60s"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let canaries = Canaries::watch(&w);
    let weights = Weights::watch(&w);
    let mut ended = Vec::new();
    for write in ["weights", "deployment", "delete-canary", "run-status"] {
        let point = format!("RolledBack:{write}");
        let image = format!("example.com/web:bad-{write}");
        let (rev, run, dead) = crash_once(&mut w, &point, "0.5", &image, Phase::RolledBack).await;
        // Every write of the rollback comes after the weights: from the crash on, the
        // rolled-back canary never gets traffic again.
        let after = weights.since(dead);
        assert!(
            after.iter().all(|c| *c == 0),
            "{point}: the canary got traffic again after the crash: {after:?}"
        );
        // The Deployment stays on stable, its failed revision recorded.
        let d = w.deployment().await;
        assert_eq!(d.spec.as_ref().and_then(|s| s.paused), Some(true));
        assert_eq!(
            d.annotations().get("rollguard.dev/failed-revision"),
            Some(&rev)
        );
        ended.push((point, rev, run));
    }
    // The evidence that the operator went on after the last crash: the next change is
    // measured (its 60 s pause keeps it running).
    w.deploy("0", "example.com/web:good", Some("human")).await;
    let good = w
        .wait(
            "a run of the good revision with samples",
            Duration::from_secs(90),
            async || {
                let r = w.run().await?;
                let st = r.status.clone()?;
                (!ended
                    .iter()
                    .any(|(_, rev, _)| *rev == r.spec.canary_revision)
                    && st.sample_count >= 2)
                    .then_some(r)
            },
        )
        .await;
    check_ended(&w, &canaries, &ended, "RolledBack").await;
    println!(
        "rollback crashes survived; the next run {} has samples",
        good.name_any()
    );
    w.finish().await;
}

#[tokio::test]
async fn a_crash_after_any_write_of_a_promotion_promotes_once() {
    let mut w = World::builder("crash-pr")
        .router(Router::Gateway)
        .build()
        .await;
    let canaries = Canaries::watch(&w);
    let mut ended = Vec::new();
    for (i, point) in [
        "Promoting:deployment",
        "Succeeded:weights",
        "Succeeded:deployment",
        "Succeeded:delete-canary",
        "Succeeded:run-status",
    ]
    .into_iter()
    .enumerate()
    {
        let image = format!("example.com/web:good-{i}");
        let (rev, run, _) = crash_once(&mut w, point, "0", &image, Phase::Succeeded).await;
        let d = w.deployment().await;
        assert_eq!(
            d.annotations().get("rollguard.dev/stable-revision"),
            Some(&rev),
            "{point}: the promoted revision is stable"
        );
        ended.push((point.to_string(), rev, run));
    }
    // The evidence that the operator went on after the last crash: one more run promoted.
    w.deploy("0", "example.com/web:good-last", Some("human"))
        .await;
    let last = w
        .wait(
            "one more run promoted",
            Duration::from_secs(120),
            async || {
                let r = w.run().await?;
                (r.spec.canary_revision != ended.last()?.1 && run_phase(&r) == Phase::Succeeded)
                    .then_some(r)
            },
        )
        .await;
    check_ended(&w, &canaries, &ended, "Promoted").await;
    println!(
        "promotion crashes survived; the next run {} succeeded",
        last.name_any()
    );
    w.finish().await;
}

/// The crash right after the rolled-back canary was deleted, and Prometheus unreachable when
/// the operator is back, so the run cannot be judged again: the run stays rolled back and
/// the canary of the failed revision is not made again (before the fix the run was still
/// in flight without its canary, and the operator made it again while it held).
#[tokio::test]
async fn a_crash_after_a_rollback_deleted_the_canary_never_makes_it_again() {
    let _cluster = claim::exclusive().await;
    let mut w = World::builder("crash-blind")
        .router(Router::Gateway)
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "60s"}, {"weight": "50%", "pause": "60s"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let canaries = Canaries::watch(&w);
    let point = "RolledBack:delete-canary";
    let (rev, run, _) = crash(&mut w, point, "0.5", "example.com/web:bad").await;
    crate::faults::cluster(&["stop", "prometheus"]);
    let n = w.n().to_string();
    w.set_op(start_operator(&n).await);
    // Evidence that the operator is at work while blind: the run's end and its Event (the
    // fix), or, without it, samples that failed for want of Prometheus.
    let outcome = crate::support::poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            if canaries.made(&rev) > 1 {
                return Some(Err(format!(
                    "the canary of the failed revision {rev} was made again"
                )));
            }
            let r = w.runs().get(&run).await.ok()?;
            let st = r.status.clone().unwrap_or_default();
            let blind = st
                .samples
                .iter()
                .filter(|s| s.verdict == rollguard::api::run::Verdict::Error)
                .count();
            let ended =
                run_phase(&r) == Phase::RolledBack && run_events(&w, &run, "RolledBack").await == 1;
            if ended {
                Some(Ok(()))
            } else if blind >= 5 {
                Some(Err(format!(
                    "run {run} is still in flight after the crash: {blind} blind samples"
                )))
            } else {
                None
            }
        },
    )
    .await;
    // Prometheus back before any assertion, so a failure here does not blind other tests.
    crate::faults::cluster(&["start", "prometheus"]);
    match outcome {
        Some(Ok(())) => {}
        Some(Err(why)) => panic!("{why}\n{}", w.op().tail(40)),
        None => panic!("neither ended nor sampled:\n{}", w.op().tail(40)),
    }
    assert_eq!(canaries.made(&rev), 1);
    assert_eq!(runs_of(&w, &rev).await.len(), 1);
    println!(
        "crash at {point} with Prometheus down at the restart: {run} stays RolledBack, its canary made once, its Event announced"
    );
    w.finish().await;
}
