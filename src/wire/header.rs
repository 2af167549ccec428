//! The 48-byte header every client-protocol message starts with, and its byte-order rules.
//!
//! Integers travel in the writer's native order; the writer marks its order in `type` (and in
//! `hint`) with [`ENDIAN_RESERVED`]. A reader compares the marker with its own and swaps when it
//! differs. The marker is symmetric under a byte swap, which is what makes the test work.

use super::consts::ENDIAN_RESERVED;
use super::name::{Name, NAME_LEN};

pub const HEADER_LEN: usize = 48;

/// The marker this host writes: both bits on little-endian hosts, none on big-endian ones.
pub const NATIVE_MARKER: u32 = if cfg!(target_endian = "little") {
    ENDIAN_RESERVED
} else {
    0
};

/// True when a value written by a peer carries another byte order's marker.
pub fn is_foreign_order(marked: u32) -> bool {
    marked & ENDIAN_RESERVED != NATIVE_MARKER
}

/// A message header with `msg_type`, `num_groups` and `data_len` in this host's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Service, membership and control bits, without the byte-order marker.
    pub msg_type: u32,
    pub sender: Name,
    pub num_groups: i32,
    /// The hint word exactly as the original writer laid it out (read as a native u32): relays
    /// never change it, so receivers learn the sender's byte order and `mess_type` from it.
    pub hint: u32,
    pub data_len: i32,
}

impl Header {
    /// Reads a header, bringing `type`, `num_groups` and `data_len` into this host's order.
    /// Returns the header and whether the writer used the other byte order.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> (Header, bool) {
        let word = |at: usize| u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let raw_type = word(0);
        let foreign = is_foreign_order(raw_type);
        let fix = |v: u32| if foreign { v.swap_bytes() } else { v };
        let mut sender = [0u8; NAME_LEN];
        sender.copy_from_slice(&bytes[4..4 + NAME_LEN]);
        let header = Header {
            msg_type: fix(raw_type) & !ENDIAN_RESERVED,
            sender,
            num_groups: fix(word(36)) as i32,
            hint: word(40),
            data_len: fix(word(44)) as i32,
        };
        (header, foreign)
    }

    /// Writes the header in this host's order, marking `type` with this host's marker.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&((self.msg_type & !ENDIAN_RESERVED) | NATIVE_MARKER).to_ne_bytes());
        out[4..36].copy_from_slice(&self.sender);
        out[36..40].copy_from_slice(&self.num_groups.to_ne_bytes());
        out[40..44].copy_from_slice(&self.hint.to_ne_bytes());
        out[44..48].copy_from_slice(&self.data_len.to_ne_bytes());
        out
    }
}

/// The hint word a writer puts in front of `mess_type`.
pub fn hint_for_mess_type(mess_type: i16) -> u32 {
    ((mess_type as u16 as u32) << 8) | NATIVE_MARKER
}

/// The hint a daemon puts on the messages it makes itself (membership notices): marker only.
pub const DAEMON_HINT: u32 = NATIVE_MARKER;

/// `mess_type` and whether the original writer used the other byte order, from a hint word.
pub fn mess_type_from_hint(hint: u32) -> (i16, bool) {
    let foreign = is_foreign_order(hint);
    let hint = if foreign { hint.swap_bytes() } else { hint };
    ((((hint & !ENDIAN_RESERVED) >> 8) & 0xffff) as u16 as i16, foreign)
}

/// Reads a 32-bit integer written in the daemon's order (membership bodies, reject `old_type`).
pub fn read_i32(bytes: &[u8], at: usize, foreign: bool) -> i32 {
    let v = i32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if foreign {
        v.swap_bytes()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::consts::*;
    use crate::wire::name::name_field;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn agreed_hello_vector() {
        // Spec section 8: AGREED multicast of "hello" to g1 with mess_type 7 by #alice#localhost.
        let h = Header {
            msg_type: AGREED_MESS,
            sender: name_field(b"#alice#localhost"),
            num_groups: 1,
            hint: hint_for_mess_type(7),
            data_len: 5,
        };
        let bytes = h.encode();
        let want = hex("90 00 00 80 23 61 6c 69 63 65 23 6c 6f 63 61 6c \
             68 6f 73 74 00 00 00 00 00 00 00 00 00 00 00 00 \
             00 00 00 00 01 00 00 00 80 07 00 80 05 00 00 00");
        assert_eq!(&bytes[..], &want[..]);
        let (back, foreign) = Header::decode(&bytes);
        assert!(!foreign);
        assert_eq!(back, h);
        assert_eq!(mess_type_from_hint(back.hint), (7, false));
    }

    #[test]
    fn big_endian_writer_vector() {
        // Java-style SAFE message, mess_type 0x1234, 4 bytes to g9.
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..4].copy_from_slice(&[0, 0, 0, 0x20]);
        bytes[4..36].copy_from_slice(&name_field(b"#j#localhost"));
        bytes[36..40].copy_from_slice(&[0, 0, 0, 1]);
        bytes[40..44].copy_from_slice(&[0, 0x12, 0x34, 0]);
        bytes[44..48].copy_from_slice(&[0, 0, 0, 4]);
        let (h, foreign) = Header::decode(&bytes);
        assert!(foreign);
        assert_eq!((h.msg_type, h.num_groups, h.data_len), (SAFE_MESS, 1, 4));
        // Re-encoded by a little-endian daemon: type/count/length swapped, hint untouched.
        let out = h.encode();
        assert_eq!(&out[0..4], &[0xa0, 0, 0, 0x80]);
        assert_eq!(&out[36..40], &[1, 0, 0, 0]);
        assert_eq!(&out[40..44], &[0, 0x12, 0x34, 0]);
        assert_eq!(&out[44..48], &[4, 0, 0, 0]);
        assert_eq!(mess_type_from_hint(h.hint), (0x1234, true));
    }

    #[test]
    fn negative_mess_type() {
        let hint = hint_for_mess_type(-2);
        assert_eq!(hint.to_le_bytes(), [0x80, 0xfe, 0xff, 0x80]);
        assert_eq!(mess_type_from_hint(hint), (-2, false));
        let t = (AGREED_MESS | SELF_DISCARD | NATIVE_MARKER).to_le_bytes();
        assert_eq!(t, [0xd0, 0, 0, 0x80]);
    }
}
