//! Sending: multicasts and the join, leave and kill requests (spec 3.5 and 5.2). Each message
//! (header, names and payload pieces) goes out with one `sendmsg` under the mailbox's send lock,
//! so messages of different threads never interleave and nothing is copied.

use super::error::Error;
use super::io::send_all;
use super::mailbox::Mailbox;
use super::session::{self, Session};
use crate::wire::header::hint_for_mess_type;
use crate::wire::name::{is_legal_group_name, name_field};
use crate::wire::{
    Header, Name, CONNECTION_CLOSED, ILLEGAL_GROUP, ILLEGAL_SERVICE, JOIN_MESS, KILL_MESS, LEAVE_MESS,
    MAX_CLIENT_MESSAGE, MAX_CLIENT_SCATTER_ELEMENTS, MESSAGE_TOO_LONG, NAME_LEN, REGULAR_MESS,
};

impl Mailbox {
    /// Sends `payload` (the concatenation of its pieces) to one group; the name is cut to 31
    /// bytes. Returns the payload length. `service` needs at least one service bit; its other
    /// bits are passed on unchanged.
    pub fn multicast(
        self,
        service: u32,
        group: &[u8],
        mess_type: i16,
        payload: &[&[u8]],
    ) -> Result<usize, Error> {
        self.multigroup_multicast(service, &[name_field(group)], mess_type, payload)
    }

    /// Sends `payload` to every group in `groups`; the name fields are sent as they are.
    pub fn multigroup_multicast(
        self,
        service: u32,
        groups: &[Name],
        mess_type: i16,
        payload: &[&[u8]],
    ) -> Result<usize, Error> {
        if service & REGULAR_MESS == 0 {
            return Err(Error::from_code(ILLEGAL_SERVICE));
        }
        send_message(&*session::lookup(self.fd())?, service, groups, mess_type, payload)
    }

    /// Asks the daemon to add this session to `group` (1..31 bytes from `$` to `~`).
    pub fn join(self, group: &[u8]) -> Result<(), Error> {
        self.group_request(JOIN_MESS, group)
    }

    /// Asks the daemon to remove this session from `group`.
    pub fn leave(self, group: &[u8]) -> Result<(), Error> {
        self.group_request(LEAVE_MESS, group)
    }

    fn group_request(self, request: u32, group: &[u8]) -> Result<(), Error> {
        if !is_legal_group_name(group) {
            return Err(Error::from_code(ILLEGAL_GROUP));
        }
        send_message(
            &*session::lookup(self.fd())?,
            request,
            &[name_field(group)],
            0,
            &[],
        )?;
        Ok(())
    }

    /// Tells the daemon the session ends, then closes it (`kill`). A failure to tell is
    /// ignored; only an unknown mailbox is an error.
    pub fn disconnect(self) -> Result<(), Error> {
        let session = session::lookup(self.fd())?;
        if let Err(e) = send_message(&session, KILL_MESS, &[session.private_group], 0, &[]) {
            log::debug!("disconnect: kill request not sent: {e}");
        }
        self.kill();
        Ok(())
    }
}

/// Frames and writes one message; returns the payload length. Checks in the order of spec 5.2
/// (after the caller's service check): session state, size, then the write.
fn send_message(
    session: &Session,
    msg_type: u32,
    groups: &[Name],
    mess_type: i16,
    payload: &[&[u8]],
) -> Result<usize, Error> {
    session.check_usable()?;
    let data_len: usize = payload.iter().map(|p| p.len()).sum();
    let names = groups.as_flattened();
    if data_len as u64 + names.len() as u64 > MAX_CLIENT_MESSAGE as u64 {
        return Err(Error::from_code(MESSAGE_TOO_LONG));
    }
    let header = Header {
        msg_type,
        sender: session.private_group,
        num_groups: (names.len() / NAME_LEN) as i32,
        hint: hint_for_mess_type(mess_type),
        data_len: data_len as i32,
    }
    .encode();

    let mut on_stack: [&[u8]; 2 + MAX_CLIENT_SCATTER_ELEMENTS] = [&[]; 2 + MAX_CLIENT_SCATTER_ELEMENTS];
    let on_heap: Vec<&[u8]>;
    let pieces: &[&[u8]] = if payload.len() <= MAX_CLIENT_SCATTER_ELEMENTS {
        on_stack[0] = &header;
        on_stack[1] = names;
        on_stack[2..2 + payload.len()].copy_from_slice(payload);
        &on_stack[..2 + payload.len()]
    } else {
        on_heap = [&header[..], names]
            .into_iter()
            .chain(payload.iter().copied())
            .collect();
        &on_heap
    };

    let _sending = session.send_lock.lock();
    // Killed or broken by another thread while this one waited.
    session.check_usable()?;
    if let Err(e) = send_all(session.fd, pieces, None) {
        log::debug!("send on mailbox {} failed: {e}", session.fd);
        session.mark_broken();
        return Err(Error::from_code(CONNECTION_CLOSED));
    }
    Ok(data_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::session::tests::fake_session;
    use crate::wire::request::{classify_request, RequestKind};
    use crate::wire::{
        AGREED_MESS, HEADER_LEN, ILLEGAL_SESSION, NET_ERROR_ON_SESSION, SAFE_MESS, SELF_DISCARD,
    };
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    fn read_message(daemon: &mut UnixStream) -> (Header, Vec<u8>) {
        let mut head = [0u8; HEADER_LEN];
        daemon.read_exact(&mut head).unwrap();
        let (h, foreign) = Header::decode(&head);
        assert!(!foreign);
        let mut rest = vec![0u8; h.num_groups as usize * NAME_LEN + h.data_len as usize];
        daemon.read_exact(&mut rest).unwrap();
        (h, rest)
    }

    #[test]
    fn join_vector_and_requests() {
        let (fd, mut daemon) = fake_session(b"#alice#localhost");
        let mbox = Mailbox::from_fd(fd);
        mbox.join(b"g1").unwrap();
        let mut bytes = [0u8; 80];
        daemon.read_exact(&mut bytes).unwrap();
        // Spec section 8: the join of g1 by #alice#localhost.
        assert_eq!(&bytes[0..4], &[0x80, 0x00, 0x01, 0x80]);
        assert_eq!(&bytes[4..21], b"#alice#localhost\0");
        assert_eq!(&bytes[36..48], &[1, 0, 0, 0, 0x80, 0, 0, 0x80, 0, 0, 0, 0]);
        assert_eq!(&bytes[48..51], b"g1\0");
        assert!(bytes[51..].iter().all(|&b| b == 0));

        mbox.leave(b"g1").unwrap();
        let (h, _) = read_message(&mut daemon);
        assert_eq!(classify_request(&h, b"#alice#localhost"), Ok(RequestKind::Leave));
        for bad in [&b""[..], b"a b", &[b'x'; 32], b"caf\xc3\xa9"] {
            assert_eq!(mbox.join(bad), Err(Error::from_code(ILLEGAL_GROUP)));
        }
        mbox.disconnect().unwrap();
        let (h, rest) = read_message(&mut daemon);
        assert_eq!(classify_request(&h, b"#alice#localhost"), Ok(RequestKind::Kill));
        assert_eq!(&rest[..17], b"#alice#localhost\0");
        let mut eof = [0u8; 1];
        assert_eq!(daemon.read(&mut eof).unwrap(), 0);
        assert_eq!(mbox.disconnect(), Err(Error::from_code(ILLEGAL_SESSION)));
    }

    #[test]
    fn multicast_vector_and_pieces() {
        let (fd, mut daemon) = fake_session(b"#alice#localhost");
        let mbox = Mailbox::from_fd(fd);
        assert_eq!(mbox.multicast(AGREED_MESS, b"g1", 7, &[b"hel", b"lo"]), Ok(5));
        let mut bytes = [0u8; 85];
        daemon.read_exact(&mut bytes).unwrap();
        assert_eq!(&bytes[0..4], &[0x90, 0, 0, 0x80]);
        assert_eq!(&bytes[36..48], &[1, 0, 0, 0, 0x80, 7, 0, 0x80, 5, 0, 0, 0]);
        assert_eq!(&bytes[48..51], b"g1\0");
        assert_eq!(&bytes[80..], b"hello");

        let mut groups = [name_field(b"a"), name_field(b"b")];
        groups[1][20] = 0x55; // bytes after the NUL travel unchanged
        let many: Vec<&[u8]> = vec![b"x"; 150];
        assert_eq!(
            mbox.multigroup_multicast(SAFE_MESS | SELF_DISCARD, &groups, -2, &many),
            Ok(150)
        );
        let (h, rest) = read_message(&mut daemon);
        assert_eq!(
            (h.msg_type, h.num_groups, h.data_len),
            (SAFE_MESS | SELF_DISCARD, 2, 150)
        );
        assert_eq!(h.hint.to_le_bytes(), [0x80, 0xfe, 0xff, 0x80]);
        assert_eq!(rest[32 + 20], 0x55);
        assert!(rest[64..].iter().all(|&b| b == b'x'));
        mbox.kill();
    }

    #[test]
    fn checks_in_order() {
        let (fd, daemon) = fake_session(b"#bob#localhost");
        let mbox = Mailbox::from_fd(fd);
        let err = |code| Err(Error::from_code(code));
        assert_eq!(mbox.multicast(0x40, b"g", 0, &[]), err(ILLEGAL_SERVICE));
        let big = vec![0u8; 144_000 - 31];
        assert_eq!(
            mbox.multicast(AGREED_MESS, b"g", 0, &[&big]),
            err(MESSAGE_TOO_LONG)
        );
        let bigger = vec![0u8; 144_001];
        assert_eq!(
            mbox.multigroup_multicast(AGREED_MESS, &[], 0, &[&bigger]),
            err(MESSAGE_TOO_LONG)
        );
        drop(daemon);
        assert_eq!(
            mbox.multicast(AGREED_MESS, b"g", 0, &[b"x"]),
            err(CONNECTION_CLOSED)
        );
        assert_eq!(
            mbox.multicast(AGREED_MESS, b"g", 0, &[b"x"]),
            err(NET_ERROR_ON_SESSION)
        );
        assert_eq!(mbox.multicast(0, b"g", 0, &[b"x"]), err(ILLEGAL_SERVICE));
        assert_eq!(mbox.join(b"g"), Err(Error::from_code(NET_ERROR_ON_SESSION)));
        assert_eq!(mbox.disconnect(), Ok(()));
        assert_eq!(
            mbox.multicast(AGREED_MESS, b"g", 0, &[b"x"]),
            err(ILLEGAL_SESSION)
        );
    }
}
