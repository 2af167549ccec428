use super::*;
use crate::wire::header::hint_for_mess_type;
use crate::wire::name::name_field;
use crate::wire::{AGREED_MESS, JOIN_MESS, KILL_MESS, LEAVE_MESS, SELF_DISCARD};

use crate::config::Options;

/// A daemon configured alone.
fn lone_node() -> Node {
    Node::new(
        Setup {
            me: 7,
            daemons: vec![7],
            daemon_name: b"localhost".to_vec(),
            config_hash: 1,
            params: membership::Params::from_options(&Options::new()),
            epoch: 9,
        },
        Time::ZERO,
    )
}

fn frame(msg_type: u32, sender: &[u8], groups: &[&[u8]], payload: &[u8]) -> ClientRequest {
    let header = Header {
        msg_type,
        sender: name_field(sender),
        num_groups: groups.len() as i32,
        hint: hint_for_mess_type(3),
        data_len: payload.len() as i32,
    };
    let mut bytes = header.encode().to_vec();
    for g in groups {
        bytes.extend_from_slice(&name_field(g));
    }
    bytes.extend_from_slice(payload);
    let kind = crate::wire::request::classify_request(&header, sender).unwrap();
    ClientRequest {
        kind,
        header,
        frame: Frame::from_vec(bytes),
    }
}

fn run(node: &mut Node, input: Input) -> Vec<Output> {
    let mut out = Vec::new();
    node.handle(Time::ZERO, input, &mut out);
    out
}

fn request(node: &mut Node, session: SessionId, request: ClientRequest) -> Vec<Output> {
    run(
        node,
        Input::Request {
            session,
            request: &request,
        },
    )
}

fn delivered(out: &[Output]) -> Vec<(SessionId, Vec<u8>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Deliver { session, frame } => Some((*session, frame.bytes().to_vec())),
            Output::End { .. } | Output::Send { .. } => None,
        })
        .collect()
}

#[test]
fn sessions_names_and_private_groups() {
    let mut node = lone_node();
    let a = node.open_session(b"alice", true).unwrap();
    assert_eq!(a.private_group, b"#alice#localhost");
    assert!(node.private_name_in_use(b"alice"));
    assert_eq!(node.open_session(b"alice", false), Err(REJECT_NOT_UNIQUE));
    assert!(run(&mut node, Input::Closed { session: a.id }).is_empty());
    assert!(!node.private_name_in_use(b"alice"));
    assert_eq!(node.session_count(), 0);
    let again = node.open_session(b"alice", false).unwrap();
    assert_ne!(again.id, a.id);
}

#[test]
fn join_multicast_leave_kill() {
    let mut node = lone_node();
    let a = node.open_session(b"alice", true).unwrap();
    let b = node.open_session(b"bob", false).unwrap();
    let pa = b"#alice#localhost";
    let pb = b"#bob#localhost";

    let out = request(&mut node, a.id, frame(JOIN_MESS, pa, &[b"g1"], b""));
    let got = delivered(&out);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1.len()), (a.id, 136));
    // Bob has no notices.
    assert!(
        delivered(&request(&mut node, b.id, frame(JOIN_MESS, pb, &[b"g1"], b"")))
            .iter()
            .all(|d| d.0 == a.id)
    );

    // Data is forwarded byte for byte and shared, one copy per receiver.
    let msg = frame(AGREED_MESS, pa, &[b"g1", pb], b"hello");
    let sent = msg.frame.bytes().to_vec();
    let out = request(&mut node, a.id, msg);
    let got = delivered(&out);
    assert_eq!(got, vec![(a.id, sent.clone()), (b.id, sent)]);
    let out = request(
        &mut node,
        a.id,
        frame(AGREED_MESS | SELF_DISCARD, pa, &[b"g1"], b"x"),
    );
    assert_eq!(
        delivered(&out).iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![b.id]
    );

    // Bob leaves: alice learns it, bob (no notices) gets no self-leave.
    let out = request(&mut node, b.id, frame(LEAVE_MESS, pb, &[b"g1"], b""));
    let got = delivered(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1[..4], [0x80, 0x12, 0x00, 0x80]);

    // Kill: the session ends and the others see a disconnect.
    request(&mut node, b.id, frame(JOIN_MESS, pb, &[b"g1"], b""));
    let out = request(&mut node, b.id, frame(KILL_MESS, pb, &[pb], b""));
    assert!(matches!(out[0], Output::End { session } if session == b.id));
    let got = delivered(&out);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1[..4], [0x80, 0x14, 0x00, 0x80]);
    assert!(!node.private_name_in_use(b"bob"));
    // Requests of an ended session are dropped.
    assert!(request(&mut node, b.id, frame(AGREED_MESS, pb, &[b"g1"], b"late")).is_empty());
}
