//! One daemon's part in an operational token ring with a fixed membership (sans-IO).
//!
//! Spread's ordering protocol: the daemon holding the token answers the retransmission requests
//! it can, gives its waiting messages the next sequence numbers (within the personal window and
//! what the global window leaves after the token's flow-control count), adds its own
//! retransmission requests, updates the token's all-received-up-to (aru) mark and passes it on.
//! With the accelerated ring, the last packets of a visit go out after the token. AGREED and
//! lower levels are delivered once every lower sequence number is; SAFE once the aru shows every
//! daemon has it, which takes the minimum of the aru on the token just sent and the one sent a
//! rotation before.
//!
//! Tokens carry a rotation number the leader (the first member) bumps on each pass: a copy with
//! the number already seen is a duplicate, an older one is stale; both are dropped and counted.
//! When the leader hears nothing for `HurryTimeout` it resends its last token with a higher
//! retransmission count, and every daemon that already passed that rotation resends its own last
//! token, until the copy reaches the daemon that missed it. When the ring is idle the leader
//! holds the token; a daemon with new messages asks it to let go (a hurry request). No token and
//! no packet for `TokenTimeout` is reported as token loss, for the membership protocol.
//!
//! After token loss the ring is frozen (the membership protocol stops feeding it) and serves
//! the recovery of extended virtual synchrony: it reports what it has, gives copies of its
//! packets, takes packets other members recovered, then delivers the rest of its messages in two
//! steps, those of the regular configuration and those of the transitional one.

mod datagrams;
mod output;
mod params;
mod reassembly;
mod sender;
mod store;
mod time;

#[cfg(test)]
mod tests;

use std::ops::Range;

pub use datagrams::Datagrams;
pub use output::{Delivery, Destination, Outputs};
pub use params::{Params, Setup, DEFAULT_MAX_SEQ_GAP};
pub use time::Time;

use crate::wire::packet::{
    decode, encode_hurry, encode_token, restamp, Body, Header, Kind, Packet, RingId, ServiceLevel,
    TokenFields, MAX_MESSAGE_LEN, MAX_RTR, TOKEN_PREFIX_LEN,
};
use reassembly::Reassembly;
use sender::SendQueue;
use store::Store;

/// Smallest MTU the ring works with (a token with a few requests, fragments of useful size).
pub const MIN_MTU: usize = 200;
/// Largest UDP payload over IPv4.
pub const MAX_MTU: usize = 65507;

/// What the ring is told.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A decoded datagram and the network it arrived on.
    Packet { network: u8, packet: Packet<'a> },
    /// The time given by [`Ring::next_deadline`] has come (early calls do nothing).
    Timer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    NotAMember,
    DuplicateMember(u32),
    MtuOutOfRange(usize),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::NotAMember => write!(f, "this daemon is not in the ring's membership"),
            SetupError::DuplicateMember(id) => write!(f, "daemon {id:#x} appears twice in the ring"),
            SetupError::MtuOutOfRange(mtu) => write!(f, "MTU {mtu} outside {MIN_MTU}..={MAX_MTU}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// A message longer than [`MAX_MESSAGE_LEN`] was submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTooLarge(pub usize);

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Tokens accepted and processed (one per rotation).
    pub tokens: u64,
    /// Copies of a token this daemon already processed.
    pub duplicate_tokens: u64,
    /// Copies of tokens older than the last one processed.
    pub stale_tokens: u64,
    /// Tokens resent on a hurry timeout or a retransmission request.
    pub token_resends: u64,
    /// Rotations the leader held the token because the ring was idle.
    pub token_holds: u64,
    pub hurry_sent: u64,
    pub hurry_received: u64,
    /// New data packets this daemon sent.
    pub packets_sent: u64,
    /// Data packets resent for others' requests.
    pub packets_retransmitted: u64,
    /// Data packets received for the first time.
    pub packets_received: u64,
    /// Data packets received again, or after they were discarded.
    pub duplicate_packets: u64,
    /// Packets of another ring or configuration, from strangers, on the wrong network, out of
    /// the sequence window, or tokens after token loss.
    pub refused_packets: u64,
    /// Requests for packets already discarded (every daemon had them): ignored.
    pub stale_requests: u64,
    /// Messages that could not be rebuilt from their fragments (dropped).
    pub broken_messages: u64,
    /// Times the tokens' aru would have lowered the delivery mark (kept instead).
    pub aru_regressions: u64,
}

impl std::ops::AddAssign<&RingStats> for RingStats {
    fn add_assign(&mut self, s: &RingStats) {
        self.tokens += s.tokens;
        self.duplicate_tokens += s.duplicate_tokens;
        self.stale_tokens += s.stale_tokens;
        self.token_resends += s.token_resends;
        self.token_holds += s.token_holds;
        self.hurry_sent += s.hurry_sent;
        self.hurry_received += s.hurry_received;
        self.packets_sent += s.packets_sent;
        self.packets_retransmitted += s.packets_retransmitted;
        self.packets_received += s.packets_received;
        self.duplicate_packets += s.duplicate_packets;
        self.refused_packets += s.refused_packets;
        self.stale_requests += s.stale_requests;
        self.broken_messages += s.broken_messages;
        self.aru_regressions += s.aru_regressions;
    }
}

pub struct Ring {
    setup: Setup,
    params: Params,
    leader: bool,
    next: u32,
    prev: u32,
    /// Requests one token carries at most (bounded by the MTU).
    rtr_limit: usize,
    /// Sequence numbers accepted at most this far past the last discarded one.
    seq_window: u64,
    store: Store,
    sender: SendQueue,
    reassembly: Reassembly,
    /// Highest sequence number seen on a packet or token.
    highest_seq: u64,
    /// This daemon has every packet up to here.
    my_aru: u64,
    /// Every daemon has every packet up to here (SAFE delivery and discarding follow it).
    aru: u64,
    last_delivered: u64,
    /// The token as this daemon last sent it (or held it).
    last_token: TokenFields,
    /// Rotations in a row that ended with everything stable (the idle ring's hold rule).
    idle_rotations: u32,
    last_num_retrans: u32,
    last_num_sent: u32,
    loss_deadline: Option<Time>,
    hurry_deadline: Option<Time>,
    token_lost: bool,
    /// Requests of the token being processed (kept for its capacity).
    requests_in: Vec<u64>,
    /// This daemon's requests for the token it passes on.
    requests_out: Vec<u64>,
    new_packets: Vec<Range<usize>>,
    stats: RingStats,
}

impl Ring {
    pub fn new(setup: Setup, params: Params) -> Result<Ring, SetupError> {
        let index = setup
            .members
            .iter()
            .position(|&m| m == setup.me)
            .ok_or(SetupError::NotAMember)?;
        for (i, &m) in setup.members.iter().enumerate() {
            if setup.members[..i].contains(&m) {
                return Err(SetupError::DuplicateMember(m));
            }
        }
        if !(MIN_MTU..=MAX_MTU).contains(&params.mtu) {
            return Err(SetupError::MtuOutOfRange(params.mtu));
        }
        let n = setup.members.len();
        let window = u64::from(params.window) + u64::from(params.personal_window);
        Ok(Ring {
            leader: index == 0,
            next: setup.members[(index + 1) % n],
            prev: setup.members[(index + n - 1) % n],
            rtr_limit: ((params.mtu - TOKEN_PREFIX_LEN) / 8).min(MAX_RTR),
            seq_window: params.max_seq_gap + 4 * window,
            store: Store::new(),
            sender: SendQueue::new(params.mtu),
            reassembly: Reassembly::new(&setup.members),
            highest_seq: 0,
            my_aru: 0,
            aru: 0,
            last_delivered: 0,
            last_token: TokenFields::default(),
            idle_rotations: 0,
            last_num_retrans: 0,
            last_num_sent: 0,
            loss_deadline: None,
            hurry_deadline: None,
            token_lost: false,
            requests_in: Vec::new(),
            requests_out: Vec::new(),
            new_packets: Vec::new(),
            stats: RingStats::default(),
            setup,
            params,
        })
    }

    /// Starts the ring: arms the token loss timer, and the leader sends the first token.
    pub fn start(&mut self, now: Time, out: &mut Outputs) {
        self.loss_deadline = Some(now + self.params.token_timeout);
        if self.leader {
            self.process_token(now, self.last_token, &[], out);
        }
    }

    /// Feeds one input; what it causes is appended to `out`.
    pub fn handle(&mut self, now: Time, input: Input<'_>, out: &mut Outputs) {
        match input {
            Input::Packet { network, packet } => self.receive(now, network, &packet, out),
            Input::Timer => self.timer(now, out),
        }
    }

    /// Queues a message of this daemon for the ring. When the token is held on an idle ring,
    /// asks the leader to release it.
    pub fn submit(
        &mut self,
        now: Time,
        service: ServiceLevel,
        message: Vec<u8>,
        out: &mut Outputs,
    ) -> Result<(), MessageTooLarge> {
        if message.len() > MAX_MESSAGE_LEN {
            return Err(MessageTooLarge(message.len()));
        }
        let first = self.sender.is_empty();
        self.sender.push(service, message);
        if first && self.is_token_held() {
            if self.leader {
                self.idle_rotations = 0;
                self.resend_token(now, out);
            } else {
                let range = self.encode(out, encode_hurry, Kind::Hurry);
                out.queue_send(Destination::Daemon(self.setup.members[0]), range);
                self.stats.hurry_sent += 1;
            }
        }
        Ok(())
    }

    /// When [`Input::Timer`] is due; `None` once the token is lost.
    pub fn next_deadline(&self) -> Option<Time> {
        match (self.loss_deadline, self.hurry_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn me(&self) -> u32 {
        self.setup.me
    }

    pub fn stats(&self) -> &RingStats {
        &self.stats
    }

    pub fn highest_seq(&self) -> u64 {
        self.highest_seq
    }

    pub fn my_aru(&self) -> u64 {
        self.my_aru
    }

    /// The mark up to which every daemon has every packet.
    pub fn aru(&self) -> u64 {
        self.aru
    }

    /// Whether this daemon has had packet `seq` (kept, or discarded because all had it).
    pub fn has_received(&self, seq: u64) -> bool {
        seq <= self.store.last_discarded() || self.store.contains(seq)
    }

    /// Messages submitted and not yet given a sequence number.
    pub fn waiting_messages(&self) -> usize {
        self.sender.len()
    }

    pub fn is_token_lost(&self) -> bool {
        self.token_lost
    }

    pub fn ring_id(&self) -> RingId {
        self.setup.ring
    }

    pub fn members(&self) -> &[u32] {
        &self.setup.members
    }

    /// The stored datagram of packet `seq` (none once discarded or never received).
    pub fn stored_packet(&self, seq: u64) -> Option<&[u8]> {
        self.store.get(seq)
    }

    /// Takes the messages not yet given a sequence number, in submission order. A message whose
    /// first fragments went out is taken whole: its fragments on the ring never complete.
    pub fn take_unsent(&mut self) -> Vec<(ServiceLevel, Vec<u8>)> {
        self.sender.take_all()
    }

    /// Stores a packet of this ring that another member recovered for this one (after token
    /// loss; nothing is delivered). False when it is not a data packet of this ring from a
    /// member, or already here.
    pub fn insert_recovered(&mut self, packet: &Packet<'_>) -> bool {
        let Body::Data(data) = packet.body else {
            return false;
        };
        if packet.header.ring != self.setup.ring
            || packet.header.config_hash != self.setup.config_hash
            || !self.setup.members.contains(&data.origin)
            || data.seq <= self.store.last_discarded()
            || data.seq - self.store.last_discarded() > self.seq_window
            || !self.store.insert(data.seq, packet.bytes)
        {
            return false;
        }
        self.highest_seq = self.highest_seq.max(data.seq);
        self.advance_my_aru();
        true
    }

    /// Delivers what the old regular configuration may still deliver: every message up to the
    /// first packet missing here, SAFE ones only up to `safe`, a mark up to which some member
    /// knew every member had every packet.
    pub fn deliver_regular(&mut self, safe: u64, out: &mut Outputs) {
        if safe > self.aru && safe <= self.my_aru {
            self.aru = safe;
        }
        self.deliver_ready(out);
    }

    /// Delivers the rest in the transitional configuration of `members` (who all have the same
    /// packets by now): in sequence order, SAFE included, skipping missing packets; after the
    /// first missing one only packets of `members`, since the origin of a missing packet is not
    /// one of them and its later messages would break FIFO order.
    pub fn deliver_transitional(&mut self, members: &[u32], out: &mut Outputs) {
        let mut gap = false;
        for seq in self.last_delivered + 1..=self.highest_seq {
            let Some(Ok(packet)) = self.store.get(seq).map(decode) else {
                gap = true;
                continue;
            };
            let Body::Data(data) = packet.body else {
                continue;
            };
            if (!gap || members.contains(&data.origin)) && !self.reassembly.deliver(&data, out) {
                self.stats.broken_messages += 1;
            }
        }
        self.last_delivered = self.highest_seq;
    }

    fn header(&self, kind: Kind) -> Header {
        Header {
            kind,
            network: self.setup.network,
            config_hash: self.setup.config_hash,
            sender: self.setup.me,
            ring: self.setup.ring,
        }
    }

    /// Encodes one datagram into the output arena and returns where it is.
    fn encode(
        &self,
        out: &mut Outputs,
        write: impl FnOnce(&mut Vec<u8>, &Header),
        kind: Kind,
    ) -> Range<usize> {
        let header = self.header(kind);
        let arena = out.datagram_arena();
        let start = arena.len();
        write(arena, &header);
        start..arena.len()
    }

    fn receive(&mut self, now: Time, network: u8, packet: &Packet<'_>, out: &mut Outputs) {
        let h = &packet.header;
        // A copy claiming another network than it came on (crossed links) is the link layer's
        // to report; it must not feed the ring.
        if h.network != network
            || h.config_hash != self.setup.config_hash
            || h.ring != self.setup.ring
            || !self.setup.members.contains(&h.sender)
        {
            self.stats.refused_packets += 1;
            return;
        }
        match packet.body {
            Body::Data(data) => self.receive_data(now, packet.bytes, data.seq, data.origin, out),
            Body::Token(token) => {
                let mut requests = std::mem::take(&mut self.requests_in);
                requests.clear();
                requests.extend(token.rtr());
                self.receive_token(now, h.sender, token.fields, &requests, out);
                self.requests_in = requests;
            }
            Body::Hurry => {
                self.stats.hurry_received += 1;
                if self.leader && self.is_token_held() {
                    self.idle_rotations = 0;
                    self.resend_token(now, out);
                }
            }
            Body::Alive | Body::Join(_) | Body::Form(_) => self.stats.refused_packets += 1,
        }
    }

    fn receive_data(&mut self, now: Time, bytes: &[u8], seq: u64, origin: u32, out: &mut Outputs) {
        if !self.setup.members.contains(&origin) {
            self.stats.refused_packets += 1;
            return;
        }
        if seq <= self.store.last_discarded() {
            // A copy of a packet every member had long ago (say late on a slow network) says
            // nothing of the token: it must not hold back the hurry or the loss.
            self.stats.duplicate_packets += 1;
            return;
        }
        if !self.token_lost {
            // Packets of the ring show the token is alive.
            self.loss_deadline = Some(now + self.params.token_timeout);
            if self.leader {
                self.hurry_deadline = Some(now + self.params.hurry_timeout);
            }
        }
        if self.store.contains(seq) {
            self.stats.duplicate_packets += 1;
            return;
        }
        if seq - self.store.last_discarded() > self.seq_window {
            self.stats.refused_packets += 1;
            return;
        }
        self.store.insert(seq, bytes);
        self.stats.packets_received += 1;
        self.highest_seq = self.highest_seq.max(seq);
        if seq == self.my_aru + 1 {
            self.advance_my_aru();
            self.deliver_ready(out);
        }
    }

    fn receive_token(&mut self, now: Time, sender: u32, token: TokenFields, rtr: &[u64], out: &mut Outputs) {
        if self.token_lost || sender != self.prev {
            self.stats.refused_packets += 1;
            return;
        }
        let last = self.last_token.rotation;
        if self.leader {
            // The leader bumped the rotation when it sent the token: only that one comes back.
            if token.rotation != last {
                self.stats.stale_tokens += 1;
                return;
            }
        } else if token.rotation == last {
            self.stats.duplicate_tokens += 1;
            if token.retrans > self.last_token.retrans {
                // The leader is hurrying a lost token along: pass ours on again. The ring still
                // turns, so a token loss counts from now, not from our last token.
                self.last_token.retrans = token.retrans;
                self.loss_deadline = Some(now + self.params.token_timeout);
                self.resend_token(now, out);
            }
            return;
        } else if token.rotation != last.wrapping_add(1) {
            self.stats.stale_tokens += 1;
            return;
        }
        self.process_token(now, token, rtr, out);
    }

    fn process_token(&mut self, now: Time, mut token: TokenFields, rtr: &[u64], out: &mut Outputs) {
        self.stats.tokens += 1;
        self.highest_seq = self.highest_seq.max(token.seq);

        let num_retrans = self.answer_requests(rtr, out);
        let num_sent = self.send_new_packets(token.flow_control, out);
        let after_token = if self.params.accelerated_ring {
            num_sent.min(self.params.accelerated_window as usize)
        } else {
            0
        };
        for range in &self.new_packets[..num_sent - after_token] {
            out.queue_send(Destination::All, range.clone());
        }

        // The token counts what the ring sent in its last rotation: replace our share.
        let flow =
            i64::from(token.flow_control) - i64::from(self.last_num_retrans) - i64::from(self.last_num_sent)
                + num_retrans as i64
                + num_sent as i64;
        token.flow_control = flow.clamp(0, i64::from(u32::MAX)) as u32;
        self.last_num_retrans = num_retrans as u32;
        self.last_num_sent = num_sent as u32;

        self.advance_my_aru();
        self.collect_requests();

        if token.aru > self.my_aru || token.aru_setter == self.setup.me || token.aru == token.seq {
            token.aru = self.my_aru;
            token.aru_setter = self.setup.me;
        }
        token.seq = self.highest_seq;
        if self.leader {
            token.rotation = token.rotation.wrapping_add(1);
            token.retrans = 0;
        }

        if self.leader && self.is_token_held() {
            self.stats.token_holds += 1;
        } else {
            let copies = if token.retrans > 1 { 3 } else { 1 };
            let range = self.encode(
                out,
                |out, h| encode_token(out, h, &token, &self.requests_out),
                Kind::Token,
            );
            for _ in 0..copies {
                out.queue_send(Destination::Daemon(self.next), range.clone());
            }
        }
        if self.leader {
            self.hurry_deadline = Some(now + self.params.hurry_timeout);
        }
        self.loss_deadline = Some(now + self.params.token_timeout);
        for range in &self.new_packets[num_sent - after_token..] {
            out.queue_send(Destination::All, range.clone());
        }

        // Every daemon had what the previous token said when this daemon sent it, and had what
        // this one says when it passed round: the lower of the two is stable everywhere.
        let stable = token.aru.min(self.last_token.aru);
        if stable < self.aru {
            self.stats.aru_regressions += 1;
        } else {
            self.aru = stable;
        }
        self.idle_rotations = if self.highest_seq == self.aru {
            self.idle_rotations.saturating_add(1)
        } else {
            0
        };
        self.last_token = token;

        self.deliver_ready(out);
        self.store.discard_through(self.aru.min(self.last_delivered));
    }

    /// Broadcasts the requested packets this daemon has; returns how many.
    fn answer_requests(&mut self, rtr: &[u64], out: &mut Outputs) -> usize {
        let mut answered = 0;
        for &seq in rtr {
            if let Some(packet) = self.store.get(seq) {
                let arena = out.datagram_arena();
                let start = arena.len();
                arena.extend_from_slice(packet);
                let range = start..arena.len();
                restamp(out.datagram_mut(range.clone()), self.setup.me, self.setup.network);
                out.queue_send(Destination::All, range);
                answered += 1;
            } else if seq <= self.store.last_discarded() {
                self.stats.stale_requests += 1;
            }
            // Requests this daemon cannot answer are dropped from the token: a daemon that
            // misses a packet asks again on every visit.
        }
        self.stats.packets_retransmitted += answered as u64;
        answered
    }

    /// Encodes (into `out`) and stores the packets flow control allows now; their ranges are
    /// left in `self.new_packets`. Returns how many.
    fn send_new_packets(&mut self, flow_control: u32, out: &mut Outputs) -> usize {
        self.new_packets.clear();
        let allowed = if self.highest_seq > self.aru + self.params.max_seq_gap {
            0
        } else {
            let window = i64::from(self.params.window);
            let personal = i64::from(self.params.personal_window);
            (window + personal - i64::from(flow_control)).clamp(0, window.min(personal)) as usize
        };
        let header = self.header(Kind::Data);
        while self.new_packets.len() < allowed {
            let arena = out.datagram_arena();
            let start = arena.len();
            if !self
                .sender
                .next_packet(arena, &header, self.highest_seq + 1, self.setup.me)
            {
                break;
            }
            self.highest_seq += 1;
            let range = start..out.datagram_arena().len();
            self.store.insert(self.highest_seq, out.datagram(range.clone()));
            self.new_packets.push(range);
        }
        self.stats.packets_sent += self.new_packets.len() as u64;
        self.new_packets.len()
    }

    /// Fills `requests_out` with the packets this daemon misses. With the accelerated ring,
    /// packets above the seq of our previous token may still be on their way: not asked yet.
    fn collect_requests(&mut self) {
        let up_to = if self.params.accelerated_ring {
            self.last_token.seq
        } else {
            self.highest_seq
        };
        self.requests_out.clear();
        let mut seq = self.my_aru + 1;
        while seq <= up_to && self.requests_out.len() < self.rtr_limit {
            if !self.store.contains(seq) {
                self.requests_out.push(seq);
            }
            seq += 1;
        }
    }

    /// Resends the last token without requests (Spread's token hurry). The leader counts the
    /// attempt on the token so the others know to pass theirs on again.
    fn resend_token(&mut self, now: Time, out: &mut Outputs) {
        if self.leader {
            self.last_token.retrans = self.last_token.retrans.saturating_add(1);
            self.hurry_deadline = Some(now + self.params.hurry_timeout);
        }
        let token = self.last_token;
        let copies = if token.retrans > 1 { 3 } else { 1 };
        let range = self.encode(out, |out, h| encode_token(out, h, &token, &[]), Kind::Token);
        for _ in 0..copies {
            out.queue_send(Destination::Daemon(self.next), range.clone());
        }
        self.stats.token_resends += 1;
    }

    /// True when the ring is idle: everything is stable everywhere, for two rotations, and
    /// the last token needed no more than one resend. The leader then keeps the token.
    fn is_token_held(&self) -> bool {
        !self.token_lost
            && self.last_token.retrans <= 1
            && self.aru == self.highest_seq
            && self.idle_rotations > 1
    }

    fn timer(&mut self, now: Time, out: &mut Outputs) {
        if self.loss_deadline.is_some_and(|d| d <= now) {
            self.token_lost = true;
            self.loss_deadline = None;
            self.hurry_deadline = None;
            out.set_token_lost();
        } else if self.hurry_deadline.is_some_and(|d| d <= now) {
            self.resend_token(now, out);
        }
    }

    fn advance_my_aru(&mut self) {
        while self.my_aru < self.highest_seq && self.store.contains(self.my_aru + 1) {
            self.my_aru += 1;
        }
    }

    /// Delivers in sequence order up to `my_aru`, stopping at a SAFE packet not yet stable.
    fn deliver_ready(&mut self, out: &mut Outputs) {
        while self.last_delivered < self.my_aru {
            let seq = self.last_delivered + 1;
            // Stored packets were decoded once already (received) or encoded here (sent).
            let Some(Ok(packet)) = self.store.get(seq).map(decode) else {
                self.stats.broken_messages += 1;
                self.last_delivered = seq;
                continue;
            };
            let Body::Data(data) = packet.body else {
                self.stats.broken_messages += 1;
                self.last_delivered = seq;
                continue;
            };
            if data.is_safe() && seq > self.aru {
                return;
            }
            if !self.reassembly.deliver(&data, out) {
                self.stats.broken_messages += 1;
            }
            self.last_delivered = seq;
        }
    }
}
