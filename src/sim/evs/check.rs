//! Extended virtual synchrony, checked on every event a daemon delivers.
//!
//! A daemon's life (one incarnation) is a sequence of configurations: a regular one, then, when
//! it changes, a transitional one and the next regular one. The checker keeps, for each
//! incarnation, what it delivered in its current regular and transitional configurations, and
//! compares across daemons: where every message was ordered (one total order), the member lists,
//! and what daemons that moved together delivered. Causal order is checked across all
//! configurations and lives: no daemon delivers a message after one whose causal past holds it
//! (see [`Causality`] for why dependencies a daemon never delivers are not violations).

use std::collections::HashMap;
use std::fmt;

use crate::membership::Position;
use crate::sim::causal::Causality;
use crate::sim::check::{parse_message, MessageId};
use crate::wire::packet::{RingId, ServiceLevel};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A delivery that is not a message of the simulation, or arrived damaged.
    Corrupt { daemon: usize },
    /// Delivered with another origin or service level than it was sent with.
    Mislabelled { daemon: usize, id: MessageId },
    /// Two daemons delivered one message at different places of the order.
    Order {
        daemon: usize,
        id: MessageId,
        here: Position,
        elsewhere: Position,
    },
    /// Delivered out of its configuration's order, or of a ring that is not the configuration's.
    OutOfConfiguration { daemon: usize, id: MessageId },
    /// Not after the origin's previous message: duplicate or inversion, or a gap within one
    /// configuration.
    Fifo {
        daemon: usize,
        last: Option<u64>,
        got: MessageId,
    },
    /// Delivered after a message whose causal past holds it: the daemon had already delivered
    /// messages whose pasts hold `got.origin`'s first `covered` messages.
    Causal {
        daemon: usize,
        got: MessageId,
        covered: u64,
    },
    /// SAFE delivered while a member of its configuration did not have it.
    SafeTooEarly {
        daemon: usize,
        id: MessageId,
        missing_at: usize,
    },
    /// Daemons disagree on the members of a regular configuration.
    Members { daemon: usize, ring: RingId },
    /// A configuration change without a transitional configuration, or one that does not fit.
    Sequence { daemon: usize, ring: RingId },
    /// Daemons moving together from one configuration to the next delivered different
    /// messages in the old one.
    VirtualSynchrony { daemon: usize, from: RingId, to: RingId },
    /// A datagram a daemon produced did not decode.
    Undecodable { daemon: usize },
    /// Once faults stopped, the daemons did not settle into one configuration that delivered
    /// everything.
    NotLive { detail: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Violation {}

/// What one incarnation of a daemon delivered in its current configurations.
#[derive(Debug, Clone, Default)]
struct Life {
    regular: Option<RingId>,
    in_regular: Vec<MessageId>,
    /// Members of the transitional configuration since its event, and what it delivered there.
    transitional: Option<Vec<u32>>,
    in_transitional: Vec<MessageId>,
    last_position: Option<Position>,
    /// Last counter delivered per origin, and in which configuration.
    last_from: Vec<Option<(u64, u64)>>,
    /// Counts configurations of this life (to tell one from the next).
    epoch: u64,
}

/// What daemons moving from one configuration to the next delivered in the old one.
type Passage = (Vec<MessageId>, Vec<u32>, Vec<MessageId>);

#[derive(Debug)]
pub struct Checker {
    ids: Vec<u32>,
    lives: Vec<Life>,
    causality: Causality,
    positions: HashMap<(usize, u64), Position>,
    members: HashMap<RingId, Vec<u32>>,
    passages: HashMap<(RingId, RingId), Passage>,
    deliveries: usize,
}

impl Checker {
    /// `ids[i]` is the id of daemon index `i`.
    pub fn new(ids: Vec<u32>) -> Checker {
        let n = ids.len();
        Checker {
            lives: vec![Life::default(); n],
            causality: Causality::new(n),
            ids,
            positions: HashMap::new(),
            members: HashMap::new(),
            passages: HashMap::new(),
            deliveries: 0,
        }
    }

    pub fn deliveries(&self) -> usize {
        self.deliveries
    }

    /// A daemon (re)starts: a new life.
    pub fn restart(&mut self, daemon: usize) {
        self.causality.restart(daemon);
        self.lives[daemon] = Life {
            last_from: vec![None; self.ids.len()],
            ..Life::default()
        };
    }

    /// The regular configuration daemon `daemon` is in, if any.
    pub fn current(&self, daemon: usize) -> Option<RingId> {
        self.lives[daemon].regular
    }

    /// Whether the daemon is between a transitional configuration and the next regular one.
    pub fn in_transition(&self, daemon: usize) -> bool {
        self.lives[daemon].transitional.is_some()
    }

    pub fn members(&self, ring: RingId) -> Option<&[u32]> {
        self.members.get(&ring).map(Vec::as_slice)
    }

    /// Messages the daemon delivered in its current regular configuration.
    pub fn delivered_in_regular(&self, daemon: usize) -> &[MessageId] {
        &self.lives[daemon].in_regular
    }

    fn index_of(&self, id: u32) -> usize {
        self.ids.iter().position(|&d| d == id).unwrap_or(usize::MAX)
    }

    /// Daemon `id.origin` submits `id`, after what it delivered so far.
    pub fn submitted(&mut self, id: MessageId) {
        self.causality.submitted(id);
    }

    /// Checks one delivered message. `has(i, position)` tells whether daemon index `i` has the
    /// packet (as far as the simulation can know; crashed daemons count as having it).
    pub fn deliver(
        &mut self,
        daemon: usize,
        origin: u32,
        service: ServiceLevel,
        message: &[u8],
        at: Position,
        has: impl Fn(usize, Position) -> bool,
    ) -> Result<MessageId, Violation> {
        let (id, sent_service) = parse_message(message).ok_or(Violation::Corrupt { daemon })?;
        if self.ids.get(id.origin) != Some(&origin) || service != sent_service {
            return Err(Violation::Mislabelled { daemon, id });
        }
        match self.positions.get(&(id.origin, id.counter)) {
            Some(&elsewhere) if elsewhere != at => {
                return Err(Violation::Order {
                    daemon,
                    id,
                    here: at,
                    elsewhere,
                })
            }
            Some(_) => {}
            None => {
                self.positions.insert((id.origin, id.counter), at);
            }
        }
        let life = &mut self.lives[daemon];
        let last = life.last_from[id.origin];
        let fifo = match last {
            None => true,
            Some((counter, epoch)) if epoch == life.epoch => id.counter == counter + 1,
            Some((counter, _)) => id.counter > counter,
        };
        if !fifo {
            return Err(Violation::Fifo {
                daemon,
                last: last.map(|(c, _)| c),
                got: id,
            });
        }
        // Before the configuration's order: an inversion of causally related messages is
        // reported as such.
        let covered = self.causality.covered(daemon, id.origin);
        if id.counter < covered {
            return Err(Violation::Causal {
                daemon,
                got: id,
                covered,
            });
        }
        let in_order = life.regular == Some(at.ring)
            && !matches!(life.last_position, Some(last) if last.ring == at.ring && last.seq > at.seq);
        if !in_order {
            return Err(Violation::OutOfConfiguration { daemon, id });
        }
        life.last_position = Some(at);
        life.last_from[id.origin] = Some((id.counter, life.epoch));
        self.causality.delivered(daemon, id);
        let holders: Vec<u32> = match &life.transitional {
            Some(members) => {
                life.in_transitional.push(id);
                members.clone()
            }
            None => {
                life.in_regular.push(id);
                self.members.get(&at.ring).cloned().unwrap_or_default()
            }
        };
        self.deliveries += 1;
        if service.is_safe() {
            for m in holders {
                let i = self.index_of(m);
                if !has(i, at) {
                    return Err(Violation::SafeTooEarly {
                        daemon,
                        id,
                        missing_at: i,
                    });
                }
            }
        }
        Ok(id)
    }

    pub fn transitional(&mut self, daemon: usize, members: &[u32]) -> Result<(), Violation> {
        let life = &mut self.lives[daemon];
        let Some(ring) = life.regular else {
            return Err(Violation::Sequence {
                daemon,
                ring: RingId { rep: 0, seq: 0 },
            });
        };
        let me = self.ids[daemon];
        let old = self.members.get(&ring).map(Vec::as_slice).unwrap_or(&[]);
        if life.transitional.is_some() || !members.contains(&me) || members.iter().any(|m| !old.contains(m)) {
            return Err(Violation::Sequence { daemon, ring });
        }
        life.transitional = Some(members.to_vec());
        life.epoch += 1;
        Ok(())
    }

    pub fn regular(
        &mut self,
        daemon: usize,
        ring: RingId,
        members: &[(u32, RingId)],
    ) -> Result<(), Violation> {
        let ids: Vec<u32> = members.iter().map(|&(m, _)| m).collect();
        let me = self.ids[daemon];
        match self.members.get(&ring) {
            Some(known) if *known != ids => return Err(Violation::Members { daemon, ring }),
            Some(_) => {}
            None => {
                self.members.insert(ring, ids.clone());
            }
        }
        let life = &mut self.lives[daemon];
        let previous = members.iter().find(|&&(m, _)| m == me).map(|&(_, p)| p);
        let Some(previous) = previous else {
            return Err(Violation::Members { daemon, ring });
        };
        match life.regular {
            None => {
                if life.epoch != 0 {
                    return Err(Violation::Sequence { daemon, ring });
                }
            }
            Some(old) => {
                let Some(transitional) = life.transitional.take() else {
                    return Err(Violation::Sequence { daemon, ring });
                };
                // The transitional members are exactly those of the new configuration coming
                // from the old one.
                let together: Vec<u32> = members
                    .iter()
                    .filter(|&&(_, p)| p == old)
                    .map(|&(m, _)| m)
                    .collect();
                if previous != old || together != transitional {
                    return Err(Violation::Sequence { daemon, ring });
                }
                let passage = (
                    std::mem::take(&mut life.in_regular),
                    transitional,
                    std::mem::take(&mut life.in_transitional),
                );
                match self.passages.get(&(old, ring)) {
                    Some(known) if *known != passage => {
                        return Err(Violation::VirtualSynchrony {
                            daemon,
                            from: old,
                            to: ring,
                        })
                    }
                    Some(_) => {}
                    None => {
                        self.passages.insert((old, ring), passage);
                    }
                }
            }
        }
        let life = &mut self.lives[daemon];
        life.regular = Some(ring);
        life.in_regular.clear();
        life.in_transitional.clear();
        life.last_position = None;
        life.epoch += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::check::make_message;

    fn ring(seq: u64) -> RingId {
        RingId { rep: 5, seq }
    }

    fn msg(origin: usize, counter: u64) -> Vec<u8> {
        make_message(MessageId { origin, counter }, ServiceLevel::Agreed, 20)
    }

    fn at(r: u64, seq: u64) -> Position {
        Position { ring: ring(r), seq }
    }

    #[test]
    fn accepts_a_clean_history_and_catches_each_violation() {
        let all = |_: usize, _: Position| true;
        let mut c = Checker::new(vec![5, 6]);
        c.restart(0);
        c.restart(1);
        let first = [(5, RingId { rep: 5, seq: 0 }), (6, RingId { rep: 6, seq: 0 })];
        c.regular(0, ring(1), &first).unwrap();
        c.regular(1, ring(1), &first).unwrap();
        c.deliver(0, 5, ServiceLevel::Agreed, &msg(0, 0), at(1, 1), all)
            .unwrap();
        assert!(matches!(
            c.deliver(1, 5, ServiceLevel::Agreed, &msg(0, 0), at(1, 2), all),
            Err(Violation::Order { .. })
        ));
        assert!(matches!(
            c.deliver(0, 5, ServiceLevel::Agreed, &msg(0, 2), at(1, 3), all),
            Err(Violation::Fifo { .. })
        ));
        assert!(matches!(
            c.deliver(0, 6, ServiceLevel::Agreed, &msg(0, 1), at(1, 3), all),
            Err(Violation::Mislabelled { .. })
        ));
        assert!(matches!(
            c.deliver(0, 5, ServiceLevel::Agreed, &msg(0, 1), at(2, 3), all),
            Err(Violation::OutOfConfiguration { .. })
        ));
        let safe = make_message(
            MessageId {
                origin: 1,
                counter: 0,
            },
            ServiceLevel::Safe,
            20,
        );
        assert!(matches!(
            c.deliver(0, 6, ServiceLevel::Safe, &safe, at(1, 4), |i, _| i == 0),
            Err(Violation::SafeTooEarly { missing_at: 1, .. })
        ));

        // Daemon 0 delivered (0,0) in ring 1; daemon 1 moves on with it without it.
        c.transitional(0, &[5, 6]).unwrap();
        c.transitional(1, &[5, 6]).unwrap();
        let next = [(5, ring(1)), (6, ring(1))];
        c.regular(0, ring(2), &next).unwrap();
        assert!(matches!(
            c.regular(1, ring(2), &next),
            Err(Violation::VirtualSynchrony { .. })
        ));
        assert!(matches!(
            c.regular(1, ring(2), &[(6, ring(1))]),
            Err(Violation::Members { .. })
        ));
        let mut c = Checker::new(vec![5]);
        c.restart(0);
        c.regular(0, ring(1), &[(5, ring(0))]).unwrap();
        assert!(matches!(
            c.regular(0, ring(2), &[(5, ring(1))]),
            Err(Violation::Sequence { .. })
        ));
    }

    #[test]
    fn catches_a_causal_inversion_and_accepts_a_dependency_never_delivered() {
        let id = |origin, counter| MessageId { origin, counter };
        let all = |_: usize, _: Position| true;
        let agreed = ServiceLevel::Agreed;
        let first = [
            (5, RingId { rep: 5, seq: 0 }),
            (6, RingId { rep: 6, seq: 0 }),
            (7, RingId { rep: 7, seq: 0 }),
        ];
        let start = || {
            let mut c = Checker::new(vec![5, 6, 7]);
            for d in 0..3 {
                c.restart(d);
                c.regular(d, ring(1), &first).unwrap();
            }
            c.submitted(id(0, 0));
            // Daemon 1 sends (1, 0) after delivering (0, 0).
            c.deliver(1, 5, agreed, &msg(0, 0), at(1, 1), all).unwrap();
            c.submitted(id(1, 0));
            c
        };

        // Daemon 2 delivers (1, 0) at its place in the order, then (0, 0) late.
        let mut c = start();
        c.deliver(2, 6, agreed, &msg(1, 0), at(1, 2), all).unwrap();
        assert_eq!(
            c.deliver(2, 5, agreed, &msg(0, 0), at(1, 1), all),
            Err(Violation::Causal {
                daemon: 2,
                got: id(0, 0),
                covered: 1
            })
        );

        // Daemon 2 never gets (0, 0) (say its transitional configuration could not recover it)
        // and moves on to a configuration of its own: no violation.
        let mut c = start();
        c.deliver(0, 5, agreed, &msg(0, 0), at(1, 1), all).unwrap();
        c.deliver(0, 6, agreed, &msg(1, 0), at(1, 2), all).unwrap();
        c.transitional(2, &[7]).unwrap();
        c.deliver(2, 6, agreed, &msg(1, 0), at(1, 2), all).unwrap();
        c.regular(2, ring(2), &[(7, ring(1))]).unwrap();
        c.submitted(id(2, 0));
        c.deliver(2, 7, agreed, &msg(2, 0), at(2, 1), all).unwrap();
    }
}
