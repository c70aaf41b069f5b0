//! The guest modules of `functions/`, built once per test run for wasm32-wasip1 (into
//! `target/guests`), and the hand-written WAT guests of `functions-runtime/tests/wat/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("edge-agent lives in the workspace")
        .to_path_buf()
}

fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib/wasm32-wasip1")
        .is_dir()
}

/// Builds `functions/` once; `Err` says why there are no guests.
fn build() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        if !target_installed() {
            return Err(
                "the wasm32-wasip1 target is not installed (`rustup target add wasm32-wasip1`)"
                    .into(),
            );
        }
        let root = repo_root();
        let target_dir = root.join("target/guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(root.join("functions"))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-wasip1",
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building functions/ failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target_dir.join("wasm32-wasip1/release"))
    })
}

/// The module of example `name` (`hello`, `classify-digits`, `limits`). `None` (after saying
/// why) only when `CI` is unset and the wasm32-wasip1 target is missing; in CI a missing
/// target fails the test.
pub fn guest(name: &str) -> Option<Vec<u8>> {
    match build() {
        Ok(dir) => {
            let file = name.replace('-', "_");
            let path = [
                dir.join(format!("{name}.wasm")),
                dir.join(format!("{file}.wasm")),
            ]
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("no module for `{name}` in {}", dir.display()));
            Some(std::fs::read(path).unwrap())
        }
        Err(why) if std::env::var_os("CI").is_none() && !target_installed() => {
            inference::test_support::skipped(&format!("guest `{name}`"), why);
            None
        }
        Err(why) => panic!("{why}"),
    }
}

/// A WAT guest of `functions-runtime/tests/wat/`.
pub fn wat(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../functions-runtime/tests/wat")
            .join(name),
    )
    .unwrap()
}
