//! The watched descriptors of `E_attach_fd`, one table per priority.

use super::callback::FdCallback;
use std::os::raw::c_int;

/// Largest number of entries one priority holds.
pub const MAX_FD_EVENTS: c_int = 2000;
pub const NUM_PRIORITY: c_int = 3;
pub const LOW_PRIORITY: c_int = 0;
pub const MEDIUM_PRIORITY: c_int = 1;
pub const HIGH_PRIORITY: c_int = 2;
pub const NUM_FDTYPES: c_int = 3;
pub const READ_FD: c_int = 0;
pub const WRITE_FD: c_int = 1;
pub const EXCEPT_FD: c_int = 2;

/// What the descriptor is watched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FdType {
    Read,
    Write,
    Except,
}

impl FdType {
    pub fn from_c(fd_type: c_int) -> Result<FdType, EventError> {
        match fd_type {
            READ_FD => Ok(FdType::Read),
            WRITE_FD => Ok(FdType::Write),
            EXCEPT_FD => Ok(FdType::Except),
            _ => Err(EventError::InvalidFdType),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub fn from_c(priority: c_int) -> Result<Priority, EventError> {
        match priority {
            LOW_PRIORITY => Ok(Priority::Low),
            MEDIUM_PRIORITY => Ok(Priority::Medium),
            HIGH_PRIORITY => Ok(Priority::High),
            _ => Err(EventError::InvalidPriority),
        }
    }

    pub fn to_c(self) -> c_int {
        self as c_int
    }
}

/// Why a call on the event tables failed (each is `-1` in C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    InvalidPriority,
    InvalidFdType,
    InvalidFd,
    TableFull,
    NotFound,
}

/// What `attach` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Added,
    /// The (fd, type) already had an entry at that priority: new callback, active again.
    Replaced,
}

#[derive(Clone, Copy, Debug)]
pub struct FdEntry {
    pub fd: c_int,
    pub fd_type: FdType,
    pub callback: FdCallback,
    pub active: bool,
}

pub struct FdTable {
    /// Indexed by `Priority as usize`; within a priority, in order of attachment.
    entries: [Vec<FdEntry>; 3],
    /// Entries below this priority are not watched.
    threshold: Priority,
    /// Where the next search for a ready LOW entry starts.
    low_cursor: usize,
}

impl FdTable {
    pub const fn new() -> FdTable {
        FdTable {
            entries: [Vec::new(), Vec::new(), Vec::new()],
            threshold: Priority::Low,
            low_cursor: 0,
        }
    }

    pub fn clear(&mut self) {
        *self = FdTable::new();
    }

    pub fn attach(
        &mut self,
        fd: c_int,
        fd_type: FdType,
        callback: FdCallback,
        priority: Priority,
    ) -> Result<Attached, EventError> {
        // The original kept select(2) masks, so it refused descriptors beyond FD_SETSIZE.
        if fd < 0 || fd as usize > libc::FD_SETSIZE {
            return Err(EventError::InvalidFd);
        }
        let table = &mut self.entries[priority as usize];
        if let Some(e) = table.iter_mut().find(|e| e.fd == fd && e.fd_type == fd_type) {
            e.callback = callback;
            e.active = true;
            return Ok(Attached::Replaced);
        }
        if table.len() >= MAX_FD_EVENTS as usize {
            return Err(EventError::TableFull);
        }
        table.push(FdEntry {
            fd,
            fd_type,
            callback,
            active: true,
        });
        Ok(Attached::Added)
    }

    pub fn detach_priority(
        &mut self,
        fd: c_int,
        fd_type: FdType,
        priority: Priority,
    ) -> Result<(), EventError> {
        let table = &mut self.entries[priority as usize];
        let i = table
            .iter()
            .position(|e| e.fd == fd && e.fd_type == fd_type)
            .ok_or(EventError::NotFound)?;
        table.remove(i);
        Ok(())
    }

    /// Removes the entries of (fd, type) at every priority.
    pub fn detach(&mut self, fd: c_int, fd_type: FdType) -> Result<(), EventError> {
        let removed = [Priority::Low, Priority::Medium, Priority::High]
            .into_iter()
            .filter(|p| self.detach_priority(fd, fd_type, *p).is_ok())
            .count();
        if removed == 0 {
            return Err(EventError::NotFound);
        }
        Ok(())
    }

    /// Marks the entries of (fd, type) at every priority (in)active.
    pub fn set_active(&mut self, fd: c_int, fd_type: FdType, active: bool) -> Result<(), EventError> {
        let mut found = false;
        for e in self
            .entries
            .iter_mut()
            .flatten()
            .filter(|e| e.fd == fd && e.fd_type == fd_type)
        {
            e.active = active;
            found = true;
        }
        if found {
            Ok(())
        } else {
            Err(EventError::NotFound)
        }
    }

    pub fn set_threshold(&mut self, priority: Priority) {
        self.threshold = priority;
    }

    pub fn num_active(&self, priority: Priority) -> usize {
        self.entries[priority as usize]
            .iter()
            .filter(|e| e.active)
            .count()
    }

    /// The (fd, type) pairs to poll: active entries at or above the threshold.
    pub fn watched(&self) -> impl Iterator<Item = (c_int, FdType)> + '_ {
        self.entries[self.threshold as usize..]
            .iter()
            .flatten()
            .filter(|e| e.active)
            .map(|e| (e.fd, e.fd_type))
    }

    /// The (fd, type) pairs of the active entries at `priority`, in dispatch order.
    pub fn active_at(&self, priority: Priority) -> Vec<(c_int, FdType)> {
        self.entries[priority as usize]
            .iter()
            .filter(|e| e.active)
            .map(|e| (e.fd, e.fd_type))
            .collect()
    }

    /// The callback to run for (fd, type) at `priority` now, if its entry is still there,
    /// active and watched (an earlier callback may have changed any of that).
    pub fn dispatchable(&self, fd: c_int, fd_type: FdType, priority: Priority) -> Option<FdCallback> {
        if priority < self.threshold {
            return None;
        }
        self.entries[priority as usize]
            .iter()
            .find(|e| e.fd == fd && e.fd_type == fd_type && e.active)
            .map(|e| e.callback)
    }

    /// The next ready LOW entry in round-robin order, if LOW entries are watched; the one
    /// after it goes first next time.
    pub fn next_low(&mut self, is_ready: impl Fn(c_int, FdType) -> bool) -> Option<FdEntry> {
        if self.threshold != Priority::Low {
            return None;
        }
        let table = &self.entries[Priority::Low as usize];
        let n = table.len();
        let j = (0..n)
            .map(|i| (i + self.low_cursor) % n)
            .find(|&j| table[j].active && is_ready(table[j].fd, table[j].fd_type))?;
        self.low_cursor = (j + 1) % n;
        Some(table[j])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::raw::c_void;

    extern "C" fn noop(_: c_int, _: c_int, _: *mut c_void) {}

    fn cb(code: c_int) -> FdCallback {
        FdCallback {
            func: noop,
            code,
            data: std::ptr::null_mut(),
        }
    }

    #[test]
    fn c_values_validate() {
        assert_eq!(Priority::from_c(3), Err(EventError::InvalidPriority));
        assert_eq!(Priority::from_c(-1), Err(EventError::InvalidPriority));
        assert_eq!(Priority::from_c(HIGH_PRIORITY), Ok(Priority::High));
        assert_eq!(FdType::from_c(3), Err(EventError::InvalidFdType));
        assert_eq!(FdType::from_c(EXCEPT_FD), Ok(FdType::Except));
    }

    #[test]
    fn attach_adds_then_replaces_and_reactivates() {
        let mut t = FdTable::new();
        assert_eq!(
            t.attach(5, FdType::Read, cb(1), Priority::Low),
            Ok(Attached::Added)
        );
        assert_eq!(
            t.attach(5, FdType::Write, cb(2), Priority::Low),
            Ok(Attached::Added)
        );
        assert_eq!(
            t.attach(5, FdType::Read, cb(3), Priority::High),
            Ok(Attached::Added)
        );
        t.set_active(5, FdType::Read, false).unwrap();
        assert_eq!(t.num_active(Priority::Low), 1);
        assert_eq!(
            t.attach(5, FdType::Read, cb(4), Priority::Low),
            Ok(Attached::Replaced)
        );
        assert_eq!(t.num_active(Priority::Low), 2);
        assert_eq!(
            t.dispatchable(5, FdType::Read, Priority::Low).map(|c| c.code),
            Some(4)
        );
        assert_eq!(
            t.attach(-1, FdType::Read, cb(0), Priority::Low),
            Err(EventError::InvalidFd)
        );
        let too_big = libc::FD_SETSIZE as c_int + 1;
        assert_eq!(
            t.attach(too_big, FdType::Read, cb(0), Priority::Low),
            Err(EventError::InvalidFd)
        );
    }

    #[test]
    fn a_priority_holds_at_most_max_entries() {
        let mut t = FdTable::new();
        for i in 0..MAX_FD_EVENTS {
            let fd_type = FdType::from_c(i % 3).unwrap();
            assert_eq!(
                t.attach(i / 3, fd_type, cb(i), Priority::Medium),
                Ok(Attached::Added)
            );
        }
        assert_eq!(
            t.attach(1000, FdType::Read, cb(0), Priority::Medium),
            Err(EventError::TableFull)
        );
        assert_eq!(
            t.attach(0, FdType::Read, cb(9), Priority::Medium),
            Ok(Attached::Replaced)
        );
        assert_eq!(
            t.attach(1000, FdType::Read, cb(0), Priority::High),
            Ok(Attached::Added)
        );
    }

    #[test]
    fn detach_one_or_every_priority() {
        let mut t = FdTable::new();
        t.attach(3, FdType::Read, cb(1), Priority::Low).unwrap();
        t.attach(3, FdType::Read, cb(2), Priority::High).unwrap();
        assert_eq!(
            t.detach_priority(3, FdType::Read, Priority::Medium),
            Err(EventError::NotFound)
        );
        assert_eq!(
            t.detach_priority(3, FdType::Write, Priority::Low),
            Err(EventError::NotFound)
        );
        assert_eq!(t.detach_priority(3, FdType::Read, Priority::Low), Ok(()));
        t.attach(3, FdType::Read, cb(1), Priority::Low).unwrap();
        assert_eq!(t.detach(3, FdType::Read), Ok(()));
        assert_eq!(t.detach(3, FdType::Read), Err(EventError::NotFound));
        assert_eq!(t.num_active(Priority::Low) + t.num_active(Priority::High), 0);
    }

    #[test]
    fn activation_and_threshold_decide_what_is_watched() {
        let mut t = FdTable::new();
        t.attach(1, FdType::Read, cb(1), Priority::Low).unwrap();
        t.attach(2, FdType::Write, cb(2), Priority::Medium).unwrap();
        t.attach(3, FdType::Except, cb(3), Priority::High).unwrap();
        assert_eq!(t.watched().count(), 3);
        assert_eq!(t.set_active(2, FdType::Write, false), Ok(()));
        assert_eq!(t.set_active(2, FdType::Read, false), Err(EventError::NotFound));
        assert_eq!(
            t.watched().collect::<Vec<_>>(),
            vec![(1, FdType::Read), (3, FdType::Except)]
        );
        assert!(t.dispatchable(2, FdType::Write, Priority::Medium).is_none());
        t.set_active(2, FdType::Write, true).unwrap();
        t.set_threshold(Priority::Medium);
        assert_eq!(
            t.watched().collect::<Vec<_>>(),
            vec![(2, FdType::Write), (3, FdType::Except)]
        );
        assert!(t.dispatchable(1, FdType::Read, Priority::Low).is_none());
        assert!(t.next_low(|_, _| true).is_none());
    }

    #[test]
    fn low_entries_take_turns() {
        let mut t = FdTable::new();
        for fd in 10..13 {
            t.attach(fd, FdType::Read, cb(fd), Priority::Low).unwrap();
        }
        let turns: Vec<c_int> = (0..4)
            .filter_map(|_| t.next_low(|_, _| true))
            .map(|e| e.fd)
            .collect();
        assert_eq!(turns, vec![10, 11, 12, 10]);
        // Only ready ones count; the turn moves past the one that ran.
        let turns: Vec<c_int> = (0..3)
            .filter_map(|_| t.next_low(|fd, _| fd != 12))
            .map(|e| e.fd)
            .collect();
        assert_eq!(turns, vec![11, 10, 11]);
        assert!(t.next_low(|_, _| false).is_none());
    }
}
