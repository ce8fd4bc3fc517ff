//! TLS for metrics sources. One rustls crypto provider for the whole process: kube
//! uses `ring`; reqwest is built without a provider of its own, so both use the one
//! installed here. Call [`install_crypto_provider`] once at start, before any client
//! is built.
//!
//! A source's client config is built here: the platform's roots plus the source's
//! CA bundle, an optional client certificate (mutual TLS), an optional name the
//! server's certificate must carry, and no verification only when asked for
//! explicitly.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// Install `ring` as the process-wide rustls provider. Calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client certificate chain and its private key, PEM. The key never appears in
/// `Debug` output or errors.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity { .. }")
    }
}

/// How to verify the server and present ourselves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM CA bundle trusted beside the platform's roots.
    pub ca_bundle: Option<String>,
    /// Mutual TLS.
    pub identity: Option<ClientIdentity>,
    /// The name the server's certificate must carry, instead of the address's host.
    pub server_name: Option<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

/// Why a TLS setting cannot be used. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("invalid CA bundle: {0}")]
    CaBundle(String),
    #[error("invalid client certificate: {0}")]
    Certificate(String),
    #[error("invalid client key: {0}")]
    Key(String),
    #[error("the client certificate and key do not go together, or are not usable: {0}")]
    Identity(String),
    #[error("invalid server name {0:?}")]
    ServerName(String),
    #[error("verifying server certificates: {0}")]
    Verifier(String),
}

fn provider() -> Arc<CryptoProvider> {
    install_crypto_provider();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The certificates of a PEM bundle (at least one).
pub fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// The rustls client config for `options`.
pub fn client_config(options: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let extra = match &options.ca_bundle {
        Some(pem) => pem_certificates(pem).map_err(TlsError::CaBundle)?,
        None => Vec::new(),
    };
    let verifier: Arc<dyn ServerCertVerifier> = if options.insecure_skip_verify {
        Arc::new(NoVerification(provider.clone()))
    } else {
        let platform =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        match &options.server_name {
            Some(name) => Arc::new(Renamed {
                inner: Arc::new(platform),
                name: ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::ServerName(name.clone()))?,
            }),
            None => Arc::new(platform),
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &options.identity {
        Some(identity) => {
            let chain =
                pem_certificates(&identity.certificate_pem).map_err(TlsError::Certificate)?;
            // The parser's message may quote the input; say only what went wrong.
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| {
                TlsError::Key(match e {
                    rustls::pki_types::pem::Error::NoItemsFound => {
                        "no PEM private key found".into()
                    }
                    _ => "not a PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
                })
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::Identity(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies the certificate against a configured name instead of the address's.
#[derive(Debug)]
struct Renamed {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Renamed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate is accepted (the handshake's signatures
/// are still checked, so the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["ballast-client".into()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_client_certificate_and_its_key_make_a_config() {
        let (certificate_pem, key_pem) = identity();
        let options = TlsOptions {
            identity: Some(ClientIdentity {
                certificate_pem,
                key_pem,
            }),
            server_name: Some("prometheus.monitoring.svc".into()),
            ..Default::default()
        };
        let config = client_config(&options).expect("config");
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_bad_key_is_named_without_its_content() {
        let (certificate_pem, _) = identity();
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";
        let options = TlsOptions {
            identity: Some(ClientIdentity {
                certificate_pem: certificate_pem.clone(),
                key_pem: secret.into(),
            }),
            ..Default::default()
        };
        let error = client_config(&options).expect_err("not a key").to_string();
        assert!(!error.contains("c2VjcmV0"), "{error}");
        assert!(error.contains("client"), "{error}");
        // A key of another certificate.
        let (_, other_key) = identity();
        let error = client_config(&TlsOptions {
            identity: Some(ClientIdentity {
                certificate_pem,
                key_pem: other_key.clone(),
            }),
            ..Default::default()
        })
        .expect_err("a key of another certificate")
        .to_string();
        assert!(error.contains("do not go together"), "{error}");
        assert!(
            !error.contains(other_key.lines().nth(1).unwrap_or("-")),
            "{error}"
        );
        assert_eq!(
            format!(
                "{:?}",
                ClientIdentity {
                    certificate_pem: "c".into(),
                    key_pem: "k".into()
                }
            ),
            "ClientIdentity { .. }"
        );
    }

    #[test]
    fn bad_bundles_and_names_are_refused() {
        let bad = client_config(&TlsOptions {
            ca_bundle: Some("not pem".into()),
            ..Default::default()
        });
        assert!(matches!(bad, Err(TlsError::CaBundle(_))), "{bad:?}");
        let bad = client_config(&TlsOptions {
            server_name: Some("not a name!".into()),
            ..Default::default()
        });
        assert!(matches!(bad, Err(TlsError::ServerName(_))), "{bad:?}");
        assert!(client_config(&TlsOptions::default()).is_ok());
    }
}
