//! The operator's own observability: Prometheus metrics on `/metrics`, `/healthz` and
//! `/readyz`, and JSON logs. Label values are bounded (tiers, outcomes, categories; never
//! error text).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Runs finished, by tier and outcome (phase).
    pub runs: IntCounterVec,
    /// Runs started, by tier.
    pub runs_started: IntCounterVec,
    /// Rollbacks, by reason.
    pub rollbacks: IntCounterVec,
    /// The canary's current share (0..1), by namespace and deployment.
    pub weight: GaugeVec,
    /// Analysis samples, by verdict.
    pub samples: IntCounterVec,
    /// Prometheus queries sent, by outcome (ok, no_data, or an error category).
    pub queries: IntCounterVec,
    /// Reconcile duration, by controller.
    pub reconcile: HistogramVec,
    /// Errors, by bounded category.
    pub errors: IntCounterVec,
    /// Watched objects left out of the cache because they could not be read, by kind.
    pub undecodable: IntCounterVec,
    /// Runs in flight.
    pub active_runs: IntGauge,
    /// Deployments governed.
    pub governed: IntGauge,
    /// Seconds from a step's pause ending to rollguard's writes for the next slice (the slice
    /// itself, or the bigger canary it needs first) being done.
    pub step_delay: HistogramVec,
    /// 1 where the pause gate is in force (new templates are paused at admission), 0 where
    /// governed Deployments stay paused between runs, by namespace.
    pub pause_gate: IntGaugeVec,
    /// Notifications a sink accepted, by sink type.
    pub notifications_sent: IntCounterVec,
    /// Notifications given up on after their tries, by sink type and reason category.
    pub notifications_failed: IntCounterVec,
    /// Notifications never tried because the sink's queue was full, by sink type and reason.
    pub notifications_dropped: IntCounterVec,
    /// What each watch scope (a namespace, or "" for all) last counted for `active_runs` and
    /// `governed`, which show the sums: an operator watching several namespaces runs one set
    /// of controllers per namespace.
    counts: Arc<Mutex<BTreeMap<String, (i64, i64)>>>,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let runs = counter(
            "rollguard_runs_total",
            "Runs that ended, by tier and outcome.",
            &["tier", "outcome"],
        );
        let runs_started = counter(
            "rollguard_runs_started_total",
            "Runs started, by tier.",
            &["tier"],
        );
        let rollbacks = counter(
            "rollguard_rollbacks_total",
            "Automatic rollbacks, by reason.",
            &["reason"],
        );
        let samples = counter(
            "rollguard_analysis_samples_total",
            "Analysis samples taken, by verdict.",
            &["verdict"],
        );
        let queries = counter(
            "rollguard_prometheus_queries_total",
            "Prometheus queries sent, by outcome.",
            &["outcome"],
        );
        let errors = counter(
            "rollguard_errors_total",
            "Errors, by category.",
            &["category"],
        );
        let notifications_sent = counter(
            "rollguard_notifications_sent_total",
            "Notifications a sink accepted, by sink type.",
            &["sink_type"],
        );
        let notifications_failed = counter(
            "rollguard_notifications_failed_total",
            "Notifications given up on after their tries, by sink type and reason (secret, url, timeout, unreachable, server_error, rejected).",
            &["sink_type", "reason"],
        );
        let notifications_dropped = counter(
            "rollguard_notifications_dropped_total",
            "Notifications dropped without a try because the sink's queue was full, by sink type and reason.",
            &["sink_type", "reason"],
        );
        let undecodable = counter(
            "rollguard_undecodable_objects_total",
            "Watched objects rollguard could not read (written under another schema) and left out, by kind.",
            &["kind"],
        );
        let weight = GaugeVec::new(
            Opts::new(
                "rollguard_canary_weight",
                "The canary's current share of traffic (0 to 1).",
            ),
            &["namespace", "deployment"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(weight.clone()))
            .expect("unique metric");
        let reconcile = HistogramVec::new(
            HistogramOpts::new(
                "rollguard_reconcile_duration_seconds",
                "Time spent in one reconcile, by controller.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["controller"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reconcile.clone()))
            .expect("unique metric");
        let step_delay = HistogramVec::new(
            HistogramOpts::new(
                "rollguard_step_delay_seconds",
                "Delay between a step's pause ending and rollguard's writes for the next slice (or the bigger canary it needs first) being done.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]),
            &["router"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(step_delay.clone()))
            .expect("unique metric");
        let active_runs =
            IntGauge::new("rollguard_active_runs", "Runs in flight.").expect("valid metric");
        registry
            .register(Box::new(active_runs.clone()))
            .expect("unique metric");
        let governed = IntGauge::new(
            "rollguard_governed_deployments",
            "Deployments governed by exactly one policy.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(governed.clone()))
            .expect("unique metric");
        let pause_gate = IntGaugeVec::new(
            Opts::new(
                "rollguard_pause_gate",
                "1 where new pod templates of governed Deployments are paused at admission (the pause gate), so they are left unpaused between runs; 0 where they stay paused between runs. By namespace.",
            ),
            &["namespace"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(pause_gate.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            runs,
            runs_started,
            rollbacks,
            weight,
            samples,
            queries,
            reconcile,
            errors,
            undecodable,
            active_runs,
            governed,
            step_delay,
            pause_gate,
            notifications_sent,
            notifications_failed,
            notifications_dropped,
            counts: Arc::default(),
        }
    }

    /// Records the runs in flight and the governed Deployments one watch scope counted, and
    /// sets the gauges to the sums over the scopes.
    pub fn set_counts(&self, scope: &str, active_runs: i64, governed: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.insert(scope.to_string(), (active_runs, governed));
        self.active_runs.set(counts.values().map(|c| c.0).sum());
        self.governed.set(counts.values().map(|c| c.1).sum());
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Readiness: set once the CRDs are present and the caches have synced. Independent of
/// leadership, so a standby replica is Ready too.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Metrics,
    health: Health,
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends. Returns the bound
/// address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(s): State<ServerState>| async move { s.metrics.render() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<ServerState>| async move {
                if s.health.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .with_state(ServerState { metrics, health });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

/// Sets up JSON logs on stderr, filtered by `RUST_LOG` or `level`.
pub fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_sum_what_each_scope_counted() {
        let m = Metrics::new();
        m.set_counts("shop", 2, 5);
        m.set_counts("pay", 1, 3);
        assert_eq!((m.active_runs.get(), m.governed.get()), (3, 8));
        // A scope's new count replaces its old one.
        m.set_counts("shop", 0, 5);
        assert_eq!((m.active_runs.get(), m.governed.get()), (1, 8));
    }
}
