//! Finding the `faultline-node` binary to upload: given, next to the running executable,
//! or built with cargo from this workspace.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const NODE_BINARY: &str = "faultline-node";

/// `explicit` if given; else the `FAULTLINE_NODE_BINARY` environment variable; else a
/// `faultline-node` beside the current executable (or one folder up, where cargo puts
/// binaries relative to test executables in `deps/`); else `cargo build -p faultline-node`
/// in the workspace this crate was built from.
pub fn find_node_binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        anyhow::ensure!(
            path.is_file(),
            "--node-binary {} does not exist",
            path.display()
        );
        return Ok(path.to_owned());
    }
    if let Some(path) = std::env::var_os("FAULTLINE_NODE_BINARY") {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "FAULTLINE_NODE_BINARY={} does not exist",
            path.display()
        );
        return Ok(path);
    }
    if let Some(found) = beside_current_exe(NODE_BINARY) {
        return Ok(found);
    }
    build_with_cargo("faultline-node", NODE_BINARY)
}

/// The binary named by the environment variable `env_var` if set; else `binary` beside the
/// current executable (where `cargo test` puts the workspace's binaries it built in the
/// same invocation); else built with cargo. What tests use.
pub fn env_or_build(env_var: &str, package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        anyhow::ensure!(
            path.is_file(),
            "{env_var}={} does not exist",
            path.display()
        );
        return Ok(path);
    }
    match beside_current_exe(binary) {
        Some(path) => Ok(path),
        None => build_with_cargo(package, binary),
    }
}

/// A binary named `name` in the current executable's folder or its parent.
pub fn beside_current_exe(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found
}

/// The workspace root this crate was compiled in, if it is still there.
fn workspace_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
    root.join("Cargo.toml").is_file().then_some(root)
}

/// Builds `package` with the same profile as this build, into the same target folder
/// (`CARGO_TARGET_DIR` or the workspace's `target/`; cargo releases its lock while tests
/// run, so this works inside `cargo test`). Returns the path of `binary`.
pub fn build_with_cargo(package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    let root = workspace_root().with_context(|| {
        format!("no {binary} found beside this program and no workspace to build it in; pass --node-binary")
    })?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "-p", package, "--bin", binary])
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null());
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        command.arg("--release");
        "release"
    };
    let status = command
        .status()
        .with_context(|| format!("running cargo to build {package}"))?;
    anyhow::ensure!(
        status.success(),
        "cargo build -p {package} failed ({status})"
    );
    let path = target.join(profile).join(binary);
    anyhow::ensure!(
        path.is_file(),
        "cargo built {package} but {} is missing",
        path.display()
    );
    Ok(path)
}
