//! Delivery off the run's path: one bounded queue and one worker task per sink (namespace,
//! policy, sink name), so a slow receiver delays only its own messages, which stay in
//! order. Reconcile only `try_send`s: a full queue drops the message and counts it. The
//! worker reads the URL from the Secret when it sends, posts with a timeout, and retries
//! with exponential backoff; what it gives up on is counted, never waited for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, warn};

use super::message::{self, Notification};
use super::url::WebhookUrl;
use crate::api::notification::NotificationSink;
use crate::controller::secrets::Secrets;
use crate::telemetry::Metrics;

/// Tries per message, the first included.
const ATTEMPTS: u32 = 4;
/// The wait before the second try; doubled for each further one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// A sink's worker that has had nothing to send for this long ends (a deleted policy's
/// sinks do not keep tasks forever); the next message starts a new one.
const IDLE: Duration = Duration::from_secs(600);

/// Messages waiting per sink when `--notification-queue-size` is not given.
pub const DEFAULT_QUEUE: usize = 64;

/// (namespace of the Secrets, policy or [`super::cluster::CLUSTER`], sink name).
type SinkKey = (String, String, String);

struct Job {
    namespace: String,
    sink: NotificationSink,
    notification: Arc<Notification>,
}

/// The handle reconciles send through; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// Only touched under the lock, senders included, so a worker that ends for idleness
    /// cannot miss a message sent as it ends.
    queues: Mutex<HashMap<SinkKey, mpsc::Sender<Job>>>,
    capacity: usize,
    secrets: Arc<Secrets>,
    http: reqwest::Client,
    metrics: Metrics,
}

impl Notifier {
    pub fn new(
        secrets: Arc<Secrets>,
        metrics: Metrics,
        capacity: usize,
    ) -> Result<Notifier, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
            // A receiver that redirects is told apart from one that accepts: the body goes
            // only where the Secret says.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the notification HTTP client: {e}"))?;
        Ok(Notifier {
            inner: Arc::new(Inner {
                queues: Mutex::new(HashMap::new()),
                capacity: capacity.max(1),
                secrets,
                http,
                metrics,
            }),
        })
    }

    /// Queues `n` for every sink of policy `policy` (or [`super::cluster::CLUSTER`]) that
    /// wants its event; the sinks' Secrets are in `namespace`. Never waits.
    pub fn send(&self, namespace: &str, policy: &str, sinks: &[NotificationSink], n: Notification) {
        let n = Arc::new(n);
        for sink in sinks {
            if !sink.events.is_empty() && !sink.events.contains(&n.event) {
                continue;
            }
            let key = (namespace.to_string(), policy.to_string(), sink.name.clone());
            let job = Job {
                namespace: namespace.to_string(),
                sink: sink.clone(),
                notification: n.clone(),
            };
            if let Err(why) = self.enqueue(key, job) {
                self.inner
                    .metrics
                    .notifications_dropped
                    .with_label_values(&[sink.type_.as_str(), why])
                    .inc();
                warn!(namespace, policy, sink = %sink.name, event = ?n.event, reason = why, "notification dropped");
            }
        }
    }

    fn enqueue(&self, key: SinkKey, job: Job) -> Result<(), &'static str> {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        let job = match queues.get(&key) {
            None => job,
            Some(tx) => match tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => return Err("queue_full"),
                // Its worker ended; start another.
                Err(TrySendError::Closed(job)) => job,
            },
        };
        let (tx, rx) = mpsc::channel(self.inner.capacity);
        tx.try_send(job).map_err(|_| "queue_full")?;
        queues.insert(key.clone(), tx);
        tokio::spawn(work(self.inner.clone(), key, rx));
        Ok(())
    }
}

async fn work(inner: Arc<Inner>, key: SinkKey, mut rx: mpsc::Receiver<Job>) {
    loop {
        let job = match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(_) => {
                let mut queues = inner.queues.lock().unwrap_or_else(|e| e.into_inner());
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => {
                        queues.remove(&key);
                        return;
                    }
                }
            }
        };
        deliver(&inner, job).await;
    }
}

/// Why one attempt failed: a bounded category (the metric label), and whether trying again
/// can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
    reason: &'static str,
    retry: bool,
}

async fn deliver(inner: &Inner, job: Job) {
    let kind = job.sink.type_;
    let n = &job.notification;
    let fail = |reason: &str, detail: &str| {
        inner
            .metrics
            .notifications_failed
            .with_label_values(&[kind.as_str(), reason])
            .inc();
        // The detail names the Secret and the category, never the URL.
        warn!(namespace = %job.namespace, sink = %job.sink.name, event = ?n.event, id = %n.id, reason, detail, "notification not delivered");
    };
    let raw = match inner
        .secrets
        .value(&job.namespace, &job.sink.url_secret_ref)
        .await
    {
        Ok(raw) => raw,
        Err(e) => return fail("secret", &e),
    };
    let url = match WebhookUrl::parse(&raw) {
        Ok(u) => u,
        Err(e) => {
            return fail(
                "url",
                &format!(
                    "the URL in Secret {}/{} key {} {e}",
                    job.namespace, job.sink.url_secret_ref.name, job.sink.url_secret_ref.key
                ),
            );
        }
    };
    let timeout =
        crate::api::quantity::parse_duration(&job.sink.timeout).unwrap_or(Duration::from_secs(5));
    let (content_type, body) = message::render(kind, n);
    let body = body.to_string();
    let mut last = Failure {
        reason: "unreachable",
        retry: true,
    };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match post(&inner.http, &url, content_type, &body, timeout).await {
            Ok(()) => {
                inner
                    .metrics
                    .notifications_sent
                    .with_label_values(&[kind.as_str()])
                    .inc();
                debug!(namespace = %job.namespace, sink = %job.sink.name, id = %n.id, attempt, "notification sent");
                return;
            }
            Err(f) => {
                debug!(namespace = %job.namespace, sink = %job.sink.name, id = %n.id, attempt, reason = f.reason, "notification attempt failed");
                last = f;
                if !f.retry {
                    break;
                }
            }
        }
    }
    fail(last.reason, "gave up");
}

/// The wait before try `attempt` (1-based after the first): 0.5 s, 1 s, 2 s, ... up to 8 s.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

async fn post(
    http: &reqwest::Client,
    url: &WebhookUrl,
    content_type: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let sent = http
        .post(url.url().clone())
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_string())
        .timeout(timeout)
        .send()
        .await;
    // reqwest's errors carry the URL: only their kind is kept.
    let resp = sent.map_err(|e| Failure {
        reason: if e.is_timeout() {
            "timeout"
        } else {
            "unreachable"
        },
        retry: true,
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    Err(
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Failure {
                reason: "server_error",
                retry: true,
            }
        } else {
            Failure {
                reason: "rejected",
                retry: false,
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u128> = (1..=6).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
