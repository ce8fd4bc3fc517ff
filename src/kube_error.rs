//! Kubernetes API errors as Ballast reports them.

/// A kube error without response bodies (which could echo request content): an
/// API error's reason and code, or the transport error's own message.
pub fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other.to_string(),
    }
}
