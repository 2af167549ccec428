//! Link packets: probes and their acknowledgements, sent by the link layer itself.
//!
//! They have their own magic (`"SL"`, where ring packets have `"SR"`), so neither decoder takes
//! the other's packets. The network id and the sender sit at the same offsets as in ring
//! packets. Integers are big-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"SL"` |
//! | 2 | 1 | format version ([`VERSION`]) |
//! | 3 | 1 | kind: 1 probe, 2 ack |
//! | 4 | 1 | network id the packet was sent on |
//! | 5 | 1 | number of report entries (at most [`MAX_ENTRIES`]) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | configuration hash |
//! | 12 | 4 | sender daemon id |
//! | 16 | 4 | receiver daemon id |
//! | 20 | 4 | sequence: link packets the sender sent the receiver on this network (gaps are losses) |
//! | 24 | 4 | report number: grows with every report the sender writes to the receiver |
//! | 28 | 8 | timestamp: a probe carries the sender's clock (µs), an ack echoes its probe's |
//! | 36 | 4 | incarnation: the sender daemon's run (a number its daemon picked at start) |
//! | 40 | 9 each | report entries |
//!
//! Sequence and report numbers count within one run of the sender: a packet of another
//! incarnation is of another run, however its numbers compare (a restarted peer counts from
//! zero again, while a network lagging seconds behind still brings packets of the old run).
//!
//! A report entry tells how the sender hears the receiver on one network they share:
//! network id (1), reception ([`Reception`], 1), the sender's decision: 1 up, 0 down (1), loss
//! in permille (2), and for how long reception has been good without a break, in ms (4).

use crate::config::MAX_NETWORKS;

pub const MAGIC: [u8; 2] = *b"SL";
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 40;
pub const ENTRY_LEN: usize = 9;
pub const MAX_ENTRIES: usize = MAX_NETWORKS;
/// The largest link packet.
pub const MAX_LEN: usize = HEADER_LEN + MAX_ENTRIES * ENTRY_LEN;

const KIND_PROBE: u8 = 1;
const KIND_ACK: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// "Here I am; answer me": the receiver acks on the same network.
    Probe,
    /// The answer to a probe, echoing its timestamp (round-trip time).
    Ack,
}

/// How a daemon receives a peer on one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reception {
    Good,
    /// Nothing arrived for too long.
    Silent,
    /// Packets go missing.
    Lossy,
    /// Packets claiming this network arrive on another one.
    Crossed,
}

impl Reception {
    fn to_byte(self) -> u8 {
        match self {
            Reception::Good => 0,
            Reception::Silent => 1,
            Reception::Lossy => 2,
            Reception::Crossed => 3,
        }
    }

    fn from_byte(byte: u8) -> Option<Reception> {
        [
            Reception::Good,
            Reception::Silent,
            Reception::Lossy,
            Reception::Crossed,
        ]
        .get(byte as usize)
        .copied()
    }
}

/// One line of a report: how the report's sender hears its receiver on `network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportEntry {
    pub network: u8,
    pub reception: Reception,
    /// The sender uses this network towards the receiver.
    pub up: bool,
    pub loss_permille: u16,
    /// Milliseconds of unbroken good reception (saturating).
    pub good_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub kind: ProbeKind,
    pub network: u8,
    pub config_hash: u32,
    pub sender: u32,
    pub receiver: u32,
    pub seq: u32,
    pub report_number: u32,
    pub timestamp: u64,
    /// The sender's run: see the module documentation.
    pub incarnation: u32,
    pub entries: Vec<ReportEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeError {
    Truncated,
    /// Not a link packet.
    Foreign,
    Version(u8),
    Invalid(&'static str),
}

/// True when `bytes` start like a link packet (and so are not a ring packet).
pub fn is_link_packet(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Appends an encoded probe or ack; entries past [`MAX_ENTRIES`] are left out.
pub fn encode(out: &mut Vec<u8>, probe: &Probe) {
    let entries = &probe.entries[..probe.entries.len().min(MAX_ENTRIES)];
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(match probe.kind {
        ProbeKind::Probe => KIND_PROBE,
        ProbeKind::Ack => KIND_ACK,
    });
    out.push(probe.network);
    out.push(entries.len() as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&probe.config_hash.to_be_bytes());
    out.extend_from_slice(&probe.sender.to_be_bytes());
    out.extend_from_slice(&probe.receiver.to_be_bytes());
    out.extend_from_slice(&probe.seq.to_be_bytes());
    out.extend_from_slice(&probe.report_number.to_be_bytes());
    out.extend_from_slice(&probe.timestamp.to_be_bytes());
    out.extend_from_slice(&probe.incarnation.to_be_bytes());
    for e in entries {
        out.push(e.network);
        out.push(e.reception.to_byte());
        out.push(u8::from(e.up));
        out.extend_from_slice(&e.loss_permille.to_be_bytes());
        out.extend_from_slice(&e.good_ms.to_be_bytes());
    }
}

fn be<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N]
        .try_into()
        .expect("length checked by the caller")
}

/// Decodes one link packet; anything malformed is an error, never a panic.
pub fn decode(bytes: &[u8]) -> Result<Probe, ProbeError> {
    if bytes.len() < 2 {
        return Err(ProbeError::Truncated);
    }
    if !is_link_packet(bytes) {
        return Err(ProbeError::Foreign);
    }
    if bytes.len() < HEADER_LEN {
        return Err(ProbeError::Truncated);
    }
    if bytes[2] != VERSION {
        return Err(ProbeError::Version(bytes[2]));
    }
    let kind = match bytes[3] {
        KIND_PROBE => ProbeKind::Probe,
        KIND_ACK => ProbeKind::Ack,
        _ => return Err(ProbeError::Invalid("kind")),
    };
    let count = bytes[5] as usize;
    if count > MAX_ENTRIES {
        return Err(ProbeError::Invalid("too many report entries"));
    }
    if bytes[6..8] != [0, 0] {
        return Err(ProbeError::Invalid("reserved bytes"));
    }
    match bytes.len().cmp(&(HEADER_LEN + count * ENTRY_LEN)) {
        std::cmp::Ordering::Less => return Err(ProbeError::Truncated),
        std::cmp::Ordering::Greater => return Err(ProbeError::Invalid("bytes after the last entry")),
        std::cmp::Ordering::Equal => {}
    }
    let mut entries = Vec::with_capacity(count);
    for chunk in bytes[HEADER_LEN..].chunks_exact(ENTRY_LEN) {
        let network = chunk[0];
        if network as usize >= MAX_NETWORKS {
            return Err(ProbeError::Invalid("report network id"));
        }
        let reception = Reception::from_byte(chunk[1]).ok_or(ProbeError::Invalid("reception"))?;
        let up = match chunk[2] {
            0 => false,
            1 => true,
            _ => return Err(ProbeError::Invalid("report state")),
        };
        entries.push(ReportEntry {
            network,
            reception,
            up,
            loss_permille: u16::from_be_bytes(be(chunk, 3)).min(1000),
            good_ms: u32::from_be_bytes(be(chunk, 5)),
        });
    }
    Ok(Probe {
        kind,
        network: bytes[4],
        config_hash: u32::from_be_bytes(be(bytes, 8)),
        sender: u32::from_be_bytes(be(bytes, 12)),
        receiver: u32::from_be_bytes(be(bytes, 16)),
        seq: u32::from_be_bytes(be(bytes, 20)),
        report_number: u32::from_be_bytes(be(bytes, 24)),
        timestamp: u64::from_be_bytes(be(bytes, 28)),
        incarnation: u32::from_be_bytes(be(bytes, 36)),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet;

    fn sample() -> Probe {
        Probe {
            kind: ProbeKind::Probe,
            network: 3,
            config_hash: 0xfeed_f00d,
            sender: 7,
            receiver: 9,
            seq: 41,
            report_number: 5,
            timestamp: 123_456_789,
            incarnation: 0x1357_9bdf,
            entries: vec![
                ReportEntry {
                    network: 0,
                    reception: Reception::Good,
                    up: true,
                    loss_permille: 12,
                    good_ms: 70_000,
                },
                ReportEntry {
                    network: 3,
                    reception: Reception::Crossed,
                    up: false,
                    loss_permille: 1000,
                    good_ms: 0,
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let p = sample();
        let mut out = Vec::new();
        encode(&mut out, &p);
        assert_eq!(out.len(), HEADER_LEN + 2 * ENTRY_LEN);
        assert_eq!(decode(&out).unwrap(), p);
        let ack = Probe {
            kind: ProbeKind::Ack,
            entries: Vec::new(),
            ..p
        };
        out.clear();
        encode(&mut out, &ack);
        assert_eq!(decode(&out).unwrap(), ack);
        // Same places as in ring packets, so the daemon's tools treat both alike.
        assert_eq!(out[4], 3);
        assert_eq!(out[12..16], 7u32.to_be_bytes());
        assert_eq!(out[36..40], 0x1357_9bdfu32.to_be_bytes());
    }

    #[test]
    fn ring_and_link_decoders_refuse_each_other() {
        let mut out = Vec::new();
        encode(&mut out, &sample());
        assert_eq!(packet::decode(&out).unwrap_err(), packet::DecodeError::Foreign);
        let mut ring = Vec::new();
        let header = packet::Header {
            kind: packet::Kind::Hurry,
            network: 0,
            config_hash: 1,
            sender: 2,
            ring: packet::RingId { rep: 2, seq: 1 },
        };
        packet::encode_hurry(&mut ring, &header);
        assert!(!is_link_packet(&ring));
        assert_eq!(decode(&ring).unwrap_err(), ProbeError::Foreign);
    }

    #[test]
    fn rejects_malformed() {
        let mut good = Vec::new();
        encode(&mut good, &sample());
        assert_eq!(decode(&good[..good.len() - 1]), Err(ProbeError::Truncated));
        assert_eq!(decode(&good[..10]), Err(ProbeError::Truncated));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(decode(&long), Err(ProbeError::Invalid(_))));
        // The format before incarnations.
        let mut version = good.clone();
        version[2] = 1;
        assert_eq!(decode(&version), Err(ProbeError::Version(1)));
        for (at, value) in [
            (3, 9),
            (5, 9),
            (6, 1),
            (HEADER_LEN, 8),
            (HEADER_LEN + 1, 4),
            (HEADER_LEN + 2, 2),
        ] {
            let mut bad = good.clone();
            bad[at] = value;
            assert!(
                matches!(decode(&bad), Err(ProbeError::Invalid(_))),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn mutated_bytes_never_panic() {
        let mut good = Vec::new();
        encode(&mut good, &sample());
        let mut decoded = 0;
        for at in 0..good.len() {
            for value in [0u8, 1, 2, 0x7f, 0xff] {
                let mut b = good.clone();
                b[at] = value;
                for cut in [0, 1, 9] {
                    if decode(&b[..b.len().saturating_sub(cut)]).is_ok() {
                        decoded += 1;
                    }
                }
            }
        }
        assert!(decoded > 0);
    }
}
