//! The webhook's serving certificate.
//!
//! Self-managed (the default): a private CA and a serving certificate signed by it,
//! kept in one Secret in the operator's namespace that every replica reads, with the
//! CA bundle written into the `ValidatingWebhookConfiguration`. Rotation never leaves
//! the API server without a trusted certificate:
//! - the serving certificate is re-issued by the same CA after two thirds of its
//!   life (the bundle does not change);
//! - a new CA is first *staged*: added to the bundle next to the current one; only
//!   after [`CertConfig::promote_after`] (every replica and the API server have
//!   seen the bundle) is it promoted and a new serving certificate issued from it.
//!   The old CA stays in the bundle until it expires.
//!
//! With `--webhook-cert-dir` (cert-manager), the files are read and reloaded when
//! they change; cert-manager's CA injector maintains the bundle.
//!
//! The decisions ([`plan`], [`apply`], [`ca_bundle`]) are pure; [`CertManager`] does
//! the reads and writes. Key material is never logged.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{debug, info, warn};

use crate::kube_error;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what} is not a usable PEM certificate: {message}")]
    Parse { what: String, message: String },
    #[error("{what} is not a usable private key: {message}")]
    Key { what: String, message: String },
    #[error("reading {path}: {message}")]
    File { path: String, message: String },
    #[error("{action} Secret {namespace}/{name}: {message}")]
    Secret {
        action: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
    #[error("updating the caBundle of ValidatingWebhookConfiguration {name}: {message}")]
    Webhook { name: String, message: String },
    #[error("Secret {namespace}/{name} changed under us; reading it again")]
    Conflict { namespace: String, name: String },
}

/// How certificates are issued and rotated.
#[derive(Clone, Debug)]
pub struct CertConfig {
    /// Life of a serving certificate.
    pub leaf_validity: Duration,
    /// Life of a CA.
    pub ca_validity: Duration,
    /// How long a staged CA stays in the bundle before it signs anything.
    pub promote_after: Duration,
    /// DNS names and IP addresses the serving certificate is valid for.
    pub sans: Vec<String>,
}

/// A certificate and its key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What the Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub ca: Pair,
    pub leaf: Pair,
    /// A CA that is in the bundle but does not sign yet.
    pub next_ca: Option<Pair>,
    /// When `next_ca` was staged (Unix seconds).
    pub next_staged_at: Option<i64>,
    /// The CA before the current one, trusted until it expires.
    pub previous_ca: Option<String>,
}

/// Validity and names of one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub not_before: i64,
    pub not_after: i64,
    pub sans: Vec<String>,
}

impl Info {
    /// Two thirds into its life: time to replace it.
    fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

/// Parse the first certificate of a PEM string.
pub fn inspect(what: &str, pem: &str) -> Result<Info, CertError> {
    let parse = |message: String| CertError::Parse {
        what: what.to_string(),
        message,
    };
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| parse(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| parse(e.to_string()))?;
    let validity = cert.validity();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    let text = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => <[u8; 16]>::try_from(*ip)
                            .ok()
                            .map(|b| std::net::IpAddr::from(b).to_string()),
                        _ => None,
                    };
                    sans.extend(text);
                }
                _ => {}
            }
        }
    }
    sans.sort();
    Ok(Info {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        sans,
    })
}

fn datetime(unix: i64) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(|e| CertError::Parse {
        what: "a validity time".into(),
        message: e.to_string(),
    })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

/// A new self-signed CA valid from `now` (minus a minute of clock skew).
pub fn issue_ca(now: i64, validity: Duration) -> Result<Pair, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("ballast-webhook-ca-{now}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = datetime(now - 60)?;
    params.not_after = datetime(now + secs(validity))?;
    let cert = params.self_signed(&key)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `sans`, signed by `ca`, never outliving it.
pub fn issue_leaf(
    ca: &Pair,
    sans: &[String],
    now: i64,
    validity: Duration,
) -> Result<Pair, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::Key {
        what: "the CA key".into(),
        message: e.to_string(),
    })?;
    let ca_info = inspect("the CA certificate", &ca.cert_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name.push(
        DnType::CommonName,
        sans.first()
            .cloned()
            .unwrap_or_else(|| "ballast-webhook".into()),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = datetime(now - 60)?;
    params.not_after = datetime((now + secs(validity)).min(ca_info.not_after))?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What to do with the stored material.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing stored, or unusable: a new CA and serving certificate.
    Create,
    /// A new serving certificate from the current CA.
    Reissue,
    /// Add a new CA to the bundle, not signing yet.
    StageCa,
    /// The staged CA becomes current; a serving certificate is issued from it.
    PromoteCa,
    Keep,
}

/// Decide, at `now`, what the stored material needs.
pub fn plan(material: Option<&Material>, now: i64, config: &CertConfig) -> Step {
    let Some(m) = material else {
        return Step::Create;
    };
    let (Ok(ca), Ok(leaf)) = (
        inspect("ca.crt", &m.ca.cert_pem),
        inspect("tls.crt", &m.leaf.cert_pem),
    ) else {
        return Step::Create;
    };
    if now >= ca.not_after {
        return Step::Create;
    }
    if let (Some(_), Some(staged)) = (&m.next_ca, m.next_staged_at)
        && now >= staged + secs(config.promote_after)
    {
        return Step::PromoteCa;
    }
    if m.next_ca.is_none() && now >= ca.renew_at() {
        return Step::StageCa;
    }
    let mut wanted = config.sans.clone();
    wanted.sort();
    if now >= leaf.renew_at() || leaf.sans != wanted {
        return Step::Reissue;
    }
    Step::Keep
}

/// Carry out `step` (anything but [`Step::Keep`] changes the material).
pub fn apply(
    step: Step,
    material: Option<Material>,
    now: i64,
    config: &CertConfig,
) -> Result<Option<Material>, CertError> {
    let fresh = |ca: Pair, previous_ca: Option<String>| -> Result<Material, CertError> {
        let leaf = issue_leaf(&ca, &config.sans, now, config.leaf_validity)?;
        Ok(Material {
            ca,
            leaf,
            next_ca: None,
            next_staged_at: None,
            previous_ca,
        })
    };
    Ok(match (step, material) {
        (Step::Keep, _) => None,
        (Step::Create, _) | (_, None) => Some(fresh(issue_ca(now, config.ca_validity)?, None)?),
        (Step::Reissue, Some(m)) => Some(Material {
            leaf: issue_leaf(&m.ca, &config.sans, now, config.leaf_validity)?,
            ..m
        }),
        (Step::StageCa, Some(m)) => Some(Material {
            next_ca: Some(issue_ca(now, config.ca_validity)?),
            next_staged_at: Some(now),
            ..m
        }),
        (Step::PromoteCa, Some(m)) => match m.next_ca {
            Some(next) => Some(fresh(next, Some(m.ca.cert_pem))?),
            None => Some(fresh(
                issue_ca(now, config.ca_validity)?,
                Some(m.ca.cert_pem),
            )?),
        },
    })
}

/// The CAs the API server should trust at `now`: current, staged, and the previous
/// one while it is valid.
pub fn ca_bundle(material: &Material, now: i64) -> String {
    let mut bundle = material.ca.cert_pem.trim_end().to_string();
    if let Some(next) = &material.next_ca {
        bundle.push('\n');
        bundle.push_str(next.cert_pem.trim_end());
    }
    if let Some(previous) = &material.previous_ca
        && inspect("previous-ca.crt", previous).is_ok_and(|i| i.not_after > now)
    {
        bundle.push('\n');
        bundle.push_str(previous.trim_end());
    }
    bundle.push('\n');
    bundle
}

const STAGED_AT: &str = "ballast.dev/next-ca-staged-at";

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// Read material from a Secret; `None` when a key is missing.
pub fn from_secret(secret: &Secret) -> Option<Material> {
    let data = secret.data.as_ref()?;
    let pair = |c: &str, k: &str| {
        Some(Pair {
            cert_pem: text(data, c)?,
            key_pem: text(data, k)?,
        })
    };
    Some(Material {
        ca: pair("ca.crt", "ca.key")?,
        leaf: pair("tls.crt", "tls.key")?,
        next_ca: pair("next-ca.crt", "next-ca.key"),
        next_staged_at: secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAGED_AT))
            .and_then(|s| s.parse().ok()),
        previous_ca: text(data, "previous-ca.crt"),
    })
}

/// Write material into a Secret (keeping its metadata).
pub fn into_secret(material: &Material, mut secret: Secret) -> Secret {
    let mut data = BTreeMap::new();
    let mut put = |k: &str, v: &str| {
        data.insert(k.to_string(), ByteString(v.as_bytes().to_vec()));
    };
    put("ca.crt", &material.ca.cert_pem);
    put("ca.key", &material.ca.key_pem);
    put("tls.crt", &material.leaf.cert_pem);
    put("tls.key", &material.leaf.key_pem);
    if let Some(next) = &material.next_ca {
        put("next-ca.crt", &next.cert_pem);
        put("next-ca.key", &next.key_pem);
    }
    if let Some(previous) = &material.previous_ca {
        put("previous-ca.crt", previous);
    }
    secret.data = Some(data);
    secret.string_data = None;
    secret.type_ = Some("kubernetes.io/tls".into());
    let annotations = secret
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new);
    match material.next_staged_at {
        Some(at) => annotations.insert(STAGED_AT.into(), at.to_string()),
        None => annotations.remove(STAGED_AT),
    };
    secret
}

/// The serving certificate, swapped in place when it changes; handshakes use the
/// one current at their start.
#[derive(Debug, Default)]
pub struct Reloadable {
    current: RwLock<Option<(String, Arc<CertifiedKey>)>>,
}

impl Reloadable {
    /// Load `pair` unless it is the one already served. `Ok(true)` when it changed.
    pub fn load(&self, pair: &Pair) -> Result<bool, CertError> {
        if let Ok(current) = self.current.read()
            && current
                .as_ref()
                .is_some_and(|(pem, _)| *pem == pair.cert_pem)
        {
            return Ok(false);
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| CertError::Parse {
                    what: "the serving certificate".into(),
                    message: e.to_string(),
                })?;
        if chain.is_empty() {
            return Err(CertError::Parse {
                what: "the serving certificate".into(),
                message: "no certificate in the PEM".into(),
            });
        }
        let key_error = |message: String| CertError::Key {
            what: "the serving key".into(),
            message,
        };
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes())
            .map_err(|e| key_error(e.to_string()))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| key_error(e.to_string()))?;
        let certified = Arc::new(CertifiedKey::new(chain, signing));
        if let Ok(mut current) = self.current.write() {
            *current = Some((pair.cert_pem.clone(), certified));
        }
        Ok(true)
    }

    pub fn is_loaded(&self) -> bool {
        self.current.read().is_ok_and(|c| c.is_some())
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok()?.as_ref().map(|(_, k)| k.clone())
    }
}

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Self-managed in a Secret; the named `ValidatingWebhookConfiguration` (if
    /// any) gets the CA bundle.
    Secret {
        namespace: String,
        name: String,
        webhook_configuration: Option<String>,
        config: CertConfig,
    },
    /// `tls.crt` and `tls.key` in a directory (cert-manager).
    Dir(PathBuf),
}

/// Keeps the served certificate current.
pub struct CertManager {
    client: Client,
    source: Source,
    resolver: Arc<Reloadable>,
    metrics: Arc<Metrics>,
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl CertManager {
    pub fn new(
        client: Client,
        source: Source,
        resolver: Arc<Reloadable>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            source,
            resolver,
            metrics,
        }
    }

    /// Serve `pair` (if it is new) and export its expiry.
    fn serve(&self, pair: &Pair, from: &str) -> Result<(), CertError> {
        let info = inspect("the serving certificate", &pair.cert_pem)?;
        if self.resolver.load(pair)? {
            info!(
                from,
                expires_unix = info.not_after,
                "webhook: serving certificate loaded"
            );
        }
        self.metrics.webhook_cert_expiry.set(info.not_after as f64);
        Ok(())
    }

    /// One pass: bring the stored material up to date, the bundle into the
    /// webhook configuration, the serving certificate into the server.
    pub async fn reconcile(&self) -> Result<(), CertError> {
        match &self.source {
            Source::Dir(dir) => {
                let read = |f: &str| {
                    let path = dir.join(f);
                    std::fs::read_to_string(&path).map_err(|e| CertError::File {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })
                };
                let pair = Pair {
                    cert_pem: read("tls.crt")?,
                    key_pem: read("tls.key")?,
                };
                self.serve(&pair, &dir.display().to_string())
            }
            Source::Secret {
                namespace,
                name,
                webhook_configuration,
                config,
            } => {
                let material = self.sync_secret(namespace, name, config).await?;
                if let Some(vwc) = webhook_configuration {
                    self.sync_bundle(vwc, &ca_bundle(&material, now())).await?;
                }
                self.serve(&material.leaf, &format!("Secret {namespace}/{name}"))
            }
        }
    }

    async fn sync_secret(
        &self,
        namespace: &str,
        name: &str,
        config: &CertConfig,
    ) -> Result<Material, CertError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret_error = |action: &'static str| {
            move |e: kube::Error| match &e {
                kube::Error::Api(s) if s.code == 409 => CertError::Conflict {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
                _ => CertError::Secret {
                    action,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    message: kube_error::short(&e),
                },
            }
        };
        let existing = api.get_opt(name).await.map_err(secret_error("reading"))?;
        let material = existing.as_ref().and_then(from_secret);
        let now = now();
        let step = plan(material.as_ref(), now, config);
        let Some(updated) = apply(step, material.clone(), now, config)? else {
            // Keep: plan only returns Keep for present, parsable material.
            return material.ok_or(CertError::Conflict {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        };
        match existing {
            None => {
                let secret = into_secret(
                    &updated,
                    Secret {
                        metadata: ObjectMeta {
                            name: Some(name.to_string()),
                            namespace: Some(namespace.to_string()),
                            labels: Some(BTreeMap::from([(
                                "app.kubernetes.io/name".to_string(),
                                "ballast".to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        ..Secret::default()
                    },
                );
                api.create(&PostParams::default(), &secret)
                    .await
                    .map_err(secret_error("creating"))?;
            }
            Some(secret) => {
                // Replace carries the resourceVersion we read: a replica that lost
                // the race gets 409 and reads the winner's material next pass.
                api.replace(name, &PostParams::default(), &into_secret(&updated, secret))
                    .await
                    .map_err(secret_error("updating"))?;
            }
        }
        info!(secret = %format!("{namespace}/{name}"), step = ?step, "webhook: certificates updated");
        Ok(updated)
    }

    async fn sync_bundle(&self, name: &str, bundle: &str) -> Result<(), CertError> {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let webhook_error = |e: kube::Error| CertError::Webhook {
            name: name.to_string(),
            message: kube_error::short(&e),
        };
        let Some(mut vwc) = api.get_opt(name).await.map_err(webhook_error)? else {
            warn!(
                name,
                "webhook: ValidatingWebhookConfiguration not found; the API server will not call this webhook"
            );
            return Ok(());
        };
        let wanted = ByteString(bundle.as_bytes().to_vec());
        let mut changed = false;
        for webhook in vwc.webhooks.iter_mut().flatten() {
            if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
                webhook.client_config.ca_bundle = Some(wanted.clone());
                changed = true;
            }
        }
        if changed {
            api.replace(name, &PostParams::default(), &vwc)
                .await
                .map_err(webhook_error)?;
            info!(name, "webhook: caBundle updated");
        }
        Ok(())
    }

    /// Reconcile every `interval` (sooner after a failure) until `shutdown`.
    pub async fn run(self, interval: Duration, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        loop {
            let wait = match self.reconcile().await {
                Ok(()) => interval,
                Err(e @ CertError::Conflict { .. }) => {
                    debug!(error = %e, "webhook: certificate race");
                    Duration::from_millis(200)
                }
                Err(e) => {
                    warn!(error = %e, "webhook: keeping the certificate current failed");
                    interval.min(Duration::from_secs(5))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    fn config() -> CertConfig {
        CertConfig {
            leaf_validity: Duration::from_secs(300),
            ca_validity: Duration::from_secs(3000),
            promote_after: Duration::from_secs(30),
            sans: vec![
                "ballast-webhook.ballast-system.svc".into(),
                "127.0.0.1".into(),
            ],
        }
    }

    fn created(now: i64) -> Material {
        apply(Step::Create, None, now, &config()).unwrap().unwrap()
    }

    #[test]
    fn issued_certificates_have_the_names_and_lifetimes_asked_for() {
        let m = created(1_000_000);
        let ca = inspect("ca", &m.ca.cert_pem).unwrap();
        assert_eq!(ca.not_after, 1_000_000 + 3000);
        let leaf = inspect("leaf", &m.leaf.cert_pem).unwrap();
        assert_eq!(leaf.not_before, 1_000_000 - 60);
        assert_eq!(leaf.not_after, 1_000_000 + 300);
        assert_eq!(
            leaf.sans,
            vec![
                "127.0.0.1".to_string(),
                "ballast-webhook.ballast-system.svc".into()
            ]
        );
        // The leaf verifies against the CA, for its IP name, with rustls' verifier.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(m.ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(m.leaf.cert_pem.as_bytes()).unwrap();
        let at = |t: u64| rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(t));
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], at(1_000_010))
                .is_ok()
        );
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &name, &[], at(1_000_400))
                .is_err(),
            "expired"
        );
        let other = rustls::pki_types::ServerName::try_from("evil.example").unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &other, &[], at(1_000_010))
                .is_err()
        );
        assert!(Reloadable::default().load(&m.leaf).unwrap());
    }

    #[test]
    fn the_plan_walks_through_a_whole_rotation() {
        let c = config();
        let t0 = 1_000_000;
        assert_eq!(plan(None, t0, &c), Step::Create);
        let m = created(t0);
        assert_eq!(plan(Some(&m), t0 + 10, &c), Step::Keep);
        // Leaf: renewed after two thirds of 300 s (from not_before = t0 - 60).
        assert_eq!(plan(Some(&m), t0 + 179, &c), Step::Keep);
        assert_eq!(plan(Some(&m), t0 + 181, &c), Step::Reissue);
        let reissued = apply(Step::Reissue, Some(m.clone()), t0 + 181, &c)
            .unwrap()
            .unwrap();
        assert_eq!(
            reissued.ca, m.ca,
            "re-issuing keeps the CA (and the bundle)"
        );
        assert_ne!(reissued.leaf, m.leaf);
        assert_eq!(ca_bundle(&reissued, t0 + 181), ca_bundle(&m, t0));
        // CA: staged after two thirds of its life, promoted promote_after later.
        let t1 = t0 - 60 + 3060 * 2 / 3 + 1;
        assert_eq!(plan(Some(&reissued), t1, &c), Step::StageCa);
        let staged = apply(Step::StageCa, Some(reissued.clone()), t1, &c)
            .unwrap()
            .unwrap();
        assert_eq!(
            staged.leaf, reissued.leaf,
            "staging does not change what is served"
        );
        let bundle = ca_bundle(&staged, t1);
        assert!(bundle.contains(staged.ca.cert_pem.trim_end()));
        assert!(bundle.contains(staged.next_ca.as_ref().unwrap().cert_pem.trim_end()));
        assert_ne!(plan(Some(&staged), t1 + 29, &c), Step::PromoteCa);
        assert_eq!(plan(Some(&staged), t1 + 30, &c), Step::PromoteCa);
        let promoted = apply(Step::PromoteCa, Some(staged.clone()), t1 + 30, &c)
            .unwrap()
            .unwrap();
        assert_eq!(Some(&promoted.ca), staged.next_ca.as_ref());
        assert_eq!(
            promoted.previous_ca.as_deref(),
            Some(staged.ca.cert_pem.as_str())
        );
        assert!(promoted.next_ca.is_none());
        // Both CAs stay trusted until the old one expires, then only the new.
        let bundle = ca_bundle(&promoted, t1 + 30);
        assert!(
            bundle.contains(staged.ca.cert_pem.trim_end())
                && bundle.contains(promoted.ca.cert_pem.trim_end())
        );
        assert!(!ca_bundle(&promoted, t0 + 3001).contains(staged.ca.cert_pem.trim_end()));
        assert_eq!(plan(Some(&promoted), t1 + 31, &c), Step::Keep);
    }

    #[test]
    fn changed_names_and_broken_material_are_repaired() {
        let m = created(1_000_000);
        let mut c = config();
        c.sans.push("ballast-webhook".into());
        assert_eq!(plan(Some(&m), 1_000_001, &c), Step::Reissue);
        let mut broken = m.clone();
        broken.leaf.cert_pem = "garbage".into();
        assert_eq!(plan(Some(&broken), 1_000_001, &config()), Step::Create);
        assert_eq!(
            plan(Some(&m), 1_000_000 + 3001, &config()),
            Step::Create,
            "an expired CA is replaced"
        );
    }

    #[test]
    fn material_survives_the_secret() {
        let m = created(1_000_000);
        let staged = apply(Step::StageCa, Some(m), 1_000_100, &config())
            .unwrap()
            .unwrap();
        let secret = into_secret(&staged, Secret::default());
        assert_eq!(from_secret(&secret), Some(staged.clone()));
        let promoted = apply(Step::PromoteCa, Some(staged), 1_000_200, &config())
            .unwrap()
            .unwrap();
        let secret = into_secret(&promoted, secret);
        assert_eq!(from_secret(&secret), Some(promoted));
        assert!(!secret.metadata.annotations.unwrap().contains_key(STAGED_AT));
        assert_eq!(from_secret(&Secret::default()), None);
    }

    #[test]
    fn bad_pem_is_an_error_that_says_what() {
        let r = Reloadable::default();
        let e = r
            .load(&Pair {
                cert_pem: "nope".into(),
                key_pem: "nope".into(),
            })
            .unwrap_err();
        assert!(e.to_string().contains("serving certificate"), "{e}");
        assert!(!r.is_loaded());
        let m = created(1_000_000);
        let e = r
            .load(&Pair {
                cert_pem: m.leaf.cert_pem.clone(),
                key_pem: "nope".into(),
            })
            .unwrap_err();
        assert!(e.to_string().contains("serving key"), "{e}");
        assert!(r.load(&m.leaf).unwrap());
        assert!(!r.load(&m.leaf).unwrap(), "same certificate: no reload");
    }
}
