//! Receiving: one whole message per call, straight into the caller's buffers (spec 4.4-4.6).
//!
//! A call reads the 48-byte header, then everything else of that message with one `readv` into
//! the caller's names and body buffers (bytes with no room go to a scratch sink), and never a
//! byte of the next message: applications wait on the descriptor between calls.

use super::error::Error;
use super::io::{recv_all, Target};
use super::mailbox::Mailbox;
use super::session::{self, Session};
use crate::wire::header::{mess_type_from_hint, read_i32};
use crate::wire::membership::swap_regular_body;
use crate::wire::name::name_text;
use crate::wire::{
    Header, Name, BUFFER_TOO_SHORT, CONNECTION_CLOSED, ENDIAN_RESERVED, GROUPS_TOO_SHORT, HEADER_LEN,
    ILLEGAL_MESSAGE, MAX_CLIENT_SCATTER_ELEMENTS, NAME_LEN, REGULAR_MESS, REG_MEMB_MESS, REJECT_MESS,
};

/// A header taken from the stream whose message is still there (kept by a short-buffer
/// receive for the next call).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReceivedHeader {
    header: Header,
    /// The daemon wrote in the other byte order.
    foreign: bool,
}

/// How a receive ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The whole message is in the caller's buffers (names possibly cut with `drop_recv`).
    Complete,
    /// `drop_recv`: the body did not fit; its first bytes are stored, the rest was dropped.
    BodyCut,
    /// No `drop_recv` and the message did not fit: nothing was consumed but the header, which
    /// the next receive on this mailbox reuses. `groups`: the names were what did not fit.
    TooShort { groups: bool },
}

/// What a receive reports: the out-parameters of `SP_receive`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub outcome: Outcome,
    /// Message type without the byte-order marker (`old_type | REJECT_MESS` for rejects).
    pub service: u32,
    /// Sender's private group, or the group of a membership message (NUL-padded).
    pub sender: Name,
    /// Names in the message; negative when they did not fit (`-count`); 0 if `TooShort` by body.
    pub num_groups: i32,
    /// The sender's value; for membership the receiver's index in the member list, or -1.
    pub mess_type: i16,
    /// 1 when the sender used the other byte order; with `TooShort`, `-data_len` if the body
    /// did not fit, else 0.
    pub endian_mismatch: i32,
    /// Length of the message body.
    pub data_len: i32,
}

impl Received {
    /// The return value of `SP_receive`: the body length, or `BUFFER_TOO_SHORT` /
    /// `GROUPS_TOO_SHORT`.
    pub fn code(&self) -> i32 {
        match self.outcome {
            Outcome::Complete => self.data_len,
            Outcome::BodyCut | Outcome::TooShort { groups: false } => BUFFER_TOO_SHORT,
            Outcome::TooShort { groups: true } => GROUPS_TOO_SHORT,
        }
    }
}

/// Data and reject messages carry the application's `mess_type`; membership kinds do not.
fn carries_mess_type(msg_type: u32) -> bool {
    msg_type & (REGULAR_MESS | REJECT_MESS) != 0
}

/// A name field as `strncpy` leaves it: the text, then zeros.
fn clean_name(field: &Name) -> Name {
    let mut out = [0u8; NAME_LEN];
    let text = name_text(field);
    out[..text.len()].copy_from_slice(text);
    out
}

impl Mailbox {
    /// Receives one message, blocking until it has arrived whole. Names go to `groups`, the
    /// body to the pieces of `body` in order. `drop_recv` selects what happens when they do not
    /// fit (spec 4.5): store what fits and drop the rest, or leave the message for a retry.
    pub fn receive(
        self,
        drop_recv: bool,
        groups: &mut [Name],
        body: &mut [&mut [u8]],
    ) -> Result<Received, Error> {
        let session = session::lookup(self.fd())?;
        session.check_usable()?;
        let mut saved = session.saved_header.lock();
        // Killed or broken by another thread while this one waited.
        session.check_usable()?;
        let pending = match saved.take() {
            Some(pending) => pending,
            None => read_header(&session)?,
        };
        let h = pending.header;
        if h.num_groups < 0 || h.data_len < 0 {
            // Nothing tells where the next message starts.
            session.mark_broken();
            return Err(Error::from_code(ILLEGAL_MESSAGE));
        }
        let num_groups = h.num_groups as usize;
        let data_len = h.data_len as usize;
        let capacity: usize = body.iter().map(|piece| piece.len()).sum();
        let groups_fit = num_groups <= groups.len();
        let body_fits = data_len <= capacity;
        if !(drop_recv || groups_fit && body_fits) {
            *saved = Some(pending);
            return Ok(Received {
                outcome: Outcome::TooShort { groups: !groups_fit },
                service: h.msg_type,
                sender: clean_name(&h.sender),
                num_groups: if groups_fit { 0 } else { -h.num_groups },
                mess_type: if carries_mess_type(h.msg_type) {
                    mess_type_from_hint(h.hint).0
                } else {
                    0
                },
                endian_mismatch: if body_fits { 0 } else { -h.data_len },
                data_len: h.data_len,
            });
        }
        // Still under the receive lock: the rest of this message is this caller's alone.
        let received = read_rest(&session, pending, groups, body);
        drop(saved);
        received
    }
}

fn read_header(session: &Session) -> Result<ReceivedHeader, Error> {
    let mut bytes = [0u8; HEADER_LEN];
    if let Err(e) = recv_all(session.fd, &mut [Target::Into(&mut bytes)], None) {
        return Err(broken(session, "header", e));
    }
    let (header, foreign) = Header::decode(&bytes);
    Ok(ReceivedHeader { header, foreign })
}

fn broken(session: &Session, what: &str, e: std::io::Error) -> Error {
    log::debug!("receive on mailbox {}: reading {what} failed: {e}", session.fd);
    session.mark_broken();
    Error::from_code(CONNECTION_CLOSED)
}

/// Reads the rest of the message of `pending` (which fits, or `drop_recv` is on) and reports it.
fn read_rest(
    session: &Session,
    pending: ReceivedHeader,
    groups: &mut [Name],
    body: &mut [&mut [u8]],
) -> Result<Received, Error> {
    let ReceivedHeader { header: h, foreign } = pending;
    let num_groups = h.num_groups as usize;
    let data_len = h.data_len as usize;
    let stored_groups = num_groups.min(groups.len());
    let is_reject = h.msg_type & REJECT_MESS != 0;
    let mut old_type = [0u8; 4];

    let stored_body = {
        let needed = 4 + body.len();
        let mut on_stack;
        let mut on_heap;
        let slots: &mut [Target<'_>] = if needed <= 4 + MAX_CLIENT_SCATTER_ELEMENTS {
            on_stack =
                std::array::from_fn::<_, { 4 + MAX_CLIENT_SCATTER_ELEMENTS }, _>(|_| Target::Discard(0));
            &mut on_stack
        } else {
            on_heap = (0..needed).map(|_| Target::Discard(0)).collect::<Vec<_>>();
            &mut on_heap
        };
        let mut planned = Plan { slots, count: 0 };
        if is_reject {
            planned.push(Target::Into(&mut old_type));
        }
        planned.push(Target::Into(groups[..stored_groups].as_flattened_mut()));
        planned.push(Target::Discard((num_groups - stored_groups) * NAME_LEN));
        let mut left = data_len;
        for piece in body.iter_mut() {
            let take = left.min(piece.len());
            planned.push(Target::Into(&mut piece[..take]));
            left -= take;
        }
        planned.push(Target::Discard(left));
        let count = planned.count;
        if let Err(e) = recv_all(session.fd, &mut planned.slots[..count], None) {
            return Err(broken(session, "message", e));
        }
        data_len - left
    };

    let mut mess_type = -1;
    let mut endian_mismatch = 0;
    if carries_mess_type(h.msg_type) {
        let (value, other_order) = mess_type_from_hint(h.hint);
        mess_type = value;
        endian_mismatch = other_order as i32;
    }
    let is_reg_memb = h.msg_type & REG_MEMB_MESS != 0;
    if is_reg_memb && stored_groups == num_groups {
        let own = name_text(&session.private_group);
        if let Some(index) = groups[..num_groups].iter().position(|g| name_text(g) == own) {
            mess_type = index as i16;
        }
    }
    if is_reg_memb && foreign {
        swap_stored_body(body, stored_body);
    }
    let service = if is_reject {
        (read_i32(&old_type, 0, foreign) as u32 | REJECT_MESS) & !ENDIAN_RESERVED
    } else {
        h.msg_type
    };
    Ok(Received {
        outcome: if stored_body < data_len {
            Outcome::BodyCut
        } else {
            Outcome::Complete
        },
        service,
        sender: clean_name(&h.sender),
        num_groups: if stored_groups < num_groups {
            -h.num_groups
        } else {
            h.num_groups
        },
        mess_type,
        endian_mismatch,
        data_len: h.data_len,
    })
}

/// Read targets collected in order into a fixed set of slots.
struct Plan<'s, 'a> {
    slots: &'s mut [Target<'a>],
    count: usize,
}

impl<'a> Plan<'_, 'a> {
    fn push(&mut self, target: Target<'a>) {
        self.slots[self.count] = target;
        self.count += 1;
    }
}

/// Brings the stored part of a foreign-order regular membership body into this host's order.
fn swap_stored_body(body: &mut [&mut [u8]], stored: usize) {
    match body.first_mut() {
        Some(first) if first.len() >= stored => swap_regular_body(&mut first[..stored]),
        _ => {
            // Spread over several pieces (rare: only with a daemon of the other byte order).
            let mut joined = Vec::with_capacity(stored);
            for piece in body.iter() {
                joined.extend_from_slice(&piece[..piece.len().min(stored - joined.len())]);
            }
            swap_regular_body(&mut joined);
            let mut rest = &joined[..];
            for piece in body.iter_mut() {
                let n = piece.len().min(rest.len());
                piece[..n].copy_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::session::tests::fake_session;
    use crate::wire::header::{hint_for_mess_type, DAEMON_HINT};
    use crate::wire::membership::{encode_regular_body, GroupId};
    use crate::wire::name::name_field;
    use crate::wire::{
        AGREED_MESS, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, ILLEGAL_SESSION, NET_ERROR_ON_SESSION, SAFE_MESS,
        TRANSITION_MESS,
    };
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    const ME: &[u8] = b"#alice#localhost";

    fn message(msg_type: u32, sender: &[u8], groups: &[&[u8]], hint: u32, body: &[u8]) -> Vec<u8> {
        let h = Header {
            msg_type,
            sender: name_field(sender),
            num_groups: groups.len() as i32,
            hint,
            data_len: body.len() as i32,
        };
        let mut out = h.encode().to_vec();
        for g in groups {
            out.extend_from_slice(&name_field(g));
        }
        out.extend_from_slice(body);
        out
    }

    fn hello() -> Vec<u8> {
        message(AGREED_MESS, ME, &[b"g1"], hint_for_mess_type(7), b"hello")
    }

    struct Buffers {
        groups: [Name; 4],
        body: [u8; 64],
    }

    fn buffers() -> Buffers {
        Buffers {
            groups: [[0xaa; NAME_LEN]; 4],
            body: [0xaa; 64],
        }
    }

    fn receive(
        mbox: Mailbox,
        drop_recv: bool,
        b: &mut Buffers,
        max_groups: usize,
        max_len: usize,
    ) -> Result<Received, Error> {
        mbox.receive(
            drop_recv,
            &mut b.groups[..max_groups],
            &mut [&mut b.body[..max_len]],
        )
    }

    fn session_with(bytes: &[u8]) -> (Mailbox, UnixStream) {
        let (fd, mut daemon) = fake_session(ME);
        daemon.write_all(bytes).unwrap();
        (Mailbox::from_fd(fd), daemon)
    }

    #[test]
    fn data_message_and_exactly_one_read() {
        let mut two = hello();
        two.extend_from_slice(&message(
            SAFE_MESS,
            b"#bob#x",
            &[b"g1", b"g2"],
            hint_for_mess_type(-2),
            b"!",
        ));
        let (mbox, _daemon) = session_with(&two);
        let mut b = buffers();
        let r = receive(mbox, false, &mut b, 4, 64).unwrap();
        assert_eq!(r.code(), 5);
        assert_eq!(
            (r.service, r.num_groups, r.mess_type, r.endian_mismatch),
            (AGREED_MESS, 1, 7, 0)
        );
        assert_eq!(r.sender, name_field(ME));
        assert_eq!(b.groups[0], name_field(b"g1"));
        assert_eq!(&b.body[..6], b"hello\xaa");
        // The second message is still entirely in the socket.
        assert_eq!(mbox.poll(), Ok(48 + 64 + 1));
        let r = receive(mbox, false, &mut b, 4, 64).unwrap();
        assert_eq!(
            (r.code(), r.service, r.num_groups, r.mess_type),
            (1, SAFE_MESS, 2, -2)
        );
        assert_eq!(mbox.poll(), Ok(0));
        mbox.kill();
    }

    #[test]
    fn membership_kinds() {
        let join = encode_regular_body(
            GroupId {
                proc_id: 1,
                time: 2,
                index: 1,
            },
            &[&[name_field(ME)]],
            0,
        );
        let mut bytes = message(
            REG_MEMB_MESS | CAUSED_BY_JOIN,
            b"g1",
            &[b"#a#localhost", ME],
            DAEMON_HINT,
            &join,
        );
        bytes.extend_from_slice(&message(
            TRANSITION_MESS,
            b"g1",
            &[],
            DAEMON_HINT,
            &GroupId::default().encode(),
        ));
        bytes.extend_from_slice(&message(CAUSED_BY_LEAVE, b"g1", &[], DAEMON_HINT, b""));
        let (mbox, _daemon) = session_with(&bytes);
        let mut b = buffers();
        let r = receive(mbox, false, &mut b, 4, 64).unwrap();
        assert_eq!(
            (r.code(), r.service, r.num_groups, r.mess_type, r.endian_mismatch),
            (56, 0x1100, 2, 1, 0)
        );
        assert_eq!(r.sender, name_field(b"g1"));
        assert_eq!(&b.body[..56], &join[..]);
        let r = receive(mbox, false, &mut b, 4, 64).unwrap();
        assert_eq!(
            (r.code(), r.service, r.num_groups, r.mess_type),
            (12, TRANSITION_MESS, 0, -1)
        );
        let r = receive(mbox, false, &mut b, 0, 0).unwrap();
        assert_eq!(
            (r.code(), r.service, r.num_groups, r.mess_type),
            (0, CAUSED_BY_LEAVE, 0, -1)
        );
        mbox.kill();
    }

    #[test]
    fn short_buffers_keep_the_message() {
        let (mbox, _daemon) = session_with(&hello());
        let mut b = buffers();
        let r = receive(mbox, false, &mut b, 0, 2).unwrap();
        assert_eq!(r.outcome, Outcome::TooShort { groups: true });
        assert_eq!(
            (r.code(), r.num_groups, r.endian_mismatch, r.mess_type),
            (GROUPS_TOO_SHORT, -1, -5, 7)
        );
        assert_eq!(r.sender, name_field(ME));
        assert_eq!(b.body[0], 0xaa);
        let r = receive(mbox, false, &mut b, 1, 4).unwrap();
        assert_eq!(
            (r.code(), r.num_groups, r.endian_mismatch),
            (BUFFER_TOO_SHORT, 0, -5)
        );
        assert_eq!(mbox.poll(), Ok(37), "only the header was consumed");
        let r = receive(mbox, false, &mut b, 1, 5).unwrap();
        assert_eq!((r.code(), r.num_groups), (5, 1));
        assert_eq!(&b.body[..5], b"hello");
        mbox.kill();
    }

    #[test]
    fn too_short_membership_reports_mess_type_zero() {
        let join = encode_regular_body(GroupId::default(), &[&[name_field(ME)]], 0);
        let (mbox, _daemon) = session_with(&message(0x1100, b"g1", &[ME], DAEMON_HINT, &join));
        let mut b = buffers();
        let r = receive(mbox, false, &mut b, 1, 10).unwrap();
        assert_eq!((r.code(), r.mess_type, r.service), (BUFFER_TOO_SHORT, 0, 0x1100));
        mbox.kill();
    }

    #[test]
    fn drop_recv_cuts_and_consumes() {
        let mut bytes = message(
            AGREED_MESS,
            ME,
            &[b"g1", b"g2", b"g3"],
            hint_for_mess_type(3),
            b"0123456789",
        );
        bytes.extend_from_slice(&hello());
        bytes.extend_from_slice(&hello());
        let (mbox, _daemon) = session_with(&bytes);
        let mut b = buffers();
        // Names cut, body fits: still the body length.
        let r = receive(mbox, true, &mut b, 2, 64).unwrap();
        assert_eq!(
            (r.code(), r.num_groups, r.mess_type, r.outcome),
            (10, -3, 3, Outcome::Complete)
        );
        assert_eq!(b.groups[1], name_field(b"g2"));
        assert_eq!(b.groups[2], [0xaa; NAME_LEN]);
        assert_eq!(&b.body[..10], b"0123456789");
        // Saved by a short receive, then retried with DROP_RECV that still cuts: consumed, and
        // the saved header is gone (the original re-used it here).
        assert_eq!(
            receive(mbox, false, &mut b, 1, 3).unwrap().code(),
            BUFFER_TOO_SHORT
        );
        let r = receive(mbox, true, &mut b, 1, 3).unwrap();
        assert_eq!(
            (r.code(), r.num_groups, r.outcome),
            (BUFFER_TOO_SHORT, 1, Outcome::BodyCut)
        );
        assert_eq!(&b.body[..3], b"hel");
        let r = receive(mbox, false, &mut b, 1, 64).unwrap();
        assert_eq!((r.code(), r.service), (5, AGREED_MESS));
        assert_eq!(mbox.poll(), Ok(0));
        mbox.kill();
    }

    #[test]
    fn scatter_pieces_fill_in_order() {
        let (mbox, _daemon) = session_with(&message(AGREED_MESS, ME, &[b"g"], 0x80, b"abcdefghij"));
        let (mut p1, mut p2, mut p3) = ([0u8; 3], [0u8; 0], [0u8; 9]);
        let mut groups = [[0u8; NAME_LEN]; 1];
        let r = mbox
            .receive(false, &mut groups, &mut [&mut p1, &mut p2, &mut p3])
            .unwrap();
        assert_eq!(r.code(), 10);
        assert_eq!((&p1, &p3[..7]), (b"abc", &b"defghij"[..]));
        mbox.kill();
    }

    #[test]
    fn reject_and_foreign_order() {
        let mut reject = message(REJECT_MESS, ME, &[b"g1", ME], hint_for_mess_type(5), b"xy");
        reject.splice(48..48, CAUSED_BY_JOIN.to_ne_bytes());
        let (mbox, _daemon) = session_with(&reject);
        let mut b = buffers();
        let r = receive(mbox, false, &mut b, 4, 64).unwrap();
        assert_eq!(
            (r.code(), r.service, r.num_groups, r.mess_type),
            (2, 0x0040_0100, 2, 5)
        );
        assert_eq!(b.groups[1], name_field(ME));
        mbox.kill();

        // A big-endian daemon's join notice as seen by this (little-endian) host.
        let body = encode_regular_body(
            GroupId {
                proc_id: 1,
                time: 2,
                index: 3,
            },
            &[&[name_field(ME)]],
            0,
        );
        let mut foreign_body = body.clone();
        for at in [0, 4, 8, 12, 16, 20] {
            foreign_body[at..at + 4].reverse();
        }
        let mut bytes = message(0x1100, b"g1", &[ME], 0, &foreign_body);
        for at in [0, 36, 40, 44] {
            bytes[at..at + 4].reverse();
        }
        // A big-endian writer clears the marker bits.
        bytes[0] &= 0x7f;
        bytes[3] &= 0x7f;
        let (mbox, _daemon) = session_with(&bytes);
        let (mut p1, mut p2) = ([0u8; 7], [0u8; 60]);
        let mut groups = [[0u8; NAME_LEN]; 2];
        let r = mbox.receive(false, &mut groups, &mut [&mut p1, &mut p2]).unwrap();
        assert_eq!(
            (r.code(), r.service, r.mess_type, r.endian_mismatch),
            (56, 0x1100, 0, 0)
        );
        assert_eq!(&p1[..], &body[..7]);
        assert_eq!(&p2[..49], &body[7..]);
        mbox.kill();
    }

    #[test]
    fn failures() {
        let mut bad = hello();
        bad[36..40].copy_from_slice(&(-1i32).to_ne_bytes());
        let (mbox, _daemon) = session_with(&bad);
        let mut b = buffers();
        assert_eq!(
            receive(mbox, false, &mut b, 4, 64),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
        assert_eq!(
            receive(mbox, false, &mut b, 4, 64),
            Err(Error::from_code(NET_ERROR_ON_SESSION))
        );
        mbox.kill();

        let (mbox, daemon) = session_with(&hello()[..60]);
        drop(daemon);
        assert_eq!(
            receive(mbox, false, &mut b, 4, 64),
            Err(Error::from_code(CONNECTION_CLOSED))
        );
        assert_eq!(
            receive(mbox, false, &mut b, 4, 64),
            Err(Error::from_code(NET_ERROR_ON_SESSION))
        );
        assert_eq!(mbox.poll(), Ok(0));
        mbox.kill();
        assert_eq!(
            receive(mbox, false, &mut b, 4, 64),
            Err(Error::from_code(ILLEGAL_SESSION))
        );
        assert_eq!(mbox.poll(), Err(Error::from_code(ILLEGAL_SESSION)));
    }

    #[test]
    fn concurrent_receivers_get_whole_distinct_messages() {
        let (fd, mut daemon) = fake_session(ME);
        let mbox = Mailbox::from_fd(fd);
        let writer = std::thread::spawn(move || {
            for i in 0..200u32 {
                let body = vec![i as u8; 1 + (i as usize * 37) % 3000];
                daemon
                    .write_all(&message(
                        AGREED_MESS,
                        ME,
                        &[b"g"],
                        hint_for_mess_type(i as i16),
                        &body,
                    ))
                    .unwrap();
            }
            daemon
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut groups = [[0u8; NAME_LEN]; 1];
                    let mut body = vec![0u8; 4000];
                    for _ in 0..100 {
                        let r = mbox.receive(false, &mut groups, &mut [&mut body[..]]).unwrap();
                        let i = r.mess_type as u32;
                        assert_eq!(r.data_len as usize, 1 + (i as usize * 37) % 3000);
                        assert!(body[..r.data_len as usize].iter().all(|&b| b == i as u8));
                        seen.push(i);
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<u32> = readers.into_iter().flat_map(|r| r.join().unwrap()).collect();
        let _daemon = writer.join().unwrap();
        all.sort();
        assert_eq!(all, (0..200).collect::<Vec<_>>());
        mbox.kill();
    }
}
