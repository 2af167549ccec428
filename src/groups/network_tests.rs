//! Group state across daemons: synthetic ordered streams run through one `Groups` per daemon.

use std::collections::BTreeMap;

use super::*;
use crate::wire::header::Header;
use crate::wire::name::name_field;
use crate::wire::{
    AGREED_MESS, CAUSED_BY_NETWORK, HEADER_LEN, MEMBERSHIP_MESS, REG_MEMB_MESS, TRANSITION_MESS,
};

fn conf(proc_id: i32, time: i32) -> ConfigurationId {
    ConfigurationId { proc_id, time }
}

const C1: ConfigurationId = ConfigurationId { proc_id: 10, time: 5 };

type Outputs = BTreeMap<DaemonIndex, Vec<Fanout>>;

/// One `Groups` per daemon (index = daemon); each call delivers to the daemons listed.
struct Net {
    daemons: Vec<Groups>,
}

impl Net {
    fn new(confs: &[ConfigurationId]) -> Net {
        Net {
            daemons: confs
                .iter()
                .enumerate()
                .map(|(d, c)| Groups::new(d as DaemonIndex, *c))
                .collect(),
        }
    }

    /// Session `100 * d + n` on daemon `d`, named `name`.
    fn session(&mut self, d: DaemonIndex, n: u64, name: &str, membership: bool) -> MemberId {
        let private_group = name_field(name.as_bytes());
        self.daemons[d as usize].add_local_session(SessionId(100 * d as u64 + n), &private_group, membership);
        MemberId {
            daemon: d,
            private_group,
        }
    }

    fn each(&mut self, who: &[DaemonIndex], mut f: impl FnMut(&mut Groups, &mut Vec<Fanout>)) -> Outputs {
        let mut outputs = Outputs::new();
        for &d in who {
            let out = outputs.entry(d).or_default();
            f(&mut self.daemons[d as usize], out);
        }
        outputs
    }

    fn event(&mut self, who: &[DaemonIndex], event: Event<'_>) -> Outputs {
        self.each(who, |g, out| g.apply(event, out))
    }

    fn join(&mut self, who: &[DaemonIndex], group: &str, member: MemberId) -> Outputs {
        let group = name_field(group.as_bytes());
        self.event(
            who,
            Event::Join {
                group: &group,
                member,
            },
        )
    }

    fn leave(&mut self, who: &[DaemonIndex], group: &str, member: MemberId) -> Outputs {
        let group = name_field(group.as_bytes());
        self.event(
            who,
            Event::Leave {
                group: &group,
                member,
            },
        )
    }

    fn data(&mut self, who: &[DaemonIndex], sender: MemberId, group: &str) -> Outputs {
        let destinations = name_field(group.as_bytes());
        self.event(
            who,
            Event::Data {
                sender,
                msg_type: AGREED_MESS,
                destinations: &destinations,
            },
        )
    }

    fn transitional(&mut self, trans: ConfigurationId, members: &[DaemonIndex]) -> Outputs {
        self.each(members, |g, out| g.transitional(trans, members, out))
    }

    /// The regular configuration at each of its daemons; the state messages they submit.
    fn regular(
        &mut self,
        reg: ConfigurationId,
        members: &[(DaemonIndex, ConfigurationId)],
    ) -> (Outputs, Vec<(DaemonIndex, Vec<u8>)>) {
        let mut states = Vec::new();
        let who: Vec<DaemonIndex> = members.iter().map(|(d, _)| *d).collect();
        let out = self.each(&who, |g, out| {
            if let Some(state) = g.regular(reg, members, out) {
                states.push((g.me, state));
            }
        });
        (out, states)
    }

    /// Delivers the state messages, in the order given, to `who`.
    fn states(&mut self, who: &[DaemonIndex], states: &[(DaemonIndex, Vec<u8>)]) -> Outputs {
        let mut outputs = Outputs::new();
        for (from, bytes) in states {
            for (d, mut out) in self.event(who, Event::GroupState { from: *from, bytes }) {
                outputs.entry(d).or_default().append(&mut out);
            }
        }
        outputs
    }

    /// A merge or partition without events in between: every side's transitional
    /// configuration, the regular one, then all state messages in daemon order.
    fn change(
        &mut self,
        sides: &[(ConfigurationId, &[DaemonIndex])],
        reg: ConfigurationId,
        members: &[(DaemonIndex, ConfigurationId)],
    ) -> Outputs {
        let mut outputs = Outputs::new();
        for (trans, side) in sides {
            merge(&mut outputs, self.transitional(*trans, side));
        }
        let (out, states) = self.regular(reg, members);
        merge(&mut outputs, out);
        let who: Vec<DaemonIndex> = members.iter().map(|(d, _)| *d).collect();
        merge(&mut outputs, self.states(&who, &states));
        outputs
    }

    /// Asserts that the daemons in `who` hold identical groups.
    fn same_state(&self, who: &[DaemonIndex]) {
        let first = self.daemons[who[0] as usize].snapshot();
        for &d in &who[1..] {
            assert_eq!(
                self.daemons[d as usize].snapshot(),
                first,
                "daemon {d} differs from {}",
                who[0]
            );
        }
    }

    fn group_names(&self, d: DaemonIndex) -> Vec<String> {
        self.daemons[d as usize]
            .snapshot()
            .iter()
            .map(|(name, _, _)| text(name))
            .collect()
    }
}

fn merge(into: &mut Outputs, from: Outputs) {
    for (d, mut out) in from {
        into.entry(d).or_default().append(&mut out);
    }
}

fn text(field: &[u8]) -> String {
    String::from_utf8(name_text(field).to_vec()).unwrap()
}

/// What session `session` of daemon `d` received, one line per message:
/// `DATA`, `SELF-LEAVE g`, `TRANS g p.t.i`, or `CAUSE g [members] p.t.i [[set] ..] @own-set`.
fn seen(out: &Outputs, d: DaemonIndex, session: u64) -> Vec<String> {
    let session = SessionId(100 * d as u64 + session);
    out.get(&d)
        .into_iter()
        .flatten()
        .filter(|f| f.sessions.contains(&session))
        .map(|f| match &f.message {
            Message::Data => "DATA".to_string(),
            Message::Notice(bytes) => describe(bytes),
        })
        .collect()
}

fn describe(bytes: &[u8]) -> String {
    let (header, foreign) = Header::decode(bytes[..HEADER_LEN].try_into().unwrap());
    assert!(!foreign);
    let names_end = HEADER_LEN + NAME_LEN * header.num_groups as usize;
    let body = &bytes[names_end..];
    assert_eq!(body.len(), header.data_len as usize, "data_len");
    let group = text(&header.sender);
    let int = |at: usize| u32::from_ne_bytes(body[at..at + 4].try_into().unwrap());
    let id = |at: usize| {
        let g = GroupId::decode(&body[at..]);
        format!("{}.{}.{}", g.proc_id, g.time, g.index)
    };
    match header.msg_type {
        TRANSITION_MESS => {
            assert_eq!((header.num_groups, body.len()), (0, 12));
            format!("TRANS {group} {}", id(0))
        }
        t if t == crate::wire::CAUSED_BY_LEAVE => {
            assert_eq!((header.num_groups, body.len()), (0, 0));
            format!("SELF-LEAVE {group}")
        }
        t => {
            assert_eq!(t & !MEMBERSHIP_MESS, 0);
            assert_ne!(t & REG_MEMB_MESS, 0);
            let cause = match t & !REG_MEMB_MESS {
                crate::wire::CAUSED_BY_JOIN => "JOIN",
                crate::wire::CAUSED_BY_LEAVE => "LEAVE",
                crate::wire::CAUSED_BY_DISCONNECT => "DISCONNECT",
                CAUSED_BY_NETWORK => "NETWORK",
                other => panic!("cause {other:#x}"),
            };
            let members: Vec<String> = bytes[HEADER_LEN..names_end].chunks(NAME_LEN).map(text).collect();
            let members = format!("[{}]", members.join(" "));
            let (num_sets, offset) = (int(12), int(16));
            let mut sets = Vec::new();
            let mut at = 20;
            let mut own = None;
            for i in 0..num_sets {
                if at - 20 == offset as usize {
                    own = Some(i);
                }
                let count = int(at) as usize;
                let set: Vec<String> = body[at + 4..at + 4 + NAME_LEN * count]
                    .chunks(NAME_LEN)
                    .map(text)
                    .collect();
                sets.push(format!("[{}]", set.join(" ")));
                at += 4 + NAME_LEN * count;
            }
            assert_eq!(at, body.len(), "vs sets fill the body");
            let own = own.expect("the local offset points at a set");
            format!("{cause} {group} {members} {} [{}] @{own}", id(0), sets.join(" "))
        }
    }
}

#[test]
fn partition_of_one_daemon() {
    let mut net = Net::new(&[C1; 3]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let a2 = net.session(0, 2, "#a2#A", true);
    let b1 = net.session(1, 1, "#b1#B", true);
    let c1 = net.session(2, 1, "#c1#C", true);
    for m in [a1, b1, c1] {
        net.join(&[0, 1, 2], "g", m);
    }
    net.join(&[0, 1, 2], "h", a2);
    net.join(&[0, 1, 2], "h", b1);
    net.join(&[0, 1, 2], "k", c1);
    net.same_state(&[0, 1, 2]);

    // C is cut off: groups with members there are told at once, with their old id.
    let out = net.transitional(conf(20, 6), &[0, 1]);
    assert_eq!(seen(&out, 0, 1), ["TRANS g 10.5.3"]);
    assert_eq!(seen(&out, 1, 1), ["TRANS g 10.5.3"]);
    assert!(seen(&out, 0, 2).is_empty(), "h lost nobody");
    // Data in the transitional configuration is delivered as usual.
    let out = net.data(&[0, 1], b1, "g");
    assert_eq!(seen(&out, 0, 1), ["DATA"]);
    // Only daemons were lost: no state exchange, the new view at once.
    let (out, states) = net.regular(conf(21, 7), &[(0, C1), (1, C1)]);
    assert!(states.is_empty());
    assert!(!net.daemons[0].exchanging());
    let view = "NETWORK g [#a1#A #b1#B] 21.7.1 [[#a1#A #b1#B]] @0";
    assert_eq!(seen(&out, 0, 1), [view]);
    assert_eq!(seen(&out, 1, 1), [view]);
    assert!(seen(&out, 0, 2).is_empty());
    // k had members only on C: gone without a word; h keeps its view.
    assert_eq!(net.group_names(0), ["g", "h"]);
    net.same_state(&[0, 1]);
    assert_eq!(
        net.daemons[0].snapshot()[1].1,
        GroupId {
            proc_id: 10,
            time: 5,
            index: 2
        }
    );
    // The next join in the new configuration is an ordinary one.
    let out = net.join(&[0, 1], "g", a2);
    assert_eq!(
        seen(&out, 0, 1),
        ["JOIN g [#a1#A #a2#A #b1#B] 21.7.2 [[#a2#A]] @0"]
    );
}

/// Spec 4.2: `#ca#da` merging with `#cb#db`, `#cb2#db`, byte for byte.
#[test]
fn merge_matches_the_spec_example() {
    let (ca, cb) = (conf(2, 50), conf(1, 60));
    let mut net = Net::new(&[ca, cb]);
    let a = net.session(0, 1, "#ca#da", true);
    let b = net.session(1, 1, "#cb#db", true);
    let b2 = net.session(1, 2, "#cb2#db", true);
    net.join(&[0], "grp", a);
    net.join(&[1], "grp", b);
    net.join(&[1], "grp", b2);

    let out = net.transitional(conf(2, 70), &[0]);
    assert!(
        out.values().all(Vec::is_empty),
        "a merge alone gives no TRANSITION"
    );
    net.transitional(conf(1, 70), &[1]);
    let reg = conf(1, 71);
    let (out, states) = net.regular(reg, &[(0, ca), (1, cb)]);
    assert!(out.values().all(Vec::is_empty));
    assert_eq!(states.len(), 2);
    assert!(net.daemons[0].exchanging());
    // Nothing happens until the last state message.
    assert!(net.states(&[0, 1], &states[..1]).values().all(Vec::is_empty));
    let out = net.states(&[0, 1], &states[1..]);
    assert!(!net.daemons[0].exchanging() && !net.daemons[1].exchanging());

    let at_a = &out[&0];
    assert_eq!(at_a.len(), 1);
    assert_eq!(at_a[0].sessions, [SessionId(1)]);
    let Message::Notice(bytes) = &at_a[0].message else {
        panic!("data")
    };
    let mut want = Header {
        msg_type: REG_MEMB_MESS | CAUSED_BY_NETWORK,
        sender: name_field(b"grp"),
        num_groups: 3,
        hint: crate::wire::header::DAEMON_HINT,
        data_len: 124,
    }
    .encode()
    .to_vec();
    assert_eq!(&want[..4], &[0x80, 0x18, 0x00, 0x80]);
    for n in ["#ca#da", "#cb#db", "#cb2#db"] {
        want.extend_from_slice(&name_field(n.as_bytes()));
    }
    want.extend(
        GroupId {
            proc_id: 1,
            time: 71,
            index: 1,
        }
        .encode(),
    );
    want.extend(2u32.to_ne_bytes());
    want.extend(0x44u32.to_ne_bytes());
    want.extend(2u32.to_ne_bytes());
    want.extend_from_slice(&name_field(b"#cb#db"));
    want.extend_from_slice(&name_field(b"#cb2#db"));
    want.extend(1u32.to_ne_bytes());
    want.extend_from_slice(&name_field(b"#ca#da"));
    assert_eq!(bytes, &want);
    assert_eq!(bytes.len() - HEADER_LEN - 3 * NAME_LEN, 124);

    // At db the same view, its own set first.
    let view = "NETWORK grp [#ca#da #cb#db #cb2#db] 1.71.1 [[#cb#db #cb2#db] [#ca#da]]";
    assert_eq!(seen(&out, 1, 1), [format!("{view} @0")]);
    assert_eq!(seen(&out, 1, 2), [format!("{view} @0")]);
    assert_eq!(seen(&out, 0, 1), [format!("{view} @1")]);
    net.same_state(&[0, 1]);
}

#[test]
fn merge_keeps_one_sided_groups_and_orders_sets_by_view() {
    // A's view sorts before B's although its proc id is larger: 0x7fffffff - (-1) wraps
    // negative. C's view has A's proc id and an earlier time.
    let (ca, cb, cc) = (conf(i32::MAX, 1), conf(-1, 1), conf(i32::MAX, 0));
    let mut net = Net::new(&[ca, cb, cc]);
    let a = net.session(0, 1, "#a#A", true);
    let b = net.session(1, 1, "#b#B", true);
    let c = net.session(2, 1, "#c#C", true);
    for (d, m) in [(0, a), (1, b), (2, c)] {
        net.join(&[d], "g", m);
    }
    net.join(&[1], "only-b", b);
    let out = net.change(
        &[(conf(0, 1), &[0]), (conf(1, 1), &[1]), (conf(2, 1), &[2])],
        conf(7, 100),
        &[(0, ca), (1, cb), (2, cc)],
    );
    let sets = "[[#c#C] [#a#A] [#b#B]]";
    let members = "[#a#A #b#B #c#C]";
    assert_eq!(
        seen(&out, 0, 1),
        [format!("NETWORK g {members} 7.100.1 {sets} @1")]
    );
    assert_eq!(
        seen(&out, 1, 1),
        [format!("NETWORK g {members} 7.100.1 {sets} @2")]
    );
    assert_eq!(
        seen(&out, 2, 1),
        [format!("NETWORK g {members} 7.100.1 {sets} @0")]
    );
    // only-b is news to A and C but did not change: no notice, its id stays.
    net.same_state(&[0, 1, 2]);
    let only_b = &net.daemons[0].snapshot()[1];
    assert_eq!(text(&only_b.0), "only-b");
    assert_eq!(
        only_b.1,
        GroupId {
            proc_id: -1,
            time: 1,
            index: 1
        }
    );
    // C's data to g reaches A's member; only-b has no member on A.
    assert_eq!(seen(&net.data(&[0, 1, 2], c, "g"), 0, 1), ["DATA"]);
    assert!(net.data(&[0, 1, 2], c, "only-b")[&0].is_empty());
}

#[test]
fn join_while_in_transition_after_losing_daemons() {
    let mut net = Net::new(&[C1; 3]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let a2 = net.session(0, 2, "#a2#A", true);
    let b1 = net.session(1, 1, "#b1#B", true);
    let c1 = net.session(2, 1, "#c1#C", true);
    net.join(&[0, 1, 2], "g", a1);
    net.join(&[0, 1, 2], "g", c1);
    let out = net.transitional(conf(30, 6), &[0, 1]);
    assert_eq!(seen(&out, 0, 1), ["TRANS g 10.5.2"]);

    let out = net.join(&[0, 1], "g", a2);
    let members = "[#a1#A #a2#A #c1#C]";
    let sets = "[[#a1#A] [#c1#C] [#a2#A]]";
    assert_eq!(
        seen(&out, 0, 1),
        [
            format!("NETWORK g {members} 30.6.2 {sets} @0"),
            "TRANS g 30.6.2".into()
        ]
    );
    // The joiner's copy points at its own set, the last one: 2 * (4 + 32) bytes in.
    assert_eq!(
        seen(&out, 0, 2),
        [
            format!("NETWORK g {members} 30.6.2 {sets} @2"),
            "TRANS g 30.6.2".into()
        ]
    );
    let joiner_copy = out[&0].iter().find(|f| f.sessions == [SessionId(2)]).unwrap();
    let Message::Notice(bytes) = &joiner_copy.message else {
        panic!("data")
    };
    let body = &bytes[HEADER_LEN + 3 * NAME_LEN..];
    assert_eq!(body.len(), 20 + 3 * 36);
    assert_eq!(u32::from_ne_bytes(body[16..20].try_into().unwrap()), 72);

    // A remote joiner from a daemon still in touch: its daemon's set loses it to the end.
    let out = net.join(&[0, 1], "g", b1);
    let members = "[#a1#A #a2#A #b1#B #c1#C]";
    let sets = "[[#a1#A #a2#A] [#c1#C] [#b1#B]]";
    for (d, s) in [(0, 1), (0, 2), (1, 1)] {
        let own = if d == 1 { 2 } else { 0 };
        assert_eq!(
            seen(&out, d, s),
            [
                format!("NETWORK g {members} 30.6.3 {sets} @{own}"),
                "TRANS g 30.6.3".into()
            ]
        );
    }
    // The regular configuration lost C only: the final view at once.
    let (out, states) = net.regular(conf(31, 7), &[(0, C1), (1, C1)]);
    assert!(states.is_empty());
    let view = "NETWORK g [#a1#A #a2#A #b1#B] 31.7.1 [[#a1#A #a2#A #b1#B]] @0";
    assert_eq!(seen(&out, 0, 1), [view]);
    assert_eq!(seen(&out, 1, 1), [view]);
    net.same_state(&[0, 1]);
}

#[test]
fn join_from_a_cut_off_daemon_leaves_its_set_empty() {
    // A join sent by C before it was lost, delivered in the transitional configuration, into
    // a group that lost nobody: the group becomes changed; C's set is empty without the joiner.
    let mut net = Net::new(&[C1; 3]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let c2 = net.session(2, 2, "#c2#C", true);
    net.join(&[0, 1, 2], "g", a1);
    assert!(net.transitional(conf(30, 6), &[0, 1])[&0].is_empty());
    let out = net.join(&[0, 1], "g", c2);
    assert_eq!(
        seen(&out, 0, 1),
        [
            "NETWORK g [#a1#A #c2#C] 10.5.2 [[#a1#A] [] [#c2#C]] @0",
            "TRANS g 10.5.2"
        ]
    );
    let (out, _) = net.regular(conf(31, 7), &[(0, C1), (1, C1)]);
    assert_eq!(seen(&out, 0, 1), ["NETWORK g [#a1#A] 31.7.1 [[#a1#A]] @0"]);
}

#[test]
fn leave_and_disconnect_in_transition() {
    let mut net = Net::new(&[C1; 3]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let a2 = net.session(0, 2, "#a2#A", true);
    let b1 = net.session(1, 1, "#b1#B", false);
    let c1 = net.session(2, 1, "#c1#C", true);
    for m in [a1, a2, b1, c1] {
        net.join(&[0, 1, 2], "g", m);
    }
    net.join(&[0, 1, 2], "h", a1);
    net.join(&[0, 1, 2], "h", b1);
    net.transitional(conf(30, 6), &[0, 1]);

    let out = net.leave(&[0, 1], "g", a2);
    assert_eq!(seen(&out, 0, 2), ["SELF-LEAVE g"]);
    assert_eq!(
        seen(&out, 0, 1),
        [
            "NETWORK g [#a1#A #b1#B #c1#C] 30.6.2 [[#a1#A #b1#B] [#c1#C]] @0",
            "TRANS g 30.6.2"
        ]
    );
    // B's member disconnects: g (changed) and h (stable) each hear of it, in name order.
    let out = net.event(&[0, 1], Event::Disconnect { member: b1 });
    assert_eq!(
        seen(&out, 0, 1),
        [
            "NETWORK g [#a1#A #c1#C] 30.6.3 [[#a1#A] [#c1#C]] @0",
            "TRANS g 30.6.3",
            "DISCONNECT h [#a1#A] 10.5.3 [[#b1#B]] @0",
        ]
    );
    // The lost daemon's member disconnecting (delivered in the transitional configuration).
    let out = net.event(&[0, 1], Event::Disconnect { member: c1 });
    assert_eq!(
        seen(&out, 0, 1),
        ["NETWORK g [#a1#A] 30.6.4 [[#a1#A]] @0", "TRANS g 30.6.4"]
    );
    // g stays changed until the regular configuration gives it a view.
    let (out, _) = net.regular(conf(31, 7), &[(0, C1), (1, C1)]);
    assert_eq!(seen(&out, 0, 1), ["NETWORK g [#a1#A] 31.7.1 [[#a1#A]] @0"]);
    // The last member leaving in transition ends the group silently.
    net.transitional(conf(40, 8), &[0]);
    let out = net.leave(&[0], "g", a1);
    assert_eq!(seen(&out, 0, 1), ["SELF-LEAVE g"]);
    assert_eq!(net.group_names(0), ["h"]);
}

#[test]
fn partition_then_merge_back() {
    let mut net = Net::new(&[C1; 3]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let b1 = net.session(1, 1, "#b1#B", true);
    let c1 = net.session(2, 1, "#c1#C", true);
    for m in [a1, b1, c1] {
        net.join(&[0, 1, 2], "g", m);
    }
    net.join(&[0, 1, 2], "k", c1);
    net.join(&[0, 1, 2], "h", a1);

    // Split into {A, B} and {C}.
    let (rab, rc) = (conf(20, 7), conf(22, 7));
    let out = net.change(&[(conf(20, 6), &[0, 1])], rab, &[(0, C1), (1, C1)]);
    assert_eq!(seen(&out, 0, 1).len(), 2);
    let out = net.change(&[(conf(22, 6), &[2])], rc, &[(2, C1)]);
    assert_eq!(
        seen(&out, 2, 1),
        ["TRANS g 10.5.3", "NETWORK g [#c1#C] 22.7.1 [[#c1#C]] @0",]
    );
    // h had members on A only: C dropped it silently.
    assert_eq!(net.group_names(2), ["g", "k"]);
    assert_eq!(net.group_names(0), ["g", "h"]);

    // Merge back: g has two views; k (C only) and h (A only) did not change.
    let out = net.change(
        &[(conf(20, 8), &[0, 1]), (conf(22, 8), &[2])],
        conf(20, 9),
        &[(0, rab), (1, rab), (2, rc)],
    );
    let members = "[#a1#A #b1#B #c1#C]";
    let sets = "[[#a1#A #b1#B] [#c1#C]]";
    assert_eq!(
        seen(&out, 0, 1),
        [format!("NETWORK g {members} 20.9.1 {sets} @0")]
    );
    assert_eq!(
        seen(&out, 1, 1),
        [format!("NETWORK g {members} 20.9.1 {sets} @0")]
    );
    assert_eq!(
        seen(&out, 2, 1),
        [format!("NETWORK g {members} 20.9.1 {sets} @1")]
    );
    net.same_state(&[0, 1, 2]);
    let snapshot = net.daemons[1].snapshot();
    assert_eq!(snapshot.len(), 3);
    assert_eq!(
        snapshot[1].1,
        GroupId {
            proc_id: 10,
            time: 5,
            index: 1
        },
        "h"
    );
    assert_eq!(
        snapshot[2].1,
        GroupId {
            proc_id: 10,
            time: 5,
            index: 1
        },
        "k"
    );
}

#[test]
fn events_during_the_exchange() {
    let (ca, cb) = (conf(2, 50), conf(1, 60));
    let mut net = Net::new(&[ca, cb]);
    let a = net.session(0, 1, "#ca#da", true);
    let b = net.session(1, 1, "#cb#db", true);
    let b3 = net.session(1, 3, "#cb3#db", true);
    net.join(&[0], "grp", a);
    net.join(&[1], "grp", b);
    net.transitional(conf(2, 70), &[0]);
    net.transitional(conf(1, 70), &[1]);
    let (_, states) = net.regular(conf(1, 71), &[(0, ca), (1, cb)]);
    net.states(&[0, 1], &states[..1]);
    // A join and a message ordered before B's state: the message is delivered now, the join
    // waits for the new view.
    assert!(net.join(&[0, 1], "grp", b3).values().all(Vec::is_empty));
    let out = net.data(&[0, 1], b, "grp");
    assert_eq!(seen(&out, 0, 1), ["DATA"]);
    assert_eq!(seen(&out, 1, 1), ["DATA"]);
    assert!(seen(&out, 1, 3).is_empty());
    let out = net.states(&[0, 1], &states[1..]);
    let merged = "NETWORK grp [#ca#da #cb#db] 1.71.1 [[#cb#db] [#ca#da]]";
    let joined = "JOIN grp [#ca#da #cb#db #cb3#db] 1.71.2 [[#cb3#db]] @0";
    assert_eq!(seen(&out, 0, 1), [format!("{merged} @1"), joined.into()]);
    assert_eq!(seen(&out, 1, 1), [format!("{merged} @0"), joined.into()]);
    assert_eq!(seen(&out, 1, 3), [joined]);
    net.same_state(&[0, 1]);
}

#[test]
fn transitional_during_the_exchange() {
    // {A, B} and {C} merge; C is lost again before the exchange ends.
    let (cab, cc) = (conf(20, 7), conf(22, 7));
    let mut net = Net::new(&[cab, cab, cc]);
    let a1 = net.session(0, 1, "#a1#A", true);
    let b1 = net.session(1, 1, "#b1#B", true);
    let c1 = net.session(2, 1, "#c1#C", true);
    net.join(&[0, 1], "g", a1);
    net.join(&[0, 1], "g", b1);
    net.join(&[2], "g", c1);
    net.join(&[0, 1], "h", a1);
    net.transitional(conf(20, 8), &[0, 1]);
    net.transitional(conf(22, 8), &[2]);
    let r = conf(20, 9);
    let (_, states) = net.regular(r, &[(0, cab), (1, cab), (2, cc)]);

    // Case 1: C's state still arrives (in the transitional configuration): the merged view
    // is announced, then the loss of C.
    let mut late = Net {
        daemons: net.daemons.clone(),
    };
    late.states(&[0, 1], &states[..2]);
    assert!(late.transitional(conf(20, 10), &[0, 1])[&0].is_empty());
    let out = late.states(&[0, 1], &states[2..]);
    assert_eq!(
        seen(&out, 0, 1),
        [
            "NETWORK g [#a1#A #b1#B #c1#C] 20.9.1 [[#a1#A #b1#B] [#c1#C]] @0",
            "TRANS g 20.9.1",
        ]
    );
    let (out, states2) = late.regular(conf(20, 11), &[(0, r), (1, r)]);
    assert!(states2.is_empty());
    assert_eq!(
        seen(&out, 0, 1),
        ["NETWORK g [#a1#A #b1#B] 20.11.1 [[#a1#A #b1#B]] @0"]
    );
    late.same_state(&[0, 1]);

    // Case 2: C's state never arrives, and a leave of A's member and a disconnect of C's
    // were held. The next regular configuration applies the held events of daemons still
    // here (the disconnect of C's member goes with C) and starts a new exchange; C being
    // gone, no view changed by the configuration: no network notice.
    net.states(&[0, 1], &states[..2]);
    assert!(net.leave(&[0, 1], "g", a1).values().all(Vec::is_empty));
    assert!(net
        .event(&[0, 1], Event::Disconnect { member: c1 })
        .values()
        .all(Vec::is_empty));
    assert!(net
        .transitional(conf(20, 10), &[0, 1])
        .values()
        .all(Vec::is_empty));
    let (out, states2) = net.regular(conf(20, 11), &[(0, r), (1, r)]);
    assert_eq!(states2.len(), 2);
    assert_eq!(seen(&out, 0, 1), ["SELF-LEAVE g"]);
    assert_eq!(seen(&out, 1, 1), ["LEAVE g [#b1#B] 20.7.3 [[#a1#A]] @0"]);
    assert!(net.daemons[0].exchanging());
    let out = net.states(&[0, 1], &states2);
    assert!(out.values().all(Vec::is_empty), "{out:?}");
    assert!(!net.daemons[0].exchanging());
    net.same_state(&[0, 1]);
    assert_eq!(net.daemons[0].members(&name_field(b"g")), [b1]);
    assert_eq!(
        net.daemons[0].snapshot()[0].1,
        GroupId {
            proc_id: 20,
            time: 7,
            index: 3
        }
    );
}

#[test]
fn regular_during_the_exchange_without_transitional() {
    // Spread always sends a transitional configuration first; if one is missing, the daemons
    // coming from this daemon's configuration are taken as the transitional one.
    let (ca, cb) = (conf(2, 50), conf(1, 60));
    let mut net = Net::new(&[ca, cb, C1]);
    let a = net.session(0, 1, "#a#A", true);
    let b = net.session(1, 1, "#b#B", true);
    net.join(&[0], "g", a);
    net.join(&[1], "g", b);
    net.transitional(conf(2, 70), &[0]);
    net.transitional(conf(1, 70), &[1]);
    let r = conf(1, 71);
    let (_, states) = net.regular(r, &[(0, ca), (1, cb)]);
    net.states(&[0, 1], &states[..1]);
    // Daemon 2 shows up in the next configuration; B's state never came.
    let (out, states) = net.regular(conf(1, 72), &[(0, r), (1, r), (2, C1)]);
    assert!(out.values().all(Vec::is_empty));
    assert_eq!(states.len(), 3);
    let out = net.states(&[0, 1, 2], &states);
    let view = "NETWORK g [#a#A #b#B] 1.72.1 [[#b#B] [#a#A]]";
    assert_eq!(seen(&out, 0, 1), [format!("{view} @1")]);
    assert_eq!(seen(&out, 1, 1), [format!("{view} @0")]);
    net.same_state(&[0, 1, 2]);
}

#[test]
fn malformed_and_stray_state_messages() {
    let (ca, cb) = (conf(2, 50), conf(1, 60));
    let mut net = Net::new(&[ca, cb]);
    let a = net.session(0, 1, "#a#A", true);
    let b = net.session(1, 1, "#b#B", true);
    net.join(&[0], "g", a);
    net.join(&[1], "g", b);
    // Outside an exchange: ignored.
    assert!(net
        .states(&[0, 1], &[(1, vec![1, 2, 3])])
        .values()
        .all(Vec::is_empty));
    net.transitional(conf(2, 70), &[0]);
    net.transitional(conf(1, 70), &[1]);
    let reg = conf(1, 71);
    let (_, states) = net.regular(reg, &[(0, ca), (1, cb)]);
    // From a daemon not in the configuration, and one for another configuration: not counted.
    net.states(&[0, 1], &[(7, states[0].1.clone())]);
    let stale = state::encode(&GroupState {
        conf: ca,
        groups: vec![],
    });
    net.states(&[0, 1], &[(1, stale)]);
    net.states(&[0, 1], &states[..1]);
    // A repeat of A's is not counted either.
    net.states(&[0, 1], &states[..1]);
    assert!(net.daemons[0].exchanging() && net.daemons[1].exchanging());
    // B's state is mangled: taken as empty by everyone (B included), so B's member is gone.
    let out = net.states(&[0, 1], &[(1, vec![1, 0xff])]);
    assert!(!net.daemons[0].exchanging() && !net.daemons[1].exchanging());
    assert!(out.values().all(Vec::is_empty), "g kept A's view");
    net.same_state(&[0, 1]);
    assert_eq!(net.daemons[1].members(&name_field(b"g")), [a]);
}

#[test]
fn first_regular_configuration_without_transitional() {
    // A daemon starts alone: its first regular configuration comes without a transitional one.
    let mut g = Groups::new(3, C1);
    let mut out = Vec::new();
    assert!(g.regular(conf(40, 1), &[(3, C1)], &mut out).is_none());
    assert!(out.is_empty());
    g.add_local_session(SessionId(1), &name_field(b"#x#D"), true);
    let x = MemberId {
        daemon: 3,
        private_group: name_field(b"#x#D"),
    };
    g.apply(
        Event::Join {
            group: &name_field(b"g"),
            member: x,
        },
        &mut out,
    );
    assert_eq!(
        g.snapshot()[0].1,
        GroupId {
            proc_id: 40,
            time: 1,
            index: 1
        }
    );
}

/// Three daemons through joins, splits, merges and events in every phase: after each step the
/// daemons of a component hold the same groups, and every notice describes that state.
#[test]
fn every_daemon_computes_the_same_membership() {
    let c = [conf(1, 1), conf(2, 1), conf(3, 1)];
    let mut net = Net::new(&c);
    let mut members = Vec::new();
    for d in 0..3u16 {
        for n in 1..=3u64 {
            let name = format!("#m{n}#D{d}");
            members.push(net.session(d, n, &name, n != 2));
        }
    }
    // Alone: each daemon's own groups.
    for (i, m) in members.iter().enumerate() {
        let who = [m.daemon];
        net.join(&who, ["g", "h", "k"][i % 3], *m);
        net.join(&who, "all", *m);
    }
    // A and B merge.
    let rab = conf(1, 2);
    net.change(
        &[(conf(1, 10), &[0]), (conf(2, 10), &[1])],
        rab,
        &[(0, c[0]), (1, c[1])],
    );
    net.same_state(&[0, 1]);
    // C joins them while B's member leaves in the middle of the exchange.
    net.transitional(conf(1, 11), &[0, 1]);
    net.transitional(conf(3, 11), &[2]);
    let r3 = conf(1, 12);
    let (_, states) = net.regular(r3, &[(0, rab), (1, rab), (2, c[2])]);
    net.states(&[0, 1, 2], &states[..1]);
    net.leave(&[0, 1, 2], "all", members[4]);
    net.data(&[0, 1, 2], members[0], "all");
    net.states(&[0, 1, 2], &states[1..]);
    net.same_state(&[0, 1, 2]);
    assert_eq!(net.daemons[2].members(&name_field(b"all")).len(), 8);
    // B is lost; a join of B's member arrives in the transitional configuration.
    net.transitional(conf(1, 13), &[0, 2]);
    net.join(&[0, 2], "h", members[3]);
    net.leave(&[0, 2], "all", members[8]);
    let (_, states) = net.regular(conf(1, 14), &[(0, r3), (2, r3)]);
    assert!(states.is_empty());
    net.same_state(&[0, 2]);
    assert!(net.daemons[0]
        .snapshot()
        .iter()
        .all(|(_, _, m)| m.iter().all(|m| m.daemon != 1)));
    // B comes back.
    let out = net.change(
        &[(conf(1, 15), &[0, 2]), (conf(2, 15), &[1])],
        conf(1, 16),
        &[(0, conf(1, 14)), (1, r3), (2, conf(1, 14))],
    );
    net.same_state(&[0, 1, 2]);
    // Every REG_MEMB notice lists exactly the members the state holds.
    for (d, fanouts) in &out {
        let snapshot = net.daemons[*d as usize].snapshot();
        for f in fanouts {
            let Message::Notice(bytes) = &f.message else {
                continue;
            };
            let (header, _) = Header::decode(bytes[..HEADER_LEN].try_into().unwrap());
            if header.msg_type & REG_MEMB_MESS == 0 {
                continue;
            }
            let group = snapshot.iter().find(|(n, _, _)| *n == header.sender).unwrap();
            let names: Vec<Name> = group.2.iter().map(|m| m.private_group).collect();
            let listed: Vec<Name> = bytes[HEADER_LEN..HEADER_LEN + NAME_LEN * header.num_groups as usize]
                .chunks(NAME_LEN)
                .map(|c| c.try_into().unwrap())
                .collect();
            assert_eq!(listed, names);
            assert_eq!(
                GroupId::decode(&bytes[HEADER_LEN + NAME_LEN * names.len()..]),
                group.1
            );
        }
    }
}
