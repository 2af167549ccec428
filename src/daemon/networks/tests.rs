use std::time::{Duration, Instant};

use super::*;
use crate::config::{virtual_id_from_name, MultipathMode};
use crate::daemon::faults::FaultSpec;
use crate::daemon::net::tests::{config, free_port};
use crate::wire::packet::{encode_hurry, restamp, Header, Kind, RingId};

const ADDRESSES: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.0.1.1", "127.0.1.2"];

/// Daemons a and b on network 0 (127.0.0.x) and on network 1 (127.0.1.x), by unicast.
fn two_network_config(port: u16, mode: &str) -> Config {
    config(&format!(
        "Spread_Segment 127.0.0.255:{port} {{ a 127.0.0.1 {{ 127.0.0.1 }}\n b 127.0.0.2 {{ 127.0.0.2 }} }}\n\
         Spread_Network second 127.0.1.255:{port} {{ a 127.0.1.1\n b 127.0.1.2 }}\n\
         Multipath = {mode}\n"
    ))
}

fn open(c: &Config, index: usize, faults: Option<FaultLayer>) -> Networks {
    Networks::open(
        Links::all_from_config(c, 0, index),
        link_setup(c, 0, index, 1),
        faults,
        Time::ZERO,
    )
    .expect("networks open")
}

fn hurry(c: &Config, sender: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    let header = Header {
        kind: Kind::Hurry,
        network: 0,
        config_hash: c.hash(),
        sender: virtual_id_from_name(sender),
        ring: RingId { rep: 1, seq: 1 },
    };
    encode_hurry(&mut bytes, &header);
    bytes
}

/// What `n` passes to the node within `limit`: (network, datagram).
fn collect(n: &mut Networks, started: Instant, limit: Duration) -> Vec<(u8, Vec<u8>)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        let now = Time::from_micros(started.elapsed().as_micros() as u64);
        n.receive(
            now,
            &mut |network, bytes| {
                got.push((network, bytes.to_vec()));
                // No ring here: a progress no packet belongs to.
                (RingId { rep: 0, seq: 0 }, 0)
            },
            &mut |_, from, _| panic!("unexpected monitor datagram from {from}"),
        );
        n.handle_timer(now);
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

#[test]
fn link_setup_lists_every_daemon_with_its_networks() {
    let c = config(
        "Spread_Segment 10.1.0.255:4803 { a 10.1.0.1\n b 10.1.0.2\n c 10.1.0.3 }\n\
         Spread_Network second 10.2.0.255 { a 10.2.0.1\n c 10.2.0.3 }\n\
         Multipath = passive\n",
    );
    let setup = link_setup(&c, 0, 2, 7).expect("a multipath ring");
    assert_eq!(setup.me, virtual_id_from_name("c"));
    assert_eq!(setup.networks, [0, 1].into_iter().collect());
    assert_eq!(setup.mode, MultipathMode::Passive);
    assert_eq!((setup.config_hash, setup.incarnation), (c.hash(), 7));
    let peers: Vec<(u32, NetSet)> = setup.peers.iter().map(|p| (p.id, p.networks)).collect();
    assert_eq!(
        peers,
        [
            (virtual_id_from_name("a"), [0, 1].into_iter().collect()),
            (virtual_id_from_name("b"), NetSet::single(0)),
        ]
    );
    let classic = config("Spread_Segment 10.1.0.255:4803 { a 10.1.0.1\n b 10.1.0.2 }\n");
    assert_eq!(link_setup(&classic, 0, 0, 1), None);
}

/// In active mode a broadcast goes on both networks, each copy stamped with its own; the
/// receiver passes the first up and drops the other. With network 1 losing everything, the
/// copy on network 0 still gets through.
#[test]
fn copies_go_on_every_network_and_the_first_is_kept() {
    let port = free_port(&ADDRESSES);
    let c = two_network_config(port, "active");
    let mut a = open(&c, 0, None);
    let mut b = open(&c, 1, None);
    assert_eq!(a.socket_count(), 2);
    let started = Instant::now();
    let datagram = hurry(&c, "a");
    assert!(a.send(Time::ZERO, Destination::All, &mut datagram.clone()));
    a.flush();
    let got = collect(&mut b, started, Duration::from_millis(100));
    assert_eq!(got.len(), 1, "{got:?}");
    let (network, bytes) = &got[0];
    assert_eq!(
        bytes[..],
        {
            let mut stamped = datagram.clone();
            restamp(&mut stamped, virtual_id_from_name("a"), *network);
            stamped
        }[..]
    );
    let status = b.link_status(Time::ZERO).expect("a multipath ring");
    assert_eq!(status.drops.duplicate, 1);
    // a runs no timer, so sends no probes: the two copies are all b received.
    assert_eq!(
        b.stats().iter().map(|(_, s)| s.received).collect::<Vec<_>>(),
        [1, 1]
    );

    let faults = FaultLayer::new(FaultSpec::parse("net1:loss=1").unwrap(), 7);
    let port = free_port(&ADDRESSES);
    let c = two_network_config(port, "active");
    let mut a = open(&c, 0, Some(faults));
    let mut b = open(&c, 1, None);
    let started = Instant::now();
    assert!(a.send(
        Time::ZERO,
        Destination::Daemon(virtual_id_from_name("b")),
        &mut hurry(&c, "a")
    ));
    a.flush();
    let got = collect(&mut b, started, Duration::from_millis(100));
    assert_eq!(got.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [0]);
    assert_eq!(a.stats()[1].1.faults.dropped, 1);
}
