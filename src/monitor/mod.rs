//! The monitor (sans-IO): how `spmonitor` asks a daemon for its status and what the daemon
//! answers.
//!
//! A query is one small UDP datagram to a daemon's ring port on any of its addresses
//! ([`query`]); the daemon recognises it before its ring and link decoders, answers only
//! queries from loopback or from an address of a configured daemon ([`Identity::trusts`]),
//! and replies at once from the socket the query came on with its status document
//! ([`document`], JSON). `spmonitor` asks every configured daemon ([`targets`]), trying its
//! addresses in turn, and shows the answers ([`report`]).

pub mod document;
pub mod json;
pub mod query;
pub mod report;

use std::net::{IpAddr, SocketAddr};

use crate::config::Config;

/// What a daemon's document says about who it is: fixed for as long as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub id: u32,
    /// Its address on network 0 and its segment's port.
    pub address: IpAddr,
    pub port: u16,
    pub config_hash: u32,
    /// Every configured daemon, (id, name), in ring order.
    pub daemons: Vec<(u32, String)>,
    /// By network id: the `Spread_Network` name; `None` for network 0 (the segments).
    pub network_names: Vec<Option<String>>,
    /// Every address of every configured daemon, on every network.
    trusted: Vec<IpAddr>,
}

impl Identity {
    /// The identity of daemon `index` of segment `segment`.
    pub fn from_config(config: &Config, segment: usize, index: usize) -> Identity {
        let me = &config.segments[segment].daemons[index];
        let mut trusted: Vec<IpAddr> = Vec::new();
        for (_, _, d) in config.daemons() {
            trusted.push(d.address);
            trusted.extend(&d.daemon_interfaces);
            trusted.extend(&d.client_interfaces);
            trusted.extend(&d.monitor_interfaces);
        }
        for network in &config.networks {
            trusted.extend(network.members.iter().map(|m| m.address));
        }
        trusted.sort();
        trusted.dedup();
        Identity {
            name: me.name.clone(),
            id: me.id(),
            address: me.address,
            port: config.segments[segment].port,
            config_hash: config.hash(),
            daemons: config
                .daemons()
                .map(|(_, _, d)| (d.id(), d.name.clone()))
                .collect(),
            network_names: std::iter::once(None)
                .chain(config.networks.iter().map(|n| Some(n.name.clone())))
                .collect(),
            trusted,
        }
    }

    /// Whether a query from `source` is answered: loopback, or a configured daemon's address
    /// (anyone else could use the daemon to learn about the ring, or to flood a third party).
    pub fn trusts(&self, source: IpAddr) -> bool {
        source.is_loopback() || self.trusted.binary_search(&source).is_ok()
    }
}

/// A configured daemon and where to ask it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub id: u32,
    /// Its ring port on each of its addresses, in the order to try: its address on network 0,
    /// its other daemon interfaces, then its address on each extra network.
    pub addresses: Vec<SocketAddr>,
}

/// Every configured daemon, in ring order, with the addresses a query may go to.
pub fn targets(config: &Config) -> Vec<Target> {
    config
        .daemons()
        .map(|(s, _, d)| {
            let port = config.segments[s].port;
            let mut addresses = vec![SocketAddr::new(d.address, port)];
            for &a in &d.daemon_interfaces {
                if a != d.address {
                    addresses.push(SocketAddr::new(a, port));
                }
            }
            for network in &config.networks {
                if let Some(m) = network.members.iter().find(|m| m.daemon == d.name) {
                    addresses.push(SocketAddr::new(m.address, network.port));
                }
            }
            Target {
                name: d.name.clone(),
                id: d.id(),
                addresses,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
