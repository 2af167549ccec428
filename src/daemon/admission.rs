//! Letting clients in: accepting connections, the session limit, and the handshake's I/O
//! (the decisions are in `handshake`).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::handshake::{invented_name, on_auth_choice, on_connect_request, AfterRequest};
use super::outqueue::OutQueue;
use super::sys::{self, Interest};
use super::{Conn, Daemon, State, MAX_SESSIONS};
use crate::wire::handshake::{
    connect_request_len, encode_accept, reject_byte, ConnectRequest, AUTH_CHOICE_LEN, MAX_CONNECT_REQUEST_LEN,
};
use crate::wire::REJECT_QUOTA;

/// How long a new connection has to send its connect request.
const CONNECT_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

impl Daemon {
    pub(super) fn accept_all(&mut self, listener: usize) {
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
            stalled: false,
            congested: false,
        });
        self.open_conns += 1;
        self.awaiting_requests += 1;
        Ok(())
    }

    pub(super) fn expire_handshakes(&mut self, now: Instant) {
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

    fn name_taken(&self, name: &[u8]) -> bool {
        self.node.private_name_in_use(name) || self.reserved_names.contains(name)
    }

    pub(super) fn read_connect_request(&mut self, slot: usize) {
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

    pub(super) fn read_auth_choice(&mut self, slot: usize) {
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
}

pub(super) fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}
