//! One test's world, the one fixture of the e2e tests that govern a Deployment: a namespace
//! with Deployment `web` (3 replicas, 0.1% errors), its Service, an HTTPRoute when the router
//! is the Gateway API, RolloutPolicy `shop`, the operator and the traffic simulator, built
//! step by step with [`World::builder`] and waited for until the operator has adopted `web`.
//!
//! ```ignore
//! let w = World::builder("human").router(Router::Gateway).tiers(json!([...])).build().await;
//! w.deploy("0.001", "example.com/web:2", Some("human")).await;
//! w.wait_phase(Phase::Succeeded, Duration::from_secs(90)).await;
//! w.finish().await;
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rollguard::api::RolloutPolicy;
use rollguard::api::run::{Phase, RolloutRun};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::procs::{Proc, start_operator, start_operator_named, start_trafficsim};
use super::{TestNamespace, create};

/// The governed Deployment's name.
pub const APP: &str = "web";

/// A few worlds at a time: each has its own operator, simulator and Prometheus job.
static SLOTS: Semaphore = Semaphore::const_new(4);

/// How the policy routes the canary's share.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Router {
    /// `traffic: {replicas: {}}`; the Service gets the traffic.
    Replicas,
    /// `traffic: {gatewayAPI: {}}`; HTTPRoute `web` (2000 requests/s, so a 1% slice sees
    /// 20/s) gets the traffic, the Service none of its own.
    Gateway,
}

/// The queries of every test policy: all requests and the 5xx of one workload.
pub const REQUESTS: &str = r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))"#;
pub const ERRORS: &str = r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code=~"5.."}[{{elapsed}}]))"#;

/// The lease arguments of an operator that takes part in leader election in `namespace`.
pub fn lease_args(namespace: &str) -> [&str; 5] {
    [
        "--leader-elect",
        "--lease-namespace",
        namespace,
        "--lease-duration",
        "6s",
    ]
}

/// Deployment `web` as the world creates it (its first template is the stable one).
pub fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP, "labels": {"app.kubernetes.io/part-of": "shop"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}, "annotations": {"sim.rollguard.dev/error-rate": "0.001"}},
                "spec": {"containers": [{"name": "app", "image": "example.com/web:1"}]}
            }
        }
    })
}

/// What to build; see the setters for the defaults.
pub struct Builder {
    prefix: String,
    namespace: Option<TestNamespace>,
    router: Option<Router>,
    service_rps: String,
    analysis: serde_json::Map<String, Value>,
    tiers: Value,
    secrets: Vec<Secret>,
    operator: Operator,
    approval_policy: bool,
    gated: bool,
    operator_args: Vec<String>,
    real_gateway: bool,
}

enum Operator {
    One,
    LeaderElected,
    None,
}

impl Builder {
    /// The router; by default the policy names none (the CRD's default, replicas).
    pub fn router(mut self, router: Router) -> Builder {
        self.router = Some(router);
        self
    }

    /// The Gateway API router on the real data path (`make test-gateway`): the route attaches
    /// to the cluster's Traefik Gateway with host `<namespace>.rollguard.test`, the policy reads
    /// Traefik's own counters through the `traefik` preset (no templates), and the pod server answers on
    /// the pods' loopback IPs instead of the traffic simulator (in [`World::sim`]). Nothing
    /// sends requests: the test starts the load generator once it checked the network rule.
    pub fn real_gateway(mut self) -> Builder {
        self.router = Some(Router::Gateway);
        self.real_gateway = true;
        self.analysis(json!({
            "preset": "traefik",
            "requests": null,
            "errors": null,
        }))
    }

    /// The Service's requests per second (default 100; none with the Gateway router).
    pub fn service_rps(mut self, rps: &str) -> Builder {
        self.service_rps = rps.to_string();
        self
    }

    /// Keys of the policy's `spec.analysis` that replace the defaults (a null removes one).
    /// The defaults: a 1 s interval, the local Prometheus with a 2 s timeout, [`REQUESTS`],
    /// [`ERRORS`], `minRequests: 10`.
    pub fn analysis(mut self, over: Value) -> Builder {
        if let Value::Object(over) = over {
            for (k, v) in over {
                if v.is_null() {
                    self.analysis.remove(&k);
                } else {
                    self.analysis.insert(k, v);
                }
            }
        }
        self
    }

    /// The policy's tiers (default: `standard`, 10% and 50% with 3 s pauses, 5% errors at most).
    pub fn tiers(mut self, tiers: Value) -> Builder {
        self.tiers = tiers;
        self
    }

    /// A Secret created before the policy.
    pub fn secret(mut self, s: Secret) -> Builder {
        self.secrets.push(s);
        self
    }

    /// In a namespace the test already made (the world then owns and cleans it up).
    pub fn namespace(mut self, ns: TestNamespace) -> Builder {
        self.namespace = Some(ns);
        self
    }

    /// The operator takes part in leader election (`op-0`, which takes the Lease); a test adds
    /// followers with [`lease_args`].
    pub fn leader_elected(mut self) -> Builder {
        self.operator = Operator::LeaderElected;
        self
    }

    /// No operator process: the test runs its own (adoption is still waited for).
    pub fn without_operator(mut self) -> Builder {
        self.operator = Operator::None;
        self
    }

    /// The namespace left out of the pause gate (the mode of a cluster without it): governed
    /// Deployments stay paused between runs. By default the gate is in force.
    pub fn ungated(mut self) -> Builder {
        self.gated = false;
        self
    }

    /// Extra arguments for the (single) operator process.
    pub fn operator_args(mut self, args: &[&str]) -> Builder {
        self.operator_args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The chart's approval admission policy in force (`super::approvals`).
    pub fn approval_policy(mut self) -> Builder {
        self.approval_policy = true;
        self
    }

    /// The policy `name` this builder describes, selecting `app.kubernetes.io/part-of: shop`.
    pub fn policy(&self, name: &str) -> Value {
        let mut spec = json!({
            "selector": {"matchLabels": {"app.kubernetes.io/part-of": "shop"}},
            "analysis": self.analysis,
            "tiers": self.tiers,
        });
        match self.router {
            Some(Router::Replicas) => spec["traffic"] = json!({"replicas": {}}),
            Some(Router::Gateway) => spec["traffic"] = json!({"gatewayAPI": {}}),
            None => {}
        }
        json!({
            "apiVersion": "rollguard.dev/v1alpha1",
            "kind": "RolloutPolicy",
            "metadata": {"name": name},
            "spec": spec,
        })
    }

    /// Creates the world and waits until the operator has adopted `web` (paused, with its
    /// stable revision recorded).
    pub async fn build(mut self) -> World {
        let client = super::client().await;
        // The namespace (and with it the test's claim on the cluster) first: before anything
        // else asks the cluster, and before the slot, so a test waiting for the cluster never
        // holds a slot.
        let ns = match self.namespace.take() {
            Some(ns) => ns,
            None => super::test_namespace(&client, &self.prefix).await,
        };
        if self.approval_policy {
            super::admission::in_force(&client, super::admission::Policy::Approvals).await;
        }
        // Every world runs under the run guard (the test operators pass as cluster
        // administrators, the chart's operator as its ServiceAccount).
        super::admission::in_force(&client, super::admission::Policy::RunsGuard).await;
        // And under the pause gate, unless the namespace opts out of it.
        super::admission::in_force(&client, super::admission::Policy::PauseGate).await;
        if !self.gated {
            super::label_namespace(&client, &ns.name, super::admission::UNGATED, Some("true"))
                .await;
        }
        let slot = SLOTS.acquire().await.expect("a world slot");
        let n = ns.name.clone();
        create(
            &Api::<Deployment>::namespaced(client.clone(), &n),
            deployment(),
        )
        .await;
        let svc_annotations = if self.router == Some(Router::Gateway) {
            json!({})
        } else {
            json!({"sim.rollguard.dev/rps": self.service_rps})
        };
        create(
            &Api::<Service>::namespaced(client.clone(), &n),
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": APP, "annotations": svc_annotations},
                "spec": {"selector": {"app": APP}, "ports": [{"port": 80, "targetPort": 8080}]}
            }),
        )
        .await;
        if self.real_gateway {
            let gw = super::gateway::Gateway::from_env();
            create(
                &Api::<HttpRoute>::namespaced(client.clone(), &n),
                json!({
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": APP},
                    "spec": {
                        "parentRefs": [{"name": gw.name, "namespace": gw.namespace}],
                        "hostnames": [super::gateway::host(&n)],
                        "rules": [{"backendRefs": [
                            {"name": "web-stable", "port": 80, "weight": 100},
                            {"name": "web-canary", "port": 80, "weight": 0}
                        ]}]
                    }
                }),
            )
            .await;
        } else if self.router == Some(Router::Gateway) {
            create(
                &Api::<HttpRoute>::namespaced(client.clone(), &n),
                json!({
                    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": APP, "annotations": {"sim.rollguard.dev/rps": "2000"}},
                    "spec": {
                        "parentRefs": [{"name": "public"}],
                        "rules": [{"backendRefs": [
                            {"name": "web-stable", "port": 80, "weight": 100},
                            {"name": "web-canary", "port": 80, "weight": 0}
                        ]}]
                    }
                }),
            )
            .await;
        }
        for s in &self.secrets {
            Api::<Secret>::namespaced(client.clone(), &n)
                .create(&PostParams::default(), s)
                .await
                .expect("create Secret");
        }
        create(
            &Api::<RolloutPolicy>::namespaced(client.clone(), &n),
            self.policy("shop"),
        )
        .await;
        let op = match self.operator {
            Operator::One if self.operator_args.is_empty() => Some(start_operator(&n).await),
            Operator::One => {
                let args: Vec<&str> = self.operator_args.iter().map(String::as_str).collect();
                Some(start_operator_named(&n, "operator", &args).await)
            }
            Operator::LeaderElected => {
                Some(start_operator_named(&n, "op-0", &lease_args(&n)).await)
            }
            Operator::None => None,
        };
        let sim = if self.real_gateway {
            super::gateway::start_podserver(&n)
        } else {
            start_trafficsim(&n).await
        };
        let w = World {
            client,
            ns,
            op,
            sim,
            gated: self.gated,
            _slot: slot,
        };
        w.wait(
            "the Deployment to be adopted",
            Duration::from_secs(60),
            async || {
                let d = w.deployment().await;
                let paused = d.spec.as_ref()?.paused == Some(true);
                (paused == w.paused_between_runs()
                    && d.annotations()
                        .contains_key("rollguard.dev/stable-revision"))
                .then_some(())
            },
        )
        .await;
        w
    }
}

/// A built world; [`World::finish`] deletes its namespace.
pub struct World {
    pub client: Client,
    pub ns: TestNamespace,
    op: Option<Proc>,
    /// The traffic simulator, or the pod server on the real data path.
    pub sim: Proc,
    /// The pause gate is in force in the namespace ([`Builder::ungated`]).
    pub gated: bool,
    _slot: SemaphorePermit<'static>,
}

impl World {
    /// Whether the governed Deployment is paused between runs: only without the pause gate.
    pub fn paused_between_runs(&self) -> bool {
        !self.gated
    }

    /// A world in a new namespace `<prefix>-<random>`.
    pub fn builder(prefix: &str) -> Builder {
        let analysis = json!({
            "interval": "1s",
            "prometheus": {"address": super::prometheus_url(), "timeout": "2s"},
            "requests": REQUESTS,
            "errors": ERRORS,
            "minRequests": 10
        });
        Builder {
            prefix: prefix.to_string(),
            namespace: None,
            router: None,
            service_rps: "100".into(),
            analysis: analysis.as_object().cloned().unwrap_or_default(),
            tiers: json!([{"name": "standard", "steps": [{"weight": "10%", "pause": "3s"}, {"weight": "50%", "pause": "3s"}], "maxErrorRate": "5%"}]),
            secrets: Vec::new(),
            operator: Operator::One,
            approval_policy: false,
            gated: true,
            operator_args: Vec::new(),
            real_gateway: false,
        }
    }

    pub fn n(&self) -> &str {
        &self.ns.name
    }

    /// The operator process (the world was built with one).
    pub fn op(&self) -> &Proc {
        self.op.as_ref().expect("a world with an operator")
    }

    pub fn op_mut(&mut self) -> &mut Proc {
        self.op.as_mut().expect("a world with an operator")
    }

    /// Replaces the operator process (the old one is killed when dropped).
    pub fn set_op(&mut self, op: Proc) {
        self.op = Some(op);
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), self.n())
    }

    pub fn runs(&self) -> Api<RolloutRun> {
        Api::namespaced(self.client.clone(), self.n())
    }

    pub fn policies(&self) -> Api<RolloutPolicy> {
        Api::namespaced(self.client.clone(), self.n())
    }

    pub async fn deployment(&self) -> Deployment {
        self.deployments().get(APP).await.expect("the Deployment")
    }

    /// Applies a new pod template: an error rate for the simulator, an image, an origin tag
    /// (none removes it).
    pub async fn deploy(&self, error_rate: &str, image: &str, origin: Option<&str>) {
        let mut annotations = json!({"sim.rollguard.dev/error-rate": error_rate});
        if let Some(o) = origin {
            annotations["rollguard.dev/change-origin"] = json!(o);
        } else {
            annotations["rollguard.dev/change-origin"] = Value::Null;
        }
        self.deploy_annotated(annotations, image).await;
    }

    /// Applies a new pod template with `image` and the pod `annotations` (merged; a null
    /// removes one), e.g. the simulator's `sim.rollguard.dev/latency`.
    pub async fn deploy_annotated(&self, annotations: Value, image: &str) {
        let patch = json!({"spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": image}]}
        }}});
        self.deployments()
            .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("patching the template");
    }

    /// Gives `web` image `web:2`: a run starts.
    pub async fn new_template(&self) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/web:2"}]}}}});
        self.deployments()
            .patch(APP, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("new template");
    }

    /// Puts the first (stable) template back, as a revert in Git does.
    pub async fn revert(&self) {
        let stable = deployment();
        self.deployments()
            .patch(
                APP,
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"template": stable["spec"]["template"]}})),
            )
            .await
            .expect("revert");
    }

    /// Binds `users` to a Role `deployer` in the namespace with exactly what editing a
    /// Deployment needs (get, list, watch, patch Deployments): people who deploy, not admins.
    pub async fn deployers(&self, users: &[&str]) {
        let rules = json!([{"apiGroups": ["apps"], "resources": ["deployments"],
                            "verbs": ["get", "list", "watch", "patch"]}]);
        self.bind_users("deployer", rules, users).await;
    }

    /// Binds `users` to a Role `approver` in the namespace with exactly the documented
    /// approver's rules (what `kubectl rollguard` reads, and `patch` on runs).
    pub async fn approvers(&self, users: &[&str]) {
        self.bind_users("approver", approver_rules(), users).await;
    }

    /// A Role `name` with `rules` in the namespace, bound to `users`.
    async fn bind_users(&self, name: &str, rules: Value, users: &[&str]) {
        use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
        let client = self.client.clone();
        create(
            &Api::<Role>::namespaced(client.clone(), self.n()),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": name}, "rules": rules}),
        )
        .await;
        let subjects: Vec<Value> = users
            .iter()
            .map(|u| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u}))
            .collect();
        create(
            &Api::<RoleBinding>::namespaced(client, self.n()),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": name},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                   "subjects": subjects}),
        )
        .await;
    }

    /// The newest run with its condition of type `type_`, when it has one.
    pub async fn run_condition(
        &self,
        type_: &str,
    ) -> Option<(
        RolloutRun,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition,
    )> {
        let r = self.run().await?;
        let c = r
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)?
            .clone();
        Some((r, c))
    }

    /// Waits until the newest run ended with `reason`.
    pub async fn wait_reason(&self, reason: &str, timeout: Duration) -> RolloutRun {
        self.wait(&format!("the run to end {reason}"), timeout, async || {
            let r = self.run().await?;
            (r.status.as_ref()?.reason.as_deref() == Some(reason)).then_some(r)
        })
        .await
    }

    /// The newest run.
    pub async fn run(&self) -> Option<RolloutRun> {
        newest_run(&self.runs()).await
    }

    pub async fn run_count(&self) -> usize {
        self.runs()
            .list(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0)
    }

    /// Polls `check` every 200 ms until it returns `Some`; after `timeout` panics with `what`,
    /// the newest run, the Deployments' status, the operator's log and the cluster's logs.
    pub async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        if let Some(v) = super::poll(timeout, Duration::from_millis(200), check).await {
            return v;
        }
        let run = self.run().await;
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), self.n());
        let deployments: Vec<_> = deployments
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.name_any(), d.spec.and_then(|s| s.paused), d.status))
            .collect();
        panic!(
            "timed out after {timeout:?} waiting for {what}\nnewest run: {}\ndeployments (name, paused, status): {}\noperator log:\n{}\n{}",
            serde_json::to_string_pretty(&run.map(|r| (r.metadata.name, r.spec.control, r.status)))
                .unwrap_or_default(),
            serde_json::to_string_pretty(&deployments).unwrap_or_default(),
            self.op.as_ref().map(|op| op.tail(40)).unwrap_or_default(),
            super::cluster_logs(30)
        );
    }

    /// Waits until the newest run reaches `phase`.
    pub async fn wait_phase(&self, phase: Phase, timeout: Duration) -> RolloutRun {
        self.wait(&format!("a run in phase {phase:?}"), timeout, async || {
            let r = self.run().await?;
            (run_phase(&r) == phase).then_some(r)
        })
        .await
    }

    /// The uids of the stable pods.
    pub async fn stable_pods(&self) -> BTreeSet<String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.n());
        pods.list(&ListParams::default().labels("app=web,!rollguard.dev/role"))
            .await
            .expect("pods")
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect()
    }

    pub async fn canary(&self) -> Option<Deployment> {
        self.deployments()
            .get_opt("web-canary")
            .await
            .expect("get canary")
    }

    /// (stable, canary) weights on the HTTPRoute.
    pub async fn route_weights(&self) -> (i32, i32) {
        let routes: Api<HttpRoute> = Api::namespaced(self.client.clone(), self.n());
        let r = routes.get(APP).await.expect("the route");
        let refs = r.spec.rules.expect("rules")[0]
            .backend_refs
            .clone()
            .expect("refs");
        (refs[0].weight.unwrap_or(1), refs[1].weight.unwrap_or(1))
    }

    /// Requests the simulator could not deliver (no backend, no ready pod), by reason.
    pub async fn unrouted(&self) -> BTreeMap<String, u64> {
        let stats: Value = reqwest::get(format!("http://{}/stats", self.sim.addr))
            .await
            .expect("the simulator's /stats")
            .json()
            .await
            .expect("JSON");
        let mut out = BTreeMap::new();
        for row in stats["unrouted"].as_array().into_iter().flatten() {
            *out.entry(row["reason"].as_str().unwrap_or("?").to_string())
                .or_default() += row["requests"].as_u64().unwrap_or(0);
        }
        out
    }

    /// The Events of the namespace with this reason.
    pub async fn events(&self, reason: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.n());
        events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect()
    }

    /// Stops the processes and deletes the namespace.
    pub async fn finish(self) {
        let World { ns, op, sim, .. } = self;
        drop(op);
        drop(sim);
        ns.cleanup().await;
    }
}

/// A run's phase (`Progressing`, the default, before its first status).
pub fn run_phase(r: &RolloutRun) -> Phase {
    r.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// The newest run behind `api` (the last by name among those created in the same second).
pub async fn newest_run(api: &Api<RolloutRun>) -> Option<RolloutRun> {
    let mut runs = api.list(&ListParams::default()).await.ok()?.items;
    runs.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    runs.pop()
}

/// Shows that the newest run holds at its first step: it is checked (Progressing, step 0,
/// first slice) at every poll over a window in which `more` new samples arrive, so the
/// absence of progress is asserted while the operator is seen at work, never after a bare
/// sleep. With a 1 s interval, 8 samples outlast the default plan's 6 s of pauses. Returns
/// the status at the end of the window.
pub async fn holds_over(
    runs: &Api<RolloutRun>,
    more: i32,
) -> rollguard::api::run::RolloutRunStatus {
    let status = async || newest_run(runs).await.and_then(|r| r.status);
    let from = status().await.map_or(0, |s| s.sample_count);
    let held = super::poll(
        Duration::from_secs(120),
        Duration::from_millis(200),
        async || {
            let st = status().await?;
            assert_eq!(st.phase, Phase::Progressing, "it holds: {st:?}");
            assert_eq!(st.step, 0, "it never advances without evidence: {st:?}");
            (st.sample_count >= from + more).then_some(st)
        },
    )
    .await;
    held.unwrap_or_else(|| {
        panic!("no {more} new samples in 120 s: nothing shows the operator at work while it holds")
    })
}

/// The documented approver Role's rules (docs/operations/rbac.md): what `kubectl rollguard`
/// reads, and `patch` on runs to add an approval or a command.
pub fn approver_rules() -> Value {
    json!([
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rollguard.dev"], "resources": ["rolloutpolicies"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rollguard.dev"], "resources": ["rolloutruns"], "verbs": ["get", "list", "watch", "patch"]},
    ])
}
