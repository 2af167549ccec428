//! The one-shot timers of `E_queue`, ordered by deadline.

use super::callback::TimerCallback;
use super::time::Time;

#[derive(Default)]
pub struct TimerQueue {
    /// Sorted by deadline; timers with equal deadlines fire in the order they were queued.
    timers: Vec<(Time, TimerCallback)>,
}

impl TimerQueue {
    pub const fn new() -> TimerQueue {
        TimerQueue { timers: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.timers.clear();
    }

    /// Queues `callback` at `deadline`, replacing a pending timer with the same identity.
    pub fn queue(&mut self, callback: TimerCallback, deadline: Time) {
        self.dequeue(&callback);
        let at = self.timers.partition_point(|(t, _)| *t <= deadline);
        self.timers.insert(at, (deadline, callback));
    }

    /// Removes the pending timer with this identity; false if there is none.
    pub fn dequeue(&mut self, callback: &TimerCallback) -> bool {
        match self.timers.iter().position(|(_, c)| c.same_as(callback)) {
            Some(i) => {
                self.timers.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, callback: &TimerCallback) -> bool {
        self.timers.iter().any(|(_, c)| c.same_as(callback))
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Takes the earliest timer if it is due at `now`.
    pub fn pop_due(&mut self, now: Time) -> Option<TimerCallback> {
        match self.timers.first() {
            Some((t, _)) if now >= *t => Some(self.timers.remove(0).1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::raw::{c_int, c_void};

    extern "C" fn first(_: c_int, _: *mut c_void) {}
    extern "C" fn second(_: c_int, _: *mut c_void) {}

    fn timer(func: super::super::callback::TimerFn, code: c_int) -> TimerCallback {
        TimerCallback {
            func,
            code,
            data: std::ptr::null_mut(),
        }
    }

    fn codes_in_order(q: &mut TimerQueue) -> Vec<c_int> {
        std::iter::from_fn(|| q.pop_due(Time::new(1_000, 0)))
            .map(|c| c.code)
            .collect()
    }

    #[test]
    fn fires_by_deadline_then_queue_order() {
        let mut q = TimerQueue::new();
        q.queue(timer(first, 1), Time::new(5, 0));
        q.queue(timer(first, 2), Time::new(3, 0));
        q.queue(timer(first, 3), Time::new(5, 0));
        q.queue(timer(second, 4), Time::new(1, 500_000));
        assert_eq!(q.next_deadline(), Some(Time::new(1, 500_000)));
        assert_eq!(codes_in_order(&mut q), vec![4, 2, 1, 3]);
    }

    #[test]
    fn only_due_timers_pop() {
        let mut q = TimerQueue::new();
        q.queue(timer(first, 1), Time::new(2, 0));
        assert!(q.pop_due(Time::new(1, 999_999)).is_none());
        assert_eq!(q.pop_due(Time::new(2, 0)).map(|c| c.code), Some(1));
        assert!(q.pop_due(Time::new(9, 0)).is_none());
    }

    #[test]
    fn same_identity_replaces() {
        let mut q = TimerQueue::new();
        q.queue(timer(first, 1), Time::new(1, 0));
        q.queue(timer(first, 2), Time::new(2, 0));
        q.queue(timer(first, 1), Time::new(3, 0));
        assert_eq!(codes_in_order(&mut q), vec![2, 1]);
        // A different function, code or data is a different timer.
        q.queue(timer(first, 1), Time::new(1, 0));
        q.queue(timer(second, 1), Time::new(1, 0));
        let mut other_data = timer(first, 1);
        other_data.data = 8 as *mut c_void;
        q.queue(other_data, Time::new(1, 0));
        assert_eq!(codes_in_order(&mut q).len(), 3);
    }

    #[test]
    fn dequeue_and_contains() {
        let mut q = TimerQueue::new();
        assert!(!q.dequeue(&timer(first, 1)));
        q.queue(timer(first, 1), Time::new(1, 0));
        q.queue(timer(second, 1), Time::new(1, 0));
        assert!(q.contains(&timer(first, 1)));
        assert!(!q.contains(&timer(first, 2)));
        assert!(q.dequeue(&timer(first, 1)));
        assert!(!q.contains(&timer(first, 1)));
        assert!(!q.dequeue(&timer(first, 1)));
        assert!(q.contains(&timer(second, 1)));
        q.clear();
        assert_eq!(q.next_deadline(), None);
    }
}
