//! The membership protocol's settings: the ring's, and the timeouts of gathering and forming.

use std::time::Duration;

use crate::config::Options;
use crate::ring;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub ring: ring::Params,
    /// `JoinTimeout`: a gathering daemon sends its join message this often.
    pub join_timeout: Duration,
    /// `GatherTimeout`: how long a daemon gathers before the representative forms (or it
    /// gives up waiting for the representative and gathers again).
    pub gather_timeout: Duration,
    /// `FormTimeout`: how long a form token may take to come round.
    pub form_timeout: Duration,
    /// `LookupTimeout`: a ring's leader announces the ring this often, to find daemons to merge.
    pub lookup_timeout: Duration,
}

impl Params {
    pub fn from_options(options: &Options) -> Params {
        Params {
            ring: ring::Params::from_options(options),
            join_timeout: options.join_timeout,
            gather_timeout: options.gather_timeout,
            form_timeout: options.form_timeout,
            lookup_timeout: options.lookup_timeout,
        }
    }

    /// Timeouts short enough for simulated minutes to be quick (shared by the membership and
    /// node tests).
    #[cfg(test)]
    pub(crate) fn fast() -> Params {
        let mut p = Params::from_options(&Options::new());
        p.ring.hurry_timeout = Duration::from_millis(8);
        p.ring.token_timeout = Duration::from_millis(20);
        p.join_timeout = Duration::from_millis(2);
        p.gather_timeout = Duration::from_millis(10);
        p.form_timeout = Duration::from_millis(20);
        p.lookup_timeout = Duration::from_millis(20);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_configured_timeouts() {
        let mut options = Options::new();
        options.gather_timeout = Duration::from_millis(7);
        let p = Params::from_options(&options);
        assert_eq!(p.gather_timeout, Duration::from_millis(7));
        assert_eq!(p.join_timeout, options.join_timeout);
        assert_eq!(p.form_timeout, options.form_timeout);
        assert_eq!(p.lookup_timeout, options.lookup_timeout);
        assert_eq!(p.ring.token_timeout, options.token_timeout);
    }
}
