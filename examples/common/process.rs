//! What every test tool among the examples (trafficsim, podserver, loadgen) does the same way
//! as a process: logging to stderr, filtered by `RUST_LOG` (default `info`), and stopping on
//! ctrl-c or SIGTERM.

use std::io::IsTerminal as _;

use tracing::{info, warn};

/// Logs to stderr (colours only on a terminal), filtered by `RUST_LOG`, `info` by default.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => info!("ctrl-c: shutting down"),
        () = term => info!("SIGTERM: shutting down"),
    }
}
