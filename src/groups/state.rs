//! The group-state message a daemon submits (AGREED) after a regular configuration that
//! brings in daemons it was not synchronized with: its own members of every group, with the
//! group's id and whether the group was changed by the configuration change.
//!
//! Layout (integers little-endian, whatever the host, since peers may differ):
//!
//! | Size | Field |
//! |---|---|
//! | 1 | version (1) |
//! | 8 | regular configuration answered: i32 proc_id, i32 time |
//! | 4 | u32 number of groups, then per group in increasing name order: |
//! | 1 + n | group name length (1..=31), name bytes (no NUL, not starting with `#`) |
//! | 12 | group id: i32 proc_id, i32 time, i32 index |
//! | 1 | flags: bit 0 = changed (other bits zero) |
//! | 4 | u32 number of members (at least 1), then per member in increasing name order: |
//! | 1 + n | private group name length (1..=31), name bytes (starting with `#`, no NUL) |
//!
//! Nothing may follow the last group.

use std::fmt;

use crate::wire::name::{name_field, name_text, MAX_GROUP_NAME_CHARS};
use crate::wire::{GroupId, Name};

use super::ConfigurationId;

const VERSION: u8 = 1;
const CHANGED: u8 = 0x01;
/// Smallest encoding of a group: a 1-byte name, id, flags, count and one 2-byte member.
const MIN_GROUP_LEN: usize = 2 + 12 + 1 + 4 + 2;
const MIN_MEMBER_LEN: usize = 2;

/// One daemon's members of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ReportedGroup {
    pub name: Name,
    pub id: GroupId,
    pub changed: bool,
    /// Private group names, increasing, none repeated.
    pub members: Vec<Name>,
}

/// A decoded group-state message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct GroupState {
    /// The regular configuration whose exchange this message belongs to.
    pub conf: ConfigurationId,
    /// Increasing by name, none repeated.
    pub groups: Vec<ReportedGroup>,
}

/// Why a peer's group-state message was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DecodeError {
    Truncated,
    Version(u8),
    BadName,
    OutOfOrder,
    NoMembers,
    Flags(u8),
    TooManyEntries,
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "truncated"),
            DecodeError::Version(v) => write!(f, "unknown version {v}"),
            DecodeError::BadName => write!(f, "malformed name"),
            DecodeError::OutOfOrder => write!(f, "names not in increasing order"),
            DecodeError::NoMembers => write!(f, "group without members"),
            DecodeError::Flags(b) => write!(f, "unknown flags {b:#04x}"),
            DecodeError::TooManyEntries => write!(f, "more entries than bytes"),
            DecodeError::TrailingBytes => write!(f, "bytes after the last group"),
        }
    }
}

pub(super) fn encode(state: &GroupState) -> Vec<u8> {
    let mut out = vec![VERSION];
    put_i32(&mut out, state.conf.proc_id);
    put_i32(&mut out, state.conf.time);
    out.extend_from_slice(&(state.groups.len() as u32).to_le_bytes());
    for group in &state.groups {
        put_name(&mut out, &group.name);
        put_i32(&mut out, group.id.proc_id);
        put_i32(&mut out, group.id.time);
        put_i32(&mut out, group.id.index);
        out.push(if group.changed { CHANGED } else { 0 });
        out.extend_from_slice(&(group.members.len() as u32).to_le_bytes());
        for member in &group.members {
            put_name(&mut out, member);
        }
    }
    out
}

pub(super) fn decode(bytes: &[u8]) -> Result<GroupState, DecodeError> {
    let mut r = Reader { bytes };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let conf = ConfigurationId {
        proc_id: r.i32()?,
        time: r.i32()?,
    };
    let num_groups = r.count(MIN_GROUP_LEN)?;
    let mut groups: Vec<ReportedGroup> = Vec::with_capacity(num_groups);
    for _ in 0..num_groups {
        let name = r.name()?;
        if name[0] == b'#' {
            return Err(DecodeError::BadName);
        }
        if groups.last().is_some_and(|g| g.name >= name) {
            return Err(DecodeError::OutOfOrder);
        }
        let id = GroupId {
            proc_id: r.i32()?,
            time: r.i32()?,
            index: r.i32()?,
        };
        let flags = r.u8()?;
        if flags & !CHANGED != 0 {
            return Err(DecodeError::Flags(flags));
        }
        let num_members = r.count(MIN_MEMBER_LEN)?;
        if num_members == 0 {
            return Err(DecodeError::NoMembers);
        }
        let mut members: Vec<Name> = Vec::with_capacity(num_members);
        for _ in 0..num_members {
            let member = r.name()?;
            if member[0] != b'#' {
                return Err(DecodeError::BadName);
            }
            if members.last().is_some_and(|m| *m >= member) {
                return Err(DecodeError::OutOfOrder);
            }
            members.push(member);
        }
        groups.push(ReportedGroup {
            name,
            id,
            changed: flags & CHANGED != 0,
            members,
        });
    }
    if !r.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(GroupState { conf, groups })
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_name(out: &mut Vec<u8>, field: &Name) {
    let text = name_text(field);
    out.push(text.len() as u8);
    out.extend_from_slice(text);
}

/// Reads from the front of a byte slice; every read checks what is left.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count of entries each at least `min_len` bytes long: more than the bytes left can
    /// hold is an error (so a forged count cannot make us allocate).
    fn count(&mut self, min_len: usize) -> Result<usize, DecodeError> {
        let b = self.take(4)?;
        let count = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if count > self.bytes.len() / min_len {
            return Err(DecodeError::TooManyEntries);
        }
        Ok(count)
    }

    fn name(&mut self) -> Result<Name, DecodeError> {
        let len = self.u8()? as usize;
        if len == 0 || len > MAX_GROUP_NAME_CHARS {
            return Err(DecodeError::BadName);
        }
        let text = self.take(len)?;
        if text.contains(&0) {
            return Err(DecodeError::BadName);
        }
        Ok(name_field(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupState {
        GroupState {
            conf: ConfigurationId {
                proc_id: -5,
                time: 0x0102_0304,
            },
            groups: vec![
                ReportedGroup {
                    name: name_field(b"alpha"),
                    id: GroupId {
                        proc_id: 7,
                        time: 8,
                        index: 9,
                    },
                    changed: true,
                    members: vec![name_field(b"#a#d"), name_field(b"#b#d")],
                },
                ReportedGroup {
                    name: name_field(b"beta"),
                    id: GroupId::default(),
                    changed: false,
                    members: vec![name_field(b"#a#d")],
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let state = sample();
        let bytes = encode(&state);
        assert_eq!(bytes[0], 1);
        assert_eq!(&bytes[1..9], &[0xfb, 0xff, 0xff, 0xff, 4, 3, 2, 1]);
        assert_eq!(&bytes[9..13], &[2, 0, 0, 0]);
        assert_eq!(&bytes[13..19], b"\x05alpha");
        // id, flags, member count, then "#a#d".
        assert_eq!(&bytes[19..31], &[7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0]);
        assert_eq!(&bytes[31..36], &[1, 2, 0, 0, 0]);
        assert_eq!(&bytes[36..41], b"\x04#a#d");
        assert_eq!(decode(&bytes), Ok(state));
        let empty = GroupState {
            conf: ConfigurationId { proc_id: 1, time: 2 },
            groups: vec![],
        };
        assert_eq!(encode(&empty).len(), 13);
        assert_eq!(decode(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes accepted");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(DecodeError::TrailingBytes));
    }

    #[test]
    fn malformed_fields_are_rejected() {
        let bytes = encode(&sample());
        let with = |at: usize, value: u8| {
            let mut b = bytes.clone();
            b[at] = value;
            decode(&b)
        };
        assert_eq!(with(0, 2), Err(DecodeError::Version(2)));
        // A huge group count cannot be backed by the bytes left.
        assert_eq!(with(12, 0x40), Err(DecodeError::TooManyEntries));
        assert_eq!(with(13, 0), Err(DecodeError::BadName));
        assert_eq!(with(13, 32), Err(DecodeError::BadName));
        assert_eq!(with(14, b'#'), Err(DecodeError::BadName));
        assert_eq!(with(15, 0), Err(DecodeError::BadName));
        assert_eq!(with(31, 3), Err(DecodeError::Flags(3)));
        assert_eq!(with(37, b'x'), Err(DecodeError::BadName));
        // Members out of order: "#a#d" then "###d".
        assert_eq!(with(43, b'#'), Err(DecodeError::OutOfOrder));
        let mut none = sample();
        none.groups[1].members.clear();
        assert_eq!(decode(&encode(&none)), Err(DecodeError::NoMembers));
        let mut twice = sample();
        twice.groups[1].name = twice.groups[0].name;
        assert_eq!(decode(&encode(&twice)), Err(DecodeError::OutOfOrder));
    }

    #[test]
    fn mangled_messages_never_panic() {
        // A small deterministic generator (no randomness crate). The encoding is canonical, so
        // whatever decodes must encode back to the same bytes.
        let mut x: u32 = 0x1234_5678;
        let base = encode(&sample());
        for round in 0..2000 {
            let mut b = base.clone();
            for _ in 0..(round % 4 + 1) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let at = x as usize % b.len();
                b[at] = (x >> 8) as u8;
            }
            b.truncate(x as usize % (base.len() + 1));
            if let Ok(state) = decode(&b) {
                assert_eq!(encode(&state), b);
            }
        }
    }
}
