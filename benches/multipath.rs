//! One ring over two networks: throughput per multipath mode, failover under cable pulls, and
//! a soak on a lagging network. Three daemons in network namespaces on two bridges
//! (`Lan::with_networks(3, 2)`: host `i` has 10.77.0.(i+1) on network 0 and 10.78.0.(i+1) on
//! network 1), measured with our client library. Not a timed test: it prints figures to
//! compare within one run (other work on the machine shifts absolute rates, not ratios).
//!
//!     cargo bench --bench multipath
//!     SPREAD_BENCH_SOAK=1 SPREAD_SOAK_PACKETS=2000000 cargo bench --bench multipath
//!
//! Figures of the normal run:
//! - throughput: one sender on daemon 1 sends 1 KB AGREED messages to a group, keeping at most
//!   200 in flight by receiving its own; read-only receivers on daemons 2 and 3 time their
//!   first to their last message (msg/s is their mean). The same workload runs on a ring over
//!   network 0 only (no `Spread_Network` block: no link layer at all), then `Multipath =
//!   active`, `hybrid` and `passive` over both networks, the daemons started afresh for each;
//!   every round takes the four in another order. Printed per round with each mode's ratio to
//!   the single-network rate of that round and the CPU time the three daemons used per
//!   message (user and system, from /proc: the cost of each copy, less sensitive than rates
//!   to other work on the machine), the data packets retransmitted and the bytes the sender's
//!   host sent per message (all its interfaces), then the medians. The daemons send a run of
//!   equal packets as one message that the kernel cuts into datagrams (segmentation offload),
//!   and a veth pair carries such a run whole, as one frame: on the unlimited bridges the bytes
//!   count one set of headers per run, on the rate-limited ones (where tbf cuts runs) one per
//!   datagram;
//! - the same rounds on rate-limited networks: on veth bridges a network costs host CPU and
//!   adds no bandwidth, so the rounds above are CPU-bound, and a second network can only cost.
//!   On a LAN the wire is what limits: the rounds are run again with a token bucket (`tc` tbf)
//!   of `SPREAD_BENCH_RATE` on every host's `eth<j>`, as a switch port of that speed would pace
//!   it (small burst, a 50 ms queue, more than a ring's window). At the default 100 Mbit/s the
//!   single network is wire-bound on a 2-core machine: its rate is the link rate over the
//!   bytes sent per message (100e6 / 8 / 1233 B = 10.1k msg/s), and `hybrid` can approach
//!   twice that, `active` and `passive` once (every copy, or all traffic, on one link):
//!   measured 1.9-2.0x, 1.0x and 1.0x. `hybrid` falls short of 2x when the daemons lack CPU
//!   (1.65x with a compiler running): the token waits behind the data queued on each link, and
//!   while it goes round late, a link with nothing left queued idles;
//! - failover, per mode: a client on every daemon streams small AGREED messages (one every
//!   2 ms) while one daemon's cable on one network is pulled for 1.5 s and plugged back,
//!   alternating daemons and networks. Each pull waits until every link that went down came
//!   back and the clients are in a full view, and until 31 s after a link of that network last
//!   came back, as the daemons logged it (a link failing again within 30 s of its return is
//!   taken as flapping and held down 30 s). Figures: the longest gap
//!   between two deliveries at any client around each pull (from the pull to the replug) and
//!   around each replug (to the next pull), as percentiles over the pulls, with the longest
//!   gap before the first pull for reference; from the daemons' logs (millisecond
//!   timestamps), the time from a pull to each "link ... down" line and from a replug to each
//!   "link ... up" line. It fails when a client sees a membership change or when the clients'
//!   sequences differ or miss a message;
//! - with `SPREAD_BENCH_OTHER_DAEMON`, the same cable pulls on network 0 with that daemon (the
//!   original 5.0.1, which has one network) and the same clients: the longest gaps and the
//!   membership notices the clients saw.
//!
//! The soak (`SPREAD_BENCH_SOAK=1`, instead of the above): network 1 of every daemon turns
//! slow 8 s after the daemon starts (its links are up by then and the ring runs over it; a
//! network lagging from the start is never taken into use) and stays delayed and duplicating
//! through the test fault layer, a client on every daemon streaming as fast
//! as a window of 100 messages in flight allows, until the daemons together have received
//! `SPREAD_SOAK_PACKETS` datagrams (the hosts' interface counters tell when; the daemons' own
//! counters, logged when they are stopped, give the figure). It fails when a daemon exits,
//! when a client sees a membership change, or when the clients' sequences differ. Printed:
//! duration, datagrams received, and what the link layer and the ring dropped as duplicate or
//! stale.
//!
//! Environment:
//! - `SPREAD_BENCH_MESSAGES` (default 60000): messages of each throughput run;
//! - `SPREAD_BENCH_ROUNDS` (default 3): throughput rounds (each mode once per round; 0: none);
//! - `SPREAD_BENCH_MODES` (default `single,active,hybrid,passive`): modes of the throughput
//!   rounds (ratios need `single`);
//! - `SPREAD_BENCH_RATE` (default `100mbit`, tc's syntax; empty: no rate-limited rounds): the
//!   rate of every link in the rate-limited rounds; `SPREAD_BENCH_RATE_MESSAGES` (default
//!   20000): messages of each of their runs;
//! - `SPREAD_BENCH_PULLS` (default 10): cable pulls per failover mode;
//! - `SPREAD_BENCH_FAILOVER_MODES` (default `hybrid,active,passive`; empty: no failover);
//! - `SPREAD_BENCH_OURS`: path of a build of our daemon to measure instead of the one built
//!   with the benchmark (to compare two versions);
//! - `SPREAD_BENCH_OTHER_DAEMON`: path of another `spread` daemon (the original 5.0.1 build)
//!   for the single-network comparison; `SPREAD_BENCH_OTHER_PULLS` (default 3) pulls;
//! - `SPREAD_BENCH_SOAK`: `1` runs the soak instead; `SPREAD_SOAK_PACKETS` (default
//!   32000000); `SPREAD_SOAK_MODE` (default `hybrid`); `SPREAD_SOAK_FAULTS` (default
//!   `net1:delay=1500ms,net1:dup=0.3,net1:reorder=0.1,after=8s`, the syntax of `SPREAD_TEST_FAULTS`);
//!   `SPREAD_SOAK_HOURS` (default 4): bound of the soak.
//!
//! Needs root (network namespaces). Every phase is bounded; the namespaces and daemons are
//! removed at the end, also when a phase fails.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spread::client::Mailbox;
use spread::daemon::faults::FAULTS_VAR;
use spread::wire::name::name_text;
use spread::wire::{AGREED_MESS, MEMBERSHIP_MESS, NAME_LEN, REG_MEMB_MESS};
use support::bench::{env_usize, percentile, receive, throughput, PHASE_LIMIT};
use support::netns::{unavailable, Lan, BROADCAST};
use support::{Daemon, DaemonKind, TempDir};

const DAEMONS: usize = 3;
const NETWORKS: usize = 2;
/// Port of every ring. Each namespace has its own ports; the original's Unix socket is
/// `/tmp/<port>` on the machine, so the port is in this benchmark's range.
const PORT: u16 = 23803;
/// The group the streaming clients send to.
const STREAM_GROUP: &[u8] = b"stream";
/// How long a cable stays pulled.
const PULL_HOLD: Duration = Duration::from_millis(1500);
/// A network is pulled again at the earliest this long after it last came back: longer than
/// the link layer's damping period.
const DAMPING_SPACING: Duration = Duration::from_secs(31);
/// Time between two messages of a failover stream.
const STREAM_PERIOD: Duration = Duration::from_millis(2);
/// Queue of a rate-limited link, as the time to send it at the link's rate.
const LINK_QUEUE: &str = "50ms";
/// Messages a soak client keeps in flight at most.
const SOAK_WINDOW: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Network 0 only, no `Spread_Network` block.
    Single,
    Active,
    Hybrid,
    Passive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Active => "active",
            Mode::Hybrid => "hybrid",
            Mode::Passive => "passive",
        }
    }

    fn parse(word: &str) -> Mode {
        [Mode::Single, Mode::Active, Mode::Hybrid, Mode::Passive]
            .into_iter()
            .find(|m| m.name() == word.trim())
            .unwrap_or_else(|| panic!("unknown mode {word:?} (single, active, hybrid, passive)"))
    }

    /// The configuration of this mode on `lan`, with `extra` lines.
    fn config(self, lan: &Lan, extra: &str) -> String {
        match self {
            Mode::Single => lan.config(IpAddr::V4(BROADCAST), PORT, extra),
            mode => lan.multipath_config(PORT, &format!("Multipath = {}\n{extra}", mode.name())),
        }
    }
}

/// A daemon of one kind on every host of the LAN; they are killed when this is dropped.
struct Ring<'a> {
    // Dropped before the directory holding the configuration.
    daemons: Vec<Daemon>,
    lan: &'a Lan,
    _dir: TempDir,
}

impl<'a> Ring<'a> {
    /// The daemons of `mode` with `extra` configuration lines and `env` added to their
    /// environment.
    fn start(
        lan: &'a Lan,
        kind: &DaemonKind,
        mode: Mode,
        extra: &str,
        env: Vec<(OsString, OsString)>,
    ) -> Ring<'a> {
        let dir = TempDir::new("bench-multipath");
        let config = dir.path().join("spread.conf");
        let extra = format!("{}{extra}", kind.config_lines(dir.path()));
        std::fs::write(&config, mode.config(lan, &extra)).expect("config");
        let daemons = (0..DAEMONS)
            .map(|i| {
                if let Some(socket_dir) = kind.fixed_socket_dir() {
                    // The original's shared socket name: gone, it cannot let a daemon started
                    // before answer the readiness probe of this one.
                    let _ = std::fs::remove_file(socket_dir.join(PORT.to_string()));
                }
                lan.launch(i, kind, &config, PORT, env.clone())
            })
            .collect();
        Ring {
            daemons,
            lan,
            _dir: dir,
        }
    }

    /// A session on daemon `i`, over TCP to its address from inside its namespace.
    fn connect(&self, i: usize, user: &str) -> Mailbox {
        self.lan.connect(i, PORT, user)
    }

    fn logs(&self) -> Vec<String> {
        self.daemons.iter().map(Daemon::log).collect()
    }

    /// Copies the daemons' logs out of their directories (removed with the daemons), for a
    /// failure message: where they are.
    fn keep_logs(&self) -> String {
        let dir = std::env::temp_dir().join(format!("spread-bench-logs-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        for (i, log) in self.logs().iter().enumerate() {
            let _ = std::fs::write(dir.join(format!("daemon{}.log", i + 1)), log);
        }
        format!("daemon logs kept in {}", dir.display())
    }
}

/// Our daemon: the one built with this benchmark, or `SPREAD_BENCH_OURS`.
fn ours() -> DaemonKind {
    match std::env::var_os("SPREAD_BENCH_OURS") {
        Some(program) => DaemonKind {
            program: PathBuf::from(program),
            ..DaemonKind::ours()
        },
        None => DaemonKind::ours(),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// CPU time (user and system) the daemons of `ring` used so far, from /proc.
fn daemons_cpu(ring: &Ring) -> Duration {
    // SAFETY: sysconf(3) has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let total: u64 = ring
        .daemons
        .iter()
        .map(|d| {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", d.pid())).unwrap_or_default();
            // Fields after the command name (which may hold spaces): utime and stime are the
            // 12th and 13th.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    Duration::from_micros(total * 1_000_000 / ticks)
}

/// One throughput run: msg/s (mean of the receivers) and the daemons' CPU time per message.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    cpu_per_message: Duration,
    /// Data packets the daemons sent again on request.
    retransmitted: u64,
    /// Bytes the sender's host sent per message, over all its networks (frames without the
    /// Ethernet preamble and gaps).
    wire_bytes: u64,
}

/// Throughput of every mode, `rounds` times, each round in another order.
fn throughput_rounds(lan: &Lan, modes: &[Mode], rounds: usize, messages: usize, label: &str) {
    let ours = ours();
    let mut runs: HashMap<&str, Vec<Run>> = HashMap::new();
    let mut ratios: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        let mut order = modes.to_vec();
        order.rotate_left(round % modes.len());
        let mut this_round = HashMap::new();
        for &mode in &order {
            // A receiver starved of CPU by other work on the machine must not be cut off.
            let mut ring = Ring::start(lan, &ours, mode, "MaxSessionMessages = 100000\n", Vec::new());
            let sender = ring.connect(0, "sender");
            let receivers = (1..DAEMONS)
                .map(|i| ring.connect(i, &format!("recv{i}")))
                .collect();
            let cpu = daemons_cpu(&ring);
            let sent_bytes = interface_counter(lan, 0, "tx_bytes");
            let at = throughput(sender, receivers, b"throughput", messages);
            let cpu_per_message = (daemons_cpu(&ring) - cpu) / messages as u32;
            let wire_bytes = (interface_counter(lan, 0, "tx_bytes") - sent_bytes) / messages as u64;
            for d in &mut ring.daemons {
                d.terminate(Duration::from_secs(10));
            }
            let logs = ring.logs();
            let run = Run {
                rate: at.iter().sum::<f64>() / at.len() as f64,
                cpu_per_message,
                retransmitted: logged_sum(&logs, "ring: ", "packets_retransmitted: "),
                wire_bytes,
            };
            this_round.insert(mode.name(), run);
        }
        // Ratios to the single network, when it was measured.
        let single = this_round
            .get(Mode::Single.name())
            .map_or(f64::NAN, |r: &Run| r.rate);
        let text: Vec<String> = modes
            .iter()
            .map(|m| {
                let run = this_round[m.name()];
                runs.entry(m.name()).or_default().push(run);
                ratios.entry(m.name()).or_default().push(run.rate / single);
                format!(
                    "{} {:.0} ({:.2}x, {:.1} us, {}, {} B)",
                    m.name(),
                    run.rate,
                    run.rate / single,
                    run.cpu_per_message.as_secs_f64() * 1e6,
                    run.retransmitted,
                    run.wire_bytes
                )
            })
            .collect();
        println!(
            "throughput{label} round {} (order {:?}): {} msg/s (ratio to single, daemons' CPU per message, retransmissions, bytes sent by the sender's host per message)",
            round + 1,
            order.iter().map(|m| m.name()).collect::<Vec<_>>(),
            text.join(", ")
        );
    }
    let text: Vec<String> = modes
        .iter()
        .map(|m| {
            let of = |f: fn(&Run) -> f64| median(&runs[m.name()].iter().map(f).collect::<Vec<_>>());
            format!(
                "{} {:.0} msg/s ({:.2}x, {:.1} us)",
                m.name(),
                of(|r| r.rate),
                median(&ratios[m.name()]),
                of(|r| r.cpu_per_message.as_secs_f64() * 1e6)
            )
        })
        .collect();
    println!(
        "throughput{label} medians over {rounds} rounds: {}",
        text.join(", ")
    );
}

/// Makes every network a link of `rate` (tc syntax, e.g. `100mbit`) out of every host: a
/// token bucket on each host's `eth<j>`, as a switch port of that speed would pace it. The
/// bucket holds a few packets (a port sends back to back, never faster), and its queue
/// [`LINK_QUEUE`] of traffic, more than a ring's window of packets in flight, so that the
/// queue paces the sender instead of dropping. `None` removes them again.
fn limit_links(lan: &Lan, rate: Option<&str>) {
    for i in 0..DAEMONS {
        for j in 0..NETWORKS {
            let device = format!("eth{j}");
            let mut args = vec!["tc", "qdisc"];
            match rate {
                Some(rate) => args.extend([
                    "replace", "dev", &device, "root", "tbf", "rate", rate, "burst", "8kb", "latency",
                    LINK_QUEUE,
                ]),
                None => args.extend(["del", "dev", &device, "root"]),
            }
            let prefix = lan.exec_prefix(i);
            let output = Command::new(&prefix[0])
                .args(&prefix[1..])
                .args(&args)
                .output()
                .expect("run tc");
            assert!(
                output.status.success() || rate.is_none(),
                "{}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// What a streaming client received.
enum Got {
    Data { at: Instant, sender: u8, k: u64 },
    View { members: usize, service: u32 },
}

/// A client on one daemon, joined to [`STREAM_GROUP`]; a thread records what it receives.
struct Streamer {
    mbox: Mailbox,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Streamer {
    fn join(ring: &Ring, i: usize, user: &str) -> Streamer {
        let mbox = ring.connect(i, user);
        mbox.join(STREAM_GROUP).expect("join");
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        thread::spawn(move || {
            let mut names = [[0u8; NAME_LEN]; 16];
            let mut body = [0u8; 64];
            while let Some((service, sender, members, len)) = receive(mbox, &mut names, &mut body) {
                let at = Instant::now();
                let event = if service & MEMBERSHIP_MESS != 0 {
                    if name_text(&sender) != STREAM_GROUP {
                        continue;
                    }
                    Got::View { members, service }
                } else {
                    assert_eq!(len, 9, "a stream message");
                    Got::Data {
                        at,
                        sender: body[0],
                        k: u64::from_le_bytes(body[1..9].try_into().unwrap()),
                    }
                };
                log.lock().unwrap().push(event);
            }
        });
        Streamer { mbox, got }
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Vec<Got>> {
        self.got.lock().unwrap()
    }

    /// The members of its last regular view, 0 before any.
    fn view_size(&self) -> usize {
        self.events()
            .iter()
            .rev()
            .find_map(|g| match g {
                Got::View { members, service, .. } if service & REG_MEMB_MESS != 0 => Some(*members),
                _ => None,
            })
            .unwrap_or(0)
    }

    fn data_count(&self) -> usize {
        self.events()
            .iter()
            .filter(|g| matches!(g, Got::Data { .. }))
            .count()
    }

    /// Sends messages `(i, k)` every [`STREAM_PERIOD`] from a thread until `stop`; returns
    /// how many it sent.
    fn stream(&self, i: u8, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
        let mbox = self.mbox;
        thread::spawn(move || {
            let started = Instant::now();
            let mut k = 0u64;
            // Bounded even if never stopped.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(3600) {
                let mut body = [i; 9];
                body[1..].copy_from_slice(&k.to_le_bytes());
                if mbox.multicast(AGREED_MESS, STREAM_GROUP, 0, &[&body]).is_err() {
                    break;
                }
                k += 1;
                sleep(STREAM_PERIOD);
            }
            k
        })
    }
}

/// A client on every daemon, each seeing all of them in its view.
fn streamers(ring: &Ring, user: &str) -> Vec<Streamer> {
    let clients: Vec<Streamer> = (0..DAEMONS)
        .map(|i| Streamer::join(ring, i, &format!("{user}{i}")))
        .collect();
    wait_until("a full view at every client", PHASE_LIMIT, || {
        clients.iter().all(|c| c.view_size() == DAEMONS)
    });
    clients
}

/// Polls `done` every 20 ms for at most `limit`; whether it came true.
fn poll_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(20));
    }
    true
}

/// [`poll_until`], panicking after `limit`.
fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(poll_until(limit, done), "no {what} within {limit:?}");
}

/// Milliseconds since the epoch of a daemon log line's timestamp (`[2026-11-26T16:35:00.123Z
/// ...`, env_logger's format with milliseconds).
fn log_millis(line: &str) -> Option<i64> {
    let stamp = line.strip_prefix('[')?.get(..23)?;
    let num = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

fn wall_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Times (ms since the epoch) of the link layer's "network `network`: old -> up|down" lines
/// in `logs` from `from` on, before `until`.
fn link_changes(logs: &[String], network: usize, up: bool, from: i64, until: i64) -> Vec<i64> {
    let on = format!("network {network}: ");
    let to = if up { "-> up " } else { "-> down " };
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|l| l.contains("link: daemon ") && l.contains(&on) && l.contains(to))
        .filter_map(log_millis)
        .filter(|&t| t >= from && t < until)
        .collect()
}

/// One cable pull: which, and when (monotonic for the clients' gaps, wall clock for logs).
struct Pull {
    host: usize,
    network: usize,
    pulled: Instant,
    pulled_ms: i64,
    plugged: Instant,
    plugged_ms: i64,
}

/// The longest time between consecutive `times` (sorted) that overlaps `[from, to)`.
fn longest_gap(times: &[Instant], from: Instant, to: Instant) -> Duration {
    times
        .windows(2)
        .filter(|w| w[1] > from && w[0] < to)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

fn millis(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn spread_text(label: &str, mut values: Vec<Duration>) -> String {
    if values.is_empty() {
        return format!("{label}: none");
    }
    values.sort();
    format!(
        "{label}: p50 {} p90 {} max {} (of {})",
        millis(percentile(&values, 50)),
        millis(percentile(&values, 90)),
        millis(values[values.len() - 1]),
        values.len()
    )
}

/// Streams on every daemon of `ring` while `pulls` cables are pulled and plugged back on
/// `networks`; prints the figures. `ours`: the daemons log link changes, and a membership
/// change or a difference between the clients' sequences fails the benchmark.
fn failover(ring: &Ring, label: &str, pulls: usize, networks: usize, ours: bool) {
    let lan = ring.lan;
    let clients = streamers(ring, "s");
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let senders: Vec<JoinHandle<u64>> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| c.stream(i as u8, stop.clone()))
        .collect();
    let views_before: Vec<usize> = clients
        .iter()
        .map(|c| {
            c.events()
                .iter()
                .filter(|g| matches!(g, Got::View { .. }))
                .count()
        })
        .collect();
    sleep(Duration::from_secs(1));
    let mut done: Vec<Pull> = Vec::new();
    // When each network may be pulled again.
    let mut ready = vec![Instant::now(); networks];
    for p in 0..pulls {
        let (host, network) = (p % DAEMONS, p % networks);
        if ours {
            // Also after links that came up at the start (a link may fail and come back
            // while the ring forms).
            let last_up = link_changes(&ring.logs(), network, true, 0, i64::MAX)
                .into_iter()
                .max()
                .unwrap_or(0);
            let since = wall_millis(SystemTime::now()) - last_up;
            let left = DAMPING_SPACING.saturating_sub(Duration::from_millis(since.max(0) as u64));
            ready[network] = ready[network].max(Instant::now() + left);
        }
        sleep(ready[network].saturating_duration_since(Instant::now()));
        let pulled_ms = wall_millis(SystemTime::now());
        let pulled = Instant::now();
        lan.set_cable(host, network, false);
        sleep(PULL_HOLD);
        let plugged_ms = wall_millis(SystemTime::now());
        let plugged = Instant::now();
        lan.set_cable(host, network, true);
        // Every link that went down is up again; every client is in a full view again.
        let back = poll_until(Duration::from_secs(120), || {
            let logs = ring.logs();
            let now = wall_millis(SystemTime::now()) + 1;
            let downs = link_changes(&logs, network, false, pulled_ms, now).len();
            let ups = link_changes(&logs, network, true, plugged_ms, now).len();
            ups >= downs && clients.iter().all(|c| c.view_size() == DAEMONS)
        });
        assert!(back || !ours, "{label}: links or views not back within 120 s");
        ready[network] = Instant::now()
            + if ours {
                DAMPING_SPACING
            } else {
                Duration::from_secs(5)
            };
        done.push(Pull {
            host,
            network,
            pulled,
            pulled_ms,
            plugged,
            plugged_ms,
        });
        if !back {
            println!(
                "{label}: pull {}: the ring did not merge back within 120 s; no more pulls",
                p + 1
            );
            break;
        }
        println!(
            "{label}: pull {}/{pulls}: daemon {} network {network}, back after {:.1?}",
            p + 1,
            host + 1,
            plugged.elapsed() + PULL_HOLD
        );
    }
    sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let ended = Instant::now();
    let sent: Vec<u64> = senders.into_iter().map(|s| s.join().expect("sender")).collect();
    let total = sent.iter().sum::<u64>() as usize;
    if ours {
        wait_until("every streamed message at every client", PHASE_LIMIT, || {
            clients.iter().all(|c| c.data_count() >= total)
        });
    } else {
        sleep(Duration::from_secs(5));
    }

    // Gaps between deliveries at each client, the longest of the clients per window.
    let times: Vec<Vec<Instant>> = clients
        .iter()
        .map(|c| {
            c.events()
                .iter()
                .filter_map(|g| match g {
                    Got::Data { at, .. } => Some(*at),
                    Got::View { .. } => None,
                })
                .collect()
        })
        .collect();
    let worst = |from: Instant, to: Instant| {
        times
            .iter()
            .map(|t| longest_gap(t, from, to))
            .max()
            .unwrap_or_default()
    };
    let quiet = worst(
        began + Duration::from_millis(200),
        done.first().map_or(ended, |p| p.pulled),
    );
    let mut at_pull = Vec::new();
    let mut at_replug = Vec::new();
    for (k, p) in done.iter().enumerate() {
        let next = done.get(k + 1).map_or(ended, |n| n.pulled);
        at_pull.push(worst(p.pulled, p.plugged));
        at_replug.push(worst(p.plugged, next));
    }
    println!(
        "{label}: {} messages streamed by {DAEMONS} clients over {:.0?}; longest gap before the first pull {}",
        total,
        ended - began,
        millis(quiet)
    );
    let gaps: Vec<String> = done
        .iter()
        .zip(at_pull.iter().zip(&at_replug))
        .map(|(p, (a, b))| {
            format!(
                "d{}n{} {}/{}",
                p.host + 1,
                p.network,
                a.as_millis(),
                b.as_millis()
            )
        })
        .collect();
    println!(
        "{label}: longest gap per pull (ms, pulled/replugged): {}",
        gaps.join(", ")
    );
    println!("{label}: {}", spread_text("stall from pull to replug", at_pull));
    println!("{label}: {}", spread_text("stall after replug", at_replug));

    let views: Vec<usize> = clients
        .iter()
        .zip(&views_before)
        .map(|(c, &before)| {
            c.events()
                .iter()
                .filter(|g| matches!(g, Got::View { .. }))
                .count()
                - before
        })
        .collect();
    println!("{label}: membership notices at the clients during the pulls: {views:?}");
    if !ours {
        return;
    }

    let logs = ring.logs();
    let mut detect = Vec::new();
    let mut reenable = Vec::new();
    let mut all_sides_down = Vec::new();
    let mut all_sides_up = Vec::new();
    let end_ms = wall_millis(SystemTime::now()) + 1;
    for (k, p) in done.iter().enumerate() {
        let next_ms = done.get(k + 1).map_or(end_ms, |n| n.pulled_ms);
        let since = |t: i64, from: i64| Duration::from_millis((t - from).max(0) as u64);
        let downs = link_changes(&logs, p.network, false, p.pulled_ms, next_ms);
        let ups = link_changes(&logs, p.network, true, p.plugged_ms, next_ms);
        detect.extend(downs.iter().map(|&t| since(t, p.pulled_ms)));
        reenable.extend(ups.iter().map(|&t| since(t, p.plugged_ms)));
        all_sides_down.extend(downs.iter().max().map(|&t| since(t, p.pulled_ms)));
        all_sides_up.extend(ups.iter().max().map(|&t| since(t, p.plugged_ms)));
    }
    println!(
        "{label}: {}",
        spread_text("pull to link marked down (each link, each side)", detect)
    );
    println!(
        "{label}: {}",
        spread_text("pull to last side marking it down", all_sides_down)
    );
    println!(
        "{label}: {}",
        spread_text("replug to link up again (each)", reenable)
    );
    println!(
        "{label}: {}",
        spread_text("replug to last side up again", all_sides_up)
    );

    assert!(
        views.iter().all(|&v| v == 0),
        "{label}: membership changes {views:?}; {}",
        ring.keep_logs()
    );
    let sequences: Vec<Vec<(u8, u64)>> = clients
        .iter()
        .map(|c| {
            c.events()
                .iter()
                .filter_map(|g| match g {
                    Got::Data { sender, k, .. } => Some((*sender, *k)),
                    Got::View { .. } => None,
                })
                .collect()
        })
        .collect();
    for (i, s) in sequences.iter().enumerate() {
        assert_eq!(
            s.len(),
            total,
            "{label}: client {} got {} of {total}",
            i + 1,
            s.len()
        );
        assert!(
            s == &sequences[0],
            "{label}: client {} has another sequence",
            i + 1
        );
    }
    let mut next = [0u64; DAEMONS];
    for &(sender, k) in &sequences[0] {
        assert_eq!(k, next[sender as usize], "{label}: FIFO of sender {sender}");
        next[sender as usize] += 1;
    }
    println!("{label}: every client got the same {total} messages in one order, no membership change");
}

/// Datagrams received by the hosts' interfaces of every network, from the kernel's counters.
fn interface_packets(lan: &Lan) -> u64 {
    (0..DAEMONS)
        .map(|i| interface_counter(lan, i, "rx_packets"))
        .sum()
}

/// The kernel's `counter` (as in /sys/class/net/*/statistics) of host `i`, summed over its
/// networks.
fn interface_counter(lan: &Lan, i: usize, counter: &str) -> u64 {
    let files: Vec<String> = (0..NETWORKS)
        .map(|j| format!("/sys/class/net/eth{j}/statistics/{counter}"))
        .collect();
    let prefix = lan.exec_prefix(i);
    let output = Command::new(&prefix[0])
        .args(&prefix[1..])
        .arg("cat")
        .args(&files)
        .output()
        .expect("read interface counters");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// Sum over `logs` of every number that follows `key` (e.g. `received: `) on lines
/// containing `line`.
fn logged_sum(logs: &[String], line: &str, key: &str) -> u64 {
    logs.iter()
        .flat_map(|log| log.lines())
        .filter(|l| l.contains(line))
        .flat_map(|l| l.split(key).skip(1))
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// What a soak client checks as it receives: every sender's messages in order, and a digest
/// of the whole sequence to compare between clients.
#[derive(Default)]
struct SoakTally {
    received: AtomicUsize,
    /// Its own messages delivered back: the sender's window.
    own: AtomicUsize,
    views: AtomicUsize,
    /// (count, FNV-1a digest of (sender, k) in delivery order, FIFO violations)
    digest: Mutex<(u64, u64, u64)>,
}

fn soak(lan: &Lan) {
    let packets = env_usize("SPREAD_SOAK_PACKETS", 32_000_000) as u64;
    let mode = Mode::parse(&std::env::var("SPREAD_SOAK_MODE").unwrap_or_else(|_| "hybrid".into()));
    let faults = std::env::var("SPREAD_SOAK_FAULTS")
        .unwrap_or_else(|_| "net1:delay=1500ms,net1:dup=0.3,net1:reorder=0.1,after=8s".into());
    let limit = Duration::from_secs(env_usize("SPREAD_SOAK_HOURS", 4) as u64 * 3600);
    let env = vec![(OsString::from(FAULTS_VAR), OsString::from(&faults))];
    let mut ring = Ring::start(lan, &ours(), mode, "MaxSessionMessages = 100000\n", env);
    let clients: Vec<(Mailbox, Arc<SoakTally>)> = (0..DAEMONS)
        .map(|i| {
            let mbox = ring.connect(i, &format!("soak{i}"));
            mbox.join(STREAM_GROUP).expect("join");
            let tally = Arc::new(SoakTally::default());
            let t = tally.clone();
            thread::spawn(move || {
                let mut names = [[0u8; NAME_LEN]; 16];
                let mut body = [0u8; 64];
                let mut next = [0u64; DAEMONS];
                while let Some((service, _, members, _)) = receive(mbox, &mut names, &mut body) {
                    if service & MEMBERSHIP_MESS != 0 {
                        // The first full view opens the stream; anything after is a change.
                        if service & REG_MEMB_MESS != 0
                            && members == DAEMONS
                            && t.views.load(Ordering::Relaxed) == 0
                        {
                            t.views.store(1, Ordering::Relaxed);
                        } else if t.views.load(Ordering::Relaxed) > 0 {
                            t.views.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let sender = usize::from(body[0]);
                    let k = u64::from_le_bytes(body[1..9].try_into().unwrap());
                    let mut d = t.digest.lock().unwrap();
                    d.0 += 1;
                    d.1 = (d.1 ^ (k << 8 | sender as u64)).wrapping_mul(0x100_0000_01b3);
                    if next.get(sender) != Some(&k) {
                        d.2 += 1;
                    }
                    if let Some(n) = next.get_mut(sender) {
                        *n = k + 1;
                    }
                    drop(d);
                    t.received.fetch_add(1, Ordering::Relaxed);
                    if sender == i {
                        t.own.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            (mbox, tally)
        })
        .collect();
    wait_until("a full view at every soak client", PHASE_LIMIT, || {
        clients.iter().all(|(_, t)| t.views.load(Ordering::Relaxed) == 1)
    });
    println!(
        "soak: {} mode, faults {faults:?}, until the daemons received {packets} datagrams",
        mode.name()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<JoinHandle<u64>> = clients
        .iter()
        .enumerate()
        .map(|(i, (mbox, tally))| {
            let (mbox, tally, stop) = (*mbox, tally.clone(), stop.clone());
            thread::spawn(move || {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if (k as usize).saturating_sub(tally.own.load(Ordering::Relaxed)) >= SOAK_WINDOW {
                        sleep(Duration::from_micros(200));
                        continue;
                    }
                    let mut body = [i as u8; 9];
                    body[1..].copy_from_slice(&k.to_le_bytes());
                    if mbox.multicast(AGREED_MESS, STREAM_GROUP, 0, &[&body]).is_err() {
                        break;
                    }
                    k += 1;
                }
                k
            })
        })
        .collect();
    let base = interface_packets(lan);
    let began = Instant::now();
    let mut reported = Instant::now();
    loop {
        sleep(Duration::from_secs(1));
        let seen = interface_packets(lan) - base;
        let exited: Vec<usize> = (0..DAEMONS).filter(|&i| !ring.daemons[i].is_running()).collect();
        assert!(
            exited.is_empty(),
            "soak: daemons {exited:?} (from 0) exited; {}",
            ring.keep_logs()
        );
        let changes: Vec<usize> = clients
            .iter()
            .map(|(_, t)| t.views.load(Ordering::Relaxed) - 1)
            .collect();
        if changes.iter().any(|&c| c > 0) {
            // The logs of what follows too.
            sleep(Duration::from_secs(5));
            panic!(
                "soak: membership changes {changes:?} after {:.0?}, {seen} datagrams; {}",
                began.elapsed(),
                ring.keep_logs()
            );
        }
        if reported.elapsed() >= Duration::from_secs(30) {
            reported = Instant::now();
            println!(
                "soak: {seen} datagrams after {:.0?}, {} messages delivered at client 1",
                began.elapsed(),
                clients[0].1.received.load(Ordering::Relaxed)
            );
        }
        if seen >= packets {
            break;
        }
        assert!(
            began.elapsed() < limit,
            "soak: only {seen} datagrams within {limit:?}"
        );
    }
    let duration = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent = senders
        .into_iter()
        .map(|s| s.join().expect("sender"))
        .sum::<u64>() as usize;
    wait_until("every soak message at every client", PHASE_LIMIT, || {
        clients
            .iter()
            .all(|(_, t)| t.received.load(Ordering::Relaxed) >= sent)
    });
    let digests: Vec<(u64, u64, u64)> = clients.iter().map(|(_, t)| *t.digest.lock().unwrap()).collect();
    for (i, d) in digests.iter().enumerate() {
        assert_eq!(d.0 as usize, sent, "soak: client {} got {} of {sent}", i + 1, d.0);
        assert_eq!(d.2, 0, "soak: client {}: {} FIFO violations", i + 1, d.2);
        assert_eq!(d.1, digests[0].1, "soak: client {} has another sequence", i + 1);
    }
    for d in &mut ring.daemons {
        assert!(
            d.terminate(Duration::from_secs(10)).success(),
            "daemon exit:\n{}",
            d.log()
        );
    }
    let logs = ring.logs();
    let received = logged_sum(&logs, "daemon network", "received: ");
    println!(
        "soak: {:.0?} for {received} datagrams received by the daemons ({:.0}/s; interfaces counted {}); {sent} messages, every client the same sequence, no membership change",
        duration,
        received as f64 / duration.as_secs_f64(),
        interface_packets(lan) - base
    );
    println!(
        "soak: link layer dropped {} duplicate copies, {} copies of data the ring had and {} stale token copies; ring dropped {} duplicate tokens, {} stale tokens, {} duplicate packets, {} stale requests",
        logged_sum(&logs, "links: ", "\"duplicate\":"),
        logged_sum(&logs, "links: ", "\"late\":"),
        logged_sum(&logs, "links: ", "\"stale_token\":"),
        logged_sum(&logs, "ring: ", "duplicate_tokens: "),
        logged_sum(&logs, "ring: ", "stale_tokens: "),
        logged_sum(&logs, "ring: ", "duplicate_packets: "),
        logged_sum(&logs, "ring: ", "stale_requests: "),
    );
    let downs: Vec<usize> = (0..NETWORKS)
        .map(|j| link_changes(&logs, j, false, 0, i64::MAX).len())
        .collect();
    println!("soak: link down transitions logged per network: {downs:?}");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument may follow. Neither changes anything.
    if let Some(why) = unavailable() {
        eprintln!("multipath bench skipped: network namespaces unavailable: {why}");
        return;
    }
    let lan = Lan::with_networks(DAEMONS, NETWORKS);
    if std::env::var("SPREAD_BENCH_SOAK").is_ok_and(|v| v == "1") {
        soak(&lan);
        return;
    }
    let rounds = env_usize("SPREAD_BENCH_ROUNDS", 3);
    let messages = env_usize("SPREAD_BENCH_MESSAGES", 60_000).max(2);
    let modes: Vec<Mode> = std::env::var("SPREAD_BENCH_MODES")
        .unwrap_or_else(|_| "single,active,hybrid,passive".into())
        .split(',')
        .filter(|m| !m.is_empty())
        .map(Mode::parse)
        .collect();
    if rounds > 0 && !modes.is_empty() {
        throughput_rounds(&lan, &modes, rounds, messages, "");
        let rate = std::env::var("SPREAD_BENCH_RATE").unwrap_or_else(|_| "100mbit".into());
        if !rate.is_empty() {
            let messages = env_usize("SPREAD_BENCH_RATE_MESSAGES", 20_000).max(2);
            limit_links(&lan, Some(&rate));
            throughput_rounds(&lan, &modes, rounds, messages, &format!(" at {rate}"));
            limit_links(&lan, None);
        }
    }

    let pulls = env_usize("SPREAD_BENCH_PULLS", 10);
    let modes =
        std::env::var("SPREAD_BENCH_FAILOVER_MODES").unwrap_or_else(|_| "hybrid,active,passive".into());
    for mode in modes.split(',').filter(|m| !m.is_empty()).map(Mode::parse) {
        let ring = Ring::start(&lan, &ours(), mode, "", Vec::new());
        failover(&ring, mode.name(), pulls, NETWORKS, true);
    }
    if let Some(program) = std::env::var_os("SPREAD_BENCH_OTHER_DAEMON") {
        let kind = DaemonKind {
            program: PathBuf::from(program),
            original: true,
            socket_dir: None,
        };
        let ring = Ring::start(&lan, &kind, Mode::Single, "", Vec::new());
        failover(
            &ring,
            "other, one network",
            env_usize("SPREAD_BENCH_OTHER_PULLS", 3),
            1,
            false,
        );
    }
}
