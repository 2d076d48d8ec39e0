//! Processes the end-to-end tests start: the operator (`rollguard controller`, the real
//! binary) and the traffic simulator (the `trafficsim` example), each scoped to one test's
//! namespace, logging to `target/e2e-logs/`, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, kubeconfig_path, prometheus_url, register_scrape_target};

/// A child process with its log file.
pub struct Proc {
    pub log: PathBuf,
    /// The address it serves on (metrics for the operator, counters for the simulator).
    pub addr: String,
    child: Child,
}

impl Proc {
    /// A started child process with its log and address.
    pub fn new(log: PathBuf, addr: String, child: Child) -> Proc {
        Proc { log, addr, child }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id (for SIGSTOP / SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {}", self.pid());
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `n` lines of its log.
    pub fn tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Reads one sample from the process's `/metrics`, e.g.
    /// `rollguard_rollbacks_total{reason="ErrorRateAboveThreshold"}`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let body = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-logs");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The `rollguard` binary under test.
pub fn rollguard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rollguard"))
}

/// Starts the operator watching only `namespace`, with the test Prometheus as its default.
pub async fn start_operator(namespace: &str) -> Proc {
    start_operator_named(namespace, "operator", &[]).await
}

/// Starts an operator process with extra arguments; `name` tells several apart in logs.
pub async fn start_operator_named(namespace: &str, name: &str, extra: &[&str]) -> Proc {
    start_operator_with_env(namespace, name, extra, &[]).await
}

/// Starts an operator process with extra arguments and environment variables (the test
/// fail point `ROLLGUARD_FAIL_AFTER`, say).
pub async fn start_operator_with_env(
    namespace: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = log_dir().join(format!("{namespace}-{name}.log"));
    let file = std::fs::File::create(&log).expect("creating the operator log");
    let child = Command::new(rollguard_bin())
        .args([
            "controller",
            "--namespace",
            namespace,
            "--metrics-addr",
            &addr,
        ])
        .args(["--prometheus-address", &prometheus_url()])
        .args(["--log-level", "info,rollguard=debug"])
        .args(extra)
        .envs(env.iter().copied())
        .env("KUBECONFIG", kubeconfig_path())
        .env("POD_NAME", format!("{name}-{namespace}"))
        // Both streams into the log, so a test can check everything the operator printed.
        .stdout(file.try_clone().expect("cloning the log handle"))
        .stderr(file)
        .spawn()
        .expect("starting rollguard controller");
    let p = Proc { log, addr, child };
    // Ready once its caches have synced.
    let url = format!("http://{}/readyz", p.addr);
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the operator did not become ready:\n{}", p.tail(40));
}

/// An example binary, e.g. `trafficsim` (cargo builds examples with the tests).
pub fn example_bin(name: &str) -> PathBuf {
    rollguard_bin()
        .parent()
        .map(|d| d.join("examples").join(name))
        .expect("the target directory")
}

/// The `trafficsim` example binary.
pub fn trafficsim_bin() -> PathBuf {
    example_bin("trafficsim")
}

/// Takes a test tool's piped stdout: its first line comes out of the receiver, and the rest
/// is drained so the tool never writes to a closed pipe.
pub fn first_line_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    rx
}

/// The address of a tool's first line, `listening on <addr>` (30 s at most).
pub fn listening_address(first: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let line = first
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_default();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line from {what}: {line:?}"))
        .to_string()
}

/// Starts the traffic simulator for `namespace` and registers it with Prometheus (job
/// `sim-<namespace>`, scraped every second).
pub async fn start_trafficsim(namespace: &str) -> Proc {
    let log = log_dir().join(format!("{namespace}-trafficsim.log"));
    let file = std::fs::File::create(&log).expect("creating the simulator log");
    let mut child = Command::new(trafficsim_bin())
        .args(["--namespace", namespace, "--listen", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {} ({e}); build it with `cargo build --example trafficsim`",
                trafficsim_bin().display()
            )
        });
    let first = first_line_of(&mut child);
    let addr = tokio::task::spawn_blocking(move || listening_address(&first, "trafficsim"))
        .await
        .expect("reading the simulator's first line");
    register_scrape_target(&format!("sim-{namespace}"), &addr);
    Proc { log, addr, child }
}
