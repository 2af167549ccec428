//! Link layer tests: choices of networks per mode, copies, and a small deterministic world of
//! real rings over link layers over simulated networks with losses, outages, one-way links,
//! crossed cables and flapping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use super::*;
use crate::config::Options;
use crate::ring::{Input, Outputs, Params, Ring, Setup};
use crate::wire::packet::{encode_token, restamp, Header, Kind, MessagesWriter, ServiceLevel, TokenFields};

const HASH: u32 = 0x5eed;
const RING: RingId = RingId { rep: 1, seq: 1 };

fn ms(n: u64) -> Time {
    Time::from_micros(n * 1000)
}

fn at_ms(t: Time) -> f64 {
    t.as_micros() as f64 / 1000.0
}

fn header(kind: Kind, sender: u32, network: u8) -> Header {
    Header {
        kind,
        network,
        config_hash: HASH,
        sender,
        ring: RING,
    }
}

fn data_packet(sender: u32, origin: u32, seq: u64, network: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = MessagesWriter::new(&mut out, &header(Kind::Data, sender, network), seq, origin);
    w.push(ServiceLevel::Agreed, b"payload");
    out
}

fn token_packet(sender: u32, rotation: u64, retrans: u8, network: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let fields = TokenFields {
        rotation,
        retrans,
        ..TokenFields::default()
    };
    encode_token(&mut out, &header(Kind::Token, sender, network), &fields, &[]);
    out
}

fn setup(me: u32, ids: &[u32], networks: NetSet, mode: MultipathMode) -> LinkSetup {
    LinkSetup {
        me,
        networks,
        peers: ids
            .iter()
            .filter(|&&id| id != me)
            .map(|&id| Peer { id, networks })
            .collect(),
        mode,
        config_hash: HASH,
        incarnation: me,
    }
}

/// Daemon 1 of daemons 1 to 3 on networks 0 to 2, just started.
fn unheard_layer(mode: MultipathMode) -> LinkLayer {
    LinkLayer::new(
        Time::ZERO,
        setup(1, &[1, 2, 3], NetSet::first_n(3), mode),
        LinkParams::default(),
    )
    .unwrap()
}

/// [`unheard_layer`] with every link heard both ways.
fn layer(mode: MultipathMode) -> LinkLayer {
    let mut l = unheard_layer(mode);
    hear_all(&mut l, &[2, 3], 3);
    l
}

/// Daemon 1's active link layer towards daemon 2, both networks up.
fn two_network_pair() -> LinkLayer {
    let mut l = LinkLayer::new(
        Time::ZERO,
        setup(1, &[1, 2], NetSet::first_n(2), MultipathMode::Active),
        LinkParams::default(),
    )
    .unwrap();
    hear_all(&mut l, &[2], 2);
    l
}

/// Brings every link of `l` to `peers` on the first `networks` networks up at time zero: a
/// probe from each peer on each network, reporting it hears us.
fn hear_all(l: &mut LinkLayer, peers: &[u32], networks: u8) {
    let mut out = LinkOutputs::new();
    for &peer in peers {
        for net in 0..networks {
            let p = probe_from(peer, probe::ProbeKind::Probe, net, u32::from(net) + 1, 0);
            assert!(matches!(
                l.on_receive(Time::ZERO, net, &p, &mut out),
                Received::Link
            ));
        }
    }
    assert!(l.status(Time::ZERO).links.iter().all(|s| s.usable));
}

fn set(nets: &[u8]) -> NetSet {
    nets.iter().copied().collect()
}

#[test]
fn setup_errors() {
    let nets = NetSet::first_n(2);
    let new = |s| LinkLayer::new(Time::ZERO, s, LinkParams::default()).err();
    let mut s = setup(1, &[1, 2], nets, MultipathMode::Active);
    s.networks = NetSet::EMPTY;
    assert_eq!(new(s), Some(LinkSetupError::NoNetwork));
    let mut s = setup(1, &[1, 2], nets, MultipathMode::Active);
    s.peers.push(Peer {
        id: 2,
        networks: nets,
    });
    assert_eq!(new(s), Some(LinkSetupError::DuplicatePeer(2)));
    let mut s = setup(1, &[1, 2], nets, MultipathMode::Active);
    s.peers.push(Peer {
        id: 1,
        networks: nets,
    });
    assert_eq!(new(s), Some(LinkSetupError::PeerIsMe));
    let mut s = setup(1, &[1, 2], set(&[0]), MultipathMode::Active);
    s.peers[0].networks = set(&[1]);
    assert_eq!(new(s), Some(LinkSetupError::Unreachable(2)));
}

#[test]
fn each_mode_chooses_its_networks() {
    let token = token_packet(1, 1, 0, 0);
    let all = NetSet::first_n(3);

    let mut active = layer(MultipathMode::Active);
    assert_eq!(active.on_send(ms(1), Destination::Daemon(2), &token), all);
    for seq in 1..=3 {
        assert_eq!(
            active.on_send(ms(1), Destination::All, &data_packet(1, 1, seq, 0)),
            all
        );
    }

    let mut passive = layer(MultipathMode::Passive);
    assert_eq!(passive.on_send(ms(1), Destination::Daemon(2), &token), set(&[0]));
    // A token resent twice was lost, maybe on a network not yet known as failed: it goes
    // everywhere. One resend is the idle ring's routine.
    let resent = token_packet(1, 1, 1, 0);
    assert_eq!(passive.on_send(ms(1), Destination::Daemon(2), &resent), set(&[0]));
    let lost = token_packet(1, 1, 2, 0);
    assert_eq!(passive.on_send(ms(1), Destination::Daemon(2), &lost), all);
    for seq in 1..=3 {
        assert_eq!(
            passive.on_send(ms(1), Destination::All, &data_packet(1, 1, seq, 0)),
            set(&[0])
        );
    }

    let mut hybrid = layer(MultipathMode::Hybrid);
    assert_eq!(hybrid.on_send(ms(1), Destination::Daemon(2), &token), all);
    let spread: Vec<NetSet> = (1..=6)
        .map(|seq| hybrid.on_send(ms(1), Destination::All, &data_packet(1, 1, seq, 0)))
        .collect();
    assert_eq!(spread, [0, 1, 2, 0, 1, 2].map(|n| set(&[n])));

    // Strangers get nothing; copies sent are counted per link.
    assert_eq!(
        hybrid.on_send(ms(1), Destination::Daemon(9), &token),
        NetSet::EMPTY
    );
    let st = active.status(ms(1));
    assert!(st.links.iter().all(|l| l.counters.copies_sent >= 3), "{st:?}");
}

#[test]
fn copies_are_restamped_per_network() {
    let mut active = layer(MultipathMode::Active);
    // Stamped by someone else (a stored packet resent): every copy says daemon 1 sent it.
    let mut token = token_packet(3, 1, 0, 0);
    let mut copies = Vec::new();
    let nets = active.send_copies(ms(1), Destination::Daemon(2), &mut token, |net, copy| {
        copies.push((net, copy.to_vec()))
    });
    assert_eq!(nets, NetSet::first_n(3));
    assert_eq!(copies.len(), 3);
    for (net, copy) in copies {
        let p = decode(&copy).unwrap();
        assert_eq!((p.header.network, p.header.sender), (net, 1));
        assert_eq!(copy[..4], token[..4]);
    }
}

#[test]
fn hybrid_retransmissions_change_network() {
    let mut hybrid = layer(MultipathMode::Hybrid);
    let mine = data_packet(1, 1, 7, 0);
    let first = hybrid.on_send(ms(1), Destination::All, &mine);
    let again = hybrid.on_send(ms(2), Destination::All, &mine);
    let third = hybrid.on_send(ms(3), Destination::All, &mine);
    assert_eq!((first.len(), again.len()), (1, 1));
    assert_ne!(first, again);
    // Each retransmission moves on from where the last one went.
    assert_ne!(again, third);

    // A packet of another daemon, received on network 2, is resent by us elsewhere.
    let mut out = LinkOutputs::new();
    let theirs = data_packet(2, 2, 9, 2);
    assert!(matches!(
        hybrid.on_receive(ms(4), 2, &theirs, &mut out),
        Received::Ring(_)
    ));
    let mut resent = theirs.clone();
    restamp(&mut resent, 1, 0);
    let nets = hybrid.on_send(ms(5), Destination::All, &resent);
    assert_eq!(nets.len(), 1);
    assert!(!nets.contains(2), "{nets:?}");
}

#[test]
fn first_copy_wins_and_duplicates_are_counted() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    for (i, net) in [1u8, 0, 2].into_iter().enumerate() {
        let copy = data_packet(2, 2, 5, net);
        let r = l.on_receive(ms(1), net, &copy, &mut out);
        match i {
            0 => assert!(matches!(r, Received::Ring(p) if p.header.network == 1)),
            _ => assert!(matches!(r, Received::Dropped(DropReason::Duplicate))),
        }
    }
    for net in [0u8, 1, 2] {
        let token = token_packet(2, 3, 0, net);
        let r = l.on_receive(ms(2), net, &token, &mut out);
        assert_eq!(matches!(r, Received::Ring(_)), net == 0, "net {net}");
    }
    let st = l.status(ms(2));
    let of = |net: u8| st.links.iter().find(|s| s.peer == 2 && s.network == net).unwrap();
    assert_eq!(
        (
            of(0).counters.duplicates,
            of(1).counters.duplicates,
            of(2).counters.duplicates
        ),
        (1, 1, 2)
    );
    assert_eq!(of(0).counters.tokens, 1);
    assert_eq!(st.drops.duplicate, 4);
    // Our own looped-back packet, another configuration, a stranger, garbage.
    assert!(matches!(
        l.on_receive(ms(3), 0, &data_packet(1, 1, 1, 0), &mut out),
        Received::Dropped(DropReason::Own)
    ));
    let mut other = data_packet(2, 2, 6, 0);
    other[8] ^= 1;
    assert!(matches!(
        l.on_receive(ms(3), 0, &other, &mut out),
        Received::Dropped(DropReason::OtherConfiguration)
    ));
    assert!(matches!(
        l.on_receive(ms(3), 0, &data_packet(9, 9, 1, 0), &mut out),
        Received::Dropped(DropReason::Stranger)
    ));
    assert!(matches!(
        l.on_receive(ms(3), 0, b"SRgarbage", &mut out),
        Received::Dropped(DropReason::Malformed)
    ));
    assert!(matches!(
        l.on_receive(ms(3), 0, b"SLgarbage", &mut out),
        Received::Dropped(DropReason::Malformed)
    ));
}

#[test]
fn peers_are_only_heard_on_their_networks() {
    let mut s = setup(1, &[1, 2, 3], NetSet::first_n(2), MultipathMode::Active);
    s.peers[1].networks = set(&[1]);
    let mut l = LinkLayer::new(Time::ZERO, s, LinkParams::default()).unwrap();
    let mut out = LinkOutputs::new();
    let from_3 = data_packet(3, 3, 1, 0);
    assert!(matches!(
        l.on_receive(ms(1), 0, &from_3, &mut out),
        Received::Dropped(DropReason::WrongNetwork)
    ));
    // A broadcast must reach daemon 3 too; a token to it goes where it is.
    assert_eq!(
        l.on_send(ms(1), Destination::All, &data_packet(1, 1, 1, 0)),
        set(&[0, 1])
    );
    assert_eq!(
        l.on_send(ms(1), Destination::Daemon(3), &token_packet(1, 1, 0, 0)),
        set(&[1])
    );
    assert_eq!(l.status(ms(1)).links.len(), 3);
}

#[test]
fn late_and_replayed_tokens_are_dropped_as_stale() {
    let params = LinkParams {
        dedup_capacity: 1,
        ..LinkParams::default()
    };
    let mut l = LinkLayer::new(
        Time::ZERO,
        setup(1, &[1, 2], NetSet::first_n(2), MultipathMode::Active),
        params,
    )
    .unwrap();
    let mut out = LinkOutputs::new();
    assert!(matches!(
        l.on_receive(ms(1), 0, &token_packet(2, 5, 0, 0), &mut out),
        Received::Ring(_)
    ));
    assert!(matches!(
        l.on_receive(ms(2), 0, &token_packet(2, 5, 1, 0), &mut out),
        Received::Ring(_)
    ));
    assert!(matches!(
        l.on_receive(ms(3), 0, &token_packet(2, 6, 0, 0), &mut out),
        Received::Ring(_)
    ));
    // The copies of rotation 5 on the slow network come after the memory of copies moved on.
    for (rotation, retrans) in [(6, 0), (5, 0), (5, 1)] {
        let token = token_packet(2, rotation, retrans, 1);
        let r = l.on_receive(ms(40), 1, &token, &mut out);
        if rotation == 6 {
            assert!(matches!(r, Received::Dropped(DropReason::Duplicate)));
        } else {
            assert!(
                matches!(r, Received::Dropped(DropReason::StaleToken)),
                "{rotation}/{retrans}"
            );
        }
    }
    let st = l.status(ms(40));
    assert_eq!(st.drops.stale_token, 2);
    assert_eq!(st.links[1].counters.stale, 2);
}

// ---------------------------------------------------------------------------------------------
// A world of daemons: real rings over link layers over simulated networks.

/// What a network does to one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Deliver,
    Lose,
    /// Arrives on the receiver's socket of another network (crossed cables).
    ArriveOn(u8),
}

/// A copy on its way: arrival time, sending order, receiver index, arrival network, bytes.
type InFlight = (Time, u64, usize, u8, Vec<u8>);

type FaultFn = Box<dyn Fn(Time, u32, u32, u8) -> Fate>;

struct Daemon {
    id: u32,
    link: LinkLayer,
    ring: Ring,
    ring_out: Outputs,
    link_out: LinkOutputs,
    delivered: Vec<(u32, Vec<u8>)>,
    delivered_at: Vec<Time>,
    submitted: u64,
    token_lost: bool,
}

struct World {
    now: Time,
    daemons: Vec<Daemon>,
    delay: [Duration; 8],
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    fault: FaultFn,
    /// Each daemon submits a message this often while traffic is on.
    traffic: Option<Duration>,
    next_submit: Time,
    steps: u64,
}

impl World {
    fn new(count: u32, networks: usize, mode: MultipathMode) -> World {
        let ids: Vec<u32> = (1..=count).collect();
        let nets = NetSet::first_n(networks);
        let mut options = Options::new();
        options.multipath = mode;
        let daemons = ids
            .iter()
            .map(|&me| {
                let ring_setup = Setup {
                    me,
                    members: ids.clone(),
                    ring: RING,
                    config_hash: HASH,
                    network: 0,
                };
                Daemon {
                    id: me,
                    link: LinkLayer::new(Time::ZERO, setup(me, &ids, nets, mode), LinkParams::default())
                        .unwrap(),
                    ring: Ring::new(ring_setup, Params::from_options(&options)).unwrap(),
                    ring_out: Outputs::new(),
                    link_out: LinkOutputs::new(),
                    delivered: Vec::new(),
                    delivered_at: Vec::new(),
                    submitted: 0,
                    token_lost: false,
                }
            })
            .collect();
        let mut world = World {
            now: Time::ZERO,
            daemons,
            delay: [Duration::from_micros(200); 8],
            queue: BinaryHeap::new(),
            order: 0,
            fault: Box::new(|_, _, _, _| Fate::Deliver),
            traffic: None,
            next_submit: Time::ZERO,
            steps: 0,
        };
        for d in 0..world.daemons.len() {
            let daemon = &mut world.daemons[d];
            daemon.ring.start(Time::ZERO, &mut daemon.ring_out);
            world.flush(d);
        }
        world
    }

    fn index(&self, id: u32) -> usize {
        self.daemons.iter().position(|d| d.id == id).unwrap()
    }

    fn transmit(&mut self, from: u32, to: u32, network: u8, bytes: &[u8]) {
        let arrival = match (self.fault)(self.now, from, to, network) {
            Fate::Lose => return,
            Fate::Deliver => network,
            Fate::ArriveOn(other) => other,
        };
        let to = self.index(to);
        self.order += 1;
        self.queue.push(Reverse((
            self.now + self.delay[network as usize],
            self.order,
            to,
            arrival,
            bytes.to_vec(),
        )));
    }

    /// Sends what daemon `d`'s ring and link layer queued.
    fn flush(&mut self, d: usize) {
        let now = self.now;
        let daemon = &mut self.daemons[d];
        let me = daemon.id;
        daemon.token_lost |= daemon.ring_out.token_lost();
        let delivered: Vec<(u32, Vec<u8>)> = daemon
            .ring_out
            .deliveries()
            .map(|m| (m.origin, m.message.to_vec()))
            .collect();
        daemon.delivered_at.extend(delivered.iter().map(|_| now));
        daemon.delivered.extend(delivered);
        let mut copies = Vec::new();
        for (to, bytes) in daemon.ring_out.sends() {
            daemon
                .link
                .send_copies(now, to, &mut bytes.to_vec(), |net, copy| {
                    copies.push((to, net, copy.to_vec()))
                });
        }
        daemon.ring_out.clear();
        let probes: Vec<(u32, u8, Vec<u8>)> = daemon
            .link_out
            .sends()
            .map(|(p, n, b)| (p, n, b.to_vec()))
            .collect();
        daemon.link_out.clear();
        let ids: Vec<u32> = self.daemons.iter().map(|d| d.id).collect();
        for (to, net, copy) in copies {
            for &peer in &ids {
                if peer != me && (to == Destination::All || to == Destination::Daemon(peer)) {
                    self.transmit(me, peer, net, &copy);
                }
            }
        }
        for (peer, net, bytes) in probes {
            self.transmit(me, peer, net, &bytes);
        }
    }

    fn run_until(&mut self, end: Time) {
        loop {
            self.steps += 1;
            assert!(self.steps < 20_000_000, "the world does not settle");
            let mut next = end;
            if let Some(Reverse((t, ..))) = self.queue.peek() {
                next = next.min(*t);
            }
            for d in &self.daemons {
                next = next.min(d.link.next_deadline());
                if let Some(t) = d.ring.next_deadline() {
                    next = next.min(t);
                }
            }
            if self.traffic.is_some() {
                next = next.min(self.next_submit);
            }
            if next >= end {
                self.now = end;
                return;
            }
            self.now = next.max(self.now);
            let now = self.now;
            if self.queue.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
                let Reverse((_, _, d, arrival, bytes)) = self.queue.pop().unwrap();
                let daemon = &mut self.daemons[d];
                if let Received::Ring(packet) =
                    daemon.link.on_receive(now, arrival, &bytes, &mut daemon.link_out)
                {
                    daemon.ring.handle(
                        now,
                        Input::Packet {
                            network: arrival,
                            packet,
                        },
                        &mut daemon.ring_out,
                    );
                }
                self.flush(d);
                continue;
            }
            for d in 0..self.daemons.len() {
                let daemon = &mut self.daemons[d];
                if daemon.link.next_deadline() <= now {
                    daemon.link.handle_timer(now, &mut daemon.link_out);
                }
                if daemon.ring.next_deadline().is_some_and(|t| t <= now) {
                    daemon.ring.handle(now, Input::Timer, &mut daemon.ring_out);
                }
                self.flush(d);
            }
            if let Some(every) = self.traffic.filter(|_| self.next_submit <= now) {
                self.next_submit = now + every;
                for d in 0..self.daemons.len() {
                    let daemon = &mut self.daemons[d];
                    daemon.submitted += 1;
                    let message = format!("{}:{}", daemon.id, daemon.submitted).into_bytes();
                    daemon
                        .ring
                        .submit(now, ServiceLevel::Agreed, message, &mut daemon.ring_out)
                        .unwrap();
                    self.flush(d);
                }
            }
        }
    }

    fn link(&self, id: u32, peer: u32, network: u8) -> LinkStatus {
        self.daemons[self.index(id)]
            .link
            .status(self.now)
            .links
            .into_iter()
            .find(|l| l.peer == peer && l.network == network)
            .unwrap()
    }

    /// Every link of every daemon on `network`.
    fn links_on(&self, network: u8) -> Vec<(u32, LinkStatus)> {
        let mut all = Vec::new();
        for d in &self.daemons {
            for l in d.link.status(self.now).links {
                if l.network == network {
                    all.push((d.id, l));
                }
            }
        }
        all
    }

    /// The ring saw nothing: no token loss, the same messages in the same order everywhere,
    /// every submitted message delivered.
    fn assert_ring_unharmed(&self) {
        let total: u64 = self.daemons.iter().map(|d| d.submitted).sum();
        for d in &self.daemons {
            assert!(!d.token_lost, "daemon {} lost the token", d.id);
            assert_eq!(d.delivered, self.daemons[0].delivered, "daemon {} order", d.id);
            assert_eq!(d.delivered.len() as u64, total, "daemon {} delivered", d.id);
        }
    }
}

/// When each link on `network` went down (first down transition after `after`).
fn downs_after(world: &World, network: u8, after: Time) -> Vec<(u32, u32, Time, Reason)> {
    world
        .links_on(network)
        .into_iter()
        .filter_map(|(me, l)| {
            l.transitions
                .iter()
                .find(|t| !t.up && t.at >= after)
                .map(|t| (me, l.peer, t.at, t.reason))
        })
        .collect()
}

fn ups_after(world: &World, network: u8, after: Time) -> Vec<Time> {
    world
        .links_on(network)
        .into_iter()
        .filter_map(|(_, l)| l.transitions.iter().find(|t| t.up && t.at >= after).map(|t| t.at))
        .collect()
}

/// A network cut for everyone from `from` to `to`.
fn outage(network: u8, from: Time, to: Time) -> FaultFn {
    Box::new(move |now, _, _, net| {
        if net == network && now >= from && now < to {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    })
}

/// The longest time between two deliveries at any daemon from `from` to `to`.
fn longest_stall(world: &World, from: Time, to: Time) -> f64 {
    let mut longest: f64 = 0.0;
    for d in &world.daemons {
        let times: Vec<Time> = d
            .delivered_at
            .iter()
            .copied()
            .filter(|&t| t >= from && t <= to)
            .collect();
        for pair in times.windows(2) {
            longest = longest.max(at_ms(pair[1]) - at_ms(pair[0]));
        }
    }
    longest
}

fn detection_under_traffic(mode: MultipathMode) -> (f64, f64, f64) {
    let cut = ms(2000);
    let restore = ms(4000);
    let mut w = World::new(3, 3, mode);
    w.traffic = Some(Duration::from_millis(2));
    // Network 0 carries traffic in every mode (in passive mode, all of it).
    w.fault = outage(0, cut, restore);
    w.run_until(ms(1999));
    assert!(
        w.links_on(0).iter().all(|(_, l)| l.usable && l.rtt.is_some()),
        "{:?}",
        w.links_on(0)
    );
    w.run_until(ms(3000));
    let downs = downs_after(&w, 0, cut);
    assert_eq!(
        downs.len(),
        6,
        "{mode:?}: every link on network 0 fails: {downs:?}"
    );
    let worst_down = downs.iter().map(|d| at_ms(d.2) - at_ms(cut)).fold(0.0, f64::max);
    assert!(
        worst_down <= 250.0,
        "{mode:?}: detected after {worst_down} ms: {downs:?}"
    );
    assert!(w.links_on(1).iter().all(|(_, l)| l.usable), "{mode:?}");
    assert_eq!(w.daemons[0].link.status(w.now).health(), Health::Degraded);
    w.run_until(ms(6000));
    let ups = ups_after(&w, 0, restore);
    assert_eq!(ups.len(), 6, "{mode:?}: {:?}", w.links_on(0));
    let worst_up = ups.iter().map(|&t| at_ms(t) - at_ms(restore)).fold(0.0, f64::max);
    assert!(worst_up <= 1500.0, "{mode:?}: recovered after {worst_up} ms");
    // Deliveries went on, with one short stall at most (the ring's hurry timeout is 500 ms).
    let stall = longest_stall(&w, ms(1900), ms(6000));
    assert!(stall < 600.0, "{mode:?}: deliveries stalled {stall} ms");
    w.traffic = None;
    w.run_until(ms(8000));
    w.assert_ring_unharmed();
    assert!(w.daemons[0].delivered.len() > 3000);
    (worst_down, worst_up, stall)
}

#[test]
fn active_detects_within_250ms_under_traffic_and_recovers() {
    let (down, up, stall) = detection_under_traffic(MultipathMode::Active);
    eprintln!("active: down after {down} ms, up after {up} ms, longest delivery stall {stall} ms");
}

#[test]
fn hybrid_detects_within_250ms_under_traffic_and_recovers() {
    let (down, up, stall) = detection_under_traffic(MultipathMode::Hybrid);
    eprintln!("hybrid: down after {down} ms, up after {up} ms, longest delivery stall {stall} ms");
}

#[test]
fn passive_detects_within_250ms_under_traffic_and_recovers() {
    let (down, up, stall) = detection_under_traffic(MultipathMode::Passive);
    eprintln!("passive: down after {down} ms, up after {up} ms, longest delivery stall {stall} ms");
}

#[test]
fn idle_detection_within_1s_and_recovery() {
    let cut = ms(2000);
    let restore = ms(5000);
    let mut w = World::new(3, 2, MultipathMode::Hybrid);
    w.fault = outage(1, cut, restore);
    w.run_until(ms(4000));
    let downs = downs_after(&w, 1, cut);
    assert_eq!(downs.len(), 6, "{downs:?}");
    let worst = downs.iter().map(|d| at_ms(d.2) - at_ms(cut)).fold(0.0, f64::max);
    eprintln!("idle: down after {worst} ms");
    assert!(worst <= 1000.0, "{downs:?}");
    // Whoever noticed first went down for silence; a peer told of it before noticing went
    // down because we said we did not hear it. Either way, both ways silent in the end.
    assert!(
        downs
            .iter()
            .all(|d| matches!(d.3, Reason::Fault(Fault::Silent | Fault::PeerNotHearingUs))),
        "{downs:?}"
    );
    assert!(w.links_on(1).iter().all(|(_, l)| l.fault == Some(Fault::Silent)));
    let st = w.daemons[0].link.status(w.now);
    assert_eq!(st.health(), Health::LastNetwork);
    w.run_until(ms(7000));
    let ups = ups_after(&w, 1, restore);
    assert_eq!(ups.len(), 6);
    let worst_up = ups.iter().map(|&t| at_ms(t) - at_ms(restore)).fold(0.0, f64::max);
    eprintln!("idle: up after {worst_up} ms");
    assert!(worst_up <= 1500.0);
    assert_eq!(w.daemons[0].link.status(w.now).health(), Health::AllUp);
}

#[test]
fn passive_fails_over_in_network_order() {
    let mut w = World::new(3, 3, MultipathMode::Passive);
    w.traffic = Some(Duration::from_millis(5));
    // Network 0 fails at 1 s, network 1 at 3 s; both come back at 6 s.
    w.fault = Box::new(|now, _, _, net| {
        let down = match net {
            0 => now >= ms(1000) && now < ms(6000),
            1 => now >= ms(3000) && now < ms(6000),
            _ => false,
        };
        if down {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    let carried = |w: &World| -> Vec<u64> {
        (0..3u8)
            .map(|n| w.links_on(n).iter().map(|(_, l)| l.counters.packets).sum())
            .collect()
    };
    // Until the links are heard both ways (a round trip), packets go on every network.
    w.run_until(ms(100));
    let start = carried(&w);
    w.run_until(ms(1000));
    let at1 = carried(&w);
    assert!(
        at1[0] > start[0] && at1[1] == start[1] && at1[2] == start[2],
        "{start:?} {at1:?}"
    );
    let tokens_on_2 = |w: &World| -> u64 { w.links_on(2).iter().map(|(_, l)| l.counters.tokens).sum() };
    let tokens_at1 = tokens_on_2(&w);
    w.run_until(ms(3000));
    let at3 = carried(&w);
    // Network 2 carried nothing but the tokens lost on network 0 and resent everywhere.
    assert!(
        at3[1] > at1[1] && at3[2] - at1[2] == tokens_on_2(&w) - tokens_at1,
        "{at3:?}"
    );
    w.run_until(ms(6000));
    let at6 = carried(&w);
    assert!(at6[2] > at3[2], "{at6:?}");
    w.run_until(ms(9000));
    let at9 = carried(&w);
    // Back on the first network once it is up again.
    assert!(at9[0] > at6[0], "{at9:?}");
    let last_second = carried(&w);
    w.run_until(ms(10000));
    let now = carried(&w);
    assert!(now[0] > last_second[0] && now[1] == last_second[1] && now[2] == last_second[2]);
    w.traffic = None;
    w.run_until(ms(12000));
    w.assert_ring_unharmed();
}

fn count_changes(w: &World, network: u8) -> Vec<u64> {
    w.links_on(network)
        .iter()
        .map(|(_, l)| l.counters.ups + l.counters.downs)
        .collect()
}

#[test]
fn flapping_at_1hz_is_damped() {
    let mut w = World::new(2, 2, MultipathMode::Hybrid);
    // From 2 s to 122 s network 1 works half of every second.
    w.fault = Box::new(|now, _, _, net| {
        let t = now.as_micros();
        if net == 1 && (2_000_000..122_000_000).contains(&t) && (t / 500_000) % 2 == 0 {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(122_000));
    let changes = count_changes(&w, 1);
    eprintln!("1 Hz flapping for 120 s: state changes per link {changes:?}");
    assert!(changes.iter().all(|&c| (1..=4).contains(&c)), "{changes:?}");
    assert!(w.links_on(0).iter().all(|(_, l)| l.usable));
}

#[test]
fn slow_flapping_costs_at_most_one_change_per_30s() {
    let mut w = World::new(2, 2, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(20));
    // Five seconds on, five seconds off, for two minutes.
    w.fault = Box::new(|now, _, _, net| {
        let t = now.as_micros();
        if net == 1 && (2_000_000..122_000_000).contains(&t) && ((t - 2_000_000) / 5_000_000) % 2 == 0 {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(122_000));
    let changes = count_changes(&w, 1);
    eprintln!("0.1 Hz flapping for 120 s: state changes per link {changes:?}");
    assert!(changes.iter().all(|&c| (2..=4).contains(&c)), "{changes:?}");
    assert!(w.links_on(1).iter().all(|(_, l)| l.damped && !l.up));
    // A damped link comes back after a whole damping period of good reception.
    w.run_until(ms(160_000));
    assert!(
        w.links_on(1).iter().all(|(_, l)| l.usable && !l.damped),
        "{:?}",
        w.links_on(1)
    );
    w.traffic = None;
    w.run_until(ms(163_000));
    w.assert_ring_unharmed();
}

#[test]
fn one_way_loss_is_reported_as_one_way() {
    let mut w = World::new(3, 2, MultipathMode::Active);
    w.traffic = Some(Duration::from_millis(5));
    // From 1 s on, what daemon 1 sends daemon 2 on network 1 is lost; the way back works.
    w.fault = Box::new(|now, from, to, net| {
        if now >= ms(1000) && from == 1 && to == 2 && net == 1 {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(3000));
    let at_2 = w.link(2, 1, 1);
    let at_1 = w.link(1, 2, 1);
    assert_eq!(at_2.fault, Some(Fault::NotHearingPeer), "{at_2:?}");
    assert_eq!(at_1.fault, Some(Fault::PeerNotHearingUs), "{at_1:?}");
    assert!(!at_1.up && !at_2.up);
    let down_at = |l: &LinkStatus| at_ms(l.transitions.iter().find(|t| !t.up).unwrap().at) - 1000.0;
    eprintln!(
        "one-way: receiver down after {} ms, sender after {} ms",
        down_at(&at_2),
        down_at(&at_1)
    );
    assert!(down_at(&at_2) <= 250.0 && down_at(&at_1) <= 300.0);
    // Nothing else suffers.
    assert!(w.link(1, 3, 1).usable && w.link(3, 1, 1).usable && w.link(2, 3, 1).usable);
    w.traffic = None;
    w.run_until(ms(5000));
    w.assert_ring_unharmed();
}

#[test]
fn crossed_cables_are_reported() {
    let mut w = World::new(2, 3, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(5));
    // From 1 s on, daemon 2's cables of networks 0 and 1 are swapped.
    w.fault = Box::new(|now, _, to, net| match net {
        0 | 1 if now >= ms(1000) && to == 2 => Fate::ArriveOn(1 - net),
        _ => Fate::Deliver,
    });
    w.run_until(ms(2500));
    assert_eq!(w.link(2, 1, 0).fault, Some(Fault::Crossed { arrives_on: 1 }));
    assert_eq!(w.link(2, 1, 1).fault, Some(Fault::Crossed { arrives_on: 0 }));
    assert!(w.link(2, 1, 0).counters.crossed > 0);
    let reason = w.link(2, 1, 0).transitions.last().unwrap().reason;
    assert_eq!(reason, Reason::Fault(Fault::Crossed { arrives_on: 1 }));
    assert!(w.link(2, 1, 2).usable);
    let st = w.daemons[1].link.status(w.now);
    assert!(st.drops.crossed > 0);
    assert_eq!(st.health(), Health::LastNetwork);
    let json = st.to_json();
    assert!(json.contains("\"kind\":\"crossed\",\"arrives_on\":1"), "{json}");
    w.traffic = None;
    w.run_until(ms(4000));
    w.assert_ring_unharmed();
}

#[test]
fn links_start_unheard_and_come_up_at_first_contact() {
    let mut w = World::new(3, 2, MultipathMode::Hybrid);
    for (_, l) in w.links_on(0).into_iter().chain(w.links_on(1)) {
        assert_eq!(
            (l.state, l.up, l.usable, l.fault),
            (LinkState::Unheard, false, false, None)
        );
    }
    let st = w.daemons[0].link.status(w.now);
    assert_eq!(st.health(), Health::LastNetwork);
    assert!(st.to_json().contains("\"state\":\"unheard\",\"up\":false"));
    // One round of probes and acks: no hold time.
    w.run_until(ms(10));
    for (_, l) in w.links_on(0).into_iter().chain(w.links_on(1)) {
        assert!(l.usable && l.fault.is_none(), "{l:?}");
        assert_eq!((l.counters.ups, l.counters.downs), (0, 0));
        assert_eq!(l.transitions.len(), 1);
        assert_eq!(
            (l.transitions[0].up, l.transitions[0].reason),
            (true, Reason::Heard)
        );
    }
    assert_eq!(w.daemons[0].link.status(w.now).health(), Health::AllUp);
}

#[test]
fn a_network_heard_late_is_no_flap_and_a_pull_soon_after_recovers_in_the_hold_time() {
    let mut w = World::new(3, 2, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(5));
    // Network 1 carries nothing until 1.5 s (its cables are plugged late), then is cut from
    // 5 s to 7 s: well within a damping period of its first contact.
    w.fault = Box::new(|now, _, _, net| {
        let t = now.as_micros();
        if net == 1 && (t < 1_500_000 || (5_000_000..7_000_000).contains(&t)) {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(1400));
    for (_, l) in w.links_on(1) {
        assert_eq!(
            (l.state, l.fault, l.counters.downs),
            (LinkState::Unheard, None, 0),
            "{l:?}"
        );
    }
    assert_eq!(w.daemons[0].link.status(w.now).health(), Health::LastNetwork);
    w.run_until(ms(1700));
    assert!(w.links_on(1).iter().all(|(_, l)| l.usable), "{:?}", w.links_on(1));
    w.run_until(ms(6000));
    assert_eq!(downs_after(&w, 1, ms(5000)).len(), 6);
    w.run_until(ms(9000));
    let ups = ups_after(&w, 1, ms(7000));
    assert_eq!(ups.len(), 6, "{:?}", w.links_on(1));
    let worst_up = ups.iter().map(|&t| at_ms(t) - 7000.0).fold(0.0, f64::max);
    assert!(worst_up <= 1500.0, "recovered after {worst_up} ms");
    for (_, l) in w.links_on(1) {
        assert!(l.usable && !l.damped, "{l:?}");
        assert_eq!((l.counters.downs, l.counters.ups), (1, 1), "{l:?}");
    }
    w.traffic = None;
    w.run_until(ms(11_000));
    w.assert_ring_unharmed();
}

#[test]
fn cables_crossed_from_the_start_are_a_fault() {
    let mut w = World::new(2, 3, MultipathMode::Hybrid);
    w.fault = Box::new(|_, _, to, net| match net {
        0 | 1 if to == 2 => Fate::ArriveOn(1 - net),
        _ => Fate::Deliver,
    });
    w.run_until(ms(500));
    let l = w.link(2, 1, 0);
    assert_eq!(
        (l.state, l.fault),
        (LinkState::Down, Some(Fault::Crossed { arrives_on: 1 }))
    );
    assert_eq!(
        l.transitions[0].reason,
        Reason::Fault(Fault::Crossed { arrives_on: 1 })
    );
    assert!(w.link(2, 1, 2).usable);
}

#[test]
fn arrivals_through_another_networks_interface_are_crossed_cables() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    // Daemon 2's copy for network 0, read on network 0's socket, came in through network 1's
    // interface.
    for t in 1..=3 {
        let copy = data_packet(2, 2, t, 0);
        let reason = l.arrived_elsewhere(ms(t), 0, 1, &copy, &mut out);
        assert_eq!(reason, DropReason::Crossed { claimed: 0 });
    }
    let st = l.status(ms(3));
    let link = st.links.iter().find(|s| s.peer == 2 && s.network == 0).unwrap();
    assert_eq!(
        (link.state, link.fault),
        (LinkState::Down, Some(Fault::Crossed { arrives_on: 1 }))
    );
    assert_eq!(link.counters.crossed, 3);
    assert_eq!(st.drops.crossed, 3);
    let probe = probe_from(3, probe::ProbeKind::Probe, 2, 9, 0);
    assert_eq!(
        l.arrived_elsewhere(ms(4), 2, 0, &probe, &mut out),
        DropReason::Crossed { claimed: 2 }
    );
    assert_eq!(
        l.arrived_elsewhere(ms(4), 0, 1, &data_packet(9, 9, 1, 0), &mut out),
        DropReason::Stranger
    );
    assert_eq!(
        l.arrived_elsewhere(ms(4), 0, 1, b"SRjunk", &mut out),
        DropReason::Malformed
    );
}

#[test]
fn lossy_network_under_traffic_fails_by_missing_copies() {
    let mut w = World::new(3, 2, MultipathMode::Active);
    w.traffic = Some(Duration::from_millis(2));
    // Network 1 loses 70% of copies from 1 s on (a pseudo-random but fixed pattern).
    w.fault = Box::new(|now, from, to, net| {
        let n = now.as_micros() / 100 + u64::from(from * 7 + to);
        if net == 1 && now >= ms(1000) && n % 10 < 7 {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(1500));
    let downs = downs_after(&w, 1, ms(1000));
    assert_eq!(downs.len(), 6, "{downs:?}");
    assert!(downs.iter().all(|d| at_ms(d.2) <= 1250.0), "{downs:?}");
    let l = w.link(1, 2, 1);
    assert!(l.counters.missed > 0 && l.loss_permille > 0, "{l:?}");
    w.traffic = None;
    w.run_until(ms(3000));
    w.assert_ring_unharmed();
}

#[test]
fn status_reports_rtt_counters_and_json() {
    let mut w = World::new(2, 2, MultipathMode::Active);
    w.delay[1] = Duration::from_millis(3);
    w.traffic = Some(Duration::from_millis(10));
    w.run_until(ms(2000));
    let fast = w.link(1, 2, 0);
    let slow = w.link(1, 2, 1);
    assert!(fast.rtt.unwrap() < Duration::from_millis(1), "{fast:?}");
    let rtt = slow.rtt.unwrap();
    assert!(
        rtt >= Duration::from_millis(6) && rtt < Duration::from_millis(7),
        "{rtt:?}"
    );
    // Copies on the slow network lose the race: they are the duplicates.
    eprintln!("{fast:?}\n{slow:?}");
    assert!(slow.counters.duplicates > 100 && slow.counters.duplicates > 10 * fast.counters.duplicates);
    assert!(fast.counters.tokens > 0 && fast.counters.probes_received > 0 && slow.counters.acks_received > 0);
    let st = w.daemons[0].link.status(w.now);
    assert_eq!(st.health(), Health::AllUp);
    assert_eq!(st.health().exit_code(), 0);
    let json = st.to_json();
    for key in [
        "\"me\":1",
        "\"mode\":\"active\"",
        "\"networks\":[0,1]",
        "\"health\":0",
        "\"rtt_us\":",
        "\"state\":\"up\"",
        "\"transitions\":[{\"at_us\":",
        "\"up\":true,\"reason\":{\"kind\":\"heard\"}}]",
    ] {
        assert!(json.contains(key), "{key} in {json}");
    }
    assert_eq!(json.matches('{').count(), json.matches('}').count());
    assert_eq!(json.matches('[').count(), json.matches(']').count());
}

#[test]
fn mangled_datagrams_never_panic() {
    use crate::rng::Rng;
    let mut l = layer(MultipathMode::Hybrid);
    let mut out = LinkOutputs::new();
    let mut probe = Vec::new();
    probe::encode(
        &mut probe,
        &probe::Probe {
            kind: probe::ProbeKind::Probe,
            network: 0,
            config_hash: HASH,
            sender: 2,
            receiver: 1,
            seq: 1,
            report_number: 1,
            timestamp: 5,
            incarnation: 2,
            entries: vec![],
        },
    );
    let seeds = [probe, data_packet(2, 3, 4, 0), token_packet(3, 2, 0, 0)];
    let mut rng = Rng::new(11);
    let mut outcomes = [0usize; 3];
    for round in 0..20_000u64 {
        let mut bytes = seeds[(round % 3) as usize].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
        }
        let keep = bytes.len() - rng.below(3) as usize;
        bytes.truncate(keep);
        let now = ms(round);
        let arrival = rng.below(4) as u8;
        let outcome = match l.on_receive(now, arrival, &bytes, &mut out) {
            Received::Ring(_) => 0,
            Received::Link => 1,
            Received::Dropped(_) => 2,
        };
        outcomes[outcome] += 1;
        if l.next_deadline() <= now {
            l.handle_timer(now, &mut out);
        }
        out.clear();
    }
    assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
}

fn probe_from(sender: u32, kind: probe::ProbeKind, network: u8, seq: u32, timestamp: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    probe::encode(
        &mut bytes,
        &probe::Probe {
            kind,
            network,
            config_hash: HASH,
            sender,
            receiver: 1,
            seq,
            report_number: seq,
            timestamp,
            incarnation: sender,
            entries: vec![probe::ReportEntry {
                network,
                reception: probe::Reception::Good,
                up: true,
                loss_permille: 7,
                good_ms: 5000,
            }],
        },
    );
    bytes
}

#[test]
fn a_probe_last_before_a_cut_still_counts_as_busy() {
    let mut l = LinkLayer::new(
        Time::ZERO,
        setup(1, &[1, 2], NetSet::first_n(2), MultipathMode::Hybrid),
        LinkParams::default(),
    )
    .unwrap();
    let mut out = LinkOutputs::new();
    // Daemon 2's data comes on both networks in turn; at 500 ms a probe comes on network 1,
    // then network 1 is cut and the data comes on network 0 only.
    let mut seq = 0;
    for t in 1..=800u64 {
        let now = ms(t);
        if t % 5 == 0 {
            seq += 1;
            let net = if t <= 500 { (seq % 2) as u8 } else { 0 };
            l.on_receive(now, net, &data_packet(2, 2, seq, net), &mut out);
        }
        if t == 501 {
            let p = probe_from(2, probe::ProbeKind::Probe, 1, 1, 0);
            l.on_receive(now, 1, &p, &mut out);
        }
        if l.next_deadline() <= now {
            l.handle_timer(now, &mut out);
        }
        out.clear();
    }
    let st = l.status(ms(800));
    let link = st.links.iter().find(|s| s.network == 1).unwrap();
    let down = link.transitions.iter().find(|t| !t.up).map(|t| at_ms(t.at));
    assert!(down.is_some_and(|at| at <= 501.0 + 250.0), "{link:?}");
}

#[test]
fn late_copies_on_a_failed_network_do_not_blame_the_others() {
    let mut l = two_network_pair();
    let mut out = LinkOutputs::new();
    // Daemon 2's data comes on network 0 only: network 1 falls silent and fails. From 1.5 s
    // on, network 1 brings copies of the old packets, long after network 0 did (a lagging
    // network): they must not count as copies network 0 missed.
    for t in 1..=2500u64 {
        let now = ms(t);
        if t % 5 == 0 {
            let seq = t / 5;
            l.on_receive(now, 0, &data_packet(2, 2, seq, 0), &mut out);
            if t >= 1500 {
                l.on_receive(now, 1, &data_packet(2, 2, seq - 290, 1), &mut out);
            }
        }
        if l.next_deadline() <= now {
            l.handle_timer(now, &mut out);
        }
        out.clear();
    }
    let st = l.status(ms(2500));
    let (net0, net1) = (&st.links[0], &st.links[1]);
    assert!(!net1.up, "{net1:?}");
    assert!(net0.up && net0.counters.missed == 0, "{net0:?}");
}

#[test]
fn probes_swapped_on_the_way_are_not_lost() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    let missed = |l: &LinkLayer| {
        let st = l.status(ms(10));
        st.links
            .iter()
            .find(|s| s.peer == 2 && s.network == 1)
            .unwrap()
            .counters
            .missed
    };
    // 3 overtakes 2: no loss.
    for seq in [1, 3, 2, 4] {
        let p = probe_from(2, probe::ProbeKind::Probe, 1, seq, 0);
        l.on_receive(ms(u64::from(seq)), 1, &p, &mut out);
    }
    assert_eq!(missed(&l), 0);
    // 6 never comes: counted when 7 arrives without it, and 9's gap at once.
    for seq in [5, 7, 8] {
        let p = probe_from(2, probe::ProbeKind::Probe, 1, seq, 0);
        l.on_receive(ms(u64::from(seq)), 1, &p, &mut out);
    }
    assert_eq!(missed(&l), 1);
    let p = probe_from(2, probe::ProbeKind::Probe, 1, 12, 0);
    l.on_receive(ms(9), 1, &p, &mut out);
    assert_eq!(missed(&l), 4);
}

#[test]
fn probes_are_acked_and_count_losses_and_round_trips() {
    let mut l = unheard_layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    let p = probe_from(2, probe::ProbeKind::Probe, 1, 1, 777);
    assert!(matches!(l.on_receive(ms(1), 1, &p, &mut out), Received::Link));
    let acks: Vec<probe::Probe> = out
        .sends()
        .filter(|&(peer, net, _)| peer == 2 && net == 1)
        .map(|(_, _, b)| probe::decode(b).unwrap())
        .filter(|p| p.kind == probe::ProbeKind::Ack)
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(
        (acks[0].kind, acks[0].timestamp, acks[0].receiver),
        (probe::ProbeKind::Ack, 777, 2)
    );
    assert_eq!(acks[0].entries.len(), 3);
    // Probes 2 to 4 are lost, 3 comes late, 6 after 5.
    for seq in [5, 3, 6] {
        let p = probe_from(2, probe::ProbeKind::Probe, 1, seq, 0);
        l.on_receive(ms(2), 1, &p, &mut out);
    }
    let ack = probe_from(2, probe::ProbeKind::Ack, 1, 7, 1000);
    l.on_receive(Time::from_micros(3000), 1, &ack, &mut out);
    let st = l.status(ms(3));
    let link = st.links.iter().find(|s| s.peer == 2 && s.network == 1).unwrap();
    assert_eq!(link.counters.missed, 3);
    assert_eq!(
        (link.counters.probes_received, link.counters.acks_received),
        (4, 1)
    );
    assert_eq!(link.rtt, Some(Duration::from_millis(2)));
    assert_eq!(link.peer_loss_permille, Some(7));
    // A probe for another daemon is not ours to answer.
    let mut other = probe_from(2, probe::ProbeKind::Probe, 1, 8, 0);
    other[16..20].copy_from_slice(&9u32.to_be_bytes());
    assert!(matches!(
        l.on_receive(ms(4), 1, &other, &mut out),
        Received::Dropped(DropReason::Stranger)
    ));
}

/// Whether a copy from `from` to `to` on `network` sent at `now` is among the `per_mille`
/// lost: a fixed pseudo-random pattern.
fn lost_at_random(per_mille: u64, now: Time, from: u32, to: u32, network: u8) -> bool {
    let key = now.as_micros() ^ u64::from(from) << 40 ^ u64::from(to) << 48 ^ u64::from(network) << 56;
    crate::rng::Rng::new(key).below(1000) < per_mille
}

#[test]
fn a_damped_link_on_a_network_losing_1_percent_comes_back_after_the_damping_period() {
    let mut w = World::new(2, 2, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(20));
    // Network 1 loses 1 % all along, and from 2 s to 17 s is out 3 s, in 3 s: it comes back
    // once and fails again, so it is damped.
    w.fault = Box::new(|now, from, to, net| {
        let t = now.as_micros();
        let flapping = (2_000_000..17_000_000).contains(&t) && ((t - 2_000_000) / 3_000_000) % 2 == 0;
        if net == 1 && (flapping || lost_at_random(10, now, from, to, net)) {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(17_000));
    assert!(
        w.links_on(1).iter().all(|(_, l)| l.damped && !l.up),
        "{:?}",
        w.links_on(1)
    );
    let changes_at_17 = count_changes(&w, 1);
    w.run_until(ms(67_000));
    for (me, l) in w.links_on(1) {
        assert!(l.usable && !l.damped, "daemon {me}: {l:?}");
        let back = l.transitions.last().unwrap();
        assert!(back.up && back.reason == Reason::Recovered, "{l:?}");
        eprintln!(
            "daemon {me}: back {:.1} s after the flapping stopped, {} ‰ lost",
            at_ms(back.at) / 1000.0 - 17.0,
            l.loss_permille
        );
        assert!(back.at >= ms(47_000), "back before a whole damping period: {l:?}");
    }
    // It came back once, and stayed.
    let changes: Vec<u64> = count_changes(&w, 1)
        .iter()
        .zip(&changes_at_17)
        .map(|(now, then)| now - then)
        .collect();
    assert_eq!(changes, [1, 1]);
    w.traffic = None;
    w.run_until(ms(69_000));
    w.assert_ring_unharmed();
}

#[test]
fn a_damped_link_still_out_50ms_of_every_second_stays_down() {
    let mut w = World::new(2, 2, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(20));
    // As above until 17 s (damped); from then on network 1 is out 50 ms of every second: too
    // short to fail a link, but no network to come back to.
    w.fault = Box::new(|now, from, to, net| {
        let t = now.as_micros();
        let flapping = (2_000_000..17_000_000).contains(&t) && ((t - 2_000_000) / 3_000_000) % 2 == 0;
        let blinking = t >= 17_000_000 && t % 1_000_000 < 50_000;
        if net == 1 && (flapping || blinking || lost_at_random(10, now, from, to, net)) {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(17_000));
    let changes_at_17 = count_changes(&w, 1);
    w.run_until(ms(137_000));
    assert_eq!(count_changes(&w, 1), changes_at_17, "{:?}", w.links_on(1));
    assert!(
        w.links_on(1).iter().all(|(_, l)| l.damped && !l.up),
        "{:?}",
        w.links_on(1)
    );
    w.traffic = None;
    w.run_until(ms(139_000));
    w.assert_ring_unharmed();
}

#[test]
fn a_long_run_of_good_reception_still_notices_new_loss() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    // What daemon 1 last told daemon 2 of how long it has heard it well on network 1.
    let reported_good_ms = |out: &LinkOutputs| -> u32 {
        out.sends()
            .filter(|&(peer, net, _)| peer == 2 && net == 1)
            .filter_map(|(_, _, b)| probe::decode(b).ok())
            .flat_map(|p| p.entries)
            .filter(|e| e.network == 1)
            .last()
            .expect("acks to daemon 2 on network 1")
            .good_ms
    };
    // hear_all's probe on network 1 was number 2.
    let mut seq = 2;
    let mut now = Time::ZERO;
    // 20 s of probes 10 ms apart, none lost; then 6 s of them with one in ten lost: not
    // enough to fail the link, too much for a run of good reception.
    for k in 0..2600u32 {
        seq += if k >= 2000 && k % 10 == 0 { 2 } else { 1 };
        now = now + Duration::from_millis(10);
        out.clear();
        l.on_receive(
            now,
            1,
            &probe_from(2, probe::ProbeKind::Probe, 1, seq, 0),
            &mut out,
        );
        if k == 1999 {
            assert!(reported_good_ms(&out) >= 19_000, "{}", reported_good_ms(&out));
        }
    }
    let good_ms = reported_good_ms(&out);
    assert!(good_ms < 6000, "the run went on through the loss: {good_ms} ms");
    let st = l.status(now);
    let link = st.links.iter().find(|s| s.peer == 2 && s.network == 1).unwrap();
    assert!(link.up && link.counters.missed == 60, "{link:?}");
}

#[test]
fn a_probe_seconds_late_is_no_restart() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    let missed = |l: &LinkLayer| {
        let st = l.status(ms(10));
        let link = st.links.iter().find(|s| s.peer == 2 && s.network == 1).unwrap();
        (link.counters.missed, link.up)
    };
    // Probes 3 to 300 on time, then probe 150 (a lagging network's), then 301 and 302.
    for (k, seq) in (3..=300).chain([150, 301, 302]).enumerate() {
        let p = probe_from(2, probe::ProbeKind::Probe, 1, seq, 0);
        l.on_receive(Time::from_micros(k as u64 * 1000), 1, &p, &mut out);
        out.clear();
    }
    assert_eq!(missed(&l), (0, true));
}

/// Daemons 1 and 2 alone on networks 0 and 1: their link layers, no rings, each sending the
/// other a token every 5 ms while `traffic` is on; datagrams take 200 µs.
struct Pair {
    now: Time,
    layers: Vec<LinkLayer>,
    /// Arrival time, sending order, receiver index, network, bytes.
    queue: BinaryHeap<Reverse<InFlight>>,
    order: u64,
    traffic: bool,
    rotation: u64,
    next_token: Time,
}

impl Pair {
    fn new() -> Pair {
        let mut pair = Pair {
            now: Time::ZERO,
            layers: Vec::new(),
            queue: BinaryHeap::new(),
            order: 0,
            traffic: false,
            rotation: 0,
            next_token: Time::ZERO,
        };
        for me in [1, 2] {
            pair.start(me, me);
        }
        pair
    }

    /// Daemon `me` (re)starts now, with a fresh link layer.
    fn start(&mut self, me: u32, incarnation: u32) {
        let setup = LinkSetup {
            incarnation,
            ..setup(me, &[1, 2], NetSet::first_n(2), MultipathMode::Active)
        };
        let layer = LinkLayer::new(self.now, setup, LinkParams::default()).unwrap();
        let i = (me - 1) as usize;
        if self.layers.len() > i {
            self.layers[i] = layer;
        } else {
            self.layers.push(layer);
        }
    }

    fn send(&mut self, from: usize, out: &LinkOutputs) {
        for (_, network, bytes) in out.sends() {
            self.order += 1;
            let at = self.now + Duration::from_micros(200);
            self.queue
                .push(Reverse((at, self.order, 1 - from, network, bytes.to_vec())));
        }
    }

    /// Runs until `end`; daemon index `dead` (if any) neither runs nor receives.
    fn run_until(&mut self, end: Time, dead: Option<usize>) {
        let mut out = LinkOutputs::new();
        for _ in 0..10_000_000 {
            let mut next = end;
            if let Some(Reverse((t, ..))) = self.queue.peek() {
                next = next.min(*t);
            }
            for (i, l) in self.layers.iter().enumerate() {
                if Some(i) != dead {
                    next = next.min(l.next_deadline());
                }
            }
            if self.traffic {
                next = next.min(self.next_token);
            }
            if next >= end {
                self.now = end;
                return;
            }
            self.now = next.max(self.now);
            let now = self.now;
            if self.queue.peek().is_some_and(|Reverse((t, ..))| *t <= now) {
                let Reverse((_, _, to, network, bytes)) = self.queue.pop().unwrap();
                if Some(to) != dead {
                    out.clear();
                    self.layers[to].on_receive(now, network, &bytes, &mut out);
                    self.send(to, &out);
                }
                continue;
            }
            for i in 0..2 {
                if Some(i) != dead && self.layers[i].next_deadline() <= now {
                    out.clear();
                    self.layers[i].handle_timer(now, &mut out);
                    self.send(i, &out);
                }
            }
            if self.traffic && self.next_token <= now {
                self.next_token = now + Duration::from_millis(5);
                for i in (0..2).filter(|&i| Some(i) != dead) {
                    self.send_token(i);
                }
            }
        }
        panic!("the pair does not settle");
    }

    /// Daemon index `i` sends the other a token, on the networks its link layer picks.
    fn send_token(&mut self, i: usize) {
        self.rotation += 1;
        let mut token = token_packet(i as u32 + 1, self.rotation, 0, 0);
        let mut copies = Vec::new();
        let to = Destination::Daemon(2 - i as u32);
        self.layers[i].send_copies(self.now, to, &mut token, |net, b| copies.push((net, b.to_vec())));
        for (network, bytes) in copies {
            self.order += 1;
            let at = self.now + Duration::from_micros(200);
            self.queue.push(Reverse((at, self.order, 1 - i, network, bytes)));
        }
    }

    fn links(&self, i: usize) -> Vec<LinkStatus> {
        self.layers[i].status(self.now).links
    }
}

/// Daemon 2 stops for 300 ms (too short to fail a link) and starts again: daemon 1 takes it
/// for what it is, and hears it afresh at once.
fn restart_within_300ms(traffic: bool) {
    let mut p = Pair::new();
    p.traffic = traffic;
    p.run_until(ms(10_000), None);
    assert!(p.links(0).iter().all(|l| l.usable), "{:?}", p.links(0));
    p.run_until(ms(10_300), Some(1));
    p.start(2, 22);
    if traffic {
        // The new run's first ring packets may come before its first probes.
        p.send_token(1);
    }
    for end in [10_350, 13_000] {
        p.run_until(ms(end), None);
        for l in p.links(0) {
            let reasons: Vec<(bool, Reason)> = l.transitions.iter().map(|t| (t.up, t.reason)).collect();
            assert_eq!(
                reasons,
                [
                    (true, Reason::Heard),
                    (false, Reason::PeerRestarted),
                    (true, Reason::Heard)
                ],
                "{l:?}"
            );
            assert!(l.usable && l.counters.downs == 0, "{l:?}");
        }
    }
}

#[test]
fn a_peer_restarting_at_once_is_heard_afresh_idle() {
    restart_within_300ms(false);
}

#[test]
fn a_peer_restarting_at_once_is_heard_afresh_busy() {
    restart_within_300ms(true);
}

/// A probe of daemon `sender` of run `incarnation`.
fn probe_of_run(sender: u32, incarnation: u32, network: u8, seq: u32) -> Vec<u8> {
    let mut bytes = probe_from(sender, probe::ProbeKind::Probe, network, seq, 0);
    bytes[36..40].copy_from_slice(&incarnation.to_be_bytes());
    bytes
}

#[test]
fn a_restarted_peer_is_told_from_its_late_probes() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    let link = |l: &LinkLayer, peer: u32, network: u8| {
        let st = l.status(ms(100));
        st.links
            .into_iter()
            .find(|s| s.peer == peer && s.network == network)
            .unwrap()
    };
    let reasons = |s: &LinkStatus| -> Vec<Reason> { s.transitions.iter().map(|t| t.reason).collect() };
    for seq in 3..=12 {
        l.on_receive(ms(u64::from(seq)), 1, &probe_of_run(2, 2, 1, seq), &mut out);
    }
    // Daemon 2 started again: its probe of the new run on network 1 counts from zero.
    let first = probe_of_run(2, 99, 1, 0);
    let r = l.on_receive(ms(20), 1, &first, &mut out);
    assert!(matches!(r, Received::Link));
    let restarted = link(&l, 2, 1);
    assert_eq!(
        reasons(&restarted),
        [Reason::Heard, Reason::PeerRestarted, Reason::Heard]
    );
    assert!(
        restarted.usable && restarted.counters.missed == 0,
        "{restarted:?}"
    );
    for network in [0, 2] {
        let s = link(&l, 2, network);
        assert_eq!(s.state, LinkState::Unheard);
        assert_eq!(reasons(&s), [Reason::Heard, Reason::PeerRestarted]);
    }
    assert!((0..3).all(|n| link(&l, 3, n).usable));
    // A late probe of the old run on network 0 is dropped: it neither brings the link up
    // nor starts daemon 2 afresh once more.
    let late = probe_of_run(2, 2, 0, 13);
    let r = l.on_receive(ms(30), 0, &late, &mut out);
    assert!(matches!(r, Received::Dropped(DropReason::Stranger)), "{r:?}");
    assert_eq!(link(&l, 2, 0).state, LinkState::Unheard);
    assert_eq!(reasons(&link(&l, 2, 1)).len(), 3);
    // The new run's probe on network 0 brings it up.
    l.on_receive(ms(40), 0, &probe_of_run(2, 99, 0, 1), &mut out);
    assert!(link(&l, 2, 0).usable);
    assert_eq!(l.status(ms(40)).drops.stranger, 1);
}

#[test]
fn a_token_survives_a_pull_while_the_other_network_comes_back() {
    let mut w = World::new(3, 2, MultipathMode::Hybrid);
    w.traffic = Some(Duration::from_millis(2));
    // Daemon 1's cable on network 0 is pulled from 1 s to 2 s. While that network is back
    // but not in use yet (its recovery hold), daemon 2's cable on network 1 is pulled: only
    // network 1 was in use between daemons 1 and 2, and a token on it alone is lost.
    let pulled = |t: u64, net: u8, daemon: u32, from: u32, to: u32| {
        (from == daemon || to == daemon)
            && match (daemon, net) {
                (1, 0) => (1_000_000..2_000_000).contains(&t),
                (2, 1) => t >= 2_500_000,
                _ => false,
            }
    };
    w.fault = Box::new(move |now, from, to, net| {
        let t = now.as_micros();
        if pulled(t, net, 1, from, to) || pulled(t, net, 2, from, to) {
            Fate::Lose
        } else {
            Fate::Deliver
        }
    });
    w.run_until(ms(2499));
    assert!(
        !w.link(1, 2, 0).usable && w.link(1, 2, 1).usable,
        "{:?}",
        w.link(1, 2, 0)
    );
    w.run_until(ms(4000));
    // The ring's hurry timeout would resend a lost token; nothing must wait for it.
    let stall = longest_stall(&w, ms(2400), ms(4000));
    eprintln!("longest delivery stall {stall} ms");
    assert!(stall < 100.0, "deliveries stalled {stall} ms");
    w.traffic = None;
    w.run_until(ms(6000));
    w.assert_ring_unharmed();
}

#[test]
fn late_token_copies_on_a_network_in_use_do_not_blame_the_others() {
    let mut l = two_network_pair();
    let mut out = LinkOutputs::new();
    // Daemon 2's tokens come on both networks; from 1.5 s on, network 1 also brings copies
    // of tokens 1.5 s old, long forgotten by the copy groups (a network that lags but still
    // counts as up): stale, they must not count as copies network 0 missed.
    for t in 1..=2500u64 {
        let now = ms(t);
        if t % 5 == 0 {
            let rotation = t / 5;
            for net in 0..2 {
                l.on_receive(now, net, &token_packet(2, rotation, 0, net), &mut out);
            }
            if t >= 1500 {
                let late = token_packet(2, rotation - 300, 0, 1);
                assert!(matches!(
                    l.on_receive(now, 1, &late, &mut out),
                    Received::Dropped(DropReason::StaleToken)
                ));
            }
        }
        if l.next_deadline() <= now {
            l.handle_timer(now, &mut out);
        }
        out.clear();
    }
    let st = l.status(ms(2500));
    let (net0, net1) = (&st.links[0], &st.links[1]);
    assert!(net0.up && net0.counters.missed == 0, "{net0:?}");
    assert!(net1.up && net1.counters.stale == 201, "{net1:?}");
}

/// A data packet of ring `ring` from daemon `sender`, sequence `seq`, on `network`.
fn data_of_ring(ring: RingId, sender: u32, seq: u64, network: u8) -> Vec<u8> {
    let header = Header {
        ring,
        ..header(Kind::Data, sender, network)
    };
    let mut out = Vec::new();
    let mut w = MessagesWriter::new(&mut out, &header, seq, sender);
    w.push(ServiceLevel::Agreed, b"payload");
    out
}

#[test]
fn data_the_ring_has_is_dropped_below_it_and_sets_no_expectations() {
    let mut l = layer(MultipathMode::Active);
    let mut out = LinkOutputs::new();
    let missed = |l: &LinkLayer| -> Vec<u64> {
        let st = l.status(l.evaluated_at);
        st.links.iter().map(|s| s.counters.missed).collect()
    };
    l.ring_progress(RING, 10);
    // Copies of packets the ring has, later than any group: dropped, on any network, and
    // expecting nothing of the other networks.
    for (seq, net) in [(10, 0), (3, 1)] {
        assert!(matches!(
            l.on_receive(ms(1), net, &data_packet(2, 2, seq, net), &mut out),
            Received::Dropped(DropReason::Late)
        ));
    }
    l.handle_timer(ms(100), &mut out);
    assert_eq!(missed(&l), [0; 6]);
    // Above the aru: for the ring. Its copies after the ring took it still close its group.
    assert!(matches!(
        l.on_receive(ms(101), 0, &data_packet(2, 2, 11, 0), &mut out),
        Received::Ring(_)
    ));
    l.ring_progress(RING, 11);
    for net in [1, 2] {
        assert!(matches!(
            l.on_receive(ms(102), net, &data_packet(2, 2, 11, net), &mut out),
            Received::Dropped(DropReason::Duplicate)
        ));
    }
    l.handle_timer(ms(200), &mut out);
    assert_eq!(missed(&l), [0; 6]);
    // Sent again: not for the ring once it has it; a retransmission above the aru is.
    assert!(matches!(
        l.on_receive(ms(201), 0, &data_packet(2, 2, 11, 0), &mut out),
        Received::Dropped(DropReason::Late)
    ));
    for _ in 0..2 {
        assert!(matches!(
            l.on_receive(ms(202), 0, &data_packet(2, 2, 12, 0), &mut out),
            Received::Ring(_)
        ));
    }
    // Another ring's packets, and tokens, are not the progress's business.
    let other = RingId { rep: 1, seq: 2 };
    assert!(matches!(
        l.on_receive(ms(203), 0, &data_of_ring(other, 2, 5, 0), &mut out),
        Received::Ring(p) if p.header.ring == other
    ));
    assert!(matches!(
        l.on_receive(ms(203), 0, &token_packet(2, 1, 0, 0), &mut out),
        Received::Ring(_)
    ));
    let st = l.status(ms(203));
    assert_eq!((st.drops.late, st.drops.duplicate), (3, 2));
    assert!(st.to_json().contains("\"late\":3"), "{}", st.to_json());
}
