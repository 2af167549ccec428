//! Builds each C program of `c-tests/` against our `include/` and the `libspread.so` cargo
//! built, runs it against a daemon of its own, and requires it to pass.
//!
//! Interoperability runs against other builds (e.g. the original Spread 5.0.1):
//! `SPREAD_TEST_DAEMON` (daemon program), `SPREAD_TEST_LIBDIR` (directory holding
//! `libspread.so`), `SPREAD_TEST_INCLUDE` (directory holding `sp.h`),
//! `SPREAD_TEST_DAEMON_ORIGINAL=1` (the daemon is the original: its configuration lines and
//! its /tmp socket directory), `SPREAD_TEST_SOCKET_DIR` (fixed socket directory, e.g. /tmp
//! for the original library with our daemon), and `SPREAD_TEST_ORIGINAL=1` (passed to the
//! programs: skip the checks the original library or daemon is known to fail). `SPREAD_TEST_PORTS=LOW-HIGH` limits the daemons' ports.

mod support;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use support::{built_library, free_port, show, Daemon, DaemonKind, TempDir};

const PROGRAM_TIMEOUT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Where the library, headers and daemon under test are.
struct Build {
    include: PathBuf,
    libdir: PathBuf,
    daemon: DaemonKind,
    _links: Option<TempDir>,
}

/// Our build: the cdylib cargo built with this test, our include/ and the `spread` binary;
/// or the overrides from the environment.
fn build() -> Build {
    let include = env_path("SPREAD_TEST_INCLUDE").unwrap_or_else(|| repo().join("include"));
    let daemon =
        env_path("SPREAD_TEST_DAEMON").unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_spread")));
    assert!(include.join("sp.h").exists(), "no sp.h in {}", include.display());
    assert!(daemon.exists(), "no daemon at {}", daemon.display());
    let (libdir, links) = match env_path("SPREAD_TEST_LIBDIR") {
        Some(dir) => (dir, None),
        None => {
            let built = built_library();
            // Programs link against -lspread and load the SONAME libspread.so.3.
            let links = TempDir::new("ctest-lib");
            symlink(&built, links.path().join("libspread.so")).expect("symlink libspread.so");
            symlink(&built, links.path().join("libspread.so.3")).expect("symlink libspread.so.3");
            (links.path().to_path_buf(), Some(links))
        }
    };
    Build {
        include,
        libdir,
        daemon: DaemonKind {
            program: daemon,
            original: env_flag("SPREAD_TEST_DAEMON_ORIGINAL"),
            socket_dir: env_path("SPREAD_TEST_SOCKET_DIR"),
        },
        _links: links,
    }
}

fn compile(build: &Build, program: &str, out_dir: &Path) -> PathBuf {
    let source = repo().join("c-tests").join(format!("{program}.c"));
    let binary = out_dir.join(program);
    let output = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-O1"])
        .arg("-I")
        .arg(&build.include)
        .arg("-I")
        .arg(repo().join("c-tests"))
        .arg(&source)
        .arg("-o")
        .arg(&binary)
        .arg("-L")
        .arg(&build.libdir)
        .args(["-lspread", "-lpthread"])
        .output()
        .expect("run cc");
    assert!(
        output.status.success(),
        "compiling {program} failed\n{}",
        show(&output)
    );
    binary
}

/// Waits for the program, killing it after `limit`.
fn wait_with_timeout(mut child: Child, limit: Duration) -> (Output, bool) {
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() >= deadline {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().expect("collect output"), timed_out)
}

/// Compiles and runs one c-tests program; `needs_daemon` starts a daemon for it.
fn run_c_test(program: &str, needs_daemon: bool) {
    let build = build();
    let work = TempDir::new("ctest");
    let binary = compile(&build, program, work.path());
    let mut daemon = needs_daemon.then(|| Daemon::start(&build.daemon));

    let mut cmd = Command::new(&binary);
    cmd.env("LD_LIBRARY_PATH", &build.libdir)
        .env(
            "SPREAD_TEST_ORIGINAL",
            if env_flag("SPREAD_TEST_ORIGINAL") {
                "1"
            } else {
                "0"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match &daemon {
        Some(d) => cmd
            .arg(d.port.to_string())
            .env("SPREAD_SOCKET_DIR", &d.socket_dir),
        // Programs that play the daemon themselves still get a port and socket dir of their own.
        None => cmd.arg(free_port().to_string()).env(
            "SPREAD_SOCKET_DIR",
            build
                .daemon
                .fixed_socket_dir()
                .unwrap_or_else(|| work.path().to_path_buf()),
        ),
    };
    let child = cmd.spawn().expect("start test program");
    let (output, timed_out) = wait_with_timeout(child, PROGRAM_TIMEOUT);

    let daemon_state = match daemon.as_mut() {
        Some(d) => {
            let state = if d.is_running() {
                "daemon log"
            } else {
                "the daemon DIED; its log"
            };
            format!("{state}:\n{}", d.log())
        }
        None => String::new(),
    };
    assert!(
        !timed_out && output.status.success(),
        "{program} {}\n{}\n{daemon_state}",
        if timed_out { "timed out" } else { "failed" },
        show(&output)
    );
    if let Some(d) = daemon.as_mut() {
        assert!(
            d.is_running(),
            "{program} passed but the daemon died; log:\n{}",
            d.log()
        );
    }
}

#[test]
fn abi() {
    run_c_test("abi", false);
}

#[test]
fn api_connect() {
    run_c_test("api_connect", true);
}

#[test]
fn api_groups() {
    run_c_test("api_groups", true);
}

#[test]
fn api_recv() {
    run_c_test("api_recv", true);
}

#[test]
fn api_misc() {
    run_c_test("api_misc", true);
}

#[test]
fn cycles() {
    run_c_test("cycles", true);
}

#[test]
fn garbage() {
    run_c_test("garbage", true);
}

#[test]
fn events_user() {
    run_c_test("events_user", true);
}

#[test]
fn raw_clients() {
    run_c_test("raw_clients", true);
}

#[test]
fn lib_wire() {
    run_c_test("lib_wire", false);
}
