//! The multipath link layer (sans-IO): one token ring over up to eight networks.
//!
//! It sits between the ring and the daemon's sockets. Outgoing, [`LinkLayer::on_send`] says on
//! which networks each ring datagram goes, following the mode:
//!
//! - `active`: every packet and the token on every usable network;
//! - `passive`: everything on the first usable network (network order is failover order),
//!   but a token resent more than once (it was lost) on every usable network;
//! - `hybrid`: the token (and hurry requests) on every usable network, each data packet on one
//!   network, taking the usable networks in turn; a data packet sent again (a retransmission)
//!   goes out on another network than the one it first came or went on.
//!
//! [`LinkLayer::send_copies`] sends the copies: one per network, the datagram re-stamped in place
//! with [`restamp`](crate::wire::packet::restamp)`(bytes, me, network)` before each. Incoming,
//! [`LinkLayer::on_receive`] keeps the first copy of each transmission for the ring and drops
//! the others, data packets the ring already has (it tells its progress with
//! [`LinkLayer::ring_progress`]: copies later than the copy groups' memory, a lagging
//! network's), token copies older than one already seen from the same sender, packets whose
//! claimed network is not the one they arrived on (crossed cables), and probes (consumed here).
//!
//! Health is tracked per peer and network ("link"). A link starts [`LinkState::Unheard`]: not
//! used, and not failed either (the peer may simply not run yet); the first good reception
//! both ways brings it up at once, with no hold time, and does not count as coming back (see
//! damping below). Only crossed cables fail a link not heard yet. A link that is up fails when copies that arrived
//! elsewhere miss it ([`LinkParams::miss_limit`] in a row, or [`LinkParams::loss_limit_permille`]
//! of the last 64), when it falls silent while the peer's traffic arrives elsewhere
//! ([`LinkParams::busy_silence`]), or when it is silent at all for [`LinkParams::idle_silence`]:
//! every daemon probes each peer on each network that carried nothing to it for
//! [`LinkParams::probe_interval`]. Probes and their acks carry the sender's reception report
//! of every network, so each side knows both directions (one-way links) and the round-trip time.
//! A failed link comes back after [`LinkParams::recovery_hold`] of good reception both ways (no
//! silence over [`LinkParams::recovery_gap`], loss under [`LinkParams::recovery_loss_permille`]);
//! one that fails again within [`LinkParams::damping_period`] of coming back is flapping and
//! needs a whole damping period of good reception. A network is used towards a peer only when both
//! daemons have it up. When no network is usable towards a peer, packets for it go on every
//! network it is on: only the ring and membership decide that a daemon is gone.
//!
//! Nothing here reads a clock or a socket: time comes in as `now`, datagrams as bytes, and
//! probes go out through [`LinkOutputs`].
//!
//! How the daemon plugs it in:
//! - at start: `LinkLayer::new(now, setup, LinkParams::default())` with this daemon, its
//!   networks (0 is the segments' network, then the `Spread_Network` blocks in order), every
//!   other daemon of the configuration with its networks, `Options::multipath`, the
//!   configuration hash and an incarnation number picked at this start, different from the
//!   previous runs' (so that peers tell a restart from late packets of the previous run); the
//!   ring's `Setup::network` may be any of them (copies are re-stamped);
//! - for each datagram the ring outputs: `send_copies(now, to, bytes, send)`, which re-stamps
//!   the datagram for each network it picks and calls `send(network, bytes)`; it goes to `to`'s
//!   address on that network (the segment address for `All`);
//! - for each datagram read on network `n` (the socket's network; the daemon drops one that came
//!   in through an interface of another network, and reports it with
//!   [`LinkLayer::arrived_elsewhere`]): `on_receive(now, n, bytes, &mut out)`; a
//!   [`Received::Ring`] packet goes to the ring as `Input::Packet { network: n, packet }`,
//!   and then [`LinkLayer::ring_progress`] takes the regular ring's id and `my_aru()`;
//! - when [`LinkLayer::next_deadline`] comes: [`LinkLayer::handle_timer`];
//! - after either, each of `out.sends()` goes to that peer's address on that network;
//! - the monitor reads [`LinkLayer::status`] ([`Status::to_json`], [`Status::health`]).

mod copies;
mod health;
mod keyhash;
mod netset;
pub mod probe;
mod route;
mod status;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

pub use health::{Fault, LinkCounters, LinkState, Reason, Transition, TRANSITIONS_KEPT};
pub use netset::NetSet;
pub use status::{Drops, Health, LinkStatus, Status};

use crate::config::{MultipathMode, MAX_NETWORKS};
use crate::ring::{Datagrams, Destination, Time};
use crate::wire::packet::{decode, restamp, Body, Packet, RingId};
use copies::{Arrival, Copies, CopyKey, Missing};
use health::Link;
use keyhash::KeyMap;
use probe::{Probe, ProbeKind};

/// Timings and limits of health tracking. The defaults detect a failed network within 250 ms
/// while traffic flows and within 1 s when idle, on a LAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkParams {
    /// A peer is probed on a network that carried nothing to it for this long (100 ms).
    pub probe_interval: Duration,
    /// Every link is probed at least this often, even under traffic, for its round-trip time
    /// and the peer's report (1 s).
    pub report_interval: Duration,
    /// The other copies of a transmission are due this long after the first (20 ms).
    pub copy_grace: Duration,
    /// Expected copies missing in a row that fail a link (6).
    pub miss_limit: u32,
    /// Share of the last 64 expected copies and probes missing that fails a link (500 ‰).
    pub loss_limit_permille: u16,
    /// A link that carried the peer's traffic and then nothing for this long, while the peer is
    /// heard elsewhere, fails (240 ms: one lost probe after the traffic stops is tolerated).
    pub busy_silence: Duration,
    /// A link silent for this long fails, whatever else is heard (450 ms: three lost probes in
    /// a row are tolerated).
    pub idle_silence: Duration,
    /// A gap longer than this breaks a run of good reception (250 ms).
    pub recovery_gap: Duration,
    /// A run of good reception breaks when more than this share of the copies and probes
    /// expected since it started went missing (25 ‰, a twentieth of
    /// [`LinkParams::loss_limit_permille`]). Loss, like silence, is judged with a wide
    /// margin below what fails a link: a damped link on a network losing 1 % comes back
    /// after its damping period, one still out for 50 ms of every second does not.
    pub recovery_loss_permille: u16,
    /// Good reception both ways for this long brings a failed link back (1 s).
    pub recovery_hold: Duration,
    /// A link failing within this long of coming back is flapping; it then needs this long of
    /// good reception to come back (30 s).
    pub damping_period: Duration,
    /// A peer's report older than this is not used (1.5 s).
    pub report_max_age: Duration,
    /// Transmissions remembered at most for recognising their copies (4096).
    pub dedup_capacity: usize,
    /// How long a transmission is remembered for recognising its copies (1 s).
    pub dedup_window: Duration,
}

impl Default for LinkParams {
    fn default() -> LinkParams {
        LinkParams {
            probe_interval: Duration::from_millis(100),
            report_interval: Duration::from_secs(1),
            copy_grace: Duration::from_millis(20),
            miss_limit: 6,
            loss_limit_permille: 500,
            busy_silence: Duration::from_millis(240),
            idle_silence: Duration::from_millis(450),
            recovery_gap: Duration::from_millis(250),
            recovery_loss_permille: 25,
            recovery_hold: Duration::from_secs(1),
            damping_period: Duration::from_secs(30),
            report_max_age: Duration::from_millis(1500),
            dedup_capacity: 4096,
            dedup_window: Duration::from_secs(1),
        }
    }
}

/// A daemon of the ring other than this one, and the networks it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u32,
    pub networks: NetSet,
}

/// Who this daemon is and whom it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSetup {
    pub me: u32,
    /// The networks this daemon is on.
    pub networks: NetSet,
    pub peers: Vec<Peer>,
    pub mode: MultipathMode,
    pub config_hash: u32,
    /// This run of the daemon: picked at start, different from the previous runs' (see the
    /// module documentation of [`probe`]).
    pub incarnation: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkSetupError {
    NoNetwork,
    /// A network id past the last one.
    BadNetwork(u8),
    /// A peer shares no network with this daemon.
    Unreachable(u32),
    DuplicatePeer(u32),
    PeerIsMe,
}

impl std::fmt::Display for LinkSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkSetupError::NoNetwork => write!(f, "this daemon is on no network"),
            LinkSetupError::BadNetwork(n) => write!(f, "network id {n} is not below {MAX_NETWORKS}"),
            LinkSetupError::Unreachable(id) => write!(f, "daemon {id:#x} shares no network with this one"),
            LinkSetupError::DuplicatePeer(id) => write!(f, "daemon {id:#x} is listed twice"),
            LinkSetupError::PeerIsMe => write!(f, "this daemon is listed among its peers"),
        }
    }
}

impl std::error::Error for LinkSetupError {}

/// Why an incoming datagram did not go to the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Another network brought this transmission first.
    Duplicate,
    /// A data packet the ring already has (see [`LinkLayer::ring_progress`]), arriving after
    /// the copies of its transmission were forgotten, or sent again.
    Late,
    /// A copy of a token older than one already seen from the same sender.
    StaleToken,
    /// Claims another network than the one it arrived on.
    Crossed {
        claimed: u8,
    },
    /// This daemon's own packet, looped back.
    Own,
    /// From a daemon that is not a peer, a probe meant for another daemon, or a probe of a
    /// peer's previous run (late).
    Stranger,
    /// From a peer on a network it is not configured on.
    WrongNetwork,
    /// Of another configuration.
    OtherConfiguration,
    Malformed,
}

/// What became of an incoming datagram.
#[derive(Debug, Clone, Copy)]
pub enum Received<'a> {
    /// The first copy of a ring packet: give it to the ring with the network it came on.
    Ring(Packet<'a>),
    /// A probe or ack, consumed here (an answer may be queued).
    Link,
    Dropped(DropReason),
}

/// Link packets to send: each to one peer on one network.
#[derive(Debug, Default)]
pub struct LinkOutputs {
    /// To (peer, network).
    datagrams: Datagrams<(u32, u8)>,
}

impl LinkOutputs {
    pub fn new() -> LinkOutputs {
        LinkOutputs::default()
    }

    /// Forgets everything, keeping the buffers.
    pub fn clear(&mut self) {
        self.datagrams.clear();
    }

    /// (peer, network, datagram), in sending order.
    pub fn sends(&self) -> impl Iterator<Item = (u32, u8, &[u8])> + '_ {
        self.datagrams
            .iter()
            .map(|((peer, net), bytes)| (peer, net, bytes))
    }

    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }
}

#[derive(Debug)]
struct PeerState {
    id: u32,
    /// Networks this daemon and the peer share.
    networks: NetSet,
    /// One per shared network, in network order.
    links: Vec<Link>,
    /// The newest token seen from the peer: ring, rotation, resend count.
    last_token: Option<(RingId, u64, u8)>,
    /// Number of the newest report taken from the peer's current run.
    report_number: Option<u32>,
    /// The peer's current run, once a probe told it, and its runs before (newest last).
    incarnation: Option<u32>,
    past_incarnations: Vec<u32>,
    /// When the peer was last heard again after being heard nowhere for
    /// [`LinkParams::busy_silence`].
    resumed_at: Option<Time>,
}

/// Past runs of a peer remembered, to drop their late probes.
const PAST_INCARNATIONS_KEPT: usize = 4;

impl PeerState {
    fn link(&self, network: u8) -> Option<usize> {
        self.links.iter().position(|l| l.network == network)
    }

    /// A token older than the newest one seen from the peer: a late copy, or a replay.
    fn is_stale(&self, key: &CopyKey) -> bool {
        match (*key, self.last_token) {
            (
                CopyKey::Token {
                    ring,
                    rotation,
                    retrans,
                    ..
                },
                Some(last),
            ) => last.0 == ring && (rotation, retrans) < (last.1, last.2),
            _ => false,
        }
    }

    /// Something valid from the peer arrived on its link `l`.
    fn heard(&mut self, now: Time, l: usize, ring: bool, params: &LinkParams) {
        let latest = self.links.iter().filter_map(Link::last_heard).max();
        if latest.map_or(true, |t| now.since(t) >= params.busy_silence) {
            self.resumed_at = Some(now);
        }
        self.links[l].heard(now, ring, params);
    }

    /// Takes the incarnation of a probe from the peer; false when it is of a previous run
    /// (a late packet, to drop). Another one means that the peer started again: what was
    /// known of its previous run is forgotten, and its links start unheard.
    fn take_incarnation(&mut self, now: Time, incarnation: u32) -> bool {
        match self.incarnation {
            Some(current) if current == incarnation => return true,
            _ if self.past_incarnations.contains(&incarnation) => return false,
            None => {}
            Some(previous) => {
                if self.past_incarnations.len() == PAST_INCARNATIONS_KEPT {
                    self.past_incarnations.remove(0);
                }
                self.past_incarnations.push(previous);
                log::info!(
                    "link: daemon {:#x} started again: its links start unheard",
                    self.id
                );
                for link in &mut self.links {
                    let before = link.state();
                    link.restart(now);
                    if link.state() != before {
                        log_transition(self.id, link, before);
                    }
                }
                self.last_token = None;
                self.report_number = None;
                self.resumed_at = Some(now);
            }
        }
        self.incarnation = Some(incarnation);
        true
    }
}

/// Every state change is logged: at warn when a link fails, at info otherwise.
fn log_transition(peer: u32, link: &Link, before: LinkState) {
    let Some(t) = link.transitions().last() else {
        return;
    };
    let (level, detail) = match t.reason {
        Reason::Fault(f) => (log::Level::Warn, crossed_detail(f)),
        Reason::Recovered | Reason::Heard | Reason::PeerRestarted => (log::Level::Info, String::new()),
    };
    log::log!(
        level,
        "link: daemon {peer:#x} network {}: {} -> {} ({}{detail})",
        link.network,
        before.name(),
        link.state().name(),
        t.reason.name()
    );
}

/// Where a crossed link's packets arrive, for logs.
fn crossed_detail(fault: Fault) -> String {
    match fault {
        Fault::Crossed { arrives_on } => format!(": its packets arrive on network {arrives_on}"),
        _ => String::new(),
    }
}

/// One daemon's multipath link layer. See the module documentation.
#[derive(Debug)]
pub struct LinkLayer {
    me: u32,
    networks: NetSet,
    mode: MultipathMode,
    config_hash: u32,
    incarnation: u32,
    params: LinkParams,
    peers: Vec<PeerState>,
    copies: Copies,
    /// The network each recent data packet first came or went on, for hybrid retransmissions.
    data_networks: KeyMap<(RingId, u64), u8>,
    data_order: VecDeque<(RingId, u64)>,
    /// Scratch space for a broadcast's choice of networks.
    reach: Vec<route::Reach>,
    /// Where the next new data packet starts looking for a network (hybrid mode).
    next_spread: u8,
    /// Number of the next report this daemon writes.
    report_number: u32,
    /// Time of the last [`LinkLayer::handle_timer`]: deadlines up to it are done.
    evaluated_at: Time,
    drops: Drops,
    missing: Vec<Missing>,
    /// The ring's progress: ring id and its aru (it has every data packet up to there).
    ring_progress: Option<(RingId, u64)>,
}

impl LinkLayer {
    pub fn new(now: Time, setup: LinkSetup, params: LinkParams) -> Result<LinkLayer, LinkSetupError> {
        let valid = NetSet::first_n(MAX_NETWORKS);
        if setup.networks.is_empty() {
            return Err(LinkSetupError::NoNetwork);
        }
        let mut peers: Vec<PeerState> = Vec::with_capacity(setup.peers.len());
        for peer in &setup.peers {
            if let Some(bad) = peer.networks.union(setup.networks).difference(valid).first() {
                return Err(LinkSetupError::BadNetwork(bad));
            }
            if peer.id == setup.me {
                return Err(LinkSetupError::PeerIsMe);
            }
            if peers.iter().any(|p| p.id == peer.id) {
                return Err(LinkSetupError::DuplicatePeer(peer.id));
            }
            let shared = peer.networks.intersection(setup.networks);
            if shared.is_empty() {
                return Err(LinkSetupError::Unreachable(peer.id));
            }
            peers.push(PeerState {
                id: peer.id,
                networks: shared,
                links: shared.iter().map(Link::new).collect(),
                last_token: None,
                report_number: None,
                incarnation: None,
                past_incarnations: Vec::new(),
                resumed_at: None,
            });
        }
        Ok(LinkLayer {
            me: setup.me,
            networks: setup.networks,
            mode: setup.mode,
            config_hash: setup.config_hash,
            incarnation: setup.incarnation,
            copies: Copies::new(params.dedup_capacity, params.dedup_window, params.copy_grace),
            data_networks: KeyMap::default(),
            data_order: VecDeque::new(),
            params,
            peers,
            reach: Vec::new(),
            next_spread: 0,
            report_number: 0,
            evaluated_at: now,
            drops: Drops::default(),
            missing: Vec::new(),
            ring_progress: None,
        })
    }

    fn peer_index(&self, id: u32) -> Option<usize> {
        self.peers.iter().position(|p| p.id == id)
    }

    /// Networks usable towards peer `index`: up here and, as far as the peer said, up there.
    fn usable(&self, now: Time, index: usize) -> NetSet {
        self.peers[index]
            .links
            .iter()
            .filter(|l| l.is_up() && l.peer_says_up(now, &self.params))
            .map(|l| l.network)
            .collect()
    }

    /// Networks towards peer `index` that work both ways again but are not in use yet.
    fn coming_back(&self, now: Time, index: usize) -> NetSet {
        self.peers[index]
            .links
            .iter()
            .filter(|l| l.is_coming_back(now, &self.params))
            .map(|l| l.network)
            .collect()
    }

    /// The networks a ring datagram for `to` goes on; the daemon sends one re-stamped copy on
    /// each. Empty only for a destination that is not a peer, or a broadcast with no peers.
    pub fn on_send(&mut self, now: Time, to: Destination, bytes: &[u8]) -> NetSet {
        let packet = decode(bytes).ok();
        let data = packet.as_ref().and_then(|p| match p.body {
            Body::Data(d) => Some((p.header.ring, d.seq)),
            Body::Token(_) | Body::Hurry | Body::Alive | Body::Join(_) | Body::Form(_) => None,
        });
        // A token resent twice was lost (one resend is routine: the idle ring's leader holds
        // the token and lets it go on its hurry timeout). In passive mode it goes on every
        // usable network, so that a network failing for less than it takes to notice cannot
        // eat it again and again.
        let resent_token = packet
            .as_ref()
            .is_some_and(|p| matches!(p.body, Body::Token(t) if t.fields.retrans > 1));
        let token = packet.as_ref().is_some_and(|p| matches!(p.body, Body::Token(_)));
        let networks = match to {
            Destination::Daemon(id) => {
                let Some(index) = self.peer_index(id) else {
                    log::warn!("link: datagram for {id:#x}, not a peer; not sent");
                    return NetSet::EMPTY;
                };
                let usable = self.usable(now, index);
                let mode = if resent_token {
                    MultipathMode::Active
                } else {
                    self.mode
                };
                let networks = route::unicast(mode, usable, self.peers[index].networks);
                if token && networks.len() == 1 && self.mode != MultipathMode::Passive {
                    // A token on one network alone is lost if that network fails before it
                    // is noticed, and only the leader's hurry timeout would resend it: it
                    // also goes on networks coming back. (Passive mode keeps to one network;
                    // it resends a token lost twice on every usable one.)
                    networks.union(self.coming_back(now, index))
                } else {
                    networks
                }
            }
            Destination::All => {
                let mut reach = std::mem::take(&mut self.reach);
                reach.clear();
                reach.extend((0..self.peers.len()).map(|i| route::Reach {
                    usable: self.usable(now, i),
                    all: self.peers[i].networks,
                }));
                let networks = match (self.mode, data) {
                    (MultipathMode::Active, _) | (MultipathMode::Hybrid, None) => route::every_usable(&reach),
                    (MultipathMode::Passive, _) => route::first_usable(&reach, 0),
                    (MultipathMode::Hybrid, Some(key)) => match self.data_networks.get(&key) {
                        // Sent or received before: this is a retransmission, it moves on.
                        Some(&before) => route::first_usable(&reach, (before + 1) % MAX_NETWORKS as u8),
                        None => {
                            let nets = route::first_usable(&reach, self.next_spread);
                            self.next_spread = nets.first().map_or(0, |n| (n + 1) % MAX_NETWORKS as u8);
                            nets
                        }
                    },
                };
                self.reach = reach;
                networks
            }
        };
        if let (Some(key), Some(first)) = (data, networks.first()) {
            self.remember_data_network(key, first);
        }
        for peer in &mut self.peers {
            if matches!(to, Destination::Daemon(id) if id != peer.id) {
                continue;
            }
            for link in &mut peer.links {
                if networks.contains(link.network) {
                    link.last_sent = Some(now);
                    link.counters.copies_sent += 1;
                }
            }
        }
        networks
    }

    /// Sends a ring datagram for `to`: for each network [`LinkLayer::on_send`] picks, re-stamps
    /// `bytes` in place with this daemon and that network and calls `send(network, bytes)`.
    /// Returns the networks.
    pub fn send_copies(
        &mut self,
        now: Time,
        to: Destination,
        bytes: &mut [u8],
        mut send: impl FnMut(u8, &[u8]),
    ) -> NetSet {
        let networks = self.on_send(now, to, bytes);
        for network in networks.iter() {
            restamp(bytes, self.me, network);
            send(network, bytes);
        }
        networks
    }

    fn remember_data_network(&mut self, key: (RingId, u64), network: u8) {
        if self.data_networks.insert(key, network).is_none() {
            self.data_order.push_back(key);
            while self.data_order.len() > self.params.dedup_capacity {
                if let Some(old) = self.data_order.pop_front() {
                    self.data_networks.remove(&old);
                }
            }
        }
    }

    /// Takes a datagram that arrived on network `arrival`.
    pub fn on_receive<'a>(
        &mut self,
        now: Time,
        arrival: u8,
        bytes: &'a [u8],
        out: &mut LinkOutputs,
    ) -> Received<'a> {
        let received = if probe::is_link_packet(bytes) {
            self.receive_probe(now, arrival, bytes, out)
        } else {
            self.receive_ring(now, arrival, bytes, out)
        };
        if let Received::Dropped(reason) = received {
            self.drops.count(reason);
        }
        received
    }

    /// Checks what every datagram must pass; returns the peer and its link for `arrival`.
    fn admit(
        &mut self,
        now: Time,
        arrival: u8,
        config_hash: u32,
        sender: u32,
        claimed: u8,
        out: &mut LinkOutputs,
    ) -> Result<(usize, usize), DropReason> {
        if config_hash != self.config_hash {
            return Err(DropReason::OtherConfiguration);
        }
        if sender == self.me {
            return Err(DropReason::Own);
        }
        let index = self.peer_index(sender).ok_or(DropReason::Stranger)?;
        if claimed != arrival {
            return Err(self.crossed(now, index, claimed, arrival, out));
        }
        let link = self.peers[index].link(arrival).ok_or(DropReason::WrongNetwork)?;
        Ok((index, link))
    }

    /// Peer `index`'s packet for network `claimed` arrived on network `arrival`.
    fn crossed(
        &mut self,
        now: Time,
        index: usize,
        claimed: u8,
        arrival: u8,
        out: &mut LinkOutputs,
    ) -> DropReason {
        let peer = &mut self.peers[index];
        if let Some(l) = peer.link(claimed) {
            peer.links[l].crossed(now, arrival);
            self.evaluate_peer(now, index, out);
        }
        DropReason::Crossed { claimed }
    }

    /// A datagram read on network `network`'s socket came in through an interface of network
    /// `arrival` (the daemon checks arrival interfaces): from a peer, it is evidence of crossed
    /// cables on `network`, as a packet claiming `network` arriving on `arrival` is. Never for
    /// the ring; returns why it is dropped.
    pub fn arrived_elsewhere(
        &mut self,
        now: Time,
        network: u8,
        arrival: u8,
        bytes: &[u8],
        out: &mut LinkOutputs,
    ) -> DropReason {
        let origin = if probe::is_link_packet(bytes) {
            probe::decode(bytes).ok().map(|p| (p.config_hash, p.sender))
        } else {
            decode(bytes)
                .ok()
                .map(|p| (p.header.config_hash, p.header.sender))
        };
        let reason = match origin {
            None => DropReason::Malformed,
            Some((hash, _)) if hash != self.config_hash => DropReason::OtherConfiguration,
            Some((_, sender)) if sender == self.me => DropReason::Own,
            Some((_, sender)) => match self.peer_index(sender) {
                None => DropReason::Stranger,
                Some(index) => self.crossed(now, index, network, arrival, out),
            },
        };
        self.drops.count(reason);
        reason
    }

    fn receive_ring<'a>(
        &mut self,
        now: Time,
        arrival: u8,
        bytes: &'a [u8],
        out: &mut LinkOutputs,
    ) -> Received<'a> {
        let Ok(packet) = decode(bytes) else {
            return Received::Dropped(DropReason::Malformed);
        };
        let h = packet.header;
        let (index, l) = match self.admit(now, arrival, h.config_hash, h.sender, h.network, out) {
            Ok(found) => found,
            Err(reason) => return Received::Dropped(reason),
        };
        let params = &self.params;
        let peer = &mut self.peers[index];
        peer.heard(now, l, true, params);
        let link = &mut peer.links[l];
        link.counters.packets += 1;
        let key = match packet.body {
            Body::Data(d) => CopyKey::Data {
                sender: h.sender,
                ring: h.ring,
                seq: d.seq,
            },
            Body::Token(t) => {
                link.counters.tokens += 1;
                CopyKey::Token {
                    sender: h.sender,
                    ring: h.ring,
                    rotation: t.fields.rotation,
                    retrans: t.fields.retrans,
                }
            }
            Body::Hurry | Body::Alive | Body::Join(_) | Body::Form(_) => CopyKey::Control {
                sender: h.sender,
                ring: h.ring,
                kind: h.kind,
            },
        };
        // A packet the ring has needs no copy: one later than its group is dropped with no
        // group and no expectations (it tells nothing of the other networks), and one sent
        // again goes through its group only for the accounting of its copies.
        let has = self.ring_has(&key);
        if has && !self.copies.remembers(&key) {
            self.peers[index].links[l].counters.duplicates += 1;
            self.evaluate_peer(now, index, out);
            return Received::Dropped(DropReason::Late);
        }
        // Copies are expected of a transmission first seen on a network in use, and not late.
        // One coming on a network not in use may be late (a lagging network), and a stale
        // token is: neither says anything of the other networks.
        let mut expected = self.expected_copies(now, index, &key);
        if expected.contains(arrival) {
            self.peers[index].links[l].outcome(false);
        }
        if !expected.contains(arrival) || self.peers[index].is_stale(&key) {
            expected = NetSet::EMPTY;
        }
        let received = match self.copies.arrive(now, key, arrival, expected) {
            Arrival::Duplicate => {
                self.peers[index].links[l].counters.duplicates += 1;
                Received::Dropped(DropReason::Duplicate)
            }
            Arrival::First { missing } => {
                if let Some(missing) = missing {
                    self.account(missing);
                }
                if has {
                    self.peers[index].links[l].counters.duplicates += 1;
                    Received::Dropped(DropReason::Late)
                } else {
                    self.first_copy(index, l, arrival, key, packet)
                }
            }
        };
        self.evaluate_peer(now, index, out);
        received
    }

    /// Tells how far the ring got: the ring `ring` has every data packet up to `aru` (its own
    /// aru, [`Ring::my_aru`](crate::ring::Ring::my_aru), of the current regular
    /// configuration). Copies of those packets are dropped from then on ([`DropReason::Late`]).
    /// Call it after the ring took each packet; a value from before only drops less.
    pub fn ring_progress(&mut self, ring: RingId, aru: u64) {
        self.ring_progress = Some((ring, aru));
    }

    /// Whether `key` is a data packet the ring has, by [`LinkLayer::ring_progress`].
    fn ring_has(&self, key: &CopyKey) -> bool {
        match (*key, self.ring_progress) {
            (CopyKey::Data { ring, seq, .. }, Some((progress, aru))) => ring == progress && seq <= aru,
            _ => false,
        }
    }

    /// The first copy of a transmission goes to the ring, unless it is a token older than one
    /// already seen from the same sender (a late copy, or a replay).
    fn first_copy<'a>(
        &mut self,
        index: usize,
        l: usize,
        arrival: u8,
        key: CopyKey,
        packet: Packet<'a>,
    ) -> Received<'a> {
        let peer = &mut self.peers[index];
        match key {
            CopyKey::Token {
                ring,
                rotation,
                retrans,
                ..
            } => {
                if peer.is_stale(&key) {
                    peer.links[l].counters.stale += 1;
                    return Received::Dropped(DropReason::StaleToken);
                }
                peer.last_token = Some((ring, rotation, retrans));
            }
            CopyKey::Data { ring, seq, .. } => self.remember_data_network((ring, seq), arrival),
            CopyKey::Control { .. } => {}
        }
        Received::Ring(packet)
    }

    /// Networks a transmission from peer `index` should come on, by this daemon's view.
    fn expected_copies(&self, now: Time, index: usize, key: &CopyKey) -> NetSet {
        match (self.mode, key) {
            (MultipathMode::Passive, _) | (MultipathMode::Hybrid, CopyKey::Data { .. }) => NetSet::EMPTY,
            _ => self.usable(now, index),
        }
    }

    fn account(&mut self, missing: Missing) {
        if let Some(index) = self.peer_index(missing.sender) {
            for link in &mut self.peers[index].links {
                if missing.networks.contains(link.network) {
                    link.outcome(true);
                }
            }
        }
    }

    fn receive_probe<'a>(
        &mut self,
        now: Time,
        arrival: u8,
        bytes: &[u8],
        out: &mut LinkOutputs,
    ) -> Received<'a> {
        let Ok(p) = probe::decode(bytes) else {
            return Received::Dropped(DropReason::Malformed);
        };
        if p.receiver != self.me && p.sender != self.me {
            return Received::Dropped(DropReason::Stranger);
        }
        let (index, l) = match self.admit(now, arrival, p.config_hash, p.sender, p.network, out) {
            Ok(found) => found,
            Err(reason) => return Received::Dropped(reason),
        };
        let params = &self.params;
        let peer = &mut self.peers[index];
        if !peer.take_incarnation(now, p.incarnation) {
            return Received::Dropped(DropReason::Stranger);
        }
        peer.heard(now, l, false, params);
        let link = &mut peer.links[l];
        // Serial arithmetic within the peer's run: a gap forward is lost packets; a step back
        // is a late packet (already counted as lost), however far. A gap of one packet is
        // counted at the next arrival if that packet has not come by then: packets sent close
        // together may swap places on the way.
        let forward = link.last_seq.map(|last| p.seq.wrapping_sub(last));
        match forward {
            Some(step) if step > 0 && step < 1 << 31 => {
                if link.hole.take().is_some() {
                    link.outcome(true);
                }
                if step == 2 {
                    link.hole = Some(p.seq.wrapping_sub(1));
                } else {
                    for _ in 0..(step - 1).min(64) {
                        link.outcome(true);
                    }
                }
                link.last_seq = Some(p.seq);
            }
            Some(_) => {
                if link.hole == Some(p.seq) {
                    link.hole = None;
                }
            }
            None => link.last_seq = Some(p.seq),
        }
        link.outcome(false);
        match p.kind {
            ProbeKind::Probe => link.counters.probes_received += 1,
            ProbeKind::Ack => {
                link.counters.acks_received += 1;
                if let Some(rtt) = now.as_micros().checked_sub(p.timestamp) {
                    link.rtt_sample(Duration::from_micros(rtt));
                }
            }
        }
        // Reports cross on several networks: the newest of the peer's run wins.
        let newer = peer.report_number.map_or(true, |n| {
            let step = p.report_number.wrapping_sub(n);
            step > 0 && step < 1 << 31
        });
        if newer {
            peer.report_number = Some(p.report_number);
            for entry in &p.entries {
                if let Some(l) = peer.link(entry.network) {
                    peer.links[l].report(now, *entry);
                }
            }
        }
        if p.kind == ProbeKind::Probe {
            self.send_probe(now, index, l, ProbeKind::Ack, p.timestamp, out);
        }
        self.evaluate_peer(now, index, out);
        Received::Link
    }

    /// Queues a probe or ack to peer `index` on its link `l`, with this daemon's report.
    fn send_probe(
        &mut self,
        now: Time,
        index: usize,
        l: usize,
        kind: ProbeKind,
        timestamp: u64,
        out: &mut LinkOutputs,
    ) {
        self.report_number = self.report_number.wrapping_add(1);
        let peer = &mut self.peers[index];
        let entries = peer.links.iter().map(|link| link.report_entry(now)).collect();
        let link = &mut peer.links[l];
        let p = Probe {
            kind,
            network: link.network,
            config_hash: self.config_hash,
            sender: self.me,
            receiver: peer.id,
            seq: link.next_seq,
            report_number: self.report_number,
            timestamp,
            incarnation: self.incarnation,
            entries,
        };
        link.next_seq = link.next_seq.wrapping_add(1);
        link.last_sent = Some(now);
        if kind == ProbeKind::Probe {
            link.last_probe = Some(now);
            link.counters.probes_sent += 1;
        }
        out.datagrams
            .push_with((peer.id, link.network), |arena| probe::encode(arena, &p));
    }

    /// Re-evaluates peer `index`'s links; when how we hear it changed, tells it at once on
    /// every network.
    fn evaluate_peer(&mut self, now: Time, index: usize, out: &mut LinkOutputs) {
        let peer = &mut self.peers[index];
        let mut urgent = false;
        for l in 0..peer.links.len() {
            let heard = peer.links[l].last_heard();
            // A peer heard nowhere for a while (paused, or started again) comes back on its
            // networks one after the other: until it had the time to come back on this one,
            // this link's silence is no silence while the peer is heard elsewhere.
            let resuming = peer
                .resumed_at
                .is_some_and(|r| heard < Some(r) && now < r + self.params.busy_silence);
            let heard_elsewhere = !resuming && peer.links.iter().any(|o| o.last_heard() > heard);
            let before = peer.links[l].state();
            let change = peer.links[l].evaluate(now, heard_elsewhere, &self.params);
            let link = &peer.links[l];
            if change.state {
                log_transition(peer.id, link, before);
            }
            if let (Some(old), Some(new)) = (change.fault_of_down, link.fault()) {
                // Crossed cables need a hand; other changes of a dead link's symptoms do not.
                let level = match new {
                    Fault::Crossed { .. } => log::Level::Warn,
                    _ => log::Level::Debug,
                };
                log::log!(
                    level,
                    "link: daemon {:#x} network {}: still down, {} -> {}{}",
                    peer.id,
                    link.network,
                    old.name(),
                    new.name(),
                    crossed_detail(new)
                );
            }
            urgent |= change.reception || change.state;
        }
        if urgent {
            for l in 0..self.peers[index].links.len() {
                self.send_probe(now, index, l, ProbeKind::Probe, now.as_micros(), out);
            }
        }
    }

    /// Does what is due at `now`: accounts missing copies, takes health decisions, probes.
    pub fn handle_timer(&mut self, now: Time, out: &mut LinkOutputs) {
        let mut missing = std::mem::take(&mut self.missing);
        self.copies.expire(now, &mut missing);
        for m in missing.drain(..) {
            self.account(m);
        }
        self.missing = missing;
        // Probes due soon go now with those due now: one wake-up serves many links.
        let soon = now + self.params.probe_interval / 4;
        for index in 0..self.peers.len() {
            self.evaluate_peer(now, index, out);
            for l in 0..self.peers[index].links.len() {
                if self.probe_due(index, l).map_or(true, |due| due <= soon) {
                    self.send_probe(now, index, l, ProbeKind::Probe, now.as_micros(), out);
                }
            }
        }
        self.evaluated_at = now;
    }

    /// When link `l` of peer `index` must be probed; `None` when it never was.
    fn probe_due(&self, index: usize, l: usize) -> Option<Time> {
        let link = &self.peers[index].links[l];
        Some(
            (link.last_sent? + self.params.probe_interval)
                .min(link.last_probe? + self.params.report_interval),
        )
    }

    /// When [`LinkLayer::handle_timer`] must be called next.
    pub fn next_deadline(&self) -> Time {
        let mut next = self.copies.next_deadline();
        let mut consider = |t: Time| next = Some(next.map_or(t, |n: Time| n.min(t)));
        for (index, peer) in self.peers.iter().enumerate() {
            for (l, link) in peer.links.iter().enumerate() {
                consider(self.probe_due(index, l).unwrap_or(self.evaluated_at));
                if let Some(t) = link.next_deadline(self.evaluated_at, &self.params) {
                    consider(t);
                }
            }
        }
        next.unwrap_or(self.evaluated_at + self.params.report_interval)
    }

    /// Everything the monitor shows.
    pub fn status(&self, now: Time) -> Status {
        let mut links = Vec::new();
        for (index, peer) in self.peers.iter().enumerate() {
            let usable = self.usable(now, index);
            for link in &peer.links {
                links.push(LinkStatus {
                    peer: peer.id,
                    network: link.network,
                    state: link.state(),
                    up: link.is_up(),
                    usable: usable.contains(link.network),
                    fault: link.fault(),
                    damped: link.is_damped(),
                    rtt: link.rtt,
                    loss_permille: link.loss_permille(),
                    peer_loss_permille: link.peer_loss_permille(now, &self.params),
                    counters: link.counters,
                    transitions: link.transitions().copied().collect(),
                });
            }
        }
        Status {
            me: self.me,
            mode: self.mode,
            networks: self.networks,
            links,
            drops: self.drops,
        }
    }
}
