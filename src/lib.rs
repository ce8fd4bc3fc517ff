//! Ballast: scale Kubernetes workloads and the node pools under them from custom
//! Prometheus metrics, with smoothed, jittered, bounded decisions.
//!
//! Modules follow the direction dependencies point: [`api`] (types and
//! validation, no I/O) ← [`engine`] (pure decisions) ← [`metrics`] (Prometheus
//! I/O) and [`scale`] (`/scale` reads and writes) ← [`controller`] (the operator)
//! and [`webhook`] (admission) ← [`cli`] (every command, `ballast run` included).
//! [`telemetry`] (logs, the operator's metrics, the admin server) and
//! [`kube_error`] are used across them.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod controller;
pub mod engine;
pub mod error;
pub mod jitter;
pub mod kube_error;
pub mod metrics;
pub mod scale;
pub mod telemetry;
pub mod webhook;
