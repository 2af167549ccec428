use super::*;
use crate::wire::name::name_field;
use crate::wire::{AGREED_MESS, HEADER_LEN};

const CONF: ConfigurationId = ConfigurationId {
    proc_id: 0x1cc5_9726,
    time: 0x6b08_3058,
};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn member(daemon: DaemonIndex, pg: &str) -> MemberId {
    MemberId {
        daemon,
        private_group: name_field(pg.as_bytes()),
    }
}

/// Daemon 0 with local sessions: 1 = #alice#localhost (notices), 2 = #bob#localhost (notices),
/// 3 = #carl#localhost (no notices).
fn state() -> Groups {
    let mut g = Groups::new(0, CONF);
    g.add_local_session(SessionId(1), &name_field(b"#alice#localhost"), true);
    g.add_local_session(SessionId(2), &name_field(b"#bob#localhost"), true);
    g.add_local_session(SessionId(3), &name_field(b"#carl#localhost"), false);
    g
}

fn apply(g: &mut Groups, e: Event<'_>) -> Vec<Fanout> {
    let mut out = Vec::new();
    g.apply(e, &mut out);
    out
}

fn join(g: &mut Groups, group: &str, m: MemberId) -> Vec<Fanout> {
    apply(
        g,
        Event::Join {
            group: &name_field(group.as_bytes()),
            member: m,
        },
    )
}

fn leave(g: &mut Groups, group: &str, m: MemberId) -> Vec<Fanout> {
    apply(
        g,
        Event::Leave {
            group: &name_field(group.as_bytes()),
            member: m,
        },
    )
}

fn data(g: &mut Groups, sender: MemberId, msg_type: u32, dests: &[&[u8]]) -> Vec<SessionId> {
    let dests: Vec<u8> = dests.iter().flat_map(|d| name_field(d)).collect();
    let out = apply(
        g,
        Event::Data {
            sender,
            msg_type,
            destinations: &dests,
        },
    );
    match out.as_slice() {
        [] => vec![],
        [Fanout {
            sessions,
            message: Message::Data,
        }] => sessions.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

fn notice(f: &Fanout) -> &[u8] {
    match &f.message {
        Message::Notice(bytes) => bytes,
        Message::Data => panic!("data instead of a notice"),
    }
}

fn index_of(notice: &[u8]) -> i32 {
    let num = i32::from_ne_bytes(notice[36..40].try_into().unwrap()) as usize;
    let body = HEADER_LEN + NAME_LEN * num;
    i32::from_ne_bytes(notice[body + 8..body + 12].try_into().unwrap())
}

fn names_of(notice: &[u8]) -> Vec<Vec<u8>> {
    let num = i32::from_ne_bytes(notice[36..40].try_into().unwrap()) as usize;
    (0..num)
        .map(|i| name_text(&notice[HEADER_LEN + NAME_LEN * i..][..NAME_LEN]).to_vec())
        .collect()
}

#[test]
fn join_notice_vector() {
    // Spec section 8: the 136-byte reply to #alice#localhost joining g1.
    let mut g = state();
    let out = join(&mut g, "g1", member(0, "#alice#localhost"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sessions, vec![SessionId(1)]);
    let mut want = hex("80 11 00 80 67 31");
    want.resize(36, 0);
    want.extend(hex("01 00 00 00 80 00 00 80 38 00 00 00"));
    want.extend_from_slice(&name_field(b"#alice#localhost"));
    want.extend(hex(
        "26 97 c5 1c 58 30 08 6b 01 00 00 00 01 00 00 00 00 00 00 00 01 00 00 00",
    ));
    want.extend_from_slice(&name_field(b"#alice#localhost"));
    assert_eq!(notice(&out[0]), want.as_slice());
}

#[test]
fn self_leave_vector() {
    let mut g = state();
    join(&mut g, "g1", member(0, "#alice#localhost"));
    let out = leave(&mut g, "g1", member(0, "#alice#localhost"));
    // Alone in the group: only the self-leave, the group is gone.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sessions, vec![SessionId(1)]);
    let mut want = hex("80 02 00 80 67 31");
    want.resize(36, 0);
    want.extend(hex("00 00 00 00 80 00 00 80 00 00 00 00"));
    assert_eq!(notice(&out[0]), want.as_slice());
    assert!(g.members(&name_field(b"g1")).is_empty());
}

#[test]
fn leave_and_disconnect_notices() {
    let mut g = state();
    let alice = member(0, "#alice#localhost");
    let bob = member(0, "#bob#localhost");
    join(&mut g, "g1", alice);
    let out = join(&mut g, "g1", bob);
    assert_eq!(out[0].sessions, vec![SessionId(1), SessionId(2)]);
    assert_eq!(index_of(notice(&out[0])), 2);

    let out = leave(&mut g, "g1", bob);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].sessions, vec![SessionId(2)]);
    assert_eq!(notice(&out[0])[..4], [0x80, 0x02, 0x00, 0x80]);
    assert_eq!(out[1].sessions, vec![SessionId(1)]);
    let n = notice(&out[1]);
    assert_eq!(n[..4], [0x80, 0x12, 0x00, 0x80]);
    assert_eq!(names_of(n), vec![b"#alice#localhost".to_vec()]);
    assert_eq!(index_of(n), 3);
    // The vs set holds the leaver.
    assert_eq!(name_text(&n[n.len() - NAME_LEN..]), b"#bob#localhost");

    join(&mut g, "g1", bob);
    join(&mut g, "g2", bob);
    join(&mut g, "g2", alice);
    let out = apply(&mut g, Event::Disconnect { member: alice });
    // Once per group, to the remaining member, CAUSED_BY_DISCONNECT.
    assert_eq!(out.len(), 2);
    for f in &out {
        assert_eq!(f.sessions, vec![SessionId(2)]);
        assert_eq!(notice(f)[..4], [0x80, 0x14, 0x00, 0x80]);
        assert_eq!(names_of(notice(f)), vec![b"#bob#localhost".to_vec()]);
    }
    assert_eq!(&notice(&out[0])[4..7], b"g1\0");
    assert_eq!(&notice(&out[1])[4..7], b"g2\0");
    // No self notice for a disconnect, and a second disconnect changes nothing.
    assert!(apply(&mut g, Event::Disconnect { member: alice }).is_empty());
}

#[test]
fn members_ordered_by_daemon_then_name() {
    let mut g = state();
    join(&mut g, "g", member(2, "#a#d2"));
    join(&mut g, "g", member(0, "#carl#localhost"));
    join(&mut g, "g", member(1, "#z#d1"));
    let out = join(&mut g, "g", member(0, "#bob#localhost"));
    let want: Vec<Vec<u8>> = ["#bob#localhost", "#carl#localhost", "#z#d1", "#a#d2"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    assert_eq!(names_of(notice(&out[0])), want);
    // Carl asked for no notices; remote members are not this daemon's to notify.
    assert_eq!(out[0].sessions, vec![SessionId(2)]);
}

#[test]
fn join_and_leave_idempotence() {
    let mut g = state();
    let alice = member(0, "#alice#localhost");
    join(&mut g, "g1", alice);
    assert!(join(&mut g, "g1", alice).is_empty());
    assert!(leave(&mut g, "g1", member(0, "#bob#localhost")).is_empty());
    assert!(leave(&mut g, "nothing", alice).is_empty());
    assert_eq!(g.members(&name_field(b"g1")), vec![alice]);
    // Private groups cannot be joined.
    assert!(join(&mut g, "#bob#localhost", alice).is_empty());
    assert!(g.members(&name_field(b"#bob#localhost")).is_empty());
}

#[test]
fn last_member_destroys_group() {
    let mut g = state();
    let alice = member(0, "#alice#localhost");
    join(&mut g, "g1", alice);
    join(&mut g, "g1", member(0, "#bob#localhost"));
    leave(&mut g, "g1", member(0, "#bob#localhost"));
    leave(&mut g, "g1", alice);
    let out = join(&mut g, "g1", alice);
    assert_eq!(index_of(notice(&out[0])), 1);
}

#[test]
fn data_each_session_once() {
    let mut g = state();
    let alice = member(0, "#alice#localhost");
    let bob = member(0, "#bob#localhost");
    let carl = member(0, "#carl#localhost");
    join(&mut g, "g1", alice);
    join(&mut g, "g1", bob);
    join(&mut g, "g2", bob);
    join(&mut g, "g2", carl);
    join(&mut g, "g2", member(1, "#x#other"));
    // Bob matches g1, g2 and his private group: one copy. Carl (no notices) gets data too.
    let got = data(&mut g, alice, AGREED_MESS, &[b"g1", b"g2", b"#bob#localhost"]);
    assert_eq!(got, vec![SessionId(1), SessionId(2), SessionId(3)]);
    // Self discard.
    let got = data(&mut g, alice, AGREED_MESS | SELF_DISCARD, &[b"g1"]);
    assert_eq!(got, vec![SessionId(2)]);
    // Open groups: a non-member sender gets no copy; unknown groups are ignored.
    let got = data(&mut g, carl, AGREED_MESS, &[b"g1", b"nope"]);
    assert_eq!(got, vec![SessionId(1), SessionId(2)]);
    assert!(data(&mut g, carl, AGREED_MESS, &[b"nope"]).is_empty());
    // A sender gets what it sends to its own private group.
    assert_eq!(
        data(&mut g, carl, AGREED_MESS, &[b"#carl#localhost"]),
        vec![SessionId(3)]
    );
}

#[test]
fn private_groups_only_on_their_daemon() {
    let mut g = state();
    let remote = member(1, "#x#other");
    assert!(data(&mut g, remote, AGREED_MESS, &[b"#alice#other"]).is_empty());
    assert!(data(&mut g, remote, AGREED_MESS, &[b"#nobody#localhost"]).is_empty());
    assert_eq!(
        data(&mut g, remote, AGREED_MESS, &[b"#alice#localhost"]),
        vec![SessionId(1)]
    );
    // Bytes after the NUL of a destination field are not part of the name.
    let mut field = name_field(b"#alice#localhost");
    field[20] = b'x';
    let out = apply(
        &mut g,
        Event::Data {
            sender: remote,
            msg_type: AGREED_MESS,
            destinations: &field,
        },
    );
    assert_eq!(out[0].sessions, vec![SessionId(1)]);
}

#[test]
fn removed_session_gets_nothing_and_name_reuse_inherits_nothing() {
    let mut g = state();
    let alice = member(0, "#alice#localhost");
    join(&mut g, "g1", alice);
    join(&mut g, "g1", member(0, "#bob#localhost"));
    g.remove_local_session(&alice.private_group);
    // A new session takes the name before the old one's disconnect is ordered: the old
    // membership still names the old session (which the daemon no longer has), not the new.
    g.add_local_session(SessionId(9), &alice.private_group, true);
    let got = data(&mut g, member(0, "#bob#localhost"), AGREED_MESS, &[b"g1"]);
    assert_eq!(got, vec![SessionId(1), SessionId(2)]);
    let out = apply(&mut g, Event::Disconnect { member: alice });
    assert_eq!(out[0].sessions, vec![SessionId(2)]);
    assert!(!out.iter().any(|f| f.sessions.contains(&SessionId(9))));
}
