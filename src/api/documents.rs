//! The YAML documents `ballast lint` reads, and what it finds in each object of
//! our kinds: used by the CLI (`lint`, `simulate`), and by the fuzz targets, which
//! must not depend on the CLI.

use serde::Deserialize;

use super::spans::{self, Pos, Positions};
use super::validation::{self, Problem, Rule};

const GROUP_VERSION: &str = "autoscaling.ballast.dev/v1alpha1";

/// One YAML document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub index: usize,
    pub value: serde_json::Value,
    /// Where its fields are in the file.
    pub positions: Positions,
}

/// A file's text that is not a stream of documents lint can read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document {index} is not valid YAML")]
    Yaml {
        index: usize,
        pos: Pos,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index}: {at} is .nan or .inf, which JSON (and so kubectl) cannot carry")]
    NonFinite { index: usize, pos: Pos, at: String },
    #[error("document {index} cannot be read as JSON (non-string keys?)")]
    Json {
        index: usize,
        pos: Pos,
        #[source]
        source: serde_json::Error,
    },
}

impl DocumentError {
    /// Where in the file the problem is.
    pub fn position(&self) -> Pos {
        match self {
            DocumentError::Yaml { pos, .. }
            | DocumentError::NonFinite { pos, .. }
            | DocumentError::Json { pos, .. } => *pos,
        }
    }

    /// The lint rule it breaks.
    pub fn rule(&self) -> Rule {
        match self {
            DocumentError::NonFinite { .. } => Rule::NonFinite,
            DocumentError::Yaml { .. } | DocumentError::Json { .. } => Rule::YamlSyntax,
        }
    }
}

/// The YAML documents of a text, empty documents skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, DocumentError> {
    let mut documents = Vec::new();
    let mut places = spans::positions(text).into_iter();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let positions = places.next().unwrap_or_default();
        let value = serde_yaml::Value::deserialize(doc).map_err(|source| {
            let pos = source.location().map_or(positions.start(), |l| Pos {
                line: l.line(),
                column: l.column(),
            });
            DocumentError::Yaml { index, pos, source }
        })?;
        if value.is_null() {
            continue;
        }
        if let Some(path) = non_finite(&value, "") {
            let pos = positions.locate(&path, false);
            let at = if path.is_empty() {
                "the document".to_string()
            } else {
                path
            };
            return Err(DocumentError::NonFinite { index, pos, at });
        }
        let value = serde_json::to_value(&value).map_err(|source| DocumentError::Json {
            index,
            pos: positions.start(),
            source,
        })?;
        documents.push(Document {
            index,
            value,
            positions,
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
    /// `None` for a cluster-scoped kind or a policy that names none.
    pub namespace: Option<String>,
    pub name: String,
    pub problem: Problem,
}

impl Finding {
    /// Where the finding points in `document`: the key of an unknown field, the
    /// value of anything else (or the nearest ancestor that is there).
    pub fn position(&self, document: &Document) -> Pos {
        let key = matches!(self.problem.rule, Rule::UnknownField | Rule::Required);
        document.positions.locate(&self.problem.field, key)
    }
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

/// Check one document; `None` when it is not one of our kinds. `operator_namespace`:
/// where the operator runs, so where a source's Secrets must be (`None`: not checked).
pub fn lint_document(
    value: &serde_json::Value,
    operator_namespace: Option<&str>,
) -> Option<Vec<Finding>> {
    let kind = is_ours(value)?.to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>")
        .to_string();
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let mut problems = Vec::new();
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if api_version != GROUP_VERSION {
        problems.push(Problem::error(
            Rule::ApiVersion,
            "apiVersion",
            format!("{api_version:?} is not served; use {GROUP_VERSION}"),
        ));
    }
    if name == "<unnamed>" {
        problems.push(Problem::error(Rule::Required, "metadata.name", "required"));
    }
    if value.get("spec").is_none() {
        problems.push(Problem::error(Rule::Required, "spec", "required"));
    } else if kind == "CustomScalingPolicy" {
        problems.extend(validation::check_policy(value).problems);
    } else {
        problems.extend(validation::check_source(value, operator_namespace).problems);
    }
    Some(
        problems
            .into_iter()
            .map(|problem| Finding {
                kind: kind.clone(),
                namespace: namespace.clone(),
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
