//! Three daemons in network namespaces on one bridge (one broadcast segment, default LAN
//! timeouts), measured with our client library. Not a timed test: it prints figures to compare
//! within one run.
//!
//!     cargo bench --bench ring
//!
//! Figures:
//! - formation: from the start of the first daemon (they start one after the other, each
//!   waited for until it serves clients) to clients on all three seeing each other in a group;
//! - throughput: one sender on daemon 1 sends 1 KB AGREED messages to a group, keeping at most
//!   200 in flight by receiving its own (as the original's flooder does); read-only receivers
//!   on daemons 2 and 3 time their first to their last message;
//! - latency: a client on daemon 1 sends a small RELIABLE message to the private group of a
//!   client on daemon 2, which echoes it back; percentiles of the round trip;
//! - failover: daemon 3 is SIGKILLed; the time until the clients on daemons 1 and 2 see the
//!   network membership change of their group; then daemon 3 is restarted and merges back.
//!
//! Environment:
//! - `SPREAD_BENCH_MESSAGES` (default 50000): messages of the throughput run;
//! - `SPREAD_BENCH_ROUND_TRIPS` (default 2000, after 200 of warm-up);
//! - `SPREAD_BENCH_FAILOVERS` (default 3): kills of daemon 3;
//! - `SPREAD_BENCH_OTHER_DAEMON`: path of another `spread` daemon binary (the original 5.0.1
//!   build, say) measured the same way in the same run. It is started as the original (its
//!   configuration lines; its Unix socket is `/tmp/<port>` in every namespace, so clients use
//!   TCP to the daemon's LAN address).
//!
//! Needs root (network namespaces). Every phase is bounded; the namespaces and daemons are
//! removed at the end, also when a phase fails.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use spread::client::Mailbox;
use spread::wire::name::name_text;
use spread::wire::{CAUSED_BY_NETWORK, MEMBERSHIP_MESS, NAME_LEN, REG_MEMB_MESS, RELIABLE_MESS};
use support::bench::{env_usize, percentile, receive, throughput, within, IN_FLIGHT, PAYLOAD, PHASE_LIMIT};
use support::netns::{unavailable, Lan, BROADCAST};
use support::{free_port, Daemon, DaemonKind, TempDir};

const WARM_UP: usize = 200;
const DAEMONS: usize = 3;

/// One message as a watching client received it, with the time it arrived.
struct Event {
    at: Instant,
    service: u32,
    /// The group of a membership message.
    group: Vec<u8>,
    /// Members of a membership message.
    members: usize,
}

impl Event {
    fn is_view(&self, group: &[u8], members: usize) -> bool {
        self.service & REG_MEMB_MESS != 0 && self.group == group && self.members == members
    }
}

/// A thread that receives every message of `mbox` into a channel, until the session ends.
fn watch(mbox: Mailbox) -> Receiver<Event> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut names = [[0u8; NAME_LEN]; 16];
        let mut body = vec![0u8; 4096];
        while let Some((service, sender, members, _)) = receive(mbox, &mut names, &mut body) {
            let event = Event {
                at: Instant::now(),
                service,
                group: name_text(&sender).to_vec(),
                members,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
    });
    rx
}

/// Takes events until one satisfies `done`; returns it. Bounded by [`PHASE_LIMIT`].
fn wait_for(events: &Receiver<Event>, what: &str, done: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + PHASE_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(e) if done(&e) => return e,
            Ok(_) => {}
            Err(e) => panic!("no {what} within {PHASE_LIMIT:?} ({e})"),
        }
    }
}

/// Three daemons of one kind on a fresh LAN; all removed when dropped.
struct Ring {
    // Dropped before the LAN, which then removes the namespaces.
    daemons: Vec<Daemon>,
    kind: DaemonKind,
    port: u16,
    config: PathBuf,
    lan: Lan,
    _dir: TempDir,
}

impl Ring {
    fn start(kind: &DaemonKind) -> Ring {
        let lan = Lan::new(DAEMONS);
        let dir = TempDir::new("bench-ring");
        // Free of other users' /tmp/<port> too, which the original would take over.
        let port = free_port();
        let config = dir.path().join("spread.conf");
        let extra = kind.config_lines(dir.path());
        std::fs::write(&config, lan.config(BROADCAST.into(), port, &extra)).expect("config");
        let mut ring = Ring {
            daemons: Vec::new(),
            kind: kind.clone(),
            port,
            config,
            lan,
            _dir: dir,
        };
        for i in 0..DAEMONS {
            let daemon = ring.launch(i);
            ring.daemons.push(daemon);
        }
        ring
    }

    /// Starts daemon `i` and waits until it serves clients.
    fn launch(&self, i: usize) -> Daemon {
        if let Some(dir) = self.kind.fixed_socket_dir() {
            // The daemons share this socket name (the original's /tmp/<port>): gone, it cannot
            // let a daemon started before answer the readiness probe of this one.
            let _ = std::fs::remove_file(dir.join(self.port.to_string()));
        }
        self.lan
            .launch(i, &self.kind, &self.config, self.port, Vec::new())
    }

    /// A session on daemon `i`, over TCP to its LAN address from inside its namespace.
    fn connect(&self, i: usize, user: &str) -> Mailbox {
        self.lan.connect(i, self.port, user)
    }

    /// Sessions on every daemon joined to `group`, with their watching threads, once each
    /// sees all of them in its view.
    fn members(&self, group: &[u8], user: &str) -> Vec<(Mailbox, Receiver<Event>)> {
        let members: Vec<(Mailbox, Receiver<Event>)> = (0..DAEMONS)
            .map(|i| {
                let mbox = self.connect(i, &format!("{user}{i}"));
                mbox.join(group).expect("join");
                (mbox, watch(mbox))
            })
            .collect();
        for (_, events) in &members {
            wait_for(events, "full view", |e| e.is_view(group, DAEMONS));
        }
        members
    }

    fn kill(&self, i: usize) {
        let pid = self.daemons[i].pid() as i32;
        // SAFETY: kill(2) on a daemon this benchmark started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }
}

/// Messages per second at daemons 2 and 3 (see [`throughput`]).
fn flood(ring: &Ring, count: usize) -> Vec<f64> {
    let sender = ring.connect(0, "sender");
    let receivers = (1..DAEMONS)
        .map(|i| ring.connect(i, &format!("recv{i}")))
        .collect();
    throughput(sender, receivers, b"throughput", count)
}

/// Round trips of a small RELIABLE message from daemon 1 to a client on daemon 2 and back,
/// sorted.
fn latency(ring: &Ring, round_trips: usize) -> Vec<Duration> {
    let echo = ring.connect(1, "echo");
    let asker = ring.connect(0, "asker");
    let echo_group = echo.private_group().expect("private group");
    thread::spawn(move || {
        let mut names = [[0u8; NAME_LEN]; 16];
        let mut body = [0u8; 64];
        while let Some((service, sender, _, len)) = receive(echo, &mut names, &mut body) {
            if service & MEMBERSHIP_MESS == 0
                && echo
                    .multicast(RELIABLE_MESS, name_text(&sender), 0, &[&body[..len]])
                    .is_err()
            {
                return;
            }
        }
    });
    let mut times = within("round trips", move || {
        let mut names = [[0u8; NAME_LEN]; 16];
        let mut body = [0u8; 64];
        let mut times = Vec::with_capacity(round_trips);
        for k in 0..WARM_UP + round_trips {
            let question = (k as u64).to_le_bytes();
            let asked = Instant::now();
            asker
                .multicast(RELIABLE_MESS, name_text(&echo_group), 0, &[&question])
                .expect("multicast");
            loop {
                let (service, _, _, len) = receive(asker, &mut names, &mut body).expect("asker's session");
                if service & MEMBERSHIP_MESS == 0 {
                    assert_eq!(&body[..len], &question, "echo of another question");
                    break;
                }
            }
            if k >= WARM_UP {
                times.push(asked.elapsed());
            }
        }
        times
    });
    let _ = echo.disconnect();
    let _ = asker.disconnect();
    times.sort();
    times
}

/// One failover per repetition: for each, the time from the SIGKILL of daemon 3 to the network
/// view at the clients of daemons 1 and 2 (the later of the two), and the time the restarted
/// daemon took to merge back (from its start to the 3-member view at daemon 1).
fn failover(ring: &mut Ring, repetitions: usize) -> Vec<(Duration, Duration)> {
    const GROUP: &[u8] = b"failover";
    let victim = DAEMONS - 1;
    let mut members = ring.members(GROUP, "f");
    let mut figures = Vec::new();
    for round in 0..repetitions {
        ring.kill(victim);
        let killed = Instant::now();
        let detected = members[..victim]
            .iter()
            .map(|(_, events)| {
                let view = wait_for(events, "network view", |e| {
                    e.is_view(GROUP, DAEMONS - 1) && e.service & CAUSED_BY_NETWORK != 0
                });
                view.at - killed
            })
            .max()
            .expect("survivors");
        // Reaped (and its socket file removed) before its successor takes the port.
        drop(ring.daemons.pop());
        let started = Instant::now();
        let daemon = ring.launch(victim);
        ring.daemons.push(daemon);
        let back = ring.connect(victim, &format!("b{round}"));
        back.join(GROUP).expect("join");
        let merged = wait_for(&members[0].1, "merged view", |e| e.is_view(GROUP, DAEMONS));
        members[victim] = (back, watch(back));
        figures.push((detected, merged.at - started));
    }
    figures
}

/// Figures of one kind of daemon.
struct Figures {
    formed: Duration,
    rates: Vec<f64>,
    round_trips: Vec<Duration>,
    failovers: Vec<(Duration, Duration)>,
}

fn measure(kind: &DaemonKind, label: &str) -> Figures {
    let messages = env_usize("SPREAD_BENCH_MESSAGES", 50_000).max(2);
    let round_trips = env_usize("SPREAD_BENCH_ROUND_TRIPS", 2000).max(1);
    let repetitions = env_usize("SPREAD_BENCH_FAILOVERS", 3);
    let started = Instant::now();
    let mut ring = Ring::start(kind);
    let members = ring.members(b"formation", "m");
    let formed = started.elapsed();
    drop(members);
    println!("{label}: ring of {DAEMONS} formed {formed:.2?} after the first start");

    let rates = flood(&ring, messages);
    let text: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{label}: throughput {messages} x {PAYLOAD} B AGREED, {IN_FLIGHT} in flight: {} msg/s at daemons 2, 3",
        text.join(", ")
    );
    let times = latency(&ring, round_trips);
    println!(
        "{label}: RELIABLE round trip daemon 1 -> 2 -> 1 over {round_trips}: p50 {:.1?} p90 {:.1?} p99 {:.1?} max {:.1?}",
        percentile(&times, 50),
        percentile(&times, 90),
        percentile(&times, 99),
        times[times.len() - 1]
    );
    let failovers = failover(&mut ring, repetitions);
    for (k, (detected, merged)) in failovers.iter().enumerate() {
        println!(
            "{label}: failover {}: network view {detected:.3?} after SIGKILL; restarted daemon merged in {merged:.2?}",
            k + 1
        );
    }
    Figures {
        formed,
        rates,
        round_trips: times,
        failovers,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

fn compare(ours: &Figures, other: &Figures) {
    let rate = |f: &Figures| mean(f.rates.iter().copied());
    let p = |f: &Figures, q| percentile(&f.round_trips, q).as_secs_f64();
    let detect = |f: &Figures| mean(f.failovers.iter().map(|(d, _)| d.as_secs_f64()));
    let merge = |f: &Figures| mean(f.failovers.iter().map(|(_, m)| m.as_secs_f64()));
    println!("ratios ours / other (throughput: higher is better; times: lower is better):");
    println!("  throughput          {:.2}", rate(ours) / rate(other));
    println!("  round trip p50      {:.2}", p(ours, 50) / p(other, 50));
    println!("  round trip p99      {:.2}", p(ours, 99) / p(other, 99));
    if !ours.failovers.is_empty() && !other.failovers.is_empty() {
        println!("  failover detection  {:.2}", detect(ours) / detect(other));
        println!("  merge after restart {:.2}", merge(ours) / merge(other));
    }
    println!(
        "  ring formation      {:.2}",
        ours.formed.as_secs_f64() / other.formed.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument may follow. Neither changes anything.
    if let Some(why) = unavailable() {
        eprintln!("ring bench skipped: network namespaces unavailable: {why}");
        return;
    }
    let ours = measure(&DaemonKind::ours(), "ours");
    if let Some(program) = std::env::var_os("SPREAD_BENCH_OTHER_DAEMON") {
        let kind = DaemonKind {
            program: PathBuf::from(program),
            original: true,
            socket_dir: None,
        };
        let other = measure(&kind, "other");
        compare(&ours, &other);
    }
}
