//! The YAML documents `ballast lint` reads, and what it finds in each object of
//! our kinds: used by the CLI (`lint`, `simulate`), and by the fuzz targets, which
//! must not depend on the CLI.

use serde::Deserialize;

use super::validation::{self, Problem};
use super::{ClusterMetricsSource, CustomScalingPolicy};

const GROUP_VERSION: &str = "autoscaling.ballast.dev/v1alpha1";

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: serde_json::Value,
}

/// A file's text that is not a stream of documents lint can read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document {index} is not valid YAML")]
    Yaml {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index}: {at} is .nan or .inf, which JSON (and so kubectl) cannot carry")]
    NonFinite { index: usize, at: String },
    #[error("document {index} cannot be read as JSON (non-string keys?)")]
    Json {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The YAML documents of a text, empty documents skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, DocumentError> {
    let mut documents = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|source| DocumentError::Yaml { index, source })?;
        if value.is_null() {
            continue;
        }
        if let Some(path) = non_finite(&value, "") {
            let at = if path.is_empty() {
                "the document".to_string()
            } else {
                path
            };
            return Err(DocumentError::NonFinite { index, at });
        }
        let value =
            serde_json::to_value(&value).map_err(|source| DocumentError::Json { index, source })?;
        documents.push(Document { index, value });
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
