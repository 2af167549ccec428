//! Who is in which group, applied to an already totally ordered stream of events.
//!
//! Every daemon of a configuration applies the same events in the same order, so every daemon
//! holds the same group state and hands out the same group ids. The result of each event is
//! what this daemon delivers to its own sessions: which sessions get a copy of a data message,
//! and the encoded membership notices with their receivers. No I/O and no clock: the caller
//! gives the configuration ids.
//!
//! Configuration changes follow Spread's groups layer. A transitional configuration cuts off
//! the daemons that did not come along: groups that had members there get a TRANSITION
//! signal and stay "changed" (joins, leaves and disconnects in them are announced as
//! CAUSED_BY_NETWORK, followed by a new TRANSITION) until the regular configuration. If the
//! regular configuration only lost daemons, the changed groups get their new view at once.
//! If it brought in daemons, every member daemon submits a group-state message (AGREED) and
//! the new views are computed when all of them have been delivered; membership events
//! delivered meanwhile wait for that, data is delivered at once.

mod notice;
mod state;

use std::collections::{BTreeMap, HashMap};

use crate::wire::name::{name_field, name_text};
use crate::wire::{
    GroupId, Name, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, NAME_LEN, SELF_DISCARD,
};

use notice::VsSets;
use state::{GroupState, ReportedGroup};

/// A daemon's position in the configuration (the order member lists are sorted by).
pub type DaemonIndex = u16;

/// One client connection of this daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// A daemon configuration (regular or transitional): the first two integers of the ids of
/// the group views formed in it.
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

/// One totally ordered event delivered as a message. Names are 32-byte fields as they
/// travel; only the text before the first NUL counts.
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
    /// A group-state message (as [`Groups::regular`] made it on daemon `from`).
    GroupState {
        from: DaemonIndex,
        bytes: &'a [u8],
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
    private_group: Name,
    /// The session behind a member of this daemon, fixed when it joined (a later session
    /// reusing the name does not inherit the membership).
    local: Option<LocalSession>,
}

/// The members of a group on one daemon.
#[derive(Clone, Debug)]
struct DaemonMembers {
    daemon: DaemonIndex,
    /// The configuration of the group view these members were last synchronized in; `None`
    /// once the daemon is cut off by a transitional configuration (until the next regular
    /// configuration drops it).
    view: Option<ConfigurationId>,
    /// Sorted by name; never empty.
    members: Vec<Member>,
}

#[derive(Clone, Debug)]
struct Group {
    id: GroupId,
    /// Touched by the configuration change under way and not yet given its regular view.
    changed: bool,
    /// Sorted by daemon; never empty.
    daemons: Vec<DaemonMembers>,
}

impl Group {
    fn new(id: GroupId) -> Group {
        Group {
            id,
            changed: false,
            daemons: Vec::new(),
        }
    }

    /// The configuration part of the group id: the view established daemons come from.
    fn view(&self) -> ConfigurationId {
        ConfigurationId {
            proc_id: self.id.proc_id,
            time: self.id.time,
        }
    }

    fn members(&self) -> impl Iterator<Item = (DaemonIndex, &Member)> {
        self.daemons
            .iter()
            .flat_map(|d| d.members.iter().map(move |m| (d.daemon, m)))
    }

    /// Member names in member-list order (daemon, then name).
    fn member_names(&self) -> Vec<Name> {
        self.members().map(|(_, m)| m.private_group).collect()
    }

    /// Local members that asked for membership notices, in increasing session order.
    fn notified(&self) -> Vec<SessionId> {
        let mut sessions: Vec<SessionId> = self
            .members()
            .filter_map(|(_, m)| m.local.filter(|s| s.membership).map(|s| s.id))
            .collect();
        sessions.sort_unstable();
        sessions
    }

    fn has(&self, member: &MemberId) -> bool {
        self.members()
            .any(|(d, m)| d == member.daemon && m.private_group == member.private_group)
    }

    fn daemon(&self, daemon: DaemonIndex) -> Result<usize, usize> {
        self.daemons.binary_search_by_key(&daemon, |d| d.daemon)
    }

    /// Removes `member`; false if it was not in the group. Drops its daemon if left empty.
    fn remove(&mut self, member: &MemberId) -> bool {
        let Ok(d) = self.daemon(member.daemon) else {
            return false;
        };
        let members = &mut self.daemons[d].members;
        let Ok(at) = members.binary_search_by(|m| m.private_group.cmp(&member.private_group)) else {
            return false;
        };
        members.remove(at);
        if members.is_empty() {
            self.daemons.remove(d);
        }
        true
    }

    /// Gives every daemon still in touch the view of the group id.
    fn settle_views(&mut self) {
        let view = self.view();
        for d in self.daemons.iter_mut().filter(|d| d.view.is_some()) {
            d.view = Some(view);
        }
    }
}

/// A transitional configuration: the daemons that moved on together with this one.
#[derive(Clone, Debug)]
struct Transitional {
    conf: ConfigurationId,
    /// Sorted.
    members: Vec<DaemonIndex>,
}

impl Transitional {
    fn has(&self, daemon: DaemonIndex) -> bool {
        self.members.binary_search(&daemon).is_ok()
    }
}

/// A membership event ordered while group states are exchanged, applied after it.
#[derive(Clone, Debug)]
enum Deferred {
    Join { group: Name, member: MemberId },
    Leave { group: Name, member: MemberId },
    Disconnect { member: MemberId },
}

impl Deferred {
    fn daemon(&self) -> DaemonIndex {
        match self {
            Deferred::Join { member, .. }
            | Deferred::Leave { member, .. }
            | Deferred::Disconnect { member } => member.daemon,
        }
    }
}

/// The group-state exchange of one regular configuration.
#[derive(Clone, Debug)]
struct Exchange {
    regular: ConfigurationId,
    /// The daemons of the regular configuration, sorted: one state message from each.
    members: Vec<DaemonIndex>,
    reports: BTreeMap<DaemonIndex, Vec<ReportedGroup>>,
    deferred: Vec<Deferred>,
}

/// Where this daemon is in a configuration change (the original's GOP, GTRANS, GGATHER, GGT).
#[derive(Clone, Debug)]
enum Phase {
    Operational,
    /// After a transitional configuration, before its regular configuration.
    Transition(Transitional),
    /// Collecting group states for a regular configuration.
    Gather(Exchange),
    /// Still collecting when another transitional configuration came.
    GatherTransition(Exchange, Transitional),
}

/// Group state of one daemon.
#[derive(Clone, Debug)]
pub struct Groups {
    me: DaemonIndex,
    /// The current regular configuration.
    configuration: ConfigurationId,
    phase: Phase,
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
            phase: Phase::Operational,
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

    /// Groups with at least one member, daemon-wide.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// True while group states are being exchanged. Like the original, the caller should hold
    /// back its sessions' requests meanwhile, so that they are ordered after the exchange.
    pub fn exchanging(&self) -> bool {
        matches!(self.phase, Phase::Gather(_) | Phase::GatherTransition(..))
    }

    /// Members of `group` in member-list order (empty if the group does not exist).
    #[cfg(test)]
    fn members(&self, group: &Name) -> Vec<MemberId> {
        self.groups
            .get(&normalized(group))
            .map(|g| {
                g.members()
                    .map(|(daemon, m)| MemberId {
                        daemon,
                        private_group: m.private_group,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every group with its id and members, in name order (to compare daemons).
    #[cfg(test)]
    fn snapshot(&self) -> Vec<(Name, GroupId, Vec<MemberId>)> {
        self.groups
            .keys()
            .map(|name| (*name, self.groups[name].id, self.members(name)))
            .collect()
    }

    /// Applies one ordered event, appending what this daemon's sessions receive to `out`.
    pub fn apply(&mut self, event: Event<'_>, out: &mut Vec<Fanout>) {
        if let Phase::Gather(exchange) | Phase::GatherTransition(exchange, _) = &mut self.phase {
            let deferred = match event {
                Event::Join { group, member } => Some(Deferred::Join {
                    group: normalized(group),
                    member,
                }),
                Event::Leave { group, member } => Some(Deferred::Leave {
                    group: normalized(group),
                    member,
                }),
                Event::Disconnect { member } => Some(Deferred::Disconnect { member }),
                Event::Data { .. } | Event::GroupState { .. } => None,
            };
            if let Some(deferred) = deferred {
                exchange.deferred.push(deferred);
                return;
            }
        }
        match event {
            Event::Join { group, member } => self.join(&normalized(group), member, out),
            Event::Leave { group, member } => self.leave(&normalized(group), member, out),
            Event::Disconnect { member } => self.disconnect(member, out),
            Event::Data {
                sender,
                msg_type,
                destinations,
            } => self.data(sender, msg_type, destinations, out),
            Event::GroupState { from, bytes } => self.group_state(from, bytes, out),
        }
    }

    /// A transitional configuration `conf` of the daemons `members` (any order) is delivered.
    pub fn transitional(&mut self, conf: ConfigurationId, members: &[DaemonIndex], out: &mut Vec<Fanout>) {
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        let trans = Transitional { conf, members };
        self.phase = match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Operational => {
                self.cut_off(&trans, out);
                Phase::Transition(trans)
            }
            Phase::Transition(_) => {
                log::warn!("groups: second transitional configuration without a regular one");
                self.cut_off(&trans, out);
                Phase::Transition(trans)
            }
            Phase::Gather(exchange) | Phase::GatherTransition(exchange, _) => {
                // As the original, no TRANSITION signal here: the end of the exchange, or the
                // next regular configuration, gives these groups their next view.
                for group in self.groups.values_mut() {
                    if group.daemons.iter().any(|d| !trans.has(d.daemon)) {
                        group.changed = true;
                    }
                }
                Phase::GatherTransition(exchange, trans)
            }
        };
    }

    /// A regular configuration `conf` is delivered; `members` are its daemons (any order),
    /// each with the regular configuration it comes from. Returns the group-state message to
    /// submit AGREED when the configuration needs an exchange (it brought in daemons).
    pub fn regular(
        &mut self,
        conf: ConfigurationId,
        members: &[(DaemonIndex, ConfigurationId)],
        out: &mut Vec<Fanout>,
    ) -> Option<Vec<u8>> {
        if matches!(self.phase, Phase::Operational | Phase::Gather(_)) {
            // Spread always delivers a transitional configuration first; without one, the
            // daemons that come from this daemon's configuration moved on together.
            let mine = members.iter().find(|(d, _)| *d == self.me).map(|(_, from)| *from);
            let together: Vec<DaemonIndex> = members
                .iter()
                .filter(|(d, from)| *d == self.me || Some(*from) == mine)
                .map(|(d, _)| *d)
                .collect();
            if mine.is_none() {
                log::error!("groups: regular configuration without this daemon");
            }
            self.transitional(mine.unwrap_or(self.configuration), &together, out);
        }
        let mut daemons: Vec<DaemonIndex> = members.iter().map(|(d, _)| *d).collect();
        daemons.sort_unstable();
        daemons.dedup();
        self.configuration = conf;
        match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Transition(trans) if trans.members == daemons => {
                self.settle_lost_daemons(conf, out);
                None
            }
            Phase::Transition(_) => {
                self.drop_cut_off_daemons();
                Some(self.start_exchange(conf, daemons))
            }
            Phase::GatherTransition(exchange, trans) => {
                // The exchange did not finish: the events it held are applied now, as in the
                // transitional period, and a new exchange starts from what is left.
                self.phase = Phase::Transition(trans.clone());
                self.replay(exchange.deferred, |d| trans.has(d), out);
                self.phase = Phase::Operational;
                self.drop_daemons_not_in(&trans);
                Some(self.start_exchange(conf, daemons))
            }
            Phase::Operational | Phase::Gather(_) => unreachable!("a transitional configuration was applied"),
        }
    }

    /// Marks the daemons missing from `trans` as cut off; groups that had members there get
    /// the TRANSITION signal (old group id) and a group id of the transitional configuration.
    fn cut_off(&mut self, trans: &Transitional, out: &mut Vec<Fanout>) {
        for (name, group) in self.groups.iter_mut() {
            let mut lost = false;
            for d in group.daemons.iter_mut().filter(|d| !trans.has(d.daemon)) {
                d.view = None;
                lost = true;
            }
            if !lost {
                continue;
            }
            push_notice(out, group.notified(), notice::transition(name, group.id));
            group.id = first_id(trans.conf);
            group.changed = true;
            group.settle_views();
        }
    }

    /// A regular configuration that only lost daemons: changed groups drop the cut-off
    /// daemons and get their regular view at once.
    fn settle_lost_daemons(&mut self, conf: ConfigurationId, out: &mut Vec<Fanout>) {
        self.drop_cut_off_daemons();
        for (name, group) in self.groups.iter_mut().filter(|(_, g)| g.changed) {
            group.id = first_id(conf);
            group.changed = false;
            group.settle_views();
            let sets = VsSets::of(group, self.me, None);
            push_notice(
                out,
                group.notified(),
                notice::network(name, group, &sets, sets.mine()),
            );
        }
    }

    /// Changed groups lose their cut-off daemons; groups left without members end silently.
    fn drop_cut_off_daemons(&mut self) {
        for group in self.groups.values_mut().filter(|g| g.changed) {
            group.daemons.retain(|d| d.view.is_some());
        }
        self.groups.retain(|_, g| !g.daemons.is_empty());
    }

    /// Every group loses the daemons not in `trans` (a transitional configuration that came
    /// during an exchange), and is changed if it had any.
    fn drop_daemons_not_in(&mut self, trans: &Transitional) {
        for group in self.groups.values_mut() {
            let before = group.daemons.len();
            group.daemons.retain(|d| trans.has(d.daemon));
            if group.daemons.len() != before {
                group.changed = true;
            }
        }
        self.groups.retain(|_, g| !g.daemons.is_empty());
    }

    /// Enters the exchange of regular configuration `conf`; returns this daemon's state.
    fn start_exchange(&mut self, conf: ConfigurationId, members: Vec<DaemonIndex>) -> Vec<u8> {
        let report = GroupState {
            conf,
            groups: self
                .groups
                .iter()
                .filter_map(|(name, group)| {
                    let d = group.daemon(self.me).ok()?;
                    Some(ReportedGroup {
                        name: *name,
                        id: group.id,
                        changed: group.changed,
                        members: group.daemons[d].members.iter().map(|m| m.private_group).collect(),
                    })
                })
                .collect(),
        };
        self.phase = Phase::Gather(Exchange {
            regular: conf,
            members,
            reports: BTreeMap::new(),
            deferred: Vec::new(),
        });
        state::encode(&report)
    }

    fn group_state(&mut self, from: DaemonIndex, bytes: &[u8], out: &mut Vec<Fanout>) {
        let exchange = match &mut self.phase {
            Phase::Gather(exchange) | Phase::GatherTransition(exchange, _) => exchange,
            Phase::Operational | Phase::Transition(_) => {
                log::warn!("groups: state message from daemon {from} outside an exchange dropped");
                return;
            }
        };
        if exchange.members.binary_search(&from).is_err() || exchange.reports.contains_key(&from) {
            log::warn!("groups: unexpected state message from daemon {from} dropped");
            return;
        }
        let groups = match state::decode(bytes) {
            Ok(state) if state.conf == exchange.regular => state.groups,
            Ok(state) => {
                log::info!(
                    "groups: state message of {:?} from daemon {from} is stale",
                    state.conf
                );
                return;
            }
            Err(e) => {
                log::warn!("groups: malformed state message from daemon {from} ({e}), taken as empty");
                Vec::new()
            }
        };
        exchange.reports.insert(from, groups);
        if exchange.reports.len() < exchange.members.len() {
            return;
        }
        match std::mem::replace(&mut self.phase, Phase::Operational) {
            Phase::Gather(exchange) => self.finish_exchange(exchange, None, out),
            Phase::GatherTransition(exchange, trans) => self.finish_exchange(exchange, Some(trans), out),
            Phase::Operational | Phase::Transition(_) => unreachable!("checked above"),
        }
    }

    /// All states are in: the groups become what the members' daemons reported. Groups
    /// whose members came from different views, or that a configuration change touched, get
    /// their regular view, announced with vs sets.
    fn finish_exchange(&mut self, exchange: Exchange, trans: Option<Transitional>, out: &mut Vec<Fanout>) {
        let old = std::mem::take(&mut self.groups);
        let mut merged: BTreeMap<Name, Group> = BTreeMap::new();
        for (daemon, reported) in exchange.reports {
            for rg in reported {
                // The lowest daemon's id stands; it is every daemon's if the group is unchanged.
                let group = merged.entry(rg.name).or_insert_with(|| Group::new(rg.id));
                group.changed |= rg.changed;
                let members = rg
                    .members
                    .iter()
                    .map(|name| Member {
                        private_group: *name,
                        local: (daemon == self.me)
                            .then(|| local_member(&old, &rg.name, self.me, name))
                            .flatten(),
                    })
                    .collect();
                group.daemons.push(DaemonMembers {
                    daemon,
                    view: Some(ConfigurationId {
                        proc_id: rg.id.proc_id,
                        time: rg.id.time,
                    }),
                    members,
                });
            }
        }
        for (name, group) in merged.iter_mut() {
            let view = group.view();
            group.changed |= group.daemons.iter().any(|d| d.view != Some(view))
                || trans
                    .as_ref()
                    .is_some_and(|t| group.daemons.iter().any(|d| !t.has(d.daemon)));
            if !group.changed {
                continue;
            }
            group.id = first_id(exchange.regular);
            group.changed = false;
            // The sets show where members come from, so views change after the notice.
            let sets = VsSets::of(group, self.me, None);
            push_notice(
                out,
                group.notified(),
                notice::network(name, group, &sets, sets.mine()),
            );
            group.settle_views();
        }
        self.groups = merged;
        let members = exchange.members;
        self.replay(exchange.deferred, |d| members.binary_search(&d).is_ok(), out);
        if let Some(trans) = trans {
            self.transitional(trans.conf, &trans.members, out);
        }
    }

    /// Applies held membership events of daemons for which `keep` holds, in order.
    fn replay(&mut self, deferred: Vec<Deferred>, keep: impl Fn(DaemonIndex) -> bool, out: &mut Vec<Fanout>) {
        for event in deferred {
            if !keep(event.daemon()) {
                log::debug!("groups: held {event:?} of a daemon that is gone dropped");
                continue;
            }
            match event {
                Deferred::Join { group, member } => self.join(&group, member, out),
                Deferred::Leave { group, member } => self.leave(&group, member, out),
                Deferred::Disconnect { member } => self.disconnect(member, out),
            }
        }
    }

    /// The transitional configuration under way, if any.
    fn transition(&self) -> Option<&Transitional> {
        match &self.phase {
            Phase::Transition(trans) | Phase::GatherTransition(_, trans) => Some(trans),
            Phase::Operational | Phase::Gather(_) => None,
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
        if self.groups.get(name).is_some_and(|g| g.has(&member)) {
            return; // already a member: ignored
        }
        let transition = self.transition();
        // A new group counts from index 0 of the configuration under way; the join makes it 1.
        let conf = transition.map_or(self.configuration, |t| t.conf);
        let cut_off = transition.is_some_and(|t| !t.has(member.daemon));
        let group = self.groups.entry(*name).or_insert_with(|| {
            Group::new(GroupId {
                index: 0,
                ..first_id(conf)
            })
        });
        let d = match group.daemon(member.daemon) {
            Ok(d) => d,
            Err(d) => {
                let view = (!cut_off).then(|| group.view());
                group.daemons.insert(
                    d,
                    DaemonMembers {
                        daemon: member.daemon,
                        view,
                        members: Vec::new(),
                    },
                );
                d
            }
        };
        let daemon = &mut group.daemons[d];
        let at = daemon
            .members
            .binary_search_by(|m| m.private_group.cmp(&member.private_group))
            .unwrap_err();
        daemon.members.insert(
            at,
            Member {
                private_group: member.private_group,
                local,
            },
        );
        group.changed |= daemon.view.is_none();
        group.id.index += 1;
        if !group.changed {
            let notice = notice::single_change(name, group, CAUSED_BY_JOIN, &member.private_group);
            push_notice(out, group.notified(), notice);
            return;
        }
        // A join into a group in transition: the joiner is a set of its own, and its copy
        // points there; then everyone is told the transition goes on.
        let sets = VsSets::of(group, self.me, Some(&member.private_group));
        let joiner = local.filter(|s| s.membership).map(|s| s.id);
        let others: Vec<SessionId> = group
            .notified()
            .into_iter()
            .filter(|s| Some(*s) != joiner)
            .collect();
        push_notice(out, others, notice::network(name, group, &sets, sets.mine()));
        if let Some(joiner) = joiner {
            push_notice(
                out,
                vec![joiner],
                notice::network(name, group, &sets, Some(sets.last())),
            );
        }
        push_notice(out, group.notified(), notice::transition(name, group.id));
    }

    fn leave(&mut self, name: &Name, member: MemberId, out: &mut Vec<Fanout>) {
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        let local = group
            .members()
            .find(|(d, m)| *d == member.daemon && m.private_group == member.private_group)
            .map(|(_, m)| m.local);
        let Some(local) = local else {
            return; // not a member: ignored
        };
        group.remove(&member);
        if let Some(session) = local.filter(|s| s.membership) {
            push_notice(out, vec![session.id], notice::self_leave(name));
        }
        self.after_departure(name, CAUSED_BY_LEAVE, &member.private_group, out);
    }

    fn disconnect(&mut self, member: MemberId, out: &mut Vec<Fanout>) {
        let mut left = Vec::new();
        for (name, group) in self.groups.iter_mut() {
            if group.remove(&member) {
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
        if group.daemons.is_empty() {
            // The last member leaving destroys the group silently.
            self.groups.remove(name);
            return;
        }
        group.id.index += 1;
        if group.changed {
            let sets = VsSets::of(group, self.me, None);
            push_notice(
                out,
                group.notified(),
                notice::network(name, group, &sets, sets.mine()),
            );
            push_notice(out, group.notified(), notice::transition(name, group.id));
        } else {
            let notice = notice::single_change(name, group, cause, departed);
            push_notice(out, group.notified(), notice);
        }
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
                sessions.extend(group.members().filter_map(|(_, m)| m.local.map(|s| s.id)));
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

/// The first view id of configuration `conf`.
fn first_id(conf: ConfigurationId) -> GroupId {
    GroupId {
        proc_id: conf.proc_id,
        time: conf.time,
        index: 1,
    }
}

/// The session behind this daemon's member `name` of `group` in `groups`.
fn local_member(
    groups: &BTreeMap<Name, Group>,
    group: &Name,
    me: DaemonIndex,
    name: &Name,
) -> Option<LocalSession> {
    let found = groups
        .get(group)
        .and_then(|g| g.members().find(|(d, m)| *d == me && m.private_group == *name))
        .map(|(_, m)| m.local);
    if found.is_none() {
        log::error!("groups: own state names a member this daemon does not have");
    }
    found.flatten()
}

/// The name field holding only the text of `field` (bytes after the NUL cleared, at most 31).
fn normalized(field: &Name) -> Name {
    name_field(name_text(field))
}

fn push_notice(out: &mut Vec<Fanout>, sessions: Vec<SessionId>, notice: Vec<u8>) {
    if !sessions.is_empty() {
        out.push(Fanout {
            sessions,
            message: Message::Notice(notice),
        });
    }
}

#[cfg(test)]
mod network_tests;
#[cfg(test)]
mod tests;
