//! `spmonitor`: the status of the configured daemons (see `--help`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use spread::config::Config;
use spread::monitor::report::{self, DaemonReport};
use spread::monitor::{targets, Target};
use spread::tools::survey::survey;

const HELP: &str = "\
Usage: spmonitor [-c spread.conf] [--json] [--watch SECONDS] [--timeout MS] [-n daemon-name ...]

Asks every daemon of the configuration for its status (a UDP query to its ring port, on each of
its addresses in turn, network 0 first, until one answers) and shows it.

  -c FILE          configuration (default: ./spread.conf if present, else the embedded default,
                   as the daemon does)
  -n NAME          only this daemon (repeatable; names may also follow one -n)
  --json           one JSON object instead of the table
  --watch SECONDS  refresh every SECONDS until interrupted
  --timeout MS     wait per address (default 500)
  -h, --help       this text

The table has a line per daemon (name, reachable, membership state, members, sessions, groups,
health), then each daemon's links, a line per peer and network: state (up: used; up_here: up
here but not at the peer; unheard: not yet heard both ways since start; down), fault, round-trip time, loss of what the peer sends, loss the
peer reports of what we send, up and down counts, the last transition and its reason.

JSON: {\"daemons\": [...], \"health\": H, \"exit_code\": N}; each daemon has \"name\", \"reachable\",
\"address\" (that answered, or null), \"error\" (or null), \"health\", \"exit_code\" and \"status\":
the daemon's own document (or null) with \"format\", \"daemon\" {name, id, address, port,
config_hash, version, uptime_ms}, \"health\", \"exit_code\", \"membership\" {state, ring {rep, seq},
members, configured [{name, id}], configurations, counters}, \"ring\" (aru, highest_seq and the
ring's counters), \"sessions\" {sessions, connections, groups}, \"multipath\" {mode, networks
[{id, name, port, addresses, counters}], links (the link layer's status, null on a single
network), health, exit_code}, \"monitor\" {answered, refused, malformed}, \"truncated\".
The README's spmonitor section lists every field.

Health: all_up, degraded, last_network, unreachable. Exit codes (the worst daemon's):
  0  every daemon up, every link usable
  1  degraded: some link not usable, or a membership not complete or not operational
  2  a daemon down to its last network (or to none), or unreachable
  3  spmonitor could not run (bad arguments, unreadable configuration, no socket)";

struct Args {
    config: Option<PathBuf>,
    json: bool,
    watch: Option<Duration>,
    timeout: Duration,
    names: Vec<String>,
}

fn parse_args(words: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        config: None,
        json: false,
        watch: None,
        timeout: Duration::from_millis(500),
        names: Vec::new(),
    };
    let mut words = words.peekable();
    while let Some(word) = words.next() {
        let mut value = || words.next().ok_or_else(|| format!("{word} needs a value"));
        match word.as_str() {
            "-h" | "--help" => return Ok(None),
            "-c" => args.config = Some(PathBuf::from(value()?)),
            "--json" => args.json = true,
            "--watch" => {
                let seconds: f64 = value()?
                    .parse()
                    .map_err(|_| "--watch takes a number of seconds".to_string())?;
                if !(seconds > 0.0 && seconds <= 86_400.0) {
                    return Err("--watch takes 0 < SECONDS <= 86400".into());
                }
                args.watch = Some(Duration::from_secs_f64(seconds));
            }
            "--timeout" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|_| "--timeout takes milliseconds".to_string())?;
                if !(1..=60_000).contains(&ms) {
                    return Err("--timeout takes 1 to 60000 ms".into());
                }
                args.timeout = Duration::from_millis(ms);
            }
            "-n" => {
                args.names.push(value()?);
                while let Some(name) = words.next_if(|w| !w.starts_with('-')) {
                    args.names.push(name);
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(args))
}

/// The configured daemons to ask: all, or those named.
fn chosen(config: &Config, names: &[String]) -> Result<Vec<Target>, String> {
    let all = targets(config);
    if names.is_empty() {
        return Ok(all);
    }
    if let Some(unknown) = names.iter().find(|n| !all.iter().any(|t| &t.name == *n)) {
        return Err(format!("daemon \"{unknown}\" is not in the configuration"));
    }
    Ok(all.into_iter().filter(|t| names.contains(&t.name)).collect())
}

fn main() -> ExitCode {
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Warn)
        .parse_env("RUST_LOG")
        .init();
    let failed = |e: String| {
        eprintln!("spmonitor: {e}");
        ExitCode::from(3)
    };
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return failed(format!("{e}\n{HELP}")),
    };
    let config = match Config::load_or_default(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return failed(e.to_string()),
    };
    let targets = match chosen(&config, &args.names) {
        Ok(targets) => targets,
        Err(e) => return failed(e),
    };
    loop {
        let outcomes = match survey(&targets, args.timeout) {
            Ok(outcomes) => outcomes,
            Err(e) => return failed(format!("cannot send queries: {e}")),
        };
        let reports: Vec<DaemonReport> = targets
            .iter()
            .zip(outcomes)
            .map(|(t, o)| DaemonReport::new(t, o))
            .collect();
        if args.json {
            println!("{}", report::to_json(&reports));
        } else {
            print!("{}", report::table(&reports));
        }
        let Some(every) = args.watch else {
            return ExitCode::from(report::overall(&reports).exit_code() as u8);
        };
        if !args.json {
            println!();
        }
        std::thread::sleep(every);
    }
}
