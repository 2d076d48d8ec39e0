//! Presets (`spec.analysis.preset`) against the real Prometheus: the traffic simulator
//! exports the same traffic as each data plane counts it (metric and label names as each
//! project documents them, 5xx series created at the first failure), and a policy that names
//! only the preset, no templates, rolls a failing canary back at its first slice and promotes
//! a clean one. The backend-Service presets run with the Gateway API router, the others with
//! the replicas router.

use std::time::Duration;

use rollguard::api::policy::Preset;
use rollguard::api::run::Phase;
use serde_json::json;

use crate::support;
use crate::support::world::{Router, World};

fn tiers() -> serde_json::Value {
    json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}], "maxErrorRate": "2%"}])
}

async fn world(p: Preset) -> World {
    let router = if p.needs_backend_services() {
        Router::Gateway
    } else {
        Router::Replicas
    };
    World::builder(&format!("preset-{}", p.name().to_lowercase()))
        .router(router)
        .analysis(json!({
            "preset": p.name(),
            "requests": null,
            "errors": null,
            "prometheus": {"address": support::prometheus_url()},
            "minRequests": 100,
        }))
        .tiers(tiers())
        .build()
        .await
}

#[tokio::test]
async fn every_preset_judges_the_canary_from_its_data_planes_metrics() {
    for p in Preset::ALL {
        let w = world(p).await;
        // The policy as stored names the preset and no template.
        let policy = w.policies().get("shop").await.expect("the policy");
        assert_eq!(policy.spec.analysis.preset, Some(p));
        assert!(policy.spec.analysis.requests.is_none() && policy.spec.analysis.errors.is_none());

        // A canary failing 20% is rolled back at its first slice, from the preset's queries.
        w.deploy("0.2", "example.com/web:2", Some("human")).await;
        let run = w
            .wait_phase(Phase::RolledBack, Duration::from_secs(60))
            .await;
        let st = run.status.clone().expect("status");
        assert_eq!(st.step, 0, "{p}: rolled back at its first slice");
        let metric = p
            .templates()
            .requests
            .trim_start_matches("sum(increase(")
            .split('{')
            .next()
            .unwrap_or_default()
            .to_string();
        let sample = st.samples.last().expect("a sample");
        let query = sample.requests_query.clone().unwrap_or_default();
        assert!(query.contains(&metric), "{p}: {query}");
        println!(
            "{p}: rolled back after {} requests, {} errors ({}), query {query}",
            sample.requests.unwrap_or_default(),
            sample.errors.unwrap_or_default(),
            sample.rate.clone().unwrap_or_default(),
        );

        // A clean canary (no 5xx series ever appears for it: `or vector(0)` answers) is promoted.
        w.deploy("0", "example.com/web:3", Some("human")).await;
        let run = w
            .wait_phase(Phase::Succeeded, Duration::from_secs(90))
            .await;
        let st = run.status.expect("status");
        let sample = st.samples.last().expect("a sample");
        assert_eq!(
            sample.errors,
            Some(0),
            "{p}: the clean canary's errors come from or vector(0)"
        );
        w.finish().await;
    }
}

/// The preset's latency histogram (every preset but NGINX Plus, which exports none): a tier
/// with a latency objective, one of that data plane's own bounds, rolls a slow canary back at
/// its first slice from the preset's histogram alone, its errors clean, and promotes a canary
/// as fast as stable.
#[tokio::test]
async fn every_presets_histogram_judges_slow_requests() {
    for p in Preset::ALL {
        let Some((histogram, _)) = p.templates().latency else {
            continue;
        };
        // A bound of this data plane's histogram (Linkerd's and Traefik's have no 250ms).
        let objective = match p {
            Preset::Linkerd | Preset::Traefik => "300ms",
            _ => "250ms",
        };
        let router = if p.needs_backend_services() {
            Router::Gateway
        } else {
            Router::Replicas
        };
        let w = World::builder(&format!("slow-{}", p.name().to_lowercase()))
            .router(router)
            .analysis(json!({
                "preset": p.name(),
                "requests": null,
                "errors": null,
                "prometheus": {"address": support::prometheus_url()},
                "minRequests": 100,
            }))
            .tiers(json!([{
                "name": "standard",
                "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}],
                "maxErrorRate": "2%",
                "latency": {"objective": objective, "maxSlowRate": "5%"}
            }]))
            .build()
            .await;
        // Stable answers in 50ms (median): 0.02-0.06% of its requests are past the objective;
        // the canary's 200ms median puts 21-33% of them past it.
        w.deploy_annotated(
            json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "200ms"}),
            "example.com/web:2",
        )
        .await;
        let run = w
            .wait_phase(Phase::RolledBack, Duration::from_secs(60))
            .await;
        let st = run.status.clone().expect("status");
        assert_eq!(st.step, 0, "{p}: rolled back at its first slice");
        assert_eq!(
            st.reason.as_deref(),
            Some("SlowRequestsAboveThreshold"),
            "{p}: {:?}",
            st.message
        );
        let slow = st
            .evidence
            .clone()
            .and_then(|e| e.latency)
            .expect("latency evidence");
        let metric = histogram
            .trim_start_matches("sum by (le) (increase(")
            .split('{')
            .next()
            .unwrap_or_default();
        let query = slow.query.clone().unwrap_or_default();
        assert!(query.contains(metric), "{p}: {query}");
        println!(
            "{p}: rolled back after {} of {} requests slower than {objective} ({})",
            slow.slow.unwrap_or_default(),
            slow.requests.unwrap_or_default(),
            slow.rate.clone().unwrap_or_default()
        );

        w.deploy_annotated(
            json!({"sim.rollguard.dev/error-rate": "0", "sim.rollguard.dev/latency": "50ms"}),
            "example.com/web:3",
        )
        .await;
        let run = w
            .wait_phase(Phase::Succeeded, Duration::from_secs(90))
            .await;
        let st = run.status.expect("status");
        let last = st.samples.last().and_then(|s| s.latency.clone());
        assert!(
            last.as_ref()
                .is_some_and(|l| l.verdict == rollguard::api::run::Verdict::Pass),
            "{p}: {last:?}"
        );
        w.finish().await;
    }
}
