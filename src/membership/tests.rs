//! The protocol's phases on small hand-driven clusters (the simulator covers random faults).

use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::wire::packet::{encode_form, encode_hurry, restamp};

const HASH: u32 = 0xabcd_0123;
const LATENCY: Duration = Duration::from_micros(100);

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Deliver(u32, Vec<u8>),
    Transitional(Vec<u32>),
    Regular(RingId, Vec<(u32, RingId)>),
}

/// Daemons 1, 2, 3, ... on a lossless network with a fixed latency; a daemon can be cut off.
struct Cluster {
    daemons: Vec<Membership>,
    connected: Vec<bool>,
    /// (due, receiver, network, datagram).
    in_flight: VecDeque<(Time, usize, u8, Vec<u8>)>,
    /// Datagrams go on networks 0, 1, ... in turn, re-stamped like the link layer does.
    networks: u8,
    next_network: u8,
    now: Time,
    seen: Vec<Vec<Seen>>,
    out: Outputs,
    /// Every datagram sent, for replaying mangled copies.
    captured: Vec<Vec<u8>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let ids: Vec<u32> = (1..=n as u32).collect();
        let daemons = ids
            .iter()
            .map(|&me| Membership::new(me, ids.clone(), HASH, Params::fast(), 100, Time::ZERO))
            .collect();
        Cluster {
            daemons,
            connected: vec![true; n],
            in_flight: VecDeque::new(),
            networks: 1,
            next_network: 0,
            now: Time::ZERO,
            seen: vec![Vec::new(); n],
            out: Outputs::new(),
            captured: Vec::new(),
        }
    }

    fn call(&mut self, i: usize, f: impl FnOnce(&mut Membership, Time, &mut Outputs)) {
        f(&mut self.daemons[i], self.now, &mut self.out);
        for (to, bytes) in self.out.sends() {
            if self.captured.len() < 5_000 {
                self.captured.push(bytes.to_vec());
            }
            let targets: Vec<usize> = match to {
                Destination::All => (0..self.daemons.len()).filter(|&j| j != i).collect(),
                Destination::Daemon(id) => vec![id as usize - 1],
            };
            for j in targets {
                let reachable = j == i || (self.connected[i] && self.connected[j]);
                if reachable {
                    let network = self.next_network;
                    self.next_network = (network + 1) % self.networks;
                    let mut copy = bytes.to_vec();
                    restamp(&mut copy, i as u32 + 1, network);
                    self.in_flight.push_back((self.now + LATENCY, j, network, copy));
                }
            }
        }
        for e in self.out.events() {
            self.seen[i].push(match e {
                Event::Deliver { origin, message, .. } => Seen::Deliver(origin, message.to_vec()),
                Event::Transitional { members, .. } => Seen::Transitional(members.to_vec()),
                Event::Regular { ring, members } => Seen::Regular(ring, members.to_vec()),
            });
        }
        self.out.clear();
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            let timer = self.daemons.iter().filter_map(Membership::next_deadline).min();
            let packet = self.in_flight.front().map(|&(t, _, _, _)| t);
            let Some(at) = [timer, packet]
                .into_iter()
                .flatten()
                .min()
                .filter(|&t| t <= until)
            else {
                self.now = until;
                return;
            };
            self.now = at;
            if packet == Some(at) {
                let (_, to, network, bytes) = self.in_flight.pop_front().expect("peeked");
                self.call(to, |m, now, out| {
                    m.handle(
                        now,
                        Input::Packet {
                            network,
                            bytes: &bytes,
                        },
                        out,
                    )
                });
            } else {
                for i in 0..self.daemons.len() {
                    if self.daemons[i].next_deadline().is_some_and(|t| t <= at) {
                        self.call(i, |m, now, out| m.handle(now, Input::Timer, out));
                    }
                }
            }
        }
        panic!("the cluster never went quiet");
    }

    fn submit(&mut self, i: usize, message: &[u8]) {
        let message = message.to_vec();
        self.call(i, |m, now, out| {
            m.submit(now, ServiceLevel::Safe, message, out).unwrap()
        });
    }

    fn last_regular(&self, i: usize) -> Option<(RingId, Vec<u32>)> {
        self.seen[i].iter().rev().find_map(|s| match s {
            Seen::Regular(ring, members) => Some((*ring, members.iter().map(|&(m, _)| m).collect())),
            _ => None,
        })
    }

    fn delivered(&self, i: usize) -> Vec<Vec<u8>> {
        self.seen[i]
            .iter()
            .filter_map(|s| match s {
                Seen::Deliver(_, m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn starts_alone_in_a_singleton_configuration() {
    let mut c = Cluster::new(1);
    assert_eq!(c.daemons[0].next_deadline(), Some(Time::ZERO));
    c.submit(0, b"early");
    assert_eq!(c.daemons[0].waiting_messages(), 1);
    c.run_for(Duration::from_millis(5));
    assert_eq!(c.daemons[0].waiting_messages(), 0);
    assert_eq!(
        c.seen[0],
        vec![
            Seen::Regular(RingId { rep: 1, seq: 100 }, vec![(1, RingId { rep: 1, seq: 0 })]),
            Seen::Deliver(1, b"early".to_vec()),
        ]
    );
    assert_eq!(c.daemons[0].state(), State::Op);
    assert!(matches!(
        c.daemons[0].submit(c.now, ServiceLevel::Agreed, vec![0; MAX_MESSAGE_LEN], &mut c.out),
        Err(SubmitError::TooLarge(_))
    ));
}

#[test]
fn daemons_merge_with_transitional_then_regular_and_keep_waiting_messages() {
    let mut c = Cluster::new(3);
    c.submit(0, b"from 1 alone");
    c.run_for(Duration::from_millis(200));
    let (ring, members) = c.last_regular(0).expect("a configuration");
    assert_eq!(members, vec![1, 2, 3]);
    for i in 0..3 {
        assert_eq!(c.last_regular(i), Some((ring, members.clone())));
        assert_eq!(c.daemons[i].state(), State::Op);
        // Every change shows the transitional configuration (this daemon alone, from its
        // singleton) before the regular one.
        let regular = c.seen[i]
            .iter()
            .rposition(|s| matches!(s, Seen::Regular(..)))
            .unwrap();
        let transitional = c.seen[i]
            .iter()
            .rposition(|s| matches!(s, Seen::Transitional(..)))
            .unwrap();
        assert!(transitional < regular);
        assert_eq!(c.seen[i][transitional], Seen::Transitional(vec![i as u32 + 1]));
    }
    assert_eq!(c.delivered(0), vec![b"from 1 alone".to_vec()]);
    // Submitted while the daemons change configuration: sent on the new ring.
    c.submit(1, b"a");
    c.daemons[2].shift_to_gather(c.now, &mut c.out);
    c.out.clear();
    c.submit(2, b"b");
    c.run_for(Duration::from_millis(300));
    for i in 0..3 {
        let got = c.delivered(i);
        assert!(
            got.contains(&b"a".to_vec()) && got.contains(&b"b".to_vec()),
            "{i}: {got:?}"
        );
    }
    assert_eq!(c.last_regular(0), c.last_regular(2));
}

/// With several networks the link layer passes up packets of any of them, each stamped with
/// the network it came on: the protocol runs the same over them, and refuses a copy claiming
/// another network than it came on.
#[test]
fn packets_of_every_network_are_taken_and_crossed_ones_refused() {
    let mut c = Cluster::new(3);
    c.networks = 3;
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.last_regular(0).expect("a configuration").1, vec![1, 2, 3]);
    for k in 0..20u8 {
        c.submit(usize::from(k % 3), &[k]);
    }
    c.run_for(Duration::from_millis(200));
    let expected: Vec<Vec<u8>> = (0..20u8).map(|k| vec![k]).collect();
    for i in 0..3 {
        let mut got = c.delivered(i);
        assert_eq!(got, c.delivered(0), "one order everywhere");
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(c.daemons[i].stats().unknown_sender, 0);
    }
    let ring = c.daemons[1].ring().ring_id();
    let mut hurry = Vec::new();
    let header = Header {
        kind: Kind::Hurry,
        network: 2,
        config_hash: HASH,
        sender: 2,
        ring,
    };
    encode_hurry(&mut hurry, &header);
    let before = *c.daemons[0].stats();
    c.call(0, |m, now, out| {
        m.handle(
            now,
            Input::Packet {
                network: 1,
                bytes: &hurry,
            },
            out,
        )
    });
    assert_eq!(c.daemons[0].stats().unknown_sender, before.unknown_sender + 1);
}

#[test]
fn a_cut_off_daemon_is_left_behind_and_merges_back() {
    let mut c = Cluster::new(3);
    c.run_for(Duration::from_millis(200));
    let (first, _) = c.last_regular(0).unwrap();
    c.connected[2] = false;
    c.submit(0, b"x");
    c.run_for(Duration::from_millis(300));
    let (second, members) = c.last_regular(0).unwrap();
    assert_eq!(members, vec![1, 2]);
    assert_eq!(c.last_regular(2).unwrap().1, vec![3]);
    let regular = c.seen[0]
        .iter()
        .rposition(|s| matches!(s, Seen::Regular(..)))
        .unwrap();
    let transitional = c.seen[0]
        .iter()
        .rposition(|s| matches!(s, Seen::Transitional(..)))
        .unwrap();
    assert!(transitional < regular);
    assert_eq!(c.seen[0][transitional], Seen::Transitional(vec![1, 2]));
    assert!(
        matches!(&c.seen[0][regular], Seen::Regular(r, m) if *r == second && m.iter().all(|&(_, p)| p == first))
    );
    assert_eq!(c.delivered(0), c.delivered(1));
    // The counters of the rings left behind stay in the sum.
    let m = &c.daemons[0];
    assert!(m.ring_stats().tokens > m.ring().stats().tokens);
    c.connected[2] = true;
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.last_regular(0).unwrap().1, vec![1, 2, 3]);
    assert_eq!(c.last_regular(0), c.last_regular(2));
}

#[test]
fn bad_and_stray_packets_are_counted_never_fatal() {
    let mut c = Cluster::new(2);
    c.run_for(Duration::from_millis(100));
    let stats = *c.daemons[0].stats();
    let header = |kind, config_hash, sender| Header {
        kind,
        network: 0,
        config_hash,
        sender,
        ring: RingId { rep: 2, seq: 1 },
    };
    let mut garbage = vec![0u8; 40];
    garbage[..2].copy_from_slice(b"SR");
    let mut foreign = Vec::new();
    encode_hurry(&mut foreign, &header(Kind::Hurry, HASH + 1, 2));
    let mut stranger = Vec::new();
    encode_hurry(&mut stranger, &header(Kind::Hurry, HASH, 9));
    let mut old_ring = Vec::new();
    encode_hurry(&mut old_ring, &header(Kind::Hurry, HASH, 2));
    let mut stray_form = Vec::new();
    encode_form(&mut stray_form, &header(Kind::Form2, HASH, 2), 1, 5, &[2, 1], &[]);
    for bytes in [&garbage, &foreign, &stranger, &old_ring, &stray_form] {
        c.call(0, |m, now, out| {
            m.handle(now, Input::Packet { network: 0, bytes }, out)
        });
    }
    let s = c.daemons[0].stats();
    assert_eq!(
        s.malformed,
        stats.malformed + 2,
        "garbage and a Form2 without entries"
    );
    assert_eq!(s.foreign_hash, stats.foreign_hash + 1);
    assert_eq!(s.unknown_sender, stats.unknown_sender + 1);
    assert_eq!(s.other_ring, stats.other_ring + 1);
    let mut form = Vec::new();
    let entry = OldRing {
        ring: RingId { rep: 2, seq: 1 },
        aru: 0,
        highest: 0,
        safe: 0,
    };
    encode_form(
        &mut form,
        &header(Kind::Form2, HASH, 2),
        1,
        5,
        &[2, 1],
        &[entry, entry],
    );
    c.call(0, |m, now, out| {
        m.handle(
            now,
            Input::Packet {
                network: 0,
                bytes: &form,
            },
            out,
        )
    });
    assert_eq!(c.daemons[0].stats().stale_forms, stats.stale_forms + 1);
    assert_eq!(c.daemons[0].state(), State::Op);
}

/// xorshift64*: enough randomness to mangle packets without a crate.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn mangled_packets_in_every_state_never_panic() {
    let mut c = Cluster::new(3);
    c.submit(1, b"traffic");
    c.run_for(Duration::from_millis(100));
    c.connected[2] = false;
    c.run_for(Duration::from_millis(40));
    let captured = std::mem::take(&mut c.captured);
    assert!(captured.len() > 100, "{}", captured.len());
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut states = Vec::new();
    for round in 0..20_000 {
        let mut bytes = captured[round % captured.len()].clone();
        for _ in 0..1 + xorshift(&mut state) % 3 {
            let at = (xorshift(&mut state) % bytes.len() as u64) as usize;
            bytes[at] = xorshift(&mut state) as u8;
        }
        let i = round % 3;
        c.call(i, |m, now, out| {
            m.handle(
                now,
                Input::Packet {
                    network: 0,
                    bytes: &bytes,
                },
                out,
            )
        });
        if round % 500 == 0 {
            c.run_for(Duration::from_millis(3));
            states.push(c.daemons[i].state());
        }
    }
    // The mangling met the daemons in more than one state.
    assert!(states.iter().any(|&s| s != states[0]), "{states:?}");
    let dropped: u64 = c
        .daemons
        .iter()
        .map(|m| m.stats().malformed + m.stats().stale_forms)
        .sum();
    assert!(dropped > 0);
    c.connected[2] = true;
    c.run_for(Duration::from_millis(500));
    assert_eq!(c.last_regular(0).unwrap().1, vec![1, 2, 3]);
}

#[test]
fn forged_forms_naming_this_daemon_alone_or_strangers_are_refused() {
    let mut c = Cluster::new(2);
    c.run_for(Duration::from_millis(100));
    // Daemon 1 gathers, hears daemon 2 and forms; its Form1 to daemon 2 is lost.
    c.connected[1] = false;
    c.call(0, |m, now, out| {
        m.shift_to_gather(now, out);
        m.heard = vec![(2, true)];
        m.form_or_fail(now, out);
    });
    assert_eq!(c.daemons[0].state(), State::Form);
    let me = c.daemons[0].my_old_ring();
    let header = Header {
        kind: Kind::Form1,
        network: 0,
        config_hash: HASH,
        sender: 1,
        ring: me.ring,
    };
    let attempt = c.daemons[0].attempt;
    let before = c.daemons[0].stats().stale_forms;
    for members in [&[1][..], &[1, 7][..]] {
        let mut form = Vec::new();
        let entries = vec![me; members.len()];
        encode_form(&mut form, &header, attempt, me.ring.seq, members, &entries);
        c.call(0, |m, now, out| {
            m.handle(
                now,
                Input::Packet {
                    network: 0,
                    bytes: &form,
                },
                out,
            )
        });
    }
    assert_eq!(c.daemons[0].stats().stale_forms, before + 2);
    assert_eq!(c.daemons[0].state(), State::Form);
}
