//! Stamps the binary with the commit and date it was built from, for
//! `ballast --version`: `0.1.0 (commit 1a2b3c4d5e6f, 2026-12-01)`.
//!
//! The commit comes from `BALLAST_COMMIT` (deploy/Dockerfile passes it as a build
//! argument: its context has no .git), else from git. The date is the source's, not
//! the clock's, so that a commit always builds the same binary and image digest:
//! `SOURCE_DATE_EPOCH` (the reproducible-builds convention) when set, else the
//! commit's date. Either is `unknown` when it cannot be had; the build never fails
//! for it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// `YYYY-MM-DD` of a Unix time (proleptic Gregorian, UTC).
fn date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() {
    println!("cargo:rerun-if-env-changed=BALLAST_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit or checkout moves HEAD or the branch it points to.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = PathBuf::from(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("packed-refs").display()
        );
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(reference).display());
        }
    }
    let commit = std::env::var("BALLAST_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|e| e.trim().parse::<i64>().ok())
        .or_else(|| git(&["log", "-1", "--format=%ct"]).and_then(|e| e.parse().ok()));
    let date = epoch.map_or_else(|| "unknown".into(), date);
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=BALLAST_COMMIT={commit}");
    println!("cargo:rustc-env=BALLAST_BUILD_DATE={date}");
    println!("cargo:rustc-env=BALLAST_LONG_VERSION={version} (commit {commit}, {date})");
}
