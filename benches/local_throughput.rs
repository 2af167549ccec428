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
//!   build, say) to measure with the same client in the same run. It gets the same
//!   configuration file; the original needs root-friendly `RuntimeDir`/`DaemonUser`/`DaemonGroup`
//!   lines, which ours accepts, and listens on `/tmp/<port>` whatever `SPREAD_SOCKET_DIR` says.

use spread::client::{connect, Mailbox, SOCKET_DIR_VAR};
use spread::wire::{Name, AGREED_MESS, NAME_LEN};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &[u8] = b"flooder";
const IN_FLIGHT: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port whose TCP port and two UDP ports (as a daemon binds them) are free now.
fn free_port() -> u16 {
    for port in (24_000..30_000).step_by(7) {
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
            && !Path::new(&format!("/tmp/{port}")).exists();
        if free {
            return port;
        }
    }
    panic!("no free port in 24000..30000");
}

struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_daemon(binary: &Path, port: u16, tag: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("spread-bench-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(dir.join("run")).expect("temp dir");
    let conf = dir.join("spread.conf");
    std::fs::write(
        &conf,
        format!(
            "Spread_Segment 127.255.255.255:{port} {{\n    localhost 127.0.0.1 {{ 127.0.0.1 }}\n}}\n\
             RuntimeDir = {}\nDaemonUser = root\nDaemonGroup = root\n",
            dir.join("run").display()
        ),
    )
    .expect("config");
    let child = Command::new(binary)
        .args(["-n", "localhost", "-c"])
        .arg(&conf)
        .env(SOCKET_DIR_VAR, &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    Daemon { child, dir }
}

/// Connects, retrying while the daemon starts (the original needs a few seconds).
fn connect_when_ready(port: u16, socket_dir: &Path) -> Mailbox {
    // The library reads the socket directory at connect time; nothing else runs yet.
    std::env::set_var(SOCKET_DIR_VAR, socket_dir);
    let name = port.to_string();
    let started = Instant::now();
    loop {
        match connect(Some(name.as_bytes()), b"flooder", 0, false, None) {
            Ok(conn) => return conn.mailbox,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("cannot connect to port {port}: {e:?}"),
        }
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

fn measure(binary: &Path, tag: &str, count: usize, bytes: usize) -> f64 {
    let port = free_port();
    let daemon = start_daemon(binary, port, tag);
    let socket_dir = if tag == "ours" {
        daemon.dir.clone()
    } else {
        PathBuf::from("/tmp")
    };
    let mbox = connect_when_ready(port, &socket_dir);
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
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_spread"));
    let other = std::env::var_os("SPREAD_BENCH_OTHER_DAEMON").map(PathBuf::from);
    println!(
        "local_throughput: {count} AGREED messages of {bytes} bytes, {IN_FLIGHT} in flight, Unix socket"
    );
    for round in 1..=rounds {
        let rate = measure(&ours, "ours", count, bytes);
        print!(
            "round {round}: ours {rate:>9.0} msg/s ({:.1} MB/s)",
            rate * bytes as f64 / 1e6
        );
        if let Some(other) = &other {
            let rate_other = measure(other, "other", count, bytes);
            print!(
                "   other {rate_other:>9.0} msg/s   ratio {:.2}",
                rate / rate_other
            );
        }
        println!();
    }
}
