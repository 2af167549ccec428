//! What a ring needs to know: who is in it, and the flow-control and timeout settings.

use std::time::Duration;

use crate::config::Options;
use crate::wire::packet::{RingId, DEFAULT_MTU};

/// Spread's bound on how far the highest sequence number may run ahead of the all-received
/// mark before a daemon stops sending new packets.
pub const DEFAULT_MAX_SEQ_GAP: u64 = 1600;

/// Flow control and timeouts, with spread.conf's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `Window`: packets the whole ring may send per rotation.
    pub window: u32,
    /// `PersonalWindow`: packets one daemon may send per token visit.
    pub personal_window: u32,
    /// `AcceleratedRing`: pass the token on before sending the last packets of a visit.
    pub accelerated_ring: bool,
    /// `AcceleratedWindow`: packets of a visit sent after the token.
    pub accelerated_window: u32,
    /// `TokenTimeout`: no token and no packet of the ring for this long means the token is lost.
    pub token_timeout: Duration,
    /// `HurryTimeout`: the leader resends its last token when it hears nothing for this long.
    pub hurry_timeout: Duration,
    /// Largest datagram the ring sends (the smallest MTU of its networks).
    pub mtu: usize,
    /// See [`DEFAULT_MAX_SEQ_GAP`].
    pub max_seq_gap: u64,
}

impl Params {
    pub fn from_options(options: &Options) -> Params {
        Params {
            window: options.window,
            personal_window: options.personal_window,
            accelerated_ring: options.accelerated_ring,
            accelerated_window: options.accelerated_window,
            token_timeout: options.token_timeout,
            hurry_timeout: options.hurry_timeout,
            mtu: DEFAULT_MTU,
            max_seq_gap: DEFAULT_MAX_SEQ_GAP,
        }
    }
}

/// One daemon's place in one ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// This daemon.
    pub me: u32,
    /// The ring's daemons in token order; the first is the leader (it creates the token).
    pub members: Vec<u32>,
    pub ring: RingId,
    pub config_hash: u32,
    /// Network written into the packets this ring sends (the link layer restamps copies).
    pub network: u8,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_configured_values() {
        let mut options = Options::new();
        options.window = 77;
        options.accelerated_ring = false;
        let p = Params::from_options(&options);
        assert_eq!(p.window, 77);
        assert_eq!(p.personal_window, options.personal_window);
        assert!(!p.accelerated_ring);
        assert_eq!(p.token_timeout, options.token_timeout);
        assert_eq!(p.hurry_timeout, options.hurry_timeout);
        assert!(p.hurry_timeout < p.token_timeout);
    }
}
