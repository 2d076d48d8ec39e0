//! Prometheus credentials and notification sink URLs from Secrets: each referenced Secret is watched (one watch per
//! Secret, by name, started on first use), never polled, and the HTTP client for a CA bundle
//! is built once. Tokens stay in memory; they are never logged or written anywhere.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::analysis::prometheus;
use crate::api::policy::{PrometheusSpec, SecretKeyRef};

/// Watched Secrets and TLS clients, shared by all reconciles.
pub struct Secrets {
    client: Client,
    stores: Mutex<HashMap<(String, String), Store<Secret>>>,
    clients: Mutex<HashMap<(Vec<u8>, bool), prometheus::Client>>,
    default_client: prometheus::Client,
}

impl Secrets {
    pub fn new(client: Client, default_client: prometheus::Client) -> Secrets {
        Secrets {
            client,
            stores: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            default_client,
        }
    }

    fn store(&self, ns: &str, name: &str) -> Store<Secret> {
        let key = (ns.to_string(), name.to_string());
        let mut stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = stores.get(&key) {
            return s.clone();
        }
        let (reader, writer) = reflector::store();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let wc = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(api, wc)
            .default_backoff()
            .reflect(writer)
            .applied_objects();
        let (ns2, name2) = key.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::warn!(namespace = %ns2, secret = %name2, error = %e, "cannot watch a Secret a RolloutPolicy names");
                }
            }
        });
        stores.insert(key, reader.clone());
        reader
    }

    /// The value of a Secret key, once the Secret's watch has seen it.
    pub async fn value(&self, ns: &str, r: &SecretKeyRef) -> Result<Vec<u8>, String> {
        let store = self.store(ns, &r.name);
        // The first use waits for the watch's initial list (bounded).
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), store.wait_until_ready()).await;
        let secret = store
            .get(&ObjectRef::new(&r.name).within(ns))
            .ok_or_else(|| {
                format!(
                    "Secret {ns}/{} is missing or not readable by rollguard",
                    r.name
                )
            })?;
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {ns}/{} has no key {}", r.name, r.key))
    }

    /// The HTTP client and bearer token for a policy's Prometheus settings.
    pub async fn for_spec(
        &self,
        ns: &str,
        spec: Option<&PrometheusSpec>,
    ) -> Result<(prometheus::Client, Option<String>), String> {
        let Some(spec) = spec else {
            return Ok((self.default_client.clone(), None));
        };
        let token = match &spec.bearer_token_secret {
            Some(r) => {
                let raw = self.value(ns, r).await?;
                let t = String::from_utf8(raw)
                    .map_err(|_| format!("the token in Secret {ns}/{} is not UTF-8", r.name))?;
                Some(t.trim().to_string())
            }
            None => None,
        };
        let ca = match &spec.ca_secret {
            Some(r) => Some(self.value(ns, r).await?),
            None => None,
        };
        if ca.is_none() && !spec.insecure_skip_verify {
            return Ok((self.default_client.clone(), token));
        }
        let key = (ca.clone().unwrap_or_default(), spec.insecure_skip_verify);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok((c.clone(), token));
        }
        let c = prometheus::Client::new(ca.as_deref(), spec.insecure_skip_verify)?;
        clients.insert(key, c.clone());
        Ok((c, token))
    }
}
