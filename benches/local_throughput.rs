//! Throughput of one daemon: one client sends 1 KB AGREED messages to a group it has joined and
//! receives them back over the Unix socket, keeping at most 200 in flight (as the original's
//! flooder does). Not a timed test: it prints figures to compare within one run.
//!
//!     cargo bench --bench local_throughput
//!
//! Environment:
//! - `SPREAD_BENCH_MESSAGES` (default 100000), `SPREAD_BENCH_BYTES` (default 1000),
//!   `SPREAD_BENCH_ROUNDS` (default 3).
//! - `SPREAD_BENCH_OTHER_DAEMON`: path of another `spread` daemon binary (the original 5.0.1
//!   build, say) to measure with the same client in the same run. It is started as the
//!   original (tests/support: root-friendly `RuntimeDir`/`DaemonUser`/`DaemonGroup` lines, and
//!   its socket in `/tmp/<port>` whatever `SPREAD_SOCKET_DIR` says).

#[path = "../tests/support/mod.rs"]
mod support;

use spread::client::{connect, Mailbox, SOCKET_DIR_VAR};
use spread::wire::{Name, AGREED_MESS, NAME_LEN};
use std::path::PathBuf;
use std::time::Instant;
use support::{Daemon, DaemonKind};

const GROUP: &[u8] = b"flooder";
const IN_FLIGHT: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Connects to a daemon that serves clients already.
fn connect_to(daemon: &Daemon) -> Mailbox {
    // The library reads the socket directory at connect time; nothing else runs yet.
    std::env::set_var(SOCKET_DIR_VAR, &daemon.socket_dir);
    let name = daemon.port.to_string();
    match connect(Some(name.as_bytes()), b"flooder", 0, false, None) {
        Ok(conn) => conn.mailbox,
        Err(e) => panic!("cannot connect to port {}: {e:?}", daemon.port),
    }
}

/// Sends `count` messages of `bytes` and receives them back; returns messages per second.
fn flood(mbox: Mailbox, count: usize, bytes: usize) -> f64 {
    let payload = vec![0x5au8; bytes];
    let mut groups = [[0u8; NAME_LEN]; 8];
    let mut body = vec![0u8; bytes.max(1024)];
    let mut receive_one = |mbox: Mailbox, groups: &mut [Name]| {
        let got = mbox
            .receive(false, groups, &mut [&mut body[..]])
            .expect("receive");
        got.service
    };
    mbox.join(GROUP).expect("join");
    // One round trip first: a daemon may accept clients before its ring is operational (the
    // original does, for a few seconds after start), and that wait is not throughput.
    mbox.multicast(AGREED_MESS, GROUP, 0, &[&payload])
        .expect("multicast");
    receive_one(mbox, &mut groups);
    let started = Instant::now();
    let mut received = 0usize;
    for sent in 1..=count {
        mbox.multicast(AGREED_MESS, GROUP, 0, &[&payload])
            .expect("multicast");
        if sent > IN_FLIGHT {
            let service = receive_one(mbox, &mut groups);
            assert_eq!(
                service & AGREED_MESS,
                AGREED_MESS,
                "unexpected message 0x{service:x}"
            );
            received += 1;
        }
    }
    while received < count {
        receive_one(mbox, &mut groups);
        received += 1;
    }
    let elapsed = started.elapsed();
    count as f64 / elapsed.as_secs_f64()
}

fn measure(kind: &DaemonKind, count: usize, bytes: usize) -> f64 {
    let daemon = Daemon::start(kind);
    let mbox = connect_to(&daemon);
    let rate = flood(mbox, count, bytes);
    mbox.disconnect().expect("disconnect");
    drop(daemon);
    rate
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument may follow. Neither changes anything.
    let count = env_usize("SPREAD_BENCH_MESSAGES", 100_000);
    let bytes = env_usize("SPREAD_BENCH_BYTES", 1000);
    let rounds = env_usize("SPREAD_BENCH_ROUNDS", 3);
    let ours = DaemonKind::ours();
    // Started with the original's configuration lines and socket directory.
    let other = std::env::var_os("SPREAD_BENCH_OTHER_DAEMON").map(|program| DaemonKind {
        program: PathBuf::from(program),
        original: true,
        socket_dir: None,
    });
    println!(
        "local_throughput: {count} AGREED messages of {bytes} bytes, {IN_FLIGHT} in flight, Unix socket"
    );
    for round in 1..=rounds {
        let rate = measure(&ours, count, bytes);
        print!(
            "round {round}: ours {rate:>9.0} msg/s ({:.1} MB/s)",
            rate * bytes as f64 / 1e6
        );
        if let Some(other) = &other {
            let rate_other = measure(other, count, bytes);
            print!(
                "   other {rate_other:>9.0} msg/s   ratio {:.2}",
                rate / rate_other
            );
        }
        println!();
    }
}
