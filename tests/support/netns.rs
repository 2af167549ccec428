//! Network namespaces on bridges, for tests of daemons on real (virtual) LANs with cable pulls.
//!
//! [`Lan::new(n)`] makes `n` host namespaces and a hub namespace holding a bridge; host `i` has
//! `eth0` with 10.77.0.(i+1)/24, wired by a veth pair to port `v0-<i>` of the bridge.
//! [`Lan::with_networks(n, k)`] makes `k` such LANs over the same hosts: network `j` has bridge
//! `br<j>`, and host `i` has `eth<j>` with 10.(77+j).0.(i+1)/24 on its port `v<j>-<i>`. Everything
//! (bridge, veths, addresses, traffic) lives inside namespaces made here, so nothing touches
//! the machine's own network. Dropping the [`Lan`] kills every process left in its namespaces
//! and deletes them, also when a test panics. Needs root and `ip` (iproute2).

use std::ffi::OsString;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use spread::client::{connect, Mailbox};

use super::{Daemon, DaemonKind, Launch};

static NEXT_LAN: AtomicU32 = AtomicU32::new(0);

/// The subnet every [`Lan`] uses (each has its own bridge, so they never meet).
pub const SUBNET_PREFIX: u8 = 24;
pub const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 255);
/// Most networks of a [`Lan`].
pub const MAX_LAN_NETWORKS: usize = 8;

/// Runs `ip ARGS`, panicking with its output if it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Why namespaces cannot be made here, if they cannot: `ip` missing or not permitted.
pub fn unavailable() -> Option<String> {
    static ANSWER: OnceLock<Option<String>> = OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

fn probe() -> Option<String> {
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("the ip command (iproute2) is missing".into()),
    }
    let probe = format!("spreadprobe-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !made {
        return Some("ip netns add is not permitted (needs root)".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
    None
}

/// Host namespaces on bridges; see the module documentation.
pub struct Lan {
    hub: String,
    hosts: Vec<String>,
    networks: usize,
}

impl Lan {
    /// `n` hosts on one bridge.
    pub fn new(n: usize) -> Lan {
        Lan::with_networks(n, 1)
    }

    /// `n` hosts, each on `networks` bridges. Where namespaces cannot be made, panics saying
    /// why: a test of a LAN fails rather than passing without having run.
    pub fn with_networks(n: usize, networks: usize) -> Lan {
        if let Some(why) = unavailable() {
            panic!("network namespaces unavailable: {why}");
        }
        assert!((1..=250).contains(&n));
        assert!((1..=MAX_LAN_NETWORKS).contains(&networks));
        let tag = format!(
            "spread-{}-{}",
            std::process::id(),
            NEXT_LAN.fetch_add(1, Ordering::Relaxed)
        );
        // Recorded before each namespace exists, so a failure half-way still cleans up.
        let mut lan = Lan {
            hub: format!("{tag}-hub"),
            hosts: Vec::new(),
            networks,
        };
        ip(&["netns", "add", &lan.hub]);
        // A switch costs its hosts no CPU: bridged frames skip iptables (br_netfilter, where
        // loaded, would otherwise run it on every frame, charged to the sending daemon).
        let _ = Command::new("ip")
            .args(["netns", "exec", &lan.hub, "sysctl", "-q", "-w"])
            .args([
                "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-ip6tables=0",
            ])
            .args(["net.bridge.bridge-nf-call-arptables=0"])
            .output();
        for j in 0..networks {
            let bridge = format!("br{j}");
            ip(&["-n", &lan.hub, "link", "add", &bridge, "type", "bridge"]);
            ip(&["-n", &lan.hub, "link", "set", &bridge, "up"]);
        }
        for i in 0..n {
            let host = format!("{tag}-h{i}");
            ip(&["netns", "add", &host]);
            lan.hosts.push(host.clone());
            ip(&["-n", &host, "link", "set", "lo", "up"]);
            for j in 0..networks {
                let (port, eth, bridge) = (format!("v{j}-{i}"), format!("eth{j}"), format!("br{j}"));
                ip(&[
                    "-n", &lan.hub, "link", "add", &port, "type", "veth", "peer", "name", &eth, "netns",
                    &host,
                ]);
                ip(&["-n", &lan.hub, "link", "set", &port, "master", &bridge, "up"]);
                let address = format!("{}/{SUBNET_PREFIX}", lan.address_on(i, j));
                let broadcast = lan.broadcast(j).to_string();
                ip(&[
                    "-n",
                    &host,
                    "addr",
                    "add",
                    &address,
                    "broadcast",
                    &broadcast,
                    "dev",
                    &eth,
                ]);
                ip(&["-n", &host, "link", "set", &eth, "up"]);
            }
        }
        lan
    }

    /// The namespace of host `i`.
    pub fn namespace(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// The address of host `i` on network 0.
    pub fn address(&self, i: usize) -> IpAddr {
        self.address_on(i, 0)
    }

    /// The address of host `i` on network `j`.
    pub fn address_on(&self, i: usize, j: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 77 + j as u8, 0, i as u8 + 1))
    }

    /// The broadcast address of network `j`.
    pub fn broadcast(&self, j: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77 + j as u8, 0, 255)
    }

    /// Plugs (`true`) or pulls (`false`) the cable of host `i` on network `j` at the bridge:
    /// its `eth<j>` keeps its address but loses the carrier.
    pub fn set_cable(&self, i: usize, j: usize, plugged: bool) {
        assert!(j < self.networks);
        let state = if plugged { "up" } else { "down" };
        ip(&["-n", &self.hub, "link", "set", &format!("v{j}-{i}"), state]);
    }

    /// Crosses (`true`) or uncrosses (`false`) host `i`'s cables of networks 0 and 1: its
    /// `eth0` goes to bridge `br1` and its `eth1` to `br0`, or back. As on a real re-cabling,
    /// the host's interfaces lose their carrier for a moment; then every host forgets the
    /// link-layer addresses it had learned, as it would within a minute by itself (ARP entries
    /// time out), so that traffic follows the new wiring at once.
    pub fn cross_cables(&self, i: usize, crossed: bool) {
        assert!(self.networks >= 2);
        let (ports, bridges) = ([format!("v0-{i}"), format!("v1-{i}")], ["br0", "br1"]);
        for port in &ports {
            ip(&["-n", &self.hub, "link", "set", port, "down"]);
        }
        for (j, port) in ports.iter().enumerate() {
            let bridge = bridges[if crossed { 1 - j } else { j }];
            ip(&["-n", &self.hub, "link", "set", port, "master", bridge]);
        }
        for port in &ports {
            ip(&["-n", &self.hub, "link", "set", port, "up"]);
        }
        for host in &self.hosts {
            ip(&["-n", host, "neigh", "flush", "all"]);
        }
    }

    /// The words that run a program in host `i`: `ip netns exec NS` (it execs the program, so
    /// the child's pid is the program's).
    pub fn exec_prefix(&self, i: usize) -> Vec<OsString> {
        ["ip", "netns", "exec", self.namespace(i)]
            .iter()
            .map(OsString::from)
            .collect()
    }

    /// The name of the daemon of host `i` in [`Lan::config`].
    pub fn daemon_name(&self, i: usize) -> String {
        format!("h{i}")
    }

    /// A configuration with one daemon per host, all in one segment on `port` with
    /// `segment_address` ([`BROADCAST`], or a multicast address), then `extra` (options).
    pub fn config(&self, segment_address: IpAddr, port: u16, extra: &str) -> String {
        let daemons: String = (0..self.hosts.len())
            .map(|i| {
                let address = self.address(i);
                format!("    {} {address} {{ {address} }}\n", self.daemon_name(i))
            })
            .collect();
        format!("Spread_Segment {segment_address}:{port} {{\n{daemons}}}\n{extra}\n")
    }

    /// [`Lan::config`] with network 0's broadcast address, and a `Spread_Network` block for
    /// each further network (by broadcast, on `port`) with every host on it.
    pub fn multipath_config(&self, port: u16, extra: &str) -> String {
        let mut text = self.config(IpAddr::V4(BROADCAST), port, extra);
        for j in 1..self.networks {
            let members: String = (0..self.hosts.len())
                .map(|i| format!("    {} {}\n", self.daemon_name(i), self.address_on(i, j)))
                .collect();
            text.push_str(&format!(
                "Spread_Network net{j} {}:{port} {{\n{members}}}\n",
                self.broadcast(j)
            ));
        }
        text
    }

    /// Starts the daemon of host `i` inside its namespace, with the configuration file
    /// `config` (see [`Lan::config`]) and `env` added to its environment.
    pub fn launch(
        &self,
        i: usize,
        kind: &DaemonKind,
        config: &Path,
        port: u16,
        env: Vec<(OsString, OsString)>,
    ) -> Daemon {
        Daemon::launch(Launch {
            kind,
            name: &self.daemon_name(i),
            config,
            port,
            prefix: self.exec_prefix(i),
            env,
        })
    }

    /// Writes `text` (see [`Lan::config`]) as `spread.conf` in `dir` and starts our daemon on
    /// every host with it, on `port`; returns the file (for restarts) and the daemons in host
    /// order.
    pub fn start_ours(&self, dir: &Path, port: u16, text: &str) -> (PathBuf, Vec<Daemon>) {
        let config = dir.join("spread.conf");
        std::fs::write(&config, text).unwrap();
        let kind = DaemonKind::ours();
        let daemons = (0..self.hosts.len())
            .map(|i| self.launch(i, &kind, &config, port, Vec::new()))
            .collect();
        (config, daemons)
    }

    /// A client session of `user` with the daemon on host `i` (port `port`), over TCP to the
    /// host's address from inside its namespace.
    pub fn connect(&self, i: usize, port: u16, user: &str) -> Mailbox {
        let name = format!("{port}@{}", self.address(i));
        self.run_in(i, || {
            connect(
                Some(name.as_bytes()),
                user.as_bytes(),
                0,
                true,
                Some(Instant::now() + Duration::from_secs(10)),
            )
            .unwrap_or_else(|e| panic!("connect {user} to {name}: {e:?}"))
            .mailbox
        })
    }

    /// Runs `f` on a thread inside host `i`'s namespace and returns its result; sockets it
    /// opens stay in that namespace when used from any thread.
    pub fn run_in<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.namespace(i));
        let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns(2) with a descriptor we own; it switches only this thread's
                    // network namespace, and the thread ends with `f`.
                    let ret = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("thread inside the namespace")
        })
    }

    /// Process ids running inside host `i`'s namespace.
    pub fn processes(&self, i: usize) -> Vec<i32> {
        Self::pids(self.namespace(i))
    }

    fn pids(ns: &str) -> Vec<i32> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        let all: Vec<&String> = self.hosts.iter().chain(std::iter::once(&self.hub)).collect();
        // Only processes started in these namespaces (by this test) can be in them.
        for ns in &all {
            for pid in Self::pids(ns) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while all.iter().any(|ns| !Self::pids(ns).is_empty()) && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        // Deleting a namespace destroys its end of each veth pair, and with it the other end.
        for ns in all {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
