//! The admission webhook of the whole run: one `ballast webhook` (as deploy/'s
//! ServiceAccount) and the ValidatingWebhookConfiguration `ballast`,
//! called by URL on loopback, so that every scenario's `kubectl apply` and API
//! create goes through it, as in a real install. Started before the first
//! scenario and stopped after the last; short certificate lives (45 s, checked
//! every 5 s) re-issue the serving certificate every 30 s and rotate the CA about
//! 5 minutes in, while the scenarios run (`webhook-certificates` checks it).
//!
//! An objectSelector lets a scenario create an invalid policy on purpose (label
//! `e2e.ballast.dev/bypass-webhook`), to test the operator's own defences.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use crate::{Env, eventually, free_port};

/// What scenarios need to know about the run's webhook.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub port: u16,
    pub admin: u16,
    pub log: PathBuf,
    pub pid: u32,
    /// The CA in the caBundle, and the certificate served, when it started.
    pub first_ca: String,
    pub first_cert: String,
}

/// The run's webhook, once started (main.rs starts it).
pub static SUITE: OnceLock<Webhook> = OnceLock::new();

/// The e2e's ValidatingWebhookConfiguration: deploy/'s name, the only one
/// deploy/'s RBAC lets the webhook keep the caBundle of. It is created with
/// `kubectl apply` (client-side, as a platform team would), so that
/// `deploy-dry-run`'s `kubectl apply -k deploy/` merges deploy/'s Service
/// reference in place of the e2e's URL instead of adding it next to it.
pub const CONFIGURATION: &str = "ballast";

/// The label that lets an object past the e2e webhook configuration.
pub const BYPASS: &str = "e2e.ballast.dev/bypass-webhook";

/// The PEM of the certificate served on `port` (`openssl s_client`).
pub fn served_certificate(port: u16) -> anyhow::Result<String> {
    // Bounded: a webhook that accepts and never answers must not hang the run.
    let mut client = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("openssl s_client")?;
    let out = client.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let x509 = Command::new("openssl")
        .arg("x509")
        .stdin(out)
        .stderr(Stdio::null())
        .output()
        .context("openssl x509")?;
    let _ = client.wait();
    Ok(String::from_utf8_lossy(&x509.stdout).into_owned())
}

/// The caBundle of the e2e configuration, decoded.
pub async fn ca_bundle(client: &kube::Client) -> anyhow::Result<String> {
    let vwc = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(CONFIGURATION)
        .await?;
    let bundle = vwc
        .webhooks
        .and_then(|w| w.into_iter().next())
        .and_then(|w| w.client_config.ca_bundle)
        .ok_or_else(|| anyhow!("no caBundle yet"))?;
    Ok(String::from_utf8_lossy(&bundle.0).into_owned())
}

/// Starts the webhook and its configuration; returns it and the process to stop.
pub async fn start(env: &Env) -> anyhow::Result<(Webhook, Child)> {
    let client = env.client().await?;
    let (port, admin) = (free_port()?, free_port()?);
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION},
        "webhooks": [{
            "name": "policies.autoscaling.ballast.dev",
            "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": "Fail",
            "matchPolicy": "Equivalent", "timeoutSeconds": 5,
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate")},
            "objectSelector": {"matchExpressions": [{"key": BYPASS, "operator": "DoesNotExist"}]},
            "rules": [{
                "apiGroups": ["autoscaling.ballast.dev"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
                "resources": ["customscalingpolicies", "clustermetricssources"], "scope": "*"
            }]
        }]
    }))?;
    let applied = Command::new(&env.kubectl)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            if let Some(mut input) = child.stdin.take() {
                input.write_all(serde_json::to_string(&vwc)?.as_bytes())?;
            }
            child.wait_with_output()
        })
        .context("kubectl apply of the e2e ValidatingWebhookConfiguration")?;
    anyhow::ensure!(
        applied.status.success(),
        "kubectl apply of the e2e ValidatingWebhookConfiguration: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    std::fs::create_dir_all(&env.work)?;
    let log = env.work.join("webhook.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(&env.ballast)
        .args(["webhook", "--log", "info,ballast=debug", "--kubeconfig"])
        .arg(&env.sa_kubeconfig)
        .args([
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--admin-addr",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--namespace",
            "ballast-system",
            "--webhook-host",
            "127.0.0.1",
        ])
        .args(["--webhook-configuration", CONFIGURATION])
        .args([
            "--webhook-cert-validity",
            "45s",
            "--webhook-cert-check",
            "5s",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting ballast webhook")?;
    let pid = child.id();
    match ready(&client, port).await {
        Ok((first_ca, first_cert)) => Ok((
            Webhook {
                port,
                admin,
                log,
                pid,
                first_ca,
                first_cert,
            },
            child,
        )),
        Err(e) => {
            // Neither a webhook nor a configuration that refuses everything left behind.
            let _ = stop(env, child).await;
            Err(e.context(format!(
                "the webhook did not start; its log: {}",
                log.display()
            )))
        }
    }
}

/// Waits until the webhook has written its caBundle and the API server calls it;
/// returns the CA and the certificate served then.
async fn ready(client: &kube::Client, port: u16) -> anyhow::Result<(String, String)> {
    let first_ca = eventually(
        Duration::from_secs(30),
        "the webhook writes its caBundle",
        || ca_bundle(client),
    )
    .await?;
    // The API server trusts it: a server-side dry run of a valid policy passes.
    let probe: ballast::api::CustomScalingPolicy = serde_json::from_value(json!({
        "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
        "metadata": {"name": "probe"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "probe"}, "maxReplicas": 2,
            "metrics": [{"name": "m", "query": "vector(1)", "target": {"type": "Value", "value": "1"}}]
        }
    }))?;
    let policies = Api::<ballast::api::CustomScalingPolicy>::namespaced(client.clone(), "default");
    let dry_run = kube::api::PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually(
        Duration::from_secs(20),
        "the API server calls the webhook",
        || async {
            policies.create(&dry_run, &probe).await?;
            Ok(())
        },
    )
    .await?;
    let first_cert = served_certificate(port)?;
    Ok((first_ca, first_cert))
}

/// Stops the webhook and removes the configuration (which would otherwise refuse
/// every policy: failurePolicy Fail).
pub async fn stop(env: &Env, mut child: Child) -> anyhow::Result<()> {
    // The process first (a std Child is not killed on drop), then the configuration;
    // neither step is skipped when the other fails.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut stopped = false;
    for _ in 0..50 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !stopped {
        let _ = child.kill();
        let _ = child.wait();
    }
    let client = env.client().await?;
    Api::<ValidatingWebhookConfiguration>::all(client)
        .delete(CONFIGURATION, &DeleteParams::default())
        .await
        .context("deleting the e2e ValidatingWebhookConfiguration")?;
    Ok(())
}
