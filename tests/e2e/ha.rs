//! High availability: two operator processes with leader election; the leader is killed
//! with SIGKILL mid-run and the follower takes over and finishes the run at its step, with
//! no transition done twice.

use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use rollguard::api::run::Phase;

use crate::support;
use crate::support::procs::start_operator_named;
use crate::support::world::{World, lease_args};

#[tokio::test]
async fn the_follower_takes_over_when_the_leader_is_killed() {
    let mut w = World::builder("ha").leader_elected().build().await;
    let n = w.n().to_string();
    let mut follower = start_operator_named(&n, "op-1", &lease_args(&n)).await;
    // The follower is Ready (readiness does not depend on leadership) but does not write.
    assert!(follower.alive());
    let runs = w.runs();
    w.new_template().await;
    let before = support::wait_for(Duration::from_secs(30), "the first slice", async || {
        let r = runs.list(&ListParams::default()).await.ok()?.items.pop()?;
        r.status.as_ref()?.step_started_at.as_ref()?;
        Some(r)
    })
    .await;
    assert!(
        !follower.tail(200).contains("acquired leadership"),
        "only one leader"
    );
    w.op_mut().kill9();
    let killed = Instant::now();
    support::wait_for(
        Duration::from_secs(30),
        "the follower to take the Lease",
        async || {
            follower
                .tail(400)
                .contains("acquired leadership")
                .then_some(())
        },
    )
    .await;
    let takeover = killed.elapsed().as_secs_f64();
    let done = support::wait_for(
        Duration::from_secs(60),
        "the run to succeed under the new leader",
        async || {
            let r = runs.get(&before.name_any()).await.ok()?;
            (r.status.as_ref()?.phase == Phase::Succeeded).then_some(r)
        },
    )
    .await;
    let st = done.status.expect("status");
    assert_eq!(st.step, 1, "it finished both steps");
    // No transition done twice: one StepStarted per step, one Promoted.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), &n);
    let count = |reason: &str, all: &[k8s_openapi::api::events::v1::Event]| -> i32 {
        all.iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
            .sum()
    };
    let all = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert_eq!(count("StepStarted", &all), 2, "one StepStarted per step");
    assert_eq!(count("Promoted", &all), 1);
    assert_eq!(count("RunStarted", &all), 1);
    println!(
        "leader killed with SIGKILL; the follower took the Lease {takeover:.1}s later (lease duration 6s) and finished the run"
    );
    assert!(takeover < 12.0, "takeover took {takeover:.1}s");
    assert!(follower.alive());
    w.finish().await;
}
