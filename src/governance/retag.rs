//! Re-tagging a change mid-run only makes it stricter. A change on trial can be replaced by
//! one that differs only in its `rollguard.dev/change-origin` tag (or by any change built on
//! top of it), and without the chart's governance guard the tag is believed. So a run that
//! replaces a run which had no verdict yet never takes a laxer tier than that run: the code
//! on trial has not been judged, and what replaces it most likely still contains it.
//!
//! "Stricter" is the order of the policy's tiers: they are tried first to last, so the
//! strictest comes first (the built-in `ai-assisted` before `standard`). Pure: the operator
//! passes the Deployment's runs from its index.

use crate::api::policy::Tier;
use crate::api::run::{Phase, RolloutRun};

/// The run whose tier a new run for `revision` must not fall below: the Deployment's newest
/// run for another revision, when it was replaced before its verdict (still in flight, or
/// ended `Superseded` without having passed: a run that passed made its revision the stable
/// one, `stable`). `runs` is oldest first.
pub fn replaced<'r>(
    runs: &[&'r RolloutRun],
    revision: &str,
    stable: Option<&str>,
) -> Option<&'r RolloutRun> {
    let last = runs
        .iter()
        .rev()
        .find(|r| r.spec.canary_revision != revision)?;
    let status = last.status.as_ref();
    let phase = status.map(|s| s.phase).unwrap_or(Phase::Progressing);
    let unjudged = !phase.is_terminal()
        || (phase == Phase::Superseded
            && status.and_then(|s| s.reason.as_deref()) == Some("Superseded"));
    let passed = stable == Some(last.spec.canary_revision.as_str());
    (unjudged && !passed).then_some(*last)
}

/// The tier a new run takes: the one it `matched` (with why), or the tier of the run it
/// `replaced` when that comes first in `tiers`. A replaced run whose tier the policy no
/// longer has carries nothing (its name cannot be placed in the order).
pub fn no_laxer<'t>(
    tiers: &'t [Tier],
    matched: (&'t Tier, String),
    replaced: Option<&RolloutRun>,
) -> (&'t Tier, String) {
    let Some(run) = replaced else {
        return matched;
    };
    let position = |name: &str| tiers.iter().position(|t| t.name == name);
    let (Some(theirs), Some(ours)) = (position(&run.spec.tier.name), position(&matched.0.name))
    else {
        return matched;
    };
    if theirs >= ours {
        return matched;
    }
    let (tier, why) = matched;
    (
        &tiers[theirs],
        format!(
            "kept tier {} of run {}, which this change replaced before its verdict (a change on trial is never re-judged on a laxer tier); the change itself matched tier {}: {why}",
            tiers[theirs].name,
            run.metadata.name.as_deref().unwrap_or("?"),
            tier.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::default_tiers;
    use serde_json::json;

    fn run(name: &str, revision: &str, tier: &str, phase: Phase, reason: &str) -> RolloutRun {
        serde_json::from_value(json!({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutRun",
            "metadata": {"name": name},
            "spec": {"deployment": "web", "policy": "p", "stableRevision": "s",
                     "canaryRevision": revision, "tier": {"name": tier, "reason": "r"},
                     "plan": {"name": tier, "steps": [{"weight": "1%", "pause": "1m"}],
                              "maxErrorRate": "1%"},
                     "analysis": {"interval": "15s", "requests": "r", "errors": "e"},
                     "router": "replicas"},
            "status": {"phase": phase.as_str(), "reason": (!reason.is_empty()).then_some(reason)}
        }))
        .expect("a run")
    }

    #[test]
    fn only_a_run_replaced_before_its_verdict_is_carried() {
        use Phase::*;
        // (the newest run for another revision: phase, reason; the stable revision; carried)
        let cases = [
            (Progressing, "", Some("s"), true),
            (AwaitingApproval, "", Some("s"), true),
            (Promoting, "", Some("s"), true),
            (Superseded, "Superseded", Some("s"), true),
            // Replaced while promoting: it passed and is the stable revision now.
            (Superseded, "Superseded", Some("a"), false),
            (Superseded, "Reverted", Some("s"), false),
            (Succeeded, "Promoted", Some("a"), false),
            (RolledBack, "ErrorRateAboveThreshold", Some("s"), false),
            (Aborted, "Aborted", Some("s"), false),
        ];
        for (phase, reason, stable, carried) in cases {
            let a = run("web-a", "a", "ai-assisted", phase, reason);
            let got = replaced(&[&a], "b", stable).is_some();
            assert_eq!(got, carried, "{phase:?} {reason} stable {stable:?}");
        }
    }

    #[test]
    fn the_newest_run_for_another_revision_decides() {
        let old = run("web-a", "a", "ai-assisted", Phase::Superseded, "Superseded");
        let done = run("web-b", "b", "standard", Phase::Succeeded, "Promoted");
        // A second attempt of the same revision is not what it replaces.
        let again = run("web-c", "c", "standard", Phase::Aborted, "Aborted");
        assert!(replaced(&[&old, &done], "c", Some("b")).is_none());
        assert_eq!(
            replaced(&[&done, &old, &again], "c", Some("b")).map(|r| r.metadata.name.clone()),
            Some(Some("web-a".into()))
        );
        assert!(replaced(&[], "c", None).is_none());
    }

    #[test]
    fn a_replacing_run_never_takes_a_laxer_tier() {
        let tiers = default_tiers();
        let (ai, standard) = (&tiers[0], &tiers[1]);
        let on_trial = run("web-a", "a", "ai-assisted", Phase::Progressing, "");
        // Re-tagged human: keeps ai-assisted and says why.
        let (tier, why) = no_laxer(&tiers, (standard, "tagged human".into()), Some(&on_trial));
        assert_eq!(tier.name, "ai-assisted");
        assert!(why.contains("kept tier ai-assisted of run web-a"), "{why}");
        assert!(
            why.ends_with("matched tier standard: tagged human"),
            "{why}"
        );
        // Stricter or equal: the change's own match stands.
        let human = run("web-a", "a", "standard", Phase::Progressing, "");
        let (tier, why) = no_laxer(&tiers, (ai, "tagged ai".into()), Some(&human));
        assert_eq!(
            (tier.name.as_str(), why.as_str()),
            ("ai-assisted", "tagged ai")
        );
        let (tier, _) = no_laxer(&tiers, (ai, "tagged ai".into()), Some(&on_trial));
        assert_eq!(tier.name, "ai-assisted");
        // Nothing replaced, or a tier the policy no longer has: the match stands.
        assert_eq!(
            no_laxer(&tiers, (standard, String::new()), None).0.name,
            "standard"
        );
        let gone = run("web-a", "a", "renamed", Phase::Progressing, "");
        assert_eq!(
            no_laxer(&tiers, (standard, String::new()), Some(&gone))
                .0
                .name,
            "standard"
        );
    }
}
