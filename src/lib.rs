//! rollguard: progressive rollouts for Kubernetes Deployments with risk tiers for
//! AI-assisted changes and automatic rollback on the Prometheus error rate.
//!
//! The run logic is pure (`plan`, `analysis::decision`, `run`); effects happen at the edge
//! (`controller`, `traffic`, `analysis::prometheus`).

pub mod analysis;
pub mod api;
pub mod backtest;
pub mod check;
pub mod cli;
pub mod controller;
pub mod governance;
pub mod install_check;
pub mod managed_fields;
pub mod names;
pub mod notify;
pub mod ownership;
pub mod plan;
pub mod run;
pub mod selection;
pub mod simulate;
pub mod telemetry;
pub mod traffic;

#[cfg(test)]
mod fuzz;
