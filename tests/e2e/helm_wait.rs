//! `helm upgrade --wait` on a governed Deployment (issue #17 point 7), with the pinned helm:
//! Helm's ready check counts a paused Deployment as ready, and a new template of a governed
//! Deployment is paused (by the pause gate in the write that brings it, or because rollguard
//! holds it paused between runs without the gate), so `--wait` returns before the verdict in
//! both modes. `kubectl rollguard wait` right after it is what waits for the verdict: it exits
//! 10 for a bad change and 0 for a good one. The commands are the ones `docs/gitops.md` shows.

use std::path::Path;
use std::time::Instant;

use rollguard::api::run::Phase;
use serde_json::{Value, json};

use crate::support;
use crate::support::procs::rollguard_bin;
use crate::support::world::{APP, World, deployment, run_phase};

/// A chart with the world's Deployment `web`, its image and simulated error rate from values.
fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).expect("chart dir");
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    let mut d: Value = deployment();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("IMAGE");
    d["spec"]["template"]["metadata"]["annotations"]["sim.rollguard.dev/error-rate"] =
        json!("ERRORS");
    let yaml = serde_json::to_string_pretty(&d)
        .expect("json")
        .replace("\"IMAGE\"", "{{ .Values.image | quote }}")
        .replace("\"ERRORS\"", "{{ .Values.errorRate | quote }}");
    std::fs::write(dir.join("templates/deployment.yaml"), yaml).expect("template");
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(program: &Path, args: &[&str]) -> Out {
    let o = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", support::kubeconfig_path())
        .output()
        .await
        .expect("running a command");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[tokio::test]
async fn helm_wait_returns_before_the_verdict_and_rollguard_wait_gives_it() {
    let helm = support::pinned_helm().unwrap_or_else(|| "helm".into());
    for gated in [true, false] {
        let mut b = World::builder("helmwait");
        if !gated {
            b = b.ungated();
        }
        let w = b.build().await;
        let chart = std::env::temp_dir().join(format!("{}-chart", w.n()));
        write_chart(&chart);
        let chart = chart.to_string_lossy().into_owned();
        // The release takes over the Deployment the world made (as adopting an existing app
        // into Helm does); its manifest is the same template, so no run starts.
        let upgrade = |image: &'static str, errors: &'static str| {
            let (helm, chart, ns) = (helm.clone(), chart.clone(), w.n().to_string());
            async move {
                let started = Instant::now();
                let out = run(
                    &helm,
                    &[
                        "upgrade",
                        "--install",
                        "web",
                        &chart,
                        "-n",
                        &ns,
                        "--take-ownership",
                        "--wait",
                        "--timeout",
                        "5m",
                        "--set",
                        &format!("image={image}"),
                        "--set",
                        &format!("errorRate={errors}"),
                    ],
                )
                .await;
                assert_eq!(out.code, 0, "helm upgrade: {}{}", out.stdout, out.stderr);
                started.elapsed()
            }
        };
        upgrade("example.com/web:1", "0.001").await;
        // A bad change: `--wait` returns before the verdict.
        let took = upgrade("example.com/web:2", "0.5").await;
        let returned = jiff::Timestamp::now();
        let waited = run(
            &rollguard_bin(),
            &["wait", APP, "-n", w.n(), "--timeout", "3m"],
        )
        .await;
        assert_eq!(
            waited.code, 10,
            "rollguard wait: {}{}",
            waited.stdout, waited.stderr
        );
        let r = w.run().await.expect("the run");
        assert_eq!(run_phase(&r), Phase::RolledBack);
        let ended = r.status.and_then(|s| s.ended_at).expect("endedAt").0;
        assert!(
            ended > returned,
            "helm --wait returned at {returned}, after the verdict at {ended} (gated {gated})"
        );
        println!(
            "helm upgrade --wait returned after {took:?}, {:.1} s before the rollback (gated {gated})",
            ended.duration_since(returned).as_secs_f64()
        );
        // The fix: `--wait` returns early again, and `rollguard wait` exits 0 when promoted.
        upgrade("example.com/web:3", "0.001").await;
        let waited = run(
            &rollguard_bin(),
            &["wait", APP, "-n", w.n(), "--timeout", "3m"],
        )
        .await;
        assert_eq!(
            waited.code, 0,
            "rollguard wait: {}{}",
            waited.stdout, waited.stderr
        );
        w.finish().await;
    }
}
