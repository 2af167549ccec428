//! The configuration hash and the name-derived daemon ids.
//!
//! Both follow the original: Bob Jenkins' one-at-a-time hash, over a canonical text of the
//! segments (port, addresses, daemon names, addresses and ids) plus the protocol version and ring
//! kind for the configuration, and over the name for an id. Layout and comments of the file
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
    let id = one_at_a_time(name);
    if id != 0 && id != u32::MAX {
        return id;
    }
    // Move clear of the low and high bytes, which users tend to pick for explicit ids.
    match ((name.len() as u32).wrapping_add(1)) << 16 {
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

    #[test]
    fn one_at_a_time_matches_reference_values() {
        // Reference: the C function over "a\0" and "\0" (length-seeded variant), computed by hand.
        assert_eq!(one_at_a_time(""), reference(b"\0"));
        assert_eq!(one_at_a_time("a"), reference(b"a\0"));
        assert_ne!(one_at_a_time("a"), one_at_a_time("b"));
    }

    /// Straightforward transcription of the algorithm over raw bytes, for comparison.
    fn reference(buf: &[u8]) -> u32 {
        let mut h: u32 = buf.len() as u32;
        for &c in buf {
            h = h.wrapping_add(c as i8 as u32);
            h = h.wrapping_add(h << 10);
            h ^= h >> 6;
        }
        h = h.wrapping_add(h << 3);
        h ^= h >> 11;
        h.wrapping_add(h << 15)
    }

    #[test]
    fn high_bytes_count_as_signed() {
        assert_eq!(one_at_a_time("é"), reference("é\0".as_bytes()));
        assert_ne!(one_at_a_time("é"), one_at_a_time("e"));
    }

    #[test]
    fn name_ids_are_never_reserved_values() {
        for name in ["a", "localhost", "node1", "x"] {
            let id = virtual_id_from_name(name);
            assert!(id != 0 && id != u32::MAX);
            assert_eq!(id, one_at_a_time(name));
        }
    }
}
