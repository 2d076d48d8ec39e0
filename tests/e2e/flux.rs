//! Real Flux (issue #17 point 6): Flux's own source-controller and kustomize-controller, built
//! from their Go modules (`tests/cluster/build.sh flux`), deploy `web` from a Git repository
//! served on 127.0.0.1 by Git's own `git http-backend`. A bad AI-tagged commit is applied by
//! Flux, rolled back by rollguard, and the Kustomization (`wait: true`, kstatus) reports the
//! failure; the fix committed to Git is promoted and the Kustomization is Ready again.
//!
//! Ignored by default: the two controllers cost ~7 min of CPU each to build cold, which the
//! CI's cold budget has no room for. `make test-gitops` builds them (cached by version) and runs
//! it (docs/testing.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use rollguard::api::run::Phase;
use serde_json::{Value, json};

use crate::support::world::{APP, World, deployment, run_phase};
use crate::support::{self, free_port, kubeconfig_path, pinned_version};

/// A process killed when dropped, logging to `target/e2e-logs/<name>.log`.
struct Bg {
    child: Child,
    log: PathBuf,
}

impl Bg {
    fn start(name: &str, cmd: &mut Command) -> Bg {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-logs");
        std::fs::create_dir_all(&dir).expect("the log dir");
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("the log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the log handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Bg { child, log }
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `<cache>/bin/<name>-<FLUX_VERSION><ext>`, which `tests/cluster/build.sh flux` makes.
fn cached_bin(name: &str, ext: &str) -> PathBuf {
    let bin = support::cached(&format!("{name}-{}{ext}", pinned_version("FLUX_VERSION")));
    assert!(
        bin.exists(),
        "{} is missing: run `tests/cluster/build.sh flux` (or `make test-gitops`)",
        bin.display()
    );
    bin
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.email=dev@example.com", "-c", "user.name=dev"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Git repository: a bare one served over HTTP, and a work tree that commits to it.
struct Repo {
    work: PathBuf,
    _server: Bg,
    url: String,
}

impl Repo {
    fn new(root: &Path) -> Repo {
        let bare = root.join("srv/app.git");
        std::fs::create_dir_all(&bare).expect("the bare repo dir");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("the work tree");
        git(&work, &["init", "-q", "-b", "main"]);
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("a path")],
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flux/git_http.py");
        let server = Bg::start(
            "flux-git-http",
            Command::new("python3").arg(script).arg(root.join("srv")),
        );
        let mut url = None;
        for _ in 0..100 {
            if let Some(line) = std::fs::read_to_string(&server.log)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("listening on ").map(String::from))
            {
                url = Some(format!("http://{line}/app.git"));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let url = url.unwrap_or_else(|| panic!("the git server did not start:\n{}", server.tail()));
        Repo {
            work,
            _server: server,
            url,
        }
    }

    /// Commits `web` with this template and pushes it.
    fn commit(&self, error_rate: &str, image: &str, origin: &str, message: &str) {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["annotations"] = json!({
            "sim.rollguard.dev/error-rate": error_rate,
            "rollguard.dev/change-origin": origin,
        });
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        std::fs::write(
            self.work.join("web.yaml"),
            serde_json::to_string_pretty(&d).expect("the manifest"),
        )
        .expect("writing the manifest");
        git(&self.work, &["add", "web.yaml"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "main"]);
    }
}

fn flux_api(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// The Kustomization's Ready condition: (status, reason, message).
async fn ready(ks: &Api<DynamicObject>) -> Option<(String, String, String)> {
    let k = ks.get("web").await.ok()?;
    let c = k.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

fn applied_revision(k: &Value) -> String {
    k["status"]["lastAppliedRevision"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
#[ignore = "needs Flux's controllers: run with `make test-gitops`"]
async fn flux_applies_a_bad_ai_change_rollguard_rolls_it_back_and_the_fix_is_promoted() {
    let source_controller = cached_bin("source-controller", "");
    let kustomize_controller = cached_bin("kustomize-controller", "");
    let crds = cached_bin("flux-crds", ".yaml");
    let apply = Command::new("kubectl")
        .args(["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(&crds)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .expect("kubectl apply");
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );

    // rollguard governs whatever Flux applies as `web`; the world's own `web` is the first
    // commit's, so Flux takes it over (server-side apply, as kustomize-controller does).
    let w = World::builder("flux")
        .analysis(json!({"prometheus": {"address": support::prometheus_url()}, "minRequests": 100}))
        .tiers(json!([
            {"name": "ai-assisted", "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}],
             "maxErrorRate": "2%", "match": {"annotations": {"rollguard.dev/change-origin": ["ai-assisted"]}}},
            {"name": "standard", "steps": [{"weight": "50%", "pause": "3s"}], "maxErrorRate": "2%"}
        ]))
        .build()
        .await;
    let n = w.n().to_string();
    let root = std::env::temp_dir().join(format!("rollguard-flux-{n}"));
    let _ = std::fs::remove_dir_all(&root);
    let repo = Repo::new(&root);
    repo.commit("0.001", "example.com/web:1", "human", "web 1");

    // Flux's controllers, as processes with the admin's kubeconfig, watching this namespace.
    let storage = root.join("storage");
    std::fs::create_dir_all(&storage).expect("the artifact storage dir");
    let storage_addr = format!("127.0.0.1:{}", free_port());
    let _source = Bg::start(
        &format!("{n}-source-controller"),
        Command::new(&source_controller)
            .arg(format!("--storage-path={}", storage.display()))
            .arg(format!("--storage-addr={storage_addr}"))
            .arg(format!("--storage-adv-addr={storage_addr}"))
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .arg("--watch-all-namespaces=false")
            .env("RUNTIME_NAMESPACE", &n)
            .env("KUBECONFIG", kubeconfig_path()),
    );
    let kustomize = Bg::start(
        &format!("{n}-kustomize-controller"),
        Command::new(&kustomize_controller)
            .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
            .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
            .arg("--watch-all-namespaces=false")
            .arg("--no-remote-bases=true")
            // A missing artifact (source-controller's first fetch) is retried in 2 s, not 30 s.
            .arg("--requeue-dependency=2s")
            .env("RUNTIME_NAMESPACE", &n)
            .env("KUBECONFIG", kubeconfig_path()),
    );

    let sources = flux_api(
        &w.client,
        &n,
        "source.toolkit.fluxcd.io",
        "v1",
        "GitRepository",
    );
    let ks = flux_api(
        &w.client,
        &n,
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    );
    let apply = PatchParams::apply("rollguard-e2e").force();
    let source = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "app"},
        "spec": {"url": repo.url, "interval": "3s", "ref": {"branch": "main"}},
    });
    sources
        .patch("app", &apply, &Patch::Apply(&source))
        .await
        .expect("the GitRepository");
    // The documented Kustomization (deploy/flux/kustomization.yaml, shown in docs/gitops.md):
    // wait for the applied objects' health with kstatus, so rollguard's verdict on the
    // Deployment decides the Kustomization's. Its intervals and timeout are shortened and its
    // names set to this test's.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/flux/kustomization.yaml");
    let text = std::fs::read_to_string(&file).expect("deploy/flux/kustomization.yaml");
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/gitops.md"))
            .expect("docs/gitops.md");
    assert!(
        docs.contains(&text),
        "docs/gitops.md shows deploy/flux/kustomization.yaml as it is"
    );
    let mut kustomization: Value = serde_yaml_ng::from_str(&text).expect("the Kustomization");
    kustomization["metadata"] = json!({"name": "web"});
    let spec = &mut kustomization["spec"];
    spec["interval"] = json!("3s");
    spec["retryInterval"] = json!("3s");
    spec["timeout"] = json!("60s");
    spec["path"] = json!("./");
    spec["prune"] = json!(false);
    spec["sourceRef"]["name"] = json!("app");
    spec["targetNamespace"] = json!(n);
    assert_eq!(spec["wait"], json!(true));
    for check in spec["healthChecks"].as_array_mut().expect("healthChecks") {
        check["namespace"] = json!(n);
    }
    ks.patch("web", &apply, &Patch::Apply(&kustomization))
        .await
        .expect("the Kustomization");

    let wait_ready = async |status: &str, what: &str, secs: u64| {
        w.wait(what, Duration::from_secs(secs), async || {
            let r = ready(&ks).await?;
            (r.0 == status).then_some(r)
        })
        .await
    };
    let (_, _, m) = wait_ready("True", "the Kustomization Ready on the first commit", 120).await;
    println!("first commit: Ready True: {m}");

    // The bad AI change, committed to Git: Flux applies it, the pause gate pauses it,
    // rollguard rolls it back, and the Kustomization says so.
    let runs_before = w.run_count().await;
    repo.commit(
        "0.3",
        "example.com/web:2",
        "ai-assisted",
        "web 2 (AI-assisted)",
    );
    let run = w
        .wait(
            "a run for Flux's change",
            Duration::from_secs(60),
            async || {
                (w.run_count().await > runs_before).then_some(())?;
                w.run().await
            },
        )
        .await;
    assert_eq!(run.spec.tier.name, "ai-assisted");
    let rolled = w
        .wait_phase(Phase::RolledBack, Duration::from_secs(120))
        .await;
    assert_eq!(rolled.spec.canary_revision, run.spec.canary_revision);
    let (_, reason, message) =
        wait_ready("False", "the Kustomization to report the failure", 120).await;
    println!("bad commit: Ready False, {reason}: {message}");
    assert!(
        message.contains("Deployment") && message.contains(APP),
        "{message}"
    );

    // The fix, committed to Git: promoted, and the Kustomization is Ready on it.
    repo.commit(
        "0.001",
        "example.com/web:3",
        "ai-assisted",
        "web 3 (the fix)",
    );
    w.wait("the fix promoted", Duration::from_secs(180), async || {
        let r = w.run().await?;
        (r.spec.canary_revision != run.spec.canary_revision && run_phase(&r) == Phase::Succeeded)
            .then_some(())
    })
    .await;
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&repo.work)
        .output()
        .expect("git rev-parse");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let k = w
        .wait(
            "the Kustomization Ready on the fix",
            Duration::from_secs(120),
            async || {
                let r = ready(&ks).await?;
                let k = ks.get("web").await.ok()?;
                (r.0 == "True" && applied_revision(&k.data).contains(&head)).then_some(k)
            },
        )
        .await;
    println!("fix: Ready True at {}", applied_revision(&k.data));
    assert!(
        !kustomize.tail().is_empty(),
        "kustomize-controller logged nothing"
    );
    w.finish().await;
    let _ = std::fs::remove_dir_all(&root);
}
