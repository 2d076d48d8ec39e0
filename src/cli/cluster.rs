//! The CLI's side of the API server: the kubeconfig flags, a session that turns every
//! failed request into a [`CliError`] naming the verb and resource, the lookups the verbs
//! share (the Deployment, its policy, its runs), the caller's authenticated identity, and
//! guarded writes to a run.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};

use super::errors::{Attempt, CliError, classify, resource};
use super::view::{self, DeploymentRollouts};
use crate::api::RolloutPolicy;
use crate::api::run::RolloutRun;
use crate::names::DEPLOYMENT_LABEL;

/// The field manager of the CLI's writes (distinct from the operator's).
pub const FIELD_MANAGER: &str = "kubectl-rollguard";

/// How many times a guarded write re-reads the run after a conflicting update.
const WRITE_ATTEMPTS: usize = 8;

/// Which cluster and namespace, as kubectl takes them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeArgs {
    /// The namespace (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Act as this user (impersonation, as kubectl's `--as`; needs RBAC `impersonate`).
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    /// Act with this group too (repeatable; as kubectl's `--as-group`).
    #[arg(long = "as-group", value_name = "GROUP", requires = "as_user")]
    pub as_group: Vec<String>,
}

/// Where to look: one namespace or all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Namespace(String),
    All,
}

impl Scope {
    fn ns(&self) -> Option<&str> {
        match self {
            Scope::Namespace(ns) => Some(ns),
            Scope::All => None,
        }
    }

    fn attempt(&self, verb: &'static str, resource: &'static str) -> Attempt {
        match self {
            Scope::Namespace(ns) => Attempt::new(verb, resource, ns),
            Scope::All => Attempt::cluster(verb, resource),
        }
    }
}

/// The authenticated identity, as the API server sees the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// A connection to the API server and the namespace the command works in.
#[derive(Clone)]
pub struct Session {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// The API server's URL, for "cannot reach" messages.
    pub server: String,
}

/// Connects with the kubeconfig flags (or the usual inference: $KUBECONFIG, ~/.kube/config,
/// in-cluster). Nothing is sent yet.
pub async fn connect(args: &KubeArgs) -> Result<Session, CliError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let mut config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| CliError::Config(e.to_string()))?
        }
        None if args.context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| CliError::Config(e.to_string()))?,
    };
    config.connect_timeout = Some(Duration::from_secs(10));
    if let Some(user) = &args.as_user {
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups =
            (!args.as_group.is_empty()).then(|| args.as_group.clone());
    }
    let server = config.cluster_url.to_string();
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| CliError::Config(e.to_string()))?;
    Ok(Session {
        client,
        namespace,
        server,
    })
}

impl Session {
    /// Turns a failed request into the CLI's error, naming the server when unreachable.
    pub fn fail(&self, e: kube::Error, attempt: &Attempt) -> CliError {
        match classify(e, attempt) {
            CliError::Unreachable { detail, .. } => CliError::Unreachable {
                server: format!(" at {}", self.server.trim_end_matches('/')),
                detail,
            },
            other => other,
        }
    }

    /// Same for a watch error.
    pub fn fail_watch(&self, e: kube::runtime::watcher::Error, attempt: &Attempt) -> CliError {
        match super::errors::classify_watch(e, attempt) {
            CliError::Unreachable { detail, .. } => CliError::Unreachable {
                server: format!(" at {}", self.server.trim_end_matches('/')),
                detail,
            },
            other => other,
        }
    }

    /// The runs API in the session's namespace.
    pub fn runs_api(&self) -> Api<RolloutRun> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Deployments API in the session's namespace.
    pub fn deployments_api(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The named Deployment, or "no such Deployment".
    pub async fn deployment(&self, name: &str) -> Result<Deployment, CliError> {
        let attempt = Attempt::new("get", resource::DEPLOYMENTS, &self.namespace);
        match self.deployments_api().get(name).await {
            Ok(d) => Ok(d),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(CliError::NoSuchDeployment {
                namespace: self.namespace.clone(),
                name: name.to_string(),
            }),
            Err(e) => Err(self.fail(e, &attempt)),
        }
    }

    /// Deployments in a scope.
    pub async fn deployments(&self, scope: &Scope) -> Result<Vec<Deployment>, CliError> {
        let api: Api<Deployment> = scoped(&self.client, scope);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| self.fail(e, &scope.attempt("list", resource::DEPLOYMENTS)))
    }

    /// Policies in a scope.
    pub async fn policies(&self, scope: &Scope) -> Result<Vec<RolloutPolicy>, CliError> {
        let api: Api<RolloutPolicy> = scoped(&self.client, scope);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| self.fail(e, &scope.attempt("list", resource::POLICIES)))
    }

    /// Runs in a scope, optionally only one Deployment's.
    pub async fn runs(
        &self,
        scope: &Scope,
        deployment: Option<&str>,
    ) -> Result<Vec<RolloutRun>, CliError> {
        let api: Api<RolloutRun> = scoped(&self.client, scope);
        let lp = match deployment {
            Some(d) => ListParams::default().labels(&format!("{DEPLOYMENT_LABEL}={d}")),
            None => ListParams::default(),
        };
        api.list(&lp)
            .await
            .map(|l| l.items)
            .map_err(|e| self.fail(e, &scope.attempt("list", resource::RUNS)))
    }

    /// Everything the CLI knows about one Deployment; "no such Deployment" or "not
    /// governed" when there is nothing to show.
    pub async fn rollouts(&self, name: &str) -> Result<(Deployment, DeploymentRollouts), CliError> {
        let d = self.deployment(name).await?;
        let scope = Scope::Namespace(self.namespace.clone());
        let policies = self.policies(&scope).await?;
        let runs = self.runs(&scope, Some(name)).await?;
        let v = view::of_deployment(&d, &policies, &runs);
        if v.policies.is_empty() && v.current.is_none() && v.history.is_empty() {
            return Err(self.not_governed(name, "no RolloutPolicy in the namespace selects its labels; add a policy whose spec.selector matches them (kubectl get rolloutpolicies)"));
        }
        Ok((d, v))
    }

    /// Like [`Session::rollouts`], and the Deployment must be governed by exactly one policy.
    pub async fn governed(&self, name: &str) -> Result<(Deployment, DeploymentRollouts), CliError> {
        let (d, v) = self.rollouts(name).await?;
        match v.policies.as_slice() {
            [_] => Ok((d, v)),
            [] => Err(self.not_governed(name, "no RolloutPolicy selects it any more (its runs are history); add a policy whose spec.selector matches its labels")),
            many => Err(self.not_governed(
                name,
                &format!(
                    "it is selected by {} policies ({}), so rollguard leaves it alone; change their selectors so exactly one selects it",
                    many.len(),
                    many.join(", ")
                ),
            )),
        }
    }

    fn not_governed(&self, name: &str, why: &str) -> CliError {
        CliError::NotGoverned {
            namespace: self.namespace.clone(),
            name: name.to_string(),
            why: why.to_string(),
        }
    }

    /// The run in flight, or "no run in flight" saying how the last one ended.
    pub fn in_flight(&self, v: &DeploymentRollouts) -> Result<RolloutRun, CliError> {
        if let Some(r) = &v.current {
            return Ok(r.clone());
        }
        let last = match v.last() {
            Some(r) => format!(
                "; the last run {} ended {}: start one by changing the pod template{}",
                r.name_any(),
                view::phase(r).as_str(),
                if v.failed_revision.is_some() {
                    ", or `retry` the rolled-back revision"
                } else {
                    ""
                }
            ),
            None => "; start one by changing the pod template".to_string(),
        };
        Err(CliError::NoRunInFlight {
            namespace: self.namespace.clone(),
            name: v.deployment.clone(),
            last,
        })
    }

    /// Who the API server says the caller is (SelfSubjectReview), never a name the user
    /// typed.
    pub async fn whoami(&self) -> Result<Identity, CliError> {
        let attempt = Attempt::cluster("create", resource::SELF_SUBJECT_REVIEWS);
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = api
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .map_err(|e| self.fail(e, &attempt))?;
        let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
        match info.username {
            Some(user) if !user.is_empty() => Ok(Identity {
                user,
                groups: info.groups.unwrap_or_default(),
            }),
            _ => Err(CliError::Other(
                "the API server did not say who you are (SelfSubjectReview returned no username); log in with a user the API server authenticates".into(),
            )),
        }
    }

    /// Writes to a run after checking it, re-reading and re-checking on a conflict.
    /// `decide` sees the latest run and returns the JSON patch to send (or a refusal);
    /// the patch is guarded by a `test` of the run's resourceVersion, so nothing is written
    /// on the strength of a stale read.
    pub async fn patch_run<F>(&self, name: &str, mut decide: F) -> Result<RolloutRun, CliError>
    where
        F: FnMut(&RolloutRun) -> Result<Vec<serde_json::Value>, CliError>,
    {
        let api = self.runs_api();
        let get = Attempt::new("get", resource::RUNS, &self.namespace);
        let patch = Attempt::new("patch", resource::RUNS, &self.namespace);
        for _ in 0..WRITE_ATTEMPTS {
            let run = api.get(name).await.map_err(|e| self.fail(e, &get))?;
            let rv = run.resource_version().unwrap_or_default();
            let mut ops = vec![serde_json::json!({
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": rv,
            })];
            ops.extend(decide(&run)?);
            let p: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
                .map_err(|e| CliError::Other(format!("building the patch for run {name}: {e}")))?;
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.patch(name, &params, &Patch::<()>::Json(p)).await {
                Ok(r) => return Ok(r),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                // A failed `test` op is a bare 422: retry when the run changed since we read
                // it (the operator writes its status often), else it is a real refusal.
                Err(kube::Error::Api(s)) if s.code == 422 => {
                    let now = api.get(name).await.map_err(|e| self.fail(e, &get))?;
                    if now.resource_version().unwrap_or_default() != rv {
                        continue;
                    }
                    return Err(self.fail(kube::Error::Api(s), &patch));
                }
                Err(e) => return Err(self.fail(e, &patch)),
            }
        }
        Err(CliError::Other(format!(
            "run {name} kept changing while the CLI tried to update it; try again"
        )))
    }
}

fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope.ns() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}
