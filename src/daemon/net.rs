//! The daemon's UDP endpoint towards the other daemons on one network: network 0 (the segments
//! of the configuration) or an extra network of a multipath ring (a `Spread_Network` block).
//! Which sockets to open, where each datagram goes, and which received ones come from a
//! configured daemon. Monitor queries (see [`crate::monitor`]) arrive on the same sockets from
//! any port; they are told apart by their magic before anything else and handed up.
//!
//! Sockets: one per daemon interface address of this daemon on the network, bound to that
//! address and the network's port (specific addresses, never the wildcard, so that several
//! daemons can share a host on 127.0.0.x, and so that a datagram is read from the socket of the
//! network it came on); datagrams leave through the first. When this daemon's segment (or the
//! extra network) has other daemons and an address usable for sending to all of them
//! (multicast, or a broadcast address that is not loopback), one more socket is bound to that
//! address, since Linux hands broadcasts only to sockets bound to the broadcast address or the
//! wildcard; a multicast address is joined on every interface address. Otherwise everything
//! goes by unicast.
//!
//! Interfaces: the network's interfaces are those holding this daemon's addresses on it (or,
//! for an address no interface holds, such as 127.0.0.2, the interface whose subnet contains
//! it). Every socket reports each datagram's arrival interface (`IP_PKTINFO`,
//! `IPV6_RECVPKTINFO`). A datagram from a peer that came in through an interface of another of
//! this daemon's networks (see [`NetEndpoint::watch_other_networks`]), and not of this one, is
//! not of this network (crossed cables, or a peer on the wrong wire): it is counted
//! ([`NetStats::wrong_interface`]), logged, and handed on flagged with its interface, so that the
//! link layer can report crossed cables. Other arrivals pass: through an interface of no network
//! of ours a datagram is routed (a peer of another segment, through the uplink), and through a
//! loopback interface it comes from this machine itself (all of 127.0.0.0/8 is on `lo`). With
//! one network, nothing can be on the wrong wire and nothing is checked. The sending socket
//! is pinned to the interface of this daemon's address with `IP_UNICAST_IF` (multicast leaves
//! by `IP_MULTICAST_IF`), not with `SO_BINDTODEVICE`: pinning reception too would make the
//! kernel drop a crossed datagram unseen, and crossed cables would look like a pulled cable.
//!
//! Sending is queued and flushed in batches (see [`super::outbox`]), and every socket takes
//! datagrams the kernel coalesced (`UDP_GRO`) in one read: a run of datagrams from one sender
//! then crosses the stack, and a virtual network, once.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use super::faults::{FaultLayer, FaultStats};
use super::outbox::Outbox;
use super::sys::{self, DatagramBatch, InterfaceAddress, MAX_MESSAGE};
use crate::config::{Config, DaemonEntry, Network};
use crate::monitor::query;
use crate::ring::Destination;

/// The network id of the segments; extra networks are 1, 2, ... in configuration order.
pub const SEGMENT_NETWORK: u8 = 0;
/// Socket buffers asked for (the kernel caps them at net.core.[rw]mem_max).
const SOCKET_BUFFER: usize = 4 << 20;
/// Longest datagram taken; daemon packets fit one MTU, so a longer one is not ours.
const MAX_DATAGRAM: usize = 9_216;
/// Messages read by one system call (each a datagram, or several the kernel coalesced).
const RECEIVE_BATCH: usize = 32;
/// Batches read from one socket per turn, so that clients are served in between.
const BATCHES_PER_TURN: usize = 2;

/// How datagrams for every daemon of this daemon's segment are sent at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentCast {
    Broadcast(IpAddr),
    Multicast(IpAddr),
}

impl SegmentCast {
    pub fn address(self) -> IpAddr {
        match self {
            SegmentCast::Broadcast(a) | SegmentCast::Multicast(a) => a,
        }
    }
}

/// Another configured daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    /// Where unicasts to it go: its address and its segment's port.
    pub address: SocketAddr,
    /// Every address its datagrams may come from: its address, then its other daemon
    /// interfaces.
    pub sources: Vec<IpAddr>,
    /// Reached by this daemon's segment broadcast or multicast.
    pub by_segment_cast: bool,
}

/// This daemon's place on one network, derived from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub network: u8,
    pub me: u32,
    pub port: u16,
    /// Addresses to bind: this daemon's address (which sends), then its other daemon
    /// interfaces.
    pub local: Vec<IpAddr>,
    pub segment_cast: Option<SegmentCast>,
    /// The other daemons, in ring order.
    pub peers: Vec<Peer>,
    pub ignore_multicast_join_errors: bool,
}

/// Whether a segment or network address can carry one datagram to every daemon there;
/// `daemon_addresses` are the daemons' own addresses.
fn usable_segment_cast(
    address: IpAddr,
    mut daemon_addresses: impl Iterator<Item = IpAddr>,
) -> Option<SegmentCast> {
    let is_daemon = daemon_addresses.any(|a| a == address);
    if address.is_multicast() {
        Some(SegmentCast::Multicast(address))
    } else if address.is_ipv4() && !address.is_loopback() && !address.is_unspecified() && !is_daemon {
        Some(SegmentCast::Broadcast(address))
    } else {
        // Loopback has no broadcast on Linux, IPv6 has none at all, and a daemon's own
        // address reaches only that daemon.
        None
    }
}

/// A daemon's address, then its other daemon interfaces (the configuration requires the
/// address among them).
fn daemon_addresses(d: &DaemonEntry) -> Vec<IpAddr> {
    let mut addresses = vec![d.address];
    addresses.extend(d.daemon_interfaces.iter().filter(|&&a| a != d.address));
    addresses
}

impl Links {
    /// The links of daemon `index` of segment `segment`.
    pub fn from_config(config: &Config, segment: usize, index: usize) -> Links {
        let my_segment = &config.segments[segment];
        let me = &my_segment.daemons[index];
        let has_segment_peers = my_segment.daemons.len() > 1;
        let segment_cast = has_segment_peers
            .then(|| usable_segment_cast(my_segment.address, config.daemons().map(|(_, _, d)| d.address)))
            .flatten();
        let peers = config
            .daemons()
            .filter(|&(s, i, _)| (s, i) != (segment, index))
            .map(|(s, _, d)| Peer {
                id: d.id(),
                address: SocketAddr::new(d.address, config.segments[s].port),
                sources: daemon_addresses(d),
                by_segment_cast: s == segment && segment_cast.is_some(),
            })
            .collect();
        Links {
            network: SEGMENT_NETWORK,
            me: me.id(),
            port: my_segment.port,
            local: daemon_addresses(me),
            segment_cast,
            peers,
            ignore_multicast_join_errors: config.options.ignore_multicast_join_errors,
        }
    }

    /// The links of daemon `index` of segment `segment` on extra network `network` (1 for
    /// the first `Spread_Network` block); `None` when the daemon is not on it.
    pub fn on_network(config: &Config, segment: usize, index: usize, network: u8) -> Option<Links> {
        let block: &Network = config.networks.get(usize::from(network).checked_sub(1)?)?;
        let me = &config.segments[segment].daemons[index];
        let mine = block.members.iter().find(|m| m.daemon == me.name)?;
        let segment_cast = (block.members.len() > 1)
            .then(|| usable_segment_cast(block.address, block.members.iter().map(|m| m.address)))
            .flatten();
        let peers = block
            .members
            .iter()
            .filter(|m| m.daemon != me.name)
            .filter_map(|m| {
                let (_, _, d) = config.daemons().find(|(_, _, d)| d.name == m.daemon)?;
                Some(Peer {
                    id: d.id(),
                    address: SocketAddr::new(m.address, block.port),
                    sources: vec![m.address],
                    by_segment_cast: segment_cast.is_some(),
                })
            })
            .collect();
        Some(Links {
            network,
            me: me.id(),
            port: block.port,
            local: vec![mine.address],
            segment_cast,
            peers,
            ignore_multicast_join_errors: config.options.ignore_multicast_join_errors,
        })
    }

    /// The links of daemon `index` of segment `segment` on every network it is on, network 0
    /// first.
    pub fn all_from_config(config: &Config, segment: usize, index: usize) -> Vec<Links> {
        let extra =
            (1..=config.networks.len() as u8).filter_map(|n| Links::on_network(config, segment, index, n));
        std::iter::once(Links::from_config(config, segment, index))
            .chain(extra)
            .collect()
    }
}

/// One datagram from a configured daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub network: u8,
    /// The daemon it came from, by its address (the packet's own sender field is the
    /// protocol's to check).
    pub from: u32,
    pub bytes: &'a [u8],
    /// The interface it came in through when that is none of this network's: then it is not
    /// of this network, only evidence of crossed cables.
    pub foreign_interface: Option<u32>,
}

/// The interfaces of `local` addresses, in `all` (this machine's): the one holding each address,
/// or else one whose subnet contains it; each interface once.
pub fn interfaces_of<'a>(local: &[IpAddr], all: &'a [InterfaceAddress]) -> Vec<&'a InterfaceAddress> {
    let in_subnet = |address: IpAddr, i: &InterfaceAddress| match (address, i.address, i.netmask) {
        (IpAddr::V4(a), IpAddr::V4(b), Some(IpAddr::V4(m))) => {
            u32::from(a) & u32::from(m) == u32::from(b) & u32::from(m)
        }
        (IpAddr::V6(a), IpAddr::V6(b), Some(IpAddr::V6(m))) => {
            u128::from(a) & u128::from(m) == u128::from(b) & u128::from(m)
        }
        _ => false,
    };
    let mut found: Vec<&InterfaceAddress> = Vec::new();
    for &address in local {
        let holder = all
            .iter()
            .find(|i| i.address == address)
            .or_else(|| all.iter().find(|i| in_subnet(address, i)));
        if let Some(i) = holder.filter(|i| found.iter().all(|f| f.index != i.index)) {
            found.push(i);
        }
    }
    found
}

/// What went through the endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    /// Dropped: from an address and port that is not a configured daemon's.
    pub unknown_sender: u64,
    /// Dropped: this daemon's own broadcast or multicast coming back.
    pub own: u64,
    pub receive_errors: u64,
    /// Dropped: longer than any daemon packet.
    pub oversized: u64,
    /// From a peer, through an interface of none of this network's (crossed cables): not taken
    /// as of this network.
    pub wrong_interface: u64,
    pub faults: FaultStats,
}

/// Which interfaces a network's datagrams must not come in through.
struct ArrivalCheck {
    network: u8,
    /// The network's interfaces (empty when they could not be found).
    interfaces: Vec<u32>,
    /// Loopback interfaces, through which only this machine's own datagrams come.
    loopback: Vec<u32>,
    /// The interfaces of this daemon's other networks, but not of this one nor loopback: a
    /// peer's datagram through one of them is on the wrong wire.
    others: Vec<u32>,
    /// (peer, interface) pairs already warned about: the first datagram of each is worth a
    /// warning, the rest a debug line now and then.
    warned: HashSet<(u32, u32)>,
}

impl ArrivalCheck {
    fn new(network: u8, interfaces: Vec<u32>, loopback: Vec<u32>) -> ArrivalCheck {
        ArrivalCheck {
            network,
            interfaces,
            loopback,
            others: Vec::new(),
            warned: HashSet::new(),
        }
    }

    fn watch(&mut self, others: &[u32]) {
        self.others = others
            .iter()
            .copied()
            .filter(|k| !self.interfaces.contains(k) && !self.loopback.contains(k))
            .collect();
    }

    /// `Some(interface)` when a datagram of peer `from` came in through `interface`, which is
    /// another network's; counted in `stats` and logged.
    fn foreign(&mut self, from: u32, interface: Option<u32>, stats: &mut NetStats) -> Option<u32> {
        let k = interface.filter(|k| self.others.contains(k))?;
        stats.wrong_interface += 1;
        let count = stats.wrong_interface;
        if self.warned.insert((from, k)) {
            log::warn!(
                "network {}: datagrams of daemon {from:#x} come in through interface {k}, not one \
                 of this network's {:?} but another's (crossed cables?); they are not taken as of \
                 this network",
                self.network,
                self.interfaces
            );
        } else if count.is_power_of_two() {
            log::debug!(
                "network {}: {count} datagrams through wrong interfaces (latest: daemon {from:#x}, \
                 interface {k})",
                self.network
            );
        }
        Some(k)
    }
}

/// The open sockets of [`Links`] and the send and receive paths over them.
pub struct NetEndpoint {
    links: Links,
    /// Unicast sockets, one per local address (the first sends), then the segment-cast one.
    sockets: Vec<UdpSocket>,
    /// Source address of a datagram -> the daemon that sends from it.
    senders: HashMap<SocketAddr, u32>,
    own_sources: Vec<SocketAddr>,
    arrival: ArrivalCheck,
    faults: Option<FaultLayer>,
    stats: NetStats,
    batch: DatagramBatch,
    /// What the first socket sends at the next [`NetEndpoint::flush`].
    outbox: Outbox,
}

fn udp_socket(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    sys::report_arrival_interface(socket.as_raw_fd(), address.is_ipv6())?;
    // Best effort: without it, each datagram is read on its own.
    if let Err(e) = sys::take_coalesced(socket.as_raw_fd()) {
        log::debug!("UDP_GRO on {address}: {e}");
    }
    // Best effort: a smaller buffer only means more loss under bursts.
    if let Err(e) = socket.set_recv_buffer_size(SOCKET_BUFFER) {
        log::warn!("SO_RCVBUF on {address}: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(SOCKET_BUFFER) {
        log::warn!("SO_SNDBUF on {address}: {e}");
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A socket filter that drops datagrams from any of `own` (IPv4): the kernel loops every
/// broadcast back to the sender's own broadcast socket, and reading each one only to drop it
/// costs a wake-up and a copy per packet sent.
fn own_source_filter(own: &[IpAddr]) -> Vec<SockFilter> {
    // Classic BPF: the IPv4 source address, compared with each own address.
    const LOAD_SOURCE: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // The network header, whatever the socket type sees first, then the source field.
    const SOURCE_OFFSET: u32 = (libc::SKF_NET_OFF + 12) as u32;
    let own: Vec<u32> = own
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(u32::from(*v4)),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut program = vec![SockFilter::new(LOAD_SOURCE, 0, 0, SOURCE_OFFSET)];
    for (i, &address) in own.iter().enumerate() {
        // On a match, jump over the remaining comparisons and the accept to the drop.
        let to_drop = (own.len() - i) as u8;
        program.push(SockFilter::new(JUMP_IF_EQUAL, to_drop, 0, address));
    }
    program.push(SockFilter::new(RETURN, 0, 0, u32::MAX));
    program.push(SockFilter::new(RETURN, 0, 0, 0));
    program
}

fn bind(socket: &Socket, address: SocketAddr) -> io::Result<()> {
    socket
        .bind(&address.into())
        .map_err(|e| io::Error::new(e.kind(), format!("binding UDP {address}: {e}")))
}

impl NetEndpoint {
    /// Opens the sockets of `links`; `faults` is the test-only fault layer, if any.
    pub fn open(links: Links, faults: Option<FaultLayer>) -> io::Result<NetEndpoint> {
        let all_interfaces = sys::interface_addresses().unwrap_or_else(|e| {
            log::warn!("cannot list interfaces ({e}): arrival interfaces are not checked");
            Vec::new()
        });
        let mine = interfaces_of(&links.local, &all_interfaces);
        // The interface of the address that sends.
        let sending = interfaces_of(&links.local[..1], &all_interfaces).first().copied();
        let mut sockets = Vec::new();
        for &local in &links.local {
            let socket = udp_socket(SocketAddr::new(local, links.port))?;
            bind(&socket, SocketAddr::new(local, links.port))?;
            sockets.push(socket);
        }
        if let Some(cast) = links.segment_cast {
            let group = SocketAddr::new(cast.address(), links.port);
            let receiver = udp_socket(group)?;
            // Other daemons of this host on the same segment bind it too.
            receiver.set_reuse_address(true)?;
            bind(&receiver, group)?;
            match cast {
                SegmentCast::Broadcast(_) => {
                    sockets[0].set_broadcast(true)?;
                    // Best effort: without the filter, the loop-back is dropped when read.
                    if let Err(e) = receiver.attach_filter(&own_source_filter(&links.local)) {
                        log::warn!("filtering own broadcasts on {group}: {e}");
                    }
                }
                SegmentCast::Multicast(IpAddr::V4(m)) => {
                    for local in &links.local {
                        if let IpAddr::V4(interface) = local {
                            Self::join(&links, receiver.join_multicast_v4(&m, interface), group)?;
                        }
                    }
                    if let IpAddr::V4(interface) = links.local[0] {
                        sockets[0].set_multicast_if_v4(&interface)?;
                    }
                }
                SegmentCast::Multicast(IpAddr::V6(m)) => {
                    // Without a known interface (index 0) the routing table picks.
                    for index in mine.iter().map(|i| i.index).chain(mine.is_empty().then_some(0)) {
                        Self::join(&links, receiver.join_multicast_v6(&m, index), group)?;
                    }
                    if let Some(interface) = sending {
                        sockets[0].set_multicast_if_v6(interface.index)?;
                    }
                }
            }
            sockets.push(receiver);
        }
        // Loopback has nowhere else to send.
        if let Some(interface) = sending.filter(|i| !i.loopback) {
            Self::pin(&links, &sockets[0], interface);
        }
        let mut senders = HashMap::new();
        for peer in &links.peers {
            for &source in &peer.sources {
                senders.insert(SocketAddr::new(source, peer.address.port()), peer.id);
            }
        }
        let own_sources = links
            .local
            .iter()
            .map(|&a| SocketAddr::new(a, links.port))
            .collect();
        log::info!(
            "daemon network {}: UDP port {} on {:?}, {} peers, {}; interfaces {:?}",
            links.network,
            links.port,
            links.local,
            links.peers.len(),
            match links.segment_cast {
                Some(SegmentCast::Broadcast(a)) => format!("segment broadcast {a}"),
                Some(SegmentCast::Multicast(a)) => format!("segment multicast {a}"),
                None => "unicast only".to_string(),
            },
            mine.iter().map(|i| i.name.as_str()).collect::<Vec<_>>()
        );
        let arrival = ArrivalCheck::new(
            links.network,
            mine.iter().map(|i| i.index).collect(),
            all_interfaces
                .iter()
                .filter(|i| i.loopback)
                .map(|i| i.index)
                .collect(),
        );
        Ok(NetEndpoint {
            links,
            sockets: sockets.into_iter().map(UdpSocket::from).collect(),
            senders,
            own_sources,
            arrival,
            faults,
            stats: NetStats::default(),
            batch: DatagramBatch::new(RECEIVE_BATCH, MAX_MESSAGE),
            outbox: Outbox::new(),
        })
    }

    /// Makes what `sender` sends leave through `interface`, whatever the routing table says.
    /// Best effort: the routing table is usually right.
    fn pin(links: &Links, sender: &Socket, interface: &InterfaceAddress) {
        match sys::send_through_interface(sender.as_raw_fd(), links.local[0].is_ipv6(), interface.index) {
            Ok(()) => log::debug!("network {}: sending through {}", links.network, interface.name),
            Err(e) => log::info!(
                "network {}: cannot pin sending to {} ({e}); the routing table decides",
                links.network,
                interface.name
            ),
        }
    }

    fn join(links: &Links, result: io::Result<()>, group: SocketAddr) -> io::Result<()> {
        match result {
            Err(e) if links.ignore_multicast_join_errors => {
                log::warn!("joining {group}: {e} (ignored, as configured)");
                Ok(())
            }
            Err(e) => Err(io::Error::new(e.kind(), format!("joining {group}: {e}"))),
            Ok(()) => Ok(()),
        }
    }

    pub fn links(&self) -> &Links {
        &self.links
    }

    /// The descriptors to watch for reading, by index for [`NetEndpoint::receive`].
    pub fn raw_fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.sockets.iter().map(AsRawFd::as_raw_fd)
    }

    pub fn stats(&self) -> NetStats {
        let faults = self.faults.as_ref().map(FaultLayer::stats).unwrap_or_default();
        NetStats { faults, ..self.stats }
    }

    /// Queues one datagram to `to` for the next [`NetEndpoint::flush`]; false if it is a
    /// daemon not on this network.
    pub fn queue(&mut self, to: Destination, bytes: &[u8]) -> bool {
        match to {
            Destination::All => {
                self.queue_all(bytes);
                true
            }
            Destination::Daemon(id) => self.queue_to(id, bytes),
        }
    }

    /// Whether `to` is every daemon or one configured on this network.
    pub fn reaches(&self, to: Destination) -> bool {
        match to {
            Destination::All => true,
            Destination::Daemon(id) => self.links.peers.iter().any(|p| p.id == id),
        }
    }

    /// Queues one datagram to every other daemon: one segment broadcast or multicast when
    /// usable, unicasts to the rest.
    pub fn queue_all(&mut self, bytes: &[u8]) {
        if let Some(cast) = self.links.segment_cast {
            self.admit(SocketAddr::new(cast.address(), self.links.port), bytes);
        }
        for i in 0..self.links.peers.len() {
            let Peer {
                address,
                by_segment_cast,
                ..
            } = self.links.peers[i];
            if !by_segment_cast {
                self.admit(address, bytes);
            }
        }
    }

    /// Queues one datagram to daemon `id`; false if no such daemon is configured.
    pub fn queue_to(&mut self, id: u32, bytes: &[u8]) -> bool {
        match self.links.peers.iter().find(|p| p.id == id).map(|p| p.address) {
            Some(address) => {
                self.admit(address, bytes);
                true
            }
            None => false,
        }
    }

    /// Queues what the fault layer, if any, lets through now.
    fn admit(&mut self, to: SocketAddr, bytes: &[u8]) {
        let copies = match self.faults.as_mut() {
            Some(faults) => faults.admit(Instant::now(), self.links.network, to, bytes),
            None => 1,
        };
        for _ in 0..copies {
            self.outbox.push(to, bytes);
        }
    }

    /// Sends what is queued.
    pub fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let done = self.outbox.flush(self.sockets[0].as_raw_fd());
        self.stats.sent += done.sent;
        self.stats.send_errors += done.failed;
    }

    /// Answers a monitor query read on socket `index`, from that socket, so that the answer
    /// comes from the address asked (the segment-cast socket, bound to a broadcast or
    /// multicast address, leaves answering to the first one).
    pub fn reply(&self, index: usize, to: SocketAddr, bytes: &[u8]) {
        let socket = if index < self.links.local.len() { index } else { 0 };
        if let Err(e) = self.sockets[socket].send_to(bytes, to) {
            log::debug!("monitor reply of {} bytes to {to}: {e}", bytes.len());
        }
    }

    /// When datagrams held back by the fault layer are next due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.faults.as_ref().and_then(FaultLayer::next_due)
    }

    /// Queues the held-back datagrams that are due at `now`.
    pub fn queue_due(&mut self, now: Instant) {
        while let Some((to, bytes)) = self.faults.as_mut().and_then(|f| f.pop_due(now)) {
            self.outbox.push(to, &bytes);
        }
    }

    /// Reads the datagrams waiting on socket `index` (up to a few batches, so that clients
    /// are served in between; level-triggered epoll reports the rest), hands those of
    /// configured daemons to `deliver` and monitor datagrams, from anyone, to `monitor` with
    /// their source; returns how many were read.
    pub fn receive(
        &mut self,
        index: usize,
        deliver: &mut dyn FnMut(Received<'_>),
        monitor: &mut dyn FnMut(SocketAddr, &[u8]),
    ) -> usize {
        let fd = self.sockets[index].as_raw_fd();
        let mut read = 0;
        for _ in 0..BATCHES_PER_TURN {
            let n = match self.batch.receive(fd) {
                Ok(n) => n,
                Err(e) => {
                    // E.g. ECONNREFUSED left by an ICMP error for an earlier unicast: reported
                    // once, the next call goes on reading.
                    self.stats.receive_errors += 1;
                    log::debug!("receiving on {:?}: {e}", self.sockets[index].local_addr());
                    continue;
                }
            };
            for datagram in self.batch.datagrams() {
                read += 1;
                let (source, bytes) = (datagram.source, datagram.bytes);
                // A monitor's query comes from its own port, never a daemon's: recognised
                // before the sender check.
                if let Some(source) = source.filter(|_| query::is_monitor(bytes)) {
                    monitor(source, bytes);
                    continue;
                }
                let from = source.and_then(|s| self.senders.get(&s).copied());
                match from {
                    Some(_) if datagram.cut || bytes.len() > MAX_DATAGRAM => self.stats.oversized += 1,
                    Some(from) => {
                        let foreign_interface =
                            self.arrival.foreign(from, datagram.interface, &mut self.stats);
                        if foreign_interface.is_none() {
                            self.stats.received += 1;
                        }
                        deliver(Received {
                            network: self.links.network,
                            from,
                            bytes,
                            foreign_interface,
                        });
                    }
                    None if source.is_some_and(|s| self.own_sources.contains(&s)) => self.stats.own += 1,
                    None => {
                        self.stats.unknown_sender += 1;
                        log::debug!(
                            "dropped {} bytes from {source:?}, not a configured daemon",
                            bytes.len()
                        );
                    }
                }
            }
            if n < RECEIVE_BATCH {
                break;
            }
        }
        read
    }

    /// This network's interfaces (empty when unknown).
    pub fn interfaces(&self) -> &[u32] {
        &self.arrival.interfaces
    }

    /// `interfaces` are those of this daemon's other networks: a peer's datagram coming in
    /// through one of them (and not through one of this network's) is on the wrong wire.
    pub fn watch_other_networks(&mut self, interfaces: &[u32]) {
        self.arrival.watch(interfaces);
    }
}

#[cfg(test)]
pub(super) mod tests;
