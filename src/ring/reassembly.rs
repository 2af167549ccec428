//! Turning ordered data packets into messages: packed ones one by one, fragments glued back
//! together per originating daemon (a daemon's fragments arrive in order, since the ring
//! delivers in sequence order and each daemon sends a message's fragments in turn).

use super::output::Outputs;
use crate::wire::packet::{Content, Data};

#[derive(Debug)]
pub(super) struct Reassembly {
    /// The message being rebuilt for each daemon of the ring.
    partial: Vec<(u32, Vec<u8>)>,
}

impl Reassembly {
    pub(super) fn new(members: &[u32]) -> Reassembly {
        Reassembly {
            partial: members.iter().map(|&m| (m, Vec::new())).collect(),
        }
    }

    /// Delivers what packet `data` completes. False when its fragment does not continue the
    /// origin's message (the partial message is dropped).
    pub(super) fn deliver(&mut self, data: &Data<'_>, out: &mut Outputs) -> bool {
        match data.content {
            Content::Messages(messages) => {
                for (service, bytes) in messages.iter() {
                    out.deliver(data.seq, data.origin, service, |arena| {
                        arena.extend_from_slice(bytes)
                    });
                }
                true
            }
            Content::Fragment(f) => {
                let Some((_, buf)) = self.partial.iter_mut().find(|(m, _)| *m == data.origin) else {
                    return false;
                };
                if f.index == 0 {
                    buf.clear();
                } else if buf.is_empty() {
                    return false;
                }
                buf.extend_from_slice(f.bytes);
                if buf.len() > f.total_len as usize {
                    buf.clear();
                    return false;
                }
                if f.index + 1 == f.count {
                    let whole = buf.len() == f.total_len as usize;
                    if whole {
                        out.deliver(data.seq, data.origin, f.service, |arena| {
                            arena.extend_from_slice(buf)
                        });
                    }
                    buf.clear();
                    return whole;
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::packet::{Fragment, ServiceLevel};

    fn fragment(index: u16, count: u16, total_len: u32, bytes: &[u8]) -> Data<'_> {
        Data {
            seq: 10 + index as u64,
            origin: 7,
            content: Content::Fragment(Fragment {
                service: ServiceLevel::Safe,
                index,
                count,
                total_len,
                bytes,
            }),
        }
    }

    #[test]
    fn glues_fragments_and_refuses_gaps() {
        let mut r = Reassembly::new(&[3, 7]);
        let mut out = Outputs::new();
        assert!(r.deliver(&fragment(0, 3, 7, b"abc"), &mut out));
        assert!(r.deliver(&fragment(1, 3, 7, b"de"), &mut out));
        assert_eq!(out.deliveries().count(), 0);
        assert!(r.deliver(&fragment(2, 3, 7, b"fg"), &mut out));
        let d: Vec<_> = out.deliveries().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].seq, d[0].origin, d[0].service, d[0].message),
            (12, 7, ServiceLevel::Safe, &b"abcdefg"[..])
        );

        out.clear();
        assert!(
            !r.deliver(&fragment(1, 3, 7, b"de"), &mut out),
            "no first fragment"
        );
        assert!(r.deliver(&fragment(0, 2, 4, b"ab"), &mut out));
        assert!(
            !r.deliver(&fragment(1, 2, 4, b"cde"), &mut out),
            "longer than announced"
        );
        assert_eq!(out.deliveries().count(), 0);
        let stranger = Data {
            origin: 99,
            ..fragment(0, 2, 4, b"ab")
        };
        assert!(!r.deliver(&stranger, &mut out));
    }
}
