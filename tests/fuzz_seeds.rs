//! The fuzz targets' seed corpora replayed as ordinary tests: every seed in
//! `fuzz/seeds/<target>/` goes through the same `fuzz_one` (and so the same asserted
//! properties) that `fuzz/run` runs under libFuzzer. This runs in `make unit` on
//! the stable toolchain, in seconds; coverage-guided runs are `make fuzz`.

use std::path::{Path, PathBuf};

#[path = "../fuzz/fuzz_targets/admission_review.rs"]
mod admission_review;
#[path = "../fuzz/fuzz_targets/engine_decide.rs"]
mod engine_decide;
#[path = "../fuzz/fuzz_targets/policy_yaml.rs"]
mod policy_yaml;
#[path = "../fuzz/fuzz_targets/prometheus_response.rs"]
mod prometheus_response;

/// Every file under `fuzz/seeds/<target>/` (and the crash reproducers under
/// `fuzz/regressions/<target>/`, when there are any), sorted.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in [
        root.join("seeds").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("reading a seed directory").path();
            if path.is_file() {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

fn replay(target: &str, fuzz_one: fn(&[u8])) {
    let seeds = inputs(target);
    assert!(
        seeds.len() >= 5,
        "fuzz/seeds/{target}/ has {} files; the corpus is missing",
        seeds.len()
    );
    for (path, bytes) in &seeds {
        // A panic names the seed that caused it.
        let outcome = std::panic::catch_unwind(|| fuzz_one(bytes));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
    }
}

#[test]
fn policy_yaml_seeds() {
    replay("policy_yaml", policy_yaml::fuzz_one);
}

#[test]
fn prometheus_response_seeds() {
    replay("prometheus_response", prometheus_response::fuzz_one);
}

#[test]
fn engine_decide_seeds() {
    replay("engine_decide", engine_decide::fuzz_one);
}

#[test]
fn admission_review_seeds() {
    replay("admission_review", admission_review::fuzz_one);
}
