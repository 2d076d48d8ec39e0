//! How the watches feed the stores and wake reconciles: objects slimmed before caching,
//! undecodable objects skipped and counted, readiness once every watch has listed, and which
//! Deployments a policy or Service event concerns.

use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::mpsc;

use super::context::scoped;
use super::{is_canary, lenient, policy};
use crate::api::RolloutPolicy;
use crate::names::{DEPLOYMENT_LABEL, GOVERNED_BY};
use crate::telemetry::{Health, Metrics};

/// Drops what rollguard never reads before an object is cached: its `managedFields`, often
/// the larger part of an object that several managers write (kubectl, the controllers,
/// rollguard). Writes are server-side applies of rollguard's own fields, never the cached
/// object sent back, so nothing is lost. At 1000 Deployments this is most of the cache.
pub(super) fn slim<K: kube::Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
}

/// Counts the watches that have not yet listed their objects; marks the operator ready when
/// none are left.
#[derive(Clone)]
pub(super) struct Synced {
    pending: Arc<std::sync::atomic::AtomicUsize>,
    flags: Vec<Health>,
}

impl Synced {
    pub(super) fn new(watches: usize, flags: Vec<Health>) -> Synced {
        Synced {
            pending: Arc::new(std::sync::atomic::AtomicUsize::new(watches)),
            flags,
        }
    }

    /// An inspector for one watch's events: its first `InitDone` counts once.
    pub(super) fn watch<K>(
        &self,
        name: &'static str,
    ) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
        let this = self.clone();
        let mut seen = false;
        move |ev| {
            if matches!(ev, watcher::Event::InitDone) && !seen {
                seen = true;
                tracing::debug!(cache = name, "cache synced");
                if this
                    .pending
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
                    == 1
                {
                    tracing::info!("caches synced");
                    for f in &this.flags {
                        f.set_ready();
                    }
                }
            }
        }
    }
}

pub(super) fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A watch event that does not deserialise (an object written under an older schema, say)
/// is reported and skipped instead of wedging the watch.
pub(super) fn skip_undecodable<K>(
    kind: &str,
    r: Result<K, watcher::Error>,
) -> Option<Result<K, watcher::Error>> {
    match r {
        Err(e) => {
            if undecodable(&e) {
                tracing::warn!(kind, error = %e, "skipping an object that could not be read");
            } else {
                tracing::warn!(kind, error = %e, "watch interrupted; reconnecting with backoff");
            }
            None
        }
        ok => Some(ok),
    }
}

/// A watch of one of rollguard's kinds in which an object the types cannot read is reported
/// and left out instead of failing the list it came in.
pub(super) fn readable_watch<K>(
    client: &Client,
    ns: &Option<String>,
    wc: watcher::Config,
    metrics: &Metrics,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let counter = metrics.undecodable.clone();
    let api: Api<lenient::Decoded<K>> = scoped(client, ns);
    watcher(api, wc).default_backoff().filter_map(move |r| {
        let counter = counter.clone();
        future::ready(match r {
            Ok(ev) => lenient::readable(ev, &|meta, error| {
                let kind = K::kind(&());
                counter.with_label_values(&[&kind]).inc();
                tracing::warn!(
                    kind = %kind,
                    namespace = meta.namespace.as_deref().unwrap_or_default(),
                    name = meta.name.as_deref().unwrap_or_default(),
                    error,
                    "skipping an object rollguard cannot read (written under another schema?); fix or delete it"
                );
            })
            .map(Ok),
            Err(e) => Some(Err(e)),
        })
    })
}

/// Whether a watch error is about an object's content rather than the connection.
fn undecodable(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => matches!(k, kube::Error::SerdeError(_)),
        _ => false,
    }
}

/// What of a policy its Deployments react to: its spec (the generation) and whether it is
/// being deleted (which also bumps the generation; this covers a deletion without one).
/// Status and metadata writes leave it unchanged. A policy deleted outright (no finalizer,
/// so never seen deleting) is not seen here; its Deployments notice at their next event.
pub(super) fn spec_or_deletion(p: &RolloutPolicy) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        p.metadata.generation,
        p.metadata.deletion_timestamp.is_some(),
    )
        .hash(&mut h);
    Some(h.finish())
}

/// The Deployments a policy change concerns: those it selects and those it governed.
pub(super) fn policy_targets(
    deployments: &Store<Deployment>,
    p: &RolloutPolicy,
) -> Vec<ObjectRef<Deployment>> {
    let ns = p.namespace().unwrap_or_default();
    let name = p.name_any();
    deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()) && !is_canary(d))
        .filter(|d| policy::selects(p, d) || d.annotations().get(GOVERNED_BY) == Some(&name))
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

/// The Deployments a Service change concerns: those whose pods it selects, or the one
/// rollguard made it for.
pub(super) fn service_targets(
    deployments: &Store<Deployment>,
    s: &Service,
) -> Vec<ObjectRef<Deployment>> {
    let ns = s.namespace().unwrap_or_default();
    if let Some(owner) = s.labels().get(DEPLOYMENT_LABEL) {
        return vec![ObjectRef::new(owner).within(&ns)];
    }
    let Some(sel) = s.spec.as_ref().and_then(|sp| sp.selector.as_ref()) else {
        return vec![];
    };
    if sel.is_empty() {
        return vec![];
    }
    deployments
        .state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == Some(ns.as_str()) && !is_canary(d))
        .filter(|d| d.annotations().contains_key(GOVERNED_BY))
        .filter(|d| {
            let labels = d
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            labels.is_some_and(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v)))
        })
        .map(|d| ObjectRef::from_obj(&*d))
        .collect()
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::spec_or_deletion;
    use crate::api::RolloutPolicy;

    fn policy(generation: i64, status: Option<serde_json::Value>, deleting: bool) -> RolloutPolicy {
        let mut v = serde_json::json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": "shop", "namespace": "shop", "generation": generation,
                         "resourceVersion": format!("{}", generation * 10 + i64::from(status.is_some()))},
            "spec": {
                "selector": {"matchLabels": {"app": "shop"}},
                "analysis": {"interval": "15s", "requests": "r", "errors": "e"}
            }
        });
        if let Some(s) = status {
            v["status"] = s;
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = serde_json::json!("2026-11-28T10:00:00Z");
        }
        serde_json::from_value(v).expect("a policy")
    }

    #[test]
    fn cached_objects_keep_everything_but_managed_fields() {
        let mut d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"rollguard.dev/policy": "shop"},
                         "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "paused": true,
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .expect("a Deployment");
        let mut want = d.clone();
        want.metadata.managed_fields = None;
        super::slim(&mut d);
        assert!(
            d.metadata
                .managed_fields
                .as_ref()
                .is_none_or(|m| m.is_empty())
        );
        d.metadata.managed_fields = None;
        assert_eq!(d, want);
    }

    /// A status write (governed count, conflicts) does not wake the policy's Deployments; a
    /// spec change or a deletion does.
    #[test]
    fn only_spec_and_deletion_wake_deployments() {
        let base = spec_or_deletion(&policy(3, None, false));
        let status =
            serde_json::json!({"governedDeployments": 50, "activeRuns": 2, "conditions": []});
        assert_eq!(spec_or_deletion(&policy(3, Some(status), false)), base);
        assert_ne!(spec_or_deletion(&policy(4, None, false)), base);
        assert_ne!(spec_or_deletion(&policy(3, None, true)), base);
    }

    /// The API server sees `rollguard/<version>` as the User-Agent of the operator's
    /// requests (what an audit log filters on).
    #[tokio::test]
    async fn requests_carry_rollguards_user_agent() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let _ = sock
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await;
            String::from_utf8_lossy(&head).to_lowercase()
        });
        let mut config = kube::Config::new(format!("http://{addr}").parse().expect("a valid URL"));
        crate::controller::identify(&mut config);
        let client = kube::Client::try_from(config).expect("client");
        let _ = client.apiserver_version().await;
        let head = server.await.expect("the server task");
        let want = format!("user-agent: rollguard/{}\r\n", env!("CARGO_PKG_VERSION"));
        assert!(head.contains(&want), "request head:\n{head}");
        assert_eq!(head.matches("user-agent:").count(), 1, "{head}");
    }
}
