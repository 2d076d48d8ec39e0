//! Leader election: only the replica holding the `coordination.k8s.io` Lease runs the
//! controllers and writes. A replica that loses the Lease exits at once (its Deployment
//! restarts it as a follower), so two replicas never write at the same time.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

/// How to hold the Lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a Lease stays valid without renewal: the longest a dead leader blocks the
    /// follower.
    pub duration: Duration,
}

/// Waits until this replica holds the Lease, then returns a future that resolves when the
/// Lease is lost.
pub async fn acquire(
    client: Client,
    cfg: &LeaseConfig,
) -> Result<impl std::future::Future<Output = ()>, String> {
    let secs = cfg.duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(client, &cfg.name)
        .with_namespace(&cfg.namespace)
        .with_identity(&cfg.identity)
        .with_duration(secs)
        .with_grace((secs / 3).max(1))
        .with_field_manager(format!("{}-leader", crate::names::FIELD_MANAGER))
        .build()
        .await
        .map_err(|e| {
            format!(
                "cannot set up the Lease {}/{}: {e}",
                cfg.namespace, cfg.name
            )
        })?;
    let (mut rx, task) = manager.watch().await;
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "waiting for leadership");
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return Err(match task.await {
                Ok(Err(e)) => format!("leader election failed: {e}"),
                _ => "leader election stopped".into(),
            });
        }
    }
    tracing::info!(lease = %cfg.name, identity = %cfg.identity, "acquired leadership");
    Ok(async move {
        loop {
            if rx.changed().await.is_err() || !*rx.borrow_and_update() {
                tracing::error!("lost leadership; stopping so that only the leader writes");
                return;
            }
        }
    })
}
