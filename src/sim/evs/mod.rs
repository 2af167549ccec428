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
pub mod cluster;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use check::Violation;
pub use cluster::Cluster;

use super::network::{Event, Faults, Network, NetworkStats};
use crate::config::Options;
use crate::membership::{Input, Membership, MembershipStats, Outputs, Params};
use crate::ring::{Destination, RingStats, Time};
use crate::rng::Rng;

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

struct Sim<'s> {
    scenario: &'s Scenario,
    rng: Rng,
    now: Time,
    ids: Vec<u32>,
    cluster: Cluster,
    /// `links[i][j]`: datagrams from i reach j.
    links: Vec<Vec<bool>>,
    net: Network,
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
        cluster: Cluster::new(ids.clone(), CONFIG_HASH, scenario.params.clone()),
        ids,
        links: vec![vec![true; n]; n],
        net: Network::new(scenario.latency, scenario.jitter),
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
            if healed && self.cluster.live() {
                break;
            }
            let timer = (0..s.daemons)
                .filter_map(|i| self.cluster.membership(i)?.next_deadline())
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
                    let due = self
                        .cluster
                        .membership(i)
                        .and_then(Membership::next_deadline)
                        .is_some_and(|d| d <= at);
                    if due {
                        self.call(i, |m, now, out| m.handle(now, Input::Timer, out))?;
                    }
                }
            } else if self.net.next_time() == Some(at) {
                match self.net.pop().expect("an event is due").1 {
                    Event::Datagram { from: _, to, bytes } => {
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
                    Event::Submit { daemon } => self.submit(daemon)?,
                }
            }
        }
        if !self.cluster.live() {
            return Err(Violation::NotLive {
                detail: self.cluster.liveness_report(),
            });
        }
        self.stats.settle_time = self.now.since(active_end);
        self.stats.sim_time = self.now.since(Time::ZERO);
        self.stats.network = self.net.stats;
        self.stats.messages = self.cluster.messages();
        self.stats.deliveries = self.cluster.checker().deliveries();
        (self.stats.membership, self.stats.ring) = self.cluster.stats();
        Ok(self.stats.clone())
    }

    fn start(&mut self, daemon: usize) -> Result<(), Violation> {
        self.cluster.start(daemon, self.now);
        self.call(daemon, |m, now, out| m.handle(now, Input::Timer, out))
    }

    fn act(&mut self, action: &Action) -> Result<(), Violation> {
        match *action {
            Action::Crash(d) => {
                if self.cluster.crash(d) {
                    self.stats.crashes += 1;
                }
            }
            Action::Restart(d) => {
                if self.cluster.crash(d) {
                    self.stats.crashes += 1;
                }
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
        let s = self.scenario;
        match self
            .cluster
            .next_submission(daemon, &mut self.rng, s.safe_ratio, s.large_ratio)
        {
            Some(submit) => self.call(daemon, submit),
            None => Ok(()),
        }
    }

    /// Runs `f` on daemon `i`, then sends what it produced and checks what it delivered.
    fn call(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut Membership, Time, &mut Outputs),
    ) -> Result<(), Violation> {
        let Sim {
            scenario,
            rng,
            now,
            ids,
            cluster,
            links,
            net,
            ..
        } = self;
        let now = *now;
        let active = now < Time::ZERO + scenario.active;
        let faults = if active { scenario.faults } else { Faults::NONE };
        let late = if active { scenario.late } else { 0.0 };
        let n = ids.len();
        let mut send = |to: Destination, bytes: &[u8]| {
            match to {
                Destination::All => {
                    for j in (0..n).filter(|&j| j != i && links[i][j]) {
                        net.send(rng, now, &faults, i, j, bytes);
                    }
                }
                Destination::Daemon(id) => {
                    if let Some(j) = ids.iter().position(|&d| d == id) {
                        if j == i || links[i][j] {
                            net.send(rng, now, &faults, i, j, bytes);
                        }
                    }
                }
            }
            if rng.chance(late) {
                let to = rng.below(n as u64) as usize;
                let delay = rng.below(scenario.late_delay.as_micros() as u64 + 1);
                let event = Event::Datagram {
                    from: i,
                    to,
                    bytes: bytes.to_vec(),
                };
                net.schedule(now + Duration::from_micros(delay), event);
            }
        };
        cluster.call(i, now, f, &mut send)
    }
}
