//! Session traffic: each session's turn at having its requests handled, carrying out the
//! node's deliveries, batched writes, and the flow control between fast senders and slow
//! receivers.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::outqueue::BATCH;
use super::sys::{self, Interest};
use super::{Conn, Daemon, State};
use crate::groups::SessionId;
use crate::node::{Frame, Input, Output};
use crate::ring::Destination;

/// Most requests of one session handled before the other sessions get their turn (fewer
/// with a small MaxSessionMessages, so one turn cannot overfill a receiver on its own).
const REQUESTS_PER_TURN: usize = 64;
/// Longest wait of a sender for a congested receiver of its messages. A receiver that reads
/// nothing thus still reaches MaxSessionMessages and is cut off; one that reads slowly
/// slows its senders down instead.
const MAX_PAUSE: Duration = Duration::from_millis(100);

impl Daemon {
    /// Gives sessions with left-over requests their next turn.
    pub(super) fn run_backlog(&mut self) {
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

    /// Lets stalled sessions go on once the node takes requests again; their left-over
    /// requests get a turn.
    pub(super) fn resume_stalled(&mut self) {
        if self.stalled.is_empty() || !self.node.accepting_requests() {
            return;
        }
        for slot in std::mem::take(&mut self.stalled) {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            conn.stalled = false;
            if !conn.backlogged {
                conn.backlogged = true;
                self.backlog.push(slot);
            }
            self.update_interest(slot);
        }
    }

    pub(super) fn resume_paused(&mut self, now: Instant) {
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

    /// One turn of a session: reads from its socket if asked to, then handles up to
    /// REQUESTS_PER_TURN requests; pauses it when its messages met a congested receiver.
    pub(super) fn handle_requests(&mut self, slot: usize, read_socket: bool) {
        let accepting = self.node.accepting_requests();
        let conn = self.conns[slot].as_mut().expect("connection in turn");
        if !accepting {
            // Too much waits for the ring: this session's requests stay in its socket.
            if !conn.stalled {
                conn.stalled = true;
                self.stalled.push(slot);
                self.update_interest(slot);
            }
            return;
        }
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
        let turn = (self.settings.max_session_messages / 4).clamp(1, REQUESTS_PER_TURN);
        let (more, violation) = match reader.take_requests(private_group, turn, &mut self.requests) {
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
        let now = self.now();
        for request in self.requests.drain(..) {
            let input = Input::Request {
                session,
                request: &request,
            };
            self.node.handle(now, input, &mut self.outputs);
        }
        if let Some((e, name)) = &violation {
            log::warn!("session {name}: malformed request ({e:?}), disconnecting it");
        }
        let ending = closed || violation.is_some();
        if ending {
            self.end_conn(slot);
        }
        self.dispatch();
        if self.congestion_seen && !ending {
            self.pause(slot);
        }
    }

    /// Carries out the node's outputs, telling it about connections that end meanwhile.
    pub(super) fn dispatch(&mut self) {
        loop {
            let now = self.now();
            for session in std::mem::take(&mut self.ended) {
                self.node
                    .handle(now, Input::Closed { session }, &mut self.outputs);
            }
            if self.outputs.is_empty() {
                self.net.flush();
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
                    Output::Send { to, mut datagram } => {
                        if !self.net.send(now, to, &mut datagram) {
                            if let Destination::Daemon(id) = to {
                                log::warn!("datagram to unknown daemon {id:#x} dropped");
                            }
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

    /// Writes out everything queued this round, including the notices caused by connections
    /// that fail meanwhile.
    pub(super) fn flush_dirty(&mut self) {
        loop {
            self.dispatch();
            if self.dirty.is_empty() {
                return;
            }
            for slot in std::mem::take(&mut self.dirty) {
                if let Some(conn) = self.conns[slot].as_mut() {
                    conn.dirty = false;
                    self.flush(slot);
                }
            }
        }
    }

    /// Writes as much queued output as the socket takes, then watches for room if some is left.
    pub(super) fn flush(&mut self, slot: usize) {
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
            read: conn.paused_until.is_none() && !conn.stalled,
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
