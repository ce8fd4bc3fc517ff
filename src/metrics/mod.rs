//! The Prometheus side: clients for Prometheus-compatible endpoints, on the one
//! process-wide TLS provider.

pub mod client;
pub mod tls;

pub use client::{Prometheus, QueryError};
