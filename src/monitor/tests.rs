use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::document::{NetworkView, QueryCounters, Snapshot};
use super::json::{self, Value};
use super::query::MAX_DOCUMENT;
use super::report::{self, DaemonReport, Outcome, Verdict};
use super::*;
use crate::config::{virtual_id_from_name, MultipathMode};
use crate::daemon::net::NetStats;
use crate::link::{Drops, Fault, Health, LinkCounters, LinkState, LinkStatus, Reason, Status, Transition};
use crate::membership::{MembershipStats, State};
use crate::ring::{RingStats, Time};
use crate::wire::packet::RingId;

fn config(text: &str) -> Config {
    let no_lookup = |name: &str| Err(format!("no lookup for {name}"));
    Config::parse_with_resolver(text, "test.conf", &no_lookup).expect("test configuration parses")
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const TWO_NETWORKS: &str =
    "Spread_Segment 10.1.0.255:4803 {\n a 10.1.0.1 { D 10.1.0.1 D 10.5.0.1 M 10.6.0.1 }\n\
                            b 10.1.0.2\n c 10.1.0.3\n }\n\
                            Spread_Network backup 10.2.0.255:4900 { a 10.2.0.1\n c 10.2.0.3 }\n\
                            Multipath = hybrid\n";

#[test]
fn identity_names_everything_and_trusts_configured_addresses() {
    let c = config(TWO_NETWORKS);
    let id = Identity::from_config(&c, 0, 2);
    assert_eq!(
        (id.name.as_str(), id.address, id.port),
        ("c", ip("10.1.0.3"), 4803)
    );
    assert_eq!(id.id, virtual_id_from_name("c"));
    assert_eq!(id.config_hash, c.hash());
    let names: Vec<&str> = id.daemons.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(id.network_names, [None, Some("backup".to_string())]);
    for trusted in [
        "10.1.0.2",
        "10.5.0.1",
        "10.6.0.1",
        "10.2.0.3",
        "127.0.0.1",
        "127.3.2.1",
        "::1",
    ] {
        assert!(id.trusts(ip(trusted)), "{trusted}");
    }
    for stranger in ["10.1.0.9", "10.2.0.255", "192.168.1.1"] {
        assert!(!id.trusts(ip(stranger)), "{stranger}");
    }
}

#[test]
fn targets_try_network_0_then_interfaces_then_extra_networks() {
    let t = targets(&config(TWO_NETWORKS));
    assert_eq!(t.len(), 3);
    assert_eq!(t[0].name, "a");
    assert_eq!(
        t[0].addresses,
        [sa("10.1.0.1:4803"), sa("10.5.0.1:4803"), sa("10.2.0.1:4900")]
    );
    // b is not on the backup network.
    assert_eq!(t[1].addresses, [sa("10.1.0.2:4803")]);
    assert_eq!(t[2].addresses, [sa("10.1.0.3:4803"), sa("10.2.0.3:4900")]);
}

fn link(peer: &str, network: u8, usable: bool, fault: Option<Fault>) -> LinkStatus {
    LinkStatus {
        peer: virtual_id_from_name(peer),
        network,
        state: if usable { LinkState::Up } else { LinkState::Down },
        up: usable,
        usable,
        fault,
        damped: false,
        rtt: Some(Duration::from_micros(250)),
        loss_permille: if usable { 0 } else { 1000 },
        peer_loss_permille: None,
        counters: LinkCounters {
            packets: 10,
            ups: 1,
            downs: u64::from(!usable),
            ..LinkCounters::default()
        },
        transitions: if usable {
            Vec::new()
        } else {
            vec![Transition {
                at: Time::from_micros(1_500_000),
                up: false,
                reason: Reason::Fault(fault.expect("a down link has a fault")),
            }]
        },
    }
}

fn status(links: Vec<LinkStatus>) -> Status {
    Status {
        me: virtual_id_from_name("c"),
        mode: MultipathMode::Hybrid,
        networks: [0, 1].into_iter().collect(),
        links,
        drops: Drops::default(),
    }
}

fn snapshot<'a>(identity: &'a Identity, members: &'a [u32], links: Option<Status>) -> Snapshot<'a> {
    Snapshot {
        identity,
        uptime: Duration::from_millis(2_000),
        state: State::Op,
        ring: RingId {
            rep: members[0],
            seq: 42,
        },
        members,
        aru: 7,
        highest_seq: 9,
        configurations: 3,
        membership: MembershipStats {
            gathers: 2,
            ..MembershipStats::default()
        },
        ring_stats: RingStats {
            stale_tokens: 5,
            packets_retransmitted: 4,
            ..RingStats::default()
        },
        sessions: 2,
        connections: 3,
        groups: 1,
        networks: vec![
            NetworkView {
                id: 0,
                port: 4803,
                addresses: vec![ip("10.1.0.3")],
                counters: NetStats {
                    unknown_sender: 6,
                    ..NetStats::default()
                },
            },
            NetworkView {
                id: 1,
                port: 4900,
                addresses: vec![ip("10.2.0.3")],
                counters: NetStats::default(),
            },
        ],
        links,
        queries: QueryCounters {
            answered: 1,
            refused: 2,
            malformed: 3,
        },
    }
}

fn ids(names: &[&str]) -> Vec<u32> {
    names.iter().map(|n| virtual_id_from_name(n)).collect()
}

fn u(v: &Value, path: &[&str]) -> u64 {
    v.at(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path:?} missing"))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    v.at(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{path:?} missing"))
}

#[test]
fn document_carries_every_section() {
    let c = config(TWO_NETWORKS);
    let id = Identity::from_config(&c, 0, 2);
    let members = ids(&["a", "b", "c"]);
    let all_up = status(vec![
        link("a", 0, true, None),
        link("a", 1, true, None),
        link("b", 0, true, None),
    ]);
    let snap = snapshot(&id, &members, Some(all_up));
    let v = json::parse(&snap.to_json()).expect("the document is JSON");
    assert_eq!(u(&v, &["format"]), 1);
    assert_eq!(s(&v, &["daemon", "name"]), "c");
    assert_eq!(u(&v, &["daemon", "id"]), u64::from(virtual_id_from_name("c")));
    assert_eq!(s(&v, &["daemon", "address"]), "10.1.0.3");
    assert_eq!(u(&v, &["daemon", "port"]), 4803);
    assert_eq!(u(&v, &["daemon", "config_hash"]), u64::from(c.hash()));
    assert_eq!(s(&v, &["daemon", "version"]), env!("CARGO_PKG_VERSION"));
    assert_eq!(u(&v, &["daemon", "uptime_ms"]), 2000);
    assert_eq!((s(&v, &["health"]), u(&v, &["exit_code"])), ("all_up", 0));
    assert_eq!(s(&v, &["membership", "state"]), "operational");
    assert_eq!(u(&v, &["membership", "ring", "seq"]), 42);
    let member_names: Vec<&str> = v
        .at(&["membership", "members"])
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(member_names, ["a", "b", "c"]);
    assert_eq!(
        v.at(&["membership", "configured"])
            .and_then(Value::as_array)
            .unwrap()[1],
        json::parse(&format!(
            "{{\"name\":\"b\",\"id\":{}}}",
            virtual_id_from_name("b")
        ))
        .unwrap()
    );
    assert_eq!(u(&v, &["membership", "configurations"]), 3);
    assert_eq!(u(&v, &["membership", "counters", "gathers"]), 2);
    assert_eq!(u(&v, &["ring", "stale_tokens"]), 5);
    assert_eq!(u(&v, &["ring", "packets_retransmitted"]), 4);
    assert_eq!(u(&v, &["ring", "aru"]), 7);
    assert_eq!(u(&v, &["sessions", "sessions"]), 2);
    assert_eq!(u(&v, &["sessions", "connections"]), 3);
    assert_eq!(u(&v, &["sessions", "groups"]), 1);
    assert_eq!(s(&v, &["multipath", "mode"]), "hybrid");
    let networks = v
        .at(&["multipath", "networks"])
        .and_then(Value::as_array)
        .unwrap();
    assert!(networks[0].get("name").unwrap().is_null());
    assert_eq!(s(&networks[1], &["name"]), "backup");
    assert_eq!(u(&networks[1], &["port"]), 4900);
    assert_eq!(u(&networks[0], &["counters", "unknown_sender"]), 6);
    assert_eq!(
        v.at(&["multipath", "links", "links"])
            .and_then(Value::as_array)
            .map(|l| l.len()),
        Some(3)
    );
    assert_eq!(s(&v, &["multipath", "health"]), "all_up");
    assert_eq!(u(&v, &["monitor", "refused"]), 2);
    assert_eq!(u(&v, &["monitor", "malformed"]), 3);
    assert_eq!(s(&v, &["truncated"]), "none");
}

#[test]
fn health_follows_links_and_membership() {
    let c = config(TWO_NETWORKS);
    let id = Identity::from_config(&c, 0, 2);
    let members = ids(&["a", "b", "c"]);
    let one_lost = status(vec![
        link("a", 0, true, None),
        link("a", 1, false, Some(Fault::Silent)),
        link("b", 0, true, None),
    ]);
    let snap = snapshot(&id, &members, Some(one_lost));
    assert_eq!(snap.health(), Health::LastNetwork);
    let v = json::parse(&snap.to_json()).unwrap();
    assert_eq!((s(&v, &["health"]), u(&v, &["exit_code"])), ("last_network", 2));
    let down = &v
        .at(&["multipath", "links", "links"])
        .and_then(Value::as_array)
        .unwrap()[1];
    assert_eq!(down.get("usable").and_then(Value::as_bool), Some(false));
    assert_eq!(s(down, &["fault", "kind"]), "silent");

    // A single network: all up while operational with every daemon, degraded otherwise.
    let single = config("Spread_Segment 127.0.0.255:4803 { a 127.0.0.1\n b 127.0.0.2 }\n");
    let id = Identity::from_config(&single, 0, 0);
    let both = ids(&["a", "b"]);
    let mut snap = snapshot(&id, &both, None);
    snap.networks.truncate(1);
    assert_eq!(snap.health(), Health::AllUp);
    let v = json::parse(&snap.to_json()).unwrap();
    assert_eq!(s(&v, &["multipath", "mode"]), "single");
    assert!(v.at(&["multipath", "links"]).unwrap().is_null());
    assert_eq!(s(&v, &["multipath", "health"]), "all_up");
    snap.state = State::Gather;
    assert_eq!(snap.health(), Health::Degraded);
    let alone = ids(&["a"]);
    let snap = snapshot(&id, &alone, None);
    assert_eq!(snap.health(), Health::Degraded);
}

#[test]
fn a_huge_ring_still_fits_one_datagram() {
    let mut text = String::from("Spread_Segment 10.1.0.255:4803 {\n");
    for i in 0..128 {
        text.push_str(&format!(
            " daemon-number-{i:03} 10.1.{}.{}\n",
            i / 200,
            i % 200 + 1
        ));
    }
    text.push_str("}\n");
    for n in 1..8 {
        text.push_str(&format!("Spread_Network net{n} 10.{}.0.255 {{\n", 10 + n));
        for i in 0..128 {
            text.push_str(&format!(
                " daemon-number-{i:03} 10.{}.{}.{}\n",
                10 + n,
                i / 200,
                i % 200 + 1
            ));
        }
        text.push_str("}\n");
    }
    let c = config(&text);
    let id = Identity::from_config(&c, 0, 0);
    let members: Vec<u32> = id.daemons.iter().map(|(d, _)| *d).collect();
    let mut links = Vec::new();
    for (peer, name) in id.daemons.iter().skip(1) {
        for network in 0..8 {
            let mut l = link(name, network, false, Some(Fault::Lossy));
            l.peer = *peer;
            l.transitions = vec![l.transitions[0]; crate::link::TRANSITIONS_KEPT];
            links.push(l);
        }
    }
    let snap = snapshot(&id, &members, Some(status(links)));
    let document = snap.to_json();
    assert!(document.len() <= MAX_DOCUMENT, "{} bytes", document.len());
    let v = json::parse(&document).unwrap();
    assert_ne!(s(&v, &["truncated"]), "none");
    assert_eq!(s(&v, &["multipath", "health"]), "last_network");
    assert_eq!(
        v.at(&["membership", "members"])
            .and_then(Value::as_array)
            .map(|m| m.len()),
        Some(128)
    );
}

fn target(name: &str) -> Target {
    Target {
        name: name.to_string(),
        id: virtual_id_from_name(name),
        addresses: vec![sa("10.1.0.1:4803")],
    }
}

fn answered(snap: &Snapshot<'_>) -> Outcome {
    Outcome::Answered {
        from: sa("10.1.0.3:4803"),
        document: snap.to_json(),
    }
}

#[test]
fn verdicts_and_the_survey_json() {
    let c = config(TWO_NETWORKS);
    let id = Identity::from_config(&c, 0, 2);
    let members = ids(&["a", "b", "c"]);
    let degraded = status(vec![
        link("a", 0, true, None),
        link("a", 1, true, None),
        link("b", 0, false, Some(Fault::NotHearingPeer)),
    ]);
    // b is on network 0 only: with that link lost it is down to no network at all.
    let snap = snapshot(&id, &members, Some(degraded));
    let r = DaemonReport::new(&target("c"), answered(&snap));
    assert_eq!(r.verdict, Verdict::Reported(Health::LastNetwork));

    let all_up = status(vec![link("a", 0, true, None), link("a", 1, true, None)]);
    let snap = snapshot(&id, &members, Some(all_up));
    let up = DaemonReport::new(&target("c"), answered(&snap));
    assert_eq!(up.verdict, Verdict::Reported(Health::AllUp));
    assert_eq!(report::overall(std::slice::from_ref(&up)).exit_code(), 0);

    let silent = DaemonReport::new(
        &target("b"),
        Outcome::Silent {
            tried: vec![sa("10.1.0.2:4803")],
            timeout: Duration::from_millis(300),
        },
    );
    assert_eq!(silent.verdict, Verdict::Unreachable);
    let impostor = DaemonReport::new(&target("a"), answered(&snap));
    assert_eq!(impostor.verdict, Verdict::Unreachable);
    assert!(impostor.error.as_deref().unwrap().contains("answered as daemon"));
    let garbage = DaemonReport::new(
        &target("c"),
        Outcome::Answered {
            from: sa("10.1.0.3:4803"),
            document: "{\"health\":".to_string(),
        },
    );
    assert_eq!(garbage.verdict, Verdict::Unreachable);
    assert!(Verdict::Unreachable > Verdict::Reported(Health::LastNetwork));

    let reports = vec![up, silent];
    let v = json::parse(&report::to_json(&reports)).expect("the survey is JSON");
    assert_eq!((s(&v, &["health"]), u(&v, &["exit_code"])), ("unreachable", 2));
    let daemons = v.get("daemons").and_then(Value::as_array).unwrap();
    assert_eq!(daemons.len(), 2);
    assert_eq!(daemons[0].get("reachable").and_then(Value::as_bool), Some(true));
    assert_eq!(s(&daemons[0], &["address"]), "10.1.0.3:4803");
    assert_eq!(s(&daemons[0], &["status", "daemon", "name"]), "c");
    assert!(daemons[0].get("error").unwrap().is_null());
    assert_eq!(daemons[1].get("reachable").and_then(Value::as_bool), Some(false));
    assert!(daemons[1].get("status").unwrap().is_null());
    assert_eq!(s(&daemons[1], &["health"]), "unreachable");
    assert!(s(&daemons[1], &["error"]).contains("no answer within 300 ms from 10.1.0.2:4803"));
    assert_eq!(report::overall(&[]), Verdict::Reported(Health::AllUp));
}

#[test]
fn table_shows_daemons_and_links() {
    let c = config(TWO_NETWORKS);
    let id = Identity::from_config(&c, 0, 2);
    let members = ids(&["a", "b", "c"]);
    let one_lost = status(vec![
        link("a", 0, true, None),
        link("a", 1, false, Some(Fault::Crossed { arrives_on: 0 })),
    ]);
    let snap = snapshot(&id, &members, Some(one_lost));
    let reports = vec![
        DaemonReport::new(&target("c"), answered(&snap)),
        DaemonReport::new(
            &target("b"),
            Outcome::Silent {
                tried: vec![sa("10.1.0.2:4803")],
                timeout: Duration::from_millis(300),
            },
        ),
    ];
    let table = report::table(&reports);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "DAEMON",
            "REACHABLE",
            "STATE",
            "MEMBERS",
            "SESSIONS",
            "GROUPS",
            "HEALTH"
        ]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["c", "yes", "operational", "3", "2", "1", "last_network"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["b", "no", "-", "-", "-", "-", "unreachable"]
    );
    assert!(table.contains("c: hybrid\n"), "{table}");
    let down = lines
        .iter()
        .find(|l| l.trim_start().starts_with("a ") && l.contains("down"))
        .unwrap_or_else(|| panic!("no line for the lost link in\n{table}"));
    assert_eq!(
        down.split_whitespace().collect::<Vec<_>>(),
        [
            "a",
            "1",
            "down",
            "crossed(arrives",
            "on",
            "0)",
            "0.25",
            "100.0%",
            "-",
            "1",
            "1",
            "down",
            "(crossed(arrives",
            "on",
            "0))",
            "0.5",
            "s",
            "ago"
        ]
    );
    assert!(table.contains("b: no answer within 300 ms"), "{table}");
    assert!(table.ends_with("overall: unreachable (exit code 2)\n"), "{table}");
}
