//! Runs the Python module's unittest suite (python/tests) with our library against our daemon,
//! which the suite starts itself from `SPREAD_DAEMON_BIN` on a free loopback port.

mod support;

use std::path::Path;
use std::process::Command;

use support::{built_library, free_port};

#[test]
fn python_module_suite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The suite searches upwards from here for ports its daemons can use.
    let first_port = free_port();
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
