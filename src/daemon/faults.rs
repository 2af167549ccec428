//! Test-only faults on the daemon's outgoing datagrams: loss, duplication, delay and
//! reordering, so real daemons can be tested over a bad network on loopback.
//!
//! Enabled by the environment variable `SPREAD_TEST_FAULTS` and inert without it. Syntax: items
//! separated by commas, each `[netN:]key=value`; an item without `netN:` applies to every
//! network, one with it to network N only (and wins over the unprefixed one):
//!
//! - `loss=P`: drop a datagram with probability P (0..=1);
//! - `dup=P`: send a second copy with probability P;
//! - `delay=D`: hold every copy back by D (`2ms`, `500us`, `1s`; a bare number is ms);
//! - `reorder=P`: hold a copy back by a further random time of up to `4 * delay + 5ms` with
//!   probability P, so that later datagrams overtake it;
//! - `seed=N`: seed of the pseudo-random choices (else one from the clock and process id, which
//!   the daemon logs so that a run can be replayed);
//! - `after=D`: no fault before D has passed since the daemon started (so that a network can
//!   turn bad once the ring runs over it; not per network).
//!
//! Example: `SPREAD_TEST_FAULTS=loss=0.05,dup=0.01,delay=2ms,reorder=0.02,net1:loss=1`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::MAX_NETWORKS;
use crate::rng::Rng;

/// The environment variable that turns faults on.
pub const FAULTS_VAR: &str = "SPREAD_TEST_FAULTS";

/// What happens to the datagrams of one network.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    pub loss: f64,
    pub duplicate: f64,
    pub delay: Duration,
    pub reorder: f64,
}

/// A parsed `SPREAD_TEST_FAULTS` value.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub per_network: [FaultRates; MAX_NETWORKS],
    pub seed: Option<u64>,
    /// Datagrams sent earlier than this after the start pass untouched.
    pub after: Duration,
}

fn parse_probability(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{key}={value}: expected a probability between 0 and 1")),
    }
}

fn parse_duration(key: &str, value: &str) -> Result<Duration, String> {
    let (number, unit_micros) = if let Some(n) = value.strip_suffix("us") {
        (n, 1)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1_000)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000_000)
    } else {
        (value, 1_000)
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_micros))
        .map(Duration::from_micros)
        .ok_or_else(|| format!("{key}={value}: expected a duration such as 2ms, 500us or 1s"))
}

impl FaultSpec {
    pub fn parse(text: &str) -> Result<FaultSpec, String> {
        let mut all = FaultRates::default();
        let mut specific: Vec<(usize, &str, &str)> = Vec::new();
        let mut seed = None;
        let mut after = Duration::ZERO;
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (network, setting) = match item.split_once(':') {
                Some((net, setting)) => {
                    let n = net
                        .strip_prefix("net")
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|&n| n < MAX_NETWORKS)
                        .ok_or_else(|| {
                            format!("{item}: expected net0..net{} before ':'", MAX_NETWORKS - 1)
                        })?;
                    (Some(n), setting)
                }
                None => (None, item),
            };
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("{item}: expected key=value"))?;
            match (network, key) {
                (None, "seed") => {
                    seed = Some(value.parse().map_err(|_| format!("{item}: expected a number"))?)
                }
                (None, "after") => after = parse_duration(key, value)?,
                (Some(n), _) => {
                    // Checked now, applied over the unprefixed settings below.
                    Self::set(&mut FaultRates::default(), key, value)?;
                    specific.push((n, key, value));
                }
                (None, _) => Self::set(&mut all, key, value)?,
            }
        }
        let mut per_network = [all; MAX_NETWORKS];
        for (n, key, value) in specific {
            Self::set(&mut per_network[n], key, value)?;
        }
        Ok(FaultSpec {
            per_network,
            seed,
            after,
        })
    }

    fn set(rates: &mut FaultRates, key: &str, value: &str) -> Result<(), String> {
        match key {
            "loss" => rates.loss = parse_probability(key, value)?,
            "dup" => rates.duplicate = parse_probability(key, value)?,
            "reorder" => rates.reorder = parse_probability(key, value)?,
            "delay" => rates.delay = parse_duration(key, value)?,
            _ => {
                return Err(format!(
                    "unknown fault \"{key}\" (loss, dup, delay, reorder, seed, after)"
                ))
            }
        }
        Ok(())
    }
}

/// What the fault layer did, for the daemon's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub dropped: u64,
    pub duplicated: u64,
    pub held_back: u64,
}

/// A copy waiting for its time.
struct Held {
    due: Instant,
    /// Tie-breaker: equal due times leave in the order they were held.
    order: u64,
    to: SocketAddr,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// Decides the fate of each outgoing datagram and keeps the ones held back.
pub struct FaultLayer {
    spec: FaultSpec,
    seed: u64,
    /// When faults begin (`FaultSpec::after` past the layer's making), if not at once.
    faulty_from: Option<Instant>,
    rng: Rng,
    held: BinaryHeap<Reverse<Held>>,
    next_order: u64,
    stats: FaultStats,
}

impl FaultLayer {
    /// The layer `SPREAD_TEST_FAULTS` asks for; `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<FaultLayer>, String> {
        let Some(text) = std::env::var_os(FAULTS_VAR).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let text = text
            .into_string()
            .map_err(|_| format!("{FAULTS_VAR} is not valid UTF-8"))?;
        let spec = FaultSpec::parse(&text).map_err(|e| format!("{FAULTS_VAR}: {e}"))?;
        let seed = spec.seed.unwrap_or_else(clock_seed);
        log::warn!("test faults on outgoing datagrams: {text} (seed {seed})");
        Ok(Some(FaultLayer::new(spec, seed)))
    }

    /// Faults from `spec`, beginning `spec.after` from now.
    pub fn new(spec: FaultSpec, seed: u64) -> FaultLayer {
        FaultLayer {
            faulty_from: (!spec.after.is_zero()).then(|| Instant::now() + spec.after),
            spec,
            seed,
            rng: Rng::new(seed),
            held: BinaryHeap::new(),
            next_order: 0,
            stats: FaultStats::default(),
        }
    }

    /// A layer with the same faults for the endpoint of another network, with random choices
    /// of its own (derived from this layer's seed, so that a run can still be replayed).
    pub fn for_network(&self, network: u8) -> FaultLayer {
        FaultLayer {
            rng: Rng::new(self.seed.wrapping_add(u64::from(network))),
            held: BinaryHeap::new(),
            next_order: 0,
            stats: FaultStats::default(),
            spec: self.spec.clone(),
            ..*self
        }
    }

    /// One datagram for `to` on `network` (< [`MAX_NETWORKS`]) is about to be sent: returns
    /// how many copies to send
    /// now (0, 1 or 2); copies to send later are kept until [`FaultLayer::pop_due`] gives them.
    pub fn admit(&mut self, now: Instant, network: u8, to: SocketAddr, bytes: &[u8]) -> usize {
        if self.faulty_from.is_some_and(|from| now < from) {
            return 1;
        }
        let rates = self.spec.per_network[usize::from(network)];
        if self.rng.chance(rates.loss) {
            self.stats.dropped += 1;
            return 0;
        }
        let copies = if self.rng.chance(rates.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let mut now_copies = 0;
        for _ in 0..copies {
            let mut hold = rates.delay;
            if self.rng.chance(rates.reorder) {
                let most = rates.delay * 4 + Duration::from_millis(5);
                hold += Duration::from_micros(self.rng.between(1, most.as_micros() as u64));
            }
            if hold.is_zero() {
                now_copies += 1;
            } else {
                self.stats.held_back += 1;
                self.held.push(Reverse(Held {
                    due: now + hold,
                    order: self.next_order,
                    to,
                    bytes: bytes.to_vec(),
                }));
                self.next_order += 1;
            }
        }
        now_copies
    }

    /// When the earliest held copy is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.due)
    }

    /// A held copy whose time has come, earliest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        self.held.pop().map(|Reverse(h)| (h.to, h.bytes))
    }

    pub fn stats(&self) -> FaultStats {
        self.stats
    }
}

/// A seed that differs between runs and between daemons started together.
fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.2:4803".parse().unwrap()
    }

    #[test]
    fn parses_global_and_per_network_items() {
        let spec = FaultSpec::parse(
            "loss=0.05, dup=0.01,delay=2ms,reorder=0.02,net1:loss=1,net1:delay=300us,seed=9",
        )
        .unwrap();
        let base = FaultRates {
            loss: 0.05,
            duplicate: 0.01,
            delay: Duration::from_millis(2),
            reorder: 0.02,
        };
        assert_eq!(spec.per_network[0], base);
        assert_eq!(spec.per_network[7], base);
        assert_eq!(
            spec.per_network[1],
            FaultRates {
                loss: 1.0,
                delay: Duration::from_micros(300),
                ..base
            }
        );
        assert_eq!(spec.seed, Some(9));
        // The network-specific item wins whatever the order.
        let spec = FaultSpec::parse("net0:loss=0.5,loss=0.1").unwrap();
        assert_eq!((spec.per_network[0].loss, spec.per_network[1].loss), (0.5, 0.1));
        assert_eq!(
            FaultSpec::parse("delay=3").unwrap().per_network[0].delay,
            Duration::from_millis(3)
        );
        assert_eq!(
            FaultSpec::parse("delay=1s").unwrap().per_network[2].delay,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn rejects_bad_items() {
        for bad in [
            "loss",
            "loss=2",
            "loss=-0.1",
            "dup=x",
            "delay=5h",
            "jitter=1",
            "net8:loss=0.1",
            "eth0:loss=0.1",
            "net0:seed=1",
            "seed=abc",
        ] {
            assert!(FaultSpec::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn no_faults_send_everything_at_once() {
        let mut layer = FaultLayer::new(FaultSpec::parse("").unwrap(), 1);
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(layer.admit(now, 0, addr(), b"x"), 1);
        }
        assert_eq!(layer.next_due(), None);
        assert_eq!(layer.stats(), FaultStats::default());
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let mut layer = FaultLayer::new(FaultSpec::parse("loss=0.2,dup=0.1").unwrap(), 7);
        let now = Instant::now();
        let sent: usize = (0..10_000).map(|_| layer.admit(now, 3, addr(), b"x")).sum();
        let stats = layer.stats();
        assert!((1_800..2_200).contains(&stats.dropped), "{stats:?}");
        assert!((600..1_000).contains(&stats.duplicated), "{stats:?}");
        assert_eq!(sent as u64, 10_000 - stats.dropped + stats.duplicated);
        assert_eq!(layer.next_due(), None);
    }

    #[test]
    fn per_network_rates_apply_to_their_network_only() {
        let mut layer = FaultLayer::new(FaultSpec::parse("net1:loss=1").unwrap(), 3);
        let now = Instant::now();
        assert!((0..100).all(|_| layer.admit(now, 1, addr(), b"x") == 0));
        assert!((0..100).all(|_| layer.admit(now, 0, addr(), b"x") == 1));
    }

    #[test]
    fn delayed_copies_leave_when_due_in_order() {
        let mut layer = FaultLayer::new(FaultSpec::parse("delay=2ms").unwrap(), 5);
        let start = Instant::now();
        for i in 0..3u8 {
            let at = start + Duration::from_micros(u64::from(i));
            assert_eq!(layer.admit(at, 0, addr(), &[i]), 0);
        }
        assert_eq!(layer.next_due(), Some(start + Duration::from_millis(2)));
        assert_eq!(layer.pop_due(start + Duration::from_micros(1999)), None);
        let later = start + Duration::from_millis(3);
        let order: Vec<u8> = std::iter::from_fn(|| {
            layer.pop_due(later).map(|(to, b)| {
                assert_eq!(to, addr());
                b[0]
            })
        })
        .collect();
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(layer.next_due(), None);
        assert_eq!(layer.stats().held_back, 3);
    }

    #[test]
    fn reordering_lets_later_datagrams_overtake() {
        let mut layer = FaultLayer::new(FaultSpec::parse("reorder=0.3,seed=1").unwrap(), 11);
        let start = Instant::now();
        let mut arrived = Vec::new();
        // One datagram every 100 us for 100 ms; collect them in the order they leave.
        for i in 0..1000u32 {
            let now = start + Duration::from_micros(u64::from(i) * 100);
            while let Some((_, b)) = layer.pop_due(now) {
                arrived.push(u32::from_le_bytes(b.try_into().unwrap()));
            }
            if layer.admit(now, 0, addr(), &i.to_le_bytes()) == 1 {
                arrived.push(i);
            }
        }
        while let Some((_, b)) = layer.pop_due(start + Duration::from_secs(1)) {
            arrived.push(u32::from_le_bytes(b.try_into().unwrap()));
        }
        assert_eq!(arrived.len(), 1000, "nothing lost, nothing duplicated");
        let overtaken = arrived.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 100, "only {overtaken} inversions");
        let mut sorted = arrived.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_seed_replays_the_same_fates() {
        let fates = |seed| {
            let mut layer = FaultLayer::new(FaultSpec::parse("loss=0.3,dup=0.3").unwrap(), seed);
            let now = Instant::now();
            (0..200)
                .map(|_| layer.admit(now, 0, addr(), b"x"))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(42), fates(42));
        assert_ne!(fates(42), fates(43));
    }

    #[test]
    fn faults_begin_after_the_given_time() {
        let spec = FaultSpec::parse("loss=1,after=50ms").unwrap();
        assert_eq!(spec.after, Duration::from_millis(50));
        let mut layer = FaultLayer::new(spec, 1);
        let start = Instant::now();
        assert_eq!(layer.admit(start, 0, addr(), b"x"), 1);
        assert_eq!(layer.admit(start + Duration::from_millis(60), 0, addr(), b"x"), 0);
        assert!(FaultSpec::parse("net1:after=1s").is_err());
    }
}
