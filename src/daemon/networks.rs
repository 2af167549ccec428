//! The daemon's networks: one [`NetEndpoint`] per network this daemon is on, and, on a
//! multipath ring, the [`LinkLayer`] between them and the node.
//!
//! With one network (no `Spread_Network` block) datagrams go straight between the node and the
//! endpoint of network 0, exactly as without multipath. With several, each datagram of the node
//! goes through [`LinkLayer::send_copies`], which picks the networks and re-stamps the datagram
//! in place for each. Each datagram read goes through [`LinkLayer::on_receive`] with the
//! network of the socket it came on; only the first copy of a transmission reaches the node,
//! and after it the ring's progress (its id and aru) goes back to the link layer, which then
//! drops later copies of the data the ring has.
//! A datagram that came in through another network's interface goes to
//! [`LinkLayer::arrived_elsewhere`] instead (crossed cables), never to the node. The link
//! layer's probes go by unicast on their network.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Instant;

use super::faults::FaultLayer;
use super::net::{Links, NetEndpoint, NetStats, SEGMENT_NETWORK};
use crate::config::Config;
use crate::link::{self, LinkLayer, LinkOutputs, LinkParams, LinkSetup, NetSet, Peer, Status};
use crate::ring::{Datagrams, Destination, Time};
use crate::wire::packet::{is_token, RingId};

/// Hands a ring datagram read on a network to the node; returns the ring's id and aru after it
/// (the link layer drops later copies of what the ring has).
type Deliver<'a> = dyn FnMut(u8, &[u8]) -> (RingId, u64) + 'a;

/// The link layer's view of daemon `index` of segment `segment`: every daemon with the
/// networks it is on; `incarnation` tells this run of the daemon from its others. `None` for a
/// configuration without extra networks.
pub fn link_setup(config: &Config, segment: usize, index: usize, incarnation: u32) -> Option<LinkSetup> {
    if config.networks.is_empty() {
        return None;
    }
    let networks_of = |name: &str| -> NetSet {
        let extra = config
            .networks
            .iter()
            .enumerate()
            .filter(|(_, block)| block.members.iter().any(|m| m.daemon == name))
            .map(|(k, _)| k as u8 + 1);
        std::iter::once(0).chain(extra).collect()
    };
    let me = &config.segments[segment].daemons[index];
    let peers = config
        .daemons()
        .filter(|&(s, i, _)| (s, i) != (segment, index))
        .map(|(_, _, d)| Peer {
            id: d.id(),
            networks: networks_of(&d.name),
        })
        .collect();
    Some(LinkSetup {
        me: me.id(),
        networks: networks_of(&me.name),
        peers,
        mode: config.options.multipath,
        config_hash: config.hash(),
        incarnation,
    })
}

/// The endpoints of every network and the link layer over them.
pub struct Networks {
    /// Network 0's first.
    endpoints: Vec<NetEndpoint>,
    /// Socket `k` of [`Networks::raw_fds`]: (endpoint, its socket).
    sockets: Vec<(usize, usize)>,
    /// Only on a multipath ring.
    link: Option<Multipath>,
    /// Tokens read in this [`Networks::receive`], by network: handed on after the data.
    tokens: Datagrams<u8>,
    /// Tokens to send, by network and destination: queued after every network's data at the
    /// next [`Networks::flush`].
    held_tokens: Datagrams<(u8, Destination)>,
}

struct Multipath {
    layer: LinkLayer,
    out: LinkOutputs,
}

impl Networks {
    /// Opens the endpoint of each of `links` (network 0's first); with `setup`, runs the link
    /// layer over them. `faults` is the test-only fault layer, if any.
    pub fn open(
        links: Vec<Links>,
        setup: Option<LinkSetup>,
        faults: Option<FaultLayer>,
        now: Time,
    ) -> io::Result<Networks> {
        let mut endpoints = Vec::with_capacity(links.len());
        for l in links {
            let network_faults = faults.as_ref().map(|f| f.for_network(l.network));
            endpoints.push(NetEndpoint::open(l, network_faults)?);
        }
        for e in 0..endpoints.len() {
            let others: Vec<u32> = endpoints
                .iter()
                .enumerate()
                .filter(|&(o, _)| o != e)
                .flat_map(|(_, endpoint)| endpoint.interfaces().iter().copied())
                .collect();
            endpoints[e].watch_other_networks(&others);
        }
        let sockets = endpoints
            .iter()
            .enumerate()
            .flat_map(|(e, endpoint)| (0..endpoint.raw_fds().count()).map(move |s| (e, s)))
            .collect();
        let link = match setup {
            Some(setup) => {
                log::info!(
                    "multipath ring, {:?} mode, on networks {:?}",
                    setup.mode,
                    setup.networks.iter().collect::<Vec<_>>()
                );
                let layer = LinkLayer::new(now, setup, LinkParams::default())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Some(Multipath {
                    layer,
                    out: LinkOutputs::new(),
                })
            }
            None => None,
        };
        Ok(Networks {
            endpoints,
            sockets,
            link,
            tokens: Datagrams::default(),
            held_tokens: Datagrams::default(),
        })
    }

    /// The descriptors to watch for reading.
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.endpoints.iter().flat_map(NetEndpoint::raw_fds)
    }

    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    fn endpoint(endpoints: &mut [NetEndpoint], network: u8) -> Option<&mut NetEndpoint> {
        endpoints.iter_mut().find(|e| e.links().network == network)
    }

    /// Queues a datagram of the node for the next [`Networks::flush`]; false if `to` is a
    /// daemon this one cannot reach. On a multipath ring it is re-stamped in place for each
    /// network it goes on.
    pub fn send(&mut self, now: Time, to: Destination, datagram: &mut [u8]) -> bool {
        let (endpoints, held) = (&mut self.endpoints, &mut self.held_tokens);
        let Some(m) = self.link.as_mut() else {
            return endpoints[0].reaches(to) && Self::queue(endpoints, held, SEGMENT_NETWORK, to, datagram);
        };
        let networks = m.layer.send_copies(now, to, datagram, |network, copy| {
            Self::queue(endpoints, held, network, to, copy);
        });
        !networks.is_empty()
    }

    /// Queues a datagram on `network`, or holds it back if it is a token: sent before data
    /// still queued (on another network, or to another destination), the token would reach
    /// the next daemon first, which would ask for that data again.
    fn queue(
        endpoints: &mut [NetEndpoint],
        held: &mut Datagrams<(u8, Destination)>,
        network: u8,
        to: Destination,
        bytes: &[u8],
    ) -> bool {
        let Some(endpoint) = Self::endpoint(endpoints, network) else {
            return false;
        };
        if is_token(bytes) && endpoint.reaches(to) {
            held.push_with((network, to), |arena| arena.extend_from_slice(bytes));
            return true;
        }
        endpoint.queue(to, bytes)
    }

    /// Sends every queued datagram: the data of every network, then the tokens.
    pub fn flush(&mut self) {
        for endpoint in &mut self.endpoints {
            endpoint.flush();
        }
        if self.held_tokens.is_empty() {
            return;
        }
        for ((network, to), bytes) in self.held_tokens.iter() {
            if let Some(endpoint) = Self::endpoint(&mut self.endpoints, network) {
                endpoint.queue(to, bytes);
            }
        }
        self.held_tokens.clear();
        for endpoint in &mut self.endpoints {
            endpoint.flush();
        }
    }

    /// Reads the datagrams waiting on every socket and hands each ring datagram to `deliver`
    /// with the network it came on (it returns the ring's progress then: the regular ring's id
    /// and its `my_aru()`, for [`LinkLayer::ring_progress`]), and each monitor query to
    /// `monitor` with the socket it came on (to answer from) and its source; the link layer's
    /// own packets are handled here. Tokens go last: data sent before a token may wait on
    /// another socket (the segment broadcast one, or another network's), and a token handed on
    /// first would have the ring ask for that data again. Arrivals through another network's
    /// interface (crossed cables, rare) go to the link layer after the reading, when every
    /// endpoint's interfaces can be looked at.
    pub fn receive(
        &mut self,
        now: Time,
        deliver: &mut Deliver<'_>,
        monitor: &mut dyn FnMut(usize, SocketAddr, &[u8]),
    ) {
        let (endpoints, tokens) = (&mut self.endpoints, &mut self.tokens);
        let mut link = self.link.as_mut();
        let mut crossed: Vec<(u8, u32, Vec<u8>)> = Vec::new();
        for (k, &(e, s)) in self.sockets.iter().enumerate() {
            endpoints[e].receive(
                s,
                &mut |d| match d.foreign_interface {
                    Some(interface) => crossed.push((d.network, interface, d.bytes.to_vec())),
                    None if is_token(d.bytes) => {
                        tokens.push_with(d.network, |arena| arena.extend_from_slice(d.bytes))
                    }
                    None => Self::pass(now, link.as_deref_mut(), d.network, d.bytes, deliver),
                },
                &mut |from, bytes| monitor(k, from, bytes),
            );
        }
        for (network, bytes) in tokens.iter() {
            Self::pass(now, link.as_deref_mut(), network, bytes, deliver);
        }
        tokens.clear();
        if let Some(m) = link {
            for (network, interface, bytes) in &crossed {
                let elsewhere = endpoints.iter().find(|o| o.interfaces().contains(interface));
                if let Some(o) = elsewhere {
                    m.layer
                        .arrived_elsewhere(now, *network, o.links().network, bytes, &mut m.out);
                }
            }
            Self::send_probes(endpoints, m);
        }
        self.flush();
    }

    /// One datagram read on `network`: through the link layer on a multipath ring.
    fn pass(now: Time, link: Option<&mut Multipath>, network: u8, bytes: &[u8], deliver: &mut Deliver<'_>) {
        match link {
            None => {
                deliver(network, bytes);
            }
            Some(m) => {
                if let link::Received::Ring(packet) = m.layer.on_receive(now, network, bytes, &mut m.out) {
                    let (ring, aru) = deliver(network, packet.bytes);
                    m.layer.ring_progress(ring, aru);
                }
            }
        }
    }

    /// Answers a monitor query read on socket `k`, from that socket.
    pub fn reply(&self, k: usize, to: SocketAddr, bytes: &[u8]) {
        let (e, s) = self.sockets[k];
        self.endpoints[e].reply(s, to, bytes);
    }

    /// When the link layer needs [`Networks::handle_timer`].
    pub fn link_deadline(&self) -> Option<Time> {
        self.link.as_ref().map(|m| m.layer.next_deadline())
    }

    /// Runs the link layer's timer if it is due.
    pub fn handle_timer(&mut self, now: Time) {
        if let Some(m) = self.link.as_mut().filter(|m| m.layer.next_deadline() <= now) {
            m.layer.handle_timer(now, &mut m.out);
            Self::send_probes(&mut self.endpoints, m);
            self.flush();
        }
    }

    /// Queues the link layer's probes.
    fn send_probes(endpoints: &mut [NetEndpoint], m: &mut Multipath) {
        for (peer, network, bytes) in m.out.sends() {
            if let Some(endpoint) = Self::endpoint(endpoints, network) {
                endpoint.queue_to(peer, bytes);
            }
        }
        m.out.clear();
    }

    /// When datagrams held back by the test fault layer are next due.
    pub fn fault_deadline(&self) -> Option<Instant> {
        self.endpoints.iter().filter_map(NetEndpoint::next_deadline).min()
    }

    /// Sends the held-back datagrams that are due at `now`.
    pub fn send_due(&mut self, now: Instant) {
        for endpoint in &mut self.endpoints {
            endpoint.queue_due(now);
        }
        self.flush();
    }

    /// Each network's counters.
    pub fn stats(&self) -> Vec<(u8, NetStats)> {
        self.endpoints
            .iter()
            .map(|e| (e.links().network, e.stats()))
            .collect()
    }

    /// The link layer's status, on a multipath ring.
    pub fn link_status(&self, now: Time) -> Option<Status> {
        self.link.as_ref().map(|m| m.layer.status(now))
    }
}

#[cfg(test)]
mod tests;
