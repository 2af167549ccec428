//! Links the cdylib as Spread's client library and generates its C headers with cbindgen.
//!
//! The headers are written to `$OUT_DIR/include`; `tests/headers.rs` fails while the committed
//! `include/` differs from them. `SPREAD_UPDATE_HEADERS=1 cargo build` copies them into `include/`.
//!
//! It also tells the crate its binaries' names (`SPREAD_BINARIES`), so the installer installs
//! every program without a list to keep up to date.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// One generated header: its cbindgen config (presentation and types), the constants it
/// defines, and the prefix of the functions it declares.
struct Header {
    file: &'static str,
    config: &'static str,
    constants: &'static [&'static str],
    function_prefix: Option<&'static str>,
}

/// Exported for compatibility but not declared by Spread 5.0.1's headers.
const UNDECLARED: &[&str] = &[
    "SP_query_groups",
    "SP_query_members",
    "E_lookup_function_name",
    "E_print_slow_event",
    "E_print_slow_events",
    "E_time_events",
];

const HEADERS: &[Header] = &[
    Header {
        file: "sp.h",
        config: "cbindgen/sp.toml",
        constants: &[
            "LOW_PRIORITY",
            "MEDIUM_PRIORITY",
            "HIGH_PRIORITY",
            "DEFAULT_SPREAD_PORT",
            "SPREAD_VERSION",
            "MAX_GROUP_NAME",
            "MAX_PRIVATE_NAME",
            "MAX_PROC_NAME",
            "UNRELIABLE_MESS",
            "RELIABLE_MESS",
            "FIFO_MESS",
            "CAUSAL_MESS",
            "AGREED_MESS",
            "SAFE_MESS",
            "REGULAR_MESS",
            "SELF_DISCARD",
            "DROP_RECV",
            "REG_MEMB_MESS",
            "TRANSITION_MESS",
            "CAUSED_BY_JOIN",
            "CAUSED_BY_LEAVE",
            "CAUSED_BY_DISCONNECT",
            "CAUSED_BY_NETWORK",
            "MEMBERSHIP_MESS",
            "ENDIAN_RESERVED",
            "RESERVED",
            "REJECT_MESS",
            "ACCEPT_SESSION",
            "ILLEGAL_SPREAD",
            "COULD_NOT_CONNECT",
            "REJECT_QUOTA",
            "REJECT_NO_NAME",
            "REJECT_ILLEGAL_NAME",
            "REJECT_NOT_UNIQUE",
            "REJECT_VERSION",
            "CONNECTION_CLOSED",
            "REJECT_AUTH",
            "ILLEGAL_SESSION",
            "ILLEGAL_SERVICE",
            "ILLEGAL_MESSAGE",
            "ILLEGAL_GROUP",
            "BUFFER_TOO_SHORT",
            "GROUPS_TOO_SHORT",
            "MESSAGE_TOO_LONG",
            "NET_ERROR_ON_SESSION",
            "SP_BUG",
            "ILLEGAL_TIME",
            "MAX_CLIENT_SCATTER_ELEMENTS",
        ],
        function_prefix: None,
    },
    Header {
        file: "sp_events.h",
        config: "cbindgen/sp_events.toml",
        constants: &[
            "MAX_FD_EVENTS",
            "NUM_PRIORITY",
            "LOW_PRIORITY",
            "MEDIUM_PRIORITY",
            "HIGH_PRIORITY",
            "NUM_FDTYPES",
            "READ_FD",
            "WRITE_FD",
            "EXCEPT_FD",
        ],
        function_prefix: Some("E_"),
    },
    Header {
        file: "sp_func.h",
        config: "cbindgen/sp_func.toml",
        constants: &[],
        function_prefix: Some("SP_"),
    },
];

fn main() {
    // The cdylib is a drop-in for Spread 5's client library, so it carries its SONAME.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libspread.so.3");

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen");
    println!("cargo:rerun-if-env-changed=SPREAD_UPDATE_HEADERS");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("include");
    fs::create_dir_all(&out_dir).expect("create OUT_DIR/include");
    println!(
        "cargo:rustc-env=SPREAD_BINARIES={}",
        binary_names(&crate_dir).join(" ")
    );
    let update = env::var_os("SPREAD_UPDATE_HEADERS").is_some_and(|v| !v.is_empty() && v != "0");

    // cbindgen emits the types every function it sees uses, so each header's run must see only
    // that header's functions: a first run lists them all, then each header excludes the rest.
    let all_functions = function_names(&crate_dir);
    for header in HEADERS {
        let generated = out_dir.join(header.file);
        generate(&crate_dir, header, &all_functions, &generated);
        if update {
            let committed = crate_dir.join("include").join(header.file);
            fs::create_dir_all(committed.parent().expect("include dir")).expect("create include/");
            fs::copy(&generated, &committed).expect("copy header into include/");
        }
    }
}

/// The binaries cargo discovers by itself (the package declares none): `src/bin/NAME.rs` and
/// `src/bin/NAME/main.rs`, sorted.
fn binary_names(crate_dir: &Path) -> Vec<String> {
    let dir = crate_dir.join("src").join("bin");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| entry.expect("src/bin entry").path())
        .filter_map(|path| {
            let name = if path.is_dir() && path.join("main.rs").is_file() {
                path.file_name()
            } else if path.extension().is_some_and(|e| e == "rs") {
                path.file_stem()
            } else {
                None
            };
            name.and_then(|n| n.to_str()).map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn run_cbindgen(crate_dir: &Path, config: cbindgen::Config, what: &str) -> cbindgen::Bindings {
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen for {what}: {e}"))
}

/// Names of all exported functions of the crate.
fn function_names(crate_dir: &Path) -> Vec<String> {
    let config = cbindgen::Config {
        language: cbindgen::Language::C,
        ..Default::default()
    };
    let bindings = run_cbindgen(crate_dir, config, "the function list");
    bindings
        .functions
        .iter()
        .map(|f| f.path.name().to_owned())
        .collect()
}

fn declared_in(header: &Header, function: &str) -> bool {
    header.function_prefix.is_some_and(|p| function.starts_with(p)) && !UNDECLARED.contains(&function)
}

fn generate(crate_dir: &Path, header: &Header, all_functions: &[String], path: &Path) {
    let mut config = cbindgen::Config::from_file(crate_dir.join(header.config))
        .unwrap_or_else(|e| panic!("{}: {e}", header.config));
    let others = all_functions.iter().filter(|f| !declared_in(header, f));
    config.export.exclude.extend(others.cloned());
    let mut bindings = run_cbindgen(crate_dir, config, header.file);

    // Keep this header's constants, once each (a name may be defined in several modules).
    let mut seen: Vec<String> = Vec::new();
    bindings.constants.retain(|c| {
        let name = &c.export_name;
        let keep = header.constants.contains(&name.as_str()) && !seen.contains(name);
        if keep {
            seen.push(name.clone());
        }
        keep
    });
    let missing: Vec<_> = header
        .constants
        .iter()
        .filter(|c| !seen.iter().any(|s| s == *c))
        .collect();
    assert!(
        missing.is_empty(),
        "{}: constants not found in the crate: {missing:?}",
        header.file
    );
    bindings.write_to_file(path);
}
