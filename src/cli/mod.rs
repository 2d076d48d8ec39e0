//! `kubectl rollguard`: watch a rollout live, wait for its verdict in CI, approve with an
//! authenticated identity, abort, promote, pause, resume, retry, and tag changes from git.
//!
//! The `rollguard` binary doubles as the kubectl plugin: installed or symlinked as
//! `kubectl-rollguard` it takes the verbs at the top level (`kubectl rollguard get web`);
//! as `rollguard` the same verbs sit next to `controller` and `crd`. The verbs only read
//! objects and write a run's `spec.approvals` / `spec.control` or the Deployment's
//! failed-revision mark; the operator does the rest. Exit codes are in [`errors::exit`].

pub mod approve;
pub mod cluster;
pub mod control;
pub mod errors;
pub mod feed;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod get;
pub mod render;
pub mod tag;
pub mod trailers;
pub mod view;
pub mod wait;

use std::path::Path;

use clap::Parser;

use cluster::{KubeArgs, Session, connect};
use errors::{CliError, exit};

/// The verbs, shared by both entry points.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// Show runs in flight and the last outcome per governed Deployment, or one
    /// Deployment in detail (tier and why, steps, time left, latest sample, approvals,
    /// history).
    Get(get::GetArgs),
    /// Approve the run waiting for an approval, as the user the API server authenticates.
    Approve(approve::ApproveArgs),
    /// Roll back now: traffic to stable, the revision marked failed; the reason and your
    /// user are recorded.
    Abort(control::AbortArgs),
    /// Skip the current step's pause (`--full`: all remaining steps); never an approval.
    Promote(control::PromoteArgs),
    /// Start a new run for the revision that was rolled back or aborted.
    Retry(control::TargetArgs),
    /// Hold the run at its current step (analysis continues).
    Pause(control::PauseArgs),
    /// Release a paused run.
    Resume(control::TargetArgs),
    /// Block until the Deployment's current revision has a verdict; the exit code says
    /// which (0 promoted, 10 rolled back, 11 aborted, 12 superseded, 13 timeout).
    Wait(wait::WaitArgs),
    /// Print the rollguard.dev/change-origin of a commit from its trailers
    /// (Co-authored-by, Assisted-by, Generated-by naming an AI assistant).
    Tag(tag::TagArgs),
}

/// The parser when the binary runs as `kubectl-rollguard`.
#[derive(Parser, Debug)]
#[command(
    name = "kubectl-rollguard",
    bin_name = "kubectl rollguard",
    version,
    about = "Watch, wait for, approve, abort, promote, pause, resume and retry rollguard rollouts",
    after_help = "Exit codes: 0 ok/promoted, 1 other error, 2 usage, 3 no such Deployment, 4 not governed, 5 no run in flight, 6 refused in this state, 7 permission denied, 8 API server unreachable; wait: 10 rolled back, 11 aborted, 12 superseded, 13 timeout."
)]
pub struct PluginCli {
    #[command(subcommand)]
    pub verb: Verb,
}

/// Whether the process was started as the kubectl plugin (`kubectl-rollguard`, possibly
/// through a symlink), judged by the file name it was invoked with.
pub fn invoked_as_plugin() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .is_some_and(|n| is_plugin_name(&n))
}

fn is_plugin_name(file_name: &str) -> bool {
    let stem = file_name.strip_suffix(".exe").unwrap_or(file_name);
    stem == "kubectl-rollguard"
}

impl Verb {
    fn kube(&self) -> Option<&KubeArgs> {
        match self {
            Verb::Get(a) => Some(&a.kube),
            Verb::Approve(a) => Some(&a.kube),
            Verb::Abort(a) => Some(&a.kube),
            Verb::Promote(a) => Some(&a.kube),
            Verb::Retry(a) | Verb::Resume(a) => Some(&a.kube),
            Verb::Pause(a) => Some(&a.kube),
            Verb::Wait(a) => Some(&a.kube),
            Verb::Tag(_) => None,
        }
    }
}

async fn execute(verb: &Verb) -> Result<u8, CliError> {
    let Some(kube) = verb.kube() else {
        if let Verb::Tag(a) = verb {
            tag::run(a)?;
        }
        return Ok(exit::OK);
    };
    let session: Session = connect(kube).await?;
    match verb {
        Verb::Get(a) => get::run(&session, a).await?,
        Verb::Approve(a) => approve::run(&session, a).await?,
        Verb::Abort(a) => control::abort(&session, a).await?,
        Verb::Promote(a) => control::promote(&session, a).await?,
        Verb::Retry(a) => control::retry(&session, a).await?,
        Verb::Pause(a) => control::pause(&session, a).await?,
        Verb::Resume(a) => control::resume(&session, a).await?,
        Verb::Wait(a) => return wait::run(&session, a).await,
        Verb::Tag(_) => {}
    }
    Ok(exit::OK)
}

/// Runs a verb and returns the process exit code; errors are printed as one line on
/// stderr.
pub fn run(verb: Verb) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::OTHER;
        }
    };
    match rt.block_on(execute(&verb)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// The plugin's entry point: parses `kubectl rollguard ...` arguments and runs the verb.
pub fn plugin_main() -> u8 {
    run(PluginCli::parse().verb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_plugin_name_is_recognised_from_the_file_name() {
        assert!(is_plugin_name("kubectl-rollguard"));
        assert!(is_plugin_name("kubectl-rollguard.exe"));
        assert!(!is_plugin_name("rollguard"));
        assert!(!is_plugin_name("kubectl-rollguard-old"));
    }

    #[test]
    fn the_plugin_parser_is_consistent_and_takes_kubectl_style_flags() {
        PluginCli::command().debug_assert();
        let cli = PluginCli::try_parse_from([
            "kubectl-rollguard",
            "get",
            "web",
            "-n",
            "shop",
            "-w",
            "-o",
            "json",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let Verb::Get(a) = cli.verb else {
            panic!("expected get")
        };
        assert_eq!(a.deployment.as_deref(), Some("web"));
        assert_eq!(a.kube.namespace.as_deref(), Some("shop"));
        assert!(a.watch);
        assert_eq!(a.output, Some(get::Output::Json));
        let cli =
            PluginCli::try_parse_from(["kubectl-rollguard", "wait", "web", "--timeout", "90s"])
                .unwrap_or_else(|e| panic!("{e}"));
        let Verb::Wait(a) = cli.verb else {
            panic!("expected wait")
        };
        assert_eq!(a.timeout, Some(std::time::Duration::from_secs(90)));
        assert!(
            PluginCli::try_parse_from(["kubectl-rollguard", "wait", "web", "--timeout", "soon"])
                .is_err()
        );
    }
}
