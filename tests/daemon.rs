//! Starts the built `spread` daemon and speaks the client protocol to it over its Unix socket.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use spread::wire::handshake::{encode_auth_choice, encode_connect_request};
use spread::wire::header::{hint_for_mess_type, DAEMON_HINT};
use spread::wire::name::{name_field, name_text};
use spread::wire::{
    Header, AGREED_MESS, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, FIFO_MESS, HEADER_LEN, JOIN_MESS, KILL_MESS,
    NAME_LEN, REG_MEMB_MESS, SAFE_MESS, SELF_DISCARD,
};
use support::cluster::{daemon_name, loopback_address, Cluster};
use support::{Daemon, DaemonKind};

fn start(extra_config: &str) -> Daemon {
    Daemon::start_with(&DaemonKind::ours(), extra_config)
}

fn connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(d.socket_path()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A session through the whole handshake; returns it and its private group name.
fn session(d: &Daemon, name: &str, membership: bool) -> (UnixStream, Vec<u8>) {
    let mut s = connect(d);
    s.write_all(&encode_connect_request(name.as_bytes(), membership, 0))
        .unwrap();
    assert_eq!(read_exact(&mut s, 6), b"\x05NULL ");
    s.write_all(&encode_auth_choice(&[b"NULL"])).unwrap();
    let head = read_exact(&mut s, 5);
    assert_eq!(head[..4], [1, 5, 0, 1]);
    let pg = read_exact(&mut s, head[4] as usize);
    (s, pg)
}

fn read_exact(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// One whole daemon message: decoded header and all its bytes.
fn receive(s: &mut impl Read) -> (Header, Vec<u8>) {
    let mut bytes = read_exact(s, HEADER_LEN);
    let (header, foreign) = Header::decode(bytes[..].try_into().unwrap());
    assert!(!foreign);
    let rest = header.num_groups as usize * NAME_LEN + header.data_len as usize;
    bytes.extend(read_exact(s, rest));
    (header, bytes)
}

fn message(msg_type: u32, sender: &[u8], groups: &[&[u8]], mess_type: i16, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        msg_type,
        sender: name_field(sender),
        num_groups: groups.len() as i32,
        hint: hint_for_mess_type(mess_type),
        data_len: payload.len() as i32,
    };
    let mut m = h.encode().to_vec();
    for g in groups {
        m.extend_from_slice(&name_field(g));
    }
    m.extend_from_slice(payload);
    m
}

fn member_names(bytes: &[u8], h: &Header) -> Vec<Vec<u8>> {
    (0..h.num_groups as usize)
        .map(|i| name_text(&bytes[HEADER_LEN + i * NAME_LEN..][..NAME_LEN]).to_vec())
        .collect()
}

/// The group index of a regular membership notice.
fn view_index(bytes: &[u8], h: &Header) -> i32 {
    let body = HEADER_LEN + h.num_groups as usize * NAME_LEN;
    i32::from_ne_bytes(bytes[body + 8..body + 12].try_into().unwrap())
}

/// True when the daemon closed the connection (EOF), reading and counting what came before.
fn drained_to_eof(s: &mut UnixStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("no EOF: {e}"),
        }
    }
}

#[test]
fn handshake_join_multicast_and_membership_bytes() {
    let d = start("");
    let (mut alice, pa) = session(&d, "alice", true);
    assert_eq!(pa, b"#alice#localhost");

    alice
        .write_all(&message(JOIN_MESS, &pa, &[b"g1"], 0, b""))
        .unwrap();
    let (h, bytes) = receive(&mut alice);
    assert_eq!(bytes.len(), 136);
    assert_eq!(bytes[..4], [0x80, 0x11, 0x00, 0x80]);
    assert_eq!(
        (h.msg_type, &bytes[4..7]),
        (REG_MEMB_MESS | CAUSED_BY_JOIN, &b"g1\0"[..])
    );
    assert_eq!((h.num_groups, h.hint, h.data_len), (1, DAEMON_HINT, 56));
    assert_eq!(view_index(&bytes, &h), 1);
    assert_eq!(bytes[92..100], [1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[100..104], &[1, 0, 0, 0]);
    assert_eq!(&bytes[104..136], &name_field(&pa));

    // Multicasts come back byte for byte, in order.
    let hello = message(AGREED_MESS, &pa, &[b"g1"], 7, b"hello");
    let fifo = message(FIFO_MESS | 0x4000_0000, &pa, &[b"g1", b"nobody"], -2, &[9; 3000]);
    alice.write_all(&[hello.clone(), fifo.clone()].concat()).unwrap();
    assert_eq!(receive(&mut alice).1, hello);
    assert_eq!(receive(&mut alice).1, fifo);

    // The largest message the validation accepts is carried whole.
    let largest = message(SAFE_MESS, &pa, &[b"g1"], 1, &vec![0x5a; 143_920]);
    alice.write_all(&largest).unwrap();
    assert_eq!(receive(&mut alice).1, largest);

    // Bob (an invented name, no notices) joins: alice sees both members in name order.
    let (mut bob, pb) = session(&d, "", false);
    assert!(pb.starts_with(b"#r") && pb.ends_with(b"#localhost"));
    bob.write_all(&message(JOIN_MESS, &pb, &[b"g1"], 0, b"")).unwrap();
    let (h, bytes) = receive(&mut alice);
    assert_eq!(member_names(&bytes, &h), vec![pa.clone(), pb.clone()]);
    assert_eq!(view_index(&bytes, &h), 2);
    let body = HEADER_LEN + 2 * NAME_LEN;
    assert_eq!(name_text(&bytes[body + 24..body + 56]), pb.as_slice());

    // A message to the group and to bob's private group reaches bob once, alice once.
    let both = message(SAFE_MESS, &pa, &[b"g1", &pb], 1, b"x");
    alice.write_all(&both).unwrap();
    assert_eq!(receive(&mut bob).1, both);
    assert_eq!(receive(&mut alice).1, both);
    // Self discard: only bob.
    let quiet = message(AGREED_MESS | SELF_DISCARD, &pa, &[b"g1"], 1, b"q");
    alice.write_all(&quiet).unwrap();
    assert_eq!(receive(&mut bob).1, quiet);

    // Bob disconnects properly: alice sees a disconnect.
    bob.write_all(&message(KILL_MESS, &pb, &[&pb], 0, b"")).unwrap();
    assert_eq!(drained_to_eof(&mut bob), 0);
    let (h, bytes) = receive(&mut alice);
    assert_eq!(h.msg_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    assert_eq!(member_names(&bytes, &h), vec![pa.clone()]);
}

#[test]
fn malformed_request_ends_only_that_session() {
    let d = start("");
    let (mut alice, pa) = session(&d, "alice", true);
    let (mut mallory, pm) = session(&d, "mallory", false);
    alice
        .write_all(&message(JOIN_MESS, &pa, &[b"g"], 0, b""))
        .unwrap();
    receive(&mut alice);
    mallory
        .write_all(&message(JOIN_MESS, &pm, &[b"g"], 0, b""))
        .unwrap();
    receive(&mut alice);

    // Two service bits: the session is killed, its members' peers see a disconnect.
    mallory
        .write_all(&message(AGREED_MESS | SAFE_MESS, &pm, &[b"g"], 0, b"bad"))
        .unwrap();
    assert_eq!(drained_to_eof(&mut mallory), 0);
    let (h, bytes) = receive(&mut alice);
    assert_eq!(h.msg_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    assert_eq!(name_text(&bytes[bytes.len() - NAME_LEN..]), pm.as_slice());

    // A sender field that is not the session's own, and garbage, likewise.
    let (mut eve, _) = session(&d, "eve", false);
    eve.write_all(&message(AGREED_MESS, b"#alice#localhost", &[b"g"], 0, b""))
        .unwrap();
    assert_eq!(drained_to_eof(&mut eve), 0);
    let (mut junk, _) = session(&d, "junk", false);
    junk.write_all(&[0xff; 200]).unwrap();
    assert_eq!(drained_to_eof(&mut junk), 0);

    // Everyone else is served on.
    let m = message(AGREED_MESS, &pa, &[b"g"], 3, b"still here");
    alice.write_all(&m).unwrap();
    assert_eq!(receive(&mut alice).1, m);
    let (_, again) = session(&d, "mallory", false);
    assert_eq!(again, b"#mallory#localhost");
}

#[test]
fn handshake_refusals() {
    let d = start("");
    let (_alice, _) = session(&d, "alice", false);
    let mut dup = connect(&d);
    dup.write_all(&encode_connect_request(b"alice", false, 0))
        .unwrap();
    assert_eq!(read_exact(&mut dup, 1), [0xfa]);
    let mut bad = connect(&d);
    bad.write_all(&[5, 0, 1, 0, 2, b'a', b' ']).unwrap();
    assert_eq!(read_exact(&mut bad, 1), [0xfb]);
    let mut auth = connect(&d);
    auth.write_all(&encode_connect_request(b"x", false, 0)).unwrap();
    assert_eq!(read_exact(&mut auth, 6), b"\x05NULL ");
    auth.write_all(&encode_auth_choice(&[b"PWORD"])).unwrap();
    assert_eq!(read_exact(&mut auth, 1), [0xf7]);
    // Silent for a second: closed without a reply.
    let mut silent = connect(&d);
    let started = Instant::now();
    assert_eq!(drained_to_eof(&mut silent), 0);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[test]
fn session_that_stops_reading_is_cut_off() {
    let d = start("MaxSessionMessages = 20");
    let (mut alice, pa) = session(&d, "alice", true);
    let (mut carol, pc) = session(&d, "carol", false);
    carol
        .write_all(&message(JOIN_MESS, &pc, &[b"g2"], 0, b""))
        .unwrap();
    alice
        .write_all(&message(JOIN_MESS, &pa, &[b"g2"], 0, b""))
        .unwrap();
    let (h, _) = receive(&mut alice);
    assert_eq!(h.num_groups, 2);

    // Carol reads nothing; alice sends far more than her socket holds plus 20 messages.
    const SENT: usize = 300;
    let m = message(AGREED_MESS | SELF_DISCARD, &pa, &[b"g2"], 0, &[1; 10_000]);
    for _ in 0..SENT {
        alice.write_all(&m).unwrap();
    }
    let (h, bytes) = receive(&mut alice);
    assert_eq!(h.msg_type, REG_MEMB_MESS | CAUSED_BY_DISCONNECT);
    assert_eq!(name_text(&bytes[bytes.len() - NAME_LEN..]), pc.as_slice());
    let got = drained_to_eof(&mut carol);
    assert!(got < SENT * m.len(), "carol got everything ({got} bytes)");
}

#[test]
fn slow_reader_slows_the_sender_instead_of_being_cut_off() {
    let d = start("MaxSessionMessages = 100");
    let (mut alice, pa) = session(&d, "alice", false);
    let (mut bob, pb) = session(&d, "bob", false);
    bob.write_all(&message(JOIN_MESS, &pb, &[b"g"], 0, b"")).unwrap();
    alice
        .write_all(&message(JOIN_MESS, &pa, &[b"g"], 0, b""))
        .unwrap();
    // Far more than bob's socket and queue hold, sent at once; bob reads with pauses.
    const SENT: usize = 2000;
    let m = message(AGREED_MESS | SELF_DISCARD, &pa, &[b"g"], 0, &[7; 1000]);
    let reader = std::thread::spawn(move || {
        for i in 0..SENT {
            let (h, _) = receive(&mut bob);
            assert_eq!(h.data_len, 1000);
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    for _ in 0..SENT {
        alice.write_all(&m).unwrap();
    }
    reader.join().expect("bob received every message");
}

#[test]
fn tcp_clients_are_served() {
    let d = start("");
    let (mut unix, pu) = session(&d, "unix", false);
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&encode_connect_request(b"tcp", true, 0)).unwrap();
    assert_eq!(read_exact(&mut tcp, 6), b"\x05NULL ");
    tcp.write_all(&encode_auth_choice(&[b"NULL"])).unwrap();
    assert_eq!(read_exact(&mut tcp, 5), [1, 5, 0, 1, 14]);
    let pt = read_exact(&mut tcp, 14);
    assert_eq!(pt, b"#tcp#localhost");
    tcp.write_all(&message(JOIN_MESS, &pt, &[b"g"], 0, b"")).unwrap();
    assert_eq!(receive(&mut tcp).1.len(), 136);
    // Unix and TCP clients talk to each other.
    let m = message(FIFO_MESS, &pu, &[b"g"], 4, b"over tcp");
    unix.write_all(&m).unwrap();
    assert_eq!(receive(&mut tcp).1, m);
}

#[test]
fn exit_signal_removes_socket() {
    let mut d = start("");
    let path = d.socket_path();
    assert!(d.terminate(Duration::from_secs(5)).success());
    assert!(!path.exists());
}

#[test]
fn daemons_of_one_configuration_run_side_by_side() {
    let mut cluster = Cluster::start(&DaemonKind::ours(), 3, "");
    for (i, d) in cluster.daemons.iter_mut().enumerate() {
        assert!(d.is_running());
        let (_s, pg) = session(d, "alice", false);
        assert_eq!(pg, format!("#alice#{}", daemon_name(i)).as_bytes());
        // Each daemon's UDP endpoint is its own address, and knows the two others.
        let address = loopback_address(i);
        let endpoint = format!("UDP port {} on [{address}], 2 peers, unicast only", d.port);
        assert!(d.log().contains(&endpoint), "{}", d.log());
    }
    // A datagram from an address outside the configuration is read, dropped and counted.
    let d1 = &mut cluster.daemons[0];
    let stranger = std::net::UdpSocket::bind("127.0.0.200:0").unwrap();
    stranger
        .send_to(b"let me in", (loopback_address(0), d1.port))
        .unwrap();
    // Let the daemon's loop come round before it is asked to stop.
    std::thread::sleep(Duration::from_millis(200));
    assert!(d1.terminate(Duration::from_secs(5)).success());
    let log = d1.log();
    let stats = log
        .lines()
        .find(|l| l.contains("daemon network 0: NetStats"))
        .unwrap_or_else(|| panic!("no network statistics in {log}"));
    assert!(stats.contains(" unknown_sender: 1,"), "{stats}");
}
