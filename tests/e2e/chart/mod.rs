//! The Helm chart `charts/rollguard` and the plain manifests `deploy/rollguard.yaml`
//! (issue 3, "Helm chart" and "deploy/"), checked with the real `helm` and against the
//! real API server of the local control plane, one module per concern:
//!
//! - `lint`: the chart lints, its README and the rendered manifests are up to date;
//! - `security`: the rendered RBAC has no wildcards and no Secrets unless opted in, and the
//!   Deployment is hardened;
//! - `dry_run`: everything it renders is accepted by a server-side dry run;
//! - `install`: install, upgrade with a changed CRD, and uninstall that keeps the CRDs;
//! - `permissions`: the operator's ServiceAccount can make every API call the operator makes
//!   and nothing it must not (a token from a TokenRequest);
//! - `approvals`: the approval admission policy refuses approvals and commands forged in
//!   someone else's name;
//! - `checklist`: the platform team's objects, rendered and installed, and `helm test`;
//! - `oci`: the image and the chart installed from a registry;
//! - `readme`: the README's install block, run as written.
//!
//! `helm` and `release` hold what they share. Tests that install a release hold the cluster
//! alone (`release::alone`).
//!
//! Helm: `ROLLGUARD_HELM`, else `~/.cache/rollguard/bin/helm-<HELM_VERSION>` (pinned in
//! tests/cluster/versions.env; `tests/cluster/build.sh helm` builds it).
//!
//! Run: `tests/cluster/cluster.sh up && source .cluster/env && cargo test --features e2e --test e2e chart::`

mod approvals;
mod checklist;
mod dry_run;
mod helm;
mod install;
mod lint;
mod oci;
mod permissions;
mod readme;
mod release;
mod security;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const RUNS_CRD: &str = "rolloutruns.rollguard.dev";
const POLICIES_CRD: &str = "rolloutpolicies.rollguard.dev";
