//! Reading and judging the canary's error rate: query templates, the analysis request built
//! from them, the Prometheus client and the decision engines.

pub mod address;
pub mod bound;
pub mod decision;
pub mod preset;
pub mod prometheus;
pub mod query;
pub mod relative;
pub mod request;
