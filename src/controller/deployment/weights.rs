//! Weight fights, the controller's half ([`crate::traffic::fight`] decides): when the cached
//! route's weights are not the share the run last wrote, the live route says whether another
//! field manager wrote them, and which. The caches drop `managedFields`, so only a route that
//! looks drifted is read again, and the live read also tells a cache that is merely behind
//! rollguard's own write from a real fight.

use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use tracing::warn;

use super::super::Context;
use super::super::observe::Routing;
use crate::api::quantity::Ratio;
use crate::traffic::fight::{self, Fight};
use crate::traffic::{self, weights_match};

/// The fight on one of the run's routes, if another manager wrote its weights since rollguard
/// wrote `last`. A route that cannot be read is left to the next pass (the weights are written
/// back in this one all the same).
pub async fn fight(
    ctx: &Context,
    d: &Deployment,
    routing: &Routing,
    last: Option<Ratio>,
) -> Option<Fight> {
    let last = last?;
    let ns = d.namespace().unwrap_or_default();
    let mut drifted: Vec<&str> = routing
        .routes
        .iter()
        .filter(|t| !weights_match(t, last))
        .map(|t| t.route.as_str())
        .collect();
    drifted.dedup();
    let service = routing.service.name_any();
    for name in drifted {
        // The operator's Role grants `list`, not `get`: one object by a field selector.
        let params = kube::api::ListParams::default().fields(&format!("metadata.name={name}"));
        let live = match ctx.api::<HttpRoute>(&ns).list(&params).await {
            Ok(l) => l.items.into_iter().next(),
            Err(e) => {
                warn!(route = name, error = %e, "cannot read the HTTPRoute to see who wrote its weights");
                continue;
            }
        };
        let Some(live) = live else { continue };
        let Ok(targets) = traffic::find_routes(d, &service, &[&live]) else {
            continue;
        };
        if let Some(f) = fight::seen(&live, &targets, last) {
            warn!(
                route = %f.route,
                manager = %f.manager,
                want = %last,
                "weight fight: another field manager wrote the HTTPRoute's weights"
            );
            return Some(f);
        }
    }
    None
}
