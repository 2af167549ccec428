//! Deterministic simulation of daemons running the membership protocol (and their rings) while
//! daemons crash and restart, the network partitions, merges, cuts links one way, and loses,
//! duplicates, delays and reorders datagrams.
//!
//! [`run`] takes a seed and a [`Scenario`]: the daemons submit random messages during the active
//! period while the scenario's plan of faults plays; then every link heals (crashed daemons stay
//! down unless the plan restarted them) and within the settle period the live daemons must form
//! one configuration that delivered every message their current incarnations submitted. Every
//! event a daemon delivers is checked at once (see [`check`]).

pub mod check;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

pub use check::Violation;

use super::check::{random_message, MessageId};
use super::network::{Event, Faults, Network, NetworkStats};
use crate::config::Options;
use crate::membership::{
    Event as MembershipEvent, Input, Membership, MembershipStats, Outputs, Params, Position, State,
};
use crate::ring::{Destination, RingStats, Time};
use crate::rng::Rng;
use crate::wire::packet::RingId;
use check::Checker;

const CONFIG_HASH: u32 = 0x5eed_0e75;

/// A scripted fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The daemon stops (everything it had is lost).
    Crash(usize),
    /// The daemon starts afresh (crashing first if it is up).
    Restart(usize),
    /// Daemons talk only within their group (`groups[i]` is daemon i's).
    Partition(Vec<u8>),
    /// Datagrams from the first daemon to the second are lost.
    CutOneWay(usize, usize),
    /// Every link works again.
    Heal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub daemons: usize,
    pub messages_per_daemon: usize,
    /// Share of messages sent SAFE (the others spread over the lower levels).
    pub safe_ratio: f64,
    /// Share of messages large enough to be fragmented.
    pub large_ratio: f64,
    /// Datagram faults during the active period; none afterwards.
    pub faults: Faults,
    /// Chance that a datagram sent during the active period arrives once more, up to
    /// `late_delay` later (a stale copy from an old ring or gathering).
    pub late: f64,
    pub late_delay: Duration,
    pub latency: Duration,
    pub jitter: Duration,
    /// Messages are submitted and the plan plays within this period.
    pub active: Duration,
    /// After the active period, the bound for the daemons to settle (liveness).
    pub settle: Duration,
    /// Faults at points of the active period, in time order.
    pub plan: Vec<(Duration, Action)>,
    pub params: Params,
}

impl Scenario {
    /// A scenario picked from `seed`: daemons, load, fault rates and a plan of crashes,
    /// restarts, partitions and one-way cuts; timeouts scaled to the simulated latency.
    pub fn random(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x0e75_51e0);
        let pick = |choices: &[f64], rng: &mut Rng| choices[rng.below(choices.len() as u64) as usize];
        let faults = Faults {
            loss: pick(&[0.0, 0.01, 0.03, 0.06, 0.15], &mut rng),
            duplicate: pick(&[0.0, 0.02, 0.1], &mut rng),
            reorder: pick(&[0.0, 0.05, 0.2], &mut rng),
        };
        let safe_ratio = pick(&[0.0, 0.3, 1.0], &mut rng);
        let large_ratio = pick(&[0.0, 0.0, 0.03], &mut rng);
        let daemons = rng.between(2, 6) as usize;
        let latency = Duration::from_micros(rng.between(50, 300));
        let jitter = latency * rng.between(0, 2) as u32;
        let mut params = Params::from_options(&Options::new());
        params.ring.accelerated_ring = rng.chance(0.7);
        params.ring.personal_window = [20, 5][rng.below(2) as usize];
        params.ring.window = [160, 30][rng.below(2) as usize];
        // Spread's timeouts keep their proportions, scaled from seconds to the rotation time
        // of a simulated LAN so that a run sees many membership changes.
        let hop = (latency + jitter) * 12;
        params.ring.hurry_timeout = hop * (daemons as u32 * rng.between(4, 10) as u32);
        params.ring.token_timeout = params.ring.hurry_timeout * 5 / 2;
        params.join_timeout = hop * 3;
        params.gather_timeout = params.join_timeout * 5;
        params.form_timeout = params.gather_timeout * 2;
        params.lookup_timeout = params.gather_timeout * 2;
        let active = Duration::from_millis(rng.between(200, 1500));
        let mut plan = Vec::new();
        for _ in 0..rng.between(0, 12) {
            let at = Duration::from_micros(rng.below(active.as_micros() as u64));
            let d = rng.below(daemons as u64) as usize;
            let action = match rng.below(6) {
                0 => Action::Crash(d),
                1 => Action::Restart(d),
                2 | 3 => Action::Partition((0..daemons).map(|_| rng.below(2) as u8).collect()),
                4 => Action::CutOneWay(d, (d + 1 + rng.below(daemons as u64 - 1) as usize) % daemons),
                _ => Action::Heal,
            };
            plan.push((at, action));
        }
        plan.sort_by_key(|&(at, _)| at);
        Scenario {
            daemons,
            late: pick(&[0.0, 0.0, 0.01], &mut rng),
            late_delay: params.gather_timeout * 4,
            messages_per_daemon: rng.between(5, 80) as usize,
            safe_ratio,
            large_ratio,
            faults,
            latency,
            jitter,
            active,
            settle: params.ring.token_timeout * 4
                + params.lookup_timeout * 4
                + params.gather_timeout * 8
                + params.form_timeout * 4,
            plan,
            params,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub sim_time: Duration,
    pub messages: usize,
    pub deliveries: usize,
    pub network: NetworkStats,
    /// Summed over all incarnations.
    pub membership: MembershipStats,
    /// Summed over all rings of all incarnations.
    pub ring: RingStats,
    pub crashes: u32,
    pub restarts: u32,
    /// From the end of the faults to one configuration that delivered everything.
    pub settle_time: Duration,
}

struct Daemon {
    membership: Option<Membership>,
    /// Messages this incarnation submitted and delivered of its own.
    own_submitted: u64,
    own_delivered: u64,
}

struct Sim<'s> {
    scenario: &'s Scenario,
    rng: Rng,
    now: Time,
    ids: Vec<u32>,
    daemons: Vec<Daemon>,
    /// `links[i][j]`: datagrams from i reach j.
    links: Vec<Vec<bool>>,
    net: Network,
    out: Outputs,
    checker: Checker,
    /// Next message counter of each daemon index (across incarnations, so ids stay unique).
    counters: Vec<u64>,
    /// What each daemon had of each ring, for checking SAFE delivery: the highest
    /// all-received mark seen, and the packets above it it had while its ring was frozen.
    arus: HashMap<(RingId, usize), u64>,
    frozen: HashMap<(RingId, usize), BTreeSet<u64>>,
    stats: Stats,
}

/// Runs `scenario` with randomness from `seed`; the first broken invariant ends the run.
pub fn run(seed: u64, scenario: &Scenario) -> Result<Stats, Violation> {
    let n = scenario.daemons;
    let ids: Vec<u32> = (1..=n as u32).map(|i| i * 10).collect();
    let mut sim = Sim {
        scenario,
        rng: Rng::new(seed),
        now: Time::ZERO,
        daemons: (0..n)
            .map(|_| Daemon {
                membership: None,
                own_submitted: 0,
                own_delivered: 0,
            })
            .collect(),
        links: vec![vec![true; n]; n],
        net: Network::new(scenario.latency, scenario.jitter),
        out: Outputs::new(),
        checker: Checker::new(ids.clone()),
        ids,
        counters: vec![0; n],
        arus: HashMap::new(),
        frozen: HashMap::new(),
        stats: Stats {
            sim_time: Duration::ZERO,
            messages: 0,
            deliveries: 0,
            network: NetworkStats::default(),
            membership: MembershipStats::default(),
            ring: RingStats::default(),
            crashes: 0,
            restarts: 0,
            settle_time: Duration::ZERO,
        },
    };
    sim.run()
}

impl Sim<'_> {
    fn run(&mut self) -> Result<Stats, Violation> {
        let s = self.scenario;
        let active_end = Time::ZERO + s.active;
        let end = active_end + s.settle;
        for daemon in 0..s.daemons {
            for _ in 0..s.messages_per_daemon {
                let at = Time::from_micros(self.rng.below(s.active.as_micros() as u64));
                self.net.schedule(at, Event::Submit { daemon });
            }
            self.start(daemon)?;
        }
        let mut plan = s.plan.iter().map(|(at, a)| (Time::ZERO + *at, a)).peekable();
        let mut healed = false;
        loop {
            if self.now >= active_end && !healed {
                healed = true;
                self.links = vec![vec![true; s.daemons]; s.daemons];
            }
            if healed && self.live() {
                break;
            }
            let timer = self
                .daemons
                .iter()
                .filter_map(|d| d.membership.as_ref()?.next_deadline())
                .min();
            let candidates = [
                timer,
                self.net.next_time(),
                plan.peek().map(|&(at, _)| at),
                (!healed).then_some(active_end),
            ];
            let Some(at) = candidates.into_iter().flatten().min() else {
                break;
            };
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            if plan.peek().is_some_and(|&(t, _)| t == at) {
                let (_, action) = plan.next().expect("peeked");
                self.act(action)?;
            } else if timer == Some(at) {
                for i in 0..s.daemons {
                    let due = self.daemons[i]
                        .membership
                        .as_ref()
                        .and_then(Membership::next_deadline)
                        .is_some_and(|d| d <= at);
                    if due {
                        self.call(i, |m, now, out| m.handle(now, Input::Timer, out))?;
                    }
                }
            } else if self.net.next_time() == Some(at) {
                match self.net.pop().expect("an event is due").1 {
                    Event::Datagram { from: _, to, bytes } => {
                        if self.daemons[to].membership.is_some() {
                            self.call(to, |m, now, out| {
                                m.handle(
                                    now,
                                    Input::Packet {
                                        network: 0,
                                        bytes: &bytes,
                                    },
                                    out,
                                )
                            })?;
                        }
                    }
                    Event::Submit { daemon } => self.submit(daemon)?,
                }
            }
        }
        if !self.live() {
            return Err(Violation::NotLive {
                detail: self.liveness_report(),
            });
        }
        self.stats.settle_time = self.now.since(active_end);
        self.stats.sim_time = self.now.since(Time::ZERO);
        self.stats.network = self.net.stats;
        self.stats.deliveries = self.checker.deliveries();
        for d in &self.daemons {
            if let Some(m) = &d.membership {
                add_stats(&mut self.stats.membership, m.stats());
                self.stats.ring += &m.ring_stats();
            }
        }
        Ok(self.stats.clone())
    }

    fn start(&mut self, daemon: usize) -> Result<(), Violation> {
        let epoch = self.now.as_micros() + 1;
        let m = Membership::new(
            self.ids[daemon],
            self.ids.clone(),
            CONFIG_HASH,
            self.scenario.params.clone(),
            epoch,
            self.now,
        );
        let d = &mut self.daemons[daemon];
        d.membership = Some(m);
        d.own_submitted = 0;
        d.own_delivered = 0;
        self.checker.restart(daemon);
        self.call(daemon, |m, now, out| m.handle(now, Input::Timer, out))
    }

    fn crash(&mut self, daemon: usize) {
        if let Some(m) = self.daemons[daemon].membership.take() {
            add_stats(&mut self.stats.membership, m.stats());
            self.stats.ring += &m.ring_stats();
            self.stats.crashes += 1;
        }
    }

    fn act(&mut self, action: &Action) -> Result<(), Violation> {
        match *action {
            Action::Crash(d) => self.crash(d),
            Action::Restart(d) => {
                self.crash(d);
                self.stats.restarts += 1;
                self.start(d)?;
            }
            Action::Partition(ref groups) => {
                for (i, row) in self.links.iter_mut().enumerate() {
                    for (j, link) in row.iter_mut().enumerate() {
                        *link = groups[i] == groups[j];
                    }
                }
            }
            Action::CutOneWay(from, to) => self.links[from][to] = false,
            Action::Heal => {
                for row in &mut self.links {
                    row.fill(true);
                }
            }
        }
        Ok(())
    }

    fn submit(&mut self, daemon: usize) -> Result<(), Violation> {
        if self.daemons[daemon].membership.is_none() {
            return Ok(());
        }
        let s = self.scenario;
        let id = MessageId {
            origin: daemon,
            counter: self.counters[daemon],
        };
        self.counters[daemon] += 1;
        self.stats.messages += 1;
        self.daemons[daemon].own_submitted += 1;
        let (service, message) = random_message(&mut self.rng, id, s.safe_ratio, s.large_ratio, 30_000);
        self.checker.submitted(id);
        self.call(daemon, |m, now, out| {
            m.submit(now, service, message, out)
                .expect("simulated messages are within the size limit")
        })
    }

    /// Runs `f` on daemon `i`, then sends what it produced and checks what it delivered.
    fn call(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Membership, Time, &mut Outputs),
    ) -> Result<(), Violation> {
        let Some(m) = self.daemons[i].membership.as_mut() else {
            return Ok(());
        };
        f(m, self.now, &mut self.out);
        let active = self.now < Time::ZERO + self.scenario.active;
        let faults = if active {
            self.scenario.faults
        } else {
            Faults::NONE
        };
        let late = if active { self.scenario.late } else { 0.0 };
        for (to, bytes) in self.out.sends() {
            if crate::wire::packet::decode(bytes).is_err() {
                return Err(Violation::Undecodable { daemon: i });
            }
            match to {
                Destination::All => {
                    for j in (0..self.ids.len()).filter(|&j| j != i && self.links[i][j]) {
                        self.net.send(&mut self.rng, self.now, &faults, i, j, bytes);
                    }
                }
                Destination::Daemon(id) => {
                    if let Some(j) = self.ids.iter().position(|&d| d == id) {
                        if j == i || self.links[i][j] {
                            self.net.send(&mut self.rng, self.now, &faults, i, j, bytes);
                        }
                    }
                }
            }
            if self.rng.chance(late) {
                let to = self.rng.below(self.ids.len() as u64) as usize;
                let delay = self.rng.below(self.scenario.late_delay.as_micros() as u64 + 1);
                let event = Event::Datagram {
                    from: i,
                    to,
                    bytes: bytes.to_vec(),
                };
                self.net.schedule(self.now + Duration::from_micros(delay), event);
            }
        }
        self.record(i);
        let out = std::mem::take(&mut self.out);
        let result = self.check_events(i, &out);
        self.out = out;
        self.out.clear();
        result
    }

    /// Notes what daemon `k` has of its ring now.
    fn record(&mut self, k: usize) {
        let Some(m) = &self.daemons[k].membership else {
            return;
        };
        let ring = m.ring();
        let key = (ring.ring_id(), k);
        let aru = self.arus.entry(key).or_insert(0);
        *aru = (*aru).max(ring.my_aru());
        // Outside OP the ring only gains recovered packets, above holes.
        if m.state() != State::Op && ring.my_aru() < ring.highest_seq() {
            let have = (ring.my_aru() + 1..=ring.highest_seq()).filter(|&seq| ring.has_received(seq));
            self.frozen.entry(key).or_default().extend(have);
        }
    }

    fn check_events(&mut self, i: usize, out: &Outputs) -> Result<(), Violation> {
        for (event, at) in out.positioned_events() {
            match event {
                MembershipEvent::Deliver {
                    origin,
                    service,
                    message,
                } => {
                    let at = at.expect("deliveries have positions");
                    let daemons = &self.daemons;
                    let arus = &self.arus;
                    let frozen = &self.frozen;
                    let has = |k: usize, p: Position| {
                        // The daemon delivering it has it (it may have retired the ring in this
                        // very call).
                        if k == i {
                            return true;
                        }
                        let Some(m) = daemons.get(k).and_then(|d| d.membership.as_ref()) else {
                            // A crashed daemon cannot be asked.
                            return true;
                        };
                        m.has_packet(p.ring, p.seq)
                            || arus.get(&(p.ring, k)).is_some_and(|&aru| aru >= p.seq)
                            || frozen.get(&(p.ring, k)).is_some_and(|have| have.contains(&p.seq))
                    };
                    let id = self.checker.deliver(i, origin, service, message, at, has)?;
                    if id.origin == i {
                        self.daemons[i].own_delivered += 1;
                    }
                }
                MembershipEvent::Transitional { members, .. } => self.checker.transitional(i, members)?,
                MembershipEvent::Regular { ring, members } => self.checker.regular(i, ring, members)?,
            }
        }
        Ok(())
    }

    /// Every live daemon is in one operational configuration of exactly the live daemons, has
    /// delivered what it submitted, and all delivered the same there.
    fn live(&self) -> bool {
        let up: Vec<usize> = (0..self.daemons.len())
            .filter(|&k| self.daemons[k].membership.is_some())
            .collect();
        let Some(ring) = up.first().and_then(|&k| self.checker.current(k)) else {
            return up.is_empty();
        };
        let mut ids: Vec<u32> = up.iter().map(|&k| self.ids[k]).collect();
        ids.sort_unstable();
        let mut members = self.checker.members(ring).unwrap_or(&[]).to_vec();
        members.sort_unstable();
        let count = self.checker.delivered_in_regular(up[0]).len();
        members == ids
            && up.iter().all(|&k| {
                let d = &self.daemons[k];
                self.checker.current(k) == Some(ring)
                    && !self.checker.in_transition(k)
                    && d.own_delivered == d.own_submitted
                    && self.checker.delivered_in_regular(k).len() == count
            })
    }

    fn liveness_report(&self) -> String {
        let mut report = String::new();
        for (k, d) in self.daemons.iter().enumerate() {
            let Some(m) = &d.membership else {
                report.push_str(&format!("[{k}: down] "));
                continue;
            };
            report.push_str(&format!(
                "[{k}: {:?} ring {:?} members {:?} own {}/{} in ring {}] ",
                m.state(),
                self.checker.current(k),
                self.checker.current(k).and_then(|r| self.checker.members(r)),
                d.own_delivered,
                d.own_submitted,
                self.checker.delivered_in_regular(k).len(),
            ));
        }
        report
    }
}

fn add_stats(sum: &mut MembershipStats, s: &MembershipStats) {
    sum.malformed += s.malformed;
    sum.foreign_hash += s.foreign_hash;
    sum.unknown_sender += s.unknown_sender;
    sum.other_ring += s.other_ring;
    sum.stale_joins += s.stale_joins;
    sum.stale_forms += s.stale_forms;
    sum.bad_recovery += s.bad_recovery;
    sum.gathers += s.gathers;
    sum.installs += s.installs;
    sum.recovered_sent += s.recovered_sent;
}
