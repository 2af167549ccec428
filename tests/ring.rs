//! Three daemons on 127.0.0.1-3 as one system: clients on every daemon see one order of
//! messages and the same group views; a daemon killed mid-stream leaves the others with a
//! network membership change and nothing lost; restarted, it merges back. The same on a LAN of
//! network namespaces, where a pulled cable also partitions and merges.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::{self, sleep, JoinHandle};
use std::time::{Duration, Instant};

use spread::client::membership::{vs_set_members, vs_sets_info};
use spread::client::{connect, Mailbox};
use spread::config::virtual_id_from_name;
use spread::daemon::faults::FAULTS_VAR;
use spread::wire::name::name_text;
use spread::wire::{
    AGREED_MESS, CAUSED_BY_NETWORK, MEMBERSHIP_MESS, NAME_LEN, REG_MEMB_MESS, SAFE_MESS, TRANSITION_MESS,
};
use support::cluster::{daemon_name, loopback_address, loopback_config, Cluster};
use support::netns::{Lan, BROADCAST};
use support::{free_port_on, Daemon, DaemonKind, Launch, TempDir};

const GROUP: &[u8] = b"g";
/// Bound of every wait for the cluster to do something.
const LIMIT: Duration = Duration::from_secs(60);

/// One message as a client received it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    service: u32,
    /// The sender's private group, or the group of a membership message.
    sender: Vec<u8>,
    /// Destination groups, or the members of a membership message.
    names: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// When the receiving thread got it.
    at: Instant,
}

impl Msg {
    fn is_data(&self) -> bool {
        self.service & MEMBERSHIP_MESS == 0
    }

    fn is_regular_view(&self, members: usize) -> bool {
        self.service & REG_MEMB_MESS != 0 && self.sender == GROUP && self.names.len() == members
    }

    /// The vs sets of a regular membership message: their member names.
    fn vs_sets(&self) -> Vec<Vec<Vec<u8>>> {
        let (sets, _) = vs_sets_info(&self.body[..], 16).expect("vs sets");
        sets.iter()
            .map(|&set| {
                let mut names = [[0u8; NAME_LEN]; 16];
                let n = vs_set_members(&self.body[..], set, &mut names).expect("vs set members");
                names[..n as usize]
                    .iter()
                    .map(|m| name_text(m).to_vec())
                    .collect()
            })
            .collect()
    }
}

/// A session on one daemon; a thread receives its messages into a channel.
struct Client {
    mailbox: Mailbox,
    private_group: Vec<u8>,
    received: Receiver<Msg>,
    /// Every message taken from `received` so far.
    log: Vec<Msg>,
}

impl Client {
    fn connect(port: u16, address: IpAddr, user: &str) -> Client {
        let name = format!("{port}@{address}");
        let c = connect(
            Some(name.as_bytes()),
            user.as_bytes(),
            0,
            true,
            Some(Instant::now() + Duration::from_secs(10)),
        )
        .unwrap_or_else(|e| panic!("connect {user} to {name}: {e:?}"));
        let (tx, rx) = channel();
        let mailbox = c.mailbox;
        thread::spawn(move || {
            let mut names = [[0u8; NAME_LEN]; 100];
            let mut body = vec![0u8; 150_000];
            loop {
                let Ok(r) = mailbox.receive(false, &mut names, &mut [&mut body[..]]) else {
                    return;
                };
                let count = r.num_groups.max(0) as usize;
                let msg = Msg {
                    service: r.service,
                    sender: name_text(&r.sender).to_vec(),
                    names: names[..count].iter().map(|n| name_text(n).to_vec()).collect(),
                    body: body[..r.data_len.max(0) as usize].to_vec(),
                    at: Instant::now(),
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        Client {
            mailbox,
            private_group: name_text(&c.private_group).to_vec(),
            received: rx,
            log: Vec::new(),
        }
    }

    /// Takes messages until `done` holds for the log (bounded by [`LIMIT`]).
    fn wait(&mut self, what: &str, mut done: impl FnMut(&[Msg]) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !done(&self.log) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.received.recv_timeout(left) {
                Ok(m) => self.log.push(m),
                Err(_) => panic!(
                    "{}: no {what} within {LIMIT:?}; last messages: {:?}",
                    String::from_utf8_lossy(&self.private_group),
                    &self.log[self.log.len().saturating_sub(5)..]
                ),
            }
        }
    }

    fn send(&self, service: u32, body: &[u8]) {
        self.mailbox
            .multicast(service, GROUP, 0, &[body])
            .expect("multicast");
    }

    /// Data messages from `from` on in the log: (sender, body).
    fn data_since(&self, from: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.log[from..]
            .iter()
            .filter(|m| m.is_data())
            .map(|m| (m.sender.clone(), m.body.clone()))
            .collect()
    }
}

fn count_data(log: &[Msg], from: usize) -> usize {
    log[from..].iter().filter(|m| m.is_data()).count()
}

/// Waits until every daemon's last regular configuration has `n` daemons.
fn wait_merged(daemons: &[&Daemon], n: usize) {
    let last_size = |d: &Daemon| {
        d.log()
            .lines()
            .filter_map(|l| l.split_once("regular configuration ").map(|(_, r)| r.to_string()))
            .next_back()
            .map(|r| {
                r.split_once("daemons ")
                    .map_or(0, |(_, ids)| ids.split(' ').count())
            })
    };
    wait_logs(daemons, &format!("daemons merged into {n}"), || {
        daemons.iter().all(|d| last_size(d) == Some(n))
    });
}

/// Each client sends `n` messages of `service`, interleaved; every client gets all of them
/// in one order, and each sender's in its order.
fn exchange(clients: &mut [Client], service: u32, n: usize) {
    let starts: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    for k in 0..n {
        for (i, c) in clients.iter().enumerate() {
            c.send(service, format!("{i}:{k}").as_bytes());
        }
    }
    let total = n * clients.len();
    for (c, &start) in clients.iter_mut().zip(&starts) {
        c.wait("all messages", |log| count_data(log, start) >= total);
    }
    let first = clients[0].data_since(starts[0]);
    assert_eq!(first.len(), total);
    for (c, &start) in clients.iter().zip(&starts).skip(1) {
        assert_eq!(c.data_since(start), first, "another order");
    }
    check_fifo(&first, &vec![n; clients.len()]);
}

/// Each sender `i`'s messages `i:0`, `i:1`, ... come in order, and `sent[i]` of them.
fn check_fifo(delivered: &[(Vec<u8>, Vec<u8>)], sent: &[usize]) {
    let mut next: BTreeMap<usize, usize> = BTreeMap::new();
    for (_, body) in delivered {
        let text = String::from_utf8_lossy(body).into_owned();
        let (i, k) = text.split_once(':').expect("i:k");
        let expected = next.entry(i.parse().unwrap()).or_default();
        assert_eq!(k.parse::<usize>().unwrap(), *expected, "FIFO of {text}");
        *expected += 1;
    }
    let counts: Vec<usize> = next.values().copied().collect();
    assert_eq!(
        next.keys().copied().collect::<Vec<_>>(),
        (0..sent.len()).collect::<Vec<_>>()
    );
    assert_eq!(counts, sent);
}

/// A client on each of the first `n` hosts of `lan`, connected from inside its namespace to
/// the daemon there (named `<prefix><i>`), all joined to the group.
fn joined_lan_clients(lan: &Lan, n: usize, port: u16, prefix: &str) -> Vec<Client> {
    let mut clients: Vec<Client> = (0..n)
        .map(|i| {
            lan.run_in(i, || {
                Client::connect(port, lan.address(i), &format!("{prefix}{i}"))
            })
        })
        .collect();
    join_all(&mut clients);
    clients
}

/// Joins every client to the group and waits until each sees all of them in its view.
fn join_all(clients: &mut [Client]) {
    for c in clients.iter() {
        c.mailbox.join(GROUP).expect("join");
    }
    let n = clients.len();
    for c in clients.iter_mut() {
        c.wait("full view", |log| log.iter().any(|m| m.is_regular_view(n)));
    }
}

/// Sends `n` AGREED messages `i:k` from a thread, a millisecond apart (so a stream of a few
/// hundred lasts long enough to be cut by a crash); stops at an error.
fn stream(c: &Client, i: usize, n: usize) -> JoinHandle<usize> {
    let mailbox = c.mailbox;
    thread::spawn(move || {
        for k in 0..n {
            let body = format!("{i}:{k}");
            if mailbox
                .multicast(AGREED_MESS, GROUP, 0, &[body.as_bytes()])
                .is_err()
            {
                return k;
            }
            sleep(Duration::from_millis(1));
        }
        n
    })
}

/// Sends AGREED messages `i:k` from a thread, one every 2 ms or so, until `stop` is set
/// (or an error); returns how many it sent.
fn stream_until(c: &Client, i: usize, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    let mailbox = c.mailbox;
    thread::spawn(move || {
        let mut k = 0;
        // Bounded even if the test forgets to stop it: about a minute of sending.
        while !stop.load(Ordering::Relaxed) && k < 200_000 {
            let body = format!("{i}:{k}");
            if mailbox
                .multicast(AGREED_MESS, GROUP, 0, &[body.as_bytes()])
                .is_err()
            {
                break;
            }
            k += 1;
            sleep(Duration::from_millis(2));
        }
        k
    })
}

/// Daemons stopped with SIGSTOP until dropped, even when the test fails.
struct Frozen(Vec<i32>);

impl Frozen {
    fn new(pids: &[u32]) -> Frozen {
        let frozen = Frozen(pids.iter().map(|&p| p as i32).collect());
        for &pid in &frozen.0 {
            // SAFETY: kill(2) on a daemon this test started.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        }
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: kill(2) on a daemon this test started.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

#[test]
fn three_daemons_order_messages_survive_a_crash_and_merge_back() {
    let kind = DaemonKind::ours();
    // The LAN timeouts (three loopback segments would get the slower WAN ones).
    let mut cluster = Cluster::start(&kind, 3, "WideAreaNetwork = false");
    wait_merged(&cluster.daemons.iter().collect::<Vec<_>>(), 3);
    let port = cluster.port;
    let mut clients: Vec<Client> = (0..3)
        .map(|i| Client::connect(port, loopback_address(i), &format!("c{i}")))
        .collect();
    join_all(&mut clients);
    for c in &clients {
        let view = c.log.iter().rev().find(|m| m.is_regular_view(3)).unwrap();
        let mut members: Vec<Vec<u8>> = clients.iter().map(|c| c.private_group.clone()).collect();
        members.sort();
        assert_eq!(view.names, members);
    }

    exchange(&mut clients, AGREED_MESS, 300);
    exchange(&mut clients, SAFE_MESS, 50);
    // Messages of the largest size a client may send, cut into many packets on the ring.
    let starts: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    let large: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 140_000]).collect();
    for (c, body) in clients.iter().zip(&large) {
        c.send(SAFE_MESS, body);
    }
    for (c, &start) in clients.iter_mut().zip(&starts) {
        c.wait("large messages", |log| count_data(log, start) >= 3);
        let mut bodies: Vec<Vec<u8>> = c.data_since(start).into_iter().map(|(_, b)| b).collect();
        bodies.sort();
        assert_eq!(bodies, large);
    }

    let restart = || {
        Daemon::launch(Launch {
            kind: &kind,
            name: &daemon_name(2),
            config: &cluster.config,
            port,
            prefix: Vec::new(),
            env: Vec::new(),
        })
    };
    let reconnect = || Client::connect(port, loopback_address(2), "c3");
    crash_mid_stream_and_merge_back(&mut cluster.daemons, clients, restart, reconnect);
}

/// Daemon 3 (the last of three) is SIGKILLed while the clients of all three send: the
/// survivors' clients get a network view after a transition, identical sequences, and every
/// message the survivors sent. Then `restart` starts daemon 3 again and `reconnect` opens a
/// session on it, which joins alone; it merges back (a network view with two vs sets) and
/// traffic flows among all three.
fn crash_mid_stream_and_merge_back(
    daemons: &mut [Daemon],
    mut clients: Vec<Client>,
    restart: impl FnOnce() -> Daemon,
    reconnect: impl FnOnce() -> Client,
) {
    // Daemon 3 dies while everyone sends.
    const STREAM: usize = 400;
    let starts: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    let senders: Vec<JoinHandle<usize>> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| stream(c, i, STREAM))
        .collect();
    // Killed once a quarter of the stream is delivered, while the senders are still at it.
    clients[0].wait("a quarter of the stream", |log| {
        count_data(log, starts[0]) >= 3 * STREAM / 4
    });
    let victim = daemons[2].pid() as i32;
    let victim_group = clients[2].private_group.clone();
    // SAFETY: kill(2) on a daemon this test started.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    let killed_at = Instant::now();
    assert!(
        senders.iter().all(|s| !s.is_finished()),
        "the senders finished before the crash"
    );
    let sent: Vec<usize> = senders.into_iter().map(|s| s.join().expect("sender")).collect();
    assert_eq!(&sent[..2], &[STREAM, STREAM], "survivors' sends");
    let mut survivors: Vec<Client> = clients.drain(..2).collect();
    let network_view = |m: &Msg| m.is_regular_view(2) && m.service & CAUSED_BY_NETWORK != 0;
    for (c, &start) in survivors.iter_mut().zip(&starts) {
        c.wait("network view and every survivor's message", |log| {
            log[start..].iter().any(network_view)
                && log[start..]
                    .iter()
                    .filter(|m| m.is_data() && m.sender != victim_group)
                    .count()
                    >= 2 * STREAM
        });
    }
    println!("survivors' views {:?} after the kill", killed_at.elapsed());
    // Identical sequences, membership messages included, and the transition first.
    let events = |c: &Client, start: usize| -> Vec<(u32, Vec<u8>, Vec<u8>)> {
        c.log[start..]
            .iter()
            .map(|m| (m.service, m.sender.clone(), m.body.clone()))
            .collect()
    };
    let seq0 = events(&survivors[0], starts[0]);
    let seq1 = events(&survivors[1], starts[1]);
    let common = seq0.len().min(seq1.len());
    assert_eq!(seq0[..common], seq1[..common]);
    for (c, &start) in survivors.iter().zip(&starts) {
        let log = &c.log[start..];
        let transition = log.iter().position(|m| m.service & TRANSITION_MESS != 0);
        let view = log.iter().position(network_view);
        assert!(
            matches!((transition, view), (Some(t), Some(v)) if t < v),
            "{log:?}"
        );
        let vs = log[view.unwrap()].vs_sets();
        assert_eq!(vs.len(), 1, "{vs:?}");
    }
    let delivered: Vec<(Vec<u8>, Vec<u8>)> = survivors[0]
        .data_since(starts[0])
        .into_iter()
        .filter(|(s, _)| *s != victim_group)
        .collect();
    check_fifo(&delivered, &[STREAM, STREAM]);

    // Restarted, daemon 3 merges back. A starting daemon finds the others at once, so they
    // are frozen meanwhile: its new member joins while it is alone, and the merge then
    // meets two group views.
    drop(clients);
    let frozen = Frozen::new(&[daemons[0].pid(), daemons[1].pid()]);
    daemons[2] = restart();
    let mut back = reconnect();
    back.mailbox.join(GROUP).expect("join");
    back.wait("own view", |log| log.iter().any(|m| m.is_regular_view(1)));
    drop(frozen);
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut expected = vec![
        vec![
            survivors[0].private_group.clone(),
            survivors[1].private_group.clone(),
        ],
        vec![back.private_group.clone()],
    ];
    expected.sort();
    let marks: Vec<usize> = survivors.iter().chain([&back]).map(|c| c.log.len()).collect();
    for (c, &mark) in survivors.iter_mut().chain([&mut back]).zip(&marks) {
        c.wait("merged view", |log| {
            log[mark..].iter().any(|m| m.is_regular_view(3))
        });
        let view = c.log[mark..].iter().find(|m| m.is_regular_view(3)).unwrap();
        assert_ne!(view.service & CAUSED_BY_NETWORK, 0, "merge by network: {view:?}");
        let mut sets = view.vs_sets();
        sets.sort();
        assert_eq!(sets, expected);
    }
    survivors.push(back);
    exchange(&mut survivors, AGREED_MESS, 100);
}

/// The same order for everyone over a bad network: every daemon's datagrams are lost,
/// duplicated, delayed and reordered by the test fault layer.
#[test]
fn three_daemons_order_messages_over_a_lossy_network() {
    let kind = DaemonKind::ours();
    let addresses: Vec<IpAddr> = (0..3).map(loopback_address).collect();
    let port = free_port_on(&addresses);
    let dir = TempDir::new("ring-faults");
    let config = dir.path().join("spread.conf");
    std::fs::write(&config, loopback_config(3, port, "WideAreaNetwork = false")).unwrap();
    let faults = "loss=0.03,dup=0.02,delay=1ms,reorder=0.05";
    let daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            Daemon::launch(Launch {
                kind: &kind,
                name: &daemon_name(i),
                config: &config,
                port,
                prefix: Vec::new(),
                env: vec![(FAULTS_VAR.into(), faults.into())],
            })
        })
        .collect();
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients: Vec<Client> = (0..3)
        .map(|i| Client::connect(port, loopback_address(i), &format!("f{i}")))
        .collect();
    join_all(&mut clients);
    exchange(&mut clients, AGREED_MESS, 300);
    exchange(&mut clients, SAFE_MESS, 100);
}

/// Three daemons in network namespaces on one bridge, one broadcast segment: the same order
/// everywhere, then a pulled cable splits the LAN and plugging it back merges the two sides,
/// each with its members (a network view with two vs sets).
#[test]
fn three_daemons_on_a_bridge_partition_and_merge() {
    let lan = Lan::new(3);
    let dir = TempDir::new("ring-netns");
    let port = 4803;
    let (_, daemons) = lan.start_ours(dir.path(), port, &lan.config(IpAddr::V4(BROADCAST), port, ""));
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients = joined_lan_clients(&lan, 3, port, "n");
    exchange(&mut clients, AGREED_MESS, 200);
    exchange(&mut clients, SAFE_MESS, 50);

    // Host 2 loses its cable: each side goes on with its own view.
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    lan.set_cable(2, 0, false);
    for (i, (c, &mark)) in clients.iter_mut().zip(&marks).enumerate() {
        let size = if i == 2 { 1 } else { 2 };
        c.wait("view of its side", |log| {
            log[mark..]
                .iter()
                .any(|m| m.is_regular_view(size) && m.service & CAUSED_BY_NETWORK != 0)
        });
    }
    let (left, right) = clients.split_at_mut(2);
    exchange(left, AGREED_MESS, 50);
    exchange(right, AGREED_MESS, 20);

    // Plugged back, the sides merge; the view tells where each member comes from.
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    lan.set_cable(2, 0, true);
    let mut expected = vec![
        vec![clients[0].private_group.clone(), clients[1].private_group.clone()],
        vec![clients[2].private_group.clone()],
    ];
    expected.sort();
    for (c, &mark) in clients.iter_mut().zip(&marks) {
        c.wait("merged view", |log| {
            log[mark..].iter().any(|m| m.is_regular_view(3))
        });
        let view = c.log[mark..].iter().find(|m| m.is_regular_view(3)).unwrap();
        assert_ne!(view.service & CAUSED_BY_NETWORK, 0, "{view:?}");
        let mut sets = view.vs_sets();
        sets.sort();
        assert_eq!(sets, expected);
    }
    exchange(&mut clients, AGREED_MESS, 100);
}

/// The crash of the loopback test on a LAN: three daemons in network namespaces on one bridge,
/// daemon 3 SIGKILLed while everyone sends, then restarted in its namespace.
#[test]
fn three_daemons_on_a_bridge_survive_a_crash_and_merge_back() {
    let lan = Lan::new(3);
    let dir = TempDir::new("ring-netns-crash");
    let port = 4803;
    let (config, mut daemons) =
        lan.start_ours(dir.path(), port, &lan.config(IpAddr::V4(BROADCAST), port, ""));
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients = joined_lan_clients(&lan, 3, port, "k");
    exchange(&mut clients, AGREED_MESS, 100);
    let restart = || lan.launch(2, &DaemonKind::ours(), &config, port, Vec::new());
    let reconnect = || lan.run_in(2, || Client::connect(port, lan.address(2), "k3"));
    crash_mid_stream_and_merge_back(&mut daemons, clients, restart, reconnect);
}

/// Three daemons on two bridges, one ring over both networks (`Multipath = mode`), clients
/// on every daemon sending all along. A cable pulled on one network and put back, then
/// another daemon's on the other network: nobody sees a membership change, everyone gets the
/// same complete sequence, and no receiver waits long. Both cables of one daemon pulled: it
/// leaves the membership as on one network, and merges back when they return.
/// The LAN timeouts, but sides of a partition find each other by alive probes every
/// LookupTimeout (30 s on a LAN): a shorter one makes merges quick.
const QUICK_MERGE_TIMEOUTS: &str = "TokenTimeout = 1250\nHurryTimeout = 500\nAliveTimeout = 250\n\
                                    JoinTimeout = 250\nRepTimeout = 625\nSegTimeout = 500\n\
                                    GatherTimeout = 1250\nFormTimeout = 1250\nLookupTimeout = 2000";

fn ring_over_two_networks(mode: &str) {
    let began = Instant::now();
    let lan = Lan::with_networks(3, 2);
    let dir = TempDir::new("ring-multipath");
    let port = 4803;
    let options = format!("Multipath = {mode}\n{QUICK_MERGE_TIMEOUTS}");
    let (_, daemons) = lan.start_ours(dir.path(), port, &lan.multipath_config(port, &options));
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients = joined_lan_clients(&lan, 3, port, "m");
    exchange(&mut clients, AGREED_MESS, 100);
    println!("{mode}: ring of 3 with clients after {:?}", began.elapsed());

    // Cable pulls on one network at a time while everyone sends.
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<JoinHandle<usize>> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| stream_until(c, i, stop.clone()))
        .collect();
    let hold = Duration::from_millis(1500);
    sleep(Duration::from_millis(500));
    for (host, network) in [(0, 0), (1, 1)] {
        lan.set_cable(host, network, false);
        sleep(hold);
        lan.set_cable(host, network, true);
        // About when the link comes back (its 1 s hold and the reports take 1.4-1.75 s): the
        // next pull often lands while only the other network is in use, which must cost nothing.
        sleep(hold);
    }
    stop.store(true, Ordering::Relaxed);
    let sent: Vec<usize> = senders.into_iter().map(|s| s.join().expect("sender")).collect();
    let total: usize = sent.iter().sum();
    let stopped_at = Instant::now();
    for (c, &mark) in clients.iter_mut().zip(&marks) {
        c.wait("every streamed message", |log| count_data(log, mark) >= total);
    }
    println!(
        "{mode}: streams delivered {:?} after they stopped",
        stopped_at.elapsed()
    );
    let first = clients[0].data_since(marks[0]);
    assert_eq!(first.len(), total);
    let mut longest = Duration::ZERO;
    for (c, &mark) in clients.iter().zip(&marks) {
        let log = &c.log[mark..];
        let changes: Vec<&Msg> = log.iter().filter(|m| !m.is_data()).collect();
        assert!(changes.is_empty(), "membership changes: {changes:?}");
        assert_eq!(c.data_since(mark), first, "another sequence");
        let gap = log
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .max()
            .unwrap_or_default();
        longest = longest.max(gap);
    }
    println!("{mode}: {sent:?} messages sent; longest delivery gap {longest:?} with cables pulled");
    assert!(
        longest < Duration::from_millis(500),
        "delivery stalled for {longest:?}"
    );
    check_fifo(&first, &sent);
    for d in &daemons {
        let log = d.log();
        assert!(
            log.contains("network 0: up -> down") || log.contains("network 1: up -> down"),
            "no link state change logged:\n{log}"
        );
    }

    // Both cables of host 2 pulled: it leaves, as on one network; back, it merges.
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    lan.set_cable(2, 0, false);
    lan.set_cable(2, 1, false);
    let pulled_at = Instant::now();
    for (i, (c, &mark)) in clients.iter_mut().zip(&marks).enumerate() {
        let size = if i == 2 { 1 } else { 2 };
        c.wait("view of its side", |log| {
            log[mark..]
                .iter()
                .any(|m| m.is_regular_view(size) && m.service & CAUSED_BY_NETWORK != 0)
        });
    }
    println!(
        "{mode}: both cables pulled, views of both sides after {:?}",
        pulled_at.elapsed()
    );
    let (left, right) = clients.split_at_mut(2);
    exchange(left, AGREED_MESS, 30);
    exchange(right, AGREED_MESS, 10);
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    lan.set_cable(2, 0, true);
    lan.set_cable(2, 1, true);
    let plugged_at = Instant::now();
    for (c, &mark) in clients.iter_mut().zip(&marks) {
        c.wait("merged view", |log| {
            log[mark..].iter().any(|m| m.is_regular_view(3))
        });
    }
    println!(
        "{mode}: cables back, merged view after {:?}",
        plugged_at.elapsed()
    );
    exchange(&mut clients, AGREED_MESS, 100);
}

/// Lines of `daemon`'s log saying that the link to host `peer` on `network` changed state
/// with `change` (e.g. "up -> down (crossed").
fn link_changes(lan: &Lan, daemon: &Daemon, peer: usize, network: usize, change: &str) -> usize {
    let id = virtual_id_from_name(&lan.daemon_name(peer));
    let prefix = format!("link: daemon {id:#x} network {network}: {change}");
    daemon.log().lines().filter(|l| l.contains(&prefix)).count()
}

/// Waits until `done` holds, saying `what` and showing the logs if it never does.
fn wait_logs(daemons: &[&Daemon], what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {LIMIT:?}:\n{}",
            daemons
                .iter()
                .map(|d| d.log())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        sleep(Duration::from_millis(50));
    }
}

/// Three daemons on two networks; host 2's cables of the two networks swapped at the bridges.
/// What host 2 sends on one network arrives on the other's wire and the other way round: the
/// daemons say so (crossed, from the arrival interface), not just "down". Put back, everything
/// comes back. Every link state change is logged with its peer, network, old and new state and
/// reason.
#[test]
fn crossed_cables_are_reported_as_crossed_and_recover() {
    let lan = Lan::with_networks(3, 2);
    let dir = TempDir::new("ring-crossed");
    let port = 4803;
    let options = format!("Multipath = hybrid\n{QUICK_MERGE_TIMEOUTS}");
    let (_, daemons) = lan.start_ours(dir.path(), port, &lan.multipath_config(port, &options));
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    // Each link came up at first contact, once, with no failure before.
    let others = |i: usize| (0..3).filter(move |&p| p != i);
    wait_logs(&daemons.iter().collect::<Vec<_>>(), "every link heard", || {
        (0..3).all(|i| {
            others(i)
                .all(|p| (0..2).all(|n| link_changes(&lan, &daemons[i], p, n, "unheard -> up (heard)") == 1))
        })
    });
    for (i, d) in daemons.iter().enumerate() {
        for p in others(i) {
            for n in 0..2 {
                assert_eq!(link_changes(&lan, d, p, n, "up -> down"), 0, "{}", d.log());
            }
        }
    }

    lan.cross_cables(2, true);
    let crossed_at = Instant::now();
    // Host 2 hears both peers on each network through the other network's interface.
    let crossed = |d: &Daemon, p: usize, n: usize| {
        let arrives_on = format!("crossed: its packets arrive on network {}", 1 - n);
        let id = virtual_id_from_name(&lan.daemon_name(p));
        let prefix = format!("link: daemon {id:#x} network {n}: ");
        d.log()
            .lines()
            .any(|l| l.contains(&prefix) && l.contains(&arrives_on))
    };
    wait_logs(
        &daemons.iter().collect::<Vec<_>>(),
        "host 2 reporting crossed cables",
        || (0..2).all(|p| (0..2).all(|n| crossed(&daemons[2], p, n))),
    );
    println!(
        "crossed cables reported by host 2 after {:?}",
        crossed_at.elapsed()
    );
    // The others see host 2's packets on the wrong interfaces too.
    wait_logs(
        &daemons.iter().collect::<Vec<_>>(),
        "hosts 0 and 1 reporting crossed cables",
        || (0..2).all(|i| (0..2).any(|n| crossed(&daemons[i], 2, n))),
    );
    for d in &daemons {
        assert!(d.log().contains("come in through interface"), "{}", d.log());
    }
    // Host 2 hears nobody on the right wire: it is alone.
    wait_merged(&[&daemons[0], &daemons[1]], 2);
    wait_merged(&[&daemons[2]], 1);

    lan.cross_cables(2, false);
    let uncrossed_at = Instant::now();
    wait_logs(
        &daemons.iter().collect::<Vec<_>>(),
        "every link to and from host 2 back up",
        || {
            (0..2).all(|n| {
                (0..2).all(|i| link_changes(&lan, &daemons[i], 2, n, "down -> up (recovered)") >= 1)
                    && (0..2).all(|p| link_changes(&lan, &daemons[2], p, n, "down -> up (recovered)") >= 1)
            })
        },
    );
    println!("links back up after {:?}", uncrossed_at.elapsed());
    wait_merged(&daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients = joined_lan_clients(&lan, 3, port, "x");
    exchange(&mut clients, AGREED_MESS, 20);
    // Links between hosts 0 and 1 never noticed anything.
    for (i, p) in [(0, 1), (1, 0)] {
        for n in 0..2 {
            assert_eq!(link_changes(&lan, &daemons[i], p, n, "up -> down"), 0);
        }
    }
}

#[test]
fn ring_over_two_networks_hybrid() {
    ring_over_two_networks("hybrid");
}

#[test]
fn ring_over_two_networks_active() {
    ring_over_two_networks("active");
}

/// Figures for the report (run with `--ignored --nocapture`, in release): the time from a
/// SIGKILL to the survivors' new view, and the rate of 1 KB AGREED messages from one sender on
/// daemon 1 to read-only receivers on daemons 2 and 3. Three loopback segments make a wide area
/// configuration, with the WAN timeouts; `WideAreaNetwork = false` gives the LAN ones.
#[test]
#[ignore]
fn measure_crash_detection_and_throughput() {
    measure("WideAreaNetwork = false", "LAN timeouts, accelerated ring");
    measure("", "WAN timeouts (default for 3 segments)");
}

fn measure(extra: &str, label: &str) {
    let kind = DaemonKind::ours();
    let cluster = Cluster::start(&kind, 3, extra);
    wait_merged(&cluster.daemons.iter().collect::<Vec<_>>(), 3);
    let mut clients: Vec<Client> = (0..3)
        .map(|i| Client::connect(cluster.port, loopback_address(i), &format!("c{i}")))
        .collect();
    join_all(&mut clients);

    const MESSAGES: usize = 20_000;
    let payload = vec![7u8; 1024];
    let starts: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    let begin = Instant::now();
    let sender = clients[0].mailbox;
    let writer = thread::spawn(move || {
        for _ in 0..MESSAGES {
            sender
                .multicast(AGREED_MESS, GROUP, 0, &[&payload[..]])
                .expect("multicast");
        }
    });
    for (c, &start) in clients.iter_mut().zip(&starts).skip(1) {
        c.wait("every message", |log| count_data(log, start) >= MESSAGES);
    }
    let elapsed = begin.elapsed();
    writer.join().expect("writer");
    println!(
        "{label}: {MESSAGES} x 1 KB AGREED in {elapsed:?}: {:.0} msgs/s, {:.1} MB/s",
        MESSAGES as f64 / elapsed.as_secs_f64(),
        MESSAGES as f64 * 1024.0 / elapsed.as_secs_f64() / 1e6
    );

    let victim = cluster.daemons[2].pid() as i32;
    let marks: Vec<usize> = clients.iter().map(|c| c.log.len()).collect();
    let killed_at = Instant::now();
    // SAFETY: kill(2) on a daemon this test started.
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    for (c, &mark) in clients.iter_mut().zip(&marks).take(2) {
        c.wait("network view", |log| {
            log[mark..].iter().any(|m| m.is_regular_view(2))
        });
    }
    println!(
        "{label}: survivors' new view {:?} after SIGKILL",
        killed_at.elapsed()
    );
}
