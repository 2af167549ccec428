//! Which networks a datagram goes on, given the networks usable towards each peer.

use super::NetSet;
use crate::config::MultipathMode;

/// How a peer can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reach {
    /// Networks up both ways.
    pub usable: NetSet,
    /// Networks the peer shares with this daemon.
    pub all: NetSet,
}

impl Reach {
    /// What to use: the usable networks, or every shared one when none is usable (a peer is
    /// given up by membership, never by the link layer).
    fn candidates(&self) -> NetSet {
        if self.usable.is_empty() {
            self.all
        } else {
            self.usable
        }
    }
}

/// A datagram for one peer: passive mode uses the first usable network, the others all.
pub(super) fn unicast(mode: MultipathMode, usable: NetSet, all: NetSet) -> NetSet {
    let reach = Reach { usable, all };
    match (mode, usable.first()) {
        (MultipathMode::Passive, Some(first)) => NetSet::single(first),
        _ => reach.candidates(),
    }
}

/// A broadcast on every network usable towards some peer.
pub(super) fn every_usable(reach: &[Reach]) -> NetSet {
    reach
        .iter()
        .fold(NetSet::EMPTY, |set, r| set.union(r.candidates()))
}

/// A broadcast on one network usable towards every peer, the first from `start` on (in
/// cyclic order); when there is none, on a few networks that together reach every peer.
pub(super) fn first_usable(reach: &[Reach], start: u8) -> NetSet {
    if reach.is_empty() {
        return NetSet::EMPTY;
    }
    let common = reach
        .iter()
        .fold(NetSet::first_n(8), |set, r| set.intersection(r.usable));
    match common.next_from(start) {
        Some(n) => NetSet::single(n),
        None => cover(reach, start),
    }
}

/// Networks reaching every peer: for each peer not reached yet, its first usable network from
/// `start` on, or all its networks when none is usable.
fn cover(reach: &[Reach], start: u8) -> NetSet {
    let mut chosen = NetSet::EMPTY;
    for r in reach {
        if !r.usable.intersection(chosen).is_empty() {
            continue;
        }
        match r.usable.next_from(start) {
            Some(n) => chosen.insert(n),
            None => chosen = chosen.union(r.all),
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(nets: &[u8]) -> NetSet {
        nets.iter().copied().collect()
    }

    fn reach(usable: &[u8], all: &[u8]) -> Reach {
        Reach {
            usable: set(usable),
            all: set(all),
        }
    }

    #[test]
    fn unicast_by_mode() {
        let (usable, all) = (set(&[1, 2]), set(&[0, 1, 2]));
        assert_eq!(unicast(MultipathMode::Active, usable, all), usable);
        assert_eq!(unicast(MultipathMode::Hybrid, usable, all), usable);
        assert_eq!(unicast(MultipathMode::Passive, usable, all), set(&[1]));
        for mode in [
            MultipathMode::Active,
            MultipathMode::Passive,
            MultipathMode::Hybrid,
        ] {
            assert_eq!(unicast(mode, NetSet::EMPTY, all), all, "{mode:?}");
        }
    }

    #[test]
    fn broadcasts_reach_every_peer() {
        let peers = [
            reach(&[0, 1], &[0, 1, 2]),
            reach(&[1, 2], &[0, 1, 2]),
            reach(&[], &[3]),
        ];
        assert_eq!(every_usable(&peers), set(&[0, 1, 2, 3]));
        // No network reaches all three: one per peer, the last one's every network.
        assert_eq!(first_usable(&peers, 0), set(&[0, 1, 3]));
        assert_eq!(first_usable(&peers[..2], 0), set(&[1]));
        assert_eq!(first_usable(&peers[..2], 2), set(&[1]));
        assert_eq!(first_usable(&[], 0), NetSet::EMPTY);
        // Different networks for different peers: one copy each.
        assert_eq!(
            first_usable(&[reach(&[0], &[0, 1]), reach(&[1], &[0, 1])], 0),
            set(&[0, 1])
        );
    }
}
