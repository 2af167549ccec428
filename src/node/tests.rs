use super::*;
use crate::wire::header::hint_for_mess_type;
use crate::wire::name::name_field;
use crate::wire::{AGREED_MESS, JOIN_MESS, KILL_MESS, LEAVE_MESS, SELF_DISCARD};

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::Options;
use crate::wire::{CAUSED_BY_DISCONNECT, REG_MEMB_MESS, SAFE_MESS};

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

/// Nodes 1, 2, ... on a lossless network that delivers in order without delay.
struct Cluster {
    ids: Vec<u32>,
    nodes: Vec<Node>,
    now: Time,
    in_flight: VecDeque<(usize, Vec<u8>)>,
    /// What each node's sessions received, in order.
    delivered: Vec<Vec<(SessionId, Vec<u8>)>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let ids: Vec<u32> = (1..=n as u32).collect();
        let nodes = ids
            .iter()
            .map(|&me| {
                let setup = Setup {
                    me,
                    daemons: ids.clone(),
                    daemon_name: format!("d{me}").into_bytes(),
                    config_hash: 5,
                    params: membership::Params::fast(),
                    epoch: 100,
                };
                Node::new(setup, Time::ZERO)
            })
            .collect();
        Cluster {
            ids,
            nodes,
            now: Time::ZERO,
            in_flight: VecDeque::new(),
            delivered: vec![Vec::new(); n],
        }
    }

    fn call(&mut self, i: usize, input: Input) {
        let mut out = Vec::new();
        self.nodes[i].handle(self.now, input, &mut out);
        for o in out {
            match o {
                Output::Send { to, datagram } => {
                    let targets: Vec<usize> = match to {
                        Destination::All => (0..self.ids.len()).filter(|&j| j != i).collect(),
                        Destination::Daemon(id) => vec![self.ids.iter().position(|&d| d == id).unwrap()],
                    };
                    for j in targets {
                        self.in_flight.push_back((j, datagram.clone()));
                    }
                }
                Output::Deliver { session, frame } => {
                    self.delivered[i].push((session, frame.bytes().to_vec()))
                }
                Output::End { .. } => {}
            }
        }
    }

    /// One packet, or else the earliest timer up to `until`; false when there is neither.
    fn step(&mut self, until: Time) -> bool {
        if let Some((to, bytes)) = self.in_flight.pop_front() {
            self.call(
                to,
                Input::Packet {
                    network: 0,
                    bytes: &bytes,
                },
            );
            return true;
        }
        let Some(at) = self
            .nodes
            .iter()
            .filter_map(Node::next_deadline)
            .min()
            .filter(|&t| t <= until)
        else {
            return false;
        };
        self.now = self.now.max(at);
        for i in 0..self.nodes.len() {
            if self.nodes[i].next_deadline().is_some_and(|t| t <= self.now) {
                self.call(i, Input::Timer);
            }
        }
        true
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        for _ in 0..1_000_000 {
            if !self.step(until) {
                self.now = until;
                return;
            }
        }
        panic!("the cluster never went quiet");
    }

    fn session(&mut self, i: usize, name: &[u8]) -> (SessionId, Vec<u8>) {
        let s = self.nodes[i].open_session(name, true).unwrap();
        (s.id, s.private_group)
    }

    fn request(&mut self, i: usize, session: SessionId, request: ClientRequest) {
        self.call(
            i,
            Input::Request {
                session,
                request: &request,
            },
        );
    }

    /// Message types and bodies of what `session` of node `i` got.
    fn received(&self, i: usize, session: SessionId) -> Vec<(u32, Vec<u8>)> {
        self.delivered[i]
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, bytes)| {
                let (header, _) = Header::decode(bytes[..HEADER_LEN].try_into().unwrap());
                let body = HEADER_LEN + NAME_LEN * header.num_groups as usize;
                (header.msg_type, bytes[body..].to_vec())
            })
            .collect()
    }
}

fn is_view(msg_type: u32) -> bool {
    msg_type & REG_MEMB_MESS != 0
}

#[test]
fn nodes_share_one_order_of_joins_and_messages() {
    let mut c = Cluster::new(3);
    c.run_for(Duration::from_millis(300));
    let sessions: Vec<(SessionId, Vec<u8>)> =
        (0..3).map(|i| c.session(i, format!("u{i}").as_bytes())).collect();
    for (i, (id, pg)) in sessions.iter().enumerate() {
        c.request(i, *id, frame(JOIN_MESS, pg, &[b"g"], b""));
    }
    c.run_for(Duration::from_millis(50));
    for (i, (id, pg)) in sessions.iter().enumerate() {
        for k in 0..20u8 {
            let service = if k % 3 == 0 { SAFE_MESS } else { AGREED_MESS };
            c.request(i, *id, frame(service, pg, &[b"g"], &[i as u8, k]));
        }
    }
    c.run_for(Duration::from_millis(100));
    let first = c.received(0, sessions[0].0);
    // One view for each join at and after a member's own: 3 + 2 + 1.
    let views: usize = (0..3)
        .map(|i| {
            c.received(i, sessions[i].0)
                .iter()
                .filter(|(t, _)| is_view(*t))
                .count()
        })
        .sum();
    assert_eq!(views, 6);
    assert_eq!(first.iter().filter(|(t, _)| !is_view(*t)).count(), 60);
    for (i, (id, _)) in sessions.iter().enumerate().skip(1) {
        let data = |r: Vec<(u32, Vec<u8>)>| r.into_iter().filter(|(t, _)| !is_view(*t)).collect::<Vec<_>>();
        assert_eq!(data(c.received(i, *id)), data(first.clone()), "node {i}");
    }
    // Each sender's messages in its order.
    for i in 0..3u8 {
        let mine: Vec<u8> = first
            .iter()
            .filter(|(t, b)| !is_view(*t) && b[0] == i)
            .map(|(_, b)| b[1])
            .collect();
        assert_eq!(mine, (0..20).collect::<Vec<u8>>());
    }
    assert_eq!(c.nodes[0].stats().malformed_envelopes, 0);

    // A connection ends on node 3: the others see its member go.
    c.call(
        2,
        Input::Closed {
            session: sessions[2].0,
        },
    );
    c.run_for(Duration::from_millis(50));
    for (i, (id, _)) in sessions.iter().enumerate().take(2) {
        let last = c.received(i, *id).last().map(|(t, _)| *t).unwrap();
        assert_eq!(
            last & (REG_MEMB_MESS | CAUSED_BY_DISCONNECT),
            REG_MEMB_MESS | CAUSED_BY_DISCONNECT
        );
    }
}

#[test]
fn requests_wait_for_the_group_state_exchange_and_keep_their_order() {
    let mut c = Cluster::new(2);
    let (a, pa) = c.session(0, b"a");
    c.request(0, a, frame(JOIN_MESS, &pa, &[b"g"], b""));
    // Run until node 1 (the first daemon) exchanges group states after the merge.
    let until = c.now + Duration::from_secs(1);
    while !c.nodes[0].groups.exchanging() {
        assert!(c.step(until), "no exchange");
    }
    for k in 0..MAX_WAITING as u32 {
        c.request(0, a, frame(AGREED_MESS, &pa, &[b"g"], &k.to_be_bytes()));
    }
    assert_eq!(c.nodes[0].held.len(), MAX_WAITING);
    assert!(!c.nodes[0].accepting_requests());
    c.run_for(Duration::from_millis(500));
    assert!(c.nodes[0].accepting_requests());
    let got: Vec<u32> = c
        .received(0, a)
        .into_iter()
        .filter(|(t, _)| !is_view(*t))
        .map(|(_, b)| u32::from_be_bytes(b[..4].try_into().unwrap()))
        .collect();
    assert_eq!(got, (0..MAX_WAITING as u32).collect::<Vec<_>>());
}

#[test]
fn malformed_events_from_peers_are_counted_and_dropped() {
    let mut node = lone_node();
    let mut states = Vec::new();
    let mut out = Vec::new();
    for message in [&b""[..], &[9, 9], &[1, 0]] {
        let event = membership::Event::Deliver {
            origin: 7,
            service: ServiceLevel::Agreed,
            message,
        };
        node.apply(event, &mut states, &mut out);
    }
    // And from a daemon that is not configured.
    let event = membership::Event::Deliver {
        origin: 99,
        service: ServiceLevel::Agreed,
        message: &[3],
    };
    node.apply(event, &mut states, &mut out);
    assert_eq!(node.stats().malformed_envelopes, 4);
    assert!(out.is_empty() && states.is_empty());
}
