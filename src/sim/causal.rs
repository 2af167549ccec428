//! Causal order, checked on every delivery.
//!
//! The causal past of a message is what its origin had delivered when it submitted it, the
//! pasts of those messages in turn, and the origin's own earlier messages. Per origin such a
//! past is a prefix of that origin's counters, so it is kept as a vector: for each origin, how
//! many of its first messages are in the past.
//!
//! Two rules use these pasts. On a fixed ring every daemon delivers a gapless prefix of one
//! order, so a message's whole past must be delivered before it ([`Causality::past`]). Under
//! extended virtual synchrony a daemon may legitimately never deliver a dependency (a message
//! may be delivered in a transitional configuration after a gap no member could fill, and a
//! message of another partition is never delivered there at all); such a dependency can never
//! be delivered later either, as it belongs to a configuration the daemon has left or never
//! joined. So the rule there is that no daemon delivers a message after one whose causal past
//! holds it ([`Causality::covered`]).

use std::collections::HashMap;

use super::check::MessageId;

#[derive(Debug, Clone)]
pub struct Causality {
    /// Per daemon, per origin: how many of the origin's first messages are in the causal past of
    /// what the daemon delivered, the delivered messages included.
    clocks: Vec<Vec<u64>>,
    /// The causal past of each submitted message (by origin and counter).
    pasts: HashMap<(usize, u64), Vec<u64>>,
}

impl Causality {
    pub fn new(daemons: usize) -> Causality {
        Causality {
            clocks: vec![vec![0; daemons]; daemons],
            pasts: HashMap::new(),
        }
    }

    /// Daemon `id.origin` submits `id`: its past is what that daemon delivered so far.
    pub fn submitted(&mut self, id: MessageId) {
        let mut past = self.clocks[id.origin].clone();
        past[id.origin] = past[id.origin].max(id.counter);
        self.pasts.insert((id.origin, id.counter), past);
    }

    /// The causal past of `id` (per origin, how many of its first messages), if it was submitted.
    pub fn past(&self, id: MessageId) -> Option<&[u64]> {
        self.pasts.get(&(id.origin, id.counter)).map(Vec::as_slice)
    }

    /// How many of `origin`'s first messages are in the past of what `daemon` delivered (or
    /// were delivered there): delivering one of them now would invert causal order.
    pub fn covered(&self, daemon: usize, origin: usize) -> u64 {
        self.clocks[daemon][origin]
    }

    /// Daemon `daemon` delivers `id`.
    pub fn delivered(&mut self, daemon: usize, id: MessageId) {
        let clock = &mut self.clocks[daemon];
        if let Some(past) = self.pasts.get(&(id.origin, id.counter)) {
            for (c, &p) in clock.iter_mut().zip(past) {
                *c = (*c).max(p);
            }
        }
        clock[id.origin] = clock[id.origin].max(id.counter + 1);
    }

    /// The daemon starts a new life with nothing delivered.
    pub fn restart(&mut self, daemon: usize) {
        self.clocks[daemon].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: usize, counter: u64) -> MessageId {
        MessageId { origin, counter }
    }

    #[test]
    fn pasts_follow_deliveries_transitively_and_lives_start_empty() {
        let mut c = Causality::new(3);
        c.submitted(id(0, 0));
        assert_eq!(c.past(id(0, 0)), Some(&[0, 0, 0][..]));
        c.delivered(1, id(0, 0));
        c.submitted(id(1, 0));
        assert_eq!(c.past(id(1, 0)), Some(&[1, 0, 0][..]));
        // (2, 0) follows (1, 0), hence (0, 0) too, without daemon 2 delivering (0, 0).
        c.delivered(2, id(1, 0));
        assert_eq!(c.covered(2, 0), 1);
        c.submitted(id(2, 0));
        assert_eq!(c.past(id(2, 0)), Some(&[1, 1, 0][..]));
        // The origin's own earlier messages precede its later ones.
        c.submitted(id(2, 1));
        assert_eq!(c.past(id(2, 1)), Some(&[1, 1, 1][..]));
        c.delivered(0, id(2, 1));
        assert_eq!((0..3).map(|o| c.covered(0, o)).collect::<Vec<_>>(), [1, 1, 2]);
        assert_eq!(c.past(id(0, 1)), None);
        c.restart(0);
        assert_eq!((0..3).map(|o| c.covered(0, o)).sum::<u64>(), 0);
    }
}
