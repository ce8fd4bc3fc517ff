//! The API: CRD types, their generated definitions, condition names, and the
//! validation that `ballast lint` and the admission webhook share. No I/O.

pub mod conditions;
pub mod crd;
pub mod documents;
pub mod duration;
pub mod history;
pub mod policy;
pub mod promql;
pub mod quantity;
pub mod rules;
pub mod schedule;
pub mod source;
pub mod spans;
pub mod validation;

pub use duration::Duration;
pub use history::History;
pub use policy::*;
pub use quantity::Quantity;
pub use source::*;
