//! Who governs what: one pure index over policies and runs that answers every governance
//! question (which policy governs a Deployment or that several conflict, its runs, the run in
//! flight, what a policy governs), so the two controllers and the CLI cannot disagree. Built
//! from the operator's watch stores or from the CLI's lists; no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use crate::api::RolloutPolicy;
use crate::api::run::{Phase, RolloutRun};
use crate::names::{FAILED_REVISION, GOVERNED_BY, POLICY_LABEL, STABLE_REVISION};
use crate::plan::{RevisionMeta, template_hash};
use crate::run::govern::DeploymentView;
use crate::selection;

pub mod kstatus;
pub mod retag;
pub mod verdict;

/// Which policy governs a Deployment.
#[derive(Debug, Clone)]
pub enum Governor<'a> {
    /// No policy in force selects it.
    Nobody,
    /// Exactly one does.
    One(&'a RolloutPolicy),
    /// Two or more do: rollguard leaves the Deployment alone and each reports a Conflict.
    Conflict(Vec<&'a RolloutPolicy>),
}

/// What one policy governs among some Deployments.
#[derive(Debug, Clone, Default)]
pub struct Reach<'a> {
    /// Selected by this policy alone.
    pub governed: Vec<&'a Deployment>,
    /// Selected by this policy and others: each Deployment with the other policies' names.
    pub conflicts: Vec<(&'a Deployment, Vec<String>)>,
}

/// A run and the phase rollguard last knows for it.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    run: &'a RolloutRun,
    phase: Phase,
}

/// The index. Runs are kept per (namespace, Deployment), oldest first: by creation time, the
/// name breaking ties between runs created in the same second.
#[derive(Debug, Default)]
pub struct Index<'a> {
    policies: Vec<&'a RolloutPolicy>,
    runs: BTreeMap<(String, String), Vec<Entry<'a>>>,
}

impl<'a> Index<'a> {
    /// Indexes policies (those being deleted are not in force and are left out) and runs,
    /// with `phase` saying where each run is (the operator passes the status it last wrote
    /// when its cache is behind).
    pub fn new(
        policies: impl IntoIterator<Item = &'a RolloutPolicy>,
        runs: impl IntoIterator<Item = &'a RolloutRun>,
        phase: impl Fn(&RolloutRun) -> Phase,
    ) -> Index<'a> {
        let policies = policies
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let mut by_deployment: BTreeMap<(String, String), Vec<Entry<'a>>> = BTreeMap::new();
        for run in runs {
            let key = (
                run.namespace().unwrap_or_default(),
                run.spec.deployment.clone(),
            );
            by_deployment.entry(key).or_default().push(Entry {
                run,
                phase: phase(run),
            });
        }
        for entries in by_deployment.values_mut() {
            entries.sort_by(|a, b| {
                let key = |r: &RolloutRun| (r.creation_timestamp().map(|t| t.0), r.name_any());
                key(a.run).cmp(&key(b.run))
            });
        }
        Index {
            policies,
            runs: by_deployment,
        }
    }

    /// The policies in force that select a Deployment.
    pub fn selecting(&self, d: &Deployment) -> Vec<&'a RolloutPolicy> {
        self.policies
            .iter()
            .copied()
            .filter(|p| selection::selects(p, d))
            .collect()
    }

    /// Which policy governs a Deployment.
    pub fn governor(&self, d: &Deployment) -> Governor<'a> {
        let mut selecting = self.selecting(d);
        match selecting.len() {
            0 => Governor::Nobody,
            1 => Governor::One(selecting.remove(0)),
            _ => Governor::Conflict(selecting),
        }
    }

    fn entries(&self, d: &Deployment) -> &[Entry<'a>] {
        self.runs
            .get(&(d.namespace().unwrap_or_default(), d.name_any()))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// A Deployment's runs, oldest first.
    pub fn runs_of(&self, d: &Deployment) -> Vec<&'a RolloutRun> {
        self.entries(d).iter().map(|e| e.run).collect()
    }

    /// The run in flight: the newest run that has not ended.
    pub fn active_run(&self, d: &Deployment) -> Option<&'a RolloutRun> {
        self.entries(d)
            .iter()
            .rev()
            .find(|e| !e.phase.is_terminal())
            .map(|e| e.run)
    }

    /// A Deployment's finished runs, oldest first.
    pub fn finished_runs(&self, d: &Deployment) -> Vec<&'a RolloutRun> {
        self.entries(d)
            .iter()
            .filter(|e| e.phase.is_terminal())
            .map(|e| e.run)
            .collect()
    }

    /// What a policy governs among `deployments` (canaries and other namespaces ignored).
    pub fn reach(
        &self,
        p: &RolloutPolicy,
        deployments: impl IntoIterator<Item = &'a Deployment>,
    ) -> Reach<'a> {
        let name = p.name_any();
        let mut reach = Reach::default();
        for d in deployments.into_iter().filter(|d| selection::selects(p, d)) {
            let others: Vec<String> = self
                .selecting(d)
                .iter()
                .map(|q| q.name_any())
                .filter(|q| *q != name)
                .collect();
            if others.is_empty() {
                reach.governed.push(d);
            } else {
                reach.conflicts.push((d, others));
            }
        }
        reach
    }

    /// Runs in flight, of one policy (by the run's policy label) or of all.
    pub fn active_runs(&self, policy: Option<&RolloutPolicy>) -> usize {
        let label = policy.map(|p| (p.namespace(), p.name_any()));
        self.runs
            .values()
            .flatten()
            .filter(|e| !e.phase.is_terminal())
            .filter(|e| {
                label.as_ref().is_none_or(|(ns, name)| {
                    e.run.namespace() == *ns && e.run.labels().get(POLICY_LABEL) == Some(name)
                })
            })
            .count()
    }
}

/// The policy that governed a Deployment last, by its `rollguard.dev/policy` annotation.
pub fn governed_by(d: &Deployment) -> Option<&str> {
    d.annotations().get(GOVERNED_BY).map(String::as_str)
}

/// Who unpaused a Deployment rollguard had paused: the user the admission stamp recorded
/// and the field manager that owns `spec.paused`, as far as each is known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unpauser {
    /// The authenticated user of the unpausing request, from the annotation
    /// `rollguard.dev/unpaused-by` the chart's unpause stamp writes at admission.
    pub user: Option<String>,
    /// The field manager that owns `spec.paused` (a server-side apply of `paused: false`).
    /// None when the field was removed: `kubectl rollout resume` removes it, and a false
    /// `paused` is dropped as omitempty, which leaves no manager to name.
    pub manager: Option<String>,
}

impl Unpauser {
    /// The Event action (one per writer: the recorder folds Events with one action into one
    /// series and keeps the first note) and the sentence's subject and verb.
    pub fn describe(&self) -> (String, String) {
        let removed = "removed spec.paused (as `kubectl rollout resume` does)";
        let (who, text) = match (&self.user, &self.manager) {
            (Some(u), Some(m)) => (
                u,
                format!("user {u} (field manager {m}) set spec.paused to false and"),
            ),
            (Some(u), None) => (u, format!("user {u} {removed} and")),
            (None, Some(m)) => (m, format!("field manager {m} set spec.paused to false and")),
            (None, None) => {
                return (
                    "Repause-unknown".into(),
                    format!(
                        "someone {removed}; the API server keeps no field manager for a removed field and the unpause stamp (chart value unpauseStamp.enabled) did not record the user, so only the audit log names them; they"
                    ),
                );
            }
        };
        (format!("Repause-{who}").chars().take(128).collect(), text)
    }
}

/// Who last set `spec.paused` on the Deployment, when it was not rollguard; `None` when
/// rollguard owns it.
pub fn paused_by_other(d: &Deployment) -> Option<Unpauser> {
    let owners: Vec<&str> = crate::managed_fields::owning_spec_field(&d.metadata, "paused")
        .filter_map(|m| m.manager.as_deref())
        .collect();
    if owners.contains(&crate::names::FIELD_MANAGER) {
        return None;
    }
    Some(Unpauser {
        user: d
            .annotations()
            .get(crate::names::UNPAUSED_BY)
            .filter(|u| !u.is_empty())
            .cloned(),
        manager: owners.first().map(|m| m.to_string()),
    })
}

/// Why the Deployment's current template must not roll out when rollguard lets it go: it
/// was rolled back, a run is still judging it, or no run has judged it. `None` when it is
/// the stable revision, or `promoting` (its run passed and the Deployment is rolling it).
pub fn unvetted(d: &Deployment, judging: Option<&str>, promoting: bool) -> Option<String> {
    let template = template_revision(d);
    let stable = d.annotations().get(STABLE_REVISION)?;
    if *stable == template || promoting {
        return None;
    }
    if d.annotations().get(FAILED_REVISION) == Some(&template) {
        return Some(format!(
            "its template is revision {template}, which rollguard rolled back"
        ));
    }
    Some(match judging {
        Some(run) => {
            format!("its template is revision {template}, which run {run} was still judging")
        }
        None => format!("its template is revision {template}, which rollguard has not judged"),
    })
}

/// Whether the Deployment still runs pods of other templates than its own (it stopped half
/// way through a rollout), as far as its status knows: `None` while the status has not yet
/// seen the latest spec (every write to `spec.paused` makes it stale for a moment), so a
/// caller keeps what it has instead of flapping.
pub fn mid_rollout(d: &Deployment) -> Option<bool> {
    let (spec, st) = (d.spec.as_ref()?, d.status.as_ref()?);
    if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
        return None;
    }
    let want = spec.replicas.unwrap_or(1);
    Some(st.updated_replicas.unwrap_or(0) < want || st.replicas.unwrap_or(0) > want)
}

/// The Deployment has rolled out its current template completely.
pub fn rollout_complete(d: &Deployment) -> bool {
    let (Some(spec), Some(st)) = (d.spec.as_ref(), d.status.as_ref()) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && st.updated_replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
}

/// Hash of the Deployment's current pod template (empty without a spec).
pub fn template_revision(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .map(|s| template_hash(&s.template))
        .unwrap_or_default()
}

/// The labels and annotations a tier is matched on.
pub fn revision_meta(d: &Deployment) -> RevisionMeta<'_> {
    let tm = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
    RevisionMeta {
        template_labels: tm.and_then(|m| m.labels.as_ref()),
        template_annotations: tm.and_then(|m| m.annotations.as_ref()),
        deployment_labels: d.metadata.labels.as_ref(),
        deployment_annotations: d.metadata.annotations.as_ref(),
    }
}

/// The parts of a Deployment that decide its governance, read from its template and
/// rollguard's annotations.
pub fn view(d: &Deployment) -> DeploymentView {
    let annotation = |k: &str| d.annotations().get(k).cloned();
    DeploymentView {
        template_revision: template_revision(d),
        stable_revision: annotation(STABLE_REVISION),
        failed_revision: annotation(FAILED_REVISION),
        rollout_complete: rollout_complete(d),
    }
}

#[cfg(test)]
mod tests;
