//! `spread-install` into a temporary prefix, then the prefix used as people use one: an ordinary
//! Spread program (`c-tests/app.c`) built with exactly `cc app.c $(pkg-config --cflags --libs
//! libspread)` talks to a daemon through the installed library, the installed programs run, and
//! the installed Python package imports and loads the installed library.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use spread::tools::install::{programs, DEV_LINK, SONAME};
use support::{show, Daemon, DaemonKind, TempDir};

const INSTALLER: &str = env!("CARGO_BIN_EXE_spread-install");
/// Seconds any one program run may take (coreutils `timeout` ends it after that).
const RUN_LIMIT: &str = "60";

fn run(command: &mut Command) -> Output {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed\n{}", show(&output));
    output
}

/// `program` with its arguments, ended if it runs longer than [`RUN_LIMIT`].
fn limited(program: impl AsRef<Path>) -> Command {
    let mut command = Command::new("timeout");
    command.arg(RUN_LIMIT).arg(program.as_ref());
    command
}

/// The first of the tools the test needs that is not installed.
fn missing_tool() -> Option<&'static str> {
    ["cc", "pkg-config"].into_iter().find(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
    })
}

fn mode(path: &Path) -> u32 {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    meta.permissions().mode() & 0o7777
}

/// Runs the installer; returns the Python package directory it reports.
fn install(prefix: &Path) -> PathBuf {
    let output = run(Command::new(INSTALLER)
        .arg("--prefix")
        .arg(prefix)
        .env_remove("DESTDIR"));
    let report = String::from_utf8_lossy(&output.stdout);
    let init = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("installed ")?
                .strip_suffix(" 0644")?
                .strip_suffix("/__init__.py")
        })
        .unwrap_or_else(|| panic!("no Python package in the report:\n{report}"));
    PathBuf::from(init)
}

fn check_files(prefix: &Path, package: &Path) {
    let lib = prefix.join("lib");
    assert_eq!(mode(&lib.join(SONAME)), 0o755);
    assert_eq!(fs::read_link(lib.join(DEV_LINK)).unwrap(), Path::new(SONAME));
    for header in ["sp.h", "sp_func.h", "sp_events.h"] {
        let installed = prefix.join("include").join(header);
        assert_eq!(mode(&installed), 0o644);
        let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("include").join(header);
        assert_eq!(
            fs::read(&installed).unwrap(),
            fs::read(committed).unwrap(),
            "{header}"
        );
    }
    let pc = lib.join("pkgconfig").join("libspread.pc");
    assert_eq!(mode(&pc), 0o644);
    let pc = fs::read_to_string(pc).unwrap();
    assert!(pc.contains(&format!("prefix={}\n", prefix.display())), "{pc}");
    let installer = Path::new(INSTALLER).file_name().unwrap();
    for program in programs().filter(|p| installer != *p) {
        assert_eq!(mode(&prefix.join("bin").join(program)), 0o755, "{program}");
    }
    assert!(
        !prefix.join("bin").join(installer).exists(),
        "the installer installed itself"
    );
    assert!(package.starts_with(prefix), "{}", package.display());
    assert_eq!(mode(&package.join("__init__.py")), 0o644);
    let library_path = fs::read_to_string(package.join("library-path")).unwrap();
    assert_eq!(library_path, format!("{}\n", lib.join(SONAME).display()));
    // The temporary files have all been renamed into place.
    for dir in [
        lib.as_path(),
        &prefix.join("bin"),
        &prefix.join("include"),
        package,
    ] {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with('.'),
                "left over: {name:?} in {}",
                dir.display()
            );
        }
    }
}

#[test]
fn installed_prefix_builds_and_runs_an_ordinary_spread_program() {
    if let Some(tool) = missing_tool() {
        eprintln!("SKIPPED installed_prefix_builds_and_runs_an_ordinary_spread_program: no {tool} (.ci/run installs it)");
        return;
    }
    let dir = TempDir::new("install");
    let prefix = dir.path().join("prefix");
    let package = install(&prefix);
    // A second run replaces the first installation in place.
    assert_eq!(install(&prefix), package);
    check_files(&prefix, &package);
    let libdir = prefix.join("lib");

    let work = dir.path().join("app");
    fs::create_dir(&work).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("c-tests")
        .join("app.c");
    fs::copy(source, work.join("app.c")).unwrap();
    run(Command::new("sh")
        .args(["-c", "cc app.c $(pkg-config --cflags --libs libspread)"])
        .current_dir(&work)
        .env("PKG_CONFIG_PATH", libdir.join("pkgconfig")));
    let app = work.join("a.out");
    let ldd = run(Command::new("ldd").arg(&app).env("LD_LIBRARY_PATH", &libdir));
    let wanted = format!("{SONAME} => {}", libdir.join(SONAME).display());
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    assert!(
        ldd.contains(&wanted),
        "a.out does not load the installed {SONAME}:\n{ldd}"
    );

    let daemon = Daemon::start(&DaemonKind::ours());
    let port = daemon.port.to_string();
    let output = run(limited(&app)
        .arg(&port)
        .env("LD_LIBRARY_PATH", &libdir)
        .env("SPREAD_SOCKET_DIR", &daemon.socket_dir));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("received its own message: hello from app.c"),
        "{said}"
    );

    // The installed spuser connects and quits on `q` from its input.
    let mut spuser = limited(prefix.join("bin").join("spuser"))
        .args(["-u", "installed", "-s", &port])
        .env("SPREAD_SOCKET_DIR", &daemon.socket_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the installed spuser");
    let mut commands = spuser.stdin.take().unwrap();
    commands.write_all(b"q\n").unwrap();
    drop(commands);
    let output = spuser.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success()
            && said.contains(&format!(
                "User: connected to {port} with private group #installed#"
            )),
        "{}",
        show(&output)
    );
    // The installed daemon starts and refuses an unknown flag with its usage.
    let output = limited(prefix.join("bin").join("spread"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert!(
        !output.status.success() && String::from_utf8_lossy(&output.stderr).contains("Usage: spread"),
        "{}",
        show(&output)
    );

    // No SPREAD_LIB nor LD_LIBRARY_PATH: the package finds the installed library by itself.
    let python = |code: &str| {
        let output = run(Command::new("python3")
            .args(["-c", code])
            .current_dir(&work)
            .env("PYTHONPATH", package.parent().unwrap())
            .env_remove("SPREAD_LIB")
            .env_remove("LD_LIBRARY_PATH"));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(python("import spread; print(spread.version())"), "(5, 0, 1)");
    assert_eq!(
        python("import spread._native as n; print(n.lib._name)"),
        libdir.join(SONAME).display().to_string()
    );
}

#[test]
fn destdir_stages_files_that_name_the_prefix() {
    let dir = TempDir::new("install-destdir");
    let stage = dir.path().join("stage");
    let prefix = Path::new("/opt/spread-install-test");
    run(Command::new(INSTALLER)
        .arg("--prefix")
        .arg(prefix)
        .env("DESTDIR", &stage));
    assert!(!prefix.exists(), "installed outside DESTDIR");
    let staged = stage.join(prefix.strip_prefix("/").unwrap());
    assert_eq!(mode(&staged.join("lib").join(SONAME)), 0o755);
    let pc = fs::read_to_string(staged.join("lib/pkgconfig/libspread.pc")).unwrap();
    assert!(pc.starts_with(&format!("prefix={}\n", prefix.display())), "{pc}");
    let library_paths: Vec<_> = walk(&staged)
        .into_iter()
        .filter(|p| p.ends_with("spread/library-path"))
        .collect();
    assert_eq!(library_paths.len(), 1, "{library_paths:?}");
    assert_eq!(
        fs::read_to_string(&library_paths[0]).unwrap(),
        format!("{}/lib/{SONAME}\n", prefix.display())
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_missing_program_is_an_error_that_says_to_build_it() {
    // The installer alone in a directory, as if nothing else had been built.
    let dir = TempDir::new("install-unbuilt");
    let build = dir.path().join("release");
    fs::create_dir(&build).unwrap();
    let installer = build.join("spread-install");
    fs::copy(INSTALLER, &installer).unwrap();
    fs::write(build.join("libspread.so"), b"a stand-in library").unwrap();
    let prefix = dir.path().join("prefix");
    let output = Command::new(&installer)
        .arg("--prefix")
        .arg(&prefix)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{}", show(&output));
    for program in ["spread", "spuser", "spflooder"] {
        assert!(
            stderr.contains(&build.join(program).display().to_string()),
            "{program}: {stderr}"
        );
    }
    assert!(stderr.contains("cargo build --release"), "{stderr}");
    assert!(!prefix.exists(), "wrote into the prefix before failing");
}
