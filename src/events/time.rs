//! Seconds-and-microseconds time values of the event API, with Spread's normalization:
//! `usec` stays in the open range (-10^6, 10^6) and has the sign of `sec`.

use std::ops::{Add, Neg, Sub};
use std::os::raw::c_long;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USEC_PER_SEC: c_long = 1_000_000;

/// A point in time or a time difference (`sp_time` in C).
/// Ordered by seconds, then microseconds (meaningful for normalized values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    pub sec: c_long,
    pub usec: c_long,
}

impl Time {
    pub const ZERO: Time = Time { sec: 0, usec: 0 };

    pub const fn new(sec: c_long, usec: c_long) -> Time {
        Time { sec, usec }
    }

    /// Wall-clock time since the Unix epoch.
    pub fn now_wall() -> Time {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Time::from_duration(since),
            Err(before) => -Time::from_duration(before.duration()),
        }
    }

    /// Time of the monotonic clock (timers run on it, so wall-clock jumps do not move them).
    pub fn now_monotonic() -> Time {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        Time::new(now.tv_sec as c_long, (now.tv_nsec / 1000) as c_long)
    }

    fn from_duration(d: Duration) -> Time {
        Time::new(d.as_secs() as c_long, d.subsec_micros() as c_long)
    }

    /// This time difference as a sleep duration; negative differences are zero.
    pub fn to_duration(self) -> Duration {
        if self.sec < 0 || self.usec < 0 {
            return Duration::ZERO;
        }
        Duration::from_secs(self.sec as u64) + Duration::from_micros(self.usec as u64)
    }
}

impl Neg for Time {
    type Output = Time;
    fn neg(self) -> Time {
        Time::new(self.sec.wrapping_neg(), self.usec.wrapping_neg())
    }
}

impl Add for Time {
    type Output = Time;
    /// Sum of two normalized values, normalized (wrapping instead of failing on absurd inputs).
    fn add(self, delta: Time) -> Time {
        let mut sec = self.sec.wrapping_add(delta.sec);
        let mut usec = self.usec.wrapping_add(delta.usec);
        if usec >= USEC_PER_SEC {
            usec -= USEC_PER_SEC;
            sec = sec.wrapping_add(1);
        } else if usec <= -USEC_PER_SEC {
            usec += USEC_PER_SEC;
            sec = sec.wrapping_sub(1);
        }
        if sec > 0 && usec < 0 {
            usec += USEC_PER_SEC;
            sec -= 1;
        } else if sec < 0 && usec > 0 {
            usec -= USEC_PER_SEC;
            sec += 1;
        }
        Time::new(sec, usec)
    }
}

impl Sub for Time {
    type Output = Time;
    fn sub(self, delta: Time) -> Time {
        self + -delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn add_carries_and_borrows() {
        assert_eq!(
            Time::new(1, 600_000) + Time::new(2, 500_000),
            Time::new(4, 100_000)
        );
        assert_eq!(
            Time::new(-1, -600_000) + Time::new(-2, -500_000),
            Time::new(-4, -100_000)
        );
        assert_eq!(Time::new(1, 999_999) + Time::new(0, 1), Time::new(2, 0));
    }

    #[test]
    fn results_have_one_sign() {
        // 1.2 s - 0.5 s: the raw microseconds are negative and must borrow from the seconds.
        assert_eq!(
            Time::new(1, 200_000) - Time::new(0, 500_000),
            Time::new(0, 700_000)
        );
        assert_eq!(
            Time::new(0, 500_000) - Time::new(1, 200_000),
            Time::new(0, -700_000)
        );
        assert_eq!(Time::new(2, 0) - Time::new(3, 1), Time::new(-1, -1));
        assert_eq!(Time::new(-2, 0) + Time::new(0, 300_000), Time::new(-1, -700_000));
        assert_eq!(Time::new(5, 5) - Time::new(5, 5), Time::ZERO);
    }

    #[test]
    fn neg_and_compare() {
        assert_eq!(-Time::new(3, 4), Time::new(-3, -4));
        assert_eq!(Time::new(1, 0).cmp(&Time::new(0, 999_999)), Ordering::Greater);
        assert_eq!(Time::new(1, 5).cmp(&Time::new(1, 6)), Ordering::Less);
        assert_eq!(Time::new(-1, -5).cmp(&Time::new(-1, -5)), Ordering::Equal);
    }

    #[test]
    fn clocks_are_normalized_and_monotonic_advances() {
        let a = Time::now_monotonic();
        let b = Time::now_monotonic();
        assert!(b >= a);
        for t in [a, Time::now_wall()] {
            assert!((0..USEC_PER_SEC).contains(&t.usec), "{t:?}");
        }
        assert!(Time::now_wall().sec > 1_600_000_000);
    }

    #[test]
    fn durations() {
        assert_eq!(Time::new(1, 5).to_duration(), Duration::from_micros(1_000_005));
        assert_eq!(Time::new(-1, 0).to_duration(), Duration::ZERO);
        assert_eq!(Time::new(0, -3).to_duration(), Duration::ZERO);
    }
}
