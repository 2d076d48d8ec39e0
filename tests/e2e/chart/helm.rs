//! helm, kubectl, and what the chart renders.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::REPO;
use crate::support::{self, helm_bin};

pub(super) fn chart_dir() -> PathBuf {
    Path::new(REPO).join("charts/rollguard")
}

/// Runs a command, optionally feeding `stdin`, and returns (success, stdout, stderr).
pub(super) fn run(cmd: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("writing stdin");
    }
    let out = child.wait_with_output().expect("waiting for the command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs helm (with the test cluster's kubeconfig when one is set) and returns its stdout;
/// panics with its stderr when it fails.
pub(super) fn helm(args: &[&str]) -> String {
    let mut cmd = Command::new(helm_bin());
    if let Ok(kc) = std::env::var("ROLLGUARD_KUBECONFIG")
        && !kc.is_empty()
    {
        cmd.arg("--kubeconfig").arg(kc);
    }
    cmd.args(args);
    let (ok, stdout, stderr) = run(&mut cmd, None);
    assert!(ok, "helm {} failed:\n{stderr}\n{stdout}", args.join(" "));
    stdout
}

pub(super) fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args);
    run(&mut cmd, stdin)
}

/// `helm template` of `chart` as release `release` in `namespace`, with `--set` values:
/// what `helm install` applies, without the `helm test` hook (whose Pod needs its
/// ServiceAccount to exist first; `checklist_objects_install_and_helm_test_passes` runs it).
pub(super) fn render_chart(chart: &Path, release: &str, namespace: &str, sets: &[&str]) -> String {
    let chart = chart.to_str().expect("chart path");
    let mut args = vec![
        "template",
        release,
        chart,
        "--namespace",
        namespace,
        "--include-crds",
        "--skip-tests",
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args)
}

pub(super) fn render(sets: &[&str]) -> String {
    render_chart(&chart_dir(), "rollguard", "rollguard-system", sets)
}

/// The documents of a YAML stream (empty ones dropped).
pub(super) fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("parsing rendered YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

pub(super) fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

pub(super) fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Copies a directory tree.
pub(super) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating the copy");
    for entry in std::fs::read_dir(from).expect("reading the chart") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a chart file");
        }
    }
}

/// `helm template` with any helm arguments (`--set-json`, `-f`) after the defaults.
pub(super) fn render_with(args: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        "rollguard",
        chart.to_str().expect("chart path"),
        "--namespace",
        "rollguard-system",
    ];
    all.extend(args);
    docs(&helm(&all))
}

pub(super) fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

pub(super) fn yaml_file(rel: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(REPO).join(rel))
        .unwrap_or_else(|e| panic!("reading {rel}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}
