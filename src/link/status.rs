//! What the link layer shows the monitor: a plain snapshot, and its JSON.

use std::fmt::Write;
use std::time::Duration;

use super::{DropReason, Fault, LinkCounters, LinkState, NetSet, Reason, Transition};
use crate::config::MultipathMode;

/// Incoming datagrams that did not reach the ring, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    pub duplicate: u64,
    /// Data packets the ring already had ([`DropReason::Late`]).
    pub late: u64,
    pub stale_token: u64,
    pub crossed: u64,
    pub own: u64,
    pub stranger: u64,
    pub wrong_network: u64,
    pub other_configuration: u64,
    pub malformed: u64,
}

impl Drops {
    pub(super) fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Duplicate => &mut self.duplicate,
            DropReason::Late => &mut self.late,
            DropReason::StaleToken => &mut self.stale_token,
            DropReason::Crossed { .. } => &mut self.crossed,
            DropReason::Own => &mut self.own,
            DropReason::Stranger => &mut self.stranger,
            DropReason::WrongNetwork => &mut self.wrong_network,
            DropReason::OtherConfiguration => &mut self.other_configuration,
            DropReason::Malformed => &mut self.malformed,
        };
        *counter += 1;
    }
}

/// One link: this daemon to `peer` on `network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub peer: u32,
    pub network: u8,
    /// This daemon's decision; [`LinkState::Unheard`] until the peer was first heard here
    /// both ways (a link that has not failed, and is not used yet).
    pub state: LinkState,
    /// `state` is [`LinkState::Up`].
    pub up: bool,
    /// Up here and at the peer: traffic uses it.
    pub usable: bool,
    /// What is wrong now, if anything (a link can be down and already fine, waiting out its
    /// hold time).
    pub fault: Option<Fault>,
    /// Flapping: it needs a whole damping period of good reception to come back.
    pub damped: bool,
    /// Smoothed round-trip time of probes.
    pub rtt: Option<Duration>,
    /// Loss of what the peer sent here, over the last 64 expected arrivals.
    pub loss_permille: u16,
    /// Loss of what we send, as the peer last reported it.
    pub peer_loss_permille: Option<u16>,
    pub counters: LinkCounters,
    /// The last transitions, oldest first.
    pub transitions: Vec<Transition>,
}

/// Overall verdict, as `spmonitor`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// Every link usable.
    AllUp = 0,
    /// Some link not usable.
    Degraded = 1,
    /// A peer on several networks is down to one of them, or to none.
    LastNetwork = 2,
}

impl Health {
    pub fn exit_code(self) -> i32 {
        self as i32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub me: u32,
    pub mode: MultipathMode,
    pub networks: NetSet,
    /// By peer, then network.
    pub links: Vec<LinkStatus>,
    pub drops: Drops,
}

impl Status {
    /// The verdict over every link. A link not heard yet is not usable: a daemon that has just
    /// started is at [`Health::LastNetwork`] until its peers answer its first probes.
    pub fn health(&self) -> Health {
        let mut health = Health::AllUp;
        let mut rest = &self.links[..];
        while let Some(first) = rest.first() {
            let count = rest.iter().take_while(|l| l.peer == first.peer).count();
            let (peer, tail) = rest.split_at(count);
            let usable = peer.iter().filter(|l| l.usable).count();
            if usable == 0 || (usable == 1 && peer.len() > 1) {
                return Health::LastNetwork;
            }
            if usable < peer.len() {
                health = Health::Degraded;
            }
            rest = tail;
        }
        health
    }

    /// The snapshot as one JSON object (times in microseconds of the caller's clock).
    pub fn to_json(&self) -> String {
        let mut j = String::new();
        let networks: Vec<String> = self.networks.iter().map(|n| n.to_string()).collect();
        let _ = write!(
            j,
            "{{\"me\":{},\"mode\":\"{}\",\"networks\":[{}],\"health\":{},\"links\":[",
            self.me,
            self.mode.name(),
            networks.join(","),
            self.health().exit_code()
        );
        for (i, l) in self.links.iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            link_json(&mut j, l);
        }
        let d = &self.drops;
        let _ = write!(
            j,
            "],\"drops\":{{\"duplicate\":{},\"late\":{},\"stale_token\":{},\"crossed\":{},\"own\":{},\
             \"stranger\":{},\"wrong_network\":{},\"other_configuration\":{},\"malformed\":{}}}}}",
            d.duplicate,
            d.late,
            d.stale_token,
            d.crossed,
            d.own,
            d.stranger,
            d.wrong_network,
            d.other_configuration,
            d.malformed
        );
        j
    }
}

fn fault_json(fault: Option<Fault>) -> String {
    match fault {
        None => "null".to_string(),
        Some(Fault::Crossed { arrives_on }) => {
            format!("{{\"kind\":\"crossed\",\"arrives_on\":{arrives_on}}}")
        }
        Some(f) => format!("{{\"kind\":\"{}\"}}", f.name()),
    }
}

fn optional<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or("null".to_string(), |v| v.to_string())
}

fn link_json(j: &mut String, l: &LinkStatus) {
    let c = &l.counters;
    let _ = write!(
        j,
        "{{\"peer\":{},\"network\":{},\"state\":\"{}\",\"up\":{},\"usable\":{},\"fault\":{},\"damped\":{},\
         \"rtt_us\":{},\"loss_permille\":{},\"peer_loss_permille\":{},\"packets\":{},\"tokens\":{},\
         \"duplicates\":{},\"stale\":{},\"crossed\":{},\"missed\":{},\"copies_sent\":{},\
         \"probes_sent\":{},\"probes_received\":{},\"acks_received\":{},\"ups\":{},\"downs\":{},\
         \"transitions\":[",
        l.peer,
        l.network,
        l.state.name(),
        l.up,
        l.usable,
        fault_json(l.fault),
        l.damped,
        optional(l.rtt.map(|d| d.as_micros())),
        l.loss_permille,
        optional(l.peer_loss_permille),
        c.packets,
        c.tokens,
        c.duplicates,
        c.stale,
        c.crossed,
        c.missed,
        c.copies_sent,
        c.probes_sent,
        c.probes_received,
        c.acks_received,
        c.ups,
        c.downs
    );
    for (i, t) in l.transitions.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        let reason = match t.reason {
            Reason::Fault(f) => fault_json(Some(f)),
            Reason::Recovered | Reason::Heard | Reason::PeerRestarted => {
                format!("{{\"kind\":\"{}\"}}", t.reason.name())
            }
        };
        let _ = write!(
            j,
            "{{\"at_us\":{},\"up\":{},\"reason\":{}}}",
            t.at.as_micros(),
            t.up,
            reason
        );
    }
    j.push_str("]}");
}
