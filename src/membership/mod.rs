//! Daemon membership with extended virtual synchrony (sans-IO), after Spread's protocol.
//!
//! States, with Spread's names: OP runs the ring of the regular configuration; its leader
//! announces the ring with alive probes every `LookupTimeout`. Token loss, a join message from a
//! member of the ring, or a probe or join from a daemon outside it makes a daemon GATHER: it
//! freezes its old ring, sends join messages naming whom it hears every `JoinTimeout`, and after
//! `GatherTimeout` the representative (the first, in configuration order, of the daemons whose
//! joins name it) sends the FORM token round them. Form1 collects each member's old ring id and
//! how much of it the member has; Form2 carries the result round, and each member installs the
//! new ring (EVS): members coming from the same old ring recover its packets through the new
//! ring, then each delivers the old ring's rest in EVS order (what the old regular
//! configuration may deliver, the transitional configuration, what it may deliver), then the new
//! regular configuration, then new traffic. A failure in any phase goes back to gathering, with
//! the old ring kept until a new configuration is installed.
//!
//! A daemon starts in a singleton configuration of its own, announced on the first call, and its
//! leader's probe goes out at once so that running daemons merge with it. Client messages
//! submitted while no ring is operational wait and go on the next ring, in order.
//!
//! Every message on the new ring starts with a tag byte: a client message, a recovered packet
//! of an old ring, or one of the two recovery markers ("sent what I recover", "have
//! everything"). The second marker from every member means every member has every recovered
//! packet, which SAFE delivery in the transitional configuration needs.
//!
//! Simplifications against Spread: no segment representatives (every daemon answers for
//! itself), a daemon leaves its ring as soon as it gathers (Spread's leader keeps its ring while
//! it probes a merge that may fail). Packets may come on any network of a multipath ring: the
//! link layer passes up the first copy of each, stamped with the network it came on; this
//! daemon's own packets are stamped with network 0 and re-stamped per network on the way out.

mod output;
mod params;

#[cfg(test)]
mod tests;

pub use output::{Event, Outputs, Position};
pub use params::Params;

use crate::ring::{self, Destination, Ring, RingStats, Setup, Time};
use crate::wire::packet::{
    decode, encode_alive, encode_form, encode_join, Body, Header, Kind, OldRing, Packet, RingId,
    ServiceLevel, MAX_MEMBERS, MAX_MESSAGE_LEN,
};

/// What the membership is told.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A datagram from another daemon and the network it arrived on (a copy claiming another
    /// network than it came on is refused).
    Packet { network: u8, bytes: &'a [u8] },
    /// The time given by [`Membership::next_deadline`] has come (early calls do nothing).
    Timer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The message is longer than the ring carries (with its tag byte).
    TooLarge(usize),
}

impl std::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubmitError::TooLarge(len) => write!(f, "message of {len} bytes is too large"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Spread's membership states (segment states left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Op,
    Gather,
    Form,
    Evs,
}

/// Datagrams dropped, by reason, and what the protocol went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    /// Did not decode.
    pub malformed: u64,
    /// Of another configuration (hash mismatch).
    pub foreign_hash: u64,
    /// From a daemon not in the configuration, or claiming another network than it came on.
    pub unknown_sender: u64,
    /// Ring packets of a ring this daemon is not running now.
    pub other_ring: u64,
    /// Join messages sent before their sender knew this daemon's current ring.
    pub stale_joins: u64,
    /// Form tokens not for this daemon now (duplicates, late, wrong turn).
    pub stale_forms: u64,
    /// Recovered packets or markers that made no sense (dropped).
    pub bad_recovery: u64,
    /// Times this daemon started gathering.
    pub gathers: u64,
    /// Regular configurations installed.
    pub installs: u64,
    /// Old-ring packets this daemon sent for recovery.
    pub recovered_sent: u64,
}

/// Tag bytes of messages on a ring.
const TAG_CLIENT: u8 = 0;
const TAG_PACKET: u8 = 1;
const TAG_SENT_ALL: u8 = 2;
const TAG_HAVE_ALL: u8 = 3;

/// A new ring being installed: recovery of the old rings' packets through it.
struct Recovery {
    ring: Ring,
    /// Each member with what it had of its old ring (form token order).
    members: Vec<(u32, OldRing)>,
    /// Members coming from this daemon's old ring, in ring order.
    transitional: Vec<u32>,
    sent_all: Vec<u32>,
    have_all: Vec<u32>,
    /// The representative waits for its Form2 to come back before starting the ring.
    started: bool,
}

/// A form token's content (see [`crate::wire::packet::FormToken`]).
struct Form {
    attempt: u64,
    max_ring_seq: u64,
    /// In ring order; the first is the representative.
    members: Vec<u32>,
    /// What the members so far had of their old rings.
    entries: Vec<OldRing>,
}

impl Form {
    /// The ring the token forms: the representative's, with the next sequence.
    fn new_ring(&self) -> RingId {
        RingId {
            rep: self.members[0],
            seq: self.max_ring_seq.saturating_add(1),
        }
    }
}

pub struct Membership {
    me: u32,
    all: Vec<u32>,
    config_hash: u32,
    params: Params,
    state: State,
    /// The ring of the regular configuration (frozen outside OP).
    ring: Ring,
    /// Highest ring sequence seen anywhere.
    max_ring_seq: u64,
    /// Gathering: daemons heard, and whether their last join named this daemon.
    heard: Vec<(u32, bool)>,
    /// This daemon's form attempts as representative.
    attempt: u64,
    /// The form token this daemon filled: (representative, attempt).
    filled: Option<(u32, u64)>,
    recovery: Option<Recovery>,
    /// Tagged client messages waiting for an operational ring.
    waiting: Vec<(ServiceLevel, Vec<u8>)>,
    /// The singleton configuration is announced on the first call.
    announce: Option<Time>,
    join_deadline: Option<Time>,
    gather_deadline: Option<Time>,
    form_deadline: Option<Time>,
    lookup_deadline: Option<Time>,
    scratch: ring::Outputs,
    stats: MembershipStats,
    /// Counters of the rings replaced or abandoned.
    retired_rings: RingStats,
}

impl Membership {
    /// `all`: every configured daemon id in configuration (ring) order; `me` among them.
    /// `epoch`: picked at start so that ring ids of a restarted daemon are new; ring seqs are
    /// max(seen)+1 and start at `epoch`.
    ///
    /// Panics if `me` is not in `all`, `all` repeats an id or names more than [`MAX_MEMBERS`],
    /// or the ring's MTU is out of range: configuration errors the daemon checks first.
    pub fn new(
        me: u32,
        all: Vec<u32>,
        config_hash: u32,
        params: Params,
        epoch: u64,
        now: Time,
    ) -> Membership {
        assert!(all.contains(&me), "daemon {me:#x} is not configured");
        assert!(all.len() <= MAX_MEMBERS, "more than {MAX_MEMBERS} daemons");
        let ring = Ring::new(
            Setup {
                me,
                members: vec![me],
                ring: RingId { rep: me, seq: epoch },
                config_hash,
                network: 0,
            },
            params.ring.clone(),
        )
        .expect("a valid ring configuration");
        for (i, id) in all.iter().enumerate() {
            assert!(!all[..i].contains(id), "daemon {id:#x} configured twice");
        }
        Membership {
            me,
            all,
            config_hash,
            params,
            state: State::Op,
            ring,
            max_ring_seq: epoch,
            heard: Vec::new(),
            attempt: epoch,
            filled: None,
            recovery: None,
            waiting: Vec::new(),
            announce: Some(now),
            join_deadline: None,
            gather_deadline: None,
            form_deadline: None,
            lookup_deadline: Some(now),
            scratch: ring::Outputs::new(),
            stats: MembershipStats::default(),
            retired_rings: RingStats::default(),
        }
    }

    pub fn handle(&mut self, now: Time, input: Input<'_>, out: &mut Outputs) {
        self.announce_singleton(now, out);
        match input {
            Input::Packet { network, bytes } => self.receive(now, network, bytes, out),
            Input::Timer => self.timer(now, out),
        }
    }

    /// Queues a client message; it waits while no ring is operational.
    pub fn submit(
        &mut self,
        now: Time,
        service: ServiceLevel,
        message: Vec<u8>,
        out: &mut Outputs,
    ) -> Result<(), SubmitError> {
        if message.len() >= MAX_MESSAGE_LEN {
            return Err(SubmitError::TooLarge(message.len()));
        }
        self.announce_singleton(now, out);
        let mut tagged = Vec::with_capacity(message.len() + 1);
        tagged.push(TAG_CLIENT);
        tagged.extend_from_slice(&message);
        if self.state == State::Op {
            self.ring
                .submit(now, service, tagged, &mut self.scratch)
                .expect("length checked");
            self.route_ring(now, out);
        } else {
            self.waiting.push((service, tagged));
        }
        Ok(())
    }

    pub fn next_deadline(&self) -> Option<Time> {
        let ring = match self.state {
            State::Op => self.ring.next_deadline(),
            State::Evs => self.recovery.as_ref().and_then(|r| r.ring.next_deadline()),
            State::Gather | State::Form => None,
        };
        [
            self.announce,
            ring,
            self.join_deadline,
            self.gather_deadline,
            self.form_deadline,
            self.lookup_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn stats(&self) -> &MembershipStats {
        &self.stats
    }

    /// Counters of every ring this daemon ran or started, the current one included.
    pub fn ring_stats(&self) -> RingStats {
        let mut sum = self.retired_rings;
        sum += self.ring.stats();
        if let Some(r) = &self.recovery {
            sum += r.ring.stats();
        }
        sum
    }

    /// Client messages of this daemon not yet on a ring: waiting for an operational ring or
    /// for the token (for the daemon's back-pressure on its clients).
    pub fn waiting_messages(&self) -> usize {
        self.waiting.len() + self.ring.waiting_messages()
    }

    /// The ring of the regular configuration (frozen while a new one is being formed).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Whether this daemon has packet `seq` of ring `ring`, in its current ring or in the one it
    /// is installing (for checking SAFE delivery).
    pub fn has_packet(&self, ring: RingId, seq: u64) -> bool {
        let installing = self.recovery.as_ref().map(|r| &r.ring);
        [Some(&self.ring), installing]
            .into_iter()
            .flatten()
            .any(|r| r.ring_id() == ring && r.has_received(seq))
    }

    fn announce_singleton(&mut self, now: Time, out: &mut Outputs) {
        if self.announce.take().is_some() {
            let ring = self.ring.ring_id();
            out.regular(ring, &[(self.me, RingId { rep: self.me, seq: 0 })]);
            self.stats.installs += 1;
            self.ring.start(now, &mut self.scratch);
            self.route_ring(now, out);
        }
    }

    fn header(&self, kind: Kind) -> Header {
        Header {
            kind,
            network: 0,
            config_hash: self.config_hash,
            sender: self.me,
            ring: self.ring.ring_id(),
        }
    }

    fn position(&self, id: u32) -> usize {
        self.all.iter().position(|&d| d == id).unwrap_or(usize::MAX)
    }

    fn receive(&mut self, now: Time, network: u8, bytes: &[u8], out: &mut Outputs) {
        let packet = match decode(bytes) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let h = packet.header;
        if h.config_hash != self.config_hash {
            self.stats.foreign_hash += 1;
            return;
        }
        if !self.all.contains(&h.sender) || h.network != network {
            self.stats.unknown_sender += 1;
            return;
        }
        self.max_ring_seq = self.max_ring_seq.max(h.ring.seq);
        match packet.body {
            Body::Data(_) | Body::Token(_) | Body::Hurry => self.receive_ring(now, network, packet, out),
            Body::Alive => self.receive_alive(now, h, out),
            Body::Join(join) => {
                self.max_ring_seq = self.max_ring_seq.max(join.max_ring_seq);
                let names_me = join.heard().any(|id| id == self.me);
                self.receive_join(now, h, join.max_ring_seq, names_me, out);
            }
            Body::Form(token) => {
                let form = Form {
                    attempt: token.attempt,
                    max_ring_seq: token.max_ring_seq,
                    members: token.members().collect(),
                    entries: token.entries().collect(),
                };
                if h.kind == Kind::Form1 {
                    self.receive_form1(now, h.sender, form, out);
                } else {
                    self.receive_form2(now, h.sender, form, out);
                }
            }
        }
    }

    fn receive_ring(&mut self, now: Time, network: u8, packet: Packet<'_>, out: &mut Outputs) {
        let input = ring::Input::Packet { network, packet };
        let ring = packet.header.ring;
        if self.state == State::Op && ring == self.ring.ring_id() {
            self.ring.handle(now, input, &mut self.scratch);
            self.route_ring(now, out);
        } else if let Some(recovery) = self.recovery.as_mut().filter(|r| r.ring.ring_id() == ring) {
            recovery.ring.handle(now, input, &mut self.scratch);
            self.route_recovery(now, out);
        } else {
            self.stats.other_ring += 1;
        }
    }

    fn receive_alive(&mut self, now: Time, h: Header, out: &mut Outputs) {
        // Only the leader answers a foreign ring's probe, so that a merge starts once; a probe
        // of a member with another ring is old news (token loss handles a member that left).
        let leader = self.ring.members()[0] == self.me;
        if self.state == State::Op
            && leader
            && h.sender != self.me
            && !self.ring.members().contains(&h.sender)
        {
            self.shift_to_gather(now, out);
        }
    }

    fn receive_join(&mut self, now: Time, h: Header, their_max_seq: u64, names_me: bool, out: &mut Outputs) {
        if h.sender == self.me {
            return;
        }
        match self.state {
            State::Op => {
                // A member gathers only after it installed our ring: a join naming an older
                // ring was sent before.
                if self.ring.members().contains(&h.sender) && h.ring != self.ring.ring_id() {
                    self.stats.stale_joins += 1;
                    return;
                }
                self.shift_to_gather(now, out);
                self.note_join(now, h.sender, names_me);
            }
            State::Gather => self.note_join(now, h.sender, names_me),
            State::Form => {}
            State::Evs => {
                let Some(recovery) = &self.recovery else { return };
                // A member that installed the new ring knows its sequence; a join without it
                // was sent before.
                let member = recovery.members.iter().any(|&(id, _)| id == h.sender);
                if member && their_max_seq >= recovery.ring.ring_id().seq {
                    self.shift_to_gather(now, out);
                    self.note_join(now, h.sender, names_me);
                } else if member {
                    self.stats.stale_joins += 1;
                }
            }
        }
    }

    fn note_join(&mut self, now: Time, sender: u32, names_me: bool) {
        match self.heard.iter_mut().find(|(id, _)| *id == sender) {
            Some(entry) => entry.1 = names_me,
            None => {
                self.heard.push((sender, false));
                // Answer at once so the newcomer hears this daemon within a join period.
                self.join_deadline = Some(now);
                if let Some(entry) = self.heard.last_mut() {
                    entry.1 = names_me;
                }
            }
        }
        // While the representative keeps gathering, wait for it (Spread's rule).
        if names_me && Some(sender) == self.gathered().first().copied() && sender != self.me {
            self.gather_deadline = Some(now + self.params.gather_timeout);
        }
    }

    /// This daemon and those whose joins name it, in configuration order.
    fn gathered(&self) -> Vec<u32> {
        let mut members: Vec<u32> = self
            .heard
            .iter()
            .filter(|&&(_, names_me)| names_me)
            .map(|&(id, _)| id)
            .chain([self.me])
            .collect();
        members.sort_by_key(|&id| self.position(id));
        members
    }

    fn shift_to_gather(&mut self, now: Time, out: &mut Outputs) {
        if self.state == State::Op {
            // Messages not yet on the ring go on the next one, in order.
            let mut unsent = self.ring.take_unsent();
            unsent.append(&mut self.waiting);
            self.waiting = unsent;
        }
        self.state = State::Gather;
        self.stats.gathers += 1;
        if let Some(abandoned) = self.recovery.take() {
            self.retired_rings += abandoned.ring.stats();
        }
        self.filled = None;
        self.heard.clear();
        self.lookup_deadline = None;
        self.form_deadline = None;
        self.gather_deadline = Some(now + self.params.gather_timeout);
        self.send_join(now, out);
    }

    fn send_join(&mut self, now: Time, out: &mut Outputs) {
        let heard: Vec<u32> = self.heard.iter().map(|&(id, _)| id).collect();
        let header = self.header(Kind::Join);
        let max = self.max_ring_seq;
        out.send_with(Destination::All, |v| encode_join(v, &header, max, &heard));
        self.join_deadline = Some(now + self.params.join_timeout);
    }

    fn my_old_ring(&self) -> OldRing {
        OldRing {
            ring: self.ring.ring_id(),
            aru: self.ring.my_aru(),
            highest: self.ring.highest_seq(),
            safe: self.ring.aru(),
        }
    }

    /// Gathering is over: the representative forms, the others gather again if it did not.
    fn form_or_fail(&mut self, now: Time, out: &mut Outputs) {
        let members = self.gathered();
        if members[0] != self.me {
            self.shift_to_gather(now, out);
            return;
        }
        self.attempt += 1;
        let form = Form {
            attempt: self.attempt,
            max_ring_seq: self.max_ring_seq,
            entries: vec![self.my_old_ring()],
            members,
        };
        if form.members.len() == 1 {
            self.install(now, &form, out);
            self.start_new_ring(now, out);
            return;
        }
        self.state = State::Form;
        self.filled = Some((self.me, self.attempt));
        self.join_deadline = None;
        self.gather_deadline = None;
        self.form_deadline = Some(now + self.params.form_timeout);
        self.send_form(Kind::Form1, form.members[1], &form, out);
    }

    fn send_form(&self, kind: Kind, to: u32, form: &Form, out: &mut Outputs) {
        let header = self.header(kind);
        out.send_with(Destination::Daemon(to), |v| {
            encode_form(
                v,
                &header,
                form.attempt,
                form.max_ring_seq,
                &form.members,
                &form.entries,
            )
        });
    }

    /// The place of this daemon in a form token whose `sender` must be the member before it.
    /// Tokens naming unconfigured daemons, or only one (never sent), are refused.
    fn my_turn(&self, sender: u32, form: &Form) -> Option<usize> {
        let members = &form.members;
        if members.len() < 2 || members.iter().any(|m| !self.all.contains(m)) {
            return None;
        }
        let index = members.iter().position(|&m| m == self.me)?;
        let before = members[(index + members.len() - 1) % members.len()];
        (before == sender).then_some(index)
    }

    fn receive_form1(&mut self, now: Time, sender: u32, form: Form, out: &mut Outputs) {
        let Some(index) = self.my_turn(sender, &form) else {
            self.stats.stale_forms += 1;
            return;
        };
        if index == 0 {
            // Back at the representative: every member filled it, send the result round.
            let mine = self.state == State::Form && self.filled == Some((self.me, form.attempt));
            if !mine || form.entries.len() != form.members.len() || form.entries[0] != self.my_old_ring() {
                self.stats.stale_forms += 1;
                return;
            }
            self.send_form(Kind::Form2, form.members[1], &form, out);
            self.install(now, &form, out);
            // Until the Form2 comes back the new ring is not started: the form timeout guards.
            self.form_deadline = Some(now + self.params.form_timeout);
            return;
        }
        if self.state != State::Gather || form.entries.len() != index {
            self.stats.stale_forms += 1;
            return;
        }
        let mut form = form;
        form.entries.push(self.my_old_ring());
        form.max_ring_seq = form.max_ring_seq.max(self.max_ring_seq);
        let next = form.members[(index + 1) % form.members.len()];
        self.send_form(Kind::Form1, next, &form, out);
        self.state = State::Form;
        self.filled = Some((form.members[0], form.attempt));
        self.join_deadline = None;
        self.gather_deadline = None;
        self.form_deadline = Some(now + self.params.form_timeout);
    }

    fn receive_form2(&mut self, now: Time, sender: u32, form: Form, out: &mut Outputs) {
        let Some(index) = self.my_turn(sender, &form) else {
            self.stats.stale_forms += 1;
            return;
        };
        if index == 0 {
            match &self.recovery {
                Some(r) if self.state == State::Evs && !r.started && r.ring.ring_id() == form.new_ring() => {
                    self.start_new_ring(now, out)
                }
                _ => self.stats.stale_forms += 1,
            }
            return;
        }
        // The token must carry what this daemon wrote into it.
        if self.state != State::Form
            || self.filled != Some((form.members[0], form.attempt))
            || form.entries[index] != self.my_old_ring()
        {
            self.stats.stale_forms += 1;
            return;
        }
        let next = form.members[(index + 1) % form.members.len()];
        self.send_form(Kind::Form2, next, &form, out);
        self.install(now, &form, out);
        self.start_new_ring(now, out);
    }

    fn start_new_ring(&mut self, now: Time, out: &mut Outputs) {
        if let Some(r) = self.recovery.as_mut() {
            r.started = true;
            self.form_deadline = None;
            r.ring.start(now, &mut self.scratch);
            self.route_recovery(now, out);
        }
    }

    /// Creates the new ring and queues on it what the members of this daemon's old ring miss.
    fn install(&mut self, now: Time, form: &Form, out: &mut Outputs) {
        let new_ring = form.new_ring();
        let (members, entries) = (&form.members, &form.entries);
        self.max_ring_seq = self.max_ring_seq.max(new_ring.seq);
        self.join_deadline = None;
        self.gather_deadline = None;
        self.form_deadline = None;
        let setup = Setup {
            me: self.me,
            members: members.to_vec(),
            ring: new_ring,
            config_hash: self.config_hash,
            network: 0,
        };
        let ring =
            Ring::new(setup, self.params.ring.clone()).expect("form tokens hold distinct configured ids");
        let old = self.ring.ring_id();
        let together: Vec<(u32, OldRing)> = members
            .iter()
            .zip(entries)
            .filter(|(_, e)| e.ring == old)
            .map(|(&m, &e)| (m, e))
            .collect();
        let mut recovery = Recovery {
            ring,
            members: members.iter().copied().zip(entries.iter().copied()).collect(),
            transitional: together.iter().map(|&(m, _)| m).collect(),
            sent_all: Vec::new(),
            have_all: Vec::new(),
            started: false,
        };
        // Everything up to the lowest aru is everywhere. Up to the highest aru one member has
        // it all and sends it; above, every member sends what it has.
        let low = together.iter().map(|(_, e)| e.aru).min().unwrap_or(0);
        let high = together.iter().map(|(_, e)| e.highest).max().unwrap_or(0);
        let top = together.iter().map(|(_, e)| e.aru).max().unwrap_or(0);
        let holder = together.iter().find(|(_, e)| e.aru == top).map(|&(m, _)| m);
        let mut queued = 0;
        if low < high {
            for seq in low + 1..=high {
                if seq <= top && holder != Some(self.me) {
                    continue;
                }
                if let Some(packet) = self.ring.stored_packet(seq) {
                    let mut tagged = Vec::with_capacity(packet.len() + 1);
                    tagged.push(TAG_PACKET);
                    tagged.extend_from_slice(packet);
                    recovery
                        .ring
                        .submit(now, ServiceLevel::Agreed, tagged, &mut self.scratch)
                        .expect("a packet fits a message");
                    queued += 1;
                }
            }
        }
        self.stats.recovered_sent += queued;
        recovery
            .ring
            .submit(now, ServiceLevel::Agreed, vec![TAG_SENT_ALL], &mut self.scratch)
            .expect("a marker fits");
        self.state = State::Evs;
        self.recovery = Some(recovery);
        self.route_recovery(now, out);
    }

    fn timer(&mut self, now: Time, out: &mut Outputs) {
        let due = |d: Option<Time>| d.is_some_and(|d| d <= now);
        match self.state {
            State::Op => {
                self.ring.handle(now, ring::Input::Timer, &mut self.scratch);
                self.route_ring(now, out);
                if self.state == State::Op && due(self.lookup_deadline) {
                    let header = self.header(Kind::Alive);
                    out.send_with(Destination::All, |v| encode_alive(v, &header));
                    self.lookup_deadline = Some(now + self.params.lookup_timeout);
                }
            }
            State::Gather => {
                if due(self.join_deadline) {
                    self.send_join(now, out);
                }
                if due(self.gather_deadline) {
                    self.form_or_fail(now, out);
                }
            }
            State::Form => {
                if due(self.form_deadline) {
                    self.shift_to_gather(now, out);
                }
            }
            State::Evs => {
                if due(self.form_deadline) {
                    self.shift_to_gather(now, out);
                } else if let Some(r) = self.recovery.as_mut() {
                    r.ring.handle(now, ring::Input::Timer, &mut self.scratch);
                    self.route_recovery(now, out);
                }
            }
        }
    }

    /// Passes on what the operational ring produced.
    fn route_ring(&mut self, now: Time, out: &mut Outputs) {
        for (to, bytes) in self.scratch.sends() {
            out.send(to, bytes);
        }
        let ring = self.ring.ring_id();
        for d in self.scratch.deliveries() {
            deliver_client(d, ring, out, &mut self.stats);
        }
        let lost = self.scratch.token_lost();
        self.scratch.clear();
        if lost && self.state == State::Op {
            self.shift_to_gather(now, out);
        }
    }

    /// Passes on what the ring being installed produced and follows the recovery.
    fn route_recovery(&mut self, now: Time, out: &mut Outputs) {
        for (to, bytes) in self.scratch.sends() {
            out.send(to, bytes);
        }
        let delivered: Vec<(u64, u32, ServiceLevel, Vec<u8>)> = self
            .scratch
            .deliveries()
            .map(|d| (d.seq, d.origin, d.service, d.message.to_vec()))
            .collect();
        let lost = self.scratch.token_lost();
        self.scratch.clear();
        for (seq, origin, service, message) in delivered {
            let d = ring::Delivery {
                seq,
                origin,
                service,
                message: &message,
            };
            if self.state == State::Op {
                // Traffic of the new configuration, after this daemon installed it.
                deliver_client(d, self.ring.ring_id(), out, &mut self.stats);
            } else {
                self.recover(now, d, out);
            }
        }
        // The new ring may have been installed on the way: its loss counts all the same.
        if lost && matches!(self.state, State::Evs | State::Op) {
            self.shift_to_gather(now, out);
        }
    }

    fn recover(&mut self, now: Time, d: ring::Delivery<'_>, out: &mut Outputs) {
        let Some(recovery) = self.recovery.as_mut() else {
            return;
        };
        match d.message.split_first() {
            Some((&TAG_PACKET, packet)) => {
                // Packets of another old ring are for the members that come from it.
                match decode(packet) {
                    Ok(p) if p.header.ring == self.ring.ring_id() => {
                        // False for copies of what this daemon has: several members may send one.
                        self.ring.insert_recovered(&p);
                    }
                    Ok(_) => {}
                    Err(_) => self.stats.bad_recovery += 1,
                }
            }
            Some((&TAG_SENT_ALL, [])) => {
                if !recovery.sent_all.contains(&d.origin) {
                    recovery.sent_all.push(d.origin);
                }
                if recovery.sent_all.len() == recovery.members.len() {
                    recovery
                        .ring
                        .submit(now, ServiceLevel::Agreed, vec![TAG_HAVE_ALL], &mut self.scratch)
                        .expect("a marker fits");
                    // Sends only: nothing is delivered by a submit.
                    for (to, bytes) in self.scratch.sends() {
                        out.send(to, bytes);
                    }
                    self.scratch.clear();
                }
            }
            Some((&TAG_HAVE_ALL, [])) => {
                if !recovery.have_all.contains(&d.origin) {
                    recovery.have_all.push(d.origin);
                }
                if recovery.have_all.len() == recovery.members.len() {
                    self.finish_install(now, out);
                }
            }
            _ => self.stats.bad_recovery += 1,
        }
    }

    /// Every member has everything: deliver the old ring's rest in EVS order and install.
    fn finish_install(&mut self, now: Time, out: &mut Outputs) {
        let Some(recovery) = self.recovery.take() else {
            return;
        };
        let old = self.ring.ring_id();
        let safe = recovery
            .members
            .iter()
            .filter(|(_, e)| e.ring == old)
            .map(|(_, e)| e.safe)
            .max()
            .unwrap_or(0);
        self.ring.deliver_regular(safe, &mut self.scratch);
        self.deliver_old(out);
        let new_ring = recovery.ring.ring_id();
        let transitional_id = RingId {
            rep: recovery.transitional[0],
            seq: new_ring.seq,
        };
        out.transitional(transitional_id, &recovery.transitional);
        self.ring
            .deliver_transitional(&recovery.transitional, &mut self.scratch);
        self.deliver_old(out);
        let members: Vec<(u32, RingId)> = recovery.members.iter().map(|&(m, e)| (m, e.ring)).collect();
        out.regular(new_ring, &members);
        self.stats.installs += 1;
        self.retired_rings += self.ring.stats();
        self.ring = recovery.ring;
        self.state = State::Op;
        self.form_deadline = None;
        self.lookup_deadline = Some(now + self.params.lookup_timeout);
        for (service, message) in std::mem::take(&mut self.waiting) {
            self.ring
                .submit(now, service, message, &mut self.scratch)
                .expect("length checked on submit");
        }
        for (to, bytes) in self.scratch.sends() {
            out.send(to, bytes);
        }
        self.scratch.clear();
    }

    /// Client messages the frozen old ring just delivered.
    fn deliver_old(&mut self, out: &mut Outputs) {
        let ring = self.ring.ring_id();
        for d in self.scratch.deliveries() {
            deliver_client(d, ring, out, &mut self.stats);
        }
        self.scratch.clear();
    }
}

/// A client message from a ring, without its tag; anything else there is dropped and counted.
fn deliver_client(d: ring::Delivery<'_>, ring: RingId, out: &mut Outputs, stats: &mut MembershipStats) {
    match d.message.split_first() {
        Some((&TAG_CLIENT, message)) => {
            out.deliver(d.origin, d.service, message, Position { ring, seq: d.seq })
        }
        _ => stats.bad_recovery += 1,
    }
}
