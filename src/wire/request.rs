//! What a daemon accepts from a client after the handshake (spec 3.5 and 3.6).

use super::consts::*;
use super::header::Header;
use super::name::{name_text, NAME_LEN};

/// What a valid client message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Multicast,
    Join,
    Leave,
    Kill,
}

/// Why a client message ends its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidRequest {
    /// Not exactly one service or request bit.
    Service(u32),
    /// The client set REJECT_MESS (the original bounced it back unframed; we refuse it).
    RejectBit,
    /// `sender` is not this session's private group.
    Sender,
    GroupCount(i32),
    Hint(u32),
    Length(i32),
    TooLarge,
    /// A join or leave that names no group.
    NoGroup,
}

const REQUEST_BITS: u32 = JOIN_MESS | LEAVE_MESS | KILL_MESS;
/// Bits of `hint` a client may set: the marker and the 16-bit `mess_type`.
const HINT_BITS: u32 = 0x80ff_ff80;

/// Checks a client message header against the daemon's rules; `own_private_group` is the
/// session's `#private#daemon` name.
pub fn classify_request(h: &Header, own_private_group: &[u8]) -> Result<RequestKind, InvalidRequest> {
    let service = h.msg_type & REGULAR_MESS;
    let request = h.msg_type & REQUEST_BITS;
    if service.count_ones() + request.count_ones() != 1 {
        return Err(InvalidRequest::Service(h.msg_type));
    }
    if h.msg_type & REJECT_MESS != 0 {
        return Err(InvalidRequest::RejectBit);
    }
    let mut sender = h.sender;
    sender[NAME_LEN - 1] = 0;
    if name_text(&sender) != own_private_group {
        return Err(InvalidRequest::Sender);
    }
    if !(0..=MAX_GROUPS_PER_MESSAGE).contains(&h.num_groups) {
        return Err(InvalidRequest::GroupCount(h.num_groups));
    }
    if h.hint & !HINT_BITS != 0 {
        return Err(InvalidRequest::Hint(h.hint));
    }
    if !(0..=MAX_CLIENT_MESSAGE as i32).contains(&h.data_len) {
        return Err(InvalidRequest::Length(h.data_len));
    }
    if body_len(h) as i64 > MAX_DAEMON_MESSAGE {
        return Err(InvalidRequest::TooLarge);
    }
    let kind = match request {
        JOIN_MESS => RequestKind::Join,
        LEAVE_MESS => RequestKind::Leave,
        KILL_MESS => return Ok(RequestKind::Kill),
        _ => return Ok(RequestKind::Multicast),
    };
    if h.num_groups < 1 {
        return Err(InvalidRequest::NoGroup);
    }
    Ok(kind)
}

/// Bytes that follow a (non-reject) header: the names, then the payload.
pub fn body_len(h: &Header) -> usize {
    h.num_groups.max(0) as usize * NAME_LEN + h.data_len.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header::hint_for_mess_type;
    use crate::wire::name::name_field;

    fn request(msg_type: u32, groups: i32, len: i32) -> Header {
        Header {
            msg_type,
            sender: name_field(b"#alice#localhost"),
            num_groups: groups,
            hint: hint_for_mess_type(-5),
            data_len: len,
        }
    }
    const ME: &[u8] = b"#alice#localhost";

    #[test]
    fn kinds() {
        assert_eq!(
            classify_request(&request(AGREED_MESS, 1, 5), ME),
            Ok(RequestKind::Multicast)
        );
        assert_eq!(
            classify_request(
                &request(SAFE_MESS | SELF_DISCARD | 0x7000_0000 | DROP_RECV, 0, 0),
                ME
            ),
            Ok(RequestKind::Multicast)
        );
        assert_eq!(
            classify_request(&request(JOIN_MESS, 1, 0), ME),
            Ok(RequestKind::Join)
        );
        assert_eq!(
            classify_request(&request(LEAVE_MESS, 1, 0), ME),
            Ok(RequestKind::Leave)
        );
        assert_eq!(
            classify_request(&request(KILL_MESS, 1, 0), ME),
            Ok(RequestKind::Kill)
        );
    }

    #[test]
    fn invalid() {
        for t in [
            0,
            SELF_DISCARD,
            SAFE_MESS | AGREED_MESS,
            JOIN_MESS | AGREED_MESS,
            JOIN_MESS | LEAVE_MESS,
        ] {
            assert!(matches!(
                classify_request(&request(t, 1, 0), ME),
                Err(InvalidRequest::Service(_))
            ));
        }
        assert_eq!(
            classify_request(&request(AGREED_MESS | REJECT_MESS, 1, 0), ME),
            Err(InvalidRequest::RejectBit)
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, 1, 0), b"#bob#localhost"),
            Err(InvalidRequest::Sender)
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, 101, 0), ME),
            Err(InvalidRequest::GroupCount(101))
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, -1, 0), ME),
            Err(InvalidRequest::GroupCount(-1))
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, 1, -1), ME),
            Err(InvalidRequest::Length(-1))
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, 1, 143_921), ME),
            Err(InvalidRequest::TooLarge)
        );
        assert_eq!(
            classify_request(&request(AGREED_MESS, 1, 143_920), ME),
            Ok(RequestKind::Multicast)
        );
        assert_eq!(
            classify_request(&request(JOIN_MESS, 0, 0), ME),
            Err(InvalidRequest::NoGroup)
        );
        let mut h = request(AGREED_MESS, 1, 0);
        h.hint |= 0x0100_0000;
        assert!(matches!(classify_request(&h, ME), Err(InvalidRequest::Hint(_))));
        // Byte 31 of the sender field is ignored.
        let mut h = request(AGREED_MESS, 1, 0);
        h.sender[31] = b'x';
        assert_eq!(classify_request(&h, ME), Ok(RequestKind::Multicast));
    }
}
