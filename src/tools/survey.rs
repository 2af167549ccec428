//! Asking daemons for their status (`spmonitor`'s I/O): one query per daemon at a time, all
//! daemons at once; a daemon that does not answer within the timeout is asked at its next
//! address, until one answers or none is left.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::monitor::query::{decode_reply, encode_query, Query, MAX_REPLY};
use crate::monitor::report::Outcome;
use crate::monitor::Target;
use crate::rng::Rng;

/// A wait on one of two sockets, so that neither is left unread for long.
const SHARED_WAIT: Duration = Duration::from_millis(10);

/// Sockets to send queries from: one per address family in use.
struct Askers {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Askers {
    fn open(targets: &[Target]) -> io::Result<Askers> {
        let wanted = |v6: bool| {
            targets
                .iter()
                .flat_map(|t| &t.addresses)
                .any(|a| a.is_ipv6() == v6)
        };
        let open = |any: IpAddr| UdpSocket::bind(SocketAddr::new(any, 0));
        Ok(Askers {
            v4: wanted(false)
                .then(|| open(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
                .transpose()?,
            v6: wanted(true)
                .then(|| open(IpAddr::V6(Ipv6Addr::UNSPECIFIED)))
                .transpose()?,
        })
    }

    fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let socket = if to.is_ipv6() { &self.v6 } else { &self.v4 };
        if let Some(Err(e)) = socket.as_ref().map(|s| s.send_to(bytes, to)) {
            // The daemon counts as silent at this address; the next one is tried.
            log::debug!("query to {to}: {e}");
        }
    }

    /// One datagram, waiting at most `limit`; `None` when none came.
    fn receive(&self, buf: &mut [u8], limit: Duration) -> Option<(usize, SocketAddr)> {
        let sockets: Vec<&UdpSocket> = self.v4.iter().chain(self.v6.iter()).collect();
        let each = if sockets.len() > 1 {
            limit.min(SHARED_WAIT)
        } else {
            limit
        };
        for socket in sockets {
            // A zero timeout would mean "block forever".
            if socket
                .set_read_timeout(Some(each.max(Duration::from_millis(1))))
                .is_err()
            {
                continue;
            }
            match socket.recv_from(buf) {
                Ok(got) => return Some(got),
                // Timeouts, and errors left by ICMP for an earlier query: nothing to read.
                Err(e) => log::debug!("receiving answers: {e}"),
            }
        }
        None
    }
}

fn fresh_nonces() -> Rng {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    Rng::new(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

/// Asks every target for its status; the outcomes come in the targets' order. Each address
/// gets `timeout` to answer; a late answer from an address already given up on still counts.
pub fn survey(targets: &[Target], timeout: Duration) -> io::Result<Vec<Outcome>> {
    let askers = Askers::open(targets)?;
    let mut nonces = fresh_nonces();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; targets.len()];
    // (nonce, target) of every query sent.
    let mut sent: Vec<(u64, usize)> = Vec::new();
    let mut buf = vec![0u8; MAX_REPLY + 1];
    let rounds = targets.iter().map(|t| t.addresses.len()).max().unwrap_or(0);
    for round in 0..rounds {
        let mut asked = false;
        for (i, target) in targets.iter().enumerate() {
            if let (None, Some(&address)) = (&outcomes[i], target.addresses.get(round)) {
                let nonce = nonces.next_u64();
                sent.push((nonce, i));
                askers.send(address, &encode_query(Query { nonce }));
                asked = true;
            }
        }
        if !asked {
            continue;
        }
        let deadline = Instant::now() + timeout;
        let waiting = |outcomes: &[Option<Outcome>]| {
            targets
                .iter()
                .zip(outcomes)
                .any(|(t, o)| o.is_none() && t.addresses.len() > round)
        };
        while waiting(&outcomes) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            let Some((n, from)) = askers.receive(&mut buf, left) else {
                continue;
            };
            let Ok(reply) = decode_reply(&buf[..n]) else {
                log::debug!("dropped {n} bytes from {from}: not a monitor reply");
                continue;
            };
            let Some(&(_, i)) = sent.iter().find(|(nonce, _)| *nonce == reply.nonce) else {
                log::debug!("dropped a reply from {from} to no query of ours");
                continue;
            };
            if outcomes[i].is_none() {
                outcomes[i] = Some(Outcome::Answered {
                    from,
                    document: reply.document.to_string(),
                });
            }
        }
    }
    Ok(targets
        .iter()
        .zip(outcomes)
        .map(|(t, o)| {
            o.unwrap_or_else(|| Outcome::Silent {
                tried: t.addresses.clone(),
                timeout,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::query::{decode_query, encode_reply, Reply};

    /// A daemon stand-in on loopback answering one query with `document`.
    fn responder(document: &'static str) -> (SocketAddr, std::thread::JoinHandle<bool>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let address = socket.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                return false;
            };
            let query = decode_query(&buf[..n]).expect("a query");
            let mut reply = Vec::new();
            encode_reply(
                &mut reply,
                Reply {
                    nonce: query.nonce,
                    document,
                },
            );
            socket.send_to(&reply, from).is_ok()
        });
        (address, handle)
    }

    #[test]
    fn next_address_is_tried_after_silence() {
        // Bound but never read: queries to it go unanswered.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_address = silent.local_addr().unwrap();
        let (answering, handle) = responder("{\"ok\":true}");
        let targets = [
            Target {
                name: "a".into(),
                id: 1,
                addresses: vec![silent_address, answering],
            },
            Target {
                name: "b".into(),
                id: 2,
                addresses: vec![silent_address],
            },
        ];
        let started = Instant::now();
        let outcomes = survey(&targets, Duration::from_millis(200)).unwrap();
        assert!(handle.join().unwrap(), "the responder answered");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            outcomes,
            [
                Outcome::Answered {
                    from: answering,
                    document: "{\"ok\":true}".into()
                },
                Outcome::Silent {
                    tried: vec![silent_address],
                    timeout: Duration::from_millis(200)
                }
            ]
        );
    }
}
