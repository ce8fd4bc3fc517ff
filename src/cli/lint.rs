//! `ballast lint`: check policy files offline, for GitOps CI. Multi-document YAML,
//! directories searched for `*.yaml`/`*.yml`, `-` for stdin, objects of other
//! kinds skipped. Each problem is printed as `file: Kind/name: severity: field:
//! message`. Exit 0 clean, 1 findings, 2 usage or I/O errors or nothing checked.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::LintArgs;
use crate::api::documents::{Document, lint_document, parse_documents};
use crate::api::validation::Severity;

/// The YAML documents of a file (`-`: stdin), empty documents skipped.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading stdin")?
    } else {
        fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    parse_documents(&text).with_context(|| format!("parsing {}", shown(path)))
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
                println!("{}: error: {err:#}", shown(file));
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
                    shown(file),
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
    if objects == 0 && errors == 0 && !args.allow_empty {
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
