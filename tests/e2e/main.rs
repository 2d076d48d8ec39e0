//! The end-to-end tests, one test binary: each module was once its own file and binary, and
//! each test still works in its own namespace with its own operator process. They need a
//! cluster: `make test` (or `tests/run.sh`) starts one, or `tests/cluster/cluster.sh up &&
//! source .cluster/env` before
//!
//! ```sh
//! cargo test --features e2e --test e2e -- --test-threads=3             # all of them
//! cargo test --features e2e --test e2e rollout::                       # one module
//! cargo test --features e2e --test e2e rollout::a_bad_ai_change        # one test
//! ```
//!
//! One binary is linked once instead of eleven times (each debug test binary is ~280 MB).
//! The price is that tests of different modules now run side by side, so a test that disturbs
//! the cluster for everyone takes it exclusively (`support::claim`).
#![cfg(feature = "e2e")]

#[path = "../support/mod.rs"]
mod support;

mod api;
mod approvals;
mod argocd;
mod backtest;
mod chart;
mod checks;
mod cli;
mod cluster;
mod crash;
mod faults;
mod flux;
mod gate;
mod gateway;
mod gitops;
mod guard;
mod ha;
mod helm_wait;
mod image;
mod kstatus;
mod latency;
mod namespaces;
mod notify;
mod others;
mod ownership;
mod presets;
mod prometheus;
mod prometheus_auth;
mod rollout;
mod weights;
