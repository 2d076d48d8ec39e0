//! Leader election: only the replica holding the `coordination.k8s.io` Lease runs the
//! controllers and writes. A replica that loses the Lease exits at once (its Deployment
//! restarts it as a follower), so two replicas never write at the same time.
//!
//! Exiting is not enough for a leader that stalls (a SIGSTOP, a long GC pause of its node, a
//! frozen VM): when it wakes up its timers are all due, and its reconciles can write before
//! it learns that the Lease moved on. So the leader's writes are fenced: the controller's
//! client ([`Fence::layer`]) refuses every request but GET once a local deadline has passed,
//! the Lease's last renewal (as the Lease, read with `get` every (duration/3 - margin)/2,
//! last showed it held by this replica) plus its duration, less [`FENCE_MARGIN`] for the
//! request's way to the API server. The deadline is
//! kept on the monotonic clock, which runs on while the process is stopped, so a stalled
//! leader finds it passed the moment it wakes, before any write goes out. The Lease itself
//! is renewed through an unfenced client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;

/// Taken off the Lease's expiry for the way of a request to the API server.
pub const FENCE_MARGIN: Duration = Duration::from_secs(1);

/// The message of a write the fence refused (also the `fenced` error category).
pub const FENCED: &str = "fenced: this replica's Lease may have expired";

/// The local Lease deadline; closed until this replica is seen holding the Lease.
#[derive(Clone, Default, Debug)]
pub struct Fence(Arc<Mutex<Option<Instant>>>);

impl Fence {
    /// Whether writes may go out now.
    pub fn is_open(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|d| Instant::now() < d)
    }

    /// Writes may go out for `left` from now.
    pub fn open_for(&self, left: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + left);
    }

    /// No more writes.
    pub fn close(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Sets the deadline from a Lease as read now: held by `identity`, renewed at
    /// `renewTime` for `leaseDurationSeconds`.
    pub fn observe(&self, lease: &Lease, identity: &str) {
        let spec = lease.spec.as_ref();
        let held = spec.and_then(|s| s.holder_identity.as_deref()) == Some(identity);
        let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
        let secs = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(0);
        let left = renewed.and_then(|t| {
            let expiry = t
                .checked_add(jiff::SignedDuration::from_secs(secs.into()))
                .ok()?;
            let left = Duration::try_from(expiry.duration_since(jiff::Timestamp::now())).ok()?;
            left.checked_sub(FENCE_MARGIN)
        });
        match left {
            Some(left) if held => self.open_for(left),
            _ => self.close(),
        }
    }

    /// The layer that fences a client's writes.
    pub fn layer(&self) -> FenceLayer {
        FenceLayer(self.clone())
    }
}

/// A tower layer: [`Fenced`] around a client's service.
pub struct FenceLayer(Fence);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// A client service that refuses every request but GET while its fence is closed.
#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.method() != http::Method::GET && !self.fence.is_open() {
            tracing::warn!(method = %req.method(), uri = %req.uri(), "write refused: {FENCED}");
            return Box::pin(async { Err(FENCED.into()) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

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
/// Lease is lost. `client` is unfenced (it renews the Lease); `fence` is kept open while the
/// Lease, read with `get`, shows this replica holding it.
pub async fn acquire(
    client: Client,
    cfg: &LeaseConfig,
    fence: Fence,
) -> Result<impl std::future::Future<Output = ()>, String> {
    let secs = cfg.duration.as_secs().max(2);
    let client_for_fence = client.clone();
    // The fence follows the Lease as read with `get` (the one read the chart's RBAC allows
    // on it), often enough to see each renewal well before the deadline it extends: the
    // renewal comes a third of the duration before expiry, the deadline FENCE_MARGIN before.
    let leases: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let every =
        ((cfg.duration / 3).saturating_sub(FENCE_MARGIN) / 2).max(Duration::from_millis(100));
    let (name, identity) = (cfg.name.clone(), cfg.identity.clone());
    let watch_fence = fence.clone();
    tokio::spawn(async move {
        loop {
            if let Ok(lease) = leases.get(&name).await {
                watch_fence.observe(&lease, &identity);
            }
            tokio::time::sleep(every).await;
        }
    });
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
    // Open the fence before the controllers start, rather than at the next read.
    if let Ok(lease) = Api::<Lease>::namespaced(client_for_fence, &cfg.namespace)
        .get(&cfg.name)
        .await
    {
        fence.observe(&lease, &cfg.identity);
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use tower::{Layer, Service};

    use super::*;

    fn lease(holder: &str, renewed_ago: Duration, secs: i32) -> Lease {
        let renewed = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::try_from(renewed_ago).expect("a duration"))
            .expect("a time");
        Lease {
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(secs),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_fence_is_open_only_while_this_replica_holds_an_unexpired_lease() {
        let f = Fence::default();
        assert!(!f.is_open(), "closed until the Lease is seen");
        f.observe(&lease("op-0", Duration::ZERO, 6), "op-0");
        assert!(f.is_open());
        // Another holder, or a renewal older than the duration less the margin: closed.
        f.observe(&lease("op-1", Duration::ZERO, 6), "op-0");
        assert!(!f.is_open());
        f.observe(&lease("op-0", Duration::from_millis(5500), 6), "op-0");
        assert!(!f.is_open(), "within the margin of its expiry");
        f.observe(&lease("op-0", Duration::from_secs(2), 6), "op-0");
        assert!(f.is_open());
        // The deadline is on the monotonic clock: it passes while nothing is observed.
        f.open_for(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!f.is_open());
    }

    /// Answers every request.
    #[derive(Clone)]
    struct Ok200;

    impl Service<http::Request<()>> for Ok200 {
        type Response = http::Response<()>;
        type Error = Infallible;
        type Future = Ready<Result<http::Response<()>, Infallible>>;
        fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            ready(Ok(http::Response::new(())))
        }
    }

    #[tokio::test]
    async fn a_closed_fence_refuses_every_write_and_lets_reads_through() {
        let f = Fence::default();
        let mut svc = f.layer().layer(Ok200);
        let req = |m: http::Method| {
            http::Request::builder()
                .method(m)
                .uri("/apis/apps/v1/namespaces/shop/deployments/web")
                .body(())
                .expect("a request")
        };
        for m in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            let err = svc.call(req(m.clone())).await.expect_err("refused");
            assert!(err.to_string().contains(FENCED), "{m}: {err}");
        }
        assert!(svc.call(req(http::Method::GET)).await.is_ok());
        f.open_for(Duration::from_secs(5));
        assert!(svc.call(req(http::Method::PATCH)).await.is_ok());
    }
}
