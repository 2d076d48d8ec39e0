//! The chart's governance guard (issue #14 point 5), its copy rendered with
//! `governanceGuard.enabled=true`, `taggerUsers={ci-bot}` and
//! `labels={app.kubernetes.io/part-of}` and bound to this test's namespace only: two
//! impersonated users holding exactly a Role to read and patch Deployments try to step out of
//! governance while a run is in flight. Every attempt by the developer is refused with a
//! message naming the field; the tagger may set the tag; an ordinary template change passes
//! (and the pause gate pauses it).

use std::time::Duration;

use kube::ResourceExt;
use serde_json::json;

use crate::support;
use crate::support::admission::{self, GOVERNANCE_GUARDED, Policy};
use crate::support::world::World;

async fn kubectl(args: &[&str]) -> (bool, String) {
    let o = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .await
        .expect("running kubectl");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[tokio::test]
async fn editing_a_governed_deployment_cannot_step_out_of_governance() {
    let w = World::builder("guard")
        .tiers(json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "1h"}], "maxErrorRate": "5%"}]))
        .build()
        .await;
    let client = w.client.clone();
    w.deployers(&["dev", "ci-bot"]).await;
    admission::in_force(&client, Policy::GovernanceGuard).await;
    support::label_namespace(&client, w.n(), GOVERNANCE_GUARDED, Some("true")).await;
    // A run in flight: the Deployment is paused on the change under trial.
    w.deploy("0.001", "example.com/web:2", Some("ai-assisted"))
        .await;
    w.wait("the 10% slice", Duration::from_secs(30), async || {
        w.run().await?.status?.step_started_at.map(|_| ())
    })
    .await;
    let ns = w.n();
    let patch = |who: &'static str, body: serde_json::Value| {
        let body = body.to_string();
        async move {
            kubectl(&[
                "patch",
                "deployment/web",
                "-n",
                ns,
                "--as",
                who,
                "--type=merge",
                "-p",
                &body,
            ])
            .await
        }
    };
    // The API server loads the policy asynchronously: the first refusal shows it acts.
    let resume = support::poll(
        Duration::from_secs(30),
        Duration::from_millis(300),
        async || {
            let (ok, said) = kubectl(&[
                "rollout",
                "resume",
                "deployment/web",
                "-n",
                ns,
                "--as",
                "dev",
            ])
            .await;
            (!ok).then_some(said)
        },
    )
    .await
    .expect("a resume by hand refused within 30 s");
    assert!(
        resume.contains("spec.paused of governed Deployment")
            && resume.contains("dev may not unpause it"),
        "{resume}"
    );
    let attempts = [
        (
            json!({"metadata": {"annotations": {"rollguard.dev/change-origin": "human"}}}),
            "rollguard.dev/change-origin on governed Deployment",
        ),
        (
            json!({"spec": {"template": {"metadata": {"annotations": {"rollguard.dev/change-origin": "human"}}}}}),
            "rollguard.dev/change-origin on governed Deployment",
        ),
        (
            json!({"metadata": {"labels": {"app.kubernetes.io/part-of": null}}}),
            "the label(s) app.kubernetes.io/part-of of governed Deployment",
        ),
        (
            json!({"metadata": {"annotations": {"rollguard.dev/policy": null}}}),
            "the annotation(s) rollguard.dev/policy of governed Deployment",
        ),
        // The author stamp four eyes rests on: only the gate writes it.
        (
            json!({"metadata": {"annotations": {"rollguard.dev/changed-by": "someone-else"}}}),
            "rollguard.dev/changed-by of governed Deployment",
        ),
        (
            json!({"metadata": {"annotations": {"rollguard.dev/changed-by": "dev"}}}),
            "rollguard.dev/changed-by of governed Deployment",
        ),
    ];
    for (body, says) in attempts {
        let (ok, said) = patch("dev", body.clone()).await;
        assert!(
            !ok && said.contains(says) && said.contains("dev"),
            "{body}: {said}"
        );
    }
    // What stays open: the tagger sets the tag, anyone RBAC lets in changes the template
    // (paused at admission, a new run judges it).
    let (ok, said) = patch(
        "ci-bot",
        json!({"metadata": {"annotations": {"rollguard.dev/change-origin": "ai-generated"}}}),
    )
    .await;
    assert!(ok, "the tagger: {said}");
    let (ok, said) = patch(
        "dev",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:3"}]}}}}),
    )
    .await;
    assert!(ok, "a template change: {said}");
    let d = w.deployment().await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.paused), Some(true));
    // ... stamped by the gate with its author, which the guard lets through; a stamp sent
    // with a template change names the sender whatever it said.
    assert_eq!(
        d.annotations()
            .get("rollguard.dev/changed-by")
            .map(String::as_str),
        Some("dev")
    );
    let (ok, said) = patch(
        "dev",
        json!({"metadata": {"annotations": {"rollguard.dev/changed-by": "someone-else"}},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:4"}]}}}}),
    )
    .await;
    assert!(ok, "a template change with a stamp: {said}");
    assert_eq!(
        w.deployment()
            .await
            .annotations()
            .get("rollguard.dev/changed-by")
            .map(String::as_str),
        Some("dev")
    );
    assert_eq!(
        d.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/part-of"))
            .map(String::as_str),
        Some("shop")
    );
    w.finish().await;
}

/// Without the guard the tag is believed, but only towards stricter: a developer with exactly
/// the deployer Role re-tags the AI change on trial `human`. The re-tagged template is a new
/// revision and replaces the run, yet its run keeps the AI tier (the 1% slice) and says why;
/// the run before this change took the lax tier's 10%.
#[tokio::test]
async fn without_the_guard_re_tagging_a_change_on_trial_keeps_its_stricter_tier() {
    let ai = json!({"name": "ai-assisted",
        "match": {"annotations": {"rollguard.dev/change-origin": ["ai-assisted"]}},
        "steps": [{"weight": "1%", "pause": "1h"}], "maxErrorRate": "5%"});
    let standard = json!({"name": "standard", "steps": [{"weight": "10%", "pause": "1h"}], "maxErrorRate": "5%"});
    let w = World::builder("retag")
        .tiers(json!([ai, standard]))
        .build()
        .await;
    w.deployers(&["dev"]).await;
    w.deploy("0.001", "example.com/web:2", Some("ai-assisted"))
        .await;
    let first = w
        .wait(
            "the AI change's 1% slice",
            Duration::from_secs(30),
            async || {
                let r = w.run().await?;
                r.status.as_ref()?.step_started_at.as_ref()?;
                Some(r)
            },
        )
        .await;
    assert_eq!(first.spec.tier.name, "ai-assisted");
    let (ok, said) = kubectl(&[
        "patch",
        "deployment/web",
        "-n",
        w.n(),
        "--as",
        "dev",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"rollguard.dev/change-origin":"human"}}}}}"#,
    ])
    .await;
    assert!(ok, "without the guard the re-tag is accepted: {said}");
    let second = w
        .wait(
            "the re-tagged revision's run at its first slice",
            Duration::from_secs(30),
            async || {
                let runs = w.runs().list(&Default::default()).await.ok()?.items;
                let r = runs
                    .into_iter()
                    .find(|r| r.spec.canary_revision != first.spec.canary_revision)?;
                r.status.as_ref()?.step_started_at.as_ref()?;
                Some(r)
            },
        )
        .await;
    let why = &second.spec.tier.reason;
    assert_eq!(second.spec.tier.name, "ai-assisted", "{why}");
    assert!(
        why.contains(&format!(
            "kept tier ai-assisted of run {}",
            first.name_any()
        )) && why.contains("matched tier standard"),
        "{why}"
    );
    let st = second.status.expect("status");
    assert_eq!(
        st.weight.map(|r| r.to_string()).as_deref(),
        Some("1%"),
        "the re-tagged change gets the AI tier's slice: {st:?}"
    );
    let first = w
        .runs()
        .get(&first.name_any())
        .await
        .expect("the first run");
    assert_eq!(
        first.status.and_then(|s| s.reason).as_deref(),
        Some("Superseded")
    );
    w.finish().await;
}
