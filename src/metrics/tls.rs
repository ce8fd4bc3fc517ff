//! One rustls crypto provider for the whole process. kube uses `ring`; reqwest is
//! built without a provider of its own, so both use the one installed here. Call
//! [`install_crypto_provider`] once at start, before any client is built.

/// Install `ring` as the process-wide rustls provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
