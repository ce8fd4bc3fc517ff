//! `ballast lint` where CI runs it: the machine-readable formats (SARIF validated
//! against the OASIS schema with Python's `jsonschema`), the GitHub Actions example
//! in docs/ci/ run step by step against this commit's binary, and the pre-commit
//! hook run by pre-commit on staged files in a temporary git repository.
//! `make unit` installs pre-commit and python3-jsonschema (Debian) when missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ballast(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(root())
        .output()
        .expect("the ballast binary runs")
}

const INPUTS: [&str; 3] = [
    "tests/fixtures/invalid",
    "tests/fixtures/warnings",
    "tests/fixtures/multi-error",
];

/// Validate `document` against the SARIF 2.1.0 schema; the validator's message
/// when it does not.
fn sarif_errors(document: &Path) -> String {
    let script = "import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
log = json.load(open(sys.argv[2]))
errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(log), key=lambda e: list(e.path))
for e in errors[:5]:
    print('/'.join(map(str, e.path)), e.message)
";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root().join("tests/fixtures/sarif/sarif-schema-2.1.0.json"))
        .arg(document)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 with jsonschema (Debian: python3-jsonschema; make unit installs it): {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn sarif_validates_against_the_schema_and_holds_every_finding() {
    let mut args = vec!["lint", "--format", "sarif"];
    args.extend(INPUTS);
    let out = ballast(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ballast.sarif");
    fs::write(&file, &out.stdout).expect("write");
    let errors = sarif_errors(&file);
    assert_eq!(errors, "", "the SARIF log breaks the schema");

    // The same findings as the text format, at the same places.
    let mut text_args = vec!["lint"];
    text_args.extend(INPUTS);
    let plain = text(&ballast(&text_args).stdout);
    let log: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), plain.lines().count());
    for (result, line) in results.iter().zip(plain.lines()) {
        let location = &result["locations"][0]["physicalLocation"];
        let place = format!(
            "{}:{}:{}: ",
            location["artifactLocation"]["uri"]
                .as_str()
                .expect("uri")
                .replace("%20", " "),
            location["region"]["startLine"],
            location["region"]["startColumn"]
        );
        assert!(line.starts_with(&place), "{place} vs {line}");
        assert!(
            line.contains(&format!("[{}]", result["ruleId"].as_str().expect("ruleId"))),
            "{line}"
        );
    }
    // A broken SARIF log is caught: the check can fail.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    fs::write(&file, broken.to_string()).expect("write");
    assert_ne!(
        sarif_errors(&file),
        "",
        "a bad level is refused by the schema"
    );
}

#[test]
fn json_lines_match_the_text_findings() {
    let mut args = vec!["lint", "--format", "json"];
    args.extend(INPUTS);
    let out = ballast(&args);
    assert_eq!(out.status.code(), Some(1));
    let mut text_args = vec!["lint"];
    text_args.extend(INPUTS);
    let plain = text(&ballast(&text_args).stdout);
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), plain.lines().count());
    for (finding, line) in lines.iter().zip(plain.lines()) {
        let place = format!(
            "{}:{}:{}: {}[{}]: ",
            finding["file"].as_str().expect("file"),
            finding["line"],
            finding["column"],
            finding["severity"].as_str().expect("severity"),
            finding["rule"].as_str().expect("rule"),
        );
        assert!(line.starts_with(&place), "{place} vs {line}");
        assert!(line.contains(finding["message"].as_str().expect("message")));
        assert!(finding["kind"].is_string() && finding["name"].is_string());
    }
}

/// docs/ci/github-actions.yml, step by step: each `run:` that calls the image
/// runs this commit's binary instead, in a checkout holding a bad policy.
#[test]
fn the_github_actions_example_annotates_and_writes_valid_sarif() {
    let workflow: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(root().join("docs/ci/github-actions.yml")).expect("the example"),
    )
    .expect("the example is YAML");
    let env = &workflow["env"];
    let policies = env["POLICIES"].as_str().expect("env.POLICIES");
    let image = env["BALLAST_IMAGE"].as_str().expect("env.BALLAST_IMAGE");
    let version = format!(":v{}", env!("CARGO_PKG_VERSION"));
    assert!(
        image.ends_with(&version),
        "the example pins this release's image"
    );
    let checkout = tempfile::tempdir().expect("temp dir");
    let dir = checkout.path().join(policies);
    fs::create_dir_all(&dir).expect("mkdir");
    fs::copy(
        root().join("tests/fixtures/multi-error/policy.yaml"),
        dir.join("web.yaml"),
    )
    .expect("copy");
    fs::copy(
        root().join("tests/fixtures/valid/full.yaml"),
        dir.join("ok.yaml"),
    )
    .expect("copy");

    let steps = workflow["jobs"]["lint"]["steps"]
        .as_sequence()
        .expect("steps");
    let mut ran = 0;
    for step in steps {
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        if run.contains("kustomize build") {
            // Needs a kustomization; stdin itself is covered in tests/cli.rs.
            continue;
        }
        let (before, after) = run
            .split_once("\"$BALLAST_IMAGE\"")
            .expect("each run step calls the image");
        let docker = before.rfind("docker run").expect("docker run");
        let command = format!("{}'{BIN}'{after}", &before[..docker]);
        let out = Command::new("bash")
            .args(["-c", &command])
            .current_dir(checkout.path())
            .env("POLICIES", policies)
            .output()
            .expect("bash runs");
        let stdout = text(&out.stdout);
        ran += 1;
        if run.contains("--format github") {
            assert_eq!(out.status.code(), Some(1), "the job fails on errors");
            assert!(
                stdout.contains(
                    "::error file=policies/web.yaml,line=17,col=16,title=ballast lint [type]::"
                ),
                "{stdout}"
            );
        } else if run.contains("--format sarif") {
            assert!(out.status.success(), "{}", text(&out.stderr));
            let sarif = checkout.path().join("ballast.sarif");
            assert_eq!(sarif_errors(&sarif), "");
            let log: Value =
                serde_json::from_slice(&fs::read(&sarif).expect("written")).expect("JSON");
            let uri = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
                ["uri"];
            assert_eq!(uri, "policies/web.yaml", "relative to the repository");
        }
    }
    assert_eq!(ran, 2, "both image steps ran");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
}

/// The hook of `.pre-commit-hooks.yaml`, run by pre-commit on staged files: its
/// entry (with this commit's binary for `ballast`), file types and arguments as
/// published. Only `language: rust` (cargo install of this repository) is replaced
/// by `system`, which would take minutes here.
#[test]
fn the_pre_commit_hook_fails_a_bad_policy_and_passes_a_good_one() {
    let hooks: serde_yaml::Value = serde_yaml::from_str(
        &fs::read_to_string(root().join(".pre-commit-hooks.yaml")).expect("hooks file"),
    )
    .expect("YAML");
    let hook = hooks
        .as_sequence()
        .and_then(|h| h.iter().find(|h| h["id"] == "ballast-lint"))
        .expect("the ballast-lint hook");
    assert_eq!(hook["language"], "rust");
    let entry = hook["entry"].as_str().expect("entry");
    let args = entry.strip_prefix("ballast ").expect("entry runs ballast");
    let types: Vec<&str> = hook["types"]
        .as_sequence()
        .expect("types")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();

    let repo = tempfile::tempdir().expect("temp dir");
    let dir = repo.path();
    git(dir, &["init", "-q"]);
    git(dir, &["config", "user.email", "ci@example.com"]);
    git(dir, &["config", "user.name", "ci"]);
    let config = format!(
        "repos:\n  - repo: local\n    hooks:\n      - id: ballast-lint\n        name: {}\n        entry: {}\n        language: system\n        types: [{}]\n",
        hook["name"].as_str().expect("name"),
        serde_json::Value::from(format!("'{BIN}' {args}")),
        types.join(", ")
    );
    fs::write(dir.join(".pre-commit-config.yaml"), config).expect("write");
    fs::write(dir.join("README.md"), "not YAML: the hook skips it\n").expect("write");
    fs::write(
        dir.join("web.yaml"),
        fs::read_to_string(root().join("tests/fixtures/multi-error/policy.yaml")).expect("fixture"),
    )
    .expect("write");
    git(dir, &["add", "."]);
    let cache = dir.join(".cache-pre-commit");
    let pre_commit = || {
        Command::new("pre-commit")
            .args(["run", "--color", "never"])
            .current_dir(dir)
            .env("PRE_COMMIT_HOME", &cache)
            .output()
            .expect("pre-commit runs (Debian: pre-commit; make unit installs it)")
    };
    let out = pre_commit();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("web.yaml:17:16: error[type]: "),
        "the finding with its place: {stdout}"
    );

    // Fixed and staged again: the commit may go ahead.
    fs::copy(
        root().join("tests/fixtures/valid/full.yaml"),
        dir.join("web.yaml"),
    )
    .expect("copy");
    git(dir, &["add", "web.yaml"]);
    let passes = |out: Output| {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    };
    passes(pre_commit());

    // A commit of other YAML only is not "nothing checked".
    git(dir, &["commit", "-q", "--no-verify", "-m", "policies"]);
    fs::write(
        dir.join("values.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .expect("write");
    git(dir, &["add", "values.yaml"]);
    passes(pre_commit());
}
