//! Weight fights: another field manager writing an HTTPRoute's weights while a run holds
//! them (a GitOps tool re-applying a manifest from Git, someone editing the route). Who
//! wrote them, read from `metadata.managedFields`, and how a run counts fights and when it
//! holds. Pure: the controller reads the live route and writes the weights back.

use std::time::Duration;

use gateway_api::apis::standard::httproutes::HttpRoute;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{RouteTarget, weights_match};
use crate::api::quantity::Ratio;
use crate::api::run::WeightFights;
use crate::names::FIELD_MANAGER;

/// Fights in one step that hold the run. One fight is an accident (a hand edit, one sync
/// before a recipe was in place); three in a step are a loop that will go on.
pub const FIGHTS_TO_HOLD: i32 = 3;

/// How long the other manager must leave the weights alone before a held run goes on.
/// Longer than Argo CD's self-heal retry (5 s by default) and a few analysis intervals.
pub const QUIET: Duration = Duration::from_secs(30);

/// The manager named when the route's managedFields do not say who wrote the rules.
pub const UNKNOWN: &str = "unknown";

/// One fight seen in a pass: the route whose weights someone else wrote, and who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fight {
    pub route: String,
    pub manager: String,
}

/// The field manager that owns `spec.rules` of a route: the last one to write it, since the
/// list is atomic (any write of a weight takes the whole list). With several owners (an
/// apply of the same value shares the field) the most recent entry wins.
pub fn rules_writer(route: &HttpRoute) -> Option<String> {
    crate::managed_fields::owning_spec_field(&route.metadata, "rules")
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

/// Whether the live route shows a fight: a governed rule's weights are not the share
/// rollguard last wrote (`last`), and the rules were last written by another manager.
/// `targets` are the route's governed rules as found on the live object.
pub fn seen(live: &HttpRoute, targets: &[RouteTarget], last: Ratio) -> Option<Fight> {
    let drifted = targets.iter().find(|t| !weights_match(t, last))?;
    let writer = rules_writer(live);
    if writer.as_deref() == Some(FIELD_MANAGER) {
        // rollguard wrote them last: nobody else did since.
        return None;
    }
    Some(Fight {
        route: drifted.route.clone(),
        manager: writer
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| UNKNOWN.into()),
    })
}

/// A run's fights after this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub fights: Option<WeightFights>,
    /// The run holds: no step, no promotion.
    pub held: bool,
    /// This pass started the hold (for the Warning Event).
    pub started: bool,
    /// This pass ended it (the manager was quiet long enough, or the step changed).
    pub ended: bool,
}

fn is_held(f: &WeightFights, step: i32, now: Timestamp) -> bool {
    f.step == step && f.in_step >= FIGHTS_TO_HOLD && !quiet_since(f, now)
}

fn quiet_since(f: &WeightFights, now: Timestamp) -> bool {
    let quiet = jiff::SignedDuration::try_from(QUIET).unwrap_or(jiff::SignedDuration::MAX);
    now.duration_since(f.last_at.0) >= quiet
}

/// Counts a fight seen in `step` at `now` (none: `fight` is `None`); `was_held`: the run held
/// before this pass (its `WeightsContested` condition). The count is per step: a new step
/// starts it again. A hold ends when the manager has been quiet for [`QUIET`]; the count
/// stays, so the next fight in the same step holds the run again at once.
pub fn tally(
    before: Option<&WeightFights>,
    was_held: bool,
    step: i32,
    fight: Option<&Fight>,
    now: Timestamp,
) -> Tally {
    let mut fights = before.cloned();
    if let Some(fight) = fight {
        let f = fights.get_or_insert_with(|| WeightFights {
            total: 0,
            in_step: 0,
            step,
            manager: String::new(),
            route: String::new(),
            last_at: Time(now),
        });
        if f.step != step {
            f.step = step;
            f.in_step = 0;
        }
        f.total += 1;
        f.in_step += 1;
        f.manager = fight.manager.clone();
        f.route = fight.route.clone();
        f.last_at = Time(now);
    }
    let held = fights.as_ref().is_some_and(|f| is_held(f, step, now));
    Tally {
        fights,
        held,
        started: held && !was_held,
        ended: !held && was_held,
    }
}

/// When a held run goes on if no fight comes first.
pub fn hold_ends(f: &WeightFights) -> Timestamp {
    let quiet = jiff::SignedDuration::try_from(QUIET).unwrap_or(jiff::SignedDuration::MAX);
    f.last_at.0.checked_add(quiet).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
