//! Deterministic simulation of whole daemons on a multipath ring: each daemon's membership
//! (with its rings) behind its [`LinkLayer`], over two or three simulated networks, each with
//! its own faults: a network failing, cables pulled, one-way loss, a network lagging seconds
//! behind, a flapping link (see [`scenario`]).
//!
//! Between a daemon's membership and the networks the simulation does what the daemon does
//! (`daemon::networks`): each datagram goes out through [`LinkLayer::send_copies`], one copy per
//! network, to every daemon on that network for a broadcast; each arrival goes through
//! [`LinkLayer::on_receive`] with its network, and only the first copy of a transmission
//! reaches the membership, after which the link layer learns the ring's progress
//! ([`LinkLayer::ring_progress`]); the link layer's timer runs when due and its probes go by
//! unicast.
//!
//! Checked on every step: extended virtual synchrony ([`crate::sim::evs::check`]), and, while
//! one network stays healthy between every pair of daemons, no membership change at all once
//! the first configuration of every daemon formed (one regular configuration per daemon from
//! then on). At the end every message was delivered everywhere. From the link layers' status:
//!
//! - a link a fault cut is down within [`BUSY_DETECTION`] if the peer's ring traffic came on it
//!   within [`BUSY_WINDOW`] before the cut and still reaches the daemon on another network,
//!   else within [`IDLE_DETECTION`] (the sender's end of a one-way cut too: it learns from the
//!   receiver's reports);
//! - a link whose wires are whole again (both ways) is up within [`REENABLE`] unless damping
//!   holds it (or copies a lagging network delayed may still arrive); every link is up and
//!   usable at the end;
//! - damping: a link's consecutive returns (up transitions) are at least the damping period
//!   (30 s) apart, so after its first failure a flapping link goes through at most one
//!   down/up cycle per 30 s; over a flapping period of P it changes state at most
//!   3 + 2 floor(P / 30 s) times (down, back after the 1 s hold, down again and now damped, then
//!   one up and one down per damping period at most);
//! - once a flapping scenario's network steadies (it may still lose 1 %), a link comes back
//!   at most once (after its hold, or its damping period) and stays up;
//! - a lagging network produces stale token copies (dropped by the link layer or the ring).
//!
//! The control scenario ([`Kind::Isolation`]) cuts every cable of one daemon: the membership
//! must change, and merge again.

pub mod scenario;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

pub use scenario::{Action, Conditions, Flapping, Kind, Scenario};

use super::evs::{Cluster, Violation};
use super::network::{Event, Faults, Network, NetworkStats};
use crate::link::{DropReason, LinkLayer, LinkOutputs, LinkSetup, LinkStatus, Peer, Reason, Received};
use crate::membership::{Input, Membership, MembershipStats, Outputs};
use crate::ring::{Destination, RingStats, Time};
use crate::rng::Rng;
use crate::wire::packet::RingId;

const CONFIG_HASH: u32 = 0x5eed_3a7f;

/// A link cut while the peer's ring traffic came on it is down this soon.
pub const BUSY_DETECTION: Duration = Duration::from_millis(250);
/// A link cut while idle is down this soon.
pub const IDLE_DETECTION: Duration = Duration::from_secs(1);
/// Ring traffic from the peer on a link this shortly before a cut makes it busy.
pub const BUSY_WINDOW: Duration = Duration::from_millis(50);
/// A link whose wires are whole again is up this soon, unless damped.
pub const REENABLE: Duration = Duration::from_millis(2500);
/// How often the end of a run looks whether every link is up.
const LINKS_LOOK: Duration = Duration::from_millis(100);
/// The first configuration of every daemon must form this soon.
const FORMATION: Duration = Duration::from_secs(20);
/// After the active period, the bound for everything to be delivered (and, in the control
/// scenario, for the daemons to merge again: Spread's lookup timeout is 30 s).
const SETTLE: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Extended virtual synchrony broken (or a datagram did not decode).
    Evs(Violation),
    /// The daemons did not form their first configuration of all.
    NotFormed,
    /// A daemon left its configuration while a healthy network joined it to every other.
    MembershipChanged { daemon: usize, at: Time },
    /// In the control scenario, the isolated daemon never left.
    NoChange,
    /// Once the faults stopped, the daemons did not settle in one configuration that
    /// delivered everything.
    NotLive { detail: String },
    /// Not every message was delivered everywhere.
    Undelivered { deliveries: usize, expected: usize },
    /// A link still up `after` a fault cut it.
    NotDetected {
        daemon: usize,
        peer: usize,
        network: u8,
        at: Time,
        after: Duration,
    },
    /// A link still down, not damped, `after` its wires were whole again.
    NotReenabled {
        daemon: usize,
        peer: usize,
        network: u8,
        at: Time,
        after: Duration,
        link: String,
    },
    /// A link not up and usable at the end.
    DownAtEnd { daemon: usize, link: String },
    /// A link came back twice within a damping period, or flapped too often.
    Flapping { daemon: usize, link: String },
    /// The lagging network produced no stale token copy.
    NoStaleTokens,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<Violation> for Failure {
    fn from(v: Violation) -> Failure {
        Failure::Evs(v)
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub sim_time: Duration,
    /// From the start to the first configuration of all.
    pub formation: Duration,
    pub messages: usize,
    pub deliveries: usize,
    /// Summed over the networks.
    pub network: NetworkStats,
    /// Copies lost to cut wires.
    pub cut: u64,
    pub membership: MembershipStats,
    pub ring: RingStats,
    /// Token copies dropped as stale: by the link layers, and by the rings.
    pub stale_link: u64,
    pub stale_ring: u64,
    /// Data copies the link layers dropped because the ring had them ([`DropReason::Late`]);
    /// those that reached a ring anyway are `ring.duplicate_packets`.
    pub late_link: u64,
    /// Link state changes, summed over every link of every daemon.
    pub link_changes: u64,
    /// Slowest detection of a cut on a busy and on an idle link (checked links only).
    pub busy_detection: Duration,
    pub idle_detection: Duration,
    /// Slowest return of a link once its wires were whole (not damped).
    pub reenable: Duration,
    /// Most state changes of one link over a flapping period.
    pub flapping_changes: u64,
    /// Slowest return of a link once its flapping stopped (a damped one needs a damping
    /// period of good reception).
    pub flapping_return: Duration,
}

/// Something to verify at a point of simulated time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Check {
    /// The link of `daemon` to `peer` on `network` is down: the wire `cut` (from, to) was cut
    /// at `since` and still is.
    Down {
        daemon: usize,
        peer: usize,
        network: u8,
        cut: (usize, usize),
        since: Time,
    },
    /// The link is up or damped: both its wires are whole since `since`.
    Up {
        daemon: usize,
        peer: usize,
        network: u8,
        since: Time,
    },
}

/// Which wires carry datagrams: cables, whole networks, one-way cuts.
struct Wires {
    network_up: Vec<bool>,
    /// `plugged[network][daemon]`.
    plugged: Vec<Vec<bool>>,
    /// (from, to, network) cut one way.
    one_way: Vec<(usize, usize, u8)>,
    /// (from, to, network): when the wire was last cut or made whole.
    changed: HashMap<(usize, usize, u8), Time>,
}

impl Wires {
    fn new(networks: usize, daemons: usize) -> Wires {
        Wires {
            network_up: vec![true; networks],
            plugged: vec![vec![true; daemons]; networks],
            one_way: Vec::new(),
            changed: HashMap::new(),
        }
    }

    fn carries(&self, from: usize, to: usize, network: u8) -> bool {
        let k = network as usize;
        self.network_up[k]
            && self.plugged[k][from]
            && self.plugged[k][to]
            && !self.one_way.contains(&(from, to, network))
    }

    /// Since when wire (from, to, network) is in its current state (zero: always was).
    fn since(&self, from: usize, to: usize, network: u8) -> Time {
        self.changed
            .get(&(from, to, network))
            .copied()
            .unwrap_or(Time::ZERO)
    }
}

struct Sim<'s> {
    s: &'s Scenario,
    rng: Rng,
    now: Time,
    ids: Vec<u32>,
    cluster: Cluster,
    links: Vec<LinkLayer>,
    link_out: LinkOutputs,
    /// One per network.
    nets: Vec<Network>,
    conditions: Vec<Faults>,
    /// The longest a datagram sent now takes on each network.
    slowest: Vec<Duration>,
    /// Until when datagrams a network delayed may arrive (or it still lags).
    late_until: Vec<Time>,
    wires: Wires,
    /// (daemon, peer, network): when a ring packet of the peer last came on that link.
    last_ring: HashMap<(usize, usize, u8), Time>,
    /// Each daemon's next timer (membership or link layer).
    deadlines: Vec<Option<Time>>,
    /// When everyone was first in one configuration of all, and that configuration.
    formed_at: Option<Time>,
    formed: Vec<Option<RingId>>,
    /// The configuration changed after it formed (only the control scenario may).
    changed: bool,
    submissions: Vec<(Time, usize)>,
    next_submission: usize,
    plan: Vec<(Time, Action)>,
    next_action: usize,
    checks: BTreeMap<(Time, u64), Check>,
    check_order: u64,
    /// When to look again whether every link is up (at the end).
    next_links_look: Time,
    stats: Stats,
}

/// Runs `scenario` with randomness from `seed`; the first broken invariant ends the run.
pub fn run(seed: u64, scenario: &Scenario) -> Result<Stats, Failure> {
    let n = scenario.daemons;
    let ids: Vec<u32> = (1..=n as u32).map(|i| i * 10).collect();
    let links = (0..n)
        .map(|i| {
            let setup = LinkSetup {
                me: ids[i],
                networks: scenario.attached[i],
                peers: (0..n)
                    .filter(|&j| j != i)
                    .map(|j| Peer {
                        id: ids[j],
                        networks: scenario.attached[j],
                    })
                    .collect(),
                mode: scenario.mode,
                config_hash: CONFIG_HASH,
                // Each daemon runs once here.
                incarnation: 1,
            };
            LinkLayer::new(Time::ZERO, setup, scenario.link_params.clone())
                .expect("scenarios give valid setups")
        })
        .collect();
    let mut sim = Sim {
        s: scenario,
        rng: Rng::new(seed),
        now: Time::ZERO,
        cluster: Cluster::new(ids.clone(), CONFIG_HASH, scenario.params.clone()),
        ids,
        links,
        link_out: LinkOutputs::new(),
        nets: scenario
            .conditions
            .iter()
            .map(|c| Network::new(c.latency, c.jitter))
            .collect(),
        conditions: scenario.conditions.iter().map(|c| c.faults).collect(),
        slowest: scenario.conditions.iter().map(|c| c.latency + c.jitter).collect(),
        late_until: vec![Time::ZERO; scenario.conditions.len()],
        wires: Wires::new(scenario.conditions.len(), n),
        last_ring: HashMap::new(),
        deadlines: vec![None; n],
        formed_at: None,
        formed: vec![None; n],
        changed: false,
        submissions: Vec::new(),
        next_submission: 0,
        plan: Vec::new(),
        next_action: 0,
        checks: BTreeMap::new(),
        check_order: 0,
        next_links_look: Time::ZERO,
        stats: Stats {
            sim_time: Duration::ZERO,
            formation: Duration::ZERO,
            messages: 0,
            deliveries: 0,
            network: NetworkStats::default(),
            cut: 0,
            membership: MembershipStats::default(),
            ring: RingStats::default(),
            stale_link: 0,
            stale_ring: 0,
            late_link: 0,
            link_changes: 0,
            busy_detection: Duration::ZERO,
            idle_detection: Duration::ZERO,
            reenable: Duration::ZERO,
            flapping_changes: 0,
            flapping_return: Duration::ZERO,
        },
    };
    sim.run()
}

impl Sim<'_> {
    fn run(&mut self) -> Result<Stats, Failure> {
        let n = self.s.daemons;
        for i in 0..n {
            self.cluster.start(i, self.now);
            self.call(i, |m, now, out| m.handle(now, Input::Timer, out))?;
        }
        while let Some(at) = self.next_event() {
            let limit = match self.formed_at {
                None => Time::ZERO + FORMATION,
                Some(t0) => t0 + self.s.active + SETTLE,
            };
            if at > limit {
                break;
            }
            self.now = self.now.max(at);
            self.step()?;
            if self.formed_at.is_none() {
                self.note_formation();
            }
            if self.finished() {
                break;
            }
        }
        let Some(t0) = self.formed_at else {
            return Err(Failure::NotFormed);
        };
        if !self.cluster.live() {
            return Err(Failure::NotLive {
                detail: self.cluster.liveness_report(),
            });
        }
        self.final_checks()?;
        let s = &mut self.stats;
        s.sim_time = self.now.since(Time::ZERO);
        s.formation = t0.since(Time::ZERO);
        s.messages = self.cluster.messages();
        s.deliveries = self.cluster.checker().deliveries();
        (s.membership, s.ring) = self.cluster.stats();
        s.stale_ring = s.ring.stale_tokens;
        for net in &self.nets {
            s.network.sent += net.stats.sent;
            s.network.lost += net.stats.lost;
            s.network.duplicated += net.stats.duplicated;
            s.network.delayed += net.stats.delayed;
        }
        Ok(self.stats.clone())
    }

    /// The time of the next thing to happen.
    fn next_event(&self) -> Option<Time> {
        let datagram = self.nets.iter().filter_map(Network::next_time).min();
        let timer = self.deadlines.iter().flatten().min().copied();
        let action = self.plan.get(self.next_action).map(|&(t, _)| t);
        let submission = self.submissions.get(self.next_submission).map(|&(t, _)| t);
        let check = self.checks.keys().next().map(|&(t, _)| t);
        [datagram, timer, action, submission, check]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does one thing due at `self.now`: a plan action, a check, the timers, a datagram or a
    /// submission, in that order.
    fn step(&mut self) -> Result<(), Failure> {
        let now = self.now;
        if self.plan.get(self.next_action).is_some_and(|&(t, _)| t <= now) {
            let before = self.wire_states();
            while let Some(&(_, action)) = self.plan.get(self.next_action).filter(|&&(t, _)| t <= now) {
                self.next_action += 1;
                self.act(action);
            }
            self.schedule_checks(&before);
            return Ok(());
        }
        if let Some((&key, &check)) = self.checks.iter().next() {
            if key.0 <= now {
                self.checks.remove(&key);
                return self.check(check);
            }
        }
        if self.deadlines.iter().flatten().any(|&t| t <= now) {
            for i in 0..self.s.daemons {
                if self.deadlines[i].is_some_and(|t| t <= now) {
                    self.timer(i)?;
                }
            }
            return Ok(());
        }
        let arrival = (0..self.nets.len())
            .min_by_key(|&k| self.nets[k].next_time().unwrap_or(Time::from_micros(u64::MAX)));
        if let Some(k) = arrival.filter(|&k| self.nets[k].next_time().is_some_and(|t| t <= now)) {
            if let Some((_, Event::Datagram { from, to, bytes })) = self.nets[k].pop() {
                // A cable pulled meanwhile loses what was on its way too.
                if !self.wires.carries(from, to, k as u8) {
                    self.stats.cut += 1;
                    return Ok(());
                }
                return self.arrive(k as u8, from, to, &bytes);
            }
            return Ok(());
        }
        if let Some(&(t, daemon)) = self.submissions.get(self.next_submission) {
            if t <= now {
                self.next_submission += 1;
                return self.submit(daemon);
            }
        }
        Ok(())
    }

    /// Once every daemon is in its first configuration of all: the active period starts.
    fn note_formation(&mut self) {
        if self.formed.iter().any(Option::is_none) {
            return;
        }
        let t0 = self.now;
        self.formed_at = Some(t0);
        let s = self.s;
        let per_daemon = (s.active.as_secs_f64() * f64::from(s.rate)) as u64;
        let active_us = s.active.as_micros() as u64;
        for daemon in 0..s.daemons {
            for _ in 0..per_daemon {
                let at = t0 + Duration::from_micros(self.rng.below(active_us));
                self.submissions.push((at, daemon));
            }
        }
        self.submissions.sort();
        self.plan = s.plan.iter().map(|&(at, a)| (t0 + at, a)).collect();
    }

    /// The active period is over, everything is delivered in one configuration, no check is
    /// left, and every link is up and usable.
    fn finished(&mut self) -> bool {
        let done = self.formed_at.is_some_and(|t0| self.now >= t0 + self.s.active)
            && self.next_action >= self.plan.len()
            && self.checks.is_empty()
            && self.cluster.live();
        // Links come back slowly (a damped one after 30 s): looked at every so often.
        if !done || self.now < self.next_links_look {
            return false;
        }
        self.next_links_look = self.now + LINKS_LOOK;
        self.links
            .iter()
            .all(|l| l.status(self.now).links.iter().all(|s| s.up && s.usable))
    }

    fn timer(&mut self, i: usize) -> Result<(), Failure> {
        let now = self.now;
        if self.links[i].next_deadline() <= now {
            self.links[i].handle_timer(now, &mut self.link_out);
            self.send_probes(i);
        }
        let due = self
            .cluster
            .membership(i)
            .and_then(Membership::next_deadline)
            .is_some_and(|t| t <= now);
        if due {
            self.call(i, |m, now, out| m.handle(now, Input::Timer, out))?;
        }
        self.update_deadline(i);
        Ok(())
    }

    fn arrive(&mut self, network: u8, from: usize, to: usize, bytes: &[u8]) -> Result<(), Failure> {
        let now = self.now;
        let received = self.links[to].on_receive(now, network, bytes, &mut self.link_out);
        let ring_copy = matches!(
            received,
            Received::Ring(_)
                | Received::Dropped(DropReason::Duplicate | DropReason::Late | DropReason::StaleToken)
        );
        if ring_copy {
            self.last_ring.insert((to, from, network), now);
        }
        self.send_probes(to);
        if let Received::Ring(packet) = received {
            let bytes = packet.bytes;
            self.call(to, |m, now, out| {
                m.handle(now, Input::Packet { network, bytes }, out)
            })?;
            if let Some(ring) = self.cluster.membership(to).map(Membership::ring) {
                self.links[to].ring_progress(ring.ring_id(), ring.my_aru());
            }
        }
        self.update_deadline(to);
        Ok(())
    }

    fn submit(&mut self, daemon: usize) -> Result<(), Failure> {
        let s = self.s;
        match self
            .cluster
            .next_submission(daemon, &mut self.rng, s.safe_ratio, s.large_ratio)
        {
            Some(submit) => self.call(daemon, submit),
            None => Ok(()),
        }
    }

    /// Runs `f` on daemon `i`'s membership; what it sends goes through its link layer onto
    /// the networks.
    fn call(&mut self, i: usize, f: impl FnOnce(&mut Membership, Time, &mut Outputs)) -> Result<(), Failure> {
        let Sim {
            s,
            rng,
            now,
            ids,
            cluster,
            links,
            nets,
            conditions,
            wires,
            stats,
            ..
        } = self;
        let now = *now;
        let link = &mut links[i];
        let mut datagram = Vec::new();
        let mut send = |to: Destination, bytes: &[u8]| {
            // The daemon re-stamps its outgoing buffer in place; here the ring's output is
            // borrowed, so it is re-stamped in a scratch copy.
            datagram.clear();
            datagram.extend_from_slice(bytes);
            link.send_copies(now, to, &mut datagram, |network, copy| {
                for (j, &id) in ids.iter().enumerate() {
                    let addressed = match to {
                        Destination::All => j != i,
                        Destination::Daemon(to) => id == to,
                    };
                    if addressed && s.attached[j].contains(network) {
                        if wires.carries(i, j, network) {
                            let faults = &conditions[network as usize];
                            nets[network as usize].send(rng, now, faults, i, j, copy);
                        } else {
                            stats.cut += 1;
                        }
                    }
                }
            });
        };
        cluster.call(i, now, f, &mut send)?;
        self.update_deadline(i);
        self.watch_membership(i)
    }

    /// Sends the probes daemon `i`'s link layer queued.
    fn send_probes(&mut self, i: usize) {
        for (peer, network, bytes) in self.link_out.sends() {
            let Some(j) = self.ids.iter().position(|&id| id == peer) else {
                continue;
            };
            if self.wires.carries(i, j, network) {
                let faults = &self.conditions[network as usize];
                self.nets[network as usize].send(&mut self.rng, self.now, faults, i, j, bytes);
            } else {
                self.stats.cut += 1;
            }
        }
        self.link_out.clear();
    }

    fn update_deadline(&mut self, i: usize) {
        let membership = self.cluster.membership(i).and_then(Membership::next_deadline);
        let link = self.links[i].next_deadline();
        self.deadlines[i] = Some(membership.map_or(link, |m| m.min(link)));
    }

    /// Notes daemon `i`'s first configuration of all; any change after it is a failure,
    /// except in the control scenario.
    fn watch_membership(&mut self, i: usize) -> Result<(), Failure> {
        let checker = self.cluster.checker();
        let current = checker.current(i);
        match self.formed[i] {
            None => {
                let everyone = current
                    .and_then(|ring| checker.members(ring))
                    .is_some_and(|m| m.len() == self.ids.len());
                if everyone && !checker.in_transition(i) {
                    self.formed[i] = current;
                }
            }
            Some(first) => {
                if current != Some(first) || checker.in_transition(i) {
                    if self.s.kind != Kind::Isolation {
                        return Err(Failure::MembershipChanged {
                            daemon: i,
                            at: self.now,
                        });
                    }
                    self.changed = true;
                }
            }
        }
        Ok(())
    }

    fn schedule(&mut self, at: Time, check: Check) {
        self.check_order += 1;
        self.checks.insert((at, self.check_order), check);
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Network { network, up } => self.wires.network_up[network as usize] = up,
            Action::Cable {
                daemon,
                network,
                plugged,
            } => self.wires.plugged[network as usize][daemon] = plugged,
            Action::OneWay {
                from,
                to,
                network,
                cut,
            } => {
                self.wires.one_way.retain(|&w| w != (from, to, network));
                if cut {
                    self.wires.one_way.push((from, to, network));
                }
            }
            Action::Conditions { network, conditions } => {
                let net = network as usize;
                // While a network lags (its conditions are not its first ones), and until what
                // it delayed has arrived, its links are not expected back.
                let late = if conditions == self.s.conditions[net] {
                    self.now + self.slowest[net]
                } else {
                    Time::from_micros(u64::MAX)
                };
                self.late_until[net] = late;
                self.slowest[net] = conditions.latency + conditions.jitter;
                self.nets[net].set_delay(conditions.latency, conditions.jitter);
                self.conditions[net] = conditions.faults;
            }
        }
    }

    /// Notes the wires that changed since `before` and schedules the checks of the links
    /// they belong to.
    fn schedule_checks(&mut self, before: &BTreeMap<(usize, usize, u8), bool>) {
        let after = self.wire_states();
        let now = self.now;
        for (&(from, to, network), &whole) in &after {
            if before[&(from, to, network)] == whole {
                continue;
            }
            self.wires.changed.insert((from, to, network), now);
            if whole {
                // Whole both ways again (scheduled once when both ways came back together):
                // both ends bring the link back.
                let reverse = (to, from, network);
                if after[&reverse] && (from < to || before[&reverse]) {
                    for (daemon, peer) in [(to, from), (from, to)] {
                        self.schedule(
                            now + REENABLE,
                            Check::Up {
                                daemon,
                                peer,
                                network,
                                since: now,
                            },
                        );
                    }
                }
                continue;
            }
            // Cut: the receiver stops hearing the sender; the sender learns it from the
            // receiver's reports. Busy if the sender's ring traffic came just before and
            // still comes on another network (else only silence tells).
            let elsewhere = (0..self.nets.len() as u8).any(|k| {
                k != network
                    && after.get(&(from, to, k)) == Some(&true)
                    && after.get(&(to, from, k)) == Some(&true)
            });
            let busy = elsewhere
                && self
                    .last_ring
                    .get(&(to, from, network))
                    .is_some_and(|&t| now.since(t) <= BUSY_WINDOW);
            let bound = if busy { BUSY_DETECTION } else { IDLE_DETECTION };
            for (daemon, peer) in [(to, from), (from, to)] {
                self.schedule(
                    now + bound,
                    Check::Down {
                        daemon,
                        peer,
                        network,
                        cut: (from, to),
                        since: now,
                    },
                );
            }
        }
    }

    /// Whether each wire (from, to, network) between daemons on that network carries.
    fn wire_states(&self) -> BTreeMap<(usize, usize, u8), bool> {
        let n = self.s.daemons;
        let mut states = BTreeMap::new();
        for network in 0..self.nets.len() as u8 {
            for from in 0..n {
                for to in 0..n {
                    let on = self.s.attached[from].contains(network) && self.s.attached[to].contains(network);
                    if from != to && on {
                        states.insert((from, to, network), self.wires.carries(from, to, network));
                    }
                }
            }
        }
        states
    }

    fn link_status(&self, daemon: usize, peer: usize, network: u8) -> LinkStatus {
        let id = self.ids[peer];
        self.links[daemon]
            .status(self.now)
            .links
            .into_iter()
            .find(|l| l.peer == id && l.network == network)
            .expect("daemons on one network have a link")
    }

    fn check(&mut self, check: Check) -> Result<(), Failure> {
        match check {
            Check::Down {
                daemon,
                peer,
                network,
                cut: (from, to),
                since,
            } => {
                let still_cut =
                    !self.wires.carries(from, to, network) && self.wires.since(from, to, network) == since;
                if !still_cut {
                    return Ok(());
                }
                let link = self.link_status(daemon, peer, network);
                let after = self.now.since(since);
                if link.up {
                    return Err(Failure::NotDetected {
                        daemon,
                        peer,
                        network,
                        at: since,
                        after,
                    });
                }
                let down_at = link.transitions.iter().rev().find(|t| !t.up).map(|t| t.at);
                if let Some(at) = down_at.filter(|&at| at >= since) {
                    let took = at.since(since);
                    let worst = if after <= BUSY_DETECTION {
                        &mut self.stats.busy_detection
                    } else {
                        &mut self.stats.idle_detection
                    };
                    *worst = (*worst).max(took);
                }
            }
            Check::Up {
                daemon,
                peer,
                network,
                since,
            } => {
                let whole = |w: &Wires, a, b| w.carries(a, b, network) && w.since(a, b, network) <= since;
                let late_copies = self.late_until[network as usize] > since;
                if !whole(&self.wires, daemon, peer) || !whole(&self.wires, peer, daemon) || late_copies {
                    return Ok(());
                }
                let link = self.link_status(daemon, peer, network);
                if !link.up && !link.damped {
                    return Err(Failure::NotReenabled {
                        daemon,
                        peer,
                        network,
                        at: since,
                        after: self.now.since(since),
                        link: format!(
                            "{link:?} // peer's: {:?}",
                            self.link_status(peer, daemon, network)
                        ),
                    });
                }
                if let Some(t) = link.transitions.iter().rev().find(|t| t.up && t.at >= since) {
                    self.stats.reenable = self.stats.reenable.max(t.at.since(since));
                }
            }
        }
        Ok(())
    }

    /// At the end: every link up and usable, each link back at most once per damping period,
    /// flapping links within their bound, stale tokens where a network lagged, every message
    /// delivered everywhere, and in the control scenario a membership change.
    fn final_checks(&mut self) -> Result<(), Failure> {
        let damping = self.s.link_params.damping_period;
        let mut stale = 0;
        for (daemon, layer) in self.links.iter().enumerate() {
            let status = layer.status(self.now);
            stale += status.drops.stale_token;
            self.stats.late_link += status.drops.late;
            for link in &status.links {
                let describe = || format!("{link:?}");
                self.stats.link_changes += link.counters.ups + link.counters.downs;
                if !link.up || !link.usable {
                    return Err(Failure::DownAtEnd {
                        daemon,
                        link: describe(),
                    });
                }
                // The first contact is no coming back: it does not arm the damping.
                let ups: Vec<Time> = link
                    .transitions
                    .iter()
                    .filter(|t| t.up && t.reason != Reason::Heard)
                    .map(|t| t.at)
                    .collect();
                if ups.windows(2).any(|w| w[1].since(w[0]) < damping) {
                    return Err(Failure::Flapping {
                        daemon,
                        link: describe(),
                    });
                }
                for f in &self.s.flapping {
                    let peer = self
                        .ids
                        .iter()
                        .position(|&id| id == link.peer)
                        .expect("peers are daemons");
                    let touched = f.cable.map_or(true, |c| c == daemon || c == peer);
                    if link.network != f.network || !touched {
                        continue;
                    }
                    let t0 = self.formed_at.expect("formed");
                    let (from, until) = (t0 + f.from, t0 + f.until);
                    let changes = link
                        .transitions
                        .iter()
                        .filter(|t| t.at >= from && t.at <= until)
                        .count() as u64;
                    self.stats.flapping_changes = self.stats.flapping_changes.max(changes);
                    // Down, back after the hold, down again (now damped), then one down/up
                    // cycle per damping period at most.
                    let periods = until.since(from).as_secs() / damping.as_secs().max(1);
                    if changes > 3 + 2 * periods {
                        return Err(Failure::Flapping {
                            daemon,
                            link: describe(),
                        });
                    }
                    // Once a flapping scenario's network steadies (it may still lose 1 %), a
                    // link comes back once at most, after its hold or damping period, and
                    // stays up.
                    if self.s.kind == Kind::Flapping {
                        let mut after = link.transitions.iter().filter(|t| t.at > until);
                        match (after.next(), after.next()) {
                            (None, _) => {}
                            (Some(back), None) if back.up => {
                                let took = back.at.since(until);
                                self.stats.flapping_return = self.stats.flapping_return.max(took);
                            }
                            _ => {
                                return Err(Failure::Flapping {
                                    daemon,
                                    link: describe(),
                                })
                            }
                        }
                    }
                }
            }
        }
        self.stats.stale_link = stale;
        let (_, ring) = self.cluster.stats();
        if self.s.kind == Kind::Lag && stale + ring.stale_tokens == 0 {
            return Err(Failure::NoStaleTokens);
        }
        if self.s.kind == Kind::Isolation {
            if !self.changed {
                return Err(Failure::NoChange);
            }
        } else {
            let expected = self.cluster.messages() * self.s.daemons;
            let deliveries = self.cluster.checker().deliveries();
            if deliveries != expected {
                return Err(Failure::Undelivered { deliveries, expected });
            }
        }
        Ok(())
    }
}
