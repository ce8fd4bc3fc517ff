//! The Prometheus side: clients for Prometheus-compatible endpoints, on the one
//! process-wide TLS provider.

pub mod breaker;
pub mod client;
pub mod decode;
pub mod flight;
pub mod registry;
pub mod tls;

pub use client::{Prometheus, QueryError};
pub use decode::{NoData, Reading};

/// Why a metric has no sample at a tick (the operator reports it with a message;
/// only the source causes are condition reasons of their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingCause {
    /// The named source does not exist, or no source is named and there is no
    /// default (`SourceNotFound`).
    SourceNotFound,
    /// The source's `allowedNamespaces` leaves the policy's namespace out
    /// (`SourceNotAllowed`).
    SourceNotAllowed,
    /// The source cannot be used as written (`SourceInvalid`).
    SourceInvalid,
    /// The query answered, with nothing usable (empty, not finite, stale).
    NoData,
    /// The query failed (transport, HTTP, PromQL, decoding).
    QueryFailed,
    /// Not queried: the source's circuit is open.
    CircuitOpen,
    /// Not queried: the source failed recently and is backing off.
    BackingOff,
}
