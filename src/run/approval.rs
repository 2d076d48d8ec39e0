//! Four eyes: which approvals of a run count, and why the others do not.
//!
//! The chart's approval policy refuses, at admission, an approval that would not count (see
//! `charts/rollguard/templates/approval-policy.yaml`); the run machine checks again on what it
//! reads, so a cluster without the policy still gets four eyes from honest approvers.

use crate::api::run::{Approval, RolloutRunSpec};

/// How every ServiceAccount's username starts.
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:";

/// Why `a` does not count for a run waiting at `step` (0-based, as `status.step`), or `None`
/// when it counts.
pub fn not_counted(spec: &RolloutRunSpec, step: i32, a: &Approval) -> Option<String> {
    let user = &a.user;
    if a.revision.as_deref() != Some(spec.canary_revision.as_str()) || a.step != Some(step) {
        let on = match (&a.revision, a.step) {
            (Some(r), Some(s)) => format!("revision {r} at step {}", s + 1),
            _ => "no stated evidence (an older client did not record the revision and step)"
                .to_string(),
        };
        return Some(format!(
            "{user} approved {on}, not revision {} waiting at step {}",
            spec.canary_revision,
            step + 1
        ));
    }
    if !spec.plan.allow_self_approval && spec.author.as_deref() == Some(user.as_str()) {
        return Some(format!(
            "{user} wrote the change, and four eyes needs another approver (the tier's allowSelfApproval is off)"
        ));
    }
    if !spec.plan.allow_service_account_approval && user.starts_with(SERVICE_ACCOUNT) {
        return Some(format!(
            "{user} is a ServiceAccount (the tier's allowServiceAccountApproval is off)"
        ));
    }
    None
}

/// The approvals that count, and why each of the others does not.
pub fn tally(spec: &RolloutRunSpec, step: i32) -> (Vec<&Approval>, Vec<String>) {
    let mut counted = Vec::new();
    let mut refused = Vec::new();
    for a in &spec.approvals {
        match not_counted(spec, step, a) {
            None => counted.push(a),
            Some(why) => refused.push(why),
        }
    }
    (counted, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::run::MatchedTier;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec(author: Option<&str>, self_ok: bool, sa_ok: bool) -> RolloutRunSpec {
        let plan = serde_json::from_value(serde_json::json!({
            "name": "ai", "steps": [{"weight": "1%", "pause": "1m"}, {"weight": "5%", "pause": "1m"}],
            "requireApproval": true, "allowSelfApproval": self_ok,
            "allowServiceAccountApproval": sa_ok,
        }))
        .expect("a tier");
        RolloutRunSpec {
            deployment: "web".into(),
            policy: "p".into(),
            stable_revision: "old".into(),
            canary_revision: "new".into(),
            tier: MatchedTier {
                name: "ai".into(),
                reason: "test".into(),
            },
            plan,
            analysis: serde_json::from_value(serde_json::json!({
                "requests": "r", "errors": "e"
            }))
            .expect("analysis"),
            router: "replicas".into(),
            author: author.map(String::from),
            approvals: vec![],
            control: None,
        }
    }

    fn approval(user: &str, revision: Option<&str>, step: Option<i32>) -> Approval {
        Approval {
            user: user.into(),
            groups: vec![],
            time: Time(jiff::Timestamp::UNIX_EPOCH),
            run: Some("web-new".into()),
            revision: revision.map(String::from),
            step,
        }
    }

    #[test]
    fn an_approval_counts_only_with_four_eyes_on_the_evidence_it_was_given_on() {
        let sa = "system:serviceaccount:ci:deployer";
        // (author, allowSelf, allowSA, approval, counts, why contains)
        let cases = [
            (
                Some("alice"),
                false,
                false,
                approval("bob", Some("new"), Some(1)),
                true,
                "",
            ),
            (
                Some("alice"),
                false,
                false,
                approval("alice", Some("new"), Some(1)),
                false,
                "alice wrote the change",
            ),
            (
                Some("alice"),
                true,
                false,
                approval("alice", Some("new"), Some(1)),
                true,
                "",
            ),
            // Unknown author (no gate): nobody is refused as the author.
            (
                None,
                false,
                false,
                approval("alice", Some("new"), Some(1)),
                true,
                "",
            ),
            (
                Some("alice"),
                false,
                false,
                approval(sa, Some("new"), Some(1)),
                false,
                "is a ServiceAccount",
            ),
            (
                Some("alice"),
                false,
                true,
                approval(sa, Some("new"), Some(1)),
                true,
                "",
            ),
            // A ServiceAccount that wrote the change needs both allowances.
            (
                Some(sa),
                false,
                true,
                approval(sa, Some("new"), Some(1)),
                false,
                "wrote the change",
            ),
            (
                Some(sa),
                true,
                true,
                approval(sa, Some("new"), Some(1)),
                true,
                "",
            ),
            // Other evidence: an earlier step, another revision, or none stated.
            (
                Some("alice"),
                false,
                false,
                approval("bob", Some("new"), Some(0)),
                false,
                "approved revision new at step 1, not revision new waiting at step 2",
            ),
            (
                Some("alice"),
                false,
                false,
                approval("bob", Some("older"), Some(1)),
                false,
                "approved revision older at step 2",
            ),
            (
                Some("alice"),
                false,
                false,
                approval("bob", None, None),
                false,
                "no stated evidence",
            ),
        ];
        for (author, self_ok, sa_ok, a, counts, says) in cases {
            let s = spec(author, self_ok, sa_ok);
            let got = not_counted(&s, 1, &a);
            assert_eq!(
                got.is_none(),
                counts,
                "{author:?} {self_ok} {sa_ok} {a:?}: {got:?}"
            );
            if let Some(why) = got {
                assert!(why.contains(says), "{why} should say {says}");
            }
        }
    }

    #[test]
    fn the_tally_keeps_what_counts_and_says_why_the_rest_does_not() {
        let mut s = spec(Some("alice"), false, false);
        s.approvals = vec![
            approval("alice", Some("new"), Some(1)),
            approval("bob", Some("new"), Some(1)),
        ];
        let (counted, refused) = tally(&s, 1);
        assert_eq!(counted.len(), 1);
        assert_eq!(counted[0].user, "bob");
        assert_eq!(refused.len(), 1);
        assert!(
            refused[0].starts_with("alice wrote the change"),
            "{refused:?}"
        );
    }
}
