//! Deterministic simulation of daemons running the ring over a faulty network.
//!
//! [`run`] takes a seed and a [`Scenario`]: N daemons, each a [`Ring`], submit random messages
//! (all service levels, some large enough to be fragmented) while the network loses, duplicates,
//! delays and reorders datagrams; then the network heals and everything must be delivered.
//! Every delivery is checked at once (see [`check`]). Everything random comes from the seed, so
//! `run(seed, &Scenario::random(seed))` replays a failure exactly.
//!
//! [`evs`] runs whole daemons (the membership protocol with its rings) through crashes,
//! restarts, partitions and one-way links, and checks extended virtual synchrony.

pub mod causal;
pub mod check;
pub mod evs;
pub mod multipath;
pub mod network;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use check::{MessageId, Violation};
pub use network::{Faults, NetworkStats};

use crate::config::Options;
use crate::ring::{Destination, Input, Outputs, Params, Ring, RingStats, Setup, Time};
use crate::rng::Rng;
use crate::wire::packet::{decode, RingId};
use check::{random_message, Checker};
use network::{Event, Network};

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub daemons: usize,
    pub messages_per_daemon: usize,
    /// Share of messages sent SAFE (the others spread over the lower levels).
    pub safe_ratio: f64,
    /// Share of messages large enough to be fragmented (up to 144,000 bytes).
    pub large_ratio: f64,
    /// Faults while messages are being submitted; none afterwards.
    pub faults: Faults,
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, on every datagram.
    pub jitter: Duration,
    /// Messages are submitted at random times within this period.
    pub active: Duration,
    /// After the active period, this long for everything to be delivered.
    pub settle: Duration,
    pub params: Params,
}

impl Scenario {
    /// A scenario picked from `seed`: ring size, load, fault rates, latency and ring settings.
    pub fn random(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x5ce0_a210);
        let mut pick = |choices: &[f64]| choices[rng.below(choices.len() as u64) as usize];
        let faults = Faults {
            loss: pick(&[0.0, 0.01, 0.03, 0.06]),
            duplicate: pick(&[0.0, 0.02, 0.1]),
            reorder: pick(&[0.0, 0.05, 0.2]),
        };
        let safe_ratio = pick(&[0.0, 0.2, 0.5, 1.0]);
        let large_ratio = pick(&[0.0, 0.0, 0.02, 0.05]);
        let mut params = Params::from_options(&Options::new());
        params.accelerated_ring = rng.chance(0.7);
        params.accelerated_window = rng.between(0, 20) as u32;
        params.personal_window = [20, 5, 1][rng.below(3) as usize];
        params.window = [160, 30, 8][rng.below(3) as usize];
        let daemons = rng.between(1, 6) as usize;
        let latency = Duration::from_micros(rng.between(50, 500));
        let jitter = latency * rng.between(0, 2) as u32;
        // Spread's LAN timeouts (500 ms hurry, 1250 ms token loss) are hundreds of rotations
        // long, so a lost token stalls a short run for most of it. Scaled down to a few slowest
        // rotations, the active period sees many token losses and recoveries. The token
        // timeout keeps Spread's ratio to the hurry timeout.
        if rng.chance(0.8) {
            let slowest_hop = latency
                + jitter
                + if faults.reorder > 0.0 {
                    latency * 10
                } else {
                    Duration::ZERO
                };
            params.hurry_timeout = slowest_hop * (daemons as u32 * rng.between(4, 20) as u32);
            params.token_timeout = params.hurry_timeout * 5 / 2;
        }
        Scenario {
            daemons,
            messages_per_daemon: rng.between(5, 60) as usize,
            safe_ratio,
            large_ratio,
            faults,
            latency,
            jitter,
            active: Duration::from_millis(rng.between(50, 2000)),
            settle: Duration::from_secs(30),
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
    /// Sum over the daemons.
    pub ring: RingStats,
    /// The token was declared lost (a membership change would follow; delivery of everything
    /// is then not required, the ordering checks still held).
    pub token_lost: bool,
    /// Longest time from a submission to its delivery at some daemon.
    pub max_latency: Duration,
}

const RING_ID: RingId = RingId { rep: 1, seq: 1 };
const CONFIG_HASH: u32 = 0x5eed_cafe;

struct Sim<'s> {
    scenario: &'s Scenario,
    rng: Rng,
    now: Time,
    ids: Vec<u32>,
    rings: Vec<Ring>,
    net: Network,
    out: Outputs,
    checker: Checker,
    /// When each daemon submitted each of its messages (index: counter).
    submitted: Vec<Vec<Time>>,
    max_latency: Duration,
    arus: Vec<u64>,
    token_lost: bool,
    deliveries: usize,
}

/// Runs `scenario` with randomness from `seed`; the first broken invariant ends the run.
pub fn run(seed: u64, scenario: &Scenario) -> Result<Stats, Violation> {
    let n = scenario.daemons;
    let ids: Vec<u32> = (1..=n as u32).collect();
    let rings = ids
        .iter()
        .map(|&me| {
            let setup = Setup {
                me,
                members: ids.clone(),
                ring: RING_ID,
                config_hash: CONFIG_HASH,
                network: 0,
            };
            Ring::new(setup, scenario.params.clone()).expect("scenario gives a valid ring")
        })
        .collect();
    let mut sim = Sim {
        scenario,
        rng: Rng::new(seed),
        now: Time::ZERO,
        checker: Checker::new(ids.clone()),
        ids,
        rings,
        net: Network::new(scenario.latency, scenario.jitter),
        out: Outputs::new(),
        submitted: vec![Vec::new(); n],
        max_latency: Duration::ZERO,
        arus: vec![0; n],
        token_lost: false,
        deliveries: 0,
    };
    sim.run()
}

impl Sim<'_> {
    fn run(&mut self) -> Result<Stats, Violation> {
        let s = self.scenario;
        let active_us = s.active.as_micros() as u64;
        for daemon in 0..s.daemons {
            for _ in 0..s.messages_per_daemon {
                let at = Time::from_micros(self.rng.below(active_us));
                self.net.schedule(at, Event::Submit { daemon });
            }
        }
        for i in 0..s.daemons {
            self.rings[i].start(self.now, &mut self.out);
            self.route(i)?;
        }
        let end = Time::ZERO + s.active + s.settle;
        let total = s.messages_per_daemon * s.daemons;
        while (0..s.daemons).any(|d| self.checker.delivered(d) < total) {
            let timer = self.rings.iter().filter_map(Ring::next_deadline).min();
            let event = self.net.next_time();
            let Some(at) = [timer, event].into_iter().flatten().min() else {
                break;
            };
            if at > end {
                break;
            }
            self.now = at;
            if timer == Some(at) {
                for i in 0..s.daemons {
                    if self.rings[i].next_deadline().is_some_and(|d| d <= at) {
                        self.rings[i].handle(at, Input::Timer, &mut self.out);
                        self.route(i)?;
                    }
                }
                continue;
            }
            match self.net.pop().expect("an event is due").1 {
                Event::Datagram { from, to, bytes } => {
                    let packet = decode(&bytes).map_err(|_| Violation::Undecodable { daemon: from })?;
                    self.rings[to].handle(at, Input::Packet { network: 0, packet }, &mut self.out);
                    self.route(to)?;
                }
                Event::Submit { daemon } => self.submit(daemon)?,
            }
        }
        if !self.token_lost {
            for daemon in 0..s.daemons {
                let delivered = self.checker.delivered(daemon);
                if delivered < total {
                    return Err(Violation::Stalled {
                        daemon,
                        delivered,
                        expected: total,
                    });
                }
            }
        }
        Ok(self.stats())
    }

    fn submit(&mut self, daemon: usize) -> Result<(), Violation> {
        let s = self.scenario;
        let id = MessageId {
            origin: daemon,
            counter: self.submitted[daemon].len() as u64,
        };
        self.submitted[daemon].push(self.now);
        let (service, message) = random_message(&mut self.rng, id, s.safe_ratio, s.large_ratio, 144_000);
        self.checker.submitted(id);
        self.rings[daemon]
            .submit(self.now, service, message, &mut self.out)
            .expect("simulated messages are within the size limit");
        self.route(daemon)
    }

    /// Sends what daemon `i` just produced and checks what it delivered.
    fn route(&mut self, i: usize) -> Result<(), Violation> {
        let faults = if self.now < Time::ZERO + self.scenario.active {
            self.scenario.faults
        } else {
            Faults::NONE
        };
        for (to, bytes) in self.out.sends() {
            match to {
                Destination::All => {
                    for j in (0..self.ids.len()).filter(|&j| j != i) {
                        self.net.send(&mut self.rng, self.now, &faults, i, j, bytes);
                    }
                }
                Destination::Daemon(id) => {
                    let j = self
                        .ids
                        .iter()
                        .position(|&d| d == id)
                        .expect("rings send to members");
                    self.net.send(&mut self.rng, self.now, &faults, i, j, bytes);
                }
            }
        }
        for (aru, ring) in self.arus.iter_mut().zip(&self.rings) {
            *aru = ring.my_aru();
        }
        for d in self.out.deliveries() {
            let id = self.checker.deliver(i, &d, &self.arus)?;
            let latency = self.now.since(self.submitted[id.origin][id.counter as usize]);
            self.max_latency = self.max_latency.max(latency);
            self.deliveries += 1;
        }
        self.token_lost |= self.out.token_lost();
        self.out.clear();
        Ok(())
    }

    fn stats(&self) -> Stats {
        let mut ring = RingStats::default();
        for r in &self.rings {
            ring += r.stats();
        }
        Stats {
            sim_time: self.now.since(Time::ZERO),
            messages: self.submitted.iter().map(Vec::len).sum(),
            deliveries: self.deliveries,
            network: self.net.stats,
            ring,
            token_lost: self.token_lost,
            max_latency: self.max_latency,
        }
    }
}
