//! The simulator's messages and the invariants checked on every delivery.
//!
//! A message carries its origin, its per-origin counter and its service level, then filler
//! bytes derived from them, so that a receiver can tell exactly which message it got and that
//! it arrived intact.

use std::fmt;

use super::causal::Causality;
use crate::ring::Delivery;
use crate::rng::Rng;
use crate::wire::packet::ServiceLevel;

const MESSAGE_HEADER_LEN: usize = 13;

/// Which message: the index of its origin daemon and its counter there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageId {
    pub origin: usize,
    pub counter: u64,
}

/// Builds message `id` of `len` bytes (at least the 13 bytes of its identification).
pub fn make_message(id: MessageId, service: ServiceLevel, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len.max(MESSAGE_HEADER_LEN));
    m.extend_from_slice(&(id.origin as u32).to_be_bytes());
    m.extend_from_slice(&id.counter.to_be_bytes());
    m.push(service as u8);
    let mut i = 0u64;
    m.resize_with(len.max(MESSAGE_HEADER_LEN), || {
        i += 1;
        filler(id, i)
    });
    m
}

/// Message `id` with a service level and a length drawn from `rng`: SAFE with chance
/// `safe_ratio` (else any level), `2_000..=max_large` bytes (fragmented) with chance
/// `large_ratio` (else up to 300).
pub fn random_message(
    rng: &mut Rng,
    id: MessageId,
    safe_ratio: f64,
    large_ratio: f64,
    max_large: u64,
) -> (ServiceLevel, Vec<u8>) {
    let service = if rng.chance(safe_ratio) {
        ServiceLevel::Safe
    } else {
        ServiceLevel::ALL[rng.below(5) as usize]
    };
    let len = if rng.chance(large_ratio) {
        rng.between(2_000, max_large)
    } else {
        rng.between(0, 300)
    };
    (service, make_message(id, service, len as usize))
}

fn filler(id: MessageId, i: u64) -> u8 {
    (id.counter
        .wrapping_mul(31)
        .wrapping_add(id.origin as u64 * 7)
        .wrapping_add(i)
        % 251) as u8
}

/// Reads a message back; `None` if it is not one [`make_message`] built.
pub fn parse_message(m: &[u8]) -> Option<(MessageId, ServiceLevel)> {
    let header = m.get(..MESSAGE_HEADER_LEN)?;
    let id = MessageId {
        origin: u32::from_be_bytes(header[0..4].try_into().ok()?) as usize,
        counter: u64::from_be_bytes(header[4..12].try_into().ok()?),
    };
    let service = ServiceLevel::from_byte(header[12])?;
    let intact = m[MESSAGE_HEADER_LEN..]
        .iter()
        .zip(1u64..)
        .all(|(&b, i)| b == filler(id, i));
    intact.then_some((id, service))
}

/// A broken invariant, with what is needed to understand it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A delivery that is not a message of the simulation, or arrived damaged.
    Corrupt { daemon: usize, seq: u64 },
    /// Delivered with another origin or service level than it was sent with.
    Mislabelled { daemon: usize, id: MessageId },
    /// A daemon's n-th delivery differs from another daemon's n-th delivery.
    Order {
        daemon: usize,
        position: usize,
        expected: MessageId,
        got: MessageId,
    },
    /// Not the next message of its origin: a duplicate, a gap or a FIFO inversion.
    Fifo {
        daemon: usize,
        expected: MessageId,
        got: MessageId,
    },
    /// Delivered before `missing`, a message of its causal past.
    Causal {
        daemon: usize,
        got: MessageId,
        missing: MessageId,
    },
    /// SAFE delivered while some daemon did not have every packet up to it.
    SafeTooEarly {
        daemon: usize,
        seq: u64,
        missing_at: usize,
    },
    /// A datagram a ring produced did not decode.
    Undecodable { daemon: usize },
    /// Not everything was delivered by the end of the run.
    Stalled {
        daemon: usize,
        delivered: usize,
        expected: usize,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Corrupt { daemon, seq } => write!(f, "daemon {daemon}: corrupt delivery at seq {seq}"),
            Violation::Mislabelled { daemon, id } => {
                write!(
                    f,
                    "daemon {daemon}: {id:?} delivered with the wrong origin or service"
                )
            }
            Violation::Order {
                daemon,
                position,
                expected,
                got,
            } => {
                write!(
                    f,
                    "daemon {daemon}: delivery #{position} is {got:?}, others delivered {expected:?}"
                )
            }
            Violation::Fifo {
                daemon,
                expected,
                got,
            } => {
                write!(
                    f,
                    "daemon {daemon}: expected {expected:?} next from its origin, got {got:?}"
                )
            }
            Violation::Causal { daemon, got, missing } => {
                write!(
                    f,
                    "daemon {daemon}: {got:?} delivered before {missing:?} of its causal past"
                )
            }
            Violation::SafeTooEarly {
                daemon,
                seq,
                missing_at,
            } => {
                write!(
                    f,
                    "daemon {daemon}: SAFE seq {seq} delivered while daemon {missing_at} lacks it"
                )
            }
            Violation::Undecodable { daemon } => write!(f, "daemon {daemon} sent an undecodable datagram"),
            Violation::Stalled {
                daemon,
                delivered,
                expected,
            } => {
                write!(f, "daemon {daemon}: delivered {delivered} of {expected} messages")
            }
        }
    }
}

impl std::error::Error for Violation {}

/// Delivery invariants across all daemons: one total order, each origin's messages once and in
/// order, causal order (every message of a message's causal past delivered before it: on a
/// fixed ring nothing is ever skipped, see [`Causality`]), intact, SAFE only when every daemon has everything up to it.
#[derive(Debug)]
pub struct Checker {
    ids: Vec<u32>,
    causality: Causality,
    /// The longest delivery sequence seen; every daemon's must be a prefix of it.
    reference: Vec<MessageId>,
    delivered: Vec<usize>,
    /// Next counter each daemon expects from each origin.
    next_counter: Vec<Vec<u64>>,
}

impl Checker {
    /// `ids[i]` is the daemon id of daemon index `i`.
    pub fn new(ids: Vec<u32>) -> Checker {
        let n = ids.len();
        Checker {
            ids,
            causality: Causality::new(n),
            reference: Vec::new(),
            delivered: vec![0; n],
            next_counter: vec![vec![0; n]; n],
        }
    }

    /// Daemon `id.origin` submits `id`, after what it delivered so far.
    pub fn submitted(&mut self, id: MessageId) {
        self.causality.submitted(id);
    }

    /// Checks one delivery at `daemon`; `arus[i]` is daemon i's all-received mark now.
    /// Returns which message it was.
    pub fn deliver(&mut self, daemon: usize, d: &Delivery<'_>, arus: &[u64]) -> Result<MessageId, Violation> {
        let (id, service) = parse_message(d.message).ok_or(Violation::Corrupt { daemon, seq: d.seq })?;
        if self.ids.get(id.origin) != Some(&d.origin) || service != d.service {
            return Err(Violation::Mislabelled { daemon, id });
        }
        let next = &mut self.next_counter[daemon][id.origin];
        if id.counter != *next {
            let expected = MessageId {
                origin: id.origin,
                counter: *next,
            };
            return Err(Violation::Fifo {
                daemon,
                expected,
                got: id,
            });
        }
        *next += 1;
        if let Some(past) = self.causality.past(id) {
            let delivered = &self.next_counter[daemon];
            if let Some(origin) = (0..past.len()).find(|&o| delivered[o] < past[o]) {
                let missing = MessageId {
                    origin,
                    counter: delivered[origin],
                };
                return Err(Violation::Causal {
                    daemon,
                    got: id,
                    missing,
                });
            }
        }
        self.causality.delivered(daemon, id);
        let position = self.delivered[daemon];
        match self.reference.get(position) {
            Some(&expected) if expected != id => {
                return Err(Violation::Order {
                    daemon,
                    position,
                    expected,
                    got: id,
                })
            }
            Some(_) => {}
            None => self.reference.push(id),
        }
        self.delivered[daemon] += 1;
        if service.is_safe() {
            if let Some(missing_at) = arus.iter().position(|&aru| aru < d.seq) {
                return Err(Violation::SafeTooEarly {
                    daemon,
                    seq: d.seq,
                    missing_at,
                });
            }
        }
        Ok(id)
    }

    pub fn delivered(&self, daemon: usize) -> usize {
        self.delivered[daemon]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(origin: usize, counter: u64) -> MessageId {
        MessageId { origin, counter }
    }

    fn check(
        c: &mut Checker,
        daemon: usize,
        seq: u64,
        m: &[u8],
        service: ServiceLevel,
        arus: &[u64],
    ) -> Result<MessageId, Violation> {
        let origin = parse_message(m).map_or(0, |(id, _)| c.ids[id.origin]);
        c.deliver(
            daemon,
            &Delivery {
                seq,
                origin,
                service,
                message: m,
            },
            arus,
        )
    }

    #[test]
    fn messages_round_trip_and_detect_damage() {
        let m = make_message(id(2, 40), ServiceLevel::Safe, 1000);
        assert_eq!(m.len(), 1000);
        assert_eq!(parse_message(&m), Some((id(2, 40), ServiceLevel::Safe)));
        assert_eq!(
            make_message(id(0, 0), ServiceLevel::Fifo, 0).len(),
            MESSAGE_HEADER_LEN
        );
        let mut bad = m.clone();
        bad[500] ^= 1;
        assert_eq!(parse_message(&bad), None);
        assert_eq!(parse_message(&m[..5]), None);
    }

    #[test]
    fn catches_each_kind_of_violation() {
        let agreed = ServiceLevel::Agreed;
        let all = [100, 100];
        let m00 = make_message(id(0, 0), agreed, 20);
        let m01 = make_message(id(0, 1), agreed, 20);
        let m10 = make_message(id(1, 0), agreed, 20);

        let mut c = Checker::new(vec![5, 6]);
        assert_eq!(check(&mut c, 0, 1, &m00, agreed, &all), Ok(id(0, 0)));
        assert_eq!(check(&mut c, 0, 2, &m01, agreed, &all), Ok(id(0, 1)));
        assert!(matches!(
            check(&mut c, 1, 2, &m10, agreed, &all),
            Err(Violation::Order { position: 0, .. })
        ));
        assert!(
            matches!(
                check(&mut c, 0, 3, &m00, agreed, &all),
                Err(Violation::Fifo { .. })
            ),
            "duplicate"
        );

        let mut c = Checker::new(vec![5, 6]);
        assert!(
            matches!(
                check(&mut c, 0, 1, &m01, agreed, &all),
                Err(Violation::Fifo { .. })
            ),
            "gap"
        );
        assert!(matches!(
            check(&mut c, 0, 1, &m00, ServiceLevel::Safe, &all),
            Err(Violation::Mislabelled { .. })
        ));
        assert!(matches!(
            check(&mut c, 0, 1, b"junk", agreed, &all),
            Err(Violation::Corrupt { .. })
        ));

        let safe = make_message(id(1, 0), ServiceLevel::Safe, 20);
        let mut c = Checker::new(vec![5, 6]);
        assert_eq!(
            check(&mut c, 0, 7, &safe, ServiceLevel::Safe, &[7, 6]),
            Err(Violation::SafeTooEarly {
                daemon: 0,
                seq: 7,
                missing_at: 1
            })
        );
        let mut c = Checker::new(vec![5, 6]);
        assert_eq!(
            check(&mut c, 0, 7, &safe, ServiceLevel::Safe, &[7, 7]),
            Ok(id(1, 0))
        );
        assert_eq!(c.delivered(0), 1);
    }

    #[test]
    fn catches_a_causal_inversion_and_accepts_a_legitimate_history() {
        let agreed = ServiceLevel::Agreed;
        let all = [100, 100, 100];
        let m00 = make_message(id(0, 0), agreed, 20);
        let m10 = make_message(id(1, 0), agreed, 20);
        let m20 = make_message(id(2, 0), agreed, 20);

        // Daemon 1 sends (1, 0) after delivering (0, 0); daemon 2 gets them inverted.
        let mut c = Checker::new(vec![5, 6, 7]);
        c.submitted(id(0, 0));
        assert_eq!(check(&mut c, 1, 1, &m00, agreed, &all), Ok(id(0, 0)));
        c.submitted(id(1, 0));
        assert_eq!(
            check(&mut c, 2, 2, &m10, agreed, &all),
            Err(Violation::Causal {
                daemon: 2,
                got: id(1, 0),
                missing: id(0, 0)
            })
        );

        // (2, 0) is concurrent with both: every daemon may deliver it anywhere in the order.
        let mut c = Checker::new(vec![5, 6, 7]);
        c.submitted(id(0, 0));
        c.submitted(id(2, 0));
        assert_eq!(check(&mut c, 1, 1, &m20, agreed, &all), Ok(id(2, 0)));
        assert_eq!(check(&mut c, 1, 2, &m00, agreed, &all), Ok(id(0, 0)));
        c.submitted(id(1, 0));
        for daemon in 0..3 {
            let start = if daemon == 1 { 2 } else { 0 };
            for (seq, m) in [&m20, &m00, &m10].into_iter().enumerate().skip(start) {
                assert!(check(&mut c, daemon, seq as u64 + 1, m, agreed, &all).is_ok());
            }
        }
    }
}
