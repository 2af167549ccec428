//! The event loop behind the `E_*` API (spec 5.4): one-shot timers on the monotonic clock and
//! level-triggered descriptor callbacks in three priorities, driven by poll(2).
//!
//! Callbacks may call back into the loop (queue, detach, exit), so no lock is held while one
//! runs: each step takes what it needs under the lock, releases it, then calls.

mod callback;
mod fds;
mod slow;
mod time;
mod timers;
mod wake;

pub use callback::{FdCallback, FdFn, TimerCallback, TimerFn};
pub use fds::{
    Attached, EventError, FdType, Priority, EXCEPT_FD, HIGH_PRIORITY, LOW_PRIORITY, MAX_FD_EVENTS,
    MEDIUM_PRIORITY, NUM_FDTYPES, NUM_PRIORITY, READ_FD, WRITE_FD,
};
pub use slow::{function_name, EventSource, SlowEvent, SLOW_EVENTS_MAX};
pub use time::Time;

use fds::FdTable;
use parking_lot::Mutex;
use slow::SlowEvents;
use std::collections::{HashMap, HashSet};
use std::os::raw::c_int;
use timers::TimerQueue;
use wake::ExitRequest;

/// Longest single wait when no timer is pending.
const LONG_TIMEOUT: Time = Time::new(10_000, 0);

struct State {
    timers: TimerQueue,
    fds: FdTable,
    slow: SlowEvents,
}

pub struct EventLoop {
    state: Mutex<State>,
    exit: ExitRequest,
}

/// The process-wide loop the C API drives.
pub static EVENTS: EventLoop = EventLoop::new();

/// The (fd, type) pairs poll found ready.
struct Ready(HashSet<(c_int, FdType)>);

impl Ready {
    fn contains(&self, fd: c_int, fd_type: FdType) -> bool {
        self.0.contains(&(fd, fd_type))
    }
}

impl Default for EventLoop {
    fn default() -> EventLoop {
        EventLoop::new()
    }
}

impl EventLoop {
    pub const fn new() -> EventLoop {
        EventLoop {
            state: Mutex::new(State {
                timers: TimerQueue::new(),
                fds: FdTable::new(),
                slow: SlowEvents::new(),
            }),
            exit: ExitRequest::new(),
        }
    }

    /// Forgets every timer and descriptor; the threshold goes back to LOW.
    pub fn init(&self) {
        let mut s = self.state.lock();
        s.timers.clear();
        s.fds.clear();
    }

    pub fn queue(&self, callback: TimerCallback, delay: Time) {
        let deadline = Time::now_monotonic() + delay;
        self.state.lock().timers.queue(callback, deadline);
    }

    pub fn dequeue(&self, callback: &TimerCallback) -> Result<(), EventError> {
        if self.state.lock().timers.dequeue(callback) {
            Ok(())
        } else {
            Err(EventError::NotFound)
        }
    }

    pub fn in_queue(&self, callback: &TimerCallback) -> bool {
        self.state.lock().timers.contains(callback)
    }

    pub fn attach_fd(
        &self,
        fd: c_int,
        fd_type: c_int,
        callback: FdCallback,
        priority: c_int,
    ) -> Result<Attached, EventError> {
        let priority = Priority::from_c(priority)?;
        let fd_type = FdType::from_c(fd_type)?;
        self.state.lock().fds.attach(fd, fd_type, callback, priority)
    }

    pub fn detach_fd(&self, fd: c_int, fd_type: c_int) -> Result<(), EventError> {
        let fd_type = FdType::from_c(fd_type)?;
        self.state.lock().fds.detach(fd, fd_type)
    }

    pub fn detach_fd_priority(&self, fd: c_int, fd_type: c_int, priority: c_int) -> Result<(), EventError> {
        let fd_type = FdType::from_c(fd_type)?;
        let priority = Priority::from_c(priority)?;
        self.state.lock().fds.detach_priority(fd, fd_type, priority)
    }

    pub fn set_fd_active(&self, fd: c_int, fd_type: c_int, active: bool) -> Result<(), EventError> {
        let fd_type = FdType::from_c(fd_type)?;
        self.state.lock().fds.set_active(fd, fd_type, active)
    }

    pub fn set_active_threshold(&self, priority: c_int) -> Result<Priority, EventError> {
        let priority = Priority::from_c(priority)?;
        self.state.lock().fds.set_threshold(priority);
        Ok(priority)
    }

    pub fn num_active(&self, priority: c_int) -> Result<usize, EventError> {
        let priority = Priority::from_c(priority)?;
        Ok(self.state.lock().fds.num_active(priority))
    }

    /// Asks the running loop to return after the current callback; async-signal-safe.
    pub fn exit(&self) {
        self.exit.request();
    }

    /// Records a callback's run time among the slowest if it is one of them.
    pub fn record_slow(&self, start: Time, stop: Time, source: EventSource) {
        self.state.lock().slow.record(start, stop, source);
    }

    pub fn slow_events(&self) -> Vec<SlowEvent> {
        self.state.lock().slow.slowest().to_vec()
    }

    /// Runs timers and descriptor callbacks until `exit` is called.
    pub fn handle_events(&self) {
        let wake_fd = self.exit.wake_fd();
        self.exit.reset();
        // Timers wait until a pass in which no HIGH or MEDIUM callback ran, so a program's
        // urgent descriptors are served before timers that came due while it was not looping.
        let mut timers_held = true;
        loop {
            let timeout = match self.run_due_timers(timers_held) {
                Some(timeout) => timeout,
                None => return,
            };
            let ready = self.poll(wake_fd, timeout);
            if self.exit.is_requested() {
                return;
            }
            let mut treated = false;
            for priority in [Priority::High, Priority::Medium] {
                let candidates = self.state.lock().fds.active_at(priority);
                for (fd, fd_type) in candidates.into_iter().filter(|&(fd, t)| ready.contains(fd, t)) {
                    let callback = self.state.lock().fds.dispatchable(fd, fd_type, priority);
                    if let Some(callback) = callback {
                        treated = true;
                        self.run_fd_callback(fd, fd_type, callback);
                        if self.exit.is_requested() {
                            return;
                        }
                    }
                }
                if treated {
                    break;
                }
            }
            if !treated {
                timers_held = false;
            }
            let low = self
                .state
                .lock()
                .fds
                .next_low(|fd, fd_type| ready.contains(fd, fd_type));
            if let Some(entry) = low {
                self.run_fd_callback(entry.fd, entry.fd_type, entry.callback);
                if self.exit.is_requested() {
                    return;
                }
            }
        }
    }

    /// Runs the due timers (none while `held`); returns how long poll may wait, or None when
    /// a timer asked the loop to exit.
    fn run_due_timers(&self, held: bool) -> Option<Time> {
        loop {
            let now = Time::now_monotonic();
            let due = {
                let mut s = self.state.lock();
                let due = if held { None } else { s.timers.pop_due(now) };
                if due.is_none() {
                    let timeout = s.timers.next_deadline().map_or(LONG_TIMEOUT, |t| t - now);
                    let zero_if_past = if timeout.sec < 0 || timeout.usec < 0 {
                        Time::ZERO
                    } else {
                        timeout
                    };
                    return Some(zero_if_past);
                }
                due
            };
            if let Some(timer) = due {
                timer.call();
                let stop = Time::now_monotonic();
                let source = EventSource::Timer {
                    func: timer.func as usize,
                    code: timer.code,
                    data: timer.data as usize,
                };
                self.record_slow(now, stop, source);
                if self.exit.is_requested() {
                    return None;
                }
            }
        }
    }

    fn run_fd_callback(&self, fd: c_int, fd_type: FdType, callback: FdCallback) {
        let start = Time::now_monotonic();
        callback.call(fd);
        let stop = Time::now_monotonic();
        let source = EventSource::Fd {
            fd,
            fd_type: fd_type as c_int,
            func: callback.func as usize,
            code: callback.code,
            data: callback.data as usize,
            active: true,
        };
        self.record_slow(start, stop, source);
    }

    /// Waits up to `timeout` for a watched descriptor (or the wake pipe) to be ready.
    fn poll(&self, wake_fd: Option<c_int>, timeout: Time) -> Ready {
        let watched: Vec<(c_int, FdType)> = self.state.lock().fds.watched().collect();
        let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(watched.len() + 1);
        // One pollfd per descriptor, whatever the number of entries watching it.
        let mut slot_of: HashMap<c_int, usize> = HashMap::new();
        for &(fd, fd_type) in &watched {
            let events = match fd_type {
                FdType::Read => libc::POLLIN,
                FdType::Write => libc::POLLOUT,
                FdType::Except => libc::POLLPRI,
            };
            let slot = *slot_of.entry(fd).or_insert_with(|| {
                pollfds.push(libc::pollfd {
                    fd,
                    events: 0,
                    revents: 0,
                });
                pollfds.len() - 1
            });
            pollfds[slot].events |= events;
        }
        if let Some(fd) = wake_fd {
            pollfds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let d = timeout.to_duration();
        let millis = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
        let millis = c_int::try_from(millis).unwrap_or(c_int::MAX);
        // SAFETY: `pollfds` is a valid array of `len` pollfd structs that poll may write to.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, millis) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                log::error!("event loop poll: {err}");
            }
            return Ready(HashSet::new());
        }
        if wake_fd.is_some() {
            self.exit.drain();
        }
        // Like select(2): hangup and errors make a descriptor readable and writable, so its
        // callback runs and finds out; an fd closed while attached is reported the same way.
        let trouble = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;
        let ready = watched
            .into_iter()
            .filter(|&(fd, fd_type)| {
                let revents = pollfds[slot_of[&fd]].revents;
                let wanted = match fd_type {
                    FdType::Read => libc::POLLIN | trouble,
                    FdType::Write => libc::POLLOUT | trouble,
                    FdType::Except => libc::POLLPRI | libc::POLLNVAL,
                };
                revents & wanted != 0
            })
            .collect();
        Ready(ready)
    }
}

#[cfg(test)]
mod tests;
