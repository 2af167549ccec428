//! A daemon's status document: what a monitor reply carries, as JSON. The field list is in
//! the README's `spmonitor` section; names are stable (fields may be added, never renamed).

use std::fmt::Write;
use std::net::IpAddr;
use std::time::Duration;

use super::json::quote;
use super::query::MAX_DOCUMENT;
use super::Identity;
use crate::daemon::net::NetStats;
use crate::link::{Health, Status};
use crate::membership::{MembershipStats, State};
use crate::ring::RingStats;
use crate::wire::packet::RingId;

/// Version of the document's layout (its `format` field).
pub const FORMAT: u32 = 1;

/// Monitor queries this daemon read, by what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryCounters {
    pub answered: u64,
    /// From an address that is neither loopback nor a configured daemon's.
    pub refused: u64,
    pub malformed: u64,
}

/// One network this daemon is on, and what went through its sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkView {
    pub id: u8,
    pub port: u16,
    /// This daemon's addresses there.
    pub addresses: Vec<IpAddr>,
    pub counters: NetStats,
}

/// Everything the document shows, read from the daemon at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    pub identity: &'a Identity,
    pub uptime: Duration,
    pub state: State,
    pub ring: RingId,
    /// Ids of the current ring's members, in ring order.
    pub members: &'a [u32],
    pub aru: u64,
    pub highest_seq: u64,
    /// Regular configurations installed since start.
    pub configurations: u64,
    pub membership: MembershipStats,
    pub ring_stats: RingStats,
    /// Open client sessions, and connections (sessions and handshakes).
    pub sessions: usize,
    pub connections: usize,
    pub groups: usize,
    /// Network 0 first.
    pub networks: Vec<NetworkView>,
    /// The link layer's view, on a multipath ring.
    pub links: Option<Status>,
    pub queries: QueryCounters,
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::AllUp => "all_up",
        Health::Degraded => "degraded",
        Health::LastNetwork => "last_network",
    }
}

pub fn state_name(state: State) -> &'static str {
    match state {
        State::Op => "operational",
        State::Gather => "gather",
        State::Form => "form",
        State::Evs => "evs",
    }
}

/// How much of the document was left out to fit one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    None,
    /// Each link keeps only its last transition.
    OlderTransitions,
    /// No link keeps any transition.
    Transitions,
    /// No link layer section (`links` is null; the multipath health stays).
    Links,
}

impl Cut {
    fn name(self) -> &'static str {
        match self {
            Cut::None => "none",
            Cut::OlderTransitions => "older_transitions",
            Cut::Transitions => "transitions",
            Cut::Links => "links",
        }
    }
}

impl Snapshot<'_> {
    /// The link layer's verdict; without one (a single network) every link is up.
    pub fn link_health(&self) -> Health {
        self.links.as_ref().map_or(Health::AllUp, Status::health)
    }

    /// The daemon's verdict: the link layer's, and at least degraded while the membership is
    /// not operational or the ring lacks a configured daemon.
    pub fn health(&self) -> Health {
        let complete = self.state == State::Op && self.members.len() >= self.identity.daemons.len();
        let membership = if complete { Health::AllUp } else { Health::Degraded };
        self.link_health().max(membership)
    }

    /// The document, at most [`MAX_DOCUMENT`] bytes: when the whole does not fit, older
    /// transitions, then all transitions, then the per-link entries are left out (the
    /// `truncated` field says which).
    pub fn to_json(&self) -> String {
        let mut text = String::new();
        for cut in [Cut::None, Cut::OlderTransitions, Cut::Transitions, Cut::Links] {
            text = self.write(cut);
            if text.len() <= MAX_DOCUMENT {
                break;
            }
        }
        text
    }

    fn name_of(&self, id: u32) -> Option<&str> {
        self.identity
            .daemons
            .iter()
            .find(|(d, _)| *d == id)
            .map(|(_, n)| n.as_str())
    }

    fn write(&self, cut: Cut) -> String {
        let mut j = String::with_capacity(4096);
        let id = self.identity;
        let health = self.health();
        let _ = write!(j, "{{\"format\":{FORMAT},\"daemon\":{{\"name\":");
        quote(&mut j, &id.name);
        let _ = write!(
            j,
            ",\"id\":{},\"address\":\"{}\",\"port\":{},\"config_hash\":{},\"version\":",
            id.id, id.address, id.port, id.config_hash
        );
        quote(&mut j, env!("CARGO_PKG_VERSION"));
        let _ = write!(
            j,
            ",\"uptime_ms\":{}}},\"health\":\"{}\",\"exit_code\":{},",
            self.uptime.as_millis(),
            health_name(health),
            health.exit_code()
        );
        self.write_membership(&mut j);
        self.write_ring(&mut j);
        let _ = write!(
            j,
            ",\"sessions\":{{\"sessions\":{},\"connections\":{},\"groups\":{}}},",
            self.sessions, self.connections, self.groups
        );
        self.write_multipath(&mut j, cut);
        let q = &self.queries;
        let _ = write!(
            j,
            ",\"monitor\":{{\"answered\":{},\"refused\":{},\"malformed\":{}}},\"truncated\":\"{}\"}}",
            q.answered,
            q.refused,
            q.malformed,
            cut.name()
        );
        j
    }

    fn write_membership(&self, j: &mut String) {
        let _ = write!(
            j,
            "\"membership\":{{\"state\":\"{}\",\"ring\":{{\"rep\":{},\"seq\":{}}},\"members\":[",
            state_name(self.state),
            self.ring.rep,
            self.ring.seq
        );
        for (i, member) in self.members.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            match self.name_of(*member) {
                Some(name) => quote(j, name),
                // Only configured daemons join a ring; shown by id should that ever change.
                None => quote(j, &format!("{member:#x}")),
            }
        }
        j.push_str("],\"configured\":[");
        for (i, (id, name)) in self.identity.daemons.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str("{\"name\":");
            quote(j, name);
            let _ = write!(j, ",\"id\":{id}}}");
        }
        let m = &self.membership;
        let _ = write!(
            j,
            "],\"configurations\":{},\"counters\":{{\"gathers\":{},\"installs\":{},\"malformed\":{},\
             \"foreign_hash\":{},\"unknown_sender\":{},\"other_ring\":{},\"stale_joins\":{},\
             \"stale_forms\":{},\"bad_recovery\":{},\"recovered_sent\":{}}}}}",
            self.configurations,
            m.gathers,
            m.installs,
            m.malformed,
            m.foreign_hash,
            m.unknown_sender,
            m.other_ring,
            m.stale_joins,
            m.stale_forms,
            m.bad_recovery,
            m.recovered_sent
        );
    }

    fn write_ring(&self, j: &mut String) {
        let r = &self.ring_stats;
        let _ = write!(
            j,
            ",\"ring\":{{\"aru\":{},\"highest_seq\":{},\"tokens\":{},\"duplicate_tokens\":{},\
             \"stale_tokens\":{},\"token_resends\":{},\"token_holds\":{},\"hurry_sent\":{},\
             \"hurry_received\":{},\"packets_sent\":{},\"packets_retransmitted\":{},\
             \"packets_received\":{},\"duplicate_packets\":{},\"refused_packets\":{},\
             \"stale_requests\":{},\"broken_messages\":{},\"aru_regressions\":{}}}",
            self.aru,
            self.highest_seq,
            r.tokens,
            r.duplicate_tokens,
            r.stale_tokens,
            r.token_resends,
            r.token_holds,
            r.hurry_sent,
            r.hurry_received,
            r.packets_sent,
            r.packets_retransmitted,
            r.packets_received,
            r.duplicate_packets,
            r.refused_packets,
            r.stale_requests,
            r.broken_messages,
            r.aru_regressions
        );
    }

    fn write_multipath(&self, j: &mut String, cut: Cut) {
        let mode = match &self.links {
            Some(status) => status.mode.name(),
            None => "single",
        };
        let _ = write!(j, "\"multipath\":{{\"mode\":\"{mode}\",\"networks\":[");
        for (i, n) in self.networks.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            let _ = write!(j, "{{\"id\":{},\"name\":", n.id);
            match self.identity.network_names.get(usize::from(n.id)) {
                Some(Some(name)) => quote(j, name),
                _ => j.push_str("null"),
            }
            let _ = write!(j, ",\"port\":{},\"addresses\":[", n.port);
            for (k, a) in n.addresses.iter().enumerate() {
                if k > 0 {
                    j.push(',');
                }
                let _ = write!(j, "\"{a}\"");
            }
            let c = &n.counters;
            let _ = write!(
                j,
                "],\"counters\":{{\"sent\":{},\"send_errors\":{},\"received\":{},\"unknown_sender\":{},\
                 \"own\":{},\"receive_errors\":{},\"oversized\":{}}}}}",
                c.sent, c.send_errors, c.received, c.unknown_sender, c.own, c.receive_errors, c.oversized
            );
        }
        j.push_str("],\"links\":");
        match &self.links {
            Some(status) if cut != Cut::Links => {
                let mut status = status.clone();
                for link in &mut status.links {
                    let keep = match cut {
                        Cut::None => link.transitions.len(),
                        Cut::OlderTransitions => 1,
                        Cut::Transitions | Cut::Links => 0,
                    };
                    let older = link.transitions.len().saturating_sub(keep);
                    link.transitions.drain(..older);
                }
                j.push_str(&status.to_json());
            }
            _ => j.push_str("null"),
        }
        let health = self.link_health();
        let _ = write!(
            j,
            ",\"health\":\"{}\",\"exit_code\":{}}}",
            health_name(health),
            health.exit_code()
        );
    }
}
