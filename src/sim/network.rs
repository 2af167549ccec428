//! A simulated network: datagrams arrive after a delay, and may be lost, duplicated or
//! overtaken by later ones, as the scenario's faults say.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::ring::Time;
use crate::rng::Rng;

/// Fault rates, per datagram copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    /// Chance of an extra delay of up to ten latencies, so that later datagrams overtake it.
    pub reorder: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
    };
}

/// Something due at a point of simulated time.
#[derive(Debug)]
pub enum Event {
    Datagram {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    /// Daemon `daemon` submits its next message.
    Submit {
        daemon: usize,
    },
}

#[derive(Debug)]
struct Scheduled {
    time: Time,
    /// Insertion order: ties at one time go first-in first-out, whatever the heap does.
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.order) == (other.time, other.order)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: the heap pops the earliest.
        (other.time, other.order).cmp(&(self.time, self.order))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub delayed: u64,
}

#[derive(Debug)]
pub struct Network {
    queue: BinaryHeap<Scheduled>,
    next_order: u64,
    latency: Duration,
    jitter: Duration,
    pub stats: NetworkStats,
}

impl Network {
    pub fn new(latency: Duration, jitter: Duration) -> Network {
        Network {
            queue: BinaryHeap::new(),
            next_order: 0,
            latency,
            jitter,
            stats: NetworkStats::default(),
        }
    }

    /// Datagrams sent from now on take `latency` plus up to `jitter` (those on their way keep
    /// their arrival time).
    pub fn set_delay(&mut self, latency: Duration, jitter: Duration) {
        self.latency = latency;
        self.jitter = jitter;
    }

    pub fn schedule(&mut self, time: Time, event: Event) {
        self.queue.push(Scheduled {
            time,
            order: self.next_order,
            event,
        });
        self.next_order += 1;
    }

    /// Puts one copy of a datagram on the wire, subject to `faults`.
    pub fn send(&mut self, rng: &mut Rng, now: Time, faults: &Faults, from: usize, to: usize, bytes: &[u8]) {
        self.stats.sent += 1;
        if rng.chance(faults.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if rng.chance(faults.duplicate) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let mut delay =
                self.latency + Duration::from_micros(rng.below(self.jitter.as_micros() as u64 + 1));
            if rng.chance(faults.reorder) {
                self.stats.delayed += 1;
                delay += Duration::from_micros(rng.below(10 * self.latency.as_micros() as u64 + 1));
            }
            self.schedule(
                now + delay,
                Event::Datagram {
                    from,
                    to,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    pub fn next_time(&self) -> Option<Time> {
        self.queue.peek().map(|s| s.time)
    }

    pub fn pop(&mut self) -> Option<(Time, Event)> {
        self.queue.pop().map(|s| (s.time, s.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_time_order_and_applies_faults() {
        let mut net = Network::new(Duration::from_micros(100), Duration::ZERO);
        let mut rng = Rng::new(3);
        net.schedule(Time::from_micros(50), Event::Submit { daemon: 1 });
        net.schedule(Time::from_micros(50), Event::Submit { daemon: 2 });
        net.send(&mut rng, Time::ZERO, &Faults::NONE, 0, 1, b"x");
        let order: Vec<Time> = std::iter::from_fn(|| net.pop().map(|(t, _)| t)).collect();
        assert_eq!(order, [50, 50, 100].map(Time::from_micros));

        let lossy = Faults {
            loss: 0.5,
            duplicate: 0.5,
            reorder: 0.5,
        };
        for _ in 0..1000 {
            net.send(&mut rng, Time::ZERO, &lossy, 0, 1, b"x");
        }
        let s = net.stats;
        assert_eq!(s.sent, 1001);
        assert!(
            (400..600).contains(&s.lost) && s.duplicated > 150 && s.delayed > 200,
            "{s:?}"
        );
        let arrived = std::iter::from_fn(|| net.pop()).count() as u64;
        assert_eq!(arrived, 1000 - s.lost + s.duplicated);
    }
}
