//! Who is in which group, applied to an already totally ordered stream of events.
//!
//! Every daemon of a configuration applies the same events in the same order, so every daemon
//! holds the same group state and hands out the same group ids. The result of each event is
//! what this daemon delivers to its own sessions: which sessions get a copy of a data message,
//! and the encoded membership notices with their receivers. No I/O and no clock: the caller
//! gives the configuration id.

use std::collections::{BTreeMap, HashMap};

use crate::wire::header::DAEMON_HINT;
use crate::wire::membership::encode_regular_body;
use crate::wire::name::{name_field, name_text};
use crate::wire::{
    GroupId, Header, Name, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, HEADER_LEN, NAME_LEN,
    REG_MEMB_MESS, SELF_DISCARD,
};

/// A daemon's position in the configuration (the order member lists are sorted by).
pub type DaemonIndex = u16;

/// One client connection of this daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// The daemon configuration group views are formed in: the first two integers of a group id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigurationId {
    pub proc_id: i32,
    pub time: i32,
}

/// A group member anywhere in the configuration: its daemon and its private group name
/// (`#private#daemon`, zero padded). Ordered as member lists are: daemon, then name bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    pub daemon: DaemonIndex,
    pub private_group: Name,
}

/// One totally ordered event. Names are 32-byte fields as they travel; only the text before
/// the first NUL counts.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Join {
        group: &'a Name,
        member: MemberId,
    },
    Leave {
        group: &'a Name,
        member: MemberId,
    },
    /// The member's connection ended (disconnect request, kill, close, protocol violation).
    Disconnect {
        member: MemberId,
    },
    /// A multicast; `destinations` holds the 32-byte name fields as the sender wrote them.
    Data {
        sender: MemberId,
        msg_type: u32,
        destinations: &'a [u8],
    },
}

/// What one event gives this daemon's sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// Each receiving session once, in increasing order.
    pub sessions: Vec<SessionId>,
    pub message: Message,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The data message of the event, as the sender framed it.
    Data,
    /// A notice made by the daemon: header, names and body, encoded.
    Notice(Vec<u8>),
}

/// A session of this daemon as group state needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LocalSession {
    id: SessionId,
    /// Connected with `group_membership` on: gets membership notices.
    membership: bool,
}

#[derive(Clone, Debug)]
struct Member {
    id: MemberId,
    /// The session behind a member of this daemon, fixed when it joined (a later session
    /// reusing the name does not inherit the membership).
    local: Option<LocalSession>,
}

#[derive(Clone, Debug)]
struct Group {
    id: GroupId,
    /// Sorted by member id.
    members: Vec<Member>,
}

/// Group state of one daemon.
#[derive(Debug)]
pub struct Groups {
    me: DaemonIndex,
    configuration: ConfigurationId,
    /// Ordered by name so every daemon walks groups in the same order.
    groups: BTreeMap<Name, Group>,
    /// Sessions of this daemon by private group name (receivers of private-group messages).
    local: HashMap<Name, LocalSession>,
}

impl Groups {
    /// Group state of daemon `me` in configuration `configuration`.
    pub fn new(me: DaemonIndex, configuration: ConfigurationId) -> Groups {
        Groups {
            me,
            configuration,
            groups: BTreeMap::new(),
            local: HashMap::new(),
        }
    }

    /// A session of this daemon starts (not an ordered event: only this daemon cares).
    pub fn add_local_session(&mut self, id: SessionId, private_group: &Name, membership: bool) {
        self.local
            .insert(normalized(private_group), LocalSession { id, membership });
    }

    /// A session of this daemon is gone; its memberships end with the ordered
    /// [`Event::Disconnect`] that follows.
    pub fn remove_local_session(&mut self, private_group: &Name) {
        self.local.remove(&normalized(private_group));
    }

    /// Members of `group` in member-list order (empty if the group does not exist).
    #[cfg(test)]
    fn members(&self, group: &Name) -> Vec<MemberId> {
        self.groups
            .get(&normalized(group))
            .map(|g| g.members.iter().map(|m| m.id).collect())
            .unwrap_or_default()
    }

    /// Applies one ordered event, appending what this daemon's sessions receive to `out`.
    pub fn apply(&mut self, event: Event<'_>, out: &mut Vec<Fanout>) {
        match event {
            Event::Join { group, member } => self.join(&normalized(group), member, out),
            Event::Leave { group, member } => self.leave(&normalized(group), member, out),
            Event::Disconnect { member } => self.disconnect(member, out),
            Event::Data {
                sender,
                msg_type,
                destinations,
            } => self.data(sender, msg_type, destinations, out),
        }
    }

    fn join(&mut self, name: &Name, member: MemberId, out: &mut Vec<Fanout>) {
        // Private groups cannot be joined (the library never asks; a raw client might).
        if name[0] == 0 || name[0] == b'#' {
            return;
        }
        let local = if member.daemon == self.me {
            match self.local.get(&member.private_group) {
                Some(session) => Some(*session),
                // The session ended before its join was ordered: its disconnect follows.
                None => return,
            }
        } else {
            None
        };
        let configuration = self.configuration;
        let group = self.groups.entry(*name).or_insert_with(|| Group {
            id: GroupId {
                proc_id: configuration.proc_id,
                time: configuration.time,
                index: 0,
            },
            members: Vec::new(),
        });
        let Err(at) = group.members.binary_search_by(|m| m.id.cmp(&member)) else {
            return; // already a member: ignored
        };
        group.members.insert(at, Member { id: member, local });
        group.id.index += 1;
        let notice = regular_notice(name, group, CAUSED_BY_JOIN, &member.private_group);
        push_notice(out, notified(group), notice);
    }

    fn leave(&mut self, name: &Name, member: MemberId, out: &mut Vec<Fanout>) {
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        let Ok(at) = group.members.binary_search_by(|m| m.id.cmp(&member)) else {
            return; // not a member: ignored
        };
        let leaver = group.members.remove(at);
        if let Some(session) = leaver.local.filter(|s| s.membership) {
            push_notice(out, vec![session.id], self_leave_notice(name));
        }
        self.after_departure(name, CAUSED_BY_LEAVE, &member.private_group, out);
    }

    fn disconnect(&mut self, member: MemberId, out: &mut Vec<Fanout>) {
        let mut left = Vec::new();
        for (name, group) in self.groups.iter_mut() {
            if let Ok(at) = group.members.binary_search_by(|m| m.id.cmp(&member)) {
                group.members.remove(at);
                left.push(*name);
            }
        }
        for name in left {
            self.after_departure(&name, CAUSED_BY_DISCONNECT, &member.private_group, out);
        }
    }

    /// A member has been taken out of group `name`: notify the rest, or drop the empty group.
    fn after_departure(&mut self, name: &Name, cause: u32, departed: &Name, out: &mut Vec<Fanout>) {
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        if group.members.is_empty() {
            // The last member leaving destroys the group silently.
            self.groups.remove(name);
            return;
        }
        group.id.index += 1;
        let notice = regular_notice(name, group, cause, departed);
        push_notice(out, notified(group), notice);
    }

    fn data(&self, sender: MemberId, msg_type: u32, destinations: &[u8], out: &mut Vec<Fanout>) {
        let mut sessions = Vec::new();
        for field in destinations.chunks_exact(NAME_LEN) {
            let name = normalized(field.try_into().expect("chunks of NAME_LEN"));
            if name[0] == b'#' {
                // Local sessions all end in this daemon's name: `#p#d` only matches on d.
                if let Some(session) = self.local.get(&name) {
                    sessions.push(session.id);
                }
            } else if let Some(group) = self.groups.get(&name) {
                sessions.extend(group.members.iter().filter_map(|m| m.local.map(|s| s.id)));
            }
        }
        sessions.sort_unstable();
        sessions.dedup();
        if msg_type & SELF_DISCARD != 0 && sender.daemon == self.me {
            if let Some(own) = self.local.get(&sender.private_group) {
                sessions.retain(|s| *s != own.id);
            }
        }
        if !sessions.is_empty() {
            out.push(Fanout {
                sessions,
                message: Message::Data,
            });
        }
    }
}

/// The name field holding only the text of `field` (bytes after the NUL cleared, at most 31).
fn normalized(field: &Name) -> Name {
    name_field(name_text(field))
}

/// Local members that asked for membership notices, in increasing session order.
fn notified(group: &Group) -> Vec<SessionId> {
    let mut sessions: Vec<SessionId> = group
        .members
        .iter()
        .filter_map(|m| m.local.filter(|s| s.membership).map(|s| s.id))
        .collect();
    sessions.sort_unstable();
    sessions
}

fn push_notice(out: &mut Vec<Fanout>, sessions: Vec<SessionId>, notice: Vec<u8>) {
    if !sessions.is_empty() {
        out.push(Fanout {
            sessions,
            message: Message::Notice(notice),
        });
    }
}

/// REG_MEMB notice of a join, leave or disconnect: all members listed, one vs set holding
/// only the member that changed.
fn regular_notice(name: &Name, group: &Group, cause: u32, changed: &Name) -> Vec<u8> {
    let members: Vec<Name> = group.members.iter().map(|m| m.id.private_group).collect();
    let body = encode_regular_body(group.id, &[std::slice::from_ref(changed)], 0);
    encode_notice(REG_MEMB_MESS | cause, name, &members, &body)
}

/// What a member that left (with notices on) gets: CAUSED_BY_LEAVE alone, nothing else.
fn self_leave_notice(name: &Name) -> Vec<u8> {
    encode_notice(CAUSED_BY_LEAVE, name, &[], &[])
}

fn encode_notice(msg_type: u32, group: &Name, names: &[Name], body: &[u8]) -> Vec<u8> {
    let header = Header {
        msg_type,
        sender: *group,
        num_groups: names.len() as i32,
        hint: DAEMON_HINT,
        data_len: body.len() as i32,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + NAME_LEN * names.len() + body.len());
    out.extend_from_slice(&header.encode());
    for n in names {
        out.extend_from_slice(n);
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests;
