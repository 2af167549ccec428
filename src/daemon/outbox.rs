//! Datagrams queued for one socket and sent together. A flush takes them per destination (the
//! order to each destination is kept) in runs of equal length, and sends each run as one
//! message that the kernel cuts back into its datagrams (UDP segmentation offload): one trip
//! through the IP stack, and on a virtual network through the bridge and the receiver's stack
//! too, for up to [`MAX_SEGMENTS`] datagrams. All the runs go by one sendmmsg(2). The ring
//! sends most data in bursts of equal-sized packets at each token visit, so most of it goes in
//! runs. A kernel or device that refuses a run turns segmentation off for that socket.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::SockAddr;

use super::sys::{self, Outgoing};
use crate::ring::Datagrams;

/// Most datagrams in one run (the kernel takes 64 at least, more in recent versions).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes in one run: the payload of the largest IP packet, with room for the headers.
const MAX_RUN_BYTES: usize = 65_000;

/// What a flush did: datagrams sent, and datagrams the kernel refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: u64,
    pub failed: u64,
}

/// Datagrams `start..end` of a flush's order, to one destination, all `segment` bytes long
/// but the last, which may be shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    start: usize,
    end: usize,
    segment: usize,
}

impl Run {
    fn offloaded(&self) -> bool {
        self.end - self.start > 1
    }
}

/// The order in which `destinations` (of the queued datagrams) are sent: by destination, in
/// the order each first appears, queued order within each.
fn send_order(destinations: &[SocketAddr]) -> Vec<usize> {
    let mut seen: Vec<SocketAddr> = Vec::new();
    for to in destinations {
        if !seen.contains(to) {
            seen.push(*to);
        }
    }
    seen.iter()
        .flat_map(|to| (0..destinations.len()).filter(move |&i| destinations[i] == *to))
        .collect()
}

/// The runs of datagrams of `lengths` to `destinations`, both in sending order; with
/// `segmentation` off, each datagram is its own run.
fn runs(destinations: &[SocketAddr], lengths: &[usize], segmentation: bool) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut bytes = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let extends = runs.last().is_some_and(|run| {
            let last = lengths[run.end - 1];
            segmentation
                && destinations[run.start] == destinations[i]
                // A shorter datagram ends its run.
                && last == run.segment
                && (1..=run.segment).contains(&len)
                && run.end - run.start < MAX_SEGMENTS
                && bytes + len <= MAX_RUN_BYTES
        });
        match runs.last_mut() {
            Some(run) if extends => {
                run.end += 1;
                bytes += len;
            }
            _ => {
                runs.push(Run {
                    start: i,
                    end: i + 1,
                    segment: len,
                });
                bytes = len;
            }
        }
    }
    runs
}

/// The datagrams queued for one socket.
pub struct Outbox {
    queued: Datagrams<SocketAddr>,
    /// Runs of several datagrams may go as one message (until the kernel refuses one).
    segmentation: bool,
}

impl Outbox {
    pub fn new() -> Outbox {
        Outbox {
            queued: Datagrams::default(),
            segmentation: true,
        }
    }

    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.queued.push_with(to, |arena| arena.extend_from_slice(bytes));
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends everything queued from the non-blocking UDP socket `fd` and empties the queue.
    /// UDP loses datagrams anyway: one the kernel refuses is counted, and the protocol
    /// retransmits.
    pub fn flush(&mut self, fd: RawFd) -> Flushed {
        let mut done = Flushed::default();
        if self.queued.is_empty() {
            return done;
        }
        let queued: Vec<(SocketAddr, &[u8])> = self.queued.iter().collect();
        let order = send_order(&queued.iter().map(|(to, _)| *to).collect::<Vec<_>>());
        let destinations: Vec<SocketAddr> = order.iter().map(|&i| queued[i].0).collect();
        let lengths: Vec<usize> = order.iter().map(|&i| queued[i].1.len()).collect();
        let parts: Vec<IoSlice<'_>> = order.iter().map(|&i| IoSlice::new(queued[i].1)).collect();
        let mut from = 0;
        while from < order.len() {
            let plan: Vec<Run> = runs(&destinations[from..], &lengths[from..], self.segmentation)
                .into_iter()
                .map(|r| Run {
                    start: r.start + from,
                    end: r.end + from,
                    ..r
                })
                .collect();
            let addresses: Vec<SockAddr> = plan.iter().map(|r| destinations[r.start].into()).collect();
            let messages: Vec<Outgoing<'_>> = plan
                .iter()
                .zip(&addresses)
                .map(|(r, to)| Outgoing {
                    to,
                    parts: &parts[r.start..r.end],
                    segment: r.offloaded().then_some(r.segment as u16),
                })
                .collect();
            let (sent, error) = sys::send_messages(fd, &messages);
            done.sent += plan[..sent].iter().map(|r| (r.end - r.start) as u64).sum::<u64>();
            let Some(e) = error else {
                break;
            };
            let failed = plan[sent];
            if failed.offloaded() {
                log::info!(
                    "sending {} datagrams of {} bytes to {} as one: {e}; sending one by one from now on",
                    failed.end - failed.start,
                    failed.segment,
                    destinations[failed.start]
                );
                self.segmentation = false;
                from = failed.start;
            } else {
                done.failed += 1;
                log::debug!(
                    "sending {} bytes to {}: {e}",
                    lengths[failed.start],
                    destinations[failed.start]
                );
                from = failed.end;
            }
        }
        self.queued.clear();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn datagrams_go_grouped_by_destination_in_queued_order() {
        let (a, b, c) = (addr(1), addr(2), addr(3));
        assert_eq!(send_order(&[a, b, a, c, b, a]), [0, 2, 5, 1, 4, 3]);
        assert!(send_order(&[]).is_empty());
    }

    #[test]
    fn runs_are_equal_lengths_to_one_destination_ended_by_a_shorter_one() {
        let (a, b) = (addr(1), addr(2));
        let spans = |to: &[SocketAddr], lengths: &[usize], on: bool| -> Vec<(usize, usize, usize)> {
            runs(to, lengths, on)
                .iter()
                .map(|r| (r.start, r.end, r.segment))
                .collect()
        };
        // Equal, then a shorter last one; a longer one starts a new run.
        assert_eq!(
            spans(&[a; 6], &[100, 100, 100, 40, 100, 200], true),
            [(0, 4, 100), (4, 5, 100), (5, 6, 200)]
        );
        // Another destination, or an empty datagram (which a run would lose), starts a new one.
        assert_eq!(
            spans(&[a, a, b, b, b], &[10, 10, 10, 0, 10], true),
            [(0, 2, 10), (2, 3, 10), (3, 4, 0), (4, 5, 10)]
        );
        // Segmentation off: one each.
        assert_eq!(
            spans(&[a; 3], &[10; 3], false),
            [(0, 1, 10), (1, 2, 10), (2, 3, 10)]
        );
        // Bounded in datagrams and in bytes.
        let many = vec![a; MAX_SEGMENTS + 1];
        assert_eq!(
            spans(&many, &vec![10; MAX_SEGMENTS + 1], true),
            [(0, MAX_SEGMENTS, 10), (MAX_SEGMENTS, MAX_SEGMENTS + 1, 10)]
        );
        let big = MAX_RUN_BYTES / 3 + 1;
        assert_eq!(spans(&[a; 3], &[big; 3], true), [(0, 2, big), (2, 3, big)]);
    }

    /// Where the kernel refuses runs, the outbox sends the datagrams one by one instead, from
    /// then on.
    #[test]
    fn a_refused_run_goes_one_by_one() {
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Without UDP checksums the kernel takes no segmented sends.
        sys::set_option(sender.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let mut outbox = Outbox::new();
        for i in 0..5u8 {
            outbox.push(receiver.local_addr().unwrap(), &[i; 10]);
        }
        assert_eq!(outbox.flush(sender.as_raw_fd()), Flushed { sent: 5, failed: 0 });
        assert!(!outbox.segmentation && outbox.is_empty());
        let mut buf = [0u8; 64];
        for i in 0..5u8 {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], [i; 10]);
        }
        assert!(receiver.recv(&mut buf).is_err(), "more than was sent");
    }
}
