//! Membership notices as sessions receive them (spec 4.1, 4.2): the regular membership with
//! its vs sets, the transitional signal and the self-leave.

use std::cmp::Ordering;

use crate::wire::header::DAEMON_HINT;
use crate::wire::membership::encode_regular_body;
use crate::wire::{
    GroupId, Header, Name, CAUSED_BY_LEAVE, CAUSED_BY_NETWORK, HEADER_LEN, NAME_LEN, REG_MEMB_MESS,
    TRANSITION_MESS,
};

use super::{ConfigurationId, DaemonIndex, DaemonMembers, Group};

/// REG_MEMB notice of a join, leave or disconnect in a stable group: all members listed, one
/// vs set holding only the member that changed.
pub(super) fn single_change(name: &Name, group: &Group, cause: u32, changed: &Name) -> Vec<u8> {
    let body = encode_regular_body(group.id, &[std::slice::from_ref(changed)], 0);
    encode_notice(REG_MEMB_MESS | cause, name, &group.member_names(), &body)
}

/// What a member that left (with notices on) gets: CAUSED_BY_LEAVE alone, nothing else.
pub(super) fn self_leave(name: &Name) -> Vec<u8> {
    encode_notice(CAUSED_BY_LEAVE, name, &[], &[])
}

/// The transitional signal: no names, the group id as body.
pub(super) fn transition(name: &Name, id: GroupId) -> Vec<u8> {
    encode_notice(TRANSITION_MESS, name, &[], &id.encode())
}

/// The vs sets of a CAUSED_BY_NETWORK notice of one group.
pub(super) struct VsSets {
    sets: Vec<Vec<Name>>,
    /// The set holding this daemon's members (`None` if it has none besides a joiner).
    mine: Option<usize>,
}

impl VsSets {
    /// Members grouped by the view their daemon comes from. Daemons are ordered by view
    /// ([`compare_views`]) then by configuration order; a set starts at each new view and at
    /// each cut-off daemon (a daemon still unreachable is a set of its own). A `joiner` (a join
    /// into a group in transition) leaves its daemon's set and forms the last set alone.
    pub(super) fn of(group: &Group, me: DaemonIndex, joiner: Option<&Name>) -> VsSets {
        let mut sets: Vec<Vec<Name>> = Vec::new();
        let mut mine = None;
        let mut current: Option<ConfigurationId> = None;
        for daemon in by_view(&group.daemons) {
            if sets.is_empty() || current.is_none() || current != daemon.view {
                sets.push(Vec::new());
                current = daemon.view;
            }
            if daemon.daemon == me {
                mine = Some(sets.len() - 1);
            }
            let set = sets.last_mut().expect("a set was just started");
            set.extend(
                daemon
                    .members
                    .iter()
                    .map(|m| m.private_group)
                    .filter(|n| Some(n) != joiner),
            );
        }
        if let Some(joiner) = joiner {
            sets.push(vec![*joiner]);
        }
        VsSets { sets, mine }
    }

    /// Index of the joiner's singleton set.
    pub(super) fn last(&self) -> usize {
        self.sets.len() - 1
    }

    pub(super) fn mine(&self) -> Option<usize> {
        self.mine
    }
}

/// REG_MEMB + CAUSED_BY_NETWORK notice of `group` with `sets`, for a receiver whose vs set is
/// `local_set` (the offset field is 0 when the receiver has none, as the original leaves it).
pub(super) fn network(name: &Name, group: &Group, sets: &VsSets, local_set: Option<usize>) -> Vec<u8> {
    let slices: Vec<&[Name]> = sets.sets.iter().map(Vec::as_slice).collect();
    let body = encode_regular_body(group.id, &slices, local_set.unwrap_or(0));
    encode_notice(
        REG_MEMB_MESS | CAUSED_BY_NETWORK,
        name,
        &group.member_names(),
        &body,
    )
}

/// The daemons of a group in vs-set order. An insertion sort: it never panics even if the
/// wrapping comparison of views is not transitive for some ids, and groups have few daemons.
fn by_view(daemons: &[DaemonMembers]) -> Vec<&DaemonMembers> {
    let mut out: Vec<&DaemonMembers> = Vec::with_capacity(daemons.len());
    for daemon in daemons {
        let at = out
            .iter()
            .position(|d| {
                compare_views(d.view, daemon.view).then(d.daemon.cmp(&daemon.daemon)) == Ordering::Greater
            })
            .unwrap_or(out.len());
        out.insert(at, daemon);
    }
    out
}

/// The original's order of views: a cut-off daemon (`None`) after every view; otherwise the
/// sign of the wrapping difference of proc ids, then of times.
pub(super) fn compare_views(a: Option<ConfigurationId>, b: Option<ConfigurationId>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => a
            .proc_id
            .wrapping_sub(b.proc_id)
            .cmp(&0)
            .then(a.time.wrapping_sub(b.time).cmp(&0)),
    }
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
mod tests {
    use super::*;

    fn conf(proc_id: i32, time: i32) -> Option<ConfigurationId> {
        Some(ConfigurationId { proc_id, time })
    }

    #[test]
    fn transition_layout() {
        // Spec 4.1: TRANSITION_MESS with the marker, group name, no names, 12-byte group id.
        let id = GroupId {
            proc_id: 0x1cc5_9726,
            time: 0x6b08_3058,
            index: 3,
        };
        let bytes = transition(&crate::wire::name::name_field(b"g1"), id);
        let mut want = vec![0x80, 0x20, 0x00, 0x80, b'g', b'1'];
        want.resize(36, 0);
        want.extend([0, 0, 0, 0, 0x80, 0, 0, 0x80, 12, 0, 0, 0]);
        want.extend([0x26, 0x97, 0xc5, 0x1c, 0x58, 0x30, 0x08, 0x6b, 3, 0, 0, 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn view_order_is_the_wrapping_difference() {
        assert_eq!(compare_views(conf(1, 9), conf(2, 0)), Ordering::Less);
        assert_eq!(compare_views(conf(2, 0), conf(2, 1)), Ordering::Less);
        assert_eq!(compare_views(conf(3, 3), conf(3, 3)), Ordering::Equal);
        // 0x7fffffff - (-1) wraps negative: the larger proc id sorts first.
        assert_eq!(compare_views(conf(i32::MAX, 0), conf(-1, 0)), Ordering::Less);
        assert_eq!(compare_views(conf(0, i32::MIN), conf(0, 1)), Ordering::Greater);
        assert_eq!(compare_views(None, conf(i32::MAX, i32::MAX)), Ordering::Greater);
        assert_eq!(compare_views(conf(0, 0), None), Ordering::Less);
        assert_eq!(compare_views(None, None), Ordering::Equal);
    }
}
