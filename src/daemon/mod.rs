//! The daemon's I/O: client listeners, the event loop, and each connection's handshake and
//! message stream. Everything about the protocol itself is decided by [`crate::node`].

mod handshake;
mod outqueue;
mod reader;
mod sys;

pub use handshake::AuthPolicy;
pub use sys::local_addresses;

use std::collections::{HashMap, HashSet};
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::groups::{ConfigurationId, DaemonIndex, SessionId};
use crate::node::{ClientRequest, Frame, Input, Node, Output};
use crate::wire::handshake::{
    connect_request_len, encode_accept, reject_byte, ConnectRequest, AUTH_CHOICE_LEN, MAX_CONNECT_REQUEST_LEN,
};
use crate::wire::REJECT_QUOTA;
use handshake::{invented_name, on_auth_choice, on_connect_request, AfterRequest};
use outqueue::{OutQueue, BATCH};
use reader::RequestReader;
use sys::{Epoll, ExitSignals, Interest, Ready};

/// Most connections one daemon serves (more get REJECT_QUOTA before anything is read).
pub const MAX_SESSIONS: usize = 997;
/// How long a new connection has to send its connect request.
const CONNECT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Most requests of one session handled before the other sessions get their turn.
const REQUESTS_PER_TURN: usize = 64;
/// Longest wait of a sender for a congested receiver of its messages. A receiver that reads
/// nothing thus still reaches MaxSessionMessages and is cut off; one that reads slowly
/// slows its senders down instead.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What the daemon needs to know to serve its clients.
#[derive(Clone, Debug)]
pub struct Settings {
    pub daemon_name: String,
    pub daemon_index: DaemonIndex,
    pub configuration: ConfigurationId,
    /// Port of the daemon's segment: TCP port and the name of the Unix socket.
    pub port: u16,
    /// Addresses to accept TCP clients on.
    pub client_addresses: Vec<IpAddr>,
    /// Directory of the Unix socket.
    pub socket_dir: PathBuf,
    /// Undelivered messages a session may have queued before it is cut off.
    pub max_session_messages: usize,
    pub auth: AuthPolicy,
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
}

struct Daemon {
    settings: Settings,
    node: Node,
    epoll: Epoll,
    _signals: ExitSignals,
    listeners: Vec<Socket>,
    unix_path: PathBuf,
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
    /// A delivery found its receiver congested (checked after each sender's turn).
    congestion_seen: bool,
    /// Sessions whose connection ended, to tell the node.
    ended: Vec<SessionId>,
    outputs: Vec<Output>,
    requests: Vec<ClientRequest>,
}

impl Daemon {
    fn start(settings: Settings) -> io::Result<Daemon> {
        sys::ignore_sigpipe();
        let signals = ExitSignals::new()?;
        let epoll = Epoll::new()?;
        epoll.add(signals.raw_fd(), SIGNAL_TOKEN, Interest::READ)?;

        let mut listeners = Vec::new();
        for address in &settings.client_addresses {
            listeners.push(tcp_listener(SocketAddr::new(*address, settings.port))?);
        }
        // Last, so that a failure above leaves no socket file behind.
        let unix_path = settings.socket_dir.join(settings.port.to_string());
        listeners.push(unix_listener(&unix_path)?);
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
        let node = Node::new(
            settings.daemon_index,
            settings.daemon_name.as_bytes(),
            settings.configuration,
        );
        Ok(Daemon {
            settings,
            node,
            epoll,
            _signals: signals,
            listeners,
            unix_path,
            conns: Vec::new(),
            free_slots: Vec::new(),
            open_conns: 0,
            slot_of: HashMap::new(),
            reserved_names: HashSet::new(),
            awaiting_requests: 0,
            random: random_seed(),
            dirty: Vec::new(),
            backlog: Vec::new(),
            paused: Vec::new(),
            congested_conns: 0,
            congestion_seen: false,
            ended: Vec::new(),
            outputs: Vec::new(),
            requests: Vec::new(),
        })
    }

    fn serve(&mut self) -> io::Result<()> {
        let mut ready: Vec<Ready> = Vec::new();
        loop {
            self.epoll.wait(&mut ready, self.wait_timeout_ms())?;
            for r in &ready {
                match r.token {
                    SIGNAL_TOKEN => {
                        log::info!("exit signal received, shutting down");
                        return Ok(());
                    }
                    t if t > LISTENER_TOKEN - self.listeners.len() as u64 => {
                        self.accept_all((LISTENER_TOKEN - t) as usize)
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
            self.run_backlog();
            let now = Instant::now();
            self.expire_handshakes(now);
            self.flush_dirty();
            self.resume_paused(now);
        }
    }

    /// Gives sessions with left-over requests their next turn.
    fn run_backlog(&mut self) {
        for slot in std::mem::take(&mut self.backlog) {
            let Some(conn) = self.conns[slot].as_mut().filter(|c| c.backlogged) else {
                continue;
            };
            if conn.paused_until.is_some() {
                self.backlog.push(slot);
                continue;
            }
            conn.backlogged = false;
            self.handle_requests(slot, false);
        }
    }

    /// Stops reading from a sender whose messages met a congested receiver.
    fn pause(&mut self, slot: usize) {
        if let Some(conn) = self.conns[slot].as_mut() {
            conn.paused_until = Some(Instant::now() + MAX_PAUSE);
            self.paused.push(slot);
            self.update_interest(slot);
        }
    }

    fn resume_paused(&mut self, now: Instant) {
        if self.paused.is_empty() {
            return;
        }
        let all = self.congested_conns == 0;
        for slot in std::mem::take(&mut self.paused) {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            match conn.paused_until {
                Some(until) if all || until <= now => {
                    conn.paused_until = None;
                    self.update_interest(slot);
                }
                Some(_) => self.paused.push(slot),
                None => {}
            }
        }
    }

    /// No wait while left-over requests can run; else until the earliest connect-request
    /// deadline or end of a pause, or forever without one.
    fn wait_timeout_ms(&self) -> i32 {
        let runnable = |&slot: &usize| {
            self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.backlogged && c.paused_until.is_none())
        };
        if self.backlog.iter().any(runnable) {
            return 0;
        }
        if self.awaiting_requests == 0 && self.paused.is_empty() {
            return -1;
        }
        let now = Instant::now();
        self.conns
            .iter()
            .flatten()
            .filter_map(|c| match c.state {
                State::AwaitRequest { deadline } => Some(deadline),
                _ => c.paused_until,
            })
            .min()
            .map_or(-1, |t| t.saturating_duration_since(now).as_millis() as i32 + 1)
    }

    fn accept_all(&mut self, listener: usize) {
        // Bounded so a flood of connections cannot starve the sessions.
        for _ in 0..64 {
            let socket = match self.listeners[listener].accept() {
                Ok((socket, _)) => socket,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            if let Err(e) = self.add_conn(socket) {
                log::warn!("could not set up an accepted connection: {e}");
            }
        }
    }

    fn add_conn(&mut self, socket: Socket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        if self.open_conns >= MAX_SESSIONS {
            log::warn!("session limit {MAX_SESSIONS} reached, refusing a connection");
            // Best effort: the connection is dropped either way.
            let _ = socket.send_with_flags(&[reject_byte(REJECT_QUOTA)], libc::MSG_NOSIGNAL);
            return Ok(());
        }
        let local = socket.local_addr()?;
        if local.is_ipv4() || local.is_ipv6() {
            socket.set_tcp_nodelay(true)?;
        }
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        self.epoll.add(socket.as_raw_fd(), slot as u64, Interest::READ)?;
        self.conns[slot] = Some(Conn {
            socket,
            state: State::AwaitRequest {
                deadline: Instant::now() + CONNECT_REQUEST_TIMEOUT,
            },
            out: OutQueue::default(),
            interest: Interest::READ,
            dirty: false,
            backlogged: false,
            paused_until: None,
            congested: false,
        });
        self.open_conns += 1;
        self.awaiting_requests += 1;
        Ok(())
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

    fn expire_handshakes(&mut self, now: Instant) {
        if self.awaiting_requests == 0 {
            return;
        }
        let late: Vec<usize> = (0..self.conns.len())
            .filter(|&slot| {
                matches!(&self.conns[slot], Some(Conn { state: State::AwaitRequest { deadline }, .. }) if *deadline <= now)
            })
            .collect();
        for slot in late {
            log::info!("no connect request within {CONNECT_REQUEST_TIMEOUT:?}, closing");
            self.end_conn(slot);
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

    fn name_taken(&self, name: &[u8]) -> bool {
        self.node.private_name_in_use(name) || self.reserved_names.contains(name)
    }

    fn read_connect_request(&mut self, slot: usize) {
        let conn = self.conns[slot].as_mut().expect("readable connection");
        let fd = conn.socket.as_raw_fd();
        // Look first, then take exactly the request off the stream.
        let mut bytes = [0u8; MAX_CONNECT_REQUEST_LEN];
        let seen = match sys::recv(fd, &mut bytes, libc::MSG_PEEK) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        let len = connect_request_len(&bytes[..seen]).map_or(seen, |len| len.min(seen));
        if len > 0 && sys::recv(fd, &mut bytes[..len], 0).ok() != Some(len) {
            return self.end_conn(slot);
        }
        let answer = on_connect_request(&bytes[..len], &self.settings.auth, |n| self.name_taken(n));
        let (request, offer) = match answer {
            AfterRequest::Close => {
                log::info!("incomplete connect request, closing");
                return self.end_conn(slot);
            }
            AfterRequest::Refuse(reply) => {
                log::info!("connection refused with {reply:02x?}");
                self.send_handshake(slot, &reply);
                return self.end_conn(slot);
            }
            AfterRequest::OfferAuth { request, offer } => (request, Some(offer)),
            AfterRequest::Accept(request) => (request, None),
        };
        let name = if request.private_name.is_empty() {
            self.invent_name(fd)
        } else {
            request.private_name.clone()
        };
        self.awaiting_requests -= 1;
        self.reserved_names.insert(name.clone());
        let conn = self.conns[slot].as_mut().expect("connection");
        conn.state = State::AwaitAuthChoice {
            request: request.clone(),
            name: name.clone(),
        };
        match offer {
            Some(offer) => {
                if !self.send_handshake(slot, &offer) {
                    self.end_conn(slot);
                }
            }
            // Clients before 3.16 are accepted without negotiation.
            None => self.open(slot, request, name),
        }
    }

    fn read_auth_choice(&mut self, slot: usize) {
        let conn = self.conns[slot].as_mut().expect("readable connection");
        let mut choice = [0u8; AUTH_CHOICE_LEN];
        let got = match sys::recv(conn.socket.as_raw_fd(), &mut choice, 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        let State::AwaitAuthChoice { request, name } = &conn.state else {
            return;
        };
        let (request, name) = (request.clone(), name.clone());
        if got == 0 {
            return self.end_conn(slot);
        }
        match on_auth_choice(&choice[..got], &self.settings.auth) {
            Ok(()) => self.open(slot, request, name),
            Err(reject) => {
                log::info!("authentication refused for {}", String::from_utf8_lossy(&name));
                self.send_handshake(slot, &[reject]);
                self.end_conn(slot);
            }
        }
    }

    /// Accepts an authorised client: starts its session and sends the accept message.
    fn open(&mut self, slot: usize, request: ConnectRequest, name: Vec<u8>) {
        self.reserved_names.remove(&name);
        let opened = match self.node.open_session(&name, request.group_membership) {
            Ok(opened) => opened,
            Err(code) => {
                self.send_handshake(slot, &[reject_byte(code)]);
                return self.end_conn(slot);
            }
        };
        log::info!(
            "session {} opened (version {}, membership {}; {} sessions)",
            String::from_utf8_lossy(&opened.private_group),
            request.version,
            request.group_membership,
            self.node.session_count()
        );
        let accept = encode_accept(request.version, &opened.private_group);
        self.slot_of.insert(opened.id, slot);
        self.conns[slot].as_mut().expect("connection").state = State::Open {
            session: opened.id,
            private_group: opened.private_group,
            reader: Box::default(),
        };
        if !self.send_handshake(slot, &accept) {
            self.end_conn(slot);
        }
    }

    /// Writes a small handshake message at once (the socket buffer is empty at this stage);
    /// false if it did not all go.
    fn send_handshake(&mut self, slot: usize, bytes: &[u8]) -> bool {
        let conn = self.conns[slot].as_mut().expect("connection");
        conn.socket.send_with_flags(bytes, libc::MSG_NOSIGNAL).ok() == Some(bytes.len())
    }

    fn invent_name(&mut self, fd: RawFd) -> Vec<u8> {
        loop {
            // xorshift64: names only need to vary, not to be unpredictable.
            self.random ^= self.random << 13;
            self.random ^= self.random >> 7;
            self.random ^= self.random << 17;
            let name = invented_name((self.random >> 32) as u32, fd);
            if !self.name_taken(&name) {
                return name;
            }
        }
    }

    /// One turn of a session: reads from its socket if asked to, then handles up to
    /// REQUESTS_PER_TURN requests; pauses it when its messages met a congested receiver.
    fn handle_requests(&mut self, slot: usize, read_socket: bool) {
        let conn = self.conns[slot].as_mut().expect("connection in turn");
        let fd = conn.socket.as_raw_fd();
        let State::Open {
            session,
            private_group,
            reader,
        } = &mut conn.state
        else {
            return;
        };
        let session = *session;
        let mut closed = false;
        if read_socket {
            match sys::recv(fd, reader.space(), 0) {
                Ok(0) => closed = true,
                Ok(n) => reader.filled(n),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                    return
                }
                Err(e) => {
                    log::info!("read error on session {session:?}: {e}");
                    closed = true;
                }
            }
        }
        let (more, violation) =
            match reader.take_requests(private_group, REQUESTS_PER_TURN, &mut self.requests) {
                Ok(more) => (more, None),
                Err(e) => (
                    false,
                    Some((e, String::from_utf8_lossy(private_group).into_owned())),
                ),
            };
        if more && !conn.backlogged {
            self.backlog.push(slot);
        }
        conn.backlogged = more;
        self.congestion_seen = false;
        for request in self.requests.drain(..) {
            self.node
                .handle(Input::Request { session, request }, &mut self.outputs);
        }
        if let Some((e, name)) = violation {
            log::warn!("session {name}: malformed request ({e:?}), disconnecting it");
            return self.end_conn(slot);
        }
        if closed {
            return self.end_conn(slot);
        }
        self.dispatch();
        if self.congestion_seen {
            self.pause(slot);
        }
    }

    /// Carries out the node's outputs, telling it about connections that end meanwhile.
    fn dispatch(&mut self) {
        loop {
            for session in std::mem::take(&mut self.ended) {
                self.node.handle(Input::Closed { session }, &mut self.outputs);
            }
            if self.outputs.is_empty() {
                return;
            }
            let mut outputs = std::mem::take(&mut self.outputs);
            for output in outputs.drain(..) {
                match output {
                    Output::Deliver { session, frame } => self.queue(session, frame),
                    Output::End { session } => {
                        if let Some(slot) = self.slot_of.get(&session).copied() {
                            self.end_conn(slot);
                        }
                    }
                }
            }
            // Keep the allocation; anything queued meanwhile went to the fresh vector.
            outputs.append(&mut self.outputs);
            self.outputs = outputs;
        }
    }

    fn queue(&mut self, session: SessionId, frame: Frame) {
        let Some(slot) = self.slot_of.get(&session).copied() else {
            return;
        };
        let conn = self.conns[slot].as_mut().expect("connection of a session");
        conn.out.push(frame);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(slot);
        }
        let limit = self.settings.max_session_messages;
        if conn.out.len() >= (limit / 2).max(1) {
            self.congestion_seen = true;
            if !conn.congested {
                conn.congested = true;
                self.congested_conns += 1;
            }
        }
        if conn.out.len() > limit {
            self.flush(slot);
            if let Some(Conn {
                out,
                state: State::Open { private_group, .. },
                ..
            }) = &self.conns[slot]
            {
                if out.len() > limit {
                    log::warn!(
                        "session {} has {} undelivered messages (limit {limit}), disconnecting it",
                        String::from_utf8_lossy(private_group),
                        out.len()
                    );
                    self.end_conn(slot);
                }
            }
        }
    }

    fn flush_dirty(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            if let Some(conn) = self.conns[slot].as_mut() {
                conn.dirty = false;
                self.flush(slot);
            }
        }
        self.dispatch();
    }

    /// Writes as much queued output as the socket takes, then watches for room if some is left.
    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let mut broken = false;
        loop {
            let mut slices = [IoSlice::new(&[]); BATCH];
            let n = conn.out.slices(&mut slices);
            if n == 0 {
                break;
            }
            let offered: usize = slices[..n].iter().map(|s| s.len()).sum();
            match conn
                .socket
                .send_vectored_with_flags(&slices[..n], libc::MSG_NOSIGNAL)
            {
                Ok(written) => {
                    conn.out.consume(written);
                    if written < offered {
                        break; // the socket is full
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::info!("write error: {e}");
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            return self.end_conn(slot);
        }
        if conn.congested && conn.out.len() <= self.settings.max_session_messages / 4 {
            conn.congested = false;
            self.congested_conns -= 1;
        }
        self.update_interest(slot);
    }

    /// Watches a session's socket for reading unless it is paused, and for writing while
    /// output waits.
    fn update_interest(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let wanted = Interest {
            read: conn.paused_until.is_none(),
            write: !conn.out.is_empty(),
        };
        if wanted == conn.interest {
            return;
        }
        match self.epoll.modify(conn.socket.as_raw_fd(), slot as u64, wanted) {
            Ok(()) => conn.interest = wanted,
            Err(e) => {
                log::warn!("epoll modify failed: {e}");
                self.end_conn(slot);
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

fn unix_listener(path: &std::path::Path) -> io::Result<Socket> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    // Clients of any user may connect, as with the original.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    }
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn tcp_listener(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket
        .bind(&address.into())
        .map_err(|e| io::Error::new(e.kind(), format!("binding TCP {address}: {e}")))?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}
