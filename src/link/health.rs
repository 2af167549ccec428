//! The health of one link (this daemon to one peer on one network): what arrives, what the
//! peer reports, and the damped up/down decision.

use std::collections::VecDeque;
use std::time::Duration;

use super::probe::{Reception, ReportEntry};
use super::LinkParams;
use crate::ring::Time;

/// Transitions a link remembers for the monitor.
pub const TRANSITIONS_KEPT: usize = 8;

/// A run of good reception judges its loss over about this many recent expected arrivals: at
/// this count the run's tallies are halved, so that a long run still notices new loss.
const RUN_WINDOW: u32 = 1024;

/// What is wrong with a link, as far as this daemon can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing arrives from the peer on this network (and it does not say it hears us).
    Silent,
    /// Copies from the peer go missing on this network (and it does not say it hears us).
    Lossy,
    /// One-way: the peer hears us, we do not hear it.
    NotHearingPeer,
    /// One-way: we hear the peer, it reports it does not hear us.
    PeerNotHearingUs,
    /// Packets claiming this network arrive on network `arrives_on` (crossed cables).
    Crossed { arrives_on: u8 },
}

impl Fault {
    /// A short name for logs and JSON: `silent`, `lossy`, `one_way_in` (the peer is not
    /// heard), `one_way_out` (the peer does not hear us), `crossed`.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Silent => "silent",
            Fault::Lossy => "lossy",
            Fault::NotHearingPeer => "one_way_in",
            Fault::PeerNotHearingUs => "one_way_out",
            Fault::Crossed { .. } => "crossed",
        }
    }
}

/// Why a link changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Fault(Fault),
    /// Good both ways for the whole hold time.
    Recovered,
    /// First good reception both ways since this daemon or the peer started.
    Heard,
    /// The peer started again: its link starts afresh, unheard.
    PeerRestarted,
}

impl Reason {
    /// A short name for logs and JSON: a fault's name, `recovered`, `heard` or
    /// `peer_restarted`.
    pub fn name(&self) -> &'static str {
        match self {
            Reason::Fault(f) => f.name(),
            Reason::Recovered => "recovered",
            Reason::Heard => "heard",
            Reason::PeerRestarted => "peer_restarted",
        }
    }
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Not yet heard both ways since this daemon or the peer started: not used, but nothing
    /// failed.
    Unheard,
    Up,
    Down,
}

impl LinkState {
    /// `unheard`, `up` or `down`, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Unheard => "unheard",
            LinkState::Up => "up",
            LinkState::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub at: Time,
    pub up: bool,
    pub reason: Reason,
}

/// Counters of one link, since the link layer started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Ring packet copies that arrived from the peer on this network.
    pub packets: u64,
    /// Of which tokens.
    pub tokens: u64,
    /// Copies dropped because another network brought them first.
    pub duplicates: u64,
    /// Token copies older than one already seen from the peer, dropped.
    pub stale: u64,
    /// Packets claiming this network that arrived on another one.
    pub crossed: u64,
    /// Expected copies and probes from the peer that never came.
    pub missed: u64,
    /// Ring packet copies sent to the peer here (a broadcast counts for every peer).
    pub copies_sent: u64,
    pub probes_sent: u64,
    pub probes_received: u64,
    pub acks_received: u64,
    /// Comebacks after a failure (the first contact is none).
    pub ups: u64,
    /// Failures.
    pub downs: u64,
}

/// The peer's latest report about this network.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerView {
    received_at: Time,
    entry: ReportEntry,
}

#[derive(Debug)]
pub(super) struct Link {
    pub network: u8,
    /// `None` until anything valid from the peer arrived here.
    last_heard: Option<Time>,
    /// When a ring packet of the peer last arrived here.
    last_ring: Option<Time>,
    miss_streak: u32,
    /// The last 64 outcomes of expected arrivals, newest in bit 0; a set bit is a miss.
    history: u64,
    /// Sequence number of the peer's last link packet here.
    pub last_seq: Option<u32>,
    /// A single link packet missing before the last one, not counted yet: it may only be
    /// overtaken (reordered) and come next.
    pub hole: Option<u32>,
    /// When a packet claiming this network last arrived elsewhere, and where.
    crossed: Option<(Time, u8)>,
    /// Start of the current run of good reception.
    run_start: Option<Time>,
    /// Expected arrivals in the current run (see [`RUN_WINDOW`]), and of them the misses.
    run_expected: u32,
    run_missed: u32,
    peer_view: Option<PeerView>,
    pub last_sent: Option<Time>,
    pub last_probe: Option<Time>,
    pub next_seq: u32,
    pub rtt: Option<Duration>,
    state: LinkState,
    reenabled_at: Option<Time>,
    damped: bool,
    reception: Reception,
    /// Since when reception has not been good.
    bad_since: Option<Time>,
    fault: Option<Fault>,
    pub counters: LinkCounters,
    transitions: VecDeque<Transition>,
}

/// What an evaluation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Change {
    /// How we hear the peer changed: worth telling it at once.
    pub reception: bool,
    pub state: bool,
    /// A link that stays down has another fault now (e.g. silent, then crossed): `Some(old)`.
    pub fault_of_down: Option<Fault>,
}

impl Link {
    pub(super) fn new(network: u8) -> Link {
        Link {
            network,
            last_heard: None,
            last_ring: None,
            miss_streak: 0,
            history: 0,
            last_seq: None,
            hole: None,
            crossed: None,
            run_start: None,
            run_expected: 0,
            run_missed: 0,
            peer_view: None,
            last_sent: None,
            last_probe: None,
            next_seq: 0,
            rtt: None,
            state: LinkState::Unheard,
            reenabled_at: None,
            damped: false,
            reception: Reception::Silent,
            bad_since: None,
            fault: None,
            counters: LinkCounters::default(),
            transitions: VecDeque::new(),
        }
    }

    /// The peer started again: what was known of its previous run is forgotten, and the link
    /// starts unheard (it comes up at the first good reception both ways, as at start).
    /// What belongs to this daemon stays: its counters, transitions and sending schedule,
    /// and the wires' evidence (round-trip time, crossed cables).
    pub(super) fn restart(&mut self, now: Time) {
        let was = self.state;
        *self = Link {
            last_sent: self.last_sent,
            last_probe: self.last_probe,
            next_seq: self.next_seq,
            rtt: self.rtt,
            crossed: self.crossed,
            counters: self.counters,
            transitions: std::mem::take(&mut self.transitions),
            ..Link::new(self.network)
        };
        if was != LinkState::Unheard {
            self.record(now, false, Reason::PeerRestarted);
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }

    /// Down, but working both ways now: only its hold time keeps it out of use. A damped link
    /// is not: it has been failing again and again, and a token on it would likely be lost.
    pub(super) fn is_coming_back(&self, now: Time, params: &LinkParams) -> bool {
        self.state == LinkState::Down
            && !self.is_damped()
            && self.reception == Reception::Good
            && self.peer_hears_us(now, params)
    }

    pub(super) fn state(&self) -> LinkState {
        self.state
    }

    pub(super) fn last_heard(&self) -> Option<Time> {
        self.last_heard
    }

    pub(super) fn fault(&self) -> Option<Fault> {
        self.fault
    }

    pub(super) fn is_damped(&self) -> bool {
        self.damped
    }

    pub(super) fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter()
    }

    /// Whether the peer says it uses this network towards us (assumed while it has not said).
    pub(super) fn peer_says_up(&self, now: Time, params: &LinkParams) -> bool {
        self.fresh_view(now, params).map_or(true, |v| v.entry.up)
    }

    pub(super) fn peer_loss_permille(&self, now: Time, params: &LinkParams) -> Option<u16> {
        self.fresh_view(now, params).map(|v| v.entry.loss_permille)
    }

    fn fresh_view(&self, now: Time, params: &LinkParams) -> Option<&PeerView> {
        self.peer_view
            .as_ref()
            .filter(|v| now < v.received_at + params.report_max_age)
    }

    /// Something valid from the peer arrived here.
    pub(super) fn heard(&mut self, now: Time, ring: bool, params: &LinkParams) {
        if self.run_start.is_none() || self.quiet(now) > params.recovery_gap {
            self.run_start = Some(now);
            self.run_expected = 0;
            self.run_missed = 0;
        }
        self.last_heard = Some(now);
        if ring {
            self.last_ring = Some(now);
        }
    }

    /// Traffic flows here: the peer's ring packets came until shortly before the last arrival
    /// (a probe among them does not make the link idle).
    fn busy(&self, params: &LinkParams) -> bool {
        match (self.last_ring, self.last_heard) {
            (Some(ring), Some(heard)) => heard.since(ring) < params.busy_silence,
            _ => false,
        }
    }

    /// An expected copy or probe arrived (`missed` false) or never came (`missed` true).
    pub(super) fn outcome(&mut self, missed: bool) {
        self.history = (self.history << 1) | u64::from(missed);
        if missed {
            self.miss_streak += 1;
            self.counters.missed += 1;
        } else {
            self.miss_streak = 0;
        }
        if self.run_expected == RUN_WINDOW {
            self.run_expected /= 2;
            self.run_missed /= 2;
        }
        self.run_expected += 1;
        self.run_missed += u32::from(missed);
    }

    /// The current run lost more than a run of good reception may
    /// ([`LinkParams::recovery_loss_permille`]). Loss is judged over at least as many expected
    /// arrivals as failure judges it (the 64 of `history`): one early miss of a network that
    /// loses a little does not break a run that has just begun.
    fn run_lossy(&self, params: &LinkParams) -> bool {
        let judged = self.run_expected.max(u64::BITS);
        u64::from(self.run_missed) * 1000 > u64::from(params.recovery_loss_permille) * u64::from(judged)
    }

    /// How long nothing arrived here (forever when nothing ever did).
    fn quiet(&self, now: Time) -> Duration {
        self.last_heard.map_or(Duration::MAX, |t| now.since(t))
    }

    pub(super) fn crossed(&mut self, now: Time, arrives_on: u8) {
        self.crossed = Some((now, arrives_on));
        self.counters.crossed += 1;
        self.run_start = None;
    }

    pub(super) fn report(&mut self, now: Time, entry: ReportEntry) {
        self.peer_view = Some(PeerView {
            received_at: now,
            entry,
        });
    }

    pub(super) fn rtt_sample(&mut self, sample: Duration) {
        // Smoothed as TCP does (RFC 6298): 7/8 old, 1/8 new.
        self.rtt = Some(self.rtt.map_or(sample, |rtt| (rtt * 7 + sample) / 8));
    }

    pub(super) fn loss_permille(&self) -> u16 {
        (self.history.count_ones() * 1000 / 64) as u16
    }

    /// Milliseconds of the current run of good reception.
    pub(super) fn good_ms(&self, now: Time) -> u32 {
        self.run_start
            .map_or(0, |s| u32::try_from(now.since(s).as_millis()).unwrap_or(u32::MAX))
    }

    /// This daemon's line about this link in its reports to the peer.
    pub(super) fn report_entry(&self, now: Time) -> ReportEntry {
        ReportEntry {
            network: self.network,
            reception: self.reception,
            up: self.is_up(),
            loss_permille: self.loss_permille(),
            good_ms: self.good_ms(now),
        }
    }

    /// `heard_elsewhere`: the peer was heard on another network after its last arrival here.
    fn measure(&self, now: Time, heard_elsewhere: bool, params: &LinkParams) -> Reception {
        if self.crossed.is_some_and(|(at, _)| now < at + params.idle_silence) {
            return Reception::Crossed;
        }
        let quiet = self.quiet(now);
        if quiet >= params.idle_silence
            || (self.busy(params) && heard_elsewhere && quiet >= params.busy_silence)
        {
            return Reception::Silent;
        }
        // The loss window fails a link in use; a failed one comes back by an unbroken run of
        // arrivals, whatever its old losses.
        if self.miss_streak >= params.miss_limit
            || (self.is_up() && self.loss_permille() >= params.loss_limit_permille)
        {
            return Reception::Lossy;
        }
        Reception::Good
    }

    /// One-way "we do not hear them" needs the peer to say it hears us in a report that came
    /// after our reception went bad, once the peer had the time to notice a fault of its own.
    fn diagnose(&self, now: Time, reception: Reception, params: &LinkParams) -> Option<Fault> {
        let view = self.fresh_view(now, params);
        let peer_hears_us = view.map(|v| v.entry.reception == Reception::Good);
        let confirmed_one_way = view.zip(self.bad_since).is_some_and(|(v, since)| {
            v.entry.reception == Reception::Good
                && v.received_at > since
                && now >= since + params.idle_silence
        });
        match reception {
            Reception::Crossed => Some(Fault::Crossed {
                arrives_on: self.crossed.map_or(self.network, |(_, n)| n),
            }),
            Reception::Silent | Reception::Lossy if confirmed_one_way => Some(Fault::NotHearingPeer),
            Reception::Silent => Some(Fault::Silent),
            Reception::Lossy => Some(Fault::Lossy),
            Reception::Good if peer_hears_us == Some(false) => Some(Fault::PeerNotHearingUs),
            Reception::Good => None,
        }
    }

    fn hold(&self, params: &LinkParams) -> Duration {
        if self.damped {
            params.damping_period
        } else {
            params.recovery_hold
        }
    }

    /// Takes the decisions due at `now`.
    pub(super) fn evaluate(&mut self, now: Time, heard_elsewhere: bool, params: &LinkParams) -> Change {
        let reception = self.measure(now, heard_elsewhere, params);
        self.bad_since = match reception {
            Reception::Good => None,
            _ => self.bad_since.or(Some(now)),
        };
        let fault = self.diagnose(now, reception, params);
        let mut change = Change {
            reception: reception != self.reception,
            state: false,
            fault_of_down: None,
        };
        self.reception = reception;
        if fault.is_some() || self.quiet(now) > params.recovery_gap || self.run_lossy(params) {
            self.run_start = None;
        }
        match (self.state, fault) {
            (LinkState::Up, Some(fault)) => {
                // Failing again soon after coming back is flapping: come back slowly.
                self.damped = self
                    .reenabled_at
                    .is_some_and(|t| now.since(t) < params.damping_period);
                self.fail(now, fault);
                change.state = true;
            }
            // Crossed cables are a fault from the start; anything else only means that the
            // peer has not been heard both ways yet (it may not run yet).
            (LinkState::Unheard, Some(fault @ Fault::Crossed { .. })) => {
                self.fail(now, fault);
                change.state = true;
            }
            (LinkState::Unheard, None) if self.peer_hears_us(now, params) => {
                // The first contact: no hold time, and it is no "came back" for damping.
                self.come_up(now, Reason::Heard);
                change.state = true;
            }
            (LinkState::Down, None) if self.ready_to_recover(now, params) => {
                self.reenabled_at = Some(now);
                self.damped = false;
                self.counters.ups += 1;
                self.come_up(now, Reason::Recovered);
                change.state = true;
            }
            _ => {}
        }
        let old = self.fault;
        self.fault = match self.state {
            LinkState::Unheard => None,
            LinkState::Up | LinkState::Down => fault,
        };
        if !change.state && self.state == LinkState::Down && self.fault.is_some() && self.fault != old {
            change.fault_of_down = old;
        }
        change
    }

    fn fail(&mut self, now: Time, fault: Fault) {
        self.state = LinkState::Down;
        self.counters.downs += 1;
        self.record(now, false, Reason::Fault(fault));
    }

    fn come_up(&mut self, now: Time, reason: Reason) {
        self.state = LinkState::Up;
        // Old misses must not fail the link again at once.
        self.history = 0;
        self.miss_streak = 0;
        self.record(now, true, reason);
    }

    /// The peer's fresh report says it hears us well.
    fn peer_hears_us(&self, now: Time, params: &LinkParams) -> bool {
        self.fresh_view(now, params)
            .is_some_and(|v| v.entry.reception == Reception::Good)
    }

    /// Good reception for the hold time, and the peer has heard us well for the base hold.
    fn ready_to_recover(&self, now: Time, params: &LinkParams) -> bool {
        let peer_hold_ms = u32::try_from(params.recovery_hold.as_millis()).unwrap_or(u32::MAX);
        self.run_start.is_some_and(|s| now.since(s) >= self.hold(params))
            && self
                .fresh_view(now, params)
                .is_some_and(|v| v.entry.reception == Reception::Good && v.entry.good_ms >= peer_hold_ms)
    }

    fn record(&mut self, at: Time, up: bool, reason: Reason) {
        if self.transitions.len() == TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        self.transitions.push_back(Transition { at, up, reason });
    }

    /// The first time after `after` when this link's health may change with nothing arriving.
    pub(super) fn next_deadline(&self, after: Time, params: &LinkParams) -> Option<Time> {
        let confirm = self.bad_since.map(|s| s + params.idle_silence);
        let candidates = match self.state {
            LinkState::Up => [
                self.last_heard.map(|t| t + params.idle_silence),
                self.last_heard
                    .filter(|_| self.busy(params))
                    .map(|t| t + params.busy_silence),
                confirm,
            ],
            LinkState::Down => [self.run_start.map(|s| s + self.hold(params)), confirm, None],
            // Comes up on an arrival, which is evaluated at once.
            LinkState::Unheard => [None; 3],
        };
        candidates.into_iter().flatten().filter(|&t| t > after).min()
    }
}
