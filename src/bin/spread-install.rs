//! `spread-install`: installs the library, headers, pkg-config file, programs and Python package
//! that `cargo build` produced beside it. `spread-install [--prefix DIR]`, default `/usr/local`;
//! the environment variable `DESTDIR` stages the installation under another root for packagers.

use std::path::PathBuf;
use std::process::ExitCode;

use spread::tools::install::{install, Options};

const USAGE: &str = "Usage: spread-install [--prefix DIR]

Installs into DIR (default /usr/local) what `cargo build` left beside this program: lib/libspread.so.3
and the lib/libspread.so link, include/sp.h, sp_func.h and sp_events.h, lib/pkgconfig/libspread.pc,
the programs in bin/, and the Python package `spread` in python3's site-packages under DIR.
A non-empty DESTDIR in the environment puts it all under DESTDIR/DIR, still naming DIR inside.

Typical use, from the source tree:
    cargo build --release && target/release/spread-install --prefix /usr/local";

const DEFAULT_PREFIX: &str = "/usr/local";

fn parse_prefix() -> Result<Option<PathBuf>, String> {
    let mut prefix = PathBuf::from(DEFAULT_PREFIX);
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--prefix") => {
                prefix = args.next().ok_or("--prefix needs a directory")?.into();
            }
            Some("-h" | "--help") => return Ok(None),
            _ => return Err(format!("unknown argument {}", arg.to_string_lossy())),
        }
    }
    Ok(Some(prefix))
}

fn main() -> ExitCode {
    let prefix = match parse_prefix() {
        Ok(Some(prefix)) => prefix,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("spread-install: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let build_dir = match std::env::current_exe() {
        Ok(exe) => exe
            .parent()
            .expect("an executable is in a directory")
            .to_path_buf(),
        Err(e) => {
            eprintln!("spread-install: cannot find where this program is: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        prefix,
        destdir: std::env::var_os("DESTDIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from),
        build_dir,
        installer: env!("CARGO_BIN_NAME").to_owned(),
    };
    match install(&options, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spread-install: {e}");
            ExitCode::FAILURE
        }
    }
}
