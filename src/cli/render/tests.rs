//! Snapshots of what people see, with and without a terminal.

use super::*;
use crate::cli::fixtures::{self, now, web};

/// Compares with a snapshot; on a mismatch prints the actual text with escapes visible.
fn snap(actual: &str, expected: &str) {
    if actual != expected {
        panic!(
            "snapshot differs\n--- actual ---\n{actual}\n--- actual (escaped) ---\n{}\n--- expected ---\n{expected}",
            actual.replace('\x1b', "\\x1b")
        );
    }
}

fn table_views() -> Vec<DeploymentRollouts> {
    let mut cart = web(
        None,
        vec![fixtures::rolled_back("cart-1a2b3c4d", "1a2b3c4d")],
    );
    cart.deployment = "cart".into();
    cart.failed_revision = Some("1a2b3c4d".into());
    cart.template_revision = Some("1a2b3c4d".into());
    let web_view = web(
        Some(fixtures::progressing()),
        vec![fixtures::succeeded("web-6f1c2a9b", "6f1c2a9b")],
    );
    let mut search = web(None, vec![]);
    search.deployment = "search".into();
    search.namespace = "shop".into();
    vec![cart, search, web_view]
}

#[test]
fn table_plain() {
    snap(
        &render_table(&table_views(), false, now(), Style::PLAIN),
        "DEPLOYMENT  TIER         PHASE        STEP  WEIGHT  ERROR RATE  AGE    LAST
cart        -            Blocked      -     -       -           -      RolledBack 5m ago
search      -            Steady       -     -       -           -      -
web         ai-assisted  Progressing  2/3   5%      0.13%/0.5%  9m30s  Succeeded 2h ago
",
    );
}

#[test]
fn table_terminal() {
    snap(
        &render_table(&table_views(), true, now(), Style::TERMINAL),
        "NAMESPACE  DEPLOYMENT  TIER         PHASE        STEP     WEIGHT  ERROR RATE  AGE    LAST
shop       cart        -            \x1b[31mBlocked\x1b[0m      -        -       -           -      \x1b[31mRolledBack 5m ago\x1b[0m
shop       search      -            Steady       -        -       -           -      -
shop       web         ai-assisted  \x1b[36mProgressing\x1b[0m  \x1b[32m▰\x1b[0m\x1b[36m▰\x1b[0m\x1b[2m▱\x1b[0m 2/3  5%      0.13%/0.5%  9m30s  \x1b[32mSucceeded 2h ago\x1b[0m
",
    );
}

#[test]
fn detail_in_flight_plain() {
    let v = web(
        Some(fixtures::progressing()),
        vec![fixtures::succeeded("web-6f1c2a9b", "6f1c2a9b")],
    );
    snap(&render_detail(&v, now(), Style::PLAIN), "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b

Run:         web-8d3e41f0  Progressing  started 9m30s ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Judge:       threshold: roll back once shown above 0.5% error rate (alpha 1%); every 30s; approval required
Steps:       step 2/3 at 5%, 6m left (done 1%; next 25%)
Weight:      5% of traffic on the canary
Analysis:    10s ago, step 2: 1520 requests, 2 errors, rate 0.13% vs threshold 0.5%: Pass (18 samples)
Approvals:   required, none yet: kubectl rollguard approve web -n shop

History:
RUN           REVISION  TIER         OUTCOME    ENDED   REASON
web-6f1c2a9b  6f1c2a9b  ai-assisted  Succeeded  2h ago  Promoted
");
}

#[test]
fn detail_in_flight_terminal() {
    let v = web(Some(fixtures::progressing()), vec![]);
    snap(&render_detail(&v, now(), Style::TERMINAL), "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b

Run:         web-8d3e41f0  \x1b[36mProgressing\x1b[0m  started 9m30s ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Judge:       threshold: roll back once shown above 0.5% error rate (alpha 1%); every 30s; approval required
Steps:       \x1b[32m████████\x1b[0m \x1b[36m███\x1b[0m\x1b[2m░░░░░\x1b[0m \x1b[2m░░░░░░░░\x1b[0m step 2/3 at 5%, 6m left
             1%       \x1b[1m5%\x1b[0m       25%
Weight:      5% of traffic on the canary
Analysis:    10s ago, step 2: 1520 requests, 2 errors, rate 0.13% vs threshold 0.5%: \x1b[32mPass\x1b[0m (18 samples)
Approvals:   required, none yet: kubectl rollguard approve web -n shop
");
}

#[test]
fn detail_awaiting_approval_plain() {
    let v = web(Some(fixtures::awaiting_approval()), vec![]);
    snap(&render_detail(&v, now(), Style::PLAIN), "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b

Run:         web-8d3e41f0  AwaitingApproval  started 9m30s ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Judge:       threshold: roll back once shown above 0.5% error rate (alpha 1%); every 30s; approval required
Steps:       all 3 steps passed (done 1%, 5%, 25%)
Weight:      25% of traffic on the canary
Analysis:    10s ago, step 2: 1520 requests, 2 errors, rate 0.13% vs threshold 0.5%: Pass (18 samples)
Waiting:     AwaitingApproval: all steps passed; waiting for `kubectl rollguard approve`
Approvals:   required, none yet: kubectl rollguard approve web -n shop
");
}

#[test]
fn detail_rolled_back_plain() {
    let mut v = web(
        None,
        vec![
            fixtures::rolled_back("web-8d3e41f0", "8d3e41f0"),
            fixtures::succeeded("web-6f1c2a9b", "6f1c2a9b"),
        ],
    );
    v.failed_revision = Some("8d3e41f0".into());
    v.template_revision = Some("8d3e41f0".into());
    snap(&render_detail(&v, now(), Style::PLAIN), "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b
Failed:      8d3e41f0

Run:         none in flight
Last run:    web-8d3e41f0  RolledBack  ended 5m ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Outcome:     ErrorRateAboveThreshold: rolled back: 420 canary requests, 9 errors (2.1429%) is above the threshold 0.5% (1 failed sample(s))
Evidence:    5m ago, step 1: 420 requests, 9 errors, rate 2.1429% vs threshold 0.5%: Fail (6 samples)
             requests: sum(increase(http_requests_total{workload=\"web-canary\"}[4m]))
             errors:   sum(increase(http_requests_total{workload=\"web-canary\",code=~\"5..\"}[4m]))
Retry:       revision 8d3e41f0 is marked failed and is not retried until the template changes: kubectl rollguard retry web -n shop

History:
RUN           REVISION  TIER         OUTCOME     ENDED   REASON
web-8d3e41f0  8d3e41f0  ai-assisted  RolledBack  5m ago  ErrorRateAboveThreshold
web-6f1c2a9b  6f1c2a9b  ai-assisted  Succeeded   2h ago  Promoted
");
}

#[test]
fn sample_lines() {
    snap(
        &sample_line(&fixtures::sequential_sample()),
        "800 requests, 2 errors, rate 0.25%; statistic 1.234 vs rollback boundary 4.595, accept boundary -2.944 (p0 0.1%, p1 0.5%): Continue",
    );
}

#[test]
fn latency_lines() {
    let judged = crate::api::run::LatencySample {
        objective: "250ms".into(),
        query: None,
        requests: Some(424),
        slow: Some(54),
        stable_requests: Some(3696),
        stable_slow: Some(4),
        rate: Some("12.7962%".into()),
        threshold: Some("5%".into()),
        statistic: Some("18.629".into()),
        upper_bound: Some("5.940".into()),
        lower_bound: None,
        baseline: Some("1%".into()),
        verdict: Verdict::Fail,
        message: None,
    };
    snap(
        &latency_line(&judged),
        "slower than 250ms: 54 of 424 requests, rate 12.7962%; statistic 18.629 vs rollback boundary 5.940 (p0 1%, p1 5%): Fail",
    );
    let refused = crate::api::run::LatencySample {
        requests: None,
        slow: None,
        statistic: None,
        verdict: Verdict::Error,
        message: Some("the latency objective 0.3s is not a bucket bound".into()),
        ..judged
    };
    snap(
        &latency_line(&refused),
        "slower than 250ms: Error: the latency objective 0.3s is not a bucket bound",
    );
}

#[test]
fn detail_aborted_terminal() {
    let mut v = web(None, vec![fixtures::aborted()]);
    v.failed_revision = Some("8d3e41f0".into());
    snap(&render_detail(&v, now(), Style::TERMINAL), "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b
Failed:      8d3e41f0

Run:         none in flight
Last run:    web-8d3e41f0  \x1b[31mAborted\x1b[0m  ended 5m ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Outcome:     Aborted: aborted by bob: dashboards look wrong
Analysis:    5m ago, step 1: 420 requests, 9 errors, rate 2.1429% vs threshold 0.5%: \x1b[31mFail\x1b[0m (6 samples)
             requests: sum(increase(http_requests_total{workload=\"web-canary\"}[4m]))
             errors:   sum(increase(http_requests_total{workload=\"web-canary\",code=~\"5..\"}[4m]))

History:
RUN           REVISION  TIER         OUTCOME  ENDED   REASON
web-8d3e41f0  8d3e41f0  ai-assisted  \x1b[31mAborted\x1b[0m  5m ago  Aborted
");
}

#[test]
fn detail_sequential_paused_plain() {
    let mut run = fixtures::sequential(fixtures::progressing());
    if let Some(st) = run.status.as_mut() {
        st.samples = vec![fixtures::sequential_sample()];
    }
    run.spec.control = Some(crate::api::run::RunControl {
        pause: Some(crate::api::run::Command {
            user: "carol".into(),
            time: fixtures::ago(90),
            reason: Some("checking logs".into()),
        }),
        ..Default::default()
    });
    run.spec.approvals = vec![crate::api::run::Approval {
        user: "alice@example.com".into(),
        groups: vec!["sre".into(), "system:authenticated".into()],
        time: fixtures::ago(30),
        run: None,
        revision: None,
        step: None,
    }];
    snap(
        &render_detail(&web(Some(run), vec![]), now(), Style::PLAIN),
        "Deployment:  shop/web
Policy:      shop
Stable:      6f1c2a9b

Run:         web-8d3e41f0  Progressing  started 9m30s ago
Revision:    6f1c2a9b -> 8d3e41f0
Tier:        ai-assisted (pod template annotation rollguard.dev/change-origin=ai-assisted)
Judge:       sequential test: a good revision errs at 0.1%, a bad one at 0.5%; every 30s; approval required
Steps:       step 2/3 at 5%, 6m left (done 1%; next 25%)
Weight:      5% of traffic on the canary
Analysis:    5s ago, step 1: 800 requests, 2 errors, rate 0.25%; statistic 1.234 vs rollback boundary 4.595, accept boundary -2.944 (p0 0.1%, p1 0.5%): Continue (18 samples)
Approvals:   alice@example.com (groups sre, system:authenticated), 30s ago
Commands:    paused by carol 1m30s ago: checking logs
",
    );
}

#[test]
fn plain_output_has_no_escapes_and_terminal_output_has_bars() {
    let v = web(Some(fixtures::progressing()), vec![]);
    let plain = render_detail(&v, now(), Style::PLAIN)
        + &render_table(std::slice::from_ref(&v), false, now(), Style::PLAIN);
    assert!(
        !plain.contains('\x1b') && !plain.contains('█') && !plain.contains('▰'),
        "{plain}"
    );
    let tty = render_detail(&v, now(), Style::TERMINAL);
    assert!(tty.contains('█') && tty.contains('\x1b'), "{tty}");
}

#[test]
fn durations_read_like_kubectl_ages() {
    let d = |s| human_duration(Duration::from_secs(s));
    assert_eq!(
        [
            d(0),
            d(59),
            d(60),
            d(192),
            d(600),
            d(3599),
            d(3600),
            d(7500),
            d(86_400),
            d(90_000),
            d(30 * 86_400)
        ],
        [
            "0s", "59s", "1m", "3m12s", "10m", "59m", "1h", "2h5m", "1d", "1d1h", "30d"
        ]
    );
}

/// The stable-above-p0 warning (condition `Baseline`, `False`) is shown as a problem, with
/// its message.
#[test]
fn a_stable_rate_above_p0_is_shown_as_a_problem() {
    let mut run = fixtures::progressing();
    let message = crate::run::stable_rate::message(0.003, 0.001, 20_000.0, 60.0);
    if let Some(st) = run.status.as_mut() {
        st.conditions = vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: crate::run::condition::BASELINE.into(),
            status: "False".into(),
            reason: crate::run::STABLE_ABOVE_P0.into(),
            message: message.clone(),
            last_transition_time: fixtures::ago(60),
            observed_generation: None,
        }];
    }
    let v = web(Some(run), vec![]);
    let text = render_detail(&v, now(), Style::PLAIN);
    let line = text
        .lines()
        .find(|l| l.starts_with("Problem:"))
        .unwrap_or_else(|| panic!("no problem line in\n{text}"));
    assert!(
        line.contains("Baseline StableAboveP0: the stable revision failed 0.3%"),
        "{line}"
    );
}
