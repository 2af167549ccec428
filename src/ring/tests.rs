//! Rules of the ring checked on small hand-driven rings (the simulator covers random faults).

use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::config::Options;
use crate::wire::packet::{self, RingId};

const HASH: u32 = 0x1234_5678;
const RING: RingId = RingId { rep: 10, seq: 3 };

/// Which datagrams the test network drops: (from index, to index, datagram).
type DropRule = Box<dyn FnMut(usize, usize, &[u8]) -> bool>;

/// Daemons 10, 11, 12, ... with a lossless, in-order network that the test can make drop.
struct Harness {
    rings: Vec<Ring>,
    ids: Vec<u32>,
    now: Time,
    in_flight: VecDeque<(usize, usize, Vec<u8>)>,
    delivered: Vec<Vec<(u32, ServiceLevel, Vec<u8>)>>,
    drop: DropRule,
    lost: Vec<bool>,
    out: Outputs,
}

impl Harness {
    fn new(n: usize, accelerated: bool) -> Harness {
        let mut params = Params::from_options(&Options::new());
        params.accelerated_ring = accelerated;
        params.mtu = 300;
        let ids: Vec<u32> = (0..n as u32).map(|i| 10 + i).collect();
        let rings = ids
            .iter()
            .map(|&me| {
                let setup = Setup {
                    me,
                    members: ids.clone(),
                    ring: RING,
                    config_hash: HASH,
                    network: 0,
                };
                Ring::new(setup, params.clone()).unwrap()
            })
            .collect();
        let mut h = Harness {
            rings,
            ids,
            now: Time::ZERO,
            in_flight: VecDeque::new(),
            delivered: vec![Vec::new(); n],
            drop: Box::new(|_, _, _| false),
            lost: vec![false; n],
            out: Outputs::new(),
        };
        for i in 0..n {
            h.call(i, |ring, now, out| ring.start(now, out));
        }
        h
    }

    /// Runs one call on daemon `i` and routes what it produced.
    fn call(&mut self, i: usize, f: impl FnOnce(&mut Ring, Time, &mut Outputs)) {
        self.out.clear();
        f(&mut self.rings[i], self.now, &mut self.out);
        for (to, bytes) in self.out.sends() {
            let targets: Vec<usize> = match to {
                Destination::All => (0..self.ids.len()).filter(|&j| j != i).collect(),
                Destination::Daemon(id) => vec![self.ids.iter().position(|&d| d == id).unwrap()],
            };
            for j in targets {
                self.in_flight.push_back((i, j, bytes.to_vec()));
            }
        }
        for d in self.out.deliveries() {
            if d.service.is_safe() {
                for ring in &self.rings {
                    assert!(
                        ring.has_received(d.seq),
                        "SAFE {} delivered before {} had it",
                        d.seq,
                        ring.me()
                    );
                }
            }
            self.delivered[i].push((d.origin, d.service, d.message.to_vec()));
        }
        self.lost[i] |= self.out.token_lost();
    }

    fn submit(&mut self, i: usize, service: ServiceLevel, message: Vec<u8>) {
        self.call(i, |ring, now, out| {
            ring.submit(now, service, message, out).unwrap()
        });
    }

    /// Hands daemon `i` a datagram as received on network 0.
    fn feed(&mut self, i: usize, bytes: &[u8]) {
        let packet = packet::decode(bytes).unwrap();
        self.call(i, |ring, now, out| {
            ring.handle(now, Input::Packet { network: 0, packet }, out)
        });
    }

    /// Moves datagrams (each after 100 µs) and fires timers until `until` or nothing is left.
    fn run(&mut self, until: Time) {
        for _ in 0..100_000 {
            if let Some((from, to, bytes)) = self.in_flight.pop_front() {
                self.now = self.now + Duration::from_micros(100);
                if (self.drop)(from, to, &bytes) {
                    continue;
                }
                self.feed(to, &bytes);
                continue;
            }
            let next = self.rings.iter().filter_map(|r| r.next_deadline()).min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for i in 0..self.rings.len() {
                        if self.rings[i].next_deadline().is_some_and(|d| d <= self.now) {
                            self.call(i, |ring, now, out| ring.handle(now, Input::Timer, out));
                        }
                    }
                }
                _ => return,
            }
        }
        panic!("harness did not settle");
    }

    fn run_for(&mut self, d: Duration) {
        self.run(self.now + d);
    }
}

fn kind_of(bytes: &[u8]) -> Kind {
    packet::decode(bytes).unwrap().header.kind
}

#[test]
fn delivers_one_order_everywhere() {
    for accelerated in [false, true] {
        let mut h = Harness::new(3, accelerated);
        let large: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for round in 0..30u8 {
            for i in 0..3 {
                let service = ServiceLevel::ALL[(round as usize + i) % ServiceLevel::ALL.len()];
                h.submit(i, service, vec![i as u8, round]);
            }
        }
        h.submit(1, ServiceLevel::Agreed, large.clone());
        h.submit(2, ServiceLevel::Safe, large.clone());
        h.run_for(Duration::from_secs(2));
        assert_eq!(h.delivered[0].len(), 92);
        assert_eq!(h.delivered[0], h.delivered[1]);
        assert_eq!(h.delivered[0], h.delivered[2]);
        for i in 0..3u8 {
            let from_i: Vec<u8> = h.delivered[0]
                .iter()
                .filter(|d| d.0 == 10 + i as u32 && d.2.len() == 2)
                .map(|d| d.2[1])
                .collect();
            assert_eq!(from_i, (0..30).collect::<Vec<u8>>(), "FIFO from daemon {i}");
        }
        assert_eq!(h.delivered[0].iter().filter(|d| d.2 == large).count(), 2);
        assert!(h
            .rings
            .iter()
            .all(|r| r.waiting_messages() == 0 && r.stats().broken_messages == 0));
        assert!(!h.lost.iter().any(|&l| l));
    }
}

#[test]
fn lost_packets_are_requested_and_resent() {
    let mut h = Harness::new(3, true);
    let mut dropped = 0;
    // Daemon 2 misses the first two data packets daemon 0 sends it.
    h.drop = Box::new(move |from, to, bytes| {
        let drop = from == 0 && to == 2 && kind_of(bytes) == Kind::Data && dropped < 2;
        dropped += drop as u32;
        drop
    });
    for n in 0..5u8 {
        h.submit(0, ServiceLevel::Safe, vec![n; 200]);
    }
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.delivered[2].len(), 5);
    assert_eq!(h.delivered[0], h.delivered[2]);
    let resent: u64 = h.rings.iter().map(|r| r.stats().packets_retransmitted).sum();
    assert_eq!(resent, 2);
    assert!(h.rings.iter().all(|r| r.aru() == r.highest_seq()));
}

#[test]
fn duplicate_and_stale_tokens_are_dropped() {
    let mut h = Harness::new(3, false);
    h.submit(0, ServiceLevel::Agreed, b"x".to_vec());
    // Take the first token from daemon 0 to daemon 1 and keep a copy.
    let at = h
        .in_flight
        .iter()
        .position(|(_, to, b)| *to == 1 && kind_of(b) == Kind::Token)
        .unwrap();
    let first_token = h.in_flight[at].2.clone();
    h.run_for(Duration::from_millis(100));
    let before = *h.rings[1].stats();
    h.feed(1, &first_token);
    let after = *h.rings[1].stats();
    assert_eq!(after.stale_tokens, before.stale_tokens + 1);
    assert_eq!(after.tokens, before.tokens);
    assert!(h.out.is_empty());

    // The leader holds the idle ring's token; its rotation comes back as a duplicate at 1.
    let mut token = Vec::new();
    let fields = TokenFields {
        rotation: h.rings[1].last_token.rotation,
        ..h.rings[1].last_token
    };
    let header = Header {
        kind: Kind::Token,
        network: 0,
        config_hash: HASH,
        sender: 10,
        ring: RING,
    };
    packet::encode_token(&mut token, &header, &fields, &[]);
    h.feed(1, &token);
    assert_eq!(h.rings[1].stats().duplicate_tokens, before.duplicate_tokens + 1);
    assert_eq!(h.delivered[1].len(), 1);
}

#[test]
fn foreign_packets_are_refused() {
    let mut h = Harness::new(2, true);
    let mut bytes = Vec::new();
    let good = Header {
        kind: Kind::Data,
        network: 0,
        config_hash: HASH,
        sender: 11,
        ring: RING,
    };
    let variants = [
        Header {
            config_hash: HASH + 1,
            ..good
        },
        Header {
            ring: RingId { rep: 10, seq: 4 },
            ..good
        },
        Header { sender: 99, ..good },
        Header { network: 1, ..good },
    ];
    for header in variants {
        bytes.clear();
        packet::MessagesWriter::new(&mut bytes, &header, 1, 11).push(ServiceLevel::Agreed, b"no");
        h.feed(0, &bytes);
    }
    // A stranger as origin, sent by a member.
    bytes.clear();
    packet::MessagesWriter::new(&mut bytes, &good, 1, 99).push(ServiceLevel::Agreed, b"no");
    h.feed(0, &bytes);
    // Far beyond any window.
    bytes.clear();
    packet::MessagesWriter::new(&mut bytes, &good, 1 << 40, 11).push(ServiceLevel::Agreed, b"no");
    h.feed(0, &bytes);
    assert_eq!(h.rings[0].stats().refused_packets, 6);
    assert_eq!(h.rings[0].stats().packets_received, 0);
    assert_eq!(h.rings[0].highest_seq(), 0);
}

#[test]
fn idle_leader_holds_the_token_and_a_hurry_releases_it() {
    let mut h = Harness::new(3, true);
    h.submit(1, ServiceLevel::Agreed, b"a".to_vec());
    h.run_for(Duration::from_millis(50));
    assert!(h.in_flight.is_empty());
    assert_eq!(h.rings[0].stats().token_holds, 1);
    assert_eq!(h.delivered[2].len(), 1);

    h.submit(2, ServiceLevel::Agreed, b"b".to_vec());
    assert_eq!(h.rings[2].stats().hurry_sent, 1);
    assert_eq!(kind_of(&h.in_flight[0].2), Kind::Hurry);
    let start = h.now;
    h.run_for(Duration::from_millis(50));
    assert_eq!(h.rings[0].stats().hurry_received, 1);
    assert!(h.delivered.iter().all(|d| d.len() == 2));
    assert!(
        h.now.since(start) < Duration::from_millis(10),
        "delivered without waiting for a timeout"
    );

    // Idle again: the leader releases the token every HurryTimeout, so no one loses it.
    h.run_for(Duration::from_secs(5));
    assert!(!h.lost.iter().any(|&l| l));
    assert!(h.rings[0].stats().token_resends >= 5);
}

#[test]
fn lost_token_is_resent_by_hurry() {
    let mut h = Harness::new(4, true);
    let mut dropped = false;
    // Lose the token once between daemons 2 and 3.
    h.drop = Box::new(move |from, to, bytes| {
        let drop = !dropped && from == 2 && to == 3 && kind_of(bytes) == Kind::Token;
        dropped |= drop;
        drop
    });
    h.submit(2, ServiceLevel::Safe, b"s".to_vec());
    h.run_for(Duration::from_secs(1));
    assert!(h.delivered.iter().all(|d| d.len() == 1));
    assert!(h.rings[0].stats().token_resends >= 1);
    assert!(
        h.rings[1].stats().duplicate_tokens >= 1,
        "daemon 1 passed its copy on again"
    );
    assert!(!h.lost.iter().any(|&l| l));
}

#[test]
fn late_copies_of_old_data_do_not_hold_back_the_hurry() {
    let mut h = Harness::new(3, true);
    let data = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen = data.clone();
    h.drop = Box::new(move |_, _, bytes| {
        if kind_of(bytes) == Kind::Data && seen.borrow().is_empty() {
            seen.borrow_mut().extend_from_slice(bytes);
        }
        false
    });
    h.submit(1, ServiceLevel::Agreed, b"m".to_vec());
    h.run_for(Duration::from_millis(100));
    let late = data.borrow().clone();
    assert!(!late.is_empty() && h.delivered.iter().all(|d| d.len() == 1));
    // Every member has had that packet for a while. The token is lost once between daemons
    // 2 and 0, while a slow network brings the leader copies of the old packet every 100 ms:
    // they say nothing about the token, so the leader still resends it on its hurry timeout.
    let mut dropped = false;
    h.drop = Box::new(move |from, to, bytes| {
        let drop = !dropped && from == 2 && to == 0 && kind_of(bytes) == Kind::Token;
        dropped |= drop;
        drop
    });
    let resends = h.rings[0].stats().token_resends;
    h.submit(1, ServiceLevel::Agreed, b"n".to_vec());
    for _ in 0..15 {
        let next = h.now + Duration::from_millis(100);
        h.run(next);
        h.now = next;
        h.feed(0, &late);
    }
    assert!(
        h.rings[0].stats().token_resends > resends,
        "{:?}",
        h.rings[0].stats()
    );
    assert!(!h.lost.iter().any(|&l| l), "token lost: {:?}", h.lost);
    assert!(h.delivered.iter().all(|d| d.len() == 2));
}

#[test]
fn token_loss_is_reported_once() {
    let mut h = Harness::new(3, true);
    h.drop = Box::new(|_, _, bytes| kind_of(bytes) == Kind::Token);
    h.submit(0, ServiceLevel::Agreed, b"x".to_vec());
    h.run_for(Duration::from_secs(10));
    assert!(h.lost.iter().all(|&l| l));
    assert!(h
        .rings
        .iter()
        .all(|r| r.is_token_lost() && r.next_deadline().is_none()));
    // Before the loss the leader tried to hurry the token on.
    assert!(h.rings[0].stats().token_resends >= 2);
}

#[test]
fn single_daemon_ring_delivers() {
    let mut h = Harness::new(1, true);
    h.submit(0, ServiceLevel::Safe, b"alone".to_vec());
    h.run_for(Duration::from_millis(100));
    assert_eq!(h.delivered[0], vec![(10, ServiceLevel::Safe, b"alone".to_vec())]);
}

#[test]
fn refuses_bad_setups_and_oversized_messages() {
    let params = Params::from_options(&Options::new());
    let setup = Setup {
        me: 1,
        members: vec![2, 3],
        ring: RING,
        config_hash: HASH,
        network: 0,
    };
    assert_eq!(
        Ring::new(setup.clone(), params.clone()).err(),
        Some(SetupError::NotAMember)
    );
    let twice = Setup {
        members: vec![1, 2, 1],
        ..setup.clone()
    };
    assert_eq!(
        Ring::new(twice, params.clone()).err(),
        Some(SetupError::DuplicateMember(1))
    );
    let ok = Setup {
        members: vec![1],
        ..setup
    };
    let tiny = Params {
        mtu: 100,
        ..params.clone()
    };
    assert_eq!(
        Ring::new(ok.clone(), tiny).err(),
        Some(SetupError::MtuOutOfRange(100))
    );
    let mut ring = Ring::new(ok, params).unwrap();
    let mut out = Outputs::new();
    let big = vec![0; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        ring.submit(Time::ZERO, ServiceLevel::Agreed, big, &mut out),
        Err(MessageTooLarge(MAX_MESSAGE_LEN + 1))
    );
    assert_eq!(ring.waiting_messages(), 0);
}

#[test]
fn flow_control_bounds_packets_per_visit() {
    let mut h = Harness::new(2, false);
    for r in &mut h.rings {
        r.params.personal_window = 3;
        r.params.window = 4;
    }
    for n in 0..10u8 {
        h.submit(0, ServiceLevel::Agreed, vec![n; 250]);
        h.submit(1, ServiceLevel::Agreed, vec![n; 250]);
    }
    // Count data packets between tokens: never more than the personal window in one visit.
    let mut run = 0;
    let mut max_run = 0;
    for _ in 0..10_000 {
        let Some((_, to, bytes)) = h.in_flight.pop_front() else {
            break;
        };
        match kind_of(&bytes) {
            Kind::Data => run += 1,
            _ => run = 0,
        }
        max_run = max_run.max(run);
        h.feed(to, &bytes);
    }
    assert!(max_run <= 3, "{max_run} packets in one visit");
    assert_eq!(h.delivered[0].len(), 20);
    assert_eq!(h.delivered[0], h.delivered[1]);
}

#[test]
fn mangled_packets_from_members_never_panic() {
    // Record what a busy ring sends, then feed mangled copies that still decode to fresh rings.
    let mut h = Harness::new(3, true);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for n in 0..20u8 {
        h.submit(
            n as usize % 3,
            ServiceLevel::ALL[n as usize % 6],
            vec![n; 40 + 300 * (n as usize % 4)],
        );
    }
    for _ in 0..200 {
        let Some((_, to, bytes)) = h.in_flight.pop_front() else {
            break;
        };
        seen.push(bytes.clone());
        h.feed(to, &bytes);
    }
    let mut victim = Harness::new(3, true);
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut fed = 0;
    for round in 0..20_000 {
        let mut bytes = seen[round % seen.len()].clone();
        // Leave the header's identity alone half the time so the body reaches the ring.
        let from = if round % 2 == 0 { packet::HEADER_LEN } else { 0 };
        for _ in 0..1 + next() % 4 {
            let at = from + (next() as usize % (bytes.len() - from).max(1));
            if at < bytes.len() {
                bytes[at] = next() as u8;
            }
        }
        if packet::decode(&bytes).is_ok() {
            fed += 1;
            victim.feed(round % 3, &bytes);
            victim.in_flight.clear();
        }
    }
    assert!(fed > 1000, "only {fed} mangled packets decoded");
    let refused: u64 = victim.rings.iter().map(|r| r.stats().refused_packets).sum();
    assert!(refused > 0);
}
