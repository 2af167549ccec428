//! Reading membership message bodies (spec 4.2 and the `SP_get_*` accessors of 5.2), over any
//! byte view: a contiguous buffer or the pieces of a scatter.

use super::error::Error;
use crate::wire::membership::{GroupId, GROUP_ID_LEN, REGULAR_BODY_PREFIX};
use crate::wire::{
    Name, BUFFER_TOO_SHORT, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, CAUSED_BY_NETWORK,
    ILLEGAL_MESSAGE, MEMBERSHIP_MESS, NAME_LEN, REG_MEMB_MESS,
};

const NUM_VS_SETS_AT: usize = 12;
const LOCAL_OFFSET_AT: usize = 16;
/// A vs-set record is its member count followed by the names.
const COUNT_LEN: usize = 4;

/// A message body the accessors can read from.
pub trait MessageBytes {
    /// Copies the bytes at `at..at + out.len()` into `out`; false when the body is shorter
    /// (then `out` holds what there was).
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool;
}

impl MessageBytes for [u8] {
    fn read_at(&self, at: usize, out: &mut [u8]) -> bool {
        let have = self.len().saturating_sub(at).min(out.len());
        if have > 0 {
            out[..have].copy_from_slice(&self[at..at + have]);
        }
        have == out.len()
    }
}

/// The pieces of a scatter, read as one byte sequence.
impl MessageBytes for [&[u8]] {
    fn read_at(&self, mut at: usize, out: &mut [u8]) -> bool {
        let mut done = 0;
        for piece in self {
            if done == out.len() {
                break;
            }
            if at >= piece.len() {
                at -= piece.len();
                continue;
            }
            let n = (piece.len() - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&piece[at..at + n]);
            done += n;
            at = 0;
        }
        done == out.len()
    }
}

fn read_u32<B: MessageBytes + ?Sized>(body: &B, at: usize) -> Result<u32, Error> {
    let mut word = [0u8; 4];
    if body.read_at(at, &mut word) {
        Ok(u32::from_ne_bytes(word))
    } else {
        Err(Error::from_code(ILLEGAL_MESSAGE))
    }
}

/// One vs set: member count and the body offset of its first name (`vs_set_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VsSet {
    pub num_members: u32,
    pub members_offset: u32,
}

/// What `SP_get_memb_info` reports (`membership_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembInfo {
    pub gid: GroupId,
    /// `None`: leave the caller's field as it is (transitional and self-leave messages).
    pub changed_member: Option<Name>,
    pub num_vs_sets: u32,
    pub my_vs_set: VsSet,
}

/// Reads the group id, the changed member and the receiver's vs set of a membership message
/// of type `service`. `ILLEGAL_MESSAGE` for other types or a body too short for its contents.
pub fn memb_info<B: MessageBytes + ?Sized>(body: &B, service: u32) -> Result<MembInfo, Error> {
    if service & MEMBERSHIP_MESS == 0 {
        return Err(Error::from_code(ILLEGAL_MESSAGE));
    }
    // Self-leave messages have no body: their id is whatever the buffer holds, as before.
    let mut gid = [0u8; GROUP_ID_LEN];
    body.read_at(0, &mut gid);
    let gid = GroupId::decode(&gid);
    if service & REG_MEMB_MESS == 0 {
        return Ok(MembInfo {
            gid,
            changed_member: None,
            num_vs_sets: 0,
            my_vs_set: VsSet::default(),
        });
    }
    let changed_member = if service & (CAUSED_BY_JOIN | CAUSED_BY_LEAVE | CAUSED_BY_DISCONNECT) != 0 {
        let mut name = [0u8; NAME_LEN];
        if !body.read_at(REGULAR_BODY_PREFIX + COUNT_LEN, &mut name) {
            return Err(Error::from_code(ILLEGAL_MESSAGE));
        }
        Some(name)
    } else if service & CAUSED_BY_NETWORK != 0 {
        Some([0u8; NAME_LEN])
    } else {
        None
    };
    let local_set = read_u32(body, LOCAL_OFFSET_AT)?.wrapping_add(REGULAR_BODY_PREFIX as u32);
    Ok(MembInfo {
        gid,
        changed_member,
        num_vs_sets: read_u32(body, NUM_VS_SETS_AT)?,
        my_vs_set: VsSet {
            num_members: read_u32(body, local_set as usize)?,
            members_offset: local_set.wrapping_add(COUNT_LEN as u32),
        },
    })
}

/// All vs sets of a regular membership body and the index of the receiver's set.
/// `BUFFER_TOO_SHORT` when there are more than `capacity`.
pub fn vs_sets_info<B: MessageBytes + ?Sized>(
    body: &B,
    capacity: usize,
) -> Result<(Vec<VsSet>, Option<u32>), Error> {
    let count = read_u32(body, NUM_VS_SETS_AT)?;
    if count as usize > capacity {
        return Err(Error::from_code(BUFFER_TOO_SHORT));
    }
    let local_set = read_u32(body, LOCAL_OFFSET_AT)?.wrapping_add(REGULAR_BODY_PREFIX as u32);
    let mut sets = Vec::with_capacity(count as usize);
    let mut mine = None;
    let mut at = REGULAR_BODY_PREFIX as u32;
    for index in 0..count {
        if at == local_set {
            mine = Some(index);
        }
        let num_members = read_u32(body, at as usize)?;
        let members_offset = at.wrapping_add(COUNT_LEN as u32);
        sets.push(VsSet {
            num_members,
            members_offset,
        });
        at = members_offset.wrapping_add(num_members.wrapping_mul(NAME_LEN as u32));
    }
    Ok((sets, mine))
}

/// Copies the names of `set` into `out`; returns their number. `BUFFER_TOO_SHORT` when `out`
/// has room for fewer.
pub fn vs_set_members<B: MessageBytes + ?Sized>(
    body: &B,
    set: VsSet,
    out: &mut [Name],
) -> Result<u32, Error> {
    let count = set.num_members as usize;
    if count > out.len() {
        return Err(Error::from_code(BUFFER_TOO_SHORT));
    }
    if !body.read_at(set.members_offset as usize, out[..count].as_flattened_mut()) {
        return Err(Error::from_code(ILLEGAL_MESSAGE));
    }
    Ok(set.num_members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::membership::encode_regular_body;
    use crate::wire::name::name_field;
    use crate::wire::{AGREED_MESS, TRANSITION_MESS};

    fn join_body() -> Vec<u8> {
        // Spec section 8: the body of the join of #alice#localhost to g1.
        let gid = GroupId {
            proc_id: 0x1cc5_9726,
            time: 0x6b08_3058,
            index: 1,
        };
        encode_regular_body(gid, &[&[name_field(b"#alice#localhost")]], 0)
    }

    fn merge_body() -> Vec<u8> {
        let set0 = [name_field(b"#cb#db"), name_field(b"#cb2#db")];
        let set1 = [name_field(b"#ca#da")];
        encode_regular_body(
            GroupId {
                proc_id: 9,
                time: 8,
                index: 1,
            },
            &[&set0, &set1],
            1,
        )
    }

    /// The same bytes as scatter pieces cut at awkward places.
    fn pieces(body: &[u8]) -> Vec<&[u8]> {
        let cuts = [0, 3, 3, 17, 21, 50, body.len()];
        cuts.windows(2)
            .map(|w| &body[w[0].min(body.len())..w[1].min(body.len())])
            .collect()
    }

    #[test]
    fn join_info() {
        let body = join_body();
        for info in [
            memb_info(&body[..], 0x1100),
            memb_info(&pieces(&body)[..], 0x1100),
        ] {
            let info = info.unwrap();
            assert_eq!(
                info.gid,
                GroupId {
                    proc_id: 0x1cc5_9726,
                    time: 0x6b08_3058,
                    index: 1
                }
            );
            assert_eq!(info.changed_member, Some(name_field(b"#alice#localhost")));
            assert_eq!(info.num_vs_sets, 1);
            assert_eq!(
                info.my_vs_set,
                VsSet {
                    num_members: 1,
                    members_offset: 24
                }
            );
        }
        assert_eq!(
            memb_info(&body[..], AGREED_MESS),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
    }

    #[test]
    fn merge_info_and_sets() {
        let body = merge_body();
        let info = memb_info(&body[..], 0x1800).unwrap();
        assert_eq!(info.changed_member, Some([0; NAME_LEN]));
        assert_eq!(info.num_vs_sets, 2);
        assert_eq!(
            info.my_vs_set,
            VsSet {
                num_members: 1,
                members_offset: 92
            }
        );
        let scattered = pieces(&body);
        for (sets, mine) in [
            vs_sets_info(&body[..], 2).unwrap(),
            vs_sets_info(&scattered[..], 5).unwrap(),
        ] {
            assert_eq!(
                sets,
                [
                    VsSet {
                        num_members: 2,
                        members_offset: 24
                    },
                    VsSet {
                        num_members: 1,
                        members_offset: 92
                    }
                ]
            );
            assert_eq!(mine, Some(1));
        }
        assert_eq!(
            vs_sets_info(&body[..], 1),
            Err(Error::from_code(BUFFER_TOO_SHORT))
        );
        let mut names = [[0u8; NAME_LEN]; 2];
        let set0 = VsSet {
            num_members: 2,
            members_offset: 24,
        };
        assert_eq!(vs_set_members(&scattered[..], set0, &mut names), Ok(2));
        assert_eq!(names, [name_field(b"#cb#db"), name_field(b"#cb2#db")]);
        assert_eq!(
            vs_set_members(&body[..], set0, &mut names[..1]),
            Err(Error::from_code(BUFFER_TOO_SHORT))
        );
        assert_eq!(vs_set_members(&body[..100], set0, &mut names), Ok(2));
        let beyond = VsSet {
            num_members: 2,
            members_offset: 100,
        };
        assert_eq!(
            vs_set_members(&body[..], beyond, &mut names),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
    }

    #[test]
    fn transitional_and_self_leave() {
        let gid = GroupId {
            proc_id: 1,
            time: 2,
            index: 3,
        }
        .encode();
        let info = memb_info(&gid[..], TRANSITION_MESS).unwrap();
        assert_eq!(
            info.gid,
            GroupId {
                proc_id: 1,
                time: 2,
                index: 3
            }
        );
        assert_eq!(
            (info.changed_member, info.num_vs_sets, info.my_vs_set),
            (None, 0, VsSet::default())
        );
        let info = memb_info::<[u8]>(&[], 0x0200).unwrap();
        assert_eq!(info.gid, GroupId::default());
        assert_eq!(info.changed_member, None);
    }

    #[test]
    fn short_bodies_are_illegal() {
        let body = join_body();
        assert_eq!(
            memb_info(&body[..40], 0x1100),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
        assert_eq!(
            memb_info(&body[..18], 0x1800),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
        assert_eq!(
            vs_sets_info(&body[..10], 1),
            Err(Error::from_code(ILLEGAL_MESSAGE))
        );
    }
}
