use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{virtual_id_from_name, Config};
use crate::daemon::faults::{FaultLayer, FaultSpec};

pub(in crate::daemon) fn config(text: &str) -> Config {
    let no_lookup = |name: &str| Err(format!("no lookup for {name}"));
    Config::parse_with_resolver(text, "test.conf", &no_lookup).expect("test configuration parses")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn id(name: &str) -> u32 {
    virtual_id_from_name(name)
}

#[test]
fn loopback_daemons_each_in_a_segment_use_unicast() {
    let c = config(
        "Spread_Segment 127.0.0.255:5000 { d1 127.0.0.1 { 127.0.0.1 } }\n\
         Spread_Segment 127.0.1.255:5000 { d2 127.0.0.2 }\n\
         Spread_Segment 127.0.2.255:5002 { d3 127.0.0.3 }\n",
    );
    let links = Links::from_config(&c, 1, 0);
    assert_eq!(links.me, id("d2"));
    assert_eq!((links.port, links.local.clone()), (5000, vec![ip("127.0.0.2")]));
    assert_eq!(links.segment_cast, None);
    let peers: Vec<_> = links
        .peers
        .iter()
        .map(|p| (p.id, p.address, p.by_segment_cast))
        .collect();
    assert_eq!(
        peers,
        [
            (id("d1"), "127.0.0.1:5000".parse().unwrap(), false),
            (id("d3"), "127.0.0.3:5002".parse().unwrap(), false)
        ]
    );
}

#[test]
fn segment_with_peers_broadcasts_and_other_segments_get_unicasts() {
    let c = config(
        "Spread_Segment 10.1.0.255:4803 {\n a 10.1.0.1 { D 10.2.0.1 D 10.1.0.1 C 10.1.0.1 }\n b 10.1.0.2\n }\n\
         Spread_Segment 10.3.0.255:4803 { c 10.3.0.1 }\n",
    );
    let a = Links::from_config(&c, 0, 0);
    assert_eq!(a.local, vec![ip("10.1.0.1"), ip("10.2.0.1")]);
    assert_eq!(a.segment_cast, Some(SegmentCast::Broadcast(ip("10.1.0.255"))));
    assert_eq!(a.peers.len(), 2);
    assert!(a.peers[0].by_segment_cast && !a.peers[1].by_segment_cast);
    // b sends to a's address; a's datagrams may come from either of its interfaces.
    let b = Links::from_config(&c, 0, 1);
    assert_eq!(b.peers[0].address, "10.1.0.1:4803".parse().unwrap());
    assert_eq!(b.peers[0].sources, vec![ip("10.1.0.1"), ip("10.2.0.1")]);
    // c is alone in its segment: nothing to broadcast to.
    assert_eq!(Links::from_config(&c, 1, 0).segment_cast, None);
}

#[test]
fn multicast_and_unusable_segment_addresses() {
    let c = config("Spread_Segment 225.1.2.3:4803 { a 10.1.0.1\n b 10.1.0.2 }\n");
    assert_eq!(
        Links::from_config(&c, 0, 0).segment_cast,
        Some(SegmentCast::Multicast(ip("225.1.2.3")))
    );
    let c = config("Spread_Segment 127.255.255.255:4803 { a 127.0.0.1\n b 127.0.0.2 }\n");
    let links = Links::from_config(&c, 0, 0);
    assert_eq!(links.segment_cast, None);
    assert!(!links.peers[0].by_segment_cast);
}

#[test]
fn extra_networks_give_links_of_their_members() {
    let c = config(
        "Spread_Segment 10.1.0.255:4803 { a 10.1.0.1\n b 10.1.0.2\n c 10.1.0.3 }\n\
         Spread_Network second 10.2.0.255:4900 { a 10.2.0.1\n c 10.2.0.3 }\n\
         Spread_Network third 10.3.0.255 { b 10.3.0.2 }\n",
    );
    let a = Links::all_from_config(&c, 0, 0);
    assert_eq!(a.iter().map(|l| l.network).collect::<Vec<_>>(), [0, 1]);
    let second = &a[1];
    assert_eq!((second.me, second.port), (id("a"), 4900));
    assert_eq!(second.local, vec![ip("10.2.0.1")]);
    assert_eq!(
        second.segment_cast,
        Some(SegmentCast::Broadcast(ip("10.2.0.255")))
    );
    let peers: Vec<_> = second
        .peers
        .iter()
        .map(|p| (p.id, p.address, p.sources.clone(), p.by_segment_cast))
        .collect();
    assert_eq!(
        peers,
        [(
            id("c"),
            "10.2.0.3:4900".parse().unwrap(),
            vec![ip("10.2.0.3")],
            true
        )]
    );
    // Alone on a network: nothing to broadcast to there, but its sockets are opened.
    let b = Links::all_from_config(&c, 0, 1);
    assert_eq!(b.iter().map(|l| l.network).collect::<Vec<_>>(), [0, 2]);
    assert_eq!((b[1].segment_cast, b[1].peers.len()), (None, 0));
    assert_eq!(Links::on_network(&c, 0, 1, 1), None);
    assert_eq!(Links::on_network(&c, 0, 1, 3), None);
}

/// A port free for UDP on every address given (bounded tries).
pub(in crate::daemon) fn free_port(addresses: &[&str]) -> u16 {
    for _ in 0..50 {
        let probe = UdpSocket::bind((addresses[0], 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if addresses.iter().all(|a| UdpSocket::bind((*a, port)).is_ok()) {
            return port;
        }
    }
    panic!("no free UDP port");
}

fn pair_config(port: u16) -> Config {
    config(&format!(
        "Spread_Segment 127.0.0.255:{port} {{ d1 127.0.0.1 {{ 127.0.0.1 }} }}\n\
         Spread_Segment 127.0.1.255:{port} {{ d2 127.0.0.2 {{ 127.0.0.2 }} }}\n"
    ))
}

/// Everything `endpoint` receives within `limit`, until `want` datagrams came.
fn collect(endpoint: &mut NetEndpoint, want: usize, limit: Duration) -> Vec<(u32, Vec<u8>)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let sockets = endpoint.raw_fds().count();
        for i in 0..sockets {
            endpoint.receive(
                i,
                &mut |r| {
                    assert_eq!((r.network, r.foreign_interface), (SEGMENT_NETWORK, None));
                    got.push((r.from, r.bytes.to_vec()))
                },
                &mut |from, _| panic!("unexpected monitor datagram from {from}"),
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    got
}

#[test]
fn two_endpoints_on_loopback_exchange_datagrams() {
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let c = pair_config(port);
    let mut d1 = NetEndpoint::open(Links::from_config(&c, 0, 0), None).unwrap();
    let mut d2 = NetEndpoint::open(Links::from_config(&c, 1, 0), None).unwrap();

    d1.queue_all(b"to all");
    assert!(d1.queue_to(id("d2"), b"to d2"));
    assert!(!d1.queue_to(id("nobody"), b"lost"));
    assert!(
        collect(&mut d2, 1, Duration::from_millis(10)).is_empty(),
        "sent before the flush"
    );
    d1.flush();
    let got = collect(&mut d2, 2, Duration::from_secs(2));
    assert_eq!(
        got,
        [(id("d1"), b"to all".to_vec()), (id("d1"), b"to d2".to_vec())]
    );

    d2.queue_all(&[7; 1400]);
    d2.flush();
    assert_eq!(
        collect(&mut d1, 1, Duration::from_secs(2)),
        [(id("d2"), vec![7; 1400])]
    );
    assert_eq!(d1.stats().sent, 2);
    assert_eq!(d2.stats().received, 2);

    // Strangers: another address, and a configured address on another port.
    let stranger = UdpSocket::bind("127.0.0.3:0").unwrap();
    stranger.send_to(b"who?", ("127.0.0.1", port)).unwrap();
    let wrong_port = UdpSocket::bind("127.0.0.2:0").unwrap();
    wrong_port.send_to(b"who?", ("127.0.0.1", port)).unwrap();
    d2.queue_to(id("d1"), b"real");
    d2.flush();
    assert_eq!(
        collect(&mut d1, 1, Duration::from_secs(2)),
        [(id("d2"), b"real".to_vec())]
    );
    assert_eq!(d1.stats().unknown_sender, 2);
    assert_eq!(d1.stats().received, 2);
    // Both on lo (127.0.0.2 by lo's subnet): arrivals through it are this network's.
    assert_eq!((d1.interfaces().len(), d2.interfaces()), (1, d1.interfaces()));
    assert_eq!((d1.stats().wrong_interface, d2.stats().wrong_interface), (0, 0));
}

/// A monitor query comes from a port no daemon uses: handed up with its source, not dropped
/// as a stranger's, and the reply leaves from the address asked.
#[test]
fn monitor_datagrams_go_to_the_monitor() {
    use crate::monitor::query::{decode_reply, encode_query, encode_reply, Query, Reply};
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let c = pair_config(port);
    let mut d1 = NetEndpoint::open(Links::from_config(&c, 0, 0), None).unwrap();
    let mut d2 = NetEndpoint::open(Links::from_config(&c, 1, 0), None).unwrap();
    let asker = UdpSocket::bind("127.0.0.3:0").unwrap();
    asker.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    asker
        .send_to(&encode_query(Query { nonce: 9 }), ("127.0.0.1", port))
        .unwrap();
    d2.queue_to(id("d1"), b"ring");
    d2.flush();
    let mut queries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut ring = Vec::new();
    while (queries.is_empty() || ring.is_empty()) && Instant::now() < deadline {
        d1.receive(0, &mut |r| ring.push(r.bytes.to_vec()), &mut |from, bytes| {
            queries.push((from, bytes.to_vec()))
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(ring, [b"ring".to_vec()]);
    assert_eq!(
        queries,
        [(
            asker.local_addr().unwrap(),
            encode_query(Query { nonce: 9 }).to_vec()
        )]
    );
    assert_eq!(d1.stats().unknown_sender, 0);
    let mut reply = Vec::new();
    encode_reply(
        &mut reply,
        Reply {
            nonce: 9,
            document: "{}",
        },
    );
    d1.reply(0, queries[0].0, &reply);
    let mut buf = [0u8; 64];
    let (n, from) = asker.recv_from(&mut buf).unwrap();
    assert_eq!(from, format!("127.0.0.1:{port}").parse().unwrap());
    assert_eq!(
        decode_reply(&buf[..n]).unwrap(),
        Reply {
            nonce: 9,
            document: "{}"
        }
    );
}

#[test]
fn receive_reads_in_batches() {
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let c = pair_config(port);
    let mut d1 = NetEndpoint::open(Links::from_config(&c, 0, 0), None).unwrap();
    let mut d2 = NetEndpoint::open(Links::from_config(&c, 1, 0), None).unwrap();
    let to_d2 = d1.links.peers[0].address;
    // One by one, as another sender would: a turn reads a few batches.
    for i in 0..100u8 {
        d1.sockets[0].send_to(&[i], to_d2).unwrap();
    }
    let mut seen = Vec::new();
    let turn = RECEIVE_BATCH * BATCHES_PER_TURN;
    assert_eq!(
        d2.receive(0, &mut |r| seen.push(r.bytes[0]), &mut |_, _| {}),
        turn
    );
    assert_eq!(
        d2.receive(0, &mut |r| seen.push(r.bytes[0]), &mut |_, _| {}),
        100 - turn
    );
    assert_eq!(d2.receive(0, &mut |r| seen.push(r.bytes[0]), &mut |_, _| {}), 0);
    assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    // Queued and flushed: sent in runs, read coalesced, all in one turn and in order.
    for i in 0..100u8 {
        d1.queue_all(&[i]);
    }
    d1.flush();
    seen.clear();
    assert_eq!(d2.receive(0, &mut |r| seen.push(r.bytes[0]), &mut |_, _| {}), 100);
    assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    assert_eq!((d1.stats().sent, d2.stats().received), (100, 200));
    // Longer than any daemon packet: dropped and counted.
    d1.queue_all(&vec![1; MAX_DATAGRAM + 1]);
    d1.queue_all(b"after");
    d1.flush();
    let got = collect(&mut d2, 1, Duration::from_secs(2));
    assert_eq!(got, [(id("d1"), b"after".to_vec())]);
    assert_eq!(d2.stats().oversized, 1);
}

#[test]
fn faults_hold_datagrams_until_due() {
    let port = free_port(&["127.0.0.1", "127.0.0.2"]);
    let c = pair_config(port);
    let faults = FaultLayer::new(FaultSpec::parse("delay=30ms").unwrap(), 1);
    let mut d1 = NetEndpoint::open(Links::from_config(&c, 0, 0), Some(faults)).unwrap();
    let mut d2 = NetEndpoint::open(Links::from_config(&c, 1, 0), None).unwrap();
    let sent_at = Instant::now();
    d1.queue_all(b"late");
    d1.flush();
    let due = d1.next_deadline().expect("a datagram is held");
    assert!(due >= sent_at + Duration::from_millis(30));
    d1.queue_due(due - Duration::from_micros(1));
    d1.flush();
    assert_eq!(d1.stats().sent, 0);
    assert!(collect(&mut d2, 1, Duration::from_millis(10)).is_empty());
    d1.queue_due(due);
    d1.flush();
    assert_eq!(d1.next_deadline(), None);
    assert_eq!(
        collect(&mut d2, 1, Duration::from_secs(2)),
        [(id("d1"), b"late".to_vec())]
    );
    assert_eq!(d1.stats().faults.held_back, 1);

    let mut lossy = NetEndpoint::open(
        Links::from_config(&pair_config(free_port(&["127.0.0.1", "127.0.0.2"])), 0, 0),
        Some(FaultLayer::new(FaultSpec::parse("loss=1").unwrap(), 1)),
    )
    .unwrap();
    lossy.queue_all(b"gone");
    lossy.flush();
    assert_eq!((lossy.stats().sent, lossy.stats().faults.dropped), (0, 1));
}

#[test]
fn a_network_has_the_interfaces_holding_or_containing_its_addresses() {
    let interface = |address: &str, netmask: &str, index: u32, name: &str| InterfaceAddress {
        address: ip(address),
        netmask: Some(ip(netmask)),
        index,
        name: name.to_string(),
        loopback: name == "lo",
    };
    let all = [
        interface("127.0.0.1", "255.0.0.0", 1, "lo"),
        interface("10.77.0.3", "255.255.255.0", 2, "eth0"),
        interface("10.78.0.3", "255.255.255.0", 3, "eth1"),
        interface("10.78.0.9", "255.255.255.0", 3, "eth1"),
        interface("fd00::3", "ffff:ffff:ffff:ffff::", 3, "eth1"),
    ];
    let names = |local: &[&str]| -> Vec<&str> {
        let local: Vec<IpAddr> = local.iter().map(|a| ip(a)).collect();
        interfaces_of(&local, &all)
            .iter()
            .map(|i| i.name.as_str())
            .collect()
    };
    assert_eq!(names(&["10.77.0.3"]), ["eth0"]);
    assert_eq!(names(&["10.78.0.9", "10.78.0.3", "fd00::3"]), ["eth1"]);
    // 127.0.0.2 is nobody's address, but lo's subnet holds it.
    assert_eq!(names(&["127.0.0.2"]), ["lo"]);
    assert_eq!(names(&["10.77.0.3", "10.78.0.3"]), ["eth0", "eth1"]);
    assert!(names(&["192.168.1.1"]).is_empty());
}

#[test]
fn arrivals_through_another_interface_are_foreign_and_counted() {
    let mut stats = NetStats::default();
    // Network 1 is on eth1 (3) and eth2 (4); network 0 on eth0 (2) and eth2; lo is 1.
    let mut eth1 = ArrivalCheck::new(1, vec![3, 4], vec![1]);
    eth1.watch(&[2, 4, 1]);
    // Its own interfaces, loopback (this machine), an interface of no network (routed), or no
    // packet information: of the network.
    for interface in [Some(3), Some(4), Some(1), Some(9), None] {
        assert_eq!(eth1.foreign(7, interface, &mut stats), None);
    }
    for from in [7, 7, 8] {
        assert_eq!(eth1.foreign(from, Some(2), &mut stats), Some(2));
    }
    assert_eq!(stats.wrong_interface, 3);
    // One warning per peer and interface.
    assert_eq!(eth1.warned.len(), 2);
    // One network only: nothing is checked.
    let mut alone = ArrivalCheck::new(0, vec![2], vec![1]);
    assert_eq!(alone.foreign(7, Some(3), &mut stats), None);
    assert_eq!(stats.wrong_interface, 3);
}

#[test]
fn own_source_filter_drops_only_datagrams_from_own_addresses() {
    let receiver = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
    bind(&receiver, "127.0.0.1:0".parse().unwrap()).unwrap();
    let own: Vec<IpAddr> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    receiver.attach_filter(&own_source_filter(&own)).unwrap();
    let receiver = UdpSocket::from(receiver);
    receiver.set_nonblocking(false).unwrap();
    receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let to = receiver.local_addr().unwrap();
    for (source, byte) in [("127.0.0.2", 2u8), ("127.0.0.3", 3), ("127.0.0.4", 4)] {
        UdpSocket::bind((source, 0))
            .unwrap()
            .send_to(&[byte], to)
            .unwrap();
    }
    let mut buf = [0u8; 8];
    let (n, from) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], from.ip()),
        (&[4u8][..], "127.0.0.4".parse::<IpAddr>().unwrap())
    );
    receiver.set_nonblocking(true).unwrap();
    assert!(receiver.recv_from(&mut buf).is_err(), "a second datagram passed");
}
