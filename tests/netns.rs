//! Hosts in network namespaces on a bridge (see `support::netns`): the test LAN itself, the
//! daemon's UDP endpoint on it (segment broadcast and multicast, cable pulls), and daemons run
//! inside the namespaces. Needs root and iproute2 (`.ci/run` installs it): without them these
//! tests fail rather than pass without running.

mod support;

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use spread::config::{virtual_id_from_name, Config};
use spread::daemon::net::{Links, NetEndpoint, SegmentCast};
use support::netns::{Lan, BROADCAST};
use support::{Daemon, TempDir};

fn namespaces_listed() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The next datagram on `socket` within its read timeout, if any.
fn next(socket: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    match socket.recv_from(&mut buf) {
        Ok((n, from)) => Some((buf[..n].to_vec(), from)),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        Err(e) => panic!("recv: {e}"),
    }
}

#[test]
fn three_hosts_on_a_bridge_reach_each_other_until_a_cable_is_pulled() {
    let lan = Lan::new(3);
    let port = 7000;
    let socket = |i: usize, address: IpAddr| {
        lan.run_in(i, || {
            let s = UdpSocket::bind((address, port)).expect("bind in the namespace");
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            s.set_broadcast(true).unwrap();
            s
        })
    };
    let hosts: Vec<UdpSocket> = (0..3).map(|i| socket(i, lan.address(i))).collect();
    for a in 0..3 {
        for b in (0..3).filter(|&b| b != a) {
            hosts[a]
                .send_to(&[a as u8, b as u8], (lan.address(b), port))
                .unwrap();
            let got = next(&hosts[b]).unwrap_or_else(|| panic!("host {b} got nothing from {a}"));
            assert_eq!(
                got,
                (vec![a as u8, b as u8], SocketAddr::new(lan.address(a), port))
            );
        }
    }
    // A broadcast reaches a socket bound to the broadcast address in another host.
    let listener = socket(2, IpAddr::V4(BROADCAST));
    hosts[0].send_to(b"all", (BROADCAST, port)).unwrap();
    assert_eq!(next(&listener).map(|(b, _)| b), Some(b"all".to_vec()));

    // Nothing gets through a pulled cable; everything again once it is plugged back.
    lan.set_cable(2, 0, false);
    hosts[0].send_to(b"cut", (lan.address(2), port)).unwrap();
    assert_eq!(next(&hosts[2]), None);
    hosts[0].send_to(b"other", (lan.address(1), port)).unwrap();
    assert_eq!(next(&hosts[1]).map(|(b, _)| b), Some(b"other".to_vec()));
    lan.set_cable(2, 0, true);
    let deadline = Instant::now() + Duration::from_secs(5);
    let back = loop {
        hosts[0].send_to(b"back", (lan.address(2), port)).unwrap();
        if let Some((bytes, _)) = next(&hosts[2]) {
            break bytes;
        }
        assert!(Instant::now() < deadline, "the link did not come back");
    };
    assert_eq!(back, b"back");

    let names = [lan.namespace(0).to_string(), lan.namespace(2).to_string()];
    drop(lan);
    let listed = namespaces_listed();
    assert!(
        names.iter().all(|n| !listed.contains(n.as_str())),
        "left behind: {listed}"
    );
}

/// Everything `endpoint` receives within `limit`, until `want` datagrams came.
fn collect(endpoint: &mut NetEndpoint, want: usize, limit: Duration) -> Vec<(u32, Vec<u8>)> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        for i in 0..endpoint.raw_fds().count() {
            endpoint.receive(
                i,
                &mut |r| got.push((r.from, r.bytes.to_vec())),
                &mut |from, _| panic!("unexpected monitor datagram from {from}"),
            );
        }
        sleep(Duration::from_millis(2));
    }
    got
}

/// Three endpoints of one segment addressed by `cast`: one datagram to all reaches both
/// others, a unicast reaches its daemon only, and a pulled cable cuts its host off.
fn segment_cast_on_a_lan(expected: SegmentCast) {
    let lan = Lan::new(3);
    let text = lan.config(expected.address(), 4803, "");
    let no_lookup = |name: &str| Err(format!("no lookup for {name}"));
    let config = Config::parse_with_resolver(&text, "lan.conf", &no_lookup).expect("configuration parses");
    let mut endpoints: Vec<NetEndpoint> = (0..3)
        .map(|i| {
            let links = Links::from_config(&config, 0, i);
            lan.run_in(i, || NetEndpoint::open(links, None).expect("open endpoint"))
        })
        .collect();
    assert_eq!(endpoints[0].links().segment_cast, Some(expected));
    let id = |i: usize| virtual_id_from_name(&lan.daemon_name(i));

    endpoints[0].queue_all(b"to all");
    endpoints[0].flush();
    assert_eq!(endpoints[0].stats().sent, 1, "one datagram for the whole segment");
    for receiver in &mut endpoints[1..] {
        assert_eq!(
            collect(receiver, 1, Duration::from_secs(2)),
            [(id(0), b"to all".to_vec())]
        );
    }
    // The sender's own copy, if the kernel loops it back, is not handed on.
    assert!(collect(&mut endpoints[0], 1, Duration::from_millis(100)).is_empty());

    assert!(endpoints[1].queue_to(id(2), b"just h2"));
    endpoints[1].flush();
    assert_eq!(
        collect(&mut endpoints[2], 1, Duration::from_secs(2)),
        [(id(1), b"just h2".to_vec())]
    );
    assert!(collect(&mut endpoints[0], 1, Duration::from_millis(100)).is_empty());

    // A burst goes in runs through the bridge, and arrives whole and in order.
    let burst: Vec<Vec<u8>> = (0..20u8)
        .map(|k| vec![k; 1000 - usize::from(k / 19) * 500])
        .collect();
    for datagram in &burst {
        endpoints[0].queue_all(datagram);
    }
    endpoints[0].flush();
    for receiver in &mut endpoints[1..] {
        let got: Vec<Vec<u8>> = collect(receiver, burst.len(), Duration::from_secs(2))
            .into_iter()
            .map(|(from, bytes)| {
                assert_eq!(from, id(0));
                bytes
            })
            .collect();
        assert_eq!(got, burst);
    }

    lan.set_cable(2, 0, false);
    endpoints[0].queue_all(b"partial");
    endpoints[0].flush();
    assert_eq!(
        collect(&mut endpoints[1], 1, Duration::from_secs(2)),
        [(id(0), b"partial".to_vec())]
    );
    assert!(collect(&mut endpoints[2], 1, Duration::from_millis(300)).is_empty());
    for e in &endpoints {
        assert_eq!(e.stats().unknown_sender, 0);
    }
}

#[test]
fn endpoints_broadcast_on_a_lan() {
    segment_cast_on_a_lan(SegmentCast::Broadcast("10.77.0.255".parse().unwrap()));
}

#[test]
fn endpoints_multicast_on_a_lan() {
    segment_cast_on_a_lan(SegmentCast::Multicast("239.77.0.1".parse().unwrap()));
}

#[test]
fn daemons_run_inside_namespaces_and_die_with_them() {
    let lan = Lan::new(3);
    let dir = TempDir::new("netns");
    let port = 4803;
    // Each serves its clients (the Unix socket is reachable from outside the namespace).
    let (_, mut daemons) = lan.start_ours(dir.path(), port, &lan.config(IpAddr::V4(BROADCAST), port, ""));
    assert!(daemons.iter_mut().all(Daemon::is_running));
    assert!(
        daemons[0].log().contains("segment broadcast 10.77.0.255"),
        "{}",
        daemons[0].log()
    );

    // The LAN kills what runs in its namespaces, even what nobody else would.
    let mut stray = Command::new("ip")
        .args(lan.exec_prefix(1).iter().skip(1))
        .args(["sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lan.processes(1).contains(&(stray.id() as i32)) {
        assert!(
            Instant::now() < deadline,
            "ip netns exec did not enter the namespace"
        );
        sleep(Duration::from_millis(10));
    }
    drop(lan);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stray.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "a process outlived its namespace");
        sleep(Duration::from_millis(20));
    }
    assert!(daemons.iter_mut().all(|d| !d.is_running()));
}
