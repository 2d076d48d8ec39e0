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
