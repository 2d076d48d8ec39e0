//! A live view of Deployments, policies and runs for `get --watch` and `wait`: three
//! watches (not polls) feeding in-memory stores, and a stream of "something changed" once
//! all three have listed.

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event, watcher};

use super::cluster::Session;
use super::errors::{Attempt, CliError, resource};
use super::view::{self, DeploymentRollouts};
use crate::api::RolloutPolicy;
use crate::api::run::RolloutRun;
use crate::names::DEPLOYMENT_LABEL;

/// Which objects to follow.
#[derive(Debug, Clone)]
pub struct FeedScope {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// One Deployment (in `namespace`), or all.
    pub deployment: Option<String>,
}

/// What one watch event meant.
enum Tick {
    /// The watch of this source has listed everything (or relisted).
    Synced(usize),
    /// An object changed.
    Changed,
    /// The watch failed; it retries with backoff.
    Failed(usize, watcher::Error),
}

/// The stores and the merged event stream.
pub struct Feed {
    deployments: Store<Deployment>,
    policies: Store<RolloutPolicy>,
    runs: Store<RolloutRun>,
    events: SelectAll<BoxStream<'static, Tick>>,
    synced: [bool; 3],
    attempts: [Attempt; 3],
    session: Session,
}

fn api<K>(session: &Session, ns: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(session.client.clone(), ns),
        None => Api::all(session.client.clone()),
    }
}

fn source<K>(
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    index: usize,
) -> BoxStream<'static, Tick>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .map(move |e| match e {
            Ok(Event::InitDone) => Tick::Synced(index),
            Ok(_) => Tick::Changed,
            Err(e) => Tick::Failed(index, e),
        })
        .boxed()
}

impl Feed {
    /// Starts the watches.
    pub fn start(session: &Session, scope: &FeedScope) -> Feed {
        let ns = scope.namespace.clone();
        let (deployments, dw) = reflector::store::<Deployment>();
        let (policies, pw) = reflector::store::<RolloutPolicy>();
        let (runs, rw) = reflector::store::<RolloutRun>();
        let base = watcher::Config::default();
        let (dcfg, rcfg) = match &scope.deployment {
            Some(name) => (
                base.clone().fields(&format!("metadata.name={name}")),
                base.clone().labels(&format!("{DEPLOYMENT_LABEL}={name}")),
            ),
            None => (base.clone(), base.clone()),
        };
        let mut events = SelectAll::new();
        events.push(source(api::<Deployment>(session, &ns), dcfg, dw, 0));
        events.push(source(api::<RolloutPolicy>(session, &ns), base, pw, 1));
        events.push(source(api::<RolloutRun>(session, &ns), rcfg, rw, 2));
        let attempt = |r| match &ns {
            Some(ns) => Attempt::new("watch", r, ns),
            None => Attempt::cluster("watch", r),
        };
        Feed {
            deployments,
            policies,
            runs,
            events,
            synced: [false; 3],
            attempts: [
                attempt(resource::DEPLOYMENTS),
                attempt(resource::POLICIES),
                attempt(resource::RUNS),
            ],
            session: session.clone(),
        }
    }

    /// Waits until something changed (the first time: until all watches have listed).
    /// Errors that will not heal by retrying (permission, missing CRDs, an unreachable
    /// server before the first list) end the feed.
    pub async fn changed(&mut self) -> Result<(), CliError> {
        loop {
            let Some(tick) = self.events.next().await else {
                return Err(CliError::Other(
                    "the watches ended unexpectedly; run the command again".into(),
                ));
            };
            match tick {
                Tick::Synced(i) => self.synced[i] = true,
                Tick::Changed => {}
                Tick::Failed(i, e) => {
                    let err = self.session.fail_watch(e, &self.attempts[i]);
                    let fatal = !self.synced[i]
                        || matches!(
                            err,
                            CliError::PermissionDenied { .. }
                                | CliError::Unauthorized { .. }
                                | CliError::NotInstalled(_)
                        );
                    if fatal {
                        return Err(err);
                    }
                    continue;
                }
            }
            if self.synced.iter().all(|s| *s) {
                return Ok(());
            }
        }
    }

    /// The assembled views of what the stores hold now.
    pub fn views(&self) -> Vec<DeploymentRollouts> {
        view::assemble(
            &owned(&self.deployments),
            &owned(&self.policies),
            &owned(&self.runs),
        )
    }

    /// The view of one Deployment; `None` when it does not exist (any more).
    pub fn view_of(&self, namespace: &str, name: &str) -> Option<DeploymentRollouts> {
        let d = self
            .deployments
            .get(&reflector::ObjectRef::new(name).within(namespace))?;
        let (ps, rs) = (owned(&self.policies), owned(&self.runs));
        Some(view::of_deployment(&d, &ps, &rs))
    }
}

/// What a store holds now, as owned objects.
fn owned<K: Clone + kube::Resource>(store: &reflector::Store<K>) -> Vec<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}
