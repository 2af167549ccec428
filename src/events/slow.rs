//! Diagnostics: the slowest callbacks the loop has run, longest first.

use super::time::Time;
use std::ffi::CStr;
use std::fmt;
use std::os::raw::{c_int, c_void};

/// How many slow callbacks are remembered.
pub const SLOW_EVENTS_MAX: usize = 5;

/// The callback that ran, as registered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSource {
    Fd {
        fd: c_int,
        fd_type: c_int,
        func: usize,
        code: c_int,
        data: usize,
        active: bool,
    },
    Timer {
        func: usize,
        code: c_int,
        data: usize,
    },
}

impl EventSource {
    fn func(&self) -> usize {
        match *self {
            EventSource::Fd { func, .. } | EventSource::Timer { func, .. } => func,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlowEvent {
    pub duration: Time,
    /// Symbol name of the callback, looked up when it was recorded.
    pub name: String,
    pub source: EventSource,
}

impl fmt::Display for SlowEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slow event {} ran {}.{:06} s: ",
            self.name, self.duration.sec, self.duration.usec
        )?;
        match self.source {
            EventSource::Fd {
                fd,
                fd_type,
                func,
                code,
                data,
                active,
            } => write!(
                f,
                "fd {fd} type {fd_type} function {func:#x} code {code} data {data:#x} active {}",
                active as c_int
            ),
            EventSource::Timer { func, code, data } => {
                write!(f, "timer function {func:#x} code {code} data {data:#x}")
            }
        }
    }
}

#[derive(Default)]
pub struct SlowEvents {
    slowest: Vec<SlowEvent>,
}

impl SlowEvents {
    pub const fn new() -> SlowEvents {
        SlowEvents { slowest: Vec::new() }
    }

    /// Remembers a callback that ran from `start` to `stop` if it is among the slowest.
    pub fn record(&mut self, start: Time, stop: Time, source: EventSource) {
        let duration = stop - start;
        let at = self.slowest.partition_point(|e| e.duration >= duration);
        if at >= SLOW_EVENTS_MAX {
            return;
        }
        let name = function_name(source.func());
        self.slowest.insert(
            at,
            SlowEvent {
                duration,
                name,
                source,
            },
        );
        self.slowest.truncate(SLOW_EVENTS_MAX);
    }

    pub fn slowest(&self) -> &[SlowEvent] {
        &self.slowest
    }
}

/// The symbol a function address belongs to, for diagnostics.
pub fn function_name(addr: usize) -> String {
    let func = addr as *const c_void;
    // SAFETY: Dl_info is plain data; all-zero is a valid value for dladdr to overwrite.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only inspects the address and fills `info`.
    if unsafe { libc::dladdr(func, &mut info) } == 0 {
        return format!("unknown function {func:p}");
    }
    if info.dli_sname.is_null() {
        return format!("unnamed function {func:p}");
    }
    // SAFETY: dladdr succeeded with a non-null name, a NUL-terminated string owned by the
    // loader that lives as long as the object is loaded.
    unsafe { CStr::from_ptr(info.dli_sname) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(code: c_int) -> EventSource {
        EventSource::Timer {
            func: 0,
            code,
            data: 0,
        }
    }

    #[test]
    fn keeps_the_five_slowest_longest_first() {
        let mut s = SlowEvents::new();
        for (code, usec) in [
            (1, 50),
            (2, 10),
            (3, 70),
            (4, 30),
            (5, 60),
            (6, 5),
            (7, 40),
            (8, 70),
        ] {
            s.record(Time::new(10, 0), Time::new(10, usec), timer(code));
        }
        let codes: Vec<c_int> = s
            .slowest()
            .iter()
            .map(|e| match e.source {
                EventSource::Timer { code, .. } => code,
                EventSource::Fd { code, .. } => code,
            })
            .collect();
        assert_eq!(codes, vec![3, 8, 5, 1, 7]);
        assert_eq!(s.slowest()[0].duration, Time::new(0, 70));
    }

    #[test]
    fn names_exported_functions() {
        assert_eq!(function_name(libc::malloc as *const () as usize), "malloc");
        assert!(function_name(0).starts_with("unknown function"));
    }
}
