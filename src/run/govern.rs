//! What to do with a governed Deployment when no run is in flight: adopt it, start a run for
//! a new template, or leave it be. Pure; the controller applies the answer.

/// The parts of a Deployment that decide its governance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    /// Hash of the current pod template.
    pub template_revision: String,
    /// The stable revision rollguard recorded, if it adopted the Deployment.
    pub stable_revision: Option<String>,
    /// The last revision that was rolled back or aborted.
    pub failed_revision: Option<String>,
    /// The Deployment has fully rolled out its current template.
    pub rollout_complete: bool,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Governance {
    /// Newly governed but mid-rollout: let it finish first.
    WaitForRollout,
    /// Newly governed and fully rolled out: pause it and record its template as stable.
    Adopt { stable: String },
    /// The template is the stable one: keep it paused.
    Steady,
    /// The template was rolled back before: keep it paused, do not retry until it changes.
    KnownBad { revision: String },
    /// A new template: start a run.
    StartRun { revision: String },
}

/// Decides, for a Deployment with no run in flight.
pub fn govern(d: &DeploymentView) -> Governance {
    let Some(stable) = &d.stable_revision else {
        return if d.rollout_complete {
            Governance::Adopt {
                stable: d.template_revision.clone(),
            }
        } else {
            Governance::WaitForRollout
        };
    };
    if &d.template_revision == stable {
        Governance::Steady
    } else if d.failed_revision.as_ref() == Some(&d.template_revision) {
        Governance::KnownBad {
            revision: d.template_revision.clone(),
        }
    } else {
        Governance::StartRun {
            revision: d.template_revision.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(t: &str, stable: Option<&str>, failed: Option<&str>, complete: bool) -> DeploymentView {
        DeploymentView {
            template_revision: t.into(),
            stable_revision: stable.map(Into::into),
            failed_revision: failed.map(Into::into),
            rollout_complete: complete,
        }
    }

    #[test]
    fn governance_table() {
        let table = [
            (view("a", None, None, false), Governance::WaitForRollout),
            (
                view("a", None, None, true),
                Governance::Adopt { stable: "a".into() },
            ),
            (view("a", Some("a"), None, true), Governance::Steady),
            (view("a", Some("a"), Some("b"), true), Governance::Steady),
            (
                view("b", Some("a"), None, true),
                Governance::StartRun {
                    revision: "b".into(),
                },
            ),
            (
                view("b", Some("a"), Some("b"), true),
                Governance::KnownBad {
                    revision: "b".into(),
                },
            ),
            (
                view("c", Some("a"), Some("b"), true),
                Governance::StartRun {
                    revision: "c".into(),
                },
            ),
        ];
        for (v, want) in table {
            assert_eq!(govern(&v), want, "{v:?}");
        }
    }
}
