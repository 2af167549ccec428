//! One daemon's protocol state machine: its sessions, the daemon membership with its ring, and
//! the group state, driven by inputs and answering with outputs (no I/O, no clock, no
//! randomness: the caller gives the time).
//!
//! A client request becomes an ordered event, encoded in an envelope (`envelope.rs`), and is
//! *submitted* to the ring; every daemon of the configuration decodes it when the ring
//! *delivers* it and applies it to its group state in the one total order. Configuration changes come from the
//! membership in the same order and go to the group state; a regular configuration that
//! brings in daemons makes each daemon submit its group state, and this daemon's sessions'
//! requests are held until that exchange is over (so that they are ordered after it, as in
//! the original). Everything of one session goes through one queue, so its messages keep
//! their order.

mod envelope;
mod frame;

pub use frame::Frame;

use std::collections::{HashMap, VecDeque};

use crate::groups::{ConfigurationId, DaemonIndex, Event, Fanout, Groups, MemberId, Message, SessionId};
use crate::membership::{self, Membership, MembershipStats};
use crate::ring::{Destination, Ring, RingStats, Time};
use crate::wire::name::{name_field, private_group_name};
use crate::wire::packet::{RingId, ServiceLevel};
use crate::wire::request::RequestKind;
use crate::wire::{Header, HEADER_LEN, NAME_LEN, REJECT_NOT_UNIQUE, SAFE_MESS};
use envelope::Envelope;

/// Messages of this daemon's sessions that may wait for the ring (in the membership or held
/// during an exchange) before the daemon stops reading from its clients.
const MAX_WAITING: usize = 1_000;
/// Datagrams to this daemon itself (the token of a ring of one) handled in one call; more
/// are left for the next call, so that one call cannot run away.
const LOOPBACK_PER_CALL: usize = 10_000;

/// Who this daemon is among the configured daemons, and how the membership runs.
#[derive(Clone, Debug)]
pub struct Setup {
    /// This daemon's id.
    pub me: u32,
    /// Every configured daemon id, in configuration (ring) order.
    pub daemons: Vec<u32>,
    pub daemon_name: Vec<u8>,
    pub config_hash: u32,
    pub params: membership::Params,
    /// Picked at start (wall-clock seconds) so that a restarted daemon's rings are new.
    pub epoch: u64,
}

/// A validated client request; `frame` is the whole message in this daemon's byte order.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub kind: RequestKind,
    pub header: Header,
    pub frame: Frame,
}

#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Request {
        session: SessionId,
        request: &'a ClientRequest,
    },
    /// The connection ended without a disconnect request (close, error, violation, cut-off).
    Closed { session: SessionId },
    /// A datagram from another daemon, and the network it came on.
    Packet { network: u8, bytes: &'a [u8] },
    /// The time given by [`Node::next_deadline`] has come (early calls do no harm).
    Timer,
}

#[derive(Clone, Debug)]
pub enum Output {
    /// Queue `frame` on the session's connection.
    Deliver { session: SessionId, frame: Frame },
    /// The client asked to disconnect: close its connection.
    End { session: SessionId },
    /// Send a datagram to other daemons.
    Send { to: Destination, datagram: Vec<u8> },
}

/// A session accepted by [`Node::open_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedSession {
    pub id: SessionId,
    /// `#private#daemon`, as the accept message tells the client.
    pub private_group: Vec<u8>,
}

/// What went wrong with delivered events, and what the node went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Delivered envelopes that did not decode (dropped).
    pub malformed_envelopes: u64,
    /// Regular configurations installed.
    pub configurations: u64,
}

#[derive(Clone, Debug)]
struct Session {
    private_name: Vec<u8>,
    member: MemberId,
}

/// One daemon.
pub struct Node {
    me: u32,
    /// Configured daemon ids; a daemon's index here is its [`DaemonIndex`].
    daemons: Vec<u32>,
    daemon: DaemonIndex,
    daemon_name: Vec<u8>,
    membership: Membership,
    /// The membership's state after the last call (its changes are logged).
    membership_state: membership::State,
    groups: Groups,
    sessions: HashMap<SessionId, Session>,
    by_private_name: HashMap<Vec<u8>, SessionId>,
    next_session: u64,
    /// Envelopes of this daemon's sessions held during a group-state exchange, in order.
    held: VecDeque<(ServiceLevel, Vec<u8>)>,
    /// Datagrams this daemon sent itself, to hand to the membership next.
    loopback: VecDeque<Vec<u8>>,
    /// Scratch space for the membership's and the group state's answers (kept to avoid
    /// allocations per event).
    ring_out: membership::Outputs,
    fanouts: Vec<Fanout>,
    stats: NodeStats,
}

/// The configuration id groups use for a ring (regular or transitional).
fn configuration_id(ring: RingId) -> ConfigurationId {
    ConfigurationId {
        proc_id: ring.rep as i32,
        time: ring.seq as i32,
    }
}

fn service_of(msg_type: u32) -> ServiceLevel {
    // Every level below SAFE gets the total order of AGREED: the ring delivers in sequence
    // order anyway, and one order keeps a session's messages in FIFO order.
    if msg_type & SAFE_MESS != 0 {
        ServiceLevel::Safe
    } else {
        ServiceLevel::Agreed
    }
}

impl Node {
    /// Panics if `setup.me` is not among `setup.daemons` (a configuration error the daemon
    /// rules out first); see [`Membership::new`] for the other conditions.
    pub fn new(setup: Setup, now: Time) -> Node {
        let daemon = setup
            .daemons
            .iter()
            .position(|&d| d == setup.me)
            .expect("this daemon is configured") as DaemonIndex;
        // The first configuration of a daemon (itself alone) names this one as its previous.
        let before_start = ConfigurationId {
            proc_id: setup.me as i32,
            time: 0,
        };
        Node {
            me: setup.me,
            membership: Membership::new(
                setup.me,
                setup.daemons.clone(),
                setup.config_hash,
                setup.params,
                setup.epoch,
                now,
            ),
            membership_state: membership::State::Op,
            daemons: setup.daemons,
            daemon,
            daemon_name: setup.daemon_name,
            groups: Groups::new(daemon, before_start),
            sessions: HashMap::new(),
            by_private_name: HashMap::new(),
            next_session: 1,
            held: VecDeque::new(),
            loopback: VecDeque::new(),
            ring_out: membership::Outputs::new(),
            fanouts: Vec::new(),
            stats: NodeStats::default(),
        }
    }

    pub fn private_name_in_use(&self, private_name: &[u8]) -> bool {
        self.by_private_name.contains_key(private_name)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn stats(&self) -> NodeStats {
        self.stats
    }

    pub fn membership_stats(&self) -> &MembershipStats {
        self.membership.stats()
    }

    /// The counters of every ring this daemon ran, the current one included.
    pub fn ring_stats(&self) -> RingStats {
        self.membership.ring_stats()
    }

    /// The membership's state: operational, or forming a new ring.
    pub fn membership_state(&self) -> membership::State {
        self.membership.state()
    }

    /// The ring of the current regular configuration: its id, members and positions.
    pub fn ring(&self) -> &Ring {
        self.membership.ring()
    }

    /// Groups with at least one member, daemon-wide.
    pub fn group_count(&self) -> usize {
        self.groups.group_count()
    }

    /// False while so many of this daemon's messages wait for the ring that the daemon should
    /// stop reading from its clients.
    pub fn accepting_requests(&self) -> bool {
        self.membership.waiting_messages() + self.held.len() < MAX_WAITING
    }

    /// When [`Input::Timer`] is due.
    pub fn next_deadline(&self) -> Option<Time> {
        if self.loopback.is_empty() {
            self.membership.next_deadline()
        } else {
            Some(Time::ZERO)
        }
    }

    /// Starts a session for an authorised client; `REJECT_NOT_UNIQUE` if the name is taken.
    pub fn open_session(&mut self, private_name: &[u8], membership: bool) -> Result<OpenedSession, i32> {
        if self.private_name_in_use(private_name) {
            return Err(REJECT_NOT_UNIQUE);
        }
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let private_group = private_group_name(private_name, &self.daemon_name);
        let member = MemberId {
            daemon: self.daemon,
            private_group: name_field(&private_group),
        };
        self.groups
            .add_local_session(id, &member.private_group, membership);
        self.sessions.insert(
            id,
            Session {
                private_name: private_name.to_vec(),
                member,
            },
        );
        self.by_private_name.insert(private_name.to_vec(), id);
        Ok(OpenedSession { id, private_group })
    }

    pub fn handle(&mut self, now: Time, input: Input<'_>, out: &mut Vec<Output>) {
        match input {
            Input::Request { session, request } => self.request(now, session, request, out),
            Input::Closed { session } => self.close(now, session, out),
            Input::Packet { network, bytes } => {
                let input = membership::Input::Packet { network, bytes };
                self.membership.handle(now, input, &mut self.ring_out);
                self.route(now, out);
            }
            Input::Timer => {
                self.membership
                    .handle(now, membership::Input::Timer, &mut self.ring_out);
                self.route(now, out);
            }
        }
        for _ in 0..LOOPBACK_PER_CALL {
            let Some(datagram) = self.loopback.pop_front() else {
                break;
            };
            let input = membership::Input::Packet {
                network: 0,
                bytes: &datagram,
            };
            self.membership.handle(now, input, &mut self.ring_out);
            self.route(now, out);
        }
    }

    fn request(&mut self, now: Time, session: SessionId, request: &ClientRequest, out: &mut Vec<Output>) {
        let Some(member) = self.sessions.get(&session).map(|s| s.member) else {
            log::debug!("request of ended session {session:?} dropped");
            return;
        };
        let first_group = || {
            let names = &request.frame.bytes()[HEADER_LEN..];
            let mut group = [0u8; NAME_LEN];
            group.copy_from_slice(&names[..NAME_LEN]);
            group
        };
        let (service, envelope) = match request.kind {
            RequestKind::Multicast => (
                service_of(request.header.msg_type),
                envelope::encode_data(&member, &request.header, &request.frame.bytes()[HEADER_LEN..]),
            ),
            RequestKind::Join => (
                ServiceLevel::Agreed,
                envelope::encode_join(&member, &first_group()),
            ),
            RequestKind::Leave => (
                ServiceLevel::Agreed,
                envelope::encode_leave(&member, &first_group()),
            ),
            RequestKind::Kill => {
                out.push(Output::End { session });
                return self.close(now, session, out);
            }
        };
        self.submit(now, service, envelope, out);
    }

    fn close(&mut self, now: Time, session: SessionId, out: &mut Vec<Output>) {
        let Some(ended) = self.sessions.remove(&session) else {
            return;
        };
        self.by_private_name.remove(&ended.private_name);
        self.groups.remove_local_session(&ended.member.private_group);
        let envelope = envelope::encode_disconnect(&ended.member);
        self.submit(now, ServiceLevel::Agreed, envelope, out);
    }

    /// Hands one of this daemon's events to the ring, or holds it behind an exchange (and
    /// behind what is held already, to keep each session's order).
    fn submit(&mut self, now: Time, service: ServiceLevel, envelope: Vec<u8>, out: &mut Vec<Output>) {
        if self.groups.exchanging() || !self.held.is_empty() {
            self.held.push_back((service, envelope));
            return;
        }
        self.submit_to_ring(now, service, envelope);
        self.route(now, out);
    }

    fn submit_to_ring(&mut self, now: Time, service: ServiceLevel, envelope: Vec<u8>) {
        if let Err(e) = self.membership.submit(now, service, envelope, &mut self.ring_out) {
            // Client messages are far below the ring's limit: a bug if it happens.
            log::error!("event not submitted: {e}");
        }
    }

    /// Carries out what the membership produced: datagrams go out (or back in, for this
    /// daemon itself), events are applied; then the group state this daemon owes and, once
    /// an exchange is over, the held events are submitted.
    fn route(&mut self, now: Time, out: &mut Vec<Output>) {
        if self.membership.state() != self.membership_state {
            log::debug!(
                "membership {:?} -> {:?}",
                self.membership_state,
                self.membership.state()
            );
            self.membership_state = self.membership.state();
        }
        loop {
            let mut ring_out = std::mem::take(&mut self.ring_out);
            let alone = self.daemons.len() == 1;
            for (to, bytes) in ring_out.sends() {
                match to {
                    Destination::Daemon(id) if id == self.me => self.loopback.push_back(bytes.to_vec()),
                    // Nobody else is configured.
                    Destination::All if alone => {}
                    _ => out.push(Output::Send {
                        to,
                        datagram: bytes.to_vec(),
                    }),
                }
            }
            let mut states = Vec::new();
            for event in ring_out.events() {
                self.apply(event, &mut states, out);
            }
            ring_out.clear();
            self.ring_out = ring_out;
            for state in states {
                self.submit_to_ring(now, ServiceLevel::Agreed, envelope::encode_group_state(&state));
            }
            if !self.groups.exchanging() {
                while let Some((service, envelope)) = self.held.pop_front() {
                    self.submit_to_ring(now, service, envelope);
                }
            }
            if self.ring_out.is_empty() {
                return;
            }
        }
    }

    fn index_of(&self, id: u32) -> Option<DaemonIndex> {
        self.daemons
            .iter()
            .position(|&d| d == id)
            .map(|i| i as DaemonIndex)
    }

    /// Applies one event of the total order; a group state this daemon must submit goes to
    /// `states`.
    fn apply(&mut self, event: membership::Event<'_>, states: &mut Vec<Vec<u8>>, out: &mut Vec<Output>) {
        let mut fanouts = std::mem::take(&mut self.fanouts);
        let mut data = None;
        match event {
            membership::Event::Deliver { origin, message, .. } => {
                data = self.deliver(origin, message, &mut fanouts);
            }
            membership::Event::Transitional { ring, members } => {
                let indices: Vec<DaemonIndex> = members.iter().filter_map(|&m| self.index_of(m)).collect();
                log::info!(
                    "transitional configuration {:#x}/{}: daemons {}",
                    ring.rep,
                    ring.seq,
                    self.names(members.iter().copied())
                );
                self.groups
                    .transitional(configuration_id(ring), &indices, &mut fanouts);
            }
            membership::Event::Regular { ring, members } => {
                let pairs: Vec<(DaemonIndex, ConfigurationId)> = members
                    .iter()
                    .filter_map(|&(m, from)| Some((self.index_of(m)?, configuration_id(from))))
                    .collect();
                log::info!(
                    "regular configuration {:#x}/{}: daemons {}",
                    ring.rep,
                    ring.seq,
                    self.names(members.iter().map(|&(m, _)| m))
                );
                self.stats.configurations += 1;
                if let Some(state) = self.groups.regular(configuration_id(ring), &pairs, &mut fanouts) {
                    states.push(state);
                }
            }
        }
        for fanout in fanouts.drain(..) {
            let frame = match fanout.message {
                Message::Data => match &data {
                    Some(frame) => frame.clone(),
                    None => {
                        log::error!("group state gave a data message for another event");
                        continue;
                    }
                },
                Message::Notice(bytes) => Frame::from_vec(bytes),
            };
            out.extend(fanout.sessions.into_iter().map(|session| Output::Deliver {
                session,
                frame: frame.clone(),
            }));
        }
        self.fanouts = fanouts;
    }

    /// Daemon ids as hexadecimal numbers, for the log.
    fn names(&self, ids: impl Iterator<Item = u32>) -> String {
        ids.map(|id| format!("{id:#x}")).collect::<Vec<_>>().join(" ")
    }

    /// Applies a delivered envelope; returns the data message's frame if it is one.
    fn deliver(&mut self, origin: u32, message: &[u8], fanouts: &mut Vec<Fanout>) -> Option<Frame> {
        let Some(from) = self.index_of(origin) else {
            self.stats.malformed_envelopes += 1;
            log::warn!("event from unconfigured daemon {origin:#x} dropped");
            return None;
        };
        let envelope = match envelope::decode(message, from) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.stats.malformed_envelopes += 1;
                log::warn!("malformed event from daemon {origin:#x} dropped: {e:?}");
                return None;
            }
        };
        match envelope {
            Envelope::Join { member, group } => self.groups.apply(Event::Join { group, member }, fanouts),
            Envelope::Leave { member, group } => self.groups.apply(Event::Leave { group, member }, fanouts),
            Envelope::Disconnect { member } => self.groups.apply(Event::Disconnect { member }, fanouts),
            Envelope::GroupState(bytes) => self.groups.apply(Event::GroupState { from, bytes }, fanouts),
            Envelope::Data {
                sender,
                header,
                names,
                payload,
            } => {
                self.groups.apply(
                    Event::Data {
                        sender,
                        msg_type: header.msg_type,
                        destinations: names,
                    },
                    fanouts,
                );
                if fanouts.iter().any(|f| f.message == Message::Data) {
                    let mut frame = Vec::with_capacity(HEADER_LEN + names.len() + payload.len());
                    frame.extend_from_slice(&header.encode());
                    frame.extend_from_slice(names);
                    frame.extend_from_slice(payload);
                    return Some(Frame::from_vec(frame));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
