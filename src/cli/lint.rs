//! `ballast lint`: check policy files offline, for GitOps CI. Multi-document YAML,
//! directories searched for `*.yaml`/`*.yml`, objects of other kinds skipped. Each
//! problem is printed as `file: Kind/name: severity: field: message`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

use super::LintArgs;
use crate::api::validation::{self, Problem, Severity};
use crate::api::{ClusterMetricsSource, CustomScalingPolicy};

const GROUP_VERSION: &str = "autoscaling.ballast.dev/v1alpha1";

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: serde_json::Value,
}

/// The YAML documents of a file, empty documents skipped.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_documents(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn parse_documents(text: &str) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .with_context(|| format!("document {} is not valid YAML", i + 1))?;
        if value.is_null() {
            continue;
        }
        if let Some(path) = non_finite(&value, "") {
            let at = if path.is_empty() {
                "the document"
            } else {
                &path
            };
            anyhow::bail!(
                "document {}: {at} is .nan or .inf, which JSON (and so kubectl) cannot carry",
                i + 1
            );
        }
        let value = serde_json::to_value(&value).with_context(|| {
            format!(
                "document {} cannot be read as JSON (non-string keys?)",
                i + 1
            )
        })?;
        documents.push(Document {
            index: i + 1,
            value,
        });
    }
    Ok(documents)
}

/// The first place in `value` holding `.nan` or `.inf`: converted to JSON they would
/// silently read as null (an absent optional field), while kubectl refuses the file.
fn non_finite(value: &serde_yaml::Value, path: &str) -> Option<String> {
    use serde_yaml::Value;
    match value {
        Value::Number(n) if n.is_nan() || n.is_infinite() => Some(path.to_string()),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| non_finite(v, &format!("{path}[{i}]"))),
        Value::Mapping(map) => map.iter().find_map(|(k, v)| {
            let key = k.as_str().unwrap_or("?");
            let child = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            non_finite(v, &child)
        }),
        Value::Tagged(tagged) => non_finite(&tagged.value, path),
        _ => None,
    }
}

/// What lint found in one object.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: String,
    pub name: String,
    pub problem: Problem,
}

/// The kinds lint knows.
fn is_ours(value: &serde_json::Value) -> Option<&str> {
    let kind = value.get("kind")?.as_str()?;
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    match kind {
        "CustomScalingPolicy" | "ClusterMetricsSource" if api_version == GROUP_VERSION => {
            Some(kind)
        }
        "CustomScalingPolicy" | "ClusterMetricsSource"
            if api_version.starts_with("autoscaling.ballast.dev/") =>
        {
            Some(kind)
        }
        _ => None,
    }
}

/// Check one document; `None` when it is not one of our kinds.
pub fn lint_document(value: &serde_json::Value) -> Option<Vec<Finding>> {
    let kind = is_ours(value)?.to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    let mut problems = Vec::new();
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if api_version != GROUP_VERSION {
        problems.push(Problem::error(
            "apiVersion",
            format!("{api_version:?} is not served; use {GROUP_VERSION}"),
        ));
    }
    if name == "<unnamed>" {
        problems.push(Problem::error("metadata.name", "required"));
    }
    if value.get("spec").is_none() {
        problems.push(Problem::error("spec", "required"));
    } else if kind == "CustomScalingPolicy" {
        match validation::decode::<CustomScalingPolicy>(value) {
            Ok((policy, unknown)) => {
                problems.extend(unknown);
                problems.extend(validation::validate_policy(&policy.spec));
            }
            Err(problem) => problems.push(problem),
        }
    } else {
        match validation::decode::<ClusterMetricsSource>(value) {
            Ok((source, unknown)) => {
                problems.extend(unknown);
                problems.extend(validation::validate_source(&source.spec));
            }
            Err(problem) => problems.push(problem),
        }
    }
    Some(
        problems
            .into_iter()
            .map(|problem| Finding {
                kind: kind.clone(),
                name: name.clone(),
                problem,
            })
            .collect(),
    )
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let is_yaml = entry
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if entry.is_dir() || is_yaml {
                collect_files(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

pub fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_files(path, &mut files)?;
    }
    let (mut errors, mut warnings, mut objects) = (0usize, 0usize, 0usize);
    for file in &files {
        let documents = match read_documents(file) {
            Ok(d) => d,
            Err(err) => {
                println!("{}: error: {err:#}", file.display());
                errors += 1;
                continue;
            }
        };
        for doc in documents {
            let Some(findings) = lint_document(&doc.value) else {
                continue;
            };
            objects += 1;
            for f in findings {
                match f.problem.severity {
                    Severity::Error => errors += 1,
                    Severity::Warning => warnings += 1,
                }
                println!(
                    "{} (document {}): {}/{}: {}",
                    file.display(),
                    doc.index,
                    f.kind,
                    f.name,
                    f.problem
                );
            }
        }
    }
    eprintln!(
        "checked {objects} objects in {} files: {errors} errors, {warnings} warnings",
        files.len()
    );
    let failed = errors > 0 || (args.strict && warnings > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_and_inf_are_refused_not_read_as_absent() {
        // Found by fuzz/policy_yaml: `.nan`/`.inf` became JSON null, so an optional
        // field read as unset and the file passed lint, though kubectl refuses it.
        let text = "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: minimal, namespace: default}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - name: evictions
      query: sum(rate(redis_evicted_keys_total[1m]))
      target: {type: Value, value: \"100\"}
  behavior: {tolerance: .nan}
  fallback: {replicas: .inf}
";
        let err = format!("{:#}", parse_documents(text).unwrap_err());
        assert!(
            err.contains("document 1: spec.behavior.tolerance is .nan or .inf"),
            "{err}"
        );
        let err = format!("{:#}", parse_documents("a: [1, -.inf]").unwrap_err());
        assert!(err.contains("a[1] is .nan or .inf"), "{err}");
        let err = format!("{:#}", parse_documents(".inf").unwrap_err());
        assert!(err.contains("the document is .nan or .inf"), "{err}");
        assert_eq!(parse_documents("a: 1.5\n---\nb: [2]").unwrap().len(), 2);
    }
}
