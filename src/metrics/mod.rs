//! The Prometheus side: clients for Prometheus-compatible endpoints, on the one
//! process-wide TLS provider.

pub mod breaker;
pub mod client;
pub mod decode;
pub mod registry;
pub mod tls;

pub use client::{Prometheus, QueryError};
pub use decode::{NoData, Reading};
