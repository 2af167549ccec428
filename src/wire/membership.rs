//! Bodies of membership notices (spec 4.1 and 4.2). Integers are in the daemon's order.

use super::name::{Name, NAME_LEN};

/// Identifies one view of a group: the daemon configuration it was formed in (first two
/// integers) and the count of changes within that configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId {
    pub proc_id: i32,
    pub time: i32,
    pub index: i32,
}

pub const GROUP_ID_LEN: usize = 12;
/// Group id, `num_vs_sets` and `local_vs_set_offset` before the vs-set records.
pub const REGULAR_BODY_PREFIX: usize = 20;

impl GroupId {
    pub fn encode(&self) -> [u8; GROUP_ID_LEN] {
        let mut out = [0u8; GROUP_ID_LEN];
        out[0..4].copy_from_slice(&self.proc_id.to_ne_bytes());
        out[4..8].copy_from_slice(&self.time.to_ne_bytes());
        out[8..12].copy_from_slice(&self.index.to_ne_bytes());
        out
    }

    /// Reads a group id from the first 12 bytes of `bytes` (native order).
    pub fn decode(bytes: &[u8]) -> GroupId {
        let int = |at: usize| i32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        GroupId {
            proc_id: int(0),
            time: int(4),
            index: int(8),
        }
    }
}

/// The body of a regular membership notice: group id, the vs sets, and which set is the
/// receiver's (`local_set` indexes `vs_sets`).
pub fn encode_regular_body(gid: GroupId, vs_sets: &[&[Name]], local_set: usize) -> Vec<u8> {
    let records: usize = vs_sets.iter().map(|s| 4 + NAME_LEN * s.len()).sum();
    let mut out = Vec::with_capacity(REGULAR_BODY_PREFIX + records);
    out.extend_from_slice(&gid.encode());
    out.extend_from_slice(&(vs_sets.len() as u32).to_ne_bytes());
    let local_offset: usize = vs_sets[..local_set].iter().map(|s| 4 + NAME_LEN * s.len()).sum();
    out.extend_from_slice(&(local_offset as u32).to_ne_bytes());
    for set in vs_sets {
        out.extend_from_slice(&(set.len() as u32).to_ne_bytes());
        for name in set.iter() {
            out.extend_from_slice(name);
        }
    }
    out
}

/// Brings a regular membership body written in the other byte order into this host's order,
/// in place: the group id, the two counts and every vs-set count. Stops at the end of `body`.
pub fn swap_regular_body(body: &mut [u8]) {
    let swap_at = |body: &mut [u8], at: usize| -> Option<u32> {
        let word = body.get_mut(at..at + 4)?;
        word.reverse();
        Some(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]))
    };
    for at in [0, 4, 8, 12, 16] {
        if swap_at(body, at).is_none() {
            return;
        }
    }
    let num_sets = u32::from_ne_bytes([body[12], body[13], body[14], body[15]]);
    let mut at = REGULAR_BODY_PREFIX;
    for _ in 0..num_sets {
        let Some(count) = swap_at(body, at) else { return };
        at = at
            .saturating_add(4)
            .saturating_add((count as usize).saturating_mul(NAME_LEN));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::name::name_field;

    #[test]
    fn join_body_vector() {
        // Spec section 8: the body of the join notice for #alice#localhost (56 bytes).
        let gid = GroupId {
            proc_id: 0x1cc5_9726,
            time: 0x6b08_3058,
            index: 1,
        };
        let alice = [name_field(b"#alice#localhost")];
        let body = encode_regular_body(gid, &[&alice], 0);
        assert_eq!(body.len(), 56);
        assert_eq!(
            &body[0..12],
            &[0x26, 0x97, 0xc5, 0x1c, 0x58, 0x30, 0x08, 0x6b, 1, 0, 0, 0]
        );
        assert_eq!(&body[12..20], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&body[20..24], &[1, 0, 0, 0]);
        assert_eq!(&body[24..56], &alice[0]);
    }

    #[test]
    fn merge_body_layout() {
        // Spec 4.2: set 0 = {#cb#db, #cb2#db}, set 1 = {#ca#da}, seen by #ca#da.
        let set0 = [name_field(b"#cb#db"), name_field(b"#cb2#db")];
        let set1 = [name_field(b"#ca#da")];
        let body = encode_regular_body(GroupId::default(), &[&set0, &set1], 1);
        assert_eq!(body.len(), 124);
        assert_eq!(u32::from_ne_bytes(body[16..20].try_into().unwrap()), 0x44);
    }

    #[test]
    fn swap_round_trip() {
        let set0 = [name_field(b"#a#b")];
        let gid = GroupId {
            proc_id: 1,
            time: 2,
            index: 3,
        };
        let body = encode_regular_body(gid, &[&set0, &set0], 1);
        let mut swapped = body.clone();
        swap_regular_body(&mut swapped);
        assert_eq!(&swapped[0..4], &1i32.swap_bytes().to_ne_bytes());
        // Swapping needs the counts in native order to walk; emulate a foreign writer.
        let mut foreign = body.clone();
        for at in [0, 4, 8, 12, 16, 20, 56] {
            foreign[at..at + 4].reverse();
        }
        swap_regular_body(&mut foreign);
        assert_eq!(foreign, body);
        // Truncated bodies are not read past their end.
        let mut short = foreign[..30].to_vec();
        swap_regular_body(&mut short);
    }
}
