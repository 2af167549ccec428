//! Runs the Python module's unittest suite (python/tests) with our library against our daemon,
//! which the suite starts itself from `SPREAD_DAEMON_BIN` on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cdylib cargo built with this test: `cargo test` leaves it in deps/ beside the test
/// binary (only `cargo build` copies it up to target/<profile>/, where it may be stale).
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps directory");
    [deps, deps.parent().expect("profile directory")]
        .iter()
        .map(|dir| dir.join("libspread.so"))
        .find(|lib| lib.exists())
        .expect("libspread.so built beside the test binary")
}

#[test]
fn python_module_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Each test binary runs alone, but other test binaries' daemons may hold low ports: start
    // the search at a port derived from this process.
    let first_port = 31_000 + (std::process::id() % 1000) * 2;
    let output = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "python/tests", "-t", "python"])
        .current_dir(root)
        .env("SPREAD_LIB", built_library())
        .env("SPREAD_DAEMON_BIN", env!("CARGO_BIN_EXE_spread"))
        .env("SPREAD_TEST_PORT", first_port.to_string())
        .env_remove("SPREAD_TEST_DAEMON")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python tests failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    // unittest reports "Ran N tests" on stderr; make sure the suite was not empty.
    let ran = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran > 0, "the python suite ran no test:\n{stderr}");
}
