//! Several daemons sharing one configuration on loopback: daemon `dI` on 127.0.0.I, each in a
//! segment of its own, all on one port, each with its own socket directory.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use super::{free_port_on, Daemon, DaemonKind, Launch, TempDir};

/// The address of daemon `i` (0-based) of a loopback cluster.
pub fn loopback_address(i: usize) -> IpAddr {
    assert!(i < 254, "at most 254 loopback daemons");
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8 + 1))
}

/// The name of daemon `i` (0-based) in a cluster configuration.
pub fn daemon_name(i: usize) -> String {
    format!("d{}", i + 1)
}

/// The configuration of `n` loopback daemons on `port`, then `extra` (options).
pub fn loopback_config(n: usize, port: u16, extra: &str) -> String {
    let mut text = String::new();
    for i in 0..n {
        let address = loopback_address(i);
        // Loopback carries no broadcast: each daemon is a segment of its own.
        writeln!(
            text,
            "Spread_Segment 127.0.{}.255:{port} {{ {} {address} {{ {address} }} }}",
            i + 1,
            daemon_name(i)
        )
        .expect("write to a String");
    }
    text.push_str(extra);
    text.push('\n');
    text
}

/// `n` running daemons of one loopback configuration; all killed when dropped.
pub struct Cluster {
    pub daemons: Vec<Daemon>,
    pub port: u16,
    pub config: PathBuf,
    _dir: TempDir,
}

impl Cluster {
    /// Writes the configuration of `n` daemons (with `extra` options) and starts them all.
    pub fn start(kind: &DaemonKind, n: usize, extra: &str) -> Cluster {
        assert!(!kind.original, "several original daemons would share /tmp/<port>");
        let addresses: Vec<IpAddr> = (0..n).map(loopback_address).collect();
        let port = free_port_on(&addresses);
        let dir = TempDir::new("cluster");
        let config = dir.path().join("spread.conf");
        fs::write(&config, loopback_config(n, port, extra)).expect("write config");
        let daemons = (0..n)
            .map(|i| {
                Daemon::launch(Launch {
                    kind,
                    name: &daemon_name(i),
                    config: &config,
                    port,
                    prefix: Vec::new(),
                    env: Vec::new(),
                })
            })
            .collect();
        Cluster {
            daemons,
            port,
            config,
            _dir: dir,
        }
    }
}
