//! One scenario's namespace, its objects and its operators.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use ballast::api::{ClusterMetricsSource, CustomScalingPolicy, CustomScalingPolicyStatus};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::{Env, Operator};

/// The field manager of everything a scenario creates.
const MANAGER: &str = "ballast-e2e";

pub struct Scenario {
    pub name: String,
    /// This scenario's namespace: its objects, its operators' watch and Lease.
    pub ns: String,
    pub env: Arc<Env>,
    pub client: Client,
    /// Operator logs and anything else worth keeping when it fails.
    pub dir: PathBuf,
    pub operators: Vec<Operator>,
    /// Every operator's log, stopped ones too.
    pub logs: Vec<PathBuf>,
    /// What stopped operators said when they panicked.
    panics: Vec<String>,
    /// Cluster-scoped objects to delete at the end.
    sources: Vec<String>,
    started: Instant,
}

impl Scenario {
    /// Creates the namespace (with deploy/'s Role and RoleBinding in it: it is the
    /// operators' Lease namespace) and the log directory.
    pub async fn start(env: Arc<Env>, name: &str) -> anyhow::Result<Scenario> {
        let client = env.client().await?;
        let ns: String = format!("e2e-{name}-{}", std::process::id())
            .chars()
            .take(63)
            .collect();
        let ns = ns.trim_end_matches('-').to_string();
        let dir = env.work.join(&ns);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {"e2e.ballast.dev/scenario": name}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
        let scenario = Scenario {
            name: name.to_string(),
            ns,
            env,
            client,
            dir,
            operators: Vec::new(),
            logs: Vec::new(),
            panics: Vec::new(),
            sources: Vec::new(),
            started: Instant::now(),
        };
        if let Err(e) = scenario.install_lease_rbac().await {
            let _ = Api::<Namespace>::all(scenario.client.clone())
                .delete(&scenario.ns, &DeleteParams::background())
                .await;
            return Err(e);
        }
        Ok(scenario)
    }

    /// deploy/rbac.yaml's Role and RoleBinding, bound in this namespace.
    async fn install_lease_rbac(&self) -> anyhow::Result<()> {
        let path = self.env.repo.join("deploy/rbac.yaml");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut found = 0;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(document).with_context(|| format!("{}", path.display()))?;
            match value["kind"].as_str() {
                Some("Role") => {
                    let mut role: Role = serde_json::from_value(value)?;
                    role.metadata.namespace = Some(self.ns.clone());
                    Api::<Role>::namespaced(self.client.clone(), &self.ns)
                        .create(&PostParams::default(), &role)
                        .await
                        .context("creating deploy/'s Role")?;
                    found += 1;
                }
                Some("RoleBinding") => {
                    let mut binding: RoleBinding = serde_json::from_value(value)?;
                    binding.metadata.namespace = Some(self.ns.clone());
                    Api::<RoleBinding>::namespaced(self.client.clone(), &self.ns)
                        .create(&PostParams::default(), &binding)
                        .await
                        .context("creating deploy/'s RoleBinding")?;
                    found += 1;
                }
                _ => {}
            }
        }
        anyhow::ensure!(
            found == 2,
            "{}: expected one Role and one RoleBinding, found {found} of them",
            path.display()
        );
        Ok(())
    }

    /// A progress line, prefixed with the scenario and its time.
    pub fn say(&self, message: impl std::fmt::Display) {
        println!(
            "    [{} +{:.1}s] {message}",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Starts an operator for this namespace; returns its index in `operators`.
    pub async fn operator(&mut self, identity: &str) -> anyhow::Result<usize> {
        self.start_operator(identity, None, false, &[]).await
    }

    /// An operator that watches every namespace: only for a scenario that runs
    /// alone (main.rs's `ALONE`), or it would act on the others' policies.
    pub async fn operator_everywhere(&mut self, identity: &str) -> anyhow::Result<usize> {
        self.start_operator(identity, None, true, &[]).await
    }

    /// An operator that watches every namespace, with the environment of deploy/'s
    /// operator container (as rendered from an overlay): a default install. Only
    /// for a scenario that runs alone.
    pub async fn operator_installed(
        &mut self,
        identity: &str,
        container_env: &[(String, String)],
    ) -> anyhow::Result<usize> {
        self.start_operator(identity, None, true, container_env)
            .await
    }

    /// An operator that also serves the admission webhook on `port`
    /// (`ballast run --webhook-addr`).
    pub async fn operator_with_webhook(
        &mut self,
        identity: &str,
        port: u16,
    ) -> anyhow::Result<usize> {
        self.start_operator(identity, Some(port), false, &[]).await
    }

    async fn start_operator(
        &mut self,
        identity: &str,
        webhook: Option<u16>,
        everywhere: bool,
        container_env: &[(String, String)],
    ) -> anyhow::Result<usize> {
        let operator = Operator::start(
            &self.env,
            &self.ns,
            identity,
            &self.dir,
            webhook,
            everywhere,
            container_env,
        )
        .await?;
        self.say(format!(
            "operator {identity} ready: pid {:?}, admin {}",
            operator.pid(),
            operator.admin
        ));
        self.logs.push(operator.log.clone());
        self.operators.push(operator);
        Ok(self.operators.len() - 1)
    }

    /// Stops every operator (SIGTERM, then SIGKILL); a panic in any log fails the
    /// scenario at [`Self::finish`].
    pub async fn stop_operators(&mut self) {
        for operator in std::mem::take(&mut self.operators) {
            self.panics.extend(operator.stop().await);
        }
    }

    // --- objects -----------------------------------------------------------------

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn policies(&self) -> Api<CustomScalingPolicy> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// A Deployment of `replicas` pods that never run (KWOK has no nodes for them):
    /// only its replica count matters.
    pub async fn deployment(&self, name: &str, replicas: i32) -> anyhow::Result<()> {
        self.deployment_on(name, replicas, None, None).await
    }

    /// A Deployment whose pods select the node pool `pool` (made by nodepool-sync),
    /// if any, and request `cpu` each, if set.
    pub async fn deployment_on(
        &self,
        name: &str,
        replicas: i32,
        pool: Option<&str>,
        cpu: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut pod = json!({"containers": [{"name": "main", "image": "registry.invalid/none:1"}]});
        if let Some(pool) = pool {
            pod["nodeSelector"] = json!({"ballast.dev/node-pool": pool});
        }
        if let Some(cpu) = cpu {
            pod["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
        }
        let deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": pod}
            }
        }))?;
        self.deployments()
            .create(&PostParams::default(), &deployment)
            .await
            .with_context(|| format!("creating Deployment {name}"))?;
        Ok(())
    }

    /// Deployment `name` has `expected` replicas; the error says how many it has.
    pub async fn replicas_are(&self, name: &str, expected: i32) -> anyhow::Result<()> {
        let r = self.replicas(name).await?;
        anyhow::ensure!(r == expected, "{name} at {r}, expected {expected}");
        Ok(())
    }

    /// The policy's metrics are available (`MetricsAvailable=True/ValidMetricsFound`).
    pub async fn metrics_available(&self, policy: &str) -> anyhow::Result<()> {
        self.condition_is(policy, "MetricsAvailable", "True/ValidMetricsFound")
            .await
            .map(|_| ())
    }

    /// A policy from its spec (JSON, as in YAML): decoded into the crate's own type
    /// first, so a spec the operator could not read fails here, not in a wait.
    pub async fn policy(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        self.policy_labelled(name, json!({}), spec).await
    }

    pub async fn policy_labelled(
        &self,
        name: &str,
        labels: Value,
        spec: Value,
    ) -> anyhow::Result<()> {
        let policy: CustomScalingPolicy = serde_json::from_value(json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))
        .with_context(|| format!("policy {name}'s spec"))?;
        self.policies()
            .create(&PostParams::default(), &policy)
            .await
            .with_context(|| format!("creating policy {name}"))?;
        Ok(())
    }

    /// A policy the crate's types would refuse (to test the operator's defences
    /// behind the webhook): created as raw JSON.
    pub async fn raw_policy(&self, name: &str, labels: Value, spec: Value) -> anyhow::Result<()> {
        let resource = kube::discovery::ApiResource::erase::<CustomScalingPolicy>(&());
        let object: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "CustomScalingPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": spec,
        }))?;
        Api::<kube::api::DynamicObject>::namespaced_with(self.client.clone(), &self.ns, &resource)
            .create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("creating policy {name}"))?;
        Ok(())
    }

    /// Merge-patches a policy's spec (as a GitOps sync or `kubectl apply` would).
    pub async fn patch_policy(&self, name: &str, spec: Value) -> anyhow::Result<()> {
        self.policies()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .with_context(|| format!("patching policy {name}"))?;
        Ok(())
    }

    /// A ClusterMetricsSource (cluster-scoped: named after the namespace, deleted at the end).
    pub async fn source(&mut self, suffix: &str, spec: Value) -> anyhow::Result<String> {
        let name = format!("{}-{suffix}", self.ns);
        let source: ClusterMetricsSource = serde_json::from_value(json!({
            "apiVersion": "autoscaling.ballast.dev/v1alpha1", "kind": "ClusterMetricsSource",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .with_context(|| format!("source {name}'s spec"))?;
        Api::<ClusterMetricsSource>::all(self.client.clone())
            .patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&source),
            )
            .await
            .with_context(|| format!("creating source {name}"))?;
        self.sources.push(name.clone());
        Ok(name)
    }

    pub async fn replicas(&self, deployment: &str) -> anyhow::Result<i32> {
        let d = self
            .deployments()
            .get(deployment)
            .await
            .with_context(|| format!("Deployment {deployment}"))?;
        d.spec
            .and_then(|s| s.replicas)
            .ok_or_else(|| anyhow!("Deployment {deployment} has no spec.replicas"))
    }

    /// Sets a Deployment's replicas through `/scale`, as `kubectl scale` does.
    pub async fn scale(&self, deployment: &str, replicas: i32) -> anyhow::Result<()> {
        self.deployments()
            .patch_scale(
                deployment,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .with_context(|| format!("scaling Deployment {deployment} to {replicas}"))?;
        Ok(())
    }

    pub async fn status(&self, policy: &str) -> anyhow::Result<CustomScalingPolicyStatus> {
        let p = self
            .policies()
            .get(policy)
            .await
            .with_context(|| format!("policy {policy}"))?;
        p.status
            .ok_or_else(|| anyhow!("policy {policy} has no status yet"))
    }

    pub async fn condition(&self, policy: &str, type_: &str) -> anyhow::Result<Condition> {
        let status = self.status(policy).await?;
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .ok_or_else(|| anyhow!("policy {policy} has no {type_} condition"))
    }

    /// The policy's `type_` condition is `status`/`reason` (as `kubectl get` shows
    /// them: `True/Ready`); the error says what it is instead.
    pub async fn condition_is(
        &self,
        policy: &str,
        type_: &str,
        expected: &str,
    ) -> anyhow::Result<Condition> {
        let c = self.condition(policy, type_).await?;
        let seen = format!("{}/{}", c.status, c.reason);
        anyhow::ensure!(
            seen == expected,
            "{policy} {type_} is {seen} ({})",
            c.message
        );
        Ok(c)
    }

    /// The namespace's events.k8s.io Events with this reason.
    pub async fn events(&self, reason: &str) -> anyhow::Result<Vec<Event>> {
        let list = Api::<Event>::namespaced(self.client.clone(), &self.ns)
            .list(&ListParams::default().fields(&format!("reason={reason}")))
            .await
            .context("listing Events")?;
        Ok(list.items)
    }

    /// Objects of a kind the crate has no type for (a MachineDeployment, a test
    /// CRD), in this namespace.
    pub fn dynamic(&self, api_version: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let resource = ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
        };
        Api::namespaced_with(self.client.clone(), &self.ns, &resource)
    }

    /// Creates (or replaces the fields of) an object from its JSON, server-side.
    pub async fn apply(&self, api: &Api<DynamicObject>, object: Value) -> anyhow::Result<()> {
        let object: DynamicObject = serde_json::from_value(object)?;
        let name = object
            .metadata
            .name
            .clone()
            .ok_or_else(|| anyhow!("an object without a name"))?;
        api.patch(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("applying {name}"))?;
        Ok(())
    }

    /// The namespace's Pods with `app=<app>` in `phase`.
    pub async fn pods_in_phase(&self, app: &str, phase: &str) -> anyhow::Result<usize> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .list(
                &ListParams::default()
                    .labels(&format!("app={app}"))
                    .fields(&format!("status.phase={phase}")),
            )
            .await?;
        Ok(pods.items.len())
    }

    /// Nodes of this namespace's node pool `pool` (made by nodepool-sync), and how
    /// many of them are Ready.
    pub async fn pool_nodes(&self, pool: &str) -> anyhow::Result<(usize, usize)> {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default().labels(&format!(
                "ballast.dev/node-pool={pool},ballast.dev/node-pool-namespace={}",
                self.ns
            )))
            .await?;
        let ready = nodes
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        Ok((nodes.items.len(), ready))
    }

    /// Runs the harness's kubectl with the admin kubeconfig in this namespace, with
    /// `stdin` if given: whether it succeeded, and its stdout and stderr.
    pub async fn kubectl(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<(bool, String)> {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        self.kubectl_anywhere(&all, stdin).await
    }

    /// [`Self::kubectl`] without `-n`: for objects that name their own namespace.
    pub async fn kubectl_anywhere(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<(bool, String)> {
        use tokio::io::AsyncWriteExt as _;
        let mut child = tokio::process::Command::new(&self.env.kubectl)
            .arg("--kubeconfig")
            .arg(&self.env.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.env.kubectl.display()))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .await?;
        }
        let out = child.wait_with_output().await?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text.trim().to_string()))
    }

    /// Everything a secret must never appear in, as text: operator `op`'s log,
    /// the policies and sources (status included), the Events, and its metrics.
    pub async fn everything_visible(&self, op: usize) -> anyhow::Result<String> {
        let operator = self
            .operators
            .get(op)
            .ok_or_else(|| anyhow::anyhow!("no operator {op}"))?;
        let mut everything = operator.log_text();
        for args in [
            &["get", "csp", "-o", "yaml"][..],
            &["get", "clustermetricssources", "-o", "yaml"],
            &["get", "events.events.k8s.io", "-o", "yaml"],
            &["get", "events", "-A", "-o", "yaml"],
        ] {
            everything.push_str(&self.kubectl(args, None).await?.1);
        }
        everything.push_str(
            &crate::get(format!("http://{}/metrics", operator.admin))
                .await?
                .text()
                .await?,
        );
        Ok(everything)
    }

    /// Runs the ballast CLI (its output and exit code).
    pub async fn ballast(&self, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let out = tokio::process::Command::new(&self.env.ballast)
            .args(args)
            .output()
            .await
            .with_context(|| format!("running ballast {}", args.join(" ")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text.trim().to_string()))
    }

    /// Stops the operators, deletes the namespace and the sources. The logs stay
    /// (and are named) when the scenario failed or an operator panicked.
    pub async fn finish(mut self, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        self.stop_operators().await;
        let panics = std::mem::take(&mut self.panics);
        let background = DeleteParams::background();
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &background)
            .await;
        for source in &self.sources {
            let _ = Api::<ClusterMetricsSource>::all(self.client.clone())
                .delete(source, &background)
                .await;
        }
        let outcome = match (outcome, panics.is_empty()) {
            (Ok(()), true) => Ok(()),
            (Ok(()), false) => Err(anyhow!(panics.join("\n"))),
            (Err(e), true) => Err(e),
            (Err(e), false) => Err(e.context(panics.join("\n"))),
        };
        match &outcome {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Err(_) => self.say(format!("logs kept in {}", self.dir.display())),
        }
        outcome.map_err(|e| e.context(format!("scenario {} (namespace {})", self.name, self.ns)))
    }
}
