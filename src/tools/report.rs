//! What the original example tools print for a received message, in their wording and layout
//! (users and scripts compare the two side by side).

use std::io::{self, Write};

use super::inbox::Delivery;
use crate::wire::name::name_text;
use crate::wire::{
    AGREED_MESS, CAUSAL_MESS, CAUSED_BY_LEAVE, FIFO_MESS, MEMBERSHIP_MESS, REGULAR_MESS, REG_MEMB_MESS,
    REJECT_MESS, RELIABLE_MESS, SAFE_MESS, TRANSITION_MESS, UNRELIABLE_MESS,
};

/// The kinds of message the tools tell apart, tested in the order `sp.h`'s macros are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Data,
    RegularMembership,
    /// Any other membership notice (transitional, self-leave, or an odd type).
    OtherMembership,
    Rejected,
    Unknown,
}

pub fn kind(service: u32) -> Kind {
    let rejected = service & REJECT_MESS != 0;
    if service & REGULAR_MESS != 0 && !rejected {
        Kind::Data
    } else if service & MEMBERSHIP_MESS != 0 && !rejected {
        if service & REG_MEMB_MESS != 0 {
            Kind::RegularMembership
        } else {
            Kind::OtherMembership
        }
    } else if rejected {
        Kind::Rejected
    } else {
        Kind::Unknown
    }
}

/// What the original's `printf("%s")` shows of a message body: the bytes before the first
/// NUL, which is where a name field's text ends too.
fn c_text(body: &[u8]) -> &[u8] {
    name_text(body)
}

/// The first service bit set, in the order the tools test them.
fn service_name(service: u32) -> &'static str {
    [
        (UNRELIABLE_MESS, "UNRELIABLE"),
        (RELIABLE_MESS, "RELIABLE"),
        (FIFO_MESS, "FIFO"),
        (CAUSAL_MESS, "CAUSAL"),
        (AGREED_MESS, "AGREED"),
        (SAFE_MESS, "SAFE"),
    ]
    .iter()
    .find(|(bit, _)| service & bit != 0)
    .map_or("", |(_, name)| name)
}

/// A data message; `context` goes between "message" and "from" (`spflooder` says when).
pub fn write_data(out: &mut impl Write, d: &Delivery<'_>, context: &str) -> io::Result<()> {
    let r = &d.received;
    write!(out, "received {} message {context}from ", service_name(r.service))?;
    out.write_all(name_text(&r.sender))?;
    write!(
        out,
        ", of type {}, (endian {}) to {} groups \n({} bytes): ",
        r.mess_type,
        r.endian_mismatch,
        r.num_groups,
        r.code()
    )?;
    out.write_all(c_text(d.body))?;
    out.write_all(b"\n")
}

/// The head of a regular membership notice and its member list.
pub fn write_regular_membership(out: &mut impl Write, d: &Delivery<'_>) -> io::Result<()> {
    let r = &d.received;
    out.write_all(b"Received REGULAR membership for group ")?;
    out.write_all(name_text(&r.sender))?;
    writeln!(
        out,
        " with {} members, where I am member {}:",
        r.num_groups, r.mess_type
    )?;
    for member in d.groups {
        out.write_all(b"\t")?;
        out.write_all(name_text(member))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A membership notice other than a regular one, a rejected message, or an unknown one.
pub fn write_other(out: &mut impl Write, d: &Delivery<'_>) -> io::Result<()> {
    let r = &d.received;
    let group = name_text(&r.sender);
    match kind(r.service) {
        Kind::OtherMembership if r.service & TRANSITION_MESS != 0 => {
            out.write_all(b"received TRANSITIONAL membership for group ")?;
            out.write_all(group)?;
            out.write_all(b"\n")
        }
        Kind::OtherMembership if r.service & CAUSED_BY_LEAVE != 0 => {
            out.write_all(b"received membership message that left group ")?;
            out.write_all(group)?;
            out.write_all(b"\n")
        }
        Kind::OtherMembership => writeln!(
            out,
            "received incorrecty membership message of type 0x{:x}",
            r.service
        ),
        Kind::Rejected => {
            out.write_all(b"REJECTED message from ")?;
            out.write_all(group)?;
            write!(
                out,
                ", of servicetype 0x{:x} messtype {}, (endian {}) to {} groups \n({} bytes): ",
                r.service,
                r.mess_type,
                r.endian_mismatch,
                r.num_groups,
                r.code()
            )?;
            out.write_all(c_text(d.body))?;
            out.write_all(b"\n")
        }
        Kind::Data | Kind::RegularMembership | Kind::Unknown => writeln!(
            out,
            "received message of unknown message type 0x{:x} with ret {}",
            r.service,
            r.code()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Outcome, Received};
    use crate::wire::name::name_field;
    use crate::wire::CAUSED_BY_JOIN;

    fn delivery<'a>(service: u32, groups: &'a [[u8; 32]], body: &'a [u8]) -> Delivery<'a> {
        Delivery {
            received: Received {
                outcome: Outcome::Complete,
                service,
                sender: name_field(b"#bob#localhost"),
                num_groups: groups.len() as i32,
                mess_type: 1,
                endian_mismatch: 0,
                data_len: body.len() as i32,
            },
            groups,
            body,
        }
    }

    fn shown(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kinds_follow_the_header_macros() {
        assert_eq!(kind(SAFE_MESS), Kind::Data);
        assert_eq!(kind(REG_MEMB_MESS | CAUSED_BY_JOIN), Kind::RegularMembership);
        assert_eq!(kind(TRANSITION_MESS), Kind::OtherMembership);
        assert_eq!(kind(CAUSED_BY_LEAVE), Kind::OtherMembership);
        assert_eq!(kind(SAFE_MESS | REJECT_MESS), Kind::Rejected);
        assert_eq!(kind(0), Kind::Unknown);
    }

    #[test]
    fn data_line_stops_at_nul() {
        let groups = [name_field(b"g1")];
        let d = delivery(SAFE_MESS | FIFO_MESS, &groups, b"hi\0junk");
        assert_eq!(
            shown(|o| write_data(o, &d, "")),
            "received FIFO message from #bob#localhost, of type 1, (endian 0) to 1 groups \n(7 bytes): hi\n"
        );
        assert_eq!(
            shown(|o| write_data(o, &d, "during wait for members, ")),
            "received FIFO message during wait for members, from #bob#localhost, of type 1, \
             (endian 0) to 1 groups \n(7 bytes): hi\n"
        );
    }

    #[test]
    fn membership_lists_members() {
        let groups = [name_field(b"#a#h"), name_field(b"#b#h")];
        let d = delivery(REG_MEMB_MESS | CAUSED_BY_JOIN, &groups, b"");
        assert_eq!(
            shown(|o| write_regular_membership(o, &d)),
            "Received REGULAR membership for group #bob#localhost with 2 members, where I am member 1:\n\t#a#h\n\t#b#h\n"
        );
    }

    #[test]
    fn other_notices() {
        let d = delivery(TRANSITION_MESS, &[], b"");
        assert_eq!(
            shown(|o| write_other(o, &d)),
            "received TRANSITIONAL membership for group #bob#localhost\n"
        );
        let d = delivery(CAUSED_BY_LEAVE, &[], b"");
        assert_eq!(
            shown(|o| write_other(o, &d)),
            "received membership message that left group #bob#localhost\n"
        );
        let d = delivery(SAFE_MESS | REJECT_MESS, &[], b"x");
        assert_eq!(
            shown(|o| write_other(o, &d)),
            "REJECTED message from #bob#localhost, of servicetype 0x400020 messtype 1, (endian 0) to 0 groups \n(1 bytes): x\n"
        );
        let d = delivery(0x4000, &[], b"");
        assert_eq!(
            shown(|o| write_other(o, &d)),
            "received message of unknown message type 0x4000 with ret 0\n"
        );
    }
}
