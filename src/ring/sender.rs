//! Local messages waiting for the token, and how they become data packets: small ones packed
//! together up to the MTU, large ones cut into fragments.

use std::collections::VecDeque;

use crate::wire::packet::{
    encode_fragment, Fragment, Header, MessagesWriter, ServiceLevel, DATA_PREFIX_LEN, ENTRY_HEADER_LEN,
    FRAGMENT_PREFIX_LEN,
};

#[derive(Debug)]
struct Pending {
    service: ServiceLevel,
    message: Vec<u8>,
    /// Fragments of it already sent (fragmented messages only).
    fragments_sent: u16,
}

#[derive(Debug)]
pub(super) struct SendQueue {
    queue: VecDeque<Pending>,
    mtu: usize,
    /// Largest message sent whole in a packet of its own.
    max_whole: usize,
    /// Bytes of a message per fragment.
    fragment_len: usize,
}

impl SendQueue {
    pub(super) fn new(mtu: usize) -> SendQueue {
        // Packed lengths are u16 on the wire.
        let max_whole = (mtu - DATA_PREFIX_LEN - 2 - ENTRY_HEADER_LEN).min(u16::MAX as usize);
        SendQueue {
            queue: VecDeque::new(),
            mtu,
            max_whole,
            fragment_len: mtu - FRAGMENT_PREFIX_LEN,
        }
    }

    pub(super) fn push(&mut self, service: ServiceLevel, message: Vec<u8>) {
        self.queue.push_back(Pending {
            service,
            message,
            fragments_sent: 0,
        });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn take_all(&mut self) -> Vec<(ServiceLevel, Vec<u8>)> {
        self.queue.drain(..).map(|p| (p.service, p.message)).collect()
    }

    /// Appends the next data packet to `out`; false when nothing waits.
    pub(super) fn next_packet(&mut self, out: &mut Vec<u8>, header: &Header, seq: u64, origin: u32) -> bool {
        let Some(first) = self.queue.front_mut() else {
            return false;
        };
        if first.message.len() > self.max_whole {
            let total = first.message.len();
            let count = total.div_ceil(self.fragment_len) as u16;
            let index = first.fragments_sent;
            let start = index as usize * self.fragment_len;
            let end = (start + self.fragment_len).min(total);
            let fragment = Fragment {
                service: first.service,
                index,
                count,
                total_len: total as u32,
                bytes: &first.message[start..end],
            };
            encode_fragment(out, header, seq, origin, &fragment);
            first.fragments_sent += 1;
            if first.fragments_sent == count {
                self.queue.pop_front();
            }
            return true;
        }
        let safe = first.service.is_safe();
        let mut writer = MessagesWriter::new(out, header, seq, origin);
        while let Some(next) = self.queue.front() {
            let fits = next.message.len() <= self.max_whole
                && writer.len() + ENTRY_HEADER_LEN + next.message.len() <= self.mtu;
            // SAFE never shares a packet with other levels: a packet is delivered as a whole.
            if !fits || next.service.is_safe() != safe {
                break;
            }
            writer.push(next.service, &next.message);
            self.queue.pop_front();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{decode, Body, Content, Kind, RingId};

    const MTU: usize = 200;

    fn header() -> Header {
        Header {
            kind: Kind::Data,
            network: 0,
            config_hash: 1,
            sender: 5,
            ring: RingId { rep: 5, seq: 1 },
        }
    }

    fn packets(q: &mut SendQueue) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for seq in 1..100 {
            let mut out = Vec::new();
            if !q.next_packet(&mut out, &header(), seq, 5) {
                return all;
            }
            assert!(out.len() <= MTU, "packet of {} bytes", out.len());
            all.push(out);
        }
        panic!("queue never drained");
    }

    #[test]
    fn packs_small_messages_up_to_the_mtu() {
        let mut q = SendQueue::new(MTU);
        for i in 0..10u8 {
            q.push(ServiceLevel::Agreed, vec![i; 40]);
        }
        let all = packets(&mut q);
        // 40-byte messages take 43 bytes each; a 200-byte packet has room for three after its prefix.
        assert_eq!(all.len(), 4);
        let mut seen = Vec::new();
        for p in &all {
            let Body::Data(d) = decode(p).unwrap().body else {
                panic!()
            };
            let Content::Messages(m) = d.content else { panic!() };
            seen.extend(m.iter().map(|(_, bytes)| bytes[0]));
        }
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
    }

    #[test]
    fn keeps_safe_apart_and_fragments_large_messages() {
        let mut q = SendQueue::new(MTU);
        q.push(ServiceLevel::Agreed, b"a".to_vec());
        q.push(ServiceLevel::Safe, b"s".to_vec());
        let large: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        q.push(ServiceLevel::Fifo, large.clone());
        q.push(ServiceLevel::Fifo, b"after".to_vec());
        assert_eq!(q.len(), 4);
        let all = packets(&mut q);
        assert!(q.is_empty());
        let expected_fragments = 1000usize.div_ceil(MTU - FRAGMENT_PREFIX_LEN);
        assert_eq!(all.len(), 2 + expected_fragments + 1);
        let mut rebuilt = Vec::new();
        for (i, p) in all[2..2 + expected_fragments].iter().enumerate() {
            let Body::Data(d) = decode(p).unwrap().body else {
                panic!()
            };
            let Content::Fragment(f) = d.content else {
                panic!("not a fragment")
            };
            assert_eq!((f.index as usize, f.count as usize), (i, expected_fragments));
            rebuilt.extend_from_slice(f.bytes);
        }
        assert_eq!(rebuilt, large);
    }
}
