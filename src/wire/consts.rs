//! Numbers of the client protocol and of `sp.h`, with the values Spread 5.0.1 uses.

/// Service bits (low six bits of a message type).
pub const UNRELIABLE_MESS: u32 = 0x0000_0001;
pub const RELIABLE_MESS: u32 = 0x0000_0002;
pub const FIFO_MESS: u32 = 0x0000_0004;
pub const CAUSAL_MESS: u32 = 0x0000_0008;
pub const AGREED_MESS: u32 = 0x0000_0010;
pub const SAFE_MESS: u32 = 0x0000_0020;
pub const REGULAR_MESS: u32 = 0x0000_003f;

pub const SELF_DISCARD: u32 = 0x0000_0040;
/// Byte-order marker: set in `type` and `hint` by little-endian writers, clear by big-endian ones.
/// (The suffix makes the generated `sp.h` define it as `unsigned int`, the type of the original
/// header's hex literal; the other constants fit in `int`, as there.)
pub const ENDIAN_RESERVED: u32 = 0x8000_0080_u32;

pub const CAUSED_BY_JOIN: u32 = 0x0000_0100;
pub const CAUSED_BY_LEAVE: u32 = 0x0000_0200;
pub const CAUSED_BY_DISCONNECT: u32 = 0x0000_0400;
pub const CAUSED_BY_NETWORK: u32 = 0x0000_0800;
pub const REG_MEMB_MESS: u32 = 0x0000_1000;
pub const TRANSITION_MESS: u32 = 0x0000_2000;
pub const MEMBERSHIP_MESS: u32 = 0x0000_3f00;

/// Client requests that are not multicasts (not in the public header).
pub const JOIN_MESS: u32 = 0x0001_0000;
pub const LEAVE_MESS: u32 = 0x0002_0000;
pub const KILL_MESS: u32 = 0x0004_0000;

pub const RESERVED: u32 = 0x003f_c000;
pub const REJECT_MESS: u32 = 0x0040_0000;
/// Flag of the receive calls' `service_type` input: cut what does not fit instead of failing.
pub const DROP_RECV: u32 = 0x0100_0000;

/// Result codes of the library API.
pub const ACCEPT_SESSION: i32 = 1;
pub const ILLEGAL_SPREAD: i32 = -1;
pub const COULD_NOT_CONNECT: i32 = -2;
pub const REJECT_QUOTA: i32 = -3;
pub const REJECT_NO_NAME: i32 = -4;
pub const REJECT_ILLEGAL_NAME: i32 = -5;
pub const REJECT_NOT_UNIQUE: i32 = -6;
pub const REJECT_VERSION: i32 = -7;
pub const CONNECTION_CLOSED: i32 = -8;
pub const REJECT_AUTH: i32 = -9;
pub const ILLEGAL_SESSION: i32 = -11;
pub const ILLEGAL_SERVICE: i32 = -12;
pub const ILLEGAL_MESSAGE: i32 = -13;
pub const ILLEGAL_GROUP: i32 = -14;
pub const BUFFER_TOO_SHORT: i32 = -15;
pub const GROUPS_TOO_SHORT: i32 = -16;
pub const MESSAGE_TOO_LONG: i32 = -17;
pub const NET_ERROR_ON_SESSION: i32 = -18;
pub const SP_BUG: i32 = -19;
pub const ILLEGAL_TIME: i32 = -20;

/// Version this library and daemon report.
pub const SPREAD_MAJOR: u8 = 5;
pub const SPREAD_MINOR: u8 = 0;
pub const SPREAD_PATCH: u8 = 1;

pub const DEFAULT_SPREAD_PORT: u16 = 4803;
pub const MAX_PRIVATE_NAME: usize = 10;
pub const MAX_PROC_NAME: usize = 20;
pub const MAX_CLIENT_SCATTER_ELEMENTS: usize = 100;
/// Most destination groups one message may name.
pub const MAX_GROUPS_PER_MESSAGE: i32 = 100;
/// Library check: payload plus 32 bytes per destination above this is MESSAGE_TOO_LONG.
pub const MAX_CLIENT_MESSAGE: i64 = 144_000;
/// Daemon check: payload plus 32 bytes per destination above this ends the session.
pub const MAX_DAEMON_MESSAGE: i64 = 143_952;
/// Longest auth method name plus its NUL (each of the three slots of the auth choice).
pub const MAX_AUTH_NAME: usize = 30;
pub const MAX_AUTH_METHODS: usize = 3;

/// Text for a result code, as `SP_strerror` and `SP_error` give it.
pub fn error_text(code: i32) -> &'static str {
    match code {
        ILLEGAL_SPREAD => "Illegal spread name provided.",
        COULD_NOT_CONNECT => "Could not connect.",
        REJECT_QUOTA => "Connection rejected, too many users.",
        REJECT_NO_NAME => "Connection rejected, no name was supplied.",
        REJECT_ILLEGAL_NAME => "Connection rejected, illegal name.",
        REJECT_NOT_UNIQUE => "Connection rejected, name not unique.",
        REJECT_VERSION => "Connection rejected, client library incompatible with daemon.",
        CONNECTION_CLOSED => "Connection closed by Spread.",
        REJECT_AUTH => "Connection rejected, authentication failed.",
        ILLEGAL_SESSION => "Illegal session was supplied.",
        ILLEGAL_SERVICE => "Illegal service request.",
        ILLEGAL_MESSAGE => "Illegal message.",
        ILLEGAL_GROUP => "Illegal group.",
        BUFFER_TOO_SHORT => "Buffer too short.",
        GROUPS_TOO_SHORT => "Groups list too short.",
        MESSAGE_TOO_LONG => "Message (body + group names) too large.",
        NET_ERROR_ON_SESSION => "Network socket error. SP_kill() the mailbox.",
        SP_BUG => "Internal Spread bug detected.",
        ILLEGAL_TIME => "Illegal time.",
        _ => "Unrecognized error.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_of_unknown_codes() {
        assert_eq!(error_text(ACCEPT_SESSION), "Unrecognized error.");
        assert_eq!(error_text(-10), "Unrecognized error.");
        assert_eq!(error_text(-21), "Unrecognized error.");
        assert_eq!(error_text(ILLEGAL_TIME), "Illegal time.");
    }
}
