//! What the Deployment reconciler sees of a governed Deployment's canary, worked out from the
//! watch caches without I/O: the canary Deployment of the revision on trial, what is left of
//! an earlier canary that can still serve, and the `pod-template-hash` each side runs.
//!
//! Why "earlier canary" is its own question: every run's canary is `<name>-canary`, so two
//! runs' pods share a name, labels and (in most data planes) the metric series. A new canary
//! may take traffic and open its analysis window only once no pod of an earlier one exists.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::names::DEPLOYMENT_LABEL;
use crate::names::{ROLE_CANARY, ROLE_LABEL};
use crate::plan::template_hash;
use crate::run::CanaryObserved;

/// The `<name>-canary` Deployment as the caches show it.
#[derive(Debug, Clone, Copy)]
pub struct CanarySight<'a> {
    /// The object named `<name>-canary`, whatever its revision or state.
    pub found: Option<&'a Deployment>,
    /// `found` when it runs the revision on trial and is not being deleted: the only canary
    /// rollguard may resize, route to or measure.
    pub live: Option<&'a Deployment>,
}

impl<'a> CanarySight<'a> {
    /// Sorts what was found by the revision on trial (`""` = no run: nothing is live).
    pub fn of(found: Option<&'a Deployment>, revision: &str) -> Self {
        let live = found.filter(|c| {
            c.metadata.deletion_timestamp.is_none()
                && !revision.is_empty()
                && c.spec
                    .as_ref()
                    .is_some_and(|s| template_hash(&s.template) == revision)
        });
        CanarySight { found, live }
    }

    /// The found canary is being deleted: it is made again only once it is gone.
    pub fn terminating(&self) -> bool {
        self.found
            .is_some_and(|c| c.metadata.deletion_timestamp.is_some())
    }

    /// A canary that is neither live nor already going away: one of another revision, to
    /// delete before the run's own is made.
    pub fn stray(&self) -> Option<&'a Deployment> {
        self.found
            .filter(|c| c.metadata.deletion_timestamp.is_none() && self.live.is_none())
    }

    /// The live canary's pods as the run machine counts them.
    pub fn observed(&self) -> Option<CanaryObserved> {
        let c = self.live?;
        let spec = c.spec.as_ref()?;
        let st = c.status.as_ref();
        // Count ready pods only once the canary's controller has seen its current spec.
        let current = st.and_then(|s| s.observed_generation).unwrap_or(0)
            >= c.metadata.generation.unwrap_or(0);
        let ready = if current {
            st.map(|s| {
                s.ready_replicas
                    .unwrap_or(0)
                    .min(s.updated_replicas.unwrap_or(0))
            })
            .unwrap_or(0)
        } else {
            0
        };
        Some(CanaryObserved {
            replicas: spec.replicas.unwrap_or(1),
            ready,
            serving: st.and_then(|s| s.ready_replicas).unwrap_or(0),
            // Known only to the Gateway API router (from the routing Service's slices).
            endpoints: None,
        })
    }
}

/// What is left of an earlier canary of `deployment` that can still serve, named for the
/// run's condition: the `<name>-canary` Deployment when it is not the live one (being deleted,
/// or of another revision), or a ReplicaSet labelled as this Deployment's canary that the live
/// canary does not own. rollguard deletes canaries in the foreground and the ReplicaSet
/// controller marks its pods `blockOwnerDeletion`, so such a ReplicaSet exists until its last
/// pod is gone from the API server: its absence is proof that no earlier pod can serve.
pub fn earlier_canary(
    sight: &CanarySight,
    deployment: &str,
    replicasets: &[&ObjectMeta],
) -> Option<String> {
    if let Some(c) = sight.found
        && sight.live.is_none()
    {
        let name = c.metadata.name.as_deref().unwrap_or_default();
        return Some(if c.metadata.deletion_timestamp.is_some() {
            format!("the canary Deployment {name} of an earlier run is still being deleted")
        } else {
            format!("the canary Deployment {name} runs another revision")
        });
    }
    let live_uid = sight.live.and_then(|c| c.metadata.uid.as_deref());
    replicasets
        .iter()
        .filter(|rs| {
            let labels = rs.labels.as_ref();
            labels.and_then(|l| l.get(ROLE_LABEL)).map(String::as_str) == Some(ROLE_CANARY)
                && labels
                    .and_then(|l| l.get(DEPLOYMENT_LABEL))
                    .map(String::as_str)
                    == Some(deployment)
        })
        .find(|rs| {
            let owner = rs
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true));
            owner.map(|o| o.uid.as_str()) != live_uid || live_uid.is_none()
        })
        .map(|rs| {
            format!(
                "ReplicaSet {} of an earlier canary still has pods",
                rs.name.as_deref().unwrap_or_default()
            )
        })
}

/// The `pod-template-hash` of the newest ReplicaSet the object with `owner_uid` controls:
/// for a paused governed Deployment its stable pods, for the canary the canary's pods.
pub fn newest_pod_template_hash(owner_uid: &str, replicasets: &[&ObjectMeta]) -> Option<String> {
    replicasets
        .iter()
        .filter(|rs| {
            rs.owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == owner_uid)
        })
        .max_by_key(|rs| {
            rs.annotations
                .as_ref()
                .and_then(|a| a.get("deployment.kubernetes.io/revision"))
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0)
        })
        .and_then(|rs| rs.labels.as_ref()?.get("pod-template-hash").cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web", ROLE_LABEL: ROLE_CANARY, DEPLOYMENT_LABEL: "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .expect("template")
    }

    fn canary(uid: &str, image: &str, deleting: bool) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web-canary".into()),
                uid: Some(uid.into()),
                generation: Some(2),
                deletion_timestamp: deleting.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                template: template(image),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(2),
                ready_replicas: Some(2),
                updated_replicas: Some(1),
                ..Default::default()
            }),
        }
    }

    fn rs(name: &str, owner_uid: &str, hash: &str, revision: &str, canary_of: &str) -> ObjectMeta {
        let mut labels = BTreeMap::from([("pod-template-hash".to_string(), hash.to_string())]);
        if !canary_of.is_empty() {
            labels.insert(ROLE_LABEL.into(), ROLE_CANARY.into());
            labels.insert(DEPLOYMENT_LABEL.into(), canary_of.into());
        }
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "deployment.kubernetes.io/revision".to_string(),
                revision.to_string(),
            )])),
            owner_references: Some(vec![OwnerReference {
                uid: owner_uid.into(),
                controller: Some(true),
                kind: "Deployment".into(),
                name: "web-canary".into(),
                api_version: "apps/v1".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn rev(image: &str) -> String {
        template_hash(&template(image))
    }

    #[test]
    fn only_a_canary_of_the_revision_on_trial_not_being_deleted_is_live() {
        let v2 = rev("web:2");
        let same = canary("u1", "web:2", false);
        let other = canary("u1", "web:1", false);
        let going = canary("u1", "web:2", true);
        // (case, found, revision on trial, live, terminating, stray)
        type Row<'a> = (&'a str, Option<&'a Deployment>, &'a str, bool, bool, bool);
        let table: [Row; 6] = [
            ("none", None, &v2, false, false, false),
            ("the run's own", Some(&same), &v2, true, false, false),
            ("another revision", Some(&other), &v2, false, false, true),
            ("being deleted", Some(&going), &v2, false, true, false),
            ("no run", Some(&same), "", false, false, true),
            ("no run, deleting", Some(&going), "", false, true, false),
        ];
        for (case, found, revision, live, terminating, stray) in table {
            let s = CanarySight::of(found, revision);
            assert_eq!(s.live.is_some(), live, "{case}: live");
            assert_eq!(s.terminating(), terminating, "{case}: terminating");
            assert_eq!(s.stray().is_some(), stray, "{case}: stray");
        }
    }

    #[test]
    fn ready_counts_only_pods_of_the_current_spec() {
        let c = canary("u1", "web:2", false);
        let o = CanarySight::of(Some(&c), &rev("web:2"))
            .observed()
            .expect("live");
        assert_eq!((o.replicas, o.ready, o.serving), (2, 1, 2));
        let mut stale = c.clone();
        stale.metadata.generation = Some(3);
        let o = CanarySight::of(Some(&stale), &rev("web:2"))
            .observed()
            .expect("live");
        assert_eq!(o.ready, 0, "the controller has not seen generation 3");
        assert!(
            CanarySight::of(Some(&canary("u1", "web:2", true)), &rev("web:2"))
                .observed()
                .is_none()
        );
    }

    /// The sequence of issue #21: a rolled-back canary is deleted while the fix's run starts.
    #[test]
    fn an_earlier_canary_blocks_until_its_last_replicaset_is_gone() {
        let v3 = rev("web:3");
        let old = canary("old", "web:2", true);
        let new = canary("new", "web:3", false);
        let old_rs = rs("web-canary-aaa", "old", "aaa", "1", "web");
        let new_rs = rs("web-canary-bbb", "new", "bbb", "1", "web");
        let stable_rs = rs("web-ccc", "stable-uid", "ccc", "4", "");
        let other_app = rs("api-canary-ddd", "x", "ddd", "1", "api");
        let stray = canary("new", "web:1", false);
        // (case, the canary found, the ReplicaSets cached, what blocks the new canary)
        type Row<'a> = (
            &'a str,
            Option<&'a Deployment>,
            Vec<&'a ObjectMeta>,
            Option<&'a str>,
        );
        let table: Vec<Row> = vec![
            (
                "old canary being deleted",
                Some(&old),
                vec![&old_rs, &stable_rs],
                Some("the canary Deployment web-canary of an earlier run is still being deleted"),
            ),
            (
                "old Deployment gone, its ReplicaSet not yet",
                None,
                vec![&old_rs, &stable_rs],
                Some("ReplicaSet web-canary-aaa of an earlier canary still has pods"),
            ),
            (
                "new canary made while an old ReplicaSet lingers",
                Some(&new),
                vec![&old_rs, &new_rs],
                Some("ReplicaSet web-canary-aaa of an earlier canary still has pods"),
            ),
            ("all gone", None, vec![&stable_rs, &other_app], None),
            (
                "the new canary's own ReplicaSet",
                Some(&new),
                vec![&new_rs, &stable_rs, &other_app],
                None,
            ),
            (
                "a stray canary of another revision",
                Some(&stray),
                vec![],
                Some("the canary Deployment web-canary runs another revision"),
            ),
        ];
        for (case, found, sets, want) in table {
            let sight = CanarySight::of(found, &v3);
            assert_eq!(
                earlier_canary(&sight, "web", &sets).as_deref(),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn the_newest_replicaset_names_the_revision() {
        let a = rs("web-aaa", "u", "aaa", "3", "");
        let b = rs("web-bbb", "u", "bbb", "10", "");
        let other = rs("web-ccc", "v", "ccc", "11", "");
        assert_eq!(
            newest_pod_template_hash("u", &[&a, &b, &other]).as_deref(),
            Some("bbb")
        );
        assert_eq!(newest_pod_template_hash("w", &[&a, &b]), None);
    }
}
