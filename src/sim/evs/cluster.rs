//! The daemons of a membership simulation and what they delivered: each daemon's membership
//! (with its rings), every event it delivers checked at once against extended virtual synchrony.
//! The simulator around it decides what carries the datagrams and when.

use std::collections::{BTreeSet, HashMap};

use super::check::{Checker, Violation};
use crate::membership::{
    Event as MembershipEvent, Membership, MembershipStats, Outputs, Params, Position, State,
};
use crate::ring::{Destination, RingStats, Time};
use crate::rng::Rng;
use crate::sim::check::{random_message, MessageId};
use crate::wire::packet::RingId;

/// Largest simulated message (fragmented over several packets).
const MAX_MESSAGE: u64 = 30_000;

struct Daemon {
    membership: Option<Membership>,
    /// Messages this incarnation submitted and delivered of its own.
    own_submitted: u64,
    own_delivered: u64,
}

pub struct Cluster {
    ids: Vec<u32>,
    config_hash: u32,
    params: Params,
    daemons: Vec<Daemon>,
    out: Outputs,
    checker: Checker,
    /// Next message counter of each daemon index (across incarnations, so ids stay unique).
    counters: Vec<u64>,
    /// What each daemon had of each ring, for checking SAFE delivery: the highest
    /// all-received mark seen, and the packets above it it had while its ring was frozen.
    arus: HashMap<(RingId, usize), u64>,
    frozen: HashMap<(RingId, usize), BTreeSet<u64>>,
    /// Counters of incarnations that crashed.
    retired_membership: MembershipStats,
    retired_ring: RingStats,
    messages: usize,
}

impl Cluster {
    /// Daemon index `i` has id `ids[i]`; none is running yet.
    pub fn new(ids: Vec<u32>, config_hash: u32, params: Params) -> Cluster {
        let n = ids.len();
        Cluster {
            checker: Checker::new(ids.clone()),
            ids,
            config_hash,
            params,
            daemons: (0..n)
                .map(|_| Daemon {
                    membership: None,
                    own_submitted: 0,
                    own_delivered: 0,
                })
                .collect(),
            out: Outputs::new(),
            counters: vec![0; n],
            arus: HashMap::new(),
            frozen: HashMap::new(),
            retired_membership: MembershipStats::default(),
            retired_ring: RingStats::default(),
            messages: 0,
        }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    pub fn membership(&self, daemon: usize) -> Option<&Membership> {
        self.daemons[daemon].membership.as_ref()
    }

    /// Messages submitted so far.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// Membership and ring counters, summed over every incarnation.
    pub fn stats(&self) -> (MembershipStats, RingStats) {
        let mut membership = self.retired_membership;
        let mut ring = self.retired_ring;
        for m in self.daemons.iter().filter_map(|d| d.membership.as_ref()) {
            add_stats(&mut membership, m.stats());
            ring += &m.ring_stats();
        }
        (membership, ring)
    }

    /// Starts daemon `daemon` afresh (it must be down); its first call must be a timer call,
    /// which announces its singleton configuration.
    pub fn start(&mut self, daemon: usize, now: Time) {
        let epoch = now.as_micros() + 1;
        let m = Membership::new(
            self.ids[daemon],
            self.ids.clone(),
            self.config_hash,
            self.params.clone(),
            epoch,
            now,
        );
        let d = &mut self.daemons[daemon];
        d.membership = Some(m);
        d.own_submitted = 0;
        d.own_delivered = 0;
        self.checker.restart(daemon);
    }

    /// Stops daemon `daemon`, losing everything it had; false if it was down.
    pub fn crash(&mut self, daemon: usize) -> bool {
        let Some(m) = self.daemons[daemon].membership.take() else {
            return false;
        };
        add_stats(&mut self.retired_membership, m.stats());
        self.retired_ring += &m.ring_stats();
        true
    }

    /// The next message of daemon `daemon`, drawn from `rng`, if it is up, as its submission to
    /// run on the daemon's membership (with [`Cluster::call`] or the simulator's own call).
    pub fn next_submission(
        &mut self,
        daemon: usize,
        rng: &mut Rng,
        safe_ratio: f64,
        large_ratio: f64,
    ) -> Option<impl FnOnce(&mut Membership, Time, &mut Outputs)> {
        self.daemons[daemon].membership.as_ref()?;
        let id = MessageId {
            origin: daemon,
            counter: self.counters[daemon],
        };
        self.counters[daemon] += 1;
        self.messages += 1;
        self.daemons[daemon].own_submitted += 1;
        self.checker.submitted(id);
        let (service, message) = random_message(rng, id, safe_ratio, large_ratio, MAX_MESSAGE);
        Some(move |m: &mut Membership, now: Time, out: &mut Outputs| {
            m.submit(now, service, message, out)
                .expect("simulated messages are within the size limit")
        })
    }

    /// Runs `f` on daemon `i` if it is up, then hands what it produced to `send` and checks
    /// what it delivered.
    pub fn call(
        &mut self,
        i: usize,
        now: Time,
        f: impl FnOnce(&mut Membership, Time, &mut Outputs),
        send: &mut dyn FnMut(Destination, &[u8]),
    ) -> Result<(), Violation> {
        let Some(m) = self.daemons[i].membership.as_mut() else {
            return Ok(());
        };
        f(m, now, &mut self.out);
        for (to, bytes) in self.out.sends() {
            if crate::wire::packet::decode(bytes).is_err() {
                return Err(Violation::Undecodable { daemon: i });
            }
            send(to, bytes);
        }
        self.record(i);
        let out = std::mem::take(&mut self.out);
        let result = self.check_events(i, &out);
        self.out = out;
        self.out.clear();
        result
    }

    /// Notes what daemon `k` has of its ring now.
    fn record(&mut self, k: usize) {
        let Some(m) = &self.daemons[k].membership else {
            return;
        };
        let ring = m.ring();
        let key = (ring.ring_id(), k);
        let aru = self.arus.entry(key).or_insert(0);
        *aru = (*aru).max(ring.my_aru());
        // Outside OP the ring only gains recovered packets, above holes.
        if m.state() != State::Op && ring.my_aru() < ring.highest_seq() {
            let have = (ring.my_aru() + 1..=ring.highest_seq()).filter(|&seq| ring.has_received(seq));
            self.frozen.entry(key).or_default().extend(have);
        }
    }

    fn check_events(&mut self, i: usize, out: &Outputs) -> Result<(), Violation> {
        for (event, at) in out.positioned_events() {
            match event {
                MembershipEvent::Deliver {
                    origin,
                    service,
                    message,
                } => {
                    let at = at.expect("deliveries have positions");
                    let daemons = &self.daemons;
                    let arus = &self.arus;
                    let frozen = &self.frozen;
                    let has = |k: usize, p: Position| {
                        // The daemon delivering it has it (it may have retired the ring in this
                        // very call).
                        if k == i {
                            return true;
                        }
                        let Some(m) = daemons.get(k).and_then(|d| d.membership.as_ref()) else {
                            // A crashed daemon cannot be asked.
                            return true;
                        };
                        m.has_packet(p.ring, p.seq)
                            || arus.get(&(p.ring, k)).is_some_and(|&aru| aru >= p.seq)
                            || frozen.get(&(p.ring, k)).is_some_and(|have| have.contains(&p.seq))
                    };
                    let id = self.checker.deliver(i, origin, service, message, at, has)?;
                    if id.origin == i {
                        self.daemons[i].own_delivered += 1;
                    }
                }
                MembershipEvent::Transitional { members, .. } => self.checker.transitional(i, members)?,
                MembershipEvent::Regular { ring, members } => self.checker.regular(i, ring, members)?,
            }
        }
        Ok(())
    }

    /// Every live daemon is in one operational configuration of exactly the live daemons, has
    /// delivered what it submitted, and all delivered the same there.
    pub fn live(&self) -> bool {
        let up: Vec<usize> = (0..self.daemons.len())
            .filter(|&k| self.daemons[k].membership.is_some())
            .collect();
        let Some(ring) = up.first().and_then(|&k| self.checker.current(k)) else {
            return up.is_empty();
        };
        let mut ids: Vec<u32> = up.iter().map(|&k| self.ids[k]).collect();
        ids.sort_unstable();
        let mut members = self.checker.members(ring).unwrap_or(&[]).to_vec();
        members.sort_unstable();
        let count = self.checker.delivered_in_regular(up[0]).len();
        members == ids
            && up.iter().all(|&k| {
                let d = &self.daemons[k];
                self.checker.current(k) == Some(ring)
                    && !self.checker.in_transition(k)
                    && d.own_delivered == d.own_submitted
                    && self.checker.delivered_in_regular(k).len() == count
            })
    }

    /// Each daemon's state, configuration and deliveries, for a liveness failure.
    pub fn liveness_report(&self) -> String {
        let mut report = String::new();
        for (k, d) in self.daemons.iter().enumerate() {
            let Some(m) = &d.membership else {
                report.push_str(&format!("[{k}: down] "));
                continue;
            };
            report.push_str(&format!(
                "[{k}: {:?} ring {:?} members {:?} own {}/{} in ring {}] ",
                m.state(),
                self.checker.current(k),
                self.checker.current(k).and_then(|r| self.checker.members(r)),
                d.own_delivered,
                d.own_submitted,
                self.checker.delivered_in_regular(k).len(),
            ));
        }
        report
    }
}

fn add_stats(sum: &mut MembershipStats, s: &MembershipStats) {
    sum.malformed += s.malformed;
    sum.foreign_hash += s.foreign_hash;
    sum.unknown_sender += s.unknown_sender;
    sum.other_ring += s.other_ring;
    sum.stale_joins += s.stale_joins;
    sum.stale_forms += s.stale_forms;
    sum.bad_recovery += s.bad_recovery;
    sum.gathers += s.gathers;
    sum.installs += s.installs;
    sum.recovered_sent += s.recovered_sent;
}
