//! One daemon's protocol state machine: its sessions and the group state, driven by inputs
//! and answering with outputs (no I/O, no clock, no randomness).
//!
//! A client request becomes an [`Ordered`] event that is *submitted* for ordering and later
//! *delivered* in the total order. With one daemon the order is the order of submission, so
//! delivery follows at once; a ring between daemons goes between the two steps.

mod frame;

pub use frame::Frame;

use std::collections::HashMap;

use crate::groups::{ConfigurationId, DaemonIndex, Event, Fanout, Groups, MemberId, Message, SessionId};
use crate::wire::name::{name_field, private_group_name};
use crate::wire::request::RequestKind;
use crate::wire::{Header, Name, HEADER_LEN, NAME_LEN, REJECT_NOT_UNIQUE};

/// A validated client request; `frame` is the whole message in this daemon's byte order.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    pub kind: RequestKind,
    pub header: Header,
    pub frame: Frame,
}

#[derive(Clone, Debug)]
pub enum Input {
    Request {
        session: SessionId,
        request: ClientRequest,
    },
    /// The connection ended without a disconnect request (close, error, violation, cut-off).
    Closed { session: SessionId },
}

#[derive(Clone, Debug)]
pub enum Output {
    /// Queue `frame` on the session's connection.
    Deliver { session: SessionId, frame: Frame },
    /// The client asked to disconnect: close its connection.
    End { session: SessionId },
}

/// A session accepted by [`Node::open_session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedSession {
    pub id: SessionId,
    /// `#private#daemon`, as the accept message tells the client.
    pub private_group: Vec<u8>,
}

/// An event in the total order of the configuration.
#[derive(Clone, Debug)]
enum Ordered {
    Join {
        group: Name,
        member: MemberId,
    },
    Leave {
        group: Name,
        member: MemberId,
    },
    Disconnect {
        member: MemberId,
    },
    Data {
        sender: MemberId,
        msg_type: u32,
        num_groups: usize,
        frame: Frame,
    },
}

#[derive(Clone, Debug)]
struct Session {
    private_name: Vec<u8>,
    member: MemberId,
}

/// One daemon.
#[derive(Debug)]
pub struct Node {
    daemon: DaemonIndex,
    daemon_name: Vec<u8>,
    groups: Groups,
    sessions: HashMap<SessionId, Session>,
    by_private_name: HashMap<Vec<u8>, SessionId>,
    next_session: u64,
    /// Scratch space for the group state's answers (kept to avoid an allocation per event).
    fanouts: Vec<Fanout>,
}

impl Node {
    /// Daemon `daemon` (its index in the configuration), named `daemon_name`, in
    /// configuration `configuration`.
    pub fn new(daemon: DaemonIndex, daemon_name: &[u8], configuration: ConfigurationId) -> Node {
        Node {
            daemon,
            daemon_name: daemon_name.to_vec(),
            groups: Groups::new(daemon, configuration),
            sessions: HashMap::new(),
            by_private_name: HashMap::new(),
            next_session: 1,
            fanouts: Vec::new(),
        }
    }

    pub fn private_name_in_use(&self, private_name: &[u8]) -> bool {
        self.by_private_name.contains_key(private_name)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
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

    pub fn handle(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Request { session, request } => self.request(session, request, out),
            Input::Closed { session } => self.close(session, out),
        }
    }

    fn request(&mut self, session: SessionId, request: ClientRequest, out: &mut Vec<Output>) {
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
        let event = match request.kind {
            RequestKind::Multicast => Ordered::Data {
                sender: member,
                msg_type: request.header.msg_type,
                num_groups: request.header.num_groups as usize,
                frame: request.frame,
            },
            RequestKind::Join => Ordered::Join {
                group: first_group(),
                member,
            },
            RequestKind::Leave => Ordered::Leave {
                group: first_group(),
                member,
            },
            RequestKind::Kill => {
                out.push(Output::End { session });
                return self.close(session, out);
            }
        };
        self.submit(event, out);
    }

    fn close(&mut self, session: SessionId, out: &mut Vec<Output>) {
        let Some(ended) = self.sessions.remove(&session) else {
            return;
        };
        self.by_private_name.remove(&ended.private_name);
        self.groups.remove_local_session(&ended.member.private_group);
        self.submit(Ordered::Disconnect { member: ended.member }, out);
    }

    /// Hands an event to the ordering; with one daemon it is next in the order.
    fn submit(&mut self, event: Ordered, out: &mut Vec<Output>) {
        self.deliver(event, out);
    }

    /// Applies an event in its place in the total order.
    fn deliver(&mut self, event: Ordered, out: &mut Vec<Output>) {
        let mut fanouts = std::mem::take(&mut self.fanouts);
        let data = match &event {
            Ordered::Join { group, member } => {
                self.groups.apply(
                    Event::Join {
                        group,
                        member: *member,
                    },
                    &mut fanouts,
                );
                None
            }
            Ordered::Leave { group, member } => {
                self.groups.apply(
                    Event::Leave {
                        group,
                        member: *member,
                    },
                    &mut fanouts,
                );
                None
            }
            Ordered::Disconnect { member } => {
                self.groups
                    .apply(Event::Disconnect { member: *member }, &mut fanouts);
                None
            }
            Ordered::Data {
                sender,
                msg_type,
                num_groups,
                frame,
            } => {
                let destinations = &frame.bytes()[HEADER_LEN..HEADER_LEN + NAME_LEN * num_groups];
                self.groups.apply(
                    Event::Data {
                        sender: *sender,
                        msg_type: *msg_type,
                        destinations,
                    },
                    &mut fanouts,
                );
                Some(frame)
            }
        };
        for fanout in fanouts.drain(..) {
            let frame = match fanout.message {
                Message::Data => data.expect("data fan-out of a data event").clone(),
                Message::Notice(bytes) => Frame::from_vec(bytes),
            };
            out.extend(fanout.sessions.into_iter().map(|session| Output::Deliver {
                session,
                frame: frame.clone(),
            }));
        }
        self.fanouts = fanouts;
    }
}

#[cfg(test)]
mod tests;
