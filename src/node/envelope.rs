//! The daemon-to-daemon envelope of an ordered event: what one daemon submits to the ring and
//! every daemon decodes on delivery. Peers may run on hosts of either byte order, so integers
//! are big-endian; the client's hint word travels as its four bytes, untouched.
//!
//! Layout (every envelope starts with a kind byte; nothing may follow the last field):
//!
//! | Kind | Fields |
//! |---|---|
//! | 1 join, 2 leave | u16 member daemon index, 32-byte member private group, 32-byte group |
//! | 3 disconnect | u16 member daemon index, 32-byte member private group |
//! | 4 data | u16 sender daemon index, 32-byte sender private group, then the client's header: u32 type, 32-byte sender field, u32 num_groups, 4 hint bytes as written, u32 data_len; then num_groups 32-byte names and data_len payload bytes as the client sent them |
//! | 5 group state | the group-state message of the sending daemon (see `groups`) |
//!
//! The member's daemon index must be the delivering daemon's own: a daemon speaks only for its
//! sessions.

use crate::groups::{DaemonIndex, MemberId};
use crate::wire::name::name_text;
use crate::wire::request::{classify_request, RequestKind};
use crate::wire::{Header, Name, NAME_LEN};

const JOIN: u8 = 1;
const LEAVE: u8 = 2;
const DISCONNECT: u8 = 3;
const DATA: u8 = 4;
const GROUP_STATE: u8 = 5;

/// Kind byte, daemon index and private group.
const MEMBER_LEN: usize = 1 + 2 + NAME_LEN;
/// Type, sender field, num_groups, hint, data_len.
const CLIENT_HEADER_LEN: usize = 4 + NAME_LEN + 4 + 4 + 4;

/// A decoded envelope; names and payloads point into the delivered bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope<'a> {
    Join {
        member: MemberId,
        group: &'a Name,
    },
    Leave {
        member: MemberId,
        group: &'a Name,
    },
    Disconnect {
        member: MemberId,
    },
    Data {
        sender: MemberId,
        header: Header,
        /// `num_groups` name fields.
        names: &'a [u8],
        payload: &'a [u8],
    },
    GroupState(&'a [u8]),
}

/// Why a peer's envelope was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    Empty,
    UnknownKind(u8),
    /// Shorter or longer than its fields say.
    Length,
    /// A member of another daemon than the one that sent it.
    ForeignMember(DaemonIndex),
    /// The client header is not one a daemon accepts from its client.
    BadHeader,
}

fn member_into(out: &mut Vec<u8>, kind: u8, member: &MemberId) {
    out.push(kind);
    out.extend_from_slice(&member.daemon.to_be_bytes());
    out.extend_from_slice(&member.private_group);
}

pub fn encode_join(member: &MemberId, group: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMBER_LEN + NAME_LEN);
    member_into(&mut out, JOIN, member);
    out.extend_from_slice(group);
    out
}

pub fn encode_leave(member: &MemberId, group: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMBER_LEN + NAME_LEN);
    member_into(&mut out, LEAVE, member);
    out.extend_from_slice(group);
    out
}

pub fn encode_disconnect(member: &MemberId) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMBER_LEN);
    member_into(&mut out, DISCONNECT, member);
    out
}

/// A multicast: `body` is what follows the client's header (names, then payload).
pub fn encode_data(sender: &MemberId, header: &Header, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MEMBER_LEN + CLIENT_HEADER_LEN + body.len());
    member_into(&mut out, DATA, sender);
    out.extend_from_slice(&header.msg_type.to_be_bytes());
    out.extend_from_slice(&header.sender);
    out.extend_from_slice(&(header.num_groups as u32).to_be_bytes());
    out.extend_from_slice(&header.hint.to_ne_bytes());
    out.extend_from_slice(&(header.data_len as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn encode_group_state(state: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + state.len());
    out.push(GROUP_STATE);
    out.extend_from_slice(state);
    out
}

/// Reads fields off the front of a byte slice, failing on a short one.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Length);
        }
        let (field, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(field)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn name(&mut self) -> Result<&'a Name, DecodeError> {
        Ok(self.take(NAME_LEN)?.try_into().expect("took a name"))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn member(&mut self, origin: DaemonIndex) -> Result<MemberId, DecodeError> {
        let daemon = u16::from_be_bytes(self.array()?);
        if daemon != origin {
            return Err(DecodeError::ForeignMember(daemon));
        }
        Ok(MemberId {
            daemon,
            private_group: *self.name()?,
        })
    }

    fn end(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Length)
        }
    }
}

/// Decodes an envelope delivered from daemon `origin`.
pub fn decode(bytes: &[u8], origin: DaemonIndex) -> Result<Envelope<'_>, DecodeError> {
    let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let mut f = Fields { rest };
    let envelope = match kind {
        JOIN | LEAVE => {
            let member = f.member(origin)?;
            let group = f.name()?;
            if kind == JOIN {
                Envelope::Join { member, group }
            } else {
                Envelope::Leave { member, group }
            }
        }
        DISCONNECT => Envelope::Disconnect {
            member: f.member(origin)?,
        },
        DATA => {
            let sender = f.member(origin)?;
            let header = Header {
                msg_type: f.u32()?,
                sender: *f.name()?,
                num_groups: f.u32()? as i32,
                hint: u32::from_ne_bytes(f.array()?),
                data_len: f.u32()? as i32,
            };
            // The same checks as the sender's daemon made on its client's request.
            let sender_name = name_text(&sender.private_group);
            if classify_request(&header, sender_name) != Ok(RequestKind::Multicast) {
                return Err(DecodeError::BadHeader);
            }
            let names = f.take(header.num_groups as usize * NAME_LEN)?;
            let payload = f.take(header.data_len as usize)?;
            Envelope::Data {
                sender,
                header,
                names,
                payload,
            }
        }
        GROUP_STATE => return Ok(Envelope::GroupState(rest)),
        other => return Err(DecodeError::UnknownKind(other)),
    };
    f.end()?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header::hint_for_mess_type;
    use crate::wire::name::name_field;
    use crate::wire::{AGREED_MESS, JOIN_MESS, SAFE_MESS};

    fn member(daemon: DaemonIndex) -> MemberId {
        MemberId {
            daemon,
            private_group: name_field(b"#alice#d1"),
        }
    }

    fn data_header(msg_type: u32, groups: i32, len: i32) -> Header {
        Header {
            msg_type,
            sender: name_field(b"#alice#d1"),
            num_groups: groups,
            hint: hint_for_mess_type(-2),
            data_len: len,
        }
    }

    #[test]
    fn round_trips() {
        let g = name_field(b"g");
        let m = member(2);
        assert_eq!(
            decode(&encode_join(&m, &g), 2),
            Ok(Envelope::Join { member: m, group: &g })
        );
        assert_eq!(
            decode(&encode_leave(&m, &g), 2),
            Ok(Envelope::Leave { member: m, group: &g })
        );
        assert_eq!(
            decode(&encode_disconnect(&m), 2),
            Ok(Envelope::Disconnect { member: m })
        );
        assert_eq!(
            decode(&encode_group_state(b"state"), 7),
            Ok(Envelope::GroupState(b"state"))
        );
        let header = data_header(SAFE_MESS, 2, 3);
        let mut body = name_field(b"g").to_vec();
        body.extend_from_slice(&name_field(b"h"));
        body.extend_from_slice(b"abc");
        let bytes = encode_data(&m, &header, &body);
        assert_eq!(
            decode(&bytes, 2),
            Ok(Envelope::Data {
                sender: m,
                header,
                names: &body[..64],
                payload: b"abc",
            })
        );
    }

    #[test]
    fn fixed_byte_order() {
        let header = data_header(AGREED_MESS, 0, 1);
        let bytes = encode_data(&member(0x0102), &header, b"x");
        assert_eq!(bytes[..3], [DATA, 0x01, 0x02]);
        let at = MEMBER_LEN;
        assert_eq!(bytes[at..at + 4], [0, 0, 0, 0x10]);
        // The hint as the client wrote it.
        let hint = at + 4 + NAME_LEN + 4;
        assert_eq!(bytes[hint..hint + 4], header.hint.to_ne_bytes());
        assert_eq!(bytes[hint + 4..hint + 8], [0, 0, 0, 1]);
    }

    #[test]
    fn malformed_envelopes_are_refused() {
        let m = member(1);
        let g = name_field(b"g");
        assert_eq!(decode(&[], 1), Err(DecodeError::Empty));
        assert_eq!(decode(&[9], 1), Err(DecodeError::UnknownKind(9)));
        assert_eq!(
            decode(&encode_join(&m, &g), 0),
            Err(DecodeError::ForeignMember(1))
        );
        let join = encode_join(&m, &g);
        for cut in 1..join.len() {
            assert_eq!(decode(&join[..cut], 1), Err(DecodeError::Length), "cut at {cut}");
        }
        let mut long = encode_disconnect(&m);
        long.push(0);
        assert_eq!(decode(&long, 1), Err(DecodeError::Length));

        let header = data_header(AGREED_MESS, 1, 2);
        let mut body = g.to_vec();
        body.extend_from_slice(b"hi");
        let data = encode_data(&m, &header, &body);
        for cut in 1..data.len() {
            assert!(decode(&data[..cut], 1).is_err(), "cut at {cut}");
        }
        let mut extra = data.clone();
        extra.push(0);
        assert_eq!(decode(&extra, 1), Err(DecodeError::Length));
        // A request that is not a multicast, a forged sender, a huge length.
        for bad in [
            data_header(JOIN_MESS, 1, 2),
            Header {
                sender: name_field(b"#bob#d1"),
                ..header
            },
            data_header(AGREED_MESS, 1, i32::MAX),
            data_header(AGREED_MESS, -1, 2),
        ] {
            assert_eq!(
                decode(&encode_data(&m, &bad, &body), 1),
                Err(DecodeError::BadHeader)
            );
        }
    }
}
