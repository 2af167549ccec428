//! C types of `sp.h` and `sp_events.h`, laid out as Spread 5.0.1 lays them out (spec 6.2).
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_long, c_short, c_uint};

pub use crate::wire::consts::MAX_CLIENT_SCATTER_ELEMENTS;

/// `sp.h` has these as macros (`#define int16 short`); the headers keep the names in the
/// prototypes and structs that use them, so the aliases are not emitted as typedefs.
pub type int16 = c_short;
pub type int32 = c_int;

/// A mailbox is the session's socket descriptor.
pub type mailbox = c_int;
/// Service type bits of a message.
pub type service = c_int;

pub const MAX_GROUP_NAME: usize = 32;

/// One piece of a scattered message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct scat_element {
    pub buf: *mut c_char,
    pub len: usize,
}

/// A message made of up to 100 pieces.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct scatter {
    pub num_elements: usize,
    pub elements: [scat_element; MAX_CLIENT_SCATTER_ELEMENTS],
}

/// Identifies a view of a group (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct group_id {
    pub id: [int32; 3],
}

/// One vs set of a membership message: member count and offset of its first name in the body.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vs_set_info {
    pub num_members: c_uint,
    pub members_offset: c_uint,
}

/// What `SP_get_memb_info` reads from a membership message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct membership_info {
    pub gid: group_id,
    pub changed_member: [c_char; MAX_GROUP_NAME],
    pub num_vs_sets: c_uint,
    pub my_vs_set: vs_set_info,
}

/// Seconds and microseconds (passed by value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct sp_time {
    pub sec: c_long,
    pub usec: c_long,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{align_of, offset_of, size_of};

    #[test]
    fn layouts_match_spread_5() {
        assert_eq!((size_of::<scat_element>(), align_of::<scat_element>()), (16, 8));
        assert_eq!(offset_of!(scat_element, len), 8);
        assert_eq!((size_of::<scatter>(), align_of::<scatter>()), (1608, 8));
        assert_eq!(offset_of!(scatter, elements), 8);
        assert_eq!((size_of::<group_id>(), align_of::<group_id>()), (12, 4));
        assert_eq!((size_of::<vs_set_info>(), align_of::<vs_set_info>()), (8, 4));
        assert_eq!(
            (size_of::<membership_info>(), align_of::<membership_info>()),
            (56, 4)
        );
        assert_eq!(offset_of!(membership_info, changed_member), 12);
        assert_eq!(offset_of!(membership_info, num_vs_sets), 44);
        assert_eq!(offset_of!(membership_info, my_vs_set), 48);
        assert_eq!((size_of::<sp_time>(), align_of::<sp_time>()), (16, 8));
    }
}
