//! `ballast lint`: check policy files offline, for GitOps CI. Multi-document YAML,
//! directories searched for `*.yaml`/`*.yml`, `-` for stdin, objects of other
//! kinds skipped. Each finding has a place (`file:line:column`), a stable rule id,
//! and the object and field it is about; `--format` prints them for people (text),
//! programs (JSON lines), GitHub code scanning (SARIF 2.1.0) or GitHub Actions
//! annotations. Exit 0 clean, 1 findings, 2 usage or I/O errors or nothing checked.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use serde_json::{Value, json};

use super::LintArgs;
use crate::api::documents::{Document, lint_document, parse_documents};
use crate::api::rules::{HELP_URI, Rule};
use crate::api::spans::Pos;
use crate::api::validation::{Severity, field_message};

/// How findings are printed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LintFormat {
    /// `file:line:col: error[rule]: Kind ns/name: field: message`, for people.
    Text,
    /// One JSON object per finding and line (see docs/lint.md for the fields).
    Json,
    /// One SARIF 2.1.0 log, for GitHub code scanning and other SARIF viewers.
    Sarif,
    /// GitHub Actions workflow commands: annotations on the pull request's files.
    Github,
}

/// The YAML documents of a file (`-`: stdin), empty documents skipped.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = read_text(path)?;
    parse_documents(&text).with_context(|| format!("parsing {}", shown(path)))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")
    } else {
        fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path == Path::new("-") {
        out.push(path.to_path_buf());
        return Ok(());
    }
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

/// One finding, placed in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The file as given (`<stdin>` for `-`).
    pub file: String,
    pub pos: Pos,
    pub rule: Rule,
    pub severity: Severity,
    /// `Kind`, namespace and name of the object, when the finding is about one.
    pub object: Option<(String, Option<String>, String)>,
    /// The field path, e.g. `spec.metrics[0].query` (empty for the whole file).
    pub field: String,
    pub message: String,
}

impl Report {
    fn object_text(&self) -> Option<String> {
        self.object.as_ref().map(|(kind, ns, name)| match ns {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        })
    }

    /// `Kind ns/name: field: message` (a message that starts with its field is not
    /// prefixed twice).
    fn detail(&self) -> String {
        let mut out = String::new();
        if let Some(object) = self.object_text() {
            let _ = write!(out, "{object}: ");
        }
        out.push_str(&field_message(&self.field, &self.message));
        out
    }
}

/// What a run found: findings in file order, and how much was checked.
#[derive(Debug, Default)]
pub struct Outcome {
    pub reports: Vec<Report>,
    pub files: usize,
    pub objects: usize,
    /// Files that could not be read at all (exit 2).
    pub io_errors: Vec<String>,
}

impl Outcome {
    fn count(&self, severity: Severity) -> usize {
        self.reports
            .iter()
            .filter(|r| r.severity == severity)
            .count()
    }
}

/// Lint the text of one file.
pub fn lint_text(file: &str, text: &str, operator_namespace: Option<&str>, out: &mut Outcome) {
    let documents = match parse_documents(text) {
        Ok(d) => d,
        Err(err) => {
            let rule = err.rule();
            out.reports.push(Report {
                file: file.to_string(),
                pos: err.position(),
                rule,
                severity: Severity::Error,
                object: None,
                field: String::new(),
                message: format!("{err:#}"),
            });
            return;
        }
    };
    for doc in documents {
        let Some(findings) = lint_document(&doc.value, operator_namespace) else {
            continue;
        };
        out.objects += 1;
        let first = out.reports.len();
        for f in findings {
            out.reports.push(Report {
                file: file.to_string(),
                pos: f.position(&doc),
                rule: f.problem.rule,
                severity: f.problem.severity,
                object: Some((f.kind.clone(), f.namespace.clone(), f.name.clone())),
                field: f.problem.field.clone(),
                message: f.problem.message.clone(),
            });
        }
        // In file order, as a compiler reports.
        out.reports[first..].sort_by_key(|r| r.pos);
    }
}

pub fn run(args: &LintArgs) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.paths {
        collect_files(path, &mut files)?;
    }
    let namespace =
        (!args.operator_namespace.is_empty()).then_some(args.operator_namespace.as_str());
    let mut outcome = Outcome {
        files: files.len(),
        ..Outcome::default()
    };
    for file in &files {
        match read_text(file) {
            Ok(text) => lint_text(&shown(file), &text, namespace, &mut outcome),
            Err(err) => outcome.io_errors.push(format!("{err:#}")),
        }
    }
    let mut stdout = std::io::stdout().lock();
    let printed = match args.format {
        LintFormat::Text => text(&outcome.reports),
        LintFormat::Json => json_lines(&outcome.reports),
        LintFormat::Sarif => sarif(&outcome.reports),
        LintFormat::Github => github(&outcome.reports),
    };
    stdout
        .write_all(printed.as_bytes())
        .context("writing the findings")?;
    stdout.flush().context("writing the findings")?;
    let (errors, warnings) = (
        outcome.count(Severity::Error),
        outcome.count(Severity::Warning),
    );
    eprintln!(
        "checked {} objects in {} files: {errors} errors, {warnings} warnings",
        outcome.objects, outcome.files
    );
    if !outcome.io_errors.is_empty() {
        anyhow::bail!("{}", outcome.io_errors.join("; "));
    }
    if outcome.objects == 0 && errors == 0 && !args.allow_empty {
        anyhow::bail!(
            "nothing to check: no CustomScalingPolicy or ClusterMetricsSource in {} (a directory without YAML, or a glob that matched nothing?); --allow-empty accepts that",
            args.paths
                .iter()
                .map(|p| shown(p))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let failed = errors > 0 || (args.strict && warnings > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Compiler style: `file:line:col: error[rule]: Kind ns/name: field: message`.
pub fn text(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}[{}]: {}",
            r.file,
            r.pos.line,
            r.pos.column,
            r.severity,
            r.rule.id(),
            r.detail()
        );
    }
    out
}

/// One JSON object per line; the fields are documented in docs/lint.md.
pub fn json_lines(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let (kind, namespace, name) = match &r.object {
            Some((k, ns, n)) => (Some(k.as_str()), ns.as_deref(), Some(n.as_str())),
            None => (None, None, None),
        };
        let line = json!({
            "file": r.file,
            "line": r.pos.line,
            "column": r.pos.column,
            "severity": r.severity.to_string(),
            "rule": r.rule.id(),
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "field": r.field,
            "message": r.message,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// A file name as a SARIF `artifactLocation`: relative paths against
/// `%SRCROOT%` (what GitHub code scanning resolves against the repository),
/// absolute ones as `file://` URIs; characters a URI cannot hold are escaped.
fn artifact(file: &str) -> Value {
    let escaped: String = file
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    if file.starts_with('/') {
        json!({ "uri": format!("file://{escaped}") })
    } else {
        let relative = escaped.strip_prefix("./").unwrap_or(&escaped);
        json!({ "uri": relative, "uriBaseId": "%SRCROOT%" })
    }
}

/// One SARIF 2.1.0 log with every rule in the driver (so that a rule's index is
/// stable) and one result per finding.
pub fn sarif(reports: &[Report]) -> String {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id(),
                "shortDescription": { "text": rule.summary() },
                "helpUri": format!("{HELP_URI}#{}", rule.id()),
                "defaultConfiguration": { "level": level(rule.default_severity()) },
            })
        })
        .collect();
    let results: Vec<Value> = reports
        .iter()
        .map(|r| {
            let index = Rule::ALL.iter().position(|x| *x == r.rule).unwrap_or(0);
            let mut location = json!({
                "physicalLocation": {
                    "artifactLocation": artifact(&r.file),
                    "region": { "startLine": r.pos.line, "startColumn": r.pos.column },
                },
            });
            if let Some((kind, ns, name)) = &r.object {
                let object = match ns {
                    Some(ns) => format!("{kind}/{ns}/{name}"),
                    None => format!("{kind}/{name}"),
                };
                let qualified = if r.field.is_empty() {
                    object
                } else {
                    format!("{object}/{}", r.field)
                };
                location["logicalLocations"] =
                    json!([{ "fullyQualifiedName": qualified, "kind": "object" }]);
            }
            json!({
                "ruleId": r.rule.id(),
                "ruleIndex": index,
                "level": level(r.severity),
                "message": { "text": r.detail() },
                "locations": [location],
            })
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "ballast lint",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": HELP_URI,
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    let mut out = serde_json::to_string_pretty(&log).unwrap_or_else(|_| log.to_string());
    out.push('\n');
    out
}

/// Escape a workflow command's message (`%`, CR, LF) or, with `property`, one of
/// its properties (also `:` and `,`), as the Actions runner reads them.
fn escape_command(text: &str, property: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            ':' if property => out.push_str("%3A"),
            ',' if property => out.push_str("%2C"),
            c => out.push(c),
        }
    }
    out
}

/// GitHub Actions annotations: `::error file=F,line=L,col=C,title=T::message`.
pub fn github(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let file = r.file.strip_prefix("./").unwrap_or(&r.file);
        let _ = writeln!(
            out,
            "::{} file={},line={},col={},title={}::{}",
            level(r.severity),
            escape_command(file, true),
            r.pos.line,
            r.pos.column,
            escape_command(&format!("ballast lint [{}]", r.rule.id()), true),
            escape_command(&r.detail(), false)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(text: &str) -> Outcome {
        let mut out = Outcome::default();
        lint_text("p.yaml", text, Some("ballast-system"), &mut out);
        out
    }

    const TWO_TYPE_ERRORS: &str = "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: two
  maxReplicas: 10
  pollInterval: 5 seconds
  metrics:
    - name: Evictions
      query: sum(rate(x[1m])
      target: {type: Valu, value: \"100\"}
  jiter: 0.1
";

    #[test]
    fn every_error_of_an_object_is_reported_in_one_run_with_its_place() {
        let out = lint(TWO_TYPE_ERRORS);
        let seen: Vec<(usize, usize, &str, &str)> = out
            .reports
            .iter()
            .map(|r| (r.pos.line, r.pos.column, r.rule.id(), r.field.as_str()))
            .collect();
        for expected in [
            (6, 16, "type", "spec.minReplicas"),
            (8, 17, "type", "spec.pollInterval"),
            (12, 22, "type", "spec.metrics[0].target.type"),
            (10, 13, "metric-name", "spec.metrics[0].name"),
            (11, 14, "promql-syntax", "spec.metrics[0].query"),
            (13, 3, "unknown-field", "spec.jiter"),
        ] {
            assert!(seen.contains(&expected), "{expected:?} not in {seen:#?}");
        }
        // Nothing is said about the placeholders standing in for the bad values.
        assert_eq!(seen.len(), 6, "{seen:#?}");
        assert!(out.reports.iter().all(|r| r.object
            == Some((
                "CustomScalingPolicy".into(),
                Some("shop".into()),
                "web".into()
            ))));
    }

    #[test]
    fn a_missing_required_field_is_named_and_placed_at_its_parent() {
        let out = lint(
            "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: web}
spec:
  maxReplicas: 3
  metrics:
    - name: a
      query: x
      target: {value: \"1\"}
",
        );
        let seen: Vec<(usize, usize, &str, &str)> = out
            .reports
            .iter()
            .map(|r| (r.pos.line, r.pos.column, r.rule.id(), r.field.as_str()))
            .collect();
        assert!(
            seen.contains(&(4, 1, "required", "spec.targetRef")),
            "{seen:?}"
        );
        assert!(
            seen.contains(&(9, 7, "required", "spec.metrics[0].target.type")),
            "{seen:?}"
        );
    }

    #[test]
    fn source_rules_include_the_webhooks_secret_namespace() {
        let out = lint(
            "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: ClusterMetricsSource
metadata: {name: thanos}
spec:
  address: http://user:pw@thanos:9090
  allowedNamespaces: []
  timeout: 0s
  auth:
    bearerToken: {name: token, namespace: monitoring, key: token}
",
        );
        let rules: Vec<&str> = out.reports.iter().map(|r| r.rule.id()).collect();
        for rule in [
            "source-address",
            "allowed-namespaces",
            "source-timeout",
            "secret-namespace",
        ] {
            assert!(rules.contains(&rule), "{rule} not in {rules:?}");
        }
        assert!(
            !text(&out.reports).contains("user:pw"),
            "a credential is never echoed"
        );
    }

    #[test]
    fn yaml_errors_are_placed_where_the_parser_stopped() {
        let out = lint("a: 1\n---\nb: [1, 2\nc: 3\n");
        assert_eq!(out.reports.len(), 1);
        let r = &out.reports[0];
        assert_eq!(r.rule, Rule::YamlSyntax);
        assert!(r.pos.line >= 3, "{r:?}");
        assert!(r.message.contains("document 2 is not valid YAML"), "{r:?}");
    }

    fn sample() -> Vec<Report> {
        vec![Report {
            file: "./deploy/a b.yaml".into(),
            pos: Pos { line: 3, column: 7 },
            rule: Rule::PromqlSyntax,
            severity: Severity::Error,
            object: Some((
                "CustomScalingPolicy".into(),
                Some("ns".into()),
                "web".into(),
            )),
            field: "spec.metrics[0].query".into(),
            message: "100% wrong,\nreally: yes".into(),
        }]
    }

    #[test]
    fn text_and_github_formats_escape_and_place() {
        assert_eq!(
            text(&sample()),
            "./deploy/a b.yaml:3:7: error[promql-syntax]: CustomScalingPolicy ns/web: spec.metrics[0].query: 100% wrong,\nreally: yes\n"
        );
        assert_eq!(
            github(&sample()),
            "::error file=deploy/a b.yaml,line=3,col=7,title=ballast lint [promql-syntax]::CustomScalingPolicy ns/web: spec.metrics[0].query: 100%25 wrong,%0Areally: yes\n"
        );
    }

    #[test]
    fn json_lines_carry_every_field() {
        let line: Value =
            serde_json::from_str(json_lines(&sample()).trim()).expect("one JSON object");
        assert_eq!(line["file"], "./deploy/a b.yaml");
        assert_eq!(line["line"], 3);
        assert_eq!(line["column"], 7);
        assert_eq!(line["rule"], "promql-syntax");
        assert_eq!(line["severity"], "error");
        assert_eq!(line["kind"], "CustomScalingPolicy");
        assert_eq!(line["namespace"], "ns");
        assert_eq!(line["name"], "web");
        assert_eq!(line["field"], "spec.metrics[0].query");
    }

    #[test]
    fn sarif_points_at_the_repository_file_and_indexes_its_rule() {
        let log: Value = serde_json::from_str(&sarif(&sample())).expect("SARIF is JSON");
        let run = &log["runs"][0];
        let result = &run["results"][0];
        let index = result["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(run["tool"]["driver"]["rules"][index]["id"], "promql-syntax");
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "deploy/a%20b.yaml");
        assert_eq!(location["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(location["region"]["startLine"], 3);
        assert_eq!(artifact("/abs/x.yaml")["uri"], "file:///abs/x.yaml");
    }
}
