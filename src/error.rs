//! What every error type of the library shares.

/// An error's category: a short, bounded, stable word (CamelCase) for metric
/// labels (`ballast_reconcile_errors_total{category}`, `ballast_watch_errors_total`,
/// `ballast_source_errors_total`), conditions and logs. The values are API:
/// dashboards and alerts select on them.
pub trait Category {
    fn category(&self) -> &'static str;
}
