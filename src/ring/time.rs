//! The ring's notion of time: a point on a monotonic clock the caller keeps.

use std::ops::Add;
use std::time::Duration;

/// Microseconds since an epoch the caller chooses (the daemon: its start; the simulator: zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub fn from_micros(micros: u64) -> Time {
        Time(micros)
    }

    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_and_measures() {
        let t = Time::from_micros(1_000) + Duration::from_millis(2);
        assert_eq!(t.as_micros(), 3_000);
        assert_eq!(t.since(Time::from_micros(500)), Duration::from_micros(2_500));
        assert_eq!(Time::ZERO.since(t), Duration::ZERO);
        assert_eq!(
            (Time::from_micros(u64::MAX - 1) + Duration::from_secs(1)).as_micros(),
            u64::MAX
        );
    }
}
