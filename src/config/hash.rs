//! The configuration hash and the name-derived daemon ids.
//!
//! Both follow the original: Bob Jenkins' one-at-a-time hash, over a canonical text of the
//! segments (port, addresses, daemon names, addresses and ids) plus the protocol version and ring
//! kind for the configuration (extra networks, which the original does not have, add their own
//! lines), and over the name for an id. Layout and comments of the file
//! therefore never change the hash.

use std::fmt::Write;

use super::Config;

/// Major version of the protocol, part of the hashed text.
const PROTOCOL_MAJOR_VERSION: u32 = 5;

/// One-at-a-time hash of `text` followed by a NUL byte, bytes taken as signed like C's `char`.
pub(super) fn one_at_a_time(text: &str) -> u32 {
    let bytes = text.as_bytes().iter().copied().chain(std::iter::once(0u8));
    let mut h = (text.len() as u32).wrapping_add(1);
    for b in bytes {
        h = h.wrapping_add(b as i8 as i32 as u32);
        h = h.wrapping_add(h << 10);
        h ^= h >> 6;
    }
    h = h.wrapping_add(h << 3);
    h ^= h >> 11;
    h.wrapping_add(h << 15)
}

/// The id of a daemon without a VirtualID: a hash of its name that is never 0 or all ones
/// (those are reserved).
pub fn virtual_id_from_name(name: &str) -> u32 {
    unreserved_id(one_at_a_time(name), name.len())
}

/// `hash` unless it is a reserved id, else a value derived from the name's length.
fn unreserved_id(hash: u32, name_len: usize) -> u32 {
    if hash != 0 && hash != u32::MAX {
        return hash;
    }
    // Move clear of the low and high bytes, which users tend to pick for explicit ids.
    match ((name_len as u32).wrapping_add(1)) << 16 {
        0 => 1 << 16,
        shifted => shifted,
    }
}

/// The text the hash covers.
pub(super) fn canonical_text(config: &Config) -> String {
    let mut text = String::new();
    for segment in &config.segments {
        // Writing to a String cannot fail.
        let _ = write!(text, "Segment: port = {};", segment.port);
        if !config.options.exclude_seg_addrs_from_hash {
            for address in std::iter::once(&segment.address).chain(&segment.extra_addresses) {
                let _ = write!(text, " [{address}]");
            }
        }
        text.push('\n');
        for daemon in &segment.daemons {
            let _ = writeln!(text, "\t'{}' [{}] [{}]", daemon.name, daemon.address, daemon.id());
        }
        text.push('\n');
    }
    for network in &config.networks {
        let _ = writeln!(
            text,
            "Network: '{}' port = {}; [{}]",
            network.name, network.port, network.address
        );
        for member in &network.members {
            let _ = writeln!(text, "\t'{}' [{}]", member.daemon, member.address);
        }
        text.push('\n');
    }
    // The original hashes the ring kind as written, not as later defaulted.
    let ring = if config.options.accelerated_ring_configured == Some(true) {
        "Accelerated Ring"
    } else {
        "Original Ring"
    };
    let _ = write!(text, "Version: {PROTOCOL_MAJOR_VERSION}\nProtocol: {ring}\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are ids the original daemon printed for these names.
    #[test]
    fn one_at_a_time_matches_the_original() {
        assert_eq!(one_at_a_time("localhost"), 482_711_334);
        assert_eq!(one_at_a_time("a"), 2_489_203_003);
    }

    #[test]
    fn high_bytes_count_as_signed_chars() {
        assert_eq!(one_at_a_time("bé"), 3_320_347_363);
    }

    #[test]
    fn reserved_hashes_are_replaced() {
        assert_eq!(unreserved_id(0, 4), 5 << 16);
        assert_eq!(unreserved_id(u32::MAX, 4), 5 << 16);
        assert_eq!(unreserved_id(0, 0xffff), 1 << 16);
        assert_eq!(unreserved_id(7, 4), 7);
    }

    #[test]
    fn name_ids_are_the_name_hash() {
        assert_eq!(virtual_id_from_name("localhost"), 482_711_334);
        assert_eq!(virtual_id_from_name("c"), 2_466_198_569);
    }
}
