//! The `ballast` binary as a user runs it: `crd`, `lint` on the fixtures, and
//! `simulate` on the examples (checked against the engine's rules).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ballast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the ballast binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("fixture directory exists")
        .map(|e| e.expect("readable entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// The `# lint: <field>` line of a fixture.
fn expected_field(path: &Path) -> String {
    let body = fs::read_to_string(path).expect("fixture readable");
    body.lines()
        .find_map(|l| l.strip_prefix("# lint: "))
        .unwrap_or_else(|| panic!("{} has no `# lint:` line", path.display()))
        .trim()
        .to_string()
}

#[test]
fn crd_prints_exactly_what_crds_holds() {
    let out = ballast(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected = String::new();
    for name in ["customscalingpolicies.yaml", "clustermetricssources.yaml"] {
        let body = fs::read_to_string(root.join(name)).expect("crds/ file exists (run make crds)");
        expected.push_str("---\n");
        expected.push_str(&body);
    }
    assert_eq!(
        text(&out.stdout),
        expected,
        "crds/ drifted from the types: run `make crds`"
    );
    assert!(
        out.stdout.iter().all(|b| *b != 0x1b),
        "no ANSI escapes in the YAML"
    );
    for dir in ["crds", "deploy/crds", "charts/ballast/crds"] {
        let check = ballast(&["crd", "--check", dir]);
        assert!(check.status.success(), "{dir}: {}", text(&check.stderr));
    }
}

#[test]
fn crd_check_fails_when_a_file_differs() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("customscalingpolicies.yaml"), "stale").expect("write");
    let out = ballast(&["crd", "--check", dir.path().to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run `make crds`"),
        "{}",
        text(&out.stderr)
    );
}

/// One line of `ballast lint`'s text output: `file:line:col: severity[rule]: rest`.
#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    column: usize,
    severity: String,
    rule: String,
    rest: String,
}

fn findings(stdout: &str) -> Vec<Finding> {
    stdout
        .lines()
        .map(|l| {
            let (place, rest) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("not file:line:col: ...: {l}"));
            let mut parts = place.rsplitn(3, ':');
            let column = parts.next().and_then(|c| c.parse().ok());
            let line = parts.next().and_then(|c| c.parse().ok());
            let file = parts.next().unwrap_or_default().to_string();
            let (tag, rest) = rest
                .split_once("]: ")
                .unwrap_or_else(|| panic!("no rule: {l}"));
            let (severity, rule) = tag
                .split_once('[')
                .unwrap_or_else(|| panic!("no rule: {l}"));
            Finding {
                file,
                line: line.unwrap_or_else(|| panic!("no line: {l}")),
                column: column.unwrap_or_else(|| panic!("no column: {l}")),
                severity: severity.to_string(),
                rule: rule.to_string(),
                rest: rest.to_string(),
            }
        })
        .collect()
}

/// Whether the finding's line in `body` holds the field's key, or, for a field
/// that is missing, one of its parents' keys.
fn points_at(body: &str, finding: &Finding, field: &str) -> bool {
    let Some(text) = body.lines().nth(finding.line.saturating_sub(1)) else {
        return false;
    };
    field
        .split(['.', '['])
        .map(|k| k.trim_end_matches(']'))
        .filter(|k| !k.is_empty() && !k.bytes().all(|b| b.is_ascii_digit()))
        .any(|k| text.contains(k))
        && finding.column >= 1
        && finding.column <= text.chars().count()
}

#[test]
fn lint_refuses_every_invalid_fixture_and_places_its_field() {
    for file in fixtures("invalid") {
        let field = expected_field(&file);
        let body = fs::read_to_string(&file).expect("fixture readable");
        let out = ballast(&["lint", file.to_str().expect("utf-8 path")]);
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should fail lint:\n{stdout}",
            file.display()
        );
        let found = findings(&stdout);
        let named = found.iter().find(|f| {
            f.severity == "error"
                && [":", ".", " "]
                    .iter()
                    .any(|after| f.rest.contains(&format!(": {field}{after}")))
        });
        let Some(named) = named else {
            panic!(
                "{}: expected an error on {field}, got:\n{stdout}",
                file.display()
            );
        };
        assert_eq!(named.file, file.display().to_string(), "the file is named");
        assert!(
            points_at(&body, named, &field),
            "{}: {field} reported at {}:{}, which is not where it is:\n{stdout}",
            file.display(),
            named.line,
            named.column
        );
        assert!(!named.rule.is_empty(), "a rule id: {stdout}");
    }
}

/// Every error of a file with many, in one run, each at its place and rule.
#[test]
fn lint_reports_every_error_of_a_multi_error_file_in_one_run() {
    let file = "tests/fixtures/multi-error/policy.yaml";
    let body = fs::read_to_string(file).expect("fixture");
    let expected: Vec<(usize, usize, String, String)> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| {
            let mut words = l.split_whitespace();
            let place = words.next().expect("line:col");
            let (line, col) = place.split_once(':').expect("line:col");
            (
                line.parse().expect("line"),
                col.parse().expect("col"),
                words.next().expect("rule").to_string(),
                words.next().expect("field").to_string(),
            )
        })
        .collect();
    assert!(expected.len() >= 8, "the fixture lists its errors");
    let out = ballast(&["lint", file]);
    assert_eq!(out.status.code(), Some(1));
    let found: Vec<(usize, usize, String, String)> = findings(&text(&out.stdout))
        .into_iter()
        .map(|f| {
            let field = f.rest.split(": ").nth(1).unwrap_or_default().to_string();
            (f.line, f.column, f.rule, field)
        })
        .collect();
    assert_eq!(found, expected, "{}", text(&out.stdout));
}

#[test]
fn lint_passes_every_valid_fixture_even_when_strict() {
    for file in fixtures("valid") {
        let out = ballast(&["lint", "--strict", file.to_str().expect("utf-8 path")]);
        assert!(
            out.status.success(),
            "{} should pass:\n{}",
            file.display(),
            text(&out.stdout)
        );
        assert_eq!(text(&out.stdout), "", "no findings for {}", file.display());
    }
}

#[test]
fn lint_warns_about_foot_guns_and_fails_on_them_only_when_strict() {
    for file in fixtures("warnings") {
        let field = expected_field(&file);
        let path = file.to_str().expect("utf-8 path");
        let out = ballast(&["lint", path]);
        assert!(
            out.status.success(),
            "warnings alone pass: {}",
            text(&out.stdout)
        );
        assert!(
            findings(&text(&out.stdout))
                .iter()
                .any(|f| f.severity == "warning" && f.rest.contains(&format!(": {field}:"))),
            "{}: expected a warning on {field}, got {}",
            file.display(),
            text(&out.stdout)
        );
        let strict = ballast(&["lint", "--strict", path]);
        assert_eq!(strict.status.code(), Some(1));
    }
}

#[test]
fn lint_reads_directories_and_skips_other_kinds() {
    let out = ballast(&["lint", "tests/fixtures/valid", "examples"]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let summary = text(&out.stderr);
    // with-other-kinds.yaml holds a Deployment that is not counted.
    let valid = fixtures("valid").len();
    assert!(
        summary.contains(&format!("checked {} objects", valid + 5)),
        "{summary}"
    );
}

#[test]
fn lint_reports_broken_yaml_with_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broken.yaml");
    fs::write(&file, "kind: [unclosed\n").expect("write");
    let out = ballast(&["lint", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("broken.yaml"),
        "{}",
        text(&out.stdout)
    );
}

// ------------------------------------------------------------------ simulate

struct Row {
    fields: Vec<String>,
}

fn simulate_csv(
    policy: &str,
    series: &str,
    initial: &str,
    extra: &[&str],
) -> (Vec<String>, Vec<Row>) {
    let mut args = vec![
        "simulate",
        "--policy",
        policy,
        "--series",
        series,
        "--initial-replicas",
        initial,
        "--output",
        "csv",
    ];
    args.extend_from_slice(extra);
    let out = ballast(&args);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        text(&out.stderr)
    );
    let body = text(&out.stdout);
    let mut lines = body.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header")
        .split(',')
        .map(String::from)
        .collect();
    let rows = lines
        .map(|l| Row {
            fields: l.split(',').map(String::from).collect(),
        })
        .collect();
    (header, rows)
}

fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

fn num(row: &Row, i: usize) -> Option<f64> {
    row.fields[i].parse().ok()
}

#[test]
fn simulate_cache_example_follows_the_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("cache.svg");
    let (header, rows) = simulate_csv(
        "examples/cache-eviction/policy.yaml",
        "examples/cache-eviction/series.csv",
        "2",
        &["--plot", svg.to_str().expect("utf-8 path")],
    );
    assert_eq!(
        header.join(","),
        "time,evictions_raw,evictions_smoothed,recommended,replicas,reason"
    );
    let (t, raw, rec, rep, reason) = (
        col(&header, "time"),
        col(&header, "evictions_raw"),
        col(&header, "recommended"),
        col(&header, "replicas"),
        col(&header, "reason"),
    );
    let mut previous = 2.0;
    let mut peak_seen = false;
    let mut last_high: Option<f64> = None;
    let mut down_events: Vec<(f64, f64)> = vec![];
    for row in &rows {
        let time = num(row, t).expect("time");
        let replicas = num(row, rep).expect("replicas");
        assert!((2.0..=24.0).contains(&replicas), "bounds hold: {replicas}");
        if num(row, raw).is_none() {
            // A failed read holds the replicas and says why.
            assert_eq!(replicas, previous, "held at {time}");
            assert_eq!(row.fields[reason], "MetricsUnavailable");
        }
        if let Some(r) = num(row, rec)
            && r >= previous
        {
            last_high = Some(time);
        }
        if replicas > 10.0 {
            peak_seen = true;
        }
        if replicas < previous {
            // Scale-down: only once the 300 s window passed since a recommendation
            // that asked for at least the replicas then running.
            let high = last_high.expect("scaled down without ever being high");
            assert!(
                time - high >= 300.0,
                "scaled down at {time}, {}s after a high recommendation",
                time - high
            );
            down_events.push((time, previous - replicas));
        }
        previous = replicas;
    }
    assert!(peak_seen, "the spike scales the cache up");
    assert!(!down_events.is_empty(), "the recovery scales it down");
    assert_eq!(previous, 2.0, "back to minReplicas at the end");
    // The rate policy: at most 2 pods removed in any 60 s.
    for (time, _) in &down_events {
        let removed: f64 = down_events
            .iter()
            .filter(|(t2, _)| *t2 > time - 60.0 && t2 <= time)
            .map(|(_, n)| n)
            .sum();
        assert!(
            removed <= 2.0,
            "removed {removed} within 60 s before {time}"
        );
    }
    let svg = fs::read_to_string(&svg).expect("the plot is written");
    assert!(svg.starts_with("<svg"), "an SVG document");
    assert!(svg.contains("cache-eviction"), "titled with the policy");
    assert!(svg.contains("replicas"), "replicas are labelled");
    assert!(svg.contains("time (min)"), "the time axis is labelled");
}

#[test]
fn simulate_node_pool_example_keeps_nodes_ahead_of_the_workload() {
    let (header, rows) = simulate_csv(
        "examples/node-pool/policy.yaml",
        "examples/node-pool/series.csv",
        "4",
        &[],
    );
    assert_eq!(
        header.join(","),
        "time,requests_raw,requests_smoothed,recommended,replicas,nodes,reason"
    );
    let (t, rep, nodes) = (
        col(&header, "time"),
        col(&header, "replicas"),
        col(&header, "nodes"),
    );
    let needed = |r: f64| ((r / 8.0).ceil() + 1.0).clamp(1.0, 8.0);
    let mut previous_nodes = needed(4.0);
    let mut previous_replicas = 4.0;
    let mut shrink_times = vec![];
    let mut grew = false;
    for row in &rows {
        let time = num(row, t).expect("time");
        let r = num(row, rep).expect("replicas");
        let n = num(row, nodes).expect("nodes");
        assert!(n >= needed(r), "at {time}: {n} nodes for {r} replicas");
        assert!(
            n >= needed(previous_replicas),
            "at {time}: nodes dropped below the running workload"
        );
        if n > previous_nodes {
            grew = true;
        }
        if n < previous_nodes {
            shrink_times.push(time);
        }
        previous_nodes = n;
        previous_replicas = r;
    }
    assert!(grew, "the pool grows with the load");
    assert!(!shrink_times.is_empty(), "the pool shrinks after the load");
    assert_eq!(
        previous_nodes,
        needed(previous_replicas),
        "back to what the workload needs"
    );
}

#[test]
fn simulate_queue_example_takes_the_larger_of_two_metrics() {
    let (header, rows) = simulate_csv(
        "examples/queue-lag/policy.yaml",
        "examples/queue-lag/series.csv",
        "2",
        &[],
    );
    assert_eq!(
        header.join(","),
        "time,lag_raw,lag_smoothed,oldest-age_raw,oldest-age_smoothed,recommended,replicas,reason"
    );
    let rep = col(&header, "replicas");
    let max = rows.iter().filter_map(|r| num(r, rep)).fold(0.0, f64::max);
    assert!(max > 10.0 && max <= 30.0, "peak {max}");
}

#[test]
fn simulate_writes_json() {
    let out = ballast(&[
        "simulate",
        "--policy",
        "examples/queue-lag/policy.yaml",
        "--series",
        "examples/queue-lag/series.csv",
        "--initial-replicas",
        "2",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 81);
    assert!(rows[0]["metrics"]["lag"]["raw"].is_number());
    assert!(rows[0]["replicas"].is_u64());
}

fn simulate_error(policy: &str, csv: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let series = dir.path().join("s.csv");
    fs::write(&series, csv).expect("write");
    let out = ballast(&[
        "simulate",
        "--policy",
        policy,
        "--series",
        series.to_str().expect("utf-8 path"),
        "--initial-replicas",
        "2",
    ]);
    assert!(!out.status.success(), "should fail: {}", text(&out.stdout));
    text(&out.stderr)
}

#[test]
fn simulate_names_an_unknown_metric_column() {
    let err = simulate_error(
        "examples/cache-eviction/policy.yaml",
        "time,evictions,misses\n0,1,2\n",
    );
    assert!(
        err.contains("column \"misses\" is not a metric of the policy"),
        "{err}"
    );
    let err = simulate_error("examples/queue-lag/policy.yaml", "time,lag\n0,1\n");
    assert!(
        err.contains("no column for the policy's metric \"oldest-age\""),
        "{err}"
    );
}

#[test]
fn simulate_names_the_line_of_a_bad_number_or_a_backwards_time() {
    let err = simulate_error(
        "examples/cache-eviction/policy.yaml",
        "time,evictions\n0,1\n15,x1\n",
    );
    assert!(
        err.contains("s.csv: line 3, column \"evictions\": \"x1\" is not a number"),
        "{err}"
    );
    let err = simulate_error(
        "examples/cache-eviction/policy.yaml",
        "time,evictions\n30,1\n15,1\n",
    );
    assert!(
        err.contains("line 3: time \"15\" is not after the previous row"),
        "{err}"
    );
}

#[test]
fn simulate_refuses_a_policy_that_does_not_validate() {
    let err = simulate_error(
        "tests/fixtures/invalid/min-greater-than-max.yaml",
        "time,evictions\n0,1\n",
    );
    assert!(err.contains("does not validate"), "{err}");
    assert!(err.contains("spec.minReplicas"), "{err}");
}

#[test]
fn simulate_refuses_a_prometheus_range_too_long_for_its_step() {
    let out = ballast(&[
        "simulate",
        "--policy",
        "examples/cache-eviction/policy.yaml",
        "--prometheus",
        "http://127.0.0.1:1",
        "--from",
        "0",
        "--to",
        "now",
        "--step",
        "1s",
        "--initial-replicas",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("use a larger --step"),
        "{}",
        text(&out.stderr)
    );
}

fn ballast_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the ballast binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// `kustomize build . | ballast lint -`: stdin as a file named `<stdin>`.
#[test]
fn lint_reads_stdin() {
    let good = fs::read_to_string("examples/queue-lag/policy.yaml").expect("example");
    let out = ballast_stdin(&["lint", "-"], &good);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("checked 1 objects"),
        "{}",
        text(&out.stderr)
    );
    let bad =
        fs::read_to_string("tests/fixtures/invalid/min-greater-than-max.yaml").expect("fixture");
    let out = ballast_stdin(&["lint", "-"], &bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).starts_with("<stdin>:10:16: error[replica-bounds]: "),
        "{}",
        text(&out.stdout)
    );
}

/// A run that checked nothing is an error (exit 2), unless `--allow-empty`: an
/// empty directory, a glob the shell left unexpanded, stdin without our kinds.
#[test]
fn lint_with_nothing_to_check_fails_unless_allowed() {
    let empty = tempfile::tempdir().expect("temp dir");
    let dir = empty.path().to_str().expect("utf-8 path");
    let out = ballast(&["lint", dir]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("nothing to check"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        ballast(&["lint", "--allow-empty", dir]).status.code(),
        Some(0)
    );
    let out = ballast(&["lint", "policies/*.yaml"]);
    assert_eq!(out.status.code(), Some(2), "a path that does not exist");
    assert!(
        text(&out.stderr).contains("policies/*.yaml"),
        "{}",
        text(&out.stderr)
    );
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n";
    assert_eq!(ballast_stdin(&["lint", "-"], other).status.code(), Some(2));
}

#[test]
fn lint_help_documents_exit_codes_and_examples() {
    let out = ballast(&["lint", "--help"]);
    let help = text(&out.stdout);
    for needle in [
        "Exit codes: 0",
        "1 findings",
        "2 a usage or I/O error",
        "ballast lint -",
        "--allow-empty",
    ] {
        assert!(help.contains(needle), "no {needle:?} in:\n{help}");
    }
}

/// A rule whose message names its field (CEL's do) is not prefixed twice.
#[test]
fn lint_does_not_repeat_a_fields_prefix() {
    let source = "apiVersion: autoscaling.ballast.dev/v1alpha1\nkind: ClusterMetricsSource\nmetadata: {name: both}\nspec:\n  address: http://p:9090\n  allowedNamespaces: [a]\n  auth:\n    bearerToken: {name: s, namespace: ballast-system, key: t}\n    basic: {name: s, namespace: ballast-system}\n";
    let out = ballast_stdin(&["lint", "-"], source);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("error[source-auth]: ClusterMetricsSource both: spec.auth: set exactly one of bearerToken or basic"),
        "{stdout}"
    );
    assert!(!stdout.contains("spec.auth: spec.auth"), "{stdout}");
}

/// `ballast completions SHELL`: scripts that know the subcommands and flags; the
/// bash one is valid bash.
#[test]
fn completions_know_the_subcommands_and_bash_accepts_its_script() {
    let bash = ballast(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    for word in ["lint", "simulate", "--allow-empty", "completions"] {
        assert!(script.contains(word), "no {word} in the bash completions");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("ballast.bash");
    fs::write(&file, &script).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash runs");
    assert!(syntax.status.success(), "bash -n: {}", text(&syntax.stderr));
    assert!(text(&ballast(&["completions", "zsh"]).stdout).starts_with("#compdef ballast"));
    assert!(text(&ballast(&["completions", "fish"]).stdout).contains("complete -c ballast"));
    let bad = ballast(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("tcsh"), "{}", text(&bad.stderr));
}

/// Every subcommand's help has examples and keeps the global flags apart; each
/// example parses as the command line it claims to be.
#[test]
fn every_subcommand_has_examples_that_parse() {
    use clap::{CommandFactory as _, Parser as _};
    let commands: Vec<String> = ballast::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .filter(|n| n != "help")
        .collect();
    assert!(commands.len() >= 8, "{commands:?}");
    let mut parsed = 0;
    for name in &commands {
        let out = ballast(&[name, "--help"]);
        let help = text(&out.stdout);
        assert!(out.status.success(), "{name} --help: {}", text(&out.stderr));
        assert!(
            help.contains("\nExamples:\n"),
            "{name} --help has no examples:\n{help}"
        );
        assert!(
            help.contains("\nGlobal options:\n") && help.contains("--log <LOG>"),
            "{name} --help groups the global flags:\n{help}"
        );
        let examples = help.split("\nExamples:\n").nth(1).unwrap_or_default();
        for line in examples
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("ballast "))
        {
            // Up to a pipe, a redirection or a comment; after any VAR=value prefix.
            let Some(command) = line.split('|').find(|part| part.contains("ballast ")) else {
                continue;
            };
            let command = command.split(['>', '#']).next().unwrap_or_default();
            let Some(start) = command.find("ballast ") else {
                continue;
            };
            let command = &command[start..];
            let words = shell_words(command);
            if let Err(err) = ballast::cli::Cli::try_parse_from(&words) {
                panic!("{name}: the example {line:?} does not parse: {err}");
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 2 * commands.len(), "{parsed} examples");
}

/// Split a command line on spaces, keeping single-quoted words whole.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    words.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

#[test]
fn version_names_the_commit_and_date() {
    let out = ballast(&["--version"]);
    let version = text(&out.stdout);
    let expected = format!("ballast {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&expected), "{version}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let head = text(&head.stdout);
    assert!(
        version.contains(&format!("commit {}, ", head.trim())),
        "the commit built from ({}): {version}",
        head.trim()
    );
    let date = version
        .trim()
        .rsplit(", ")
        .next()
        .and_then(|d| d.strip_suffix(')'))
        .unwrap_or_default();
    assert!(
        jiff::civil::Date::strptime("%Y-%m-%d", date).is_ok(),
        "a date: {version}"
    );
}

/// `ballast explain -f --series`: the decision at a row, in words, agreeing with
/// `ballast simulate` on the same replay (the replicas, the reason, the values).
#[test]
fn explain_offline_agrees_with_simulate_row_by_row() {
    let policy = "examples/queue-lag/policy.yaml";
    let series = "examples/queue-lag/series.csv";
    let sim = ballast(&[
        "simulate",
        "--policy",
        policy,
        "--series",
        series,
        "--initial-replicas",
        "2",
        "--output",
        "csv",
    ]);
    assert!(sim.status.success(), "{}", text(&sim.stderr));
    let csv = text(&sim.stdout);
    let header: Vec<&str> = csv.lines().next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    // The last row, and every 7th: scale-ups, holds and scale-downs among them.
    let mut picked: Vec<usize> = (0..rows.len()).step_by(7).collect();
    picked.push(rows.len() - 1);
    let mut reasons = std::collections::BTreeSet::new();
    for i in picked {
        let row = &rows[i];
        let at = row[0].clone();
        let out = ballast(&[
            "explain",
            "-f",
            policy,
            "--series",
            series,
            "--initial-replicas",
            "2",
            "--at",
            &at,
        ]);
        let explained = text(&out.stdout);
        assert!(out.status.success(), "--at {at}: {}", text(&out.stderr));
        let replicas = &row[col("replicas")];
        let reason = &row[col("reason")];
        assert!(
            explained.contains(&format!("Result: {replicas} replicas")),
            "row {at}: simulate says {replicas}:\n{explained}"
        );
        assert!(
            explained.contains(&format!("({reason})")),
            "row {at}: simulate says {reason}:\n{explained}"
        );
        let recommended = &row[col("recommended")];
        if !recommended.is_empty() {
            assert!(
                explained.contains(&format!("Recommendation: {recommended}")),
                "row {at}:\n{explained}"
            );
        }
        reasons.insert(reason.clone());
    }
    assert!(
        reasons.len() >= 3,
        "the rows cover several reasons: {reasons:?}"
    );
    let out = ballast(&[
        "explain",
        "-f",
        policy,
        "--series",
        series,
        "--at",
        "no-such-row",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--at no-such-row: no row of"),
        "{}",
        text(&out.stderr)
    );
}

/// `ballast simulate` replays schedules at each row's time: numeric rows count
/// from `--start`; the CSV names the active window; the replicas sit on its floor
/// while it lasts and come down through the scale-down window after it; the plot
/// shades it.
#[test]
fn simulate_replays_a_schedule_from_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = dir.path().join("policy.yaml");
    fs::write(
        &policy,
        "apiVersion: autoscaling.ballast.dev/v1alpha1
kind: CustomScalingPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 20
  pollInterval: 60s
  metrics:
    - name: rps
      query: sum(rate(http_requests_total[1m]))
      target: {type: AverageValue, averageValue: '100'}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 300}
  schedules:
    - {name: morning, cron: '0 8 * * 1-5', timezone: Europe/Berlin, duration: 1h, minReplicas: 12}
",
    )
    .expect("write");
    // 06:00 to 09:59 UTC on Monday 2026-11-30, one row a minute, a flat 200 rps.
    let mut csv = String::from("time,rps\n");
    for minute in 0..240 {
        csv.push_str(&format!("{},200\n", minute * 60));
    }
    let series = dir.path().join("series.csv");
    fs::write(&series, csv).expect("write");
    let svg = dir.path().join("plot.svg");
    let (header, rows) = simulate_csv(
        policy.to_str().expect("utf-8"),
        series.to_str().expect("utf-8"),
        "2",
        &[
            "--start",
            "2026-11-30T06:00:00Z",
            "--plot",
            svg.to_str().expect("utf-8"),
        ],
    );
    let (replicas, schedules) = (col(&header, "replicas"), col(&header, "schedules"));
    // 08:00 in Berlin is 07:00 UTC: minute 60 of the series.
    for (i, row) in rows.iter().enumerate() {
        let active = row.fields[schedules] == "morning";
        assert_eq!(active, (60..120).contains(&i), "row {i}: {:?}", row.fields);
        let r = num(row, replicas).expect("replicas");
        match i {
            0..60 => assert_eq!(r, 2.0, "row {i}"),
            60..120 => assert_eq!(r, 12.0, "row {i}: the floor at once, held"),
            // The window ended: held by the 300 s scale-down window, then down.
            120..124 => assert_eq!(r, 12.0, "row {i}: no cliff at the window's end"),
            _ => {}
        }
    }
    assert_eq!(num(&rows[239], replicas), Some(2.0));
    let plot = fs::read_to_string(&svg).expect("the plot");
    assert!(
        plot.contains("schedule window"),
        "the window is in the legend"
    );
}

/// examples/ramp/README.md's table is what `ballast simulate` prints for the ramp
/// with and without the lookahead, and the lookahead spends less time short.
#[test]
fn the_ramp_examples_figures_are_what_simulate_prints() {
    let policy = fs::read_to_string("examples/ramp/policy.yaml").expect("policy");
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = dir.path().join("plain.yaml");
    let without: String = policy
        .lines()
        .filter(|l| !l.contains("lookahead") && !l.contains("# Scale on where"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, policy, "the example has a lookahead to remove");
    fs::write(&plain, without).expect("write");
    let figures = |policy: &str| -> (u64, u64) {
        let out = ballast(&[
            "simulate",
            "--policy",
            policy,
            "--series",
            "examples/ramp/series.csv",
            "--initial-replicas",
            "2",
            "--ready-delay",
            "60s",
            "--output",
            "csv",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stderr = text(&out.stderr).trim().to_string();
        let number = |word: &str| -> u64 {
            stderr
                .split(", ")
                .flat_map(|part| part.split(": "))
                .find_map(|part| part.strip_suffix(word))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {word:?} figure in {stderr}"))
        };
        (
            number(" replica-seconds short"),
            number(" replica-seconds spare"),
        )
    };
    let (short_plain, spare_plain) = figures(plain.to_str().expect("utf-8"));
    let (short_ahead, spare_ahead) = figures("examples/ramp/policy.yaml");
    assert!(
        short_ahead * 2 < short_plain,
        "the lookahead halves the time short: {short_ahead} vs {short_plain}"
    );
    let readme = fs::read_to_string("examples/ramp/README.md").expect("README");
    for row in [
        format!("| `smoothing: {{halfLife: 30s}}` | {short_plain} | {spare_plain} |"),
        format!(
            "| `smoothing: {{halfLife: 30s, lookahead: 60s}}` | {short_ahead} | {spare_ahead} |"
        ),
    ] {
        assert!(
            readme.contains(&row),
            "examples/ramp/README.md lacks {row:?}"
        );
    }
}

/// Every source in docs/sources.md is one `ballast lint --strict` (and so the
/// webhook) accepts, and there is one per backend the page promises.
#[test]
fn the_sources_page_examples_lint_clean() {
    let page = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sources.md"))
        .expect("docs/sources.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 5, "{} YAML examples", blocks.len());
    for block in &blocks {
        let out = ballast_stdin(&["lint", "--strict", "-"], block);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{block}\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let all = blocks.join("\n");
    for needle in [
        "tenant: team-a",
        "dedup:",
        "/select/42/prometheus",
        "clientCertificate",
        "bearerToken",
    ] {
        assert!(all.contains(needle), "no example with {needle}");
    }
}
