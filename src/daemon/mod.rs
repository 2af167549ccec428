//! The daemon's I/O: client listeners, the UDP endpoint towards other daemons, the event loop,
//! and each connection's handshake and message stream. Everything about the protocol itself is
//! decided by [`crate::node`].

mod admission;
mod endpoints;
pub mod faults;
mod handshake;
mod monitor;
pub mod net;
pub mod networks;
mod outbox;
mod outqueue;
mod reader;
mod sys;
mod traffic;

pub use handshake::AuthPolicy;
pub use sys::local_addresses;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::groups::SessionId;
use crate::link::LinkSetup;
use crate::monitor::document::QueryCounters;
use crate::monitor::Identity;
use crate::node::{ClientRequest, Input, Node, Output, Setup as NodeSetup};
use crate::ring::Time;
use crate::wire::handshake::ConnectRequest;
use faults::FaultLayer;
use net::Links;
use networks::Networks;
use outqueue::OutQueue;
use reader::RequestReader;
use sys::{Epoll, ExitSignals, Interest, Ready};

/// Most connections one daemon serves (more get REJECT_QUOTA before anything is read).
pub const MAX_SESSIONS: usize = 997;

/// What the daemon needs to know to serve its clients.
#[derive(Clone, Debug)]
pub struct Settings {
    pub daemon_name: String,
    /// This daemon among the configured daemons, and the membership's settings.
    pub node: NodeSetup,
    /// Port of the daemon's segment: TCP port and the name of the Unix socket.
    pub port: u16,
    /// Addresses to accept TCP clients on.
    pub client_addresses: Vec<IpAddr>,
    /// Directory of the Unix socket.
    pub socket_dir: PathBuf,
    /// Undelivered messages a session may have queued before it is cut off.
    pub max_session_messages: usize,
    pub auth: AuthPolicy,
    /// This daemon's place on each network it is on, network 0 first.
    pub links: Vec<Links>,
    /// On a multipath ring (extra networks configured): the link layer's view of the daemons.
    pub multipath: Option<LinkSetup>,
    /// Who this daemon is, for monitor queries, and whom it answers.
    pub monitor: Identity,
}

/// The directory of Unix sockets: `SPREAD_SOCKET_DIR` if set and not empty, else `/tmp`.
pub fn socket_dir_from_env() -> PathBuf {
    match std::env::var_os("SPREAD_SOCKET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/tmp"),
    }
}

/// Serves clients until SIGINT or SIGTERM; removes the Unix socket on the way out.
pub fn run(settings: Settings) -> io::Result<()> {
    let mut daemon = Daemon::start(settings)?;
    daemon.serve()
}

const SIGNAL_TOKEN: u64 = u64::MAX;
/// Listener `i` has token `LISTENER_TOKEN - i`; connections have their slot index.
const LISTENER_TOKEN: u64 = u64::MAX - 1;
/// Daemon-network socket `i` has token `NET_TOKEN - i` (below every listener's).
const NET_TOKEN: u64 = LISTENER_TOKEN - 64;

/// Where a client connection stands.
enum State {
    /// Accepted; the connect request is due by `deadline`.
    AwaitRequest { deadline: Instant },
    /// The auth list was sent; `name` is reserved for this client.
    AwaitAuthChoice { request: ConnectRequest, name: Vec<u8> },
    Open {
        session: SessionId,
        private_group: Vec<u8>,
        reader: Box<RequestReader>,
    },
}

struct Conn {
    socket: Socket,
    state: State,
    out: OutQueue,
    /// What epoll watches the socket for now.
    interest: Interest,
    /// Listed in `Daemon::dirty`.
    dirty: bool,
    /// The reader holds requests left over from a capped turn; listed in `Daemon::backlog`.
    backlogged: bool,
    /// Not read from until then, or until no receiver is congested.
    paused_until: Option<Instant>,
    /// Has at least half of MaxSessionMessages undelivered; counted in `congested_conns`.
    congested: bool,
    /// Not read from while the node takes no requests; listed in `Daemon::stalled`.
    stalled: bool,
}

struct Daemon {
    settings: Settings,
    node: Node,
    /// The node's time is microseconds since then.
    started: Instant,
    epoll: Epoll,
    _signals: ExitSignals,
    listeners: Vec<Socket>,
    unix_path: PathBuf,
    net: Networks,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    open_conns: usize,
    slot_of: HashMap<SessionId, usize>,
    /// Private names promised to clients still authenticating.
    reserved_names: HashSet<Vec<u8>>,
    awaiting_requests: usize,
    random: u64,
    /// Connections with output to write at the end of this round.
    dirty: Vec<usize>,
    /// Connections with requests left over from a capped turn.
    backlog: Vec<usize>,
    /// Connections not read from for a while because a receiver was congested.
    paused: Vec<usize>,
    congested_conns: usize,
    /// Connections not read from until the node takes requests again.
    stalled: Vec<usize>,
    /// A delivery found its receiver congested (checked after each sender's turn).
    congestion_seen: bool,
    /// Sessions whose connection ended, to tell the node.
    ended: Vec<SessionId>,
    outputs: Vec<Output>,
    requests: Vec<ClientRequest>,
    queries: QueryCounters,
    /// Monitor queries read this round: (daemon-network socket, asker, nonce).
    pending_queries: Vec<(usize, SocketAddr, u64)>,
}

impl Daemon {
    fn start(settings: Settings) -> io::Result<Daemon> {
        sys::ignore_sigpipe();
        let signals = ExitSignals::new()?;
        let epoll = Epoll::new()?;
        epoll.add(signals.raw_fd(), SIGNAL_TOKEN, Interest::READ)?;

        let faults = FaultLayer::from_env().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let net = Networks::open(
            settings.links.clone(),
            settings.multipath.clone(),
            faults,
            Time::ZERO,
        )?;
        for (i, fd) in net.raw_fds().enumerate() {
            epoll.add(fd, NET_TOKEN - i as u64, Interest::READ)?;
        }
        let mut listeners = Vec::new();
        for address in &settings.client_addresses {
            listeners.push(endpoints::tcp_listener(SocketAddr::new(*address, settings.port))?);
        }
        // Last, so that a failure above leaves no socket file behind.
        let unix_path = settings.socket_dir.join(settings.port.to_string());
        listeners.push(endpoints::unix_listener(&unix_path)?);
        for (i, l) in listeners.iter().enumerate() {
            epoll.add(l.as_raw_fd(), LISTENER_TOKEN - i as u64, Interest::READ)?;
        }
        log::info!(
            "daemon {} serving clients on {} and TCP port {} of {:?}",
            settings.daemon_name,
            unix_path.display(),
            settings.port,
            settings.client_addresses
        );
        let started = Instant::now();
        let node = Node::new(settings.node.clone(), Time::ZERO);
        Ok(Daemon {
            settings,
            node,
            started,
            epoll,
            _signals: signals,
            listeners,
            unix_path,
            net,
            conns: Vec::new(),
            free_slots: Vec::new(),
            open_conns: 0,
            slot_of: HashMap::new(),
            reserved_names: HashSet::new(),
            awaiting_requests: 0,
            random: admission::random_seed(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            paused: Vec::new(),
            congested_conns: 0,
            stalled: Vec::new(),
            congestion_seen: false,
            ended: Vec::new(),
            outputs: Vec::new(),
            requests: Vec::new(),
            queries: QueryCounters::default(),
            pending_queries: Vec::new(),
        })
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut ready: Vec<Ready> = Vec::new();
        loop {
            self.epoll.wait(&mut ready, self.wait_timeout_ms())?;
            // Every daemon-network socket is read at the first of them that is ready.
            let mut net_read = false;
            for r in &ready {
                match r.token {
                    SIGNAL_TOKEN => {
                        log::info!("exit signal received, shutting down");
                        for (network, stats) in self.net.stats() {
                            log::info!("daemon network {network}: {stats:?}");
                        }
                        if let Some(status) = self.net.link_status(self.now()) {
                            log::info!("links: {}", status.to_json());
                        }
                        log::info!(
                            "membership: {:?}; ring: {:?}; events: {:?}",
                            self.node.membership_stats(),
                            self.node.ring_stats(),
                            self.node.stats()
                        );
                        return Ok(());
                    }
                    t if t > LISTENER_TOKEN - self.listeners.len() as u64 => {
                        self.accept_all((LISTENER_TOKEN - t) as usize)
                    }
                    t if t > NET_TOKEN - self.net.socket_count() as u64 && t <= NET_TOKEN => {
                        if !net_read {
                            net_read = true;
                            self.receive_datagrams();
                        }
                    }
                    t => {
                        let slot = t as usize;
                        if r.writable {
                            self.flush(slot);
                        }
                        if r.readable {
                            self.on_readable(slot);
                        }
                    }
                }
                self.dispatch();
            }
            self.run_node_timer();
            self.net.handle_timer(self.now());
            self.resume_stalled();
            self.run_backlog();
            let now = Instant::now();
            self.net.send_due(now);
            self.expire_handshakes(now);
            self.flush_dirty();
            self.resume_paused(now);
        }
    }

    /// No wait while work is left (a connection failed late in the round, or left-over
    /// requests can run); else until the next deadline, or forever without one.
    fn wait_timeout_ms(&self) -> i32 {
        let runnable = |&slot: &usize| {
            self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.backlogged && c.paused_until.is_none())
        };
        let work_left = !self.ended.is_empty() || !self.outputs.is_empty() || !self.dirty.is_empty();
        if work_left || self.backlog.iter().any(runnable) {
            return 0;
        }
        sys::timeout_ms(self.next_deadline(), Instant::now())
    }

    /// The earliest of: a connect-request deadline, the end of a pause, a datagram held back
    /// by the test fault layer, the node's timer, the link layer's timer.
    fn next_deadline(&self) -> Option<Instant> {
        let connections = if self.awaiting_requests == 0 && self.paused.is_empty() {
            None
        } else {
            self.conns
                .iter()
                .flatten()
                .filter_map(|c| match c.state {
                    State::AwaitRequest { deadline } => Some(deadline),
                    _ => c.paused_until,
                })
                .min()
        };
        let instant = |t: Time| self.started + Duration::from_micros(t.as_micros());
        let node = self.node.next_deadline().map(instant);
        let link = self.net.link_deadline().map(instant);
        [connections, self.net.fault_deadline(), node, link]
            .into_iter()
            .flatten()
            .min()
    }

    /// The node's clock: microseconds since the daemon started.
    fn now(&self) -> Time {
        Time::from_micros(self.started.elapsed().as_micros() as u64)
    }

    /// Reads the datagrams waiting on the daemon-network sockets into the node; answers the
    /// monitor queries among them.
    fn receive_datagrams(&mut self) {
        let now = self.now();
        let (node, outputs) = (&mut self.node, &mut self.outputs);
        let (identity, queries, pending) = (
            &self.settings.monitor,
            &mut self.queries,
            &mut self.pending_queries,
        );
        self.net.receive(
            now,
            &mut |network, bytes| {
                node.handle(now, Input::Packet { network, bytes }, outputs);
                (node.ring().ring_id(), node.ring().my_aru())
            },
            &mut |socket, from, bytes| monitor::admit(identity, queries, pending, socket, from, bytes),
        );
        if !self.pending_queries.is_empty() {
            self.answer_queries();
        }
    }

    /// Runs the node's timer when it is due.
    fn run_node_timer(&mut self) {
        let now = self.now();
        if self.node.next_deadline().is_some_and(|t| t <= now) {
            self.node.handle(now, Input::Timer, &mut self.outputs);
            self.dispatch();
        }
    }

    /// Closes a connection; a session it carried is reported to the node by `dispatch`.
    fn end_conn(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        // Closing the socket removes it from epoll as well; this only makes it explicit.
        let _ = self.epoll.remove(conn.socket.as_raw_fd());
        self.free_slots.push(slot);
        self.open_conns -= 1;
        if conn.congested {
            self.congested_conns -= 1;
        }
        match conn.state {
            State::AwaitRequest { .. } => self.awaiting_requests -= 1,
            State::AwaitAuthChoice { name, .. } => {
                self.reserved_names.remove(&name);
            }
            State::Open {
                session,
                private_group,
                ..
            } => {
                log::info!("session {} closed", String::from_utf8_lossy(&private_group));
                self.slot_of.remove(&session);
                self.ended.push(session);
            }
        }
    }

    fn on_readable(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match conn.state {
            State::AwaitRequest { .. } => self.read_connect_request(slot),
            State::AwaitAuthChoice { .. } => self.read_auth_choice(slot),
            State::Open { .. } => {
                let read_socket = !conn.backlogged;
                self.handle_requests(slot, read_socket)
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.unix_path) {
            log::warn!("could not remove {}: {e}", self.unix_path.display());
        }
    }
}
