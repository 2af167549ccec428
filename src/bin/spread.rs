//! `spread`: the Spread daemon. `spread [-n name] [-c file] [-l y|n]`.
//!
//! Configuration: `-c file`, else `./spread.conf` if there is one, else the embedded default
//! (one daemon `localhost`, 127.0.0.1, port 4803).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use spread::config::Config;
use spread::daemon::net::Links;
use spread::daemon::networks::link_setup;
use spread::daemon::{local_addresses, run, socket_dir_from_env, AuthPolicy, Settings};
use spread::membership::Params;
use spread::monitor::Identity;
use spread::node::Setup as NodeSetup;

const USAGE: &str = "Usage: spread\n\
    \t[-l y/n]          : print log\n\
    \t[-n <proc name>]  : force computer name\n\
    \t[-c <file name>]  : specify configuration file";

struct Args {
    name: Option<String>,
    config: Option<PathBuf>,
    /// `-l n` silences the log unless RUST_LOG asks for it.
    log: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        name: None,
        config: None,
        log: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-n" => args.name = Some(value()?),
            "-c" => args.config = Some(PathBuf::from(value()?)),
            "-l" => match value()?.as_str() {
                "y" => args.log = true,
                "n" => args.log = false,
                other => return Err(format!("-l takes y or n, not {other}")),
            },
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn init_logging(config: &Config, args: &Args) -> Result<(), String> {
    let mut builder = env_logger::Builder::new();
    let level = if args.log {
        config.options.event_priority.level_filter()
    } else {
        log::LevelFilter::Off
    };
    builder.filter_level(level);
    // Membership changes take a few timeouts of some hundred milliseconds each: show them.
    builder.format_timestamp_millis();
    // RUST_LOG, when set, overrides the configuration.
    builder.parse_env("RUST_LOG");
    if let Some(file) = &config.options.event_log_file {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| format!("cannot open EventLogFile {file}: {e}"))?;
        builder.target(env_logger::Target::Pipe(Box::new(f)));
    }
    builder.init();
    Ok(())
}

fn settings(config: &Config, name: Option<&str>) -> Result<Settings, String> {
    let local = local_addresses().map_err(|e| format!("cannot list local addresses: {e}"))?;
    let (seg, idx) = config.find_daemon(name, &local).map_err(|e| e.to_string())?;
    let segment = &config.segments[seg];
    let me = &segment.daemons[idx];
    let client_addresses = if me.listen_on_any {
        vec![match me.address {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }]
    } else {
        me.client_interfaces.clone()
    };
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Peers tell this run's link packets from the previous run's by this number: the start
    // time to the nanosecond, mixed with the process id.
    let mixed = started.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32);
    let incarnation = (mixed ^ (mixed >> 32)) as u32;
    let options = &config.options;
    Ok(Settings {
        daemon_name: me.name.clone(),
        node: NodeSetup {
            me: me.id(),
            daemons: config.daemons().map(|(_, _, d)| d.id()).collect(),
            daemon_name: me.name.as_bytes().to_vec(),
            config_hash: config.hash(),
            params: Params::from_options(options),
            // Ring ids of a restarted daemon must be new: they start at its start time.
            epoch: started.as_secs(),
        },
        port: segment.port,
        client_addresses,
        socket_dir: socket_dir_from_env(),
        max_session_messages: options.max_session_messages,
        auth: AuthPolicy {
            allowed: options.allowed_auth_methods.clone(),
            required: options.required_auth_methods.clone(),
        },
        links: Links::all_from_config(config, seg, idx),
        multipath: link_setup(config, seg, idx, incarnation),
        monitor: Identity::from_config(config, seg, idx),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("spread: {e}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("spread: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = init_logging(&config, &args) {
        eprintln!("spread: {e}");
        return ExitCode::FAILURE;
    }
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    let settings = match settings(&config, args.name.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            log::error!("{e}");
            eprintln!("spread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let o = &config.options;
    log::info!(
        "configuration hash {:#010x}; not acted on yet: RuntimeDir {}, DaemonUser {}, DaemonGroup {}, \
         AccessControlPolicy {}, DebugFlags {:#x}",
        config.hash(),
        o.runtime_dir,
        o.daemon_user,
        o.daemon_group,
        o.access_control_policy,
        o.debug_flags
    );
    let result = run(settings);
    match result {
        Ok(()) => {
            log::info!("spread daemon exiting normally");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("daemon stopped: {e}");
            eprintln!("spread: {e}");
            ExitCode::FAILURE
        }
    }
}
