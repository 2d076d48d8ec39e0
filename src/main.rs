//! The `rollguard` binary: parses arguments and starts things. Everything else lives in the
//! library.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `rollguard --version`: the crate version and the git revision build.rs stamped in.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("ROLLGUARD_GIT_REVISION"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "rollguard",
    version = VERSION,
    about = "Progressive rollouts with risk tiers for AI-assisted changes and automatic rollback on the Prometheus error rate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML (or, with --reference, the API reference).
    Crd {
        /// Print the Markdown API reference generated from the schemas instead.
        #[arg(long)]
        reference: bool,
    },
    /// Run a policy against synthetic traffic in virtual time; prints JSON.
    Simulate(rollguard::simulate::Args),
    /// Replay a policy's analysis over recorded Prometheus data; prints the decision timeline.
    Backtest(rollguard::backtest::Args),
    /// Check an install: the CRDs are Established and the operator Deployment is ready (the
    /// chart's `helm test` hook runs it).
    CheckInstall(rollguard::install_check::Args),
    /// The kubectl plugin verbs (get, approve, abort, promote, retry, pause, resume, wait, tag).
    #[command(flatten)]
    Cli(rollguard::cli::Verb),
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Watch only these namespaces, comma-separated or the flag repeated (default: all
    /// namespaces).
    #[arg(long, env = "ROLLGUARD_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// Prometheus address for policies that do not name one.
    #[arg(long, env = "ROLLGUARD_PROMETHEUS_ADDRESS")]
    prometheus_address: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "ROLLGUARD_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Log level (or RUST_LOG).
    #[arg(long, env = "ROLLGUARD_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Human-readable logs instead of JSON.
    #[arg(long)]
    log_text: bool,
    /// The instance name in Events and the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Run the controllers only while holding the Lease (for more than one replica).
    #[arg(long, env = "ROLLGUARD_LEADER_ELECT")]
    leader_elect: bool,
    /// The Lease's namespace (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// The Lease's name.
    #[arg(long, default_value = "rollguard-leader")]
    lease_name: String,
    /// How long the Lease stays valid without renewal (the longest takeover takes).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: std::time::Duration,
    /// How often the pause gate is proven again in each namespace (a server-side dry-run of
    /// a template change on a governed Deployment); also the longest a removed gate goes
    /// unnoticed before governed Deployments are paused between runs again.
    #[arg(long, env = "ROLLGUARD_PAUSE_GATE_CHECK_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pause_gate_check_interval: std::time::Duration,
    /// Notifications that may wait per sink (a slow or unreachable receiver) before more
    /// are dropped and counted in rollguard_notifications_dropped_total.
    #[arg(long, env = "ROLLGUARD_NOTIFICATION_QUEUE_SIZE", default_value_t = rollguard::notify::deliver::DEFAULT_QUEUE)]
    notification_queue_size: usize,
    /// Notification sinks for every policy's runs, as a YAML or JSON list in the form of a
    /// policy's `spec.notifications` (the chart's `notifications.sinks`).
    #[arg(long, env = "ROLLGUARD_CLUSTER_NOTIFICATIONS")]
    cluster_notifications: Option<String>,
    /// The namespace of the cluster-wide sinks' Secrets (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    notification_secret_namespace: String,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    rollguard::api::quantity::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    // Installed or symlinked as `kubectl-rollguard`, the verbs are the whole interface.
    if rollguard::cli::invoked_as_plugin() {
        return ExitCode::from(rollguard::cli::plugin_main());
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Cli(verb) => ExitCode::from(rollguard::cli::run(verb)),
        Command::Simulate(args) => ExitCode::from(rollguard::simulate::main(args)),
        Command::Backtest(args) => ExitCode::from(rollguard::backtest::main(args)),
        Command::CheckInstall(args) => ExitCode::from(rollguard::install_check::main(args)),
        Command::Crd { reference: true } => {
            print!("{}", rollguard::api::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::Crd { reference: false } => match rollguard::api::crds_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rollguard crd: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Controller(args) => {
            rollguard::telemetry::init_logging(&args.log_level, !args.log_text);
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rollguard controller: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(controller(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "rollguard controller stopped");
                    eprintln!("rollguard controller: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn controller(args: ControllerArgs) -> Result<(), String> {
    let prometheus_address = args
        .prometheus_address
        .as_deref()
        .map(|a| rollguard::analysis::address::Address::parse_flag("--prometheus-address", a))
        .transpose()?;
    let cluster_sinks = rollguard::notify::ClusterSinks::parse(
        args.cluster_notifications.as_deref().unwrap_or_default(),
        &args.notification_secret_namespace,
    )?;
    let metrics = rollguard::telemetry::Metrics::new();
    let health = rollguard::telemetry::Health::default();
    let bound = rollguard::telemetry::serve(args.metrics_addr, metrics.clone(), health.clone())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.metrics_addr))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let instance = args
        .instance
        .clone()
        .unwrap_or_else(|| format!("rollguard-{}", std::process::id()));
    let client = rollguard::controller::instance_client(&instance, None).await?;
    let namespaces = args.namespace;
    let config = rollguard::controller::Config {
        namespace: None,
        prometheus_address,
        instance: Some(instance.clone()),
        gate_check_interval: args.pause_gate_check_interval,
        notification_queue: args.notification_queue_size,
        cluster_sinks,
    };
    if !args.leader_elect {
        return rollguard::controller::run_in(client, config, &namespaces, metrics, health)
            .await
            .map_err(|e| e.to_string());
    }
    // A follower is Ready too (readiness does not depend on leadership): it only needs the
    // CRDs to be there to take over.
    rollguard::controller::check_crds(&client, &namespaces.first().cloned())
        .await
        .map_err(|e| e.to_string())?;
    health.set_ready();
    let lease = rollguard::controller::leader::LeaseConfig {
        namespace: args.lease_namespace,
        name: args.lease_name,
        identity: instance.clone(),
        duration: args.lease_duration,
    };
    // The controllers write through a fenced client; the Lease is renewed through `client`.
    let fence = rollguard::controller::leader::Fence::default();
    let writer = rollguard::controller::instance_client(&instance, Some(&fence)).await?;
    let lost = rollguard::controller::leader::acquire(client, &lease, fence).await?;
    tokio::select! {
        r = rollguard::controller::run_in(writer, config, &namespaces, metrics, health) => r.map_err(|e| e.to_string()),
        () = lost => Err("lost the Lease; exiting so that only the leader writes".into()),
    }
}
