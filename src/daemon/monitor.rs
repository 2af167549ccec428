//! The monitor endpoint: queries arrive on the daemon-network sockets and are answered at
//! once with the status document (see [`crate::monitor`]).

use std::net::SocketAddr;

use super::Daemon;
use crate::monitor::document::{NetworkView, QueryCounters, Snapshot};
use crate::monitor::query::{decode_query, encode_reply, Reply};
use crate::monitor::Identity;

/// Takes a monitor datagram read on socket `socket`: a well-formed query from a trusted
/// source is queued in `pending`, anything else is dropped and counted.
pub(super) fn admit(
    identity: &Identity,
    counters: &mut QueryCounters,
    pending: &mut Vec<(usize, SocketAddr, u64)>,
    socket: usize,
    from: SocketAddr,
    bytes: &[u8],
) {
    if !identity.trusts(from.ip()) {
        counters.refused += 1;
        log::debug!("monitor query from {from} refused: not a configured daemon's address");
        return;
    }
    match decode_query(bytes) {
        Ok(query) => pending.push((socket, from, query.nonce)),
        Err(e) => {
            counters.malformed += 1;
            log::debug!("monitor datagram from {from} dropped: {e}");
        }
    }
}

impl Daemon {
    /// Answers the queued monitor queries, each from the socket it came on.
    pub(super) fn answer_queries(&mut self) {
        let document = self.snapshot_json();
        let mut reply = Vec::with_capacity(document.len() + 16);
        for (socket, from, nonce) in std::mem::take(&mut self.pending_queries) {
            encode_reply(
                &mut reply,
                Reply {
                    nonce,
                    document: &document,
                },
            );
            self.net.reply(socket, from, &reply);
            self.queries.answered += 1;
        }
    }

    fn snapshot_json(&self) -> String {
        let now = self.now();
        let ring = self.node.ring();
        let stats = self.net.stats();
        let networks = self
            .settings
            .links
            .iter()
            .map(|links| NetworkView {
                id: links.network,
                port: links.port,
                addresses: links.local.clone(),
                counters: stats
                    .iter()
                    .find(|(n, _)| *n == links.network)
                    .map(|(_, s)| *s)
                    .unwrap_or_default(),
            })
            .collect();
        Snapshot {
            identity: &self.settings.monitor,
            uptime: self.started.elapsed(),
            state: self.node.membership_state(),
            ring: ring.ring_id(),
            members: ring.members(),
            aru: ring.aru(),
            highest_seq: ring.highest_seq(),
            configurations: self.node.stats().configurations,
            membership: *self.node.membership_stats(),
            ring_stats: self.node.ring_stats(),
            sessions: self.node.session_count(),
            connections: self.open_conns,
            groups: self.node.group_count(),
            networks,
            links: self.net.link_status(now),
            queries: self.queries,
        }
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::net::tests::config;
    use crate::monitor::query::{encode_query, Query};

    #[test]
    fn queries_from_strangers_and_malformed_ones_are_counted_not_queued() {
        let c = config("Spread_Segment 10.1.0.255:4803 { a 10.1.0.1\n b 10.1.0.2 }\n");
        let identity = Identity::from_config(&c, 0, 0);
        let mut counters = QueryCounters::default();
        let mut pending = Vec::new();
        let query = encode_query(Query { nonce: 5 });
        let mut take = |from: &str, bytes: &[u8]| {
            admit(
                &identity,
                &mut counters,
                &mut pending,
                1,
                from.parse().unwrap(),
                bytes,
            )
        };
        take("10.1.0.2:40000", &query);
        take("127.0.0.1:40001", &query);
        take("10.9.9.9:40002", &query);
        take("10.1.0.2:40003", &query[..5]);
        assert_eq!(
            pending,
            [
                (1, "10.1.0.2:40000".parse().unwrap(), 5),
                (1, "127.0.0.1:40001".parse().unwrap(), 5)
            ]
        );
        assert_eq!(
            counters,
            QueryCounters {
                answered: 0,
                refused: 1,
                malformed: 1
            }
        );
    }
}
