//! Installing into a prefix (`spread-install`): the client library with its development link,
//! the C headers, the pkg-config file, the programs and the Python package.
//!
//! It installs what cargo built into the directory its own executable sits in
//! (`target/<profile>/`) and never builds anything itself: run as root, it must neither need a
//! Rust toolchain nor leave root-owned files in `target/`. Headers, the pkg-config template and
//! the Python package are compiled into it. Every file is written beside its destination under a
//! temporary name and renamed over it, so a re-run replaces an installation in place and a reader
//! never sees half a file.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The file name the linker and loader look for (the cdylib's SONAME, set by build.rs).
pub const SONAME: &str = "libspread.so.3";
/// The name `-lspread` finds at link time, a symlink to [`SONAME`].
pub const DEV_LINK: &str = "libspread.so";
/// The file cargo builds the cdylib as.
const BUILT_LIBRARY: &str = "libspread.so";

const HEADERS: &[(&str, &[u8])] = &[
    ("sp.h", include_bytes!("../../include/sp.h")),
    ("sp_func.h", include_bytes!("../../include/sp_func.h")),
    ("sp_events.h", include_bytes!("../../include/sp_events.h")),
];

const PKG_CONFIG_TEMPLATE: &str = include_str!("../../pkgconfig/libspread.pc.in");
const PKG_CONFIG_FILE: &str = "libspread.pc";

const PYTHON_PACKAGE: &str = "spread";
const PYTHON_MODULES: &[(&str, &[u8])] = &[
    ("__init__.py", include_bytes!("../../python/spread/__init__.py")),
    (
        "_constants.py",
        include_bytes!("../../python/spread/_constants.py"),
    ),
    ("_native.py", include_bytes!("../../python/spread/_native.py")),
];
/// Read by `python/spread/_native.py`: the installed library's path.
const PYTHON_LIBRARY_PATH_FILE: &str = "library-path";
/// Where the Python package goes, under the prefix, when there is no `python3` to ask.
const PYTHON_SITE_FALLBACK: &str = "lib/python3/site-packages";
/// Prints the `purelib` directory of the `posix_prefix` scheme for the prefix in `argv[1]`: the
/// layout `pip install --prefix` uses, the same on every Python distribution.
const PYTHON_SITE_QUERY: &str = "import sys, sysconfig; \
    print(sysconfig.get_path('purelib', 'posix_prefix', {'base': sys.argv[1], 'platbase': sys.argv[1]}))";

const EXECUTABLE: u32 = 0o755;
const DATA: u32 = 0o644;

/// What to install where.
#[derive(Clone, Debug)]
pub struct Options {
    /// The prefix the installed files name (in the pkg-config file, for the Python package).
    pub prefix: PathBuf,
    /// Staging directory the prefix is placed under (`DESTDIR`, for packagers), if any.
    pub destdir: Option<PathBuf>,
    /// The cargo profile directory holding the built library and programs.
    pub build_dir: PathBuf,
    /// The installer's own program name, which is not installed.
    pub installer: String,
}

/// The programs of this package, as build.rs found them in `src/bin`.
pub fn programs() -> impl Iterator<Item = &'static str> {
    env!("SPREAD_BINARIES").split_ascii_whitespace()
}

/// Installs everything, printing each file it writes to `out`, then how to use the result.
/// Nothing is written unless every built file it needs is there.
pub fn install(options: &Options, out: &mut impl Write) -> Result<(), String> {
    let prefix = std::path::absolute(&options.prefix)
        .map_err(|e| format!("prefix {}: {e}", options.prefix.display()))?;
    let prefix_text = prefix_text(&prefix)?;
    let library = built_library(&options.build_dir)?;
    let programs = built_programs(&options.build_dir, &options.installer)?;
    let site = python_site_dir(&prefix, out)?;
    let root = staged(&prefix, options.destdir.as_deref());
    let mut put = Installer { out };

    let lib = root.join("lib");
    put.copy(&library, &lib.join(SONAME), EXECUTABLE)?;
    put.link(SONAME, &lib.join(DEV_LINK))?;
    for (name, text) in HEADERS {
        put.write(&root.join("include").join(name), text, DATA)?;
    }
    let pc = pkg_config_file(&prefix_text);
    put.write(&lib.join("pkgconfig").join(PKG_CONFIG_FILE), pc.as_bytes(), DATA)?;
    for (name, built) in &programs {
        put.copy(built, &root.join("bin").join(name), EXECUTABLE)?;
    }
    let package = root.join(&site).join(PYTHON_PACKAGE);
    for (name, text) in PYTHON_MODULES {
        put.write(&package.join(name), text, DATA)?;
    }
    let installed_library = format!("{prefix_text}/lib/{SONAME}\n");
    put.write(
        &package.join(PYTHON_LIBRARY_PATH_FILE),
        installed_library.as_bytes(),
        DATA,
    )?;

    let usage = format!(
        "\nTo use it, unless these are already searched by default:\n\
         \x20 the loader: LD_LIBRARY_PATH={p}/lib (or list {p}/lib for ldconfig)\n\
         \x20 pkg-config: PKG_CONFIG_PATH={p}/lib/pkgconfig\n\
         \x20 python3: PYTHONPATH={site}\n",
        p = prefix_text,
        site = prefix.join(&site).display(),
    );
    put.out.write_all(usage.as_bytes()).map_err(|e| e.to_string())
}

/// The prefix as it is written into the installed files. pkg-config splits flags at blanks, so a
/// prefix with one could not be used to compile against.
fn prefix_text(prefix: &Path) -> Result<String, String> {
    let text = prefix
        .to_str()
        .ok_or_else(|| format!("prefix {} is not UTF-8", prefix.display()))?;
    if text.chars().any(char::is_whitespace) {
        return Err(format!(
            "prefix {text:?} contains a blank, which pkg-config cannot carry"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Where the prefix lies when staged under `destdir`.
fn staged(prefix: &Path, destdir: Option<&Path>) -> PathBuf {
    match destdir {
        Some(destdir) => destdir.join(
            prefix
                .components()
                .filter(|c| !matches!(c, Component::RootDir))
                .collect::<PathBuf>(),
        ),
        None => prefix.to_path_buf(),
    }
}

fn pkg_config_file(prefix: &str) -> String {
    PKG_CONFIG_TEMPLATE.replace("@PREFIX@", prefix)
}

/// The built client library. `cargo test` refreshes it only in `deps/` (just `cargo build`
/// copies it up into the profile directory), so that copy is the current one when present.
fn built_library(build_dir: &Path) -> Result<PathBuf, String> {
    [build_dir.join("deps"), build_dir.to_path_buf()]
        .iter()
        .map(|dir| dir.join(BUILT_LIBRARY))
        .find(|lib| lib.is_file())
        .ok_or_else(|| {
            format!(
                "{} is missing: build first with `cargo build --release`",
                build_dir.join(BUILT_LIBRARY).display()
            )
        })
}

/// Every program of the package but the installer, with its built file.
fn built_programs(build_dir: &Path, installer: &str) -> Result<Vec<(&'static str, PathBuf)>, String> {
    let wanted: Vec<_> = programs()
        .filter(|&name| name != installer)
        .map(|name| (name, build_dir.join(name)))
        .collect();
    let missing: Vec<_> = wanted
        .iter()
        .filter(|(_, built)| !built.is_file())
        .map(|(_, built)| built.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(wanted)
    } else {
        Err(format!(
            "not built: {}; build every program first with `cargo build --release`",
            missing.join(", ")
        ))
    }
}

/// The Python package directory relative to the prefix, as `python3` lays out a prefix.
fn python_site_dir(prefix: &Path, out: &mut impl Write) -> Result<PathBuf, String> {
    let output = match Command::new("python3")
        .args([
            OsStr::new("-c"),
            OsStr::new(PYTHON_SITE_QUERY),
            prefix.as_os_str(),
        ])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            writeln!(
                out,
                "python3 not found: the Python package goes to {PYTHON_SITE_FALLBACK}"
            )
            .map_err(|e| e.to_string())?;
            return Ok(PathBuf::from(PYTHON_SITE_FALLBACK));
        }
        Err(e) => return Err(format!("cannot run python3: {e}")),
    };
    if !output.status.success() {
        return Err(format!(
            "python3 could not name its site-packages directory: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let site = Path::new(text.trim_end_matches('\n'));
    site.strip_prefix(prefix)
        .map(Path::to_path_buf)
        .map_err(|_| format!("python3 puts packages in {} outside the prefix", site.display()))
}

/// Writes files and reports each one.
struct Installer<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> Installer<'_, W> {
    fn write(&mut self, dest: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
        self.put(dest, mode, |file| file.write_all(contents))
    }

    fn copy(&mut self, source: &Path, dest: &Path, mode: u32) -> Result<(), String> {
        self.put(dest, mode, |file| {
            io::copy(&mut File::open(source)?, file).map(drop)
        })
        .map_err(|e| format!("{e} (from {})", source.display()))
    }

    /// A file in place of `dest`, filled by `fill` under a temporary name, then renamed.
    fn put(
        &mut self,
        dest: &Path,
        mode: u32,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), String> {
        let tmp = self.prepare(dest)?;
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .and_then(|mut file| {
                fill(&mut file)?;
                // The umask may have narrowed the mode given at creation.
                file.set_permissions(Permissions::from_mode(mode))?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&tmp, dest));
        self.finish(dest, &tmp, written, format_args!("{mode:04o}"))
    }

    /// A symbolic link `dest` to `target`, replacing what is there.
    fn link(&mut self, target: &str, dest: &Path) -> Result<(), String> {
        let tmp = self.prepare(dest)?;
        let linked = symlink(target, &tmp).and_then(|()| fs::rename(&tmp, dest));
        self.finish(dest, &tmp, linked, format_args!("-> {target}"))
    }

    /// Creates the directories `dest` needs and names its temporary file.
    fn prepare(&mut self, dest: &Path) -> Result<PathBuf, String> {
        let dir = dest.parent().expect("installed files are inside a directory");
        make_dirs(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let name = dest.file_name().expect("installed files have a name");
        let mut tmp_name = OsStr::new(".").to_os_string();
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        Ok(dir.join(tmp_name))
    }

    fn finish(
        &mut self,
        dest: &Path,
        tmp: &Path,
        done: io::Result<()>,
        what: std::fmt::Arguments<'_>,
    ) -> Result<(), String> {
        if let Err(e) = done {
            let _ = fs::remove_file(tmp);
            return Err(format!("cannot install {}: {e}", dest.display()));
        }
        writeln!(self.out, "installed {} {what}", dest.display()).map_err(|e| e.to_string())
    }
}

/// Creates `dir` and its missing parents with mode 0755 whatever the umask, as `install -d`
/// does, so that every user can use what is installed.
fn make_dirs(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(EXECUTABLE)),
        // Created meanwhile by someone else: theirs to keep as it is.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &str, extension: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == extension))
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn sorted(files: &[(&str, &[u8])]) -> Vec<String> {
        let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn installs_every_header_and_python_module() {
        assert_eq!(sorted(HEADERS), names_in("include", "h"));
        assert_eq!(sorted(PYTHON_MODULES), names_in("python/spread", "py"));
    }

    #[test]
    fn knows_the_programs() {
        let programs: Vec<_> = programs().collect();
        for name in ["spread", "spuser", "spflooder", "spread-install"] {
            assert!(programs.contains(&name), "{name} missing from {programs:?}");
        }
    }

    #[test]
    fn pkg_config_file_names_the_prefix_and_nothing_else_is_left_to_fill() {
        let pc = pkg_config_file("/opt/sp");
        assert!(pc.lines().any(|l| l == "prefix=/opt/sp"), "{pc}");
        assert!(!pc.contains('@'), "unfilled placeholder in:\n{pc}");
    }

    #[test]
    fn prefix_text_rejects_blanks_and_drops_a_trailing_slash() {
        assert_eq!(prefix_text(Path::new("/usr/local/")).unwrap(), "/usr/local");
        assert_eq!(prefix_text(Path::new("/")).unwrap(), "");
        assert!(prefix_text(Path::new("/my prefix")).is_err());
    }

    #[test]
    fn destdir_holds_the_prefix() {
        let prefix = Path::new("/usr/local");
        assert_eq!(staged(prefix, None), prefix);
        assert_eq!(
            staged(prefix, Some(Path::new("/tmp/stage"))),
            Path::new("/tmp/stage/usr/local")
        );
    }
}
