//! Shared by the integration tests that run a Go tool of the harness.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tool of the wrapper module `dir` (e2e/tool builds it once per pin set,
/// then every call returns the cached binary).
pub fn go_tool(dir: &str) -> PathBuf {
    let out = Command::new(root().join("e2e/tool"))
        .arg(dir)
        .current_dir(root())
        .output()
        .expect("e2e/tool runs");
    assert!(
        out.status.success(),
        "building {dir} with e2e/tool failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).expect("a UTF-8 path").trim())
}
