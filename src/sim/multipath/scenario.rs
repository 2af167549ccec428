//! Multipath scenarios: which daemons are on which networks, how each network behaves, and the
//! faults that play on them, all picked from a seed.

use std::time::Duration;

use crate::config::{MultipathMode, Options};
use crate::link::{LinkParams, NetSet};
use crate::membership::Params;
use crate::rng::Rng;
use crate::sim::network::Faults;

/// How a network delivers datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    pub latency: Duration,
    /// Extra delay, uniform in `0..=jitter`, on every datagram.
    pub jitter: Duration,
    pub faults: Faults,
}

/// A scripted change of the networks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Every cable of a network out (`up` false), or back in.
    Network { network: u8, up: bool },
    /// One daemon's cable on one network.
    Cable {
        daemon: usize,
        network: u8,
        plugged: bool,
    },
    /// What `from` sends `to` on `network` is lost (`cut`), or arrives again.
    OneWay {
        from: usize,
        to: usize,
        network: u8,
        cut: bool,
    },
    /// How the network delivers from now on.
    Conditions { network: u8, conditions: Conditions },
}

/// The scenario families; a seed picks one (see [`Scenario::random`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One network fails entirely for a while and comes back.
    Outage,
    /// One daemon's cable on one network pulled and put back, then another daemon's on
    /// another network.
    CablePulls,
    /// One network seconds behind, duplicating and reordering: late, duplicated and
    /// reordered copies of tokens.
    Lag,
    /// One network loses what one daemon sends another, one way only.
    OneWay,
    /// A network or one daemon's cable on it flaps for tens of seconds, at 1 Hz or every 4 s
    /// (slowly enough for a link to come back between outages, and fail again: damped); half
    /// the time the network also loses 1 % all along. Then it steadies.
    Flapping,
    /// Several of the above on the networks other than one, which loses a little.
    Mix,
    /// The control: every cable of one daemon out, so it leaves the membership and comes back.
    Isolation,
}

pub const KINDS: [Kind; 7] = [
    Kind::Outage,
    Kind::CablePulls,
    Kind::Lag,
    Kind::OneWay,
    Kind::Flapping,
    Kind::Mix,
    Kind::Isolation,
];

/// A link flapping: what goes out and in, once a period from `from` to `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flapping {
    pub network: u8,
    /// One daemon's cable, or (`None`) the whole network.
    pub cable: Option<usize>,
    pub from: Duration,
    pub until: Duration,
    pub period: Duration,
    /// How long it is out in each period.
    pub off: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub kind: Kind,
    pub daemons: usize,
    /// The networks each daemon is on (network 0 has every daemon).
    pub attached: Vec<NetSet>,
    pub mode: MultipathMode,
    /// How each network delivers at first.
    pub conditions: Vec<Conditions>,
    /// A network every daemon is on that no fault touches (it may lose a little, in a mix).
    pub healthy: u8,
    /// Messages each daemon submits per second of the active period.
    pub rate: u32,
    /// Share of messages sent SAFE (the others spread over the lower levels).
    pub safe_ratio: f64,
    /// Share of messages large enough to be fragmented.
    pub large_ratio: f64,
    /// Counted from the moment every daemon is in the first configuration of all: messages
    /// are submitted and the plan plays within this period.
    pub active: Duration,
    /// Faults at points of the active period, in time order.
    pub plan: Vec<(Duration, Action)>,
    /// The flapping in the plan, for its own check.
    pub flapping: Vec<Flapping>,
    pub params: Params,
    pub link_params: LinkParams,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A duration between `low` and `high` milliseconds.
fn between_ms(rng: &mut Rng, low: u64, high: u64) -> Duration {
    ms(rng.between(low, high))
}

impl Scenario {
    /// The scenario of `seed`: its kind is `KINDS[seed % 7]`, everything else is drawn from
    /// the seed.
    pub fn random(seed: u64) -> Scenario {
        Scenario::of_kind(KINDS[(seed % KINDS.len() as u64) as usize], seed)
    }

    pub fn of_kind(kind: Kind, seed: u64) -> Scenario {
        let mut rng = Rng::new(seed ^ 0x3a7f_9e11);
        let daemons = rng.between(3, 5) as usize;
        let networks = rng.between(2, 3) as usize;
        let mut attached = vec![NetSet::first_n(networks); daemons];
        // With three networks one daemon may be absent from the last: every pair still
        // shares two networks.
        if networks == 3 && rng.chance(0.5) {
            let absent = rng.below(daemons as u64) as usize;
            attached[absent] = NetSet::first_n(2);
        }
        let mode = [
            MultipathMode::Active,
            MultipathMode::Passive,
            MultipathMode::Hybrid,
        ][rng.below(3) as usize];
        let conditions: Vec<Conditions> = (0..networks)
            .map(|_| {
                let latency = Duration::from_micros(rng.between(80, 400));
                Conditions {
                    latency,
                    jitter: latency * rng.between(0, 1) as u32,
                    faults: Faults::NONE,
                }
            })
            .collect();
        // Network 0 or 1: both have every daemon.
        let healthy = rng.below(2) as u8;
        let others: Vec<u8> = (0..networks as u8).filter(|&n| n != healthy).collect();
        let mut s = Scenario {
            kind,
            daemons,
            attached,
            mode,
            conditions,
            healthy,
            rate: rng.between(10, 50) as u32,
            safe_ratio: [0.0, 0.3, 1.0][rng.below(3) as usize],
            large_ratio: [0.0, 0.0, 0.03][rng.below(3) as usize],
            active: Duration::ZERO,
            plan: Vec::new(),
            flapping: Vec::new(),
            params: Params::from_options(&Options::new()),
            link_params: LinkParams::default(),
        };
        let start = between_ms(&mut rng, 500, 2000);
        let end = match kind {
            Kind::Outage => {
                let network = others[rng.below(others.len() as u64) as usize];
                s.outage(network, start, between_ms(&mut rng, 1500, 5000))
            }
            Kind::CablePulls => {
                let first = rng.below(daemons as u64) as usize;
                let second = (first + 1 + rng.below(daemons as u64 - 1) as usize) % daemons;
                let (k1, k2) = (healthy, others[0]);
                let back = s.cable_pull(first, k1, start, between_ms(&mut rng, 1500, 4000));
                let next = back + between_ms(&mut rng, 1000, 4000);
                s.cable_pull(second, k2, next, between_ms(&mut rng, 1500, 4000))
            }
            Kind::Lag => {
                let network = others[rng.below(others.len() as u64) as usize];
                let length = between_ms(&mut rng, 3000, 8000);
                let lag = s.lag(&mut rng, network, start, length);
                // Traffic goes on while the late copies arrive.
                lag + ms(3000)
            }
            Kind::OneWay => {
                let from = rng.below(daemons as u64) as usize;
                let to = (from + 1 + rng.below(daemons as u64 - 1) as usize) % daemons;
                let shared = s.attached[from].intersection(s.attached[to]);
                let network = shared
                    .iter()
                    .nth(rng.below(shared.len() as u64) as usize)
                    .unwrap_or(0);
                s.one_way(from, to, network, start, between_ms(&mut rng, 1500, 5000))
            }
            Kind::Flapping => {
                let network = others[rng.below(others.len() as u64) as usize];
                let length = between_ms(&mut rng, 20_000, 40_000);
                if rng.chance(0.5) {
                    s.conditions[network as usize].faults.loss = 0.01;
                }
                let period = [ms(1000), ms(4000)][rng.below(2) as usize];
                s.flap(&mut rng, network, start, length, period)
            }
            Kind::Mix => s.mix(&mut rng, &others, start),
            Kind::Isolation => {
                let daemon = rng.below(daemons as u64) as usize;
                let back = start + between_ms(&mut rng, 3000, 8000);
                for network in s.attached[daemon].iter() {
                    s.at(
                        start,
                        Action::Cable {
                            daemon,
                            network,
                            plugged: false,
                        },
                    );
                    s.at(
                        back,
                        Action::Cable {
                            daemon,
                            network,
                            plugged: true,
                        },
                    );
                }
                back
            }
        };
        s.active = end + ms(2000);
        s.plan.sort_by_key(|&(at, _)| at);
        s
    }

    fn at(&mut self, at: Duration, action: Action) {
        self.plan.push((at, action));
    }

    /// Network `network` out from `start` for `length`; returns when it is back.
    fn outage(&mut self, network: u8, start: Duration, length: Duration) -> Duration {
        self.at(start, Action::Network { network, up: false });
        self.at(start + length, Action::Network { network, up: true });
        start + length
    }

    fn cable_pull(&mut self, daemon: usize, network: u8, start: Duration, length: Duration) -> Duration {
        let cable = |plugged| Action::Cable {
            daemon,
            network,
            plugged,
        };
        self.at(start, cable(false));
        self.at(start + length, cable(true));
        start + length
    }

    fn one_way(
        &mut self,
        from: usize,
        to: usize,
        network: u8,
        start: Duration,
        length: Duration,
    ) -> Duration {
        let cut = |cut| Action::OneWay {
            from,
            to,
            network,
            cut,
        };
        self.at(start, cut(true));
        self.at(start + length, cut(false));
        start + length
    }

    /// Network `network` 1 to 3 s behind, duplicating, for `length`; the delay of each copy
    /// drawn apart reorders them.
    fn lag(&mut self, rng: &mut Rng, network: u8, start: Duration, length: Duration) -> Duration {
        let normal = self.conditions[network as usize];
        let lagging = Conditions {
            latency: ms(1000),
            jitter: ms(2000),
            faults: Faults {
                loss: 0.0,
                duplicate: [0.1, 0.3][rng.below(2) as usize],
                reorder: 0.0,
            },
        };
        self.at(
            start,
            Action::Conditions {
                network,
                conditions: lagging,
            },
        );
        self.at(
            start + length,
            Action::Conditions {
                network,
                conditions: normal,
            },
        );
        start + length
    }

    /// Network `network`, or one daemon's cable on it, out once every `period` for `length`.
    fn flap(
        &mut self,
        rng: &mut Rng,
        network: u8,
        start: Duration,
        length: Duration,
        period: Duration,
    ) -> Duration {
        let cable = rng
            .chance(0.5)
            .then(|| rng.below(self.daemons as u64) as usize)
            .filter(|&d| self.attached[d].contains(network));
        let off = [period / 2, period / 5, period / 20][rng.below(3) as usize];
        let change = |up| match cable {
            Some(daemon) => Action::Cable {
                daemon,
                network,
                plugged: up,
            },
            None => Action::Network { network, up },
        };
        let periods = (length.as_millis() / period.as_millis()) as u32;
        for k in 0..periods {
            let out = start + period * k;
            self.at(out, change(false));
            self.at(out + off, change(true));
        }
        let until = start + period * periods;
        self.flapping.push(Flapping {
            network,
            cable,
            from: start,
            until,
            period,
            off,
        });
        until
    }

    /// Two to four faults on the networks other than the healthy one, which loses a little.
    fn mix(&mut self, rng: &mut Rng, others: &[u8], start: Duration) -> Duration {
        let healthy = self.healthy as usize;
        self.conditions[healthy].faults.loss = [0.005, 0.01, 0.02][rng.below(3) as usize];
        let mut end = start;
        for _ in 0..rng.between(2, 4) {
            let network = others[rng.below(others.len() as u64) as usize];
            let at = start + between_ms(rng, 0, 8000);
            let length = between_ms(rng, 1500, 5000);
            let daemon = rng.below(self.daemons as u64) as usize;
            let until = match rng.below(5) {
                0 => self.outage(network, at, length),
                1 if self.attached[daemon].contains(network) => self.cable_pull(daemon, network, at, length),
                2 => {
                    let to = (daemon + 1 + rng.below(self.daemons as u64 - 1) as usize) % self.daemons;
                    let shared = self.attached[daemon].intersection(self.attached[to]);
                    if shared.contains(network) {
                        self.one_way(daemon, to, network, at, length)
                    } else {
                        self.outage(network, at, length)
                    }
                }
                3 => self.lag(rng, network, at, length),
                _ => {
                    let length = between_ms(rng, 5000, 15_000);
                    self.flap(rng, network, at, length, ms(1000))
                }
            };
            end = end.max(until);
        }
        end
    }
}
