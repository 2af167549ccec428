//! `E_*`: the event API of `sp_events.h`, shells over [`crate::events`]. Every call works on
//! the process-wide loop [`EVENTS`]; like the original, it is not meant for several threads
//! (only `E_exit_events*` may come from another thread or a signal handler).
#![allow(non_camel_case_types, non_snake_case)]

use super::guard;
use super::types::{mailbox, sp_time};
use crate::events::{
    function_name, Attached, EventSource, FdCallback, SlowEvent, Time, TimerCallback, EVENTS,
};
use std::os::raw::{c_char, c_int, c_void};

impl From<sp_time> for Time {
    fn from(t: sp_time) -> Time {
        Time::new(t.sec, t.usec)
    }
}

impl From<Time> for sp_time {
    fn from(t: Time) -> sp_time {
        sp_time {
            sec: t.sec,
            usec: t.usec,
        }
    }
}

/// The result code of calls that succeed with 0 or fail with -1.
fn status<T, E>(r: Result<T, E>) -> c_int {
    match r {
        Ok(_) => 0,
        Err(_) => -1,
    }
}

fn timer(
    func: Option<extern "C" fn(code: c_int, data: *mut c_void)>,
    code: c_int,
    data: *mut c_void,
) -> Option<TimerCallback> {
    func.map(|func| TimerCallback { func, code, data })
}

#[no_mangle]
pub extern "C" fn E_init() -> c_int {
    guard(-1, || {
        EVENTS.init();
        0
    })
}

#[no_mangle]
pub extern "C" fn E_get_time() -> sp_time {
    guard(sp_time::default(), || Time::now_wall().into())
}

#[no_mangle]
pub extern "C" fn E_get_time_monotonic() -> sp_time {
    guard(sp_time::default(), || Time::now_monotonic().into())
}

#[no_mangle]
pub extern "C" fn E_neg_time(t: sp_time) -> sp_time {
    guard(sp_time::default(), || (-Time::from(t)).into())
}

#[no_mangle]
pub extern "C" fn E_add_time(t: sp_time, delta_t: sp_time) -> sp_time {
    guard(sp_time::default(), || (Time::from(t) + delta_t.into()).into())
}

#[no_mangle]
pub extern "C" fn E_sub_time(t: sp_time, delta_t: sp_time) -> sp_time {
    guard(sp_time::default(), || (Time::from(t) - delta_t.into()).into())
}

/// 1 if `t1` is later than `t2`, -1 if earlier, 0 if equal.
#[no_mangle]
pub extern "C" fn E_compare_time(t1: sp_time, t2: sp_time) -> c_int {
    guard(0, || Time::from(t1).cmp(&t2.into()) as c_int)
}

#[no_mangle]
pub extern "C" fn E_queue(
    func: Option<extern "C" fn(code: c_int, data: *mut c_void)>,
    code: c_int,
    data: *mut c_void,
    delta_time: sp_time,
) -> c_int {
    guard(-1, || match timer(func, code, data) {
        Some(callback) => {
            EVENTS.queue(callback, delta_time.into());
            0
        }
        None => -1,
    })
}

#[no_mangle]
pub extern "C" fn E_in_queue(
    func: Option<extern "C" fn(code: c_int, data: *mut c_void)>,
    code: c_int,
    data: *mut c_void,
) -> c_int {
    guard(0, || {
        timer(func, code, data).is_some_and(|c| EVENTS.in_queue(&c)) as c_int
    })
}

#[no_mangle]
pub extern "C" fn E_dequeue(
    func: Option<extern "C" fn(code: c_int, data: *mut c_void)>,
    code: c_int,
    data: *mut c_void,
) -> c_int {
    guard(-1, || match timer(func, code, data) {
        Some(callback) => status(EVENTS.dequeue(&callback)),
        None => -1,
    })
}

#[no_mangle]
pub extern "C" fn E_delay(t: sp_time) {
    guard((), || std::thread::sleep(Time::from(t).to_duration()))
}

#[no_mangle]
pub extern "C" fn E_attach_fd(
    fd: c_int,
    fd_type: c_int,
    func: Option<extern "C" fn(fd: c_int, code: c_int, data: *mut c_void)>,
    code: c_int,
    data: *mut c_void,
    priority: c_int,
) -> c_int {
    guard(-1, || {
        let Some(func) = func else { return -1 };
        match EVENTS.attach_fd(fd, fd_type, FdCallback { func, code, data }, priority) {
            Ok(Attached::Added) => 0,
            Ok(Attached::Replaced) => 1,
            Err(e) => {
                log::warn!("E_attach_fd({fd}, {fd_type}, priority {priority}): {e:?}");
                -1
            }
        }
    })
}

#[no_mangle]
pub extern "C" fn E_detach_fd(fd: c_int, fd_type: c_int) -> c_int {
    guard(-1, || status(EVENTS.detach_fd(fd, fd_type)))
}

#[no_mangle]
pub extern "C" fn E_detach_fd_priority(fd: c_int, fd_type: c_int, priority: c_int) -> c_int {
    guard(-1, || status(EVENTS.detach_fd_priority(fd, fd_type, priority)))
}

#[no_mangle]
pub extern "C" fn E_set_active_threshold(priority: c_int) -> c_int {
    guard(-1, || match EVENTS.set_active_threshold(priority) {
        Ok(p) => p.to_c(),
        Err(_) => -1,
    })
}

#[no_mangle]
pub extern "C" fn E_activate_fd(fd: c_int, fd_type: c_int) -> c_int {
    guard(-1, || status(EVENTS.set_fd_active(fd, fd_type, true)))
}

#[no_mangle]
pub extern "C" fn E_deactivate_fd(fd: c_int, fd_type: c_int) -> c_int {
    guard(-1, || status(EVENTS.set_fd_active(fd, fd_type, false)))
}

#[no_mangle]
pub extern "C" fn E_num_active(priority: c_int) -> c_int {
    guard(-1, || match EVENTS.num_active(priority) {
        Ok(n) => n as c_int,
        Err(_) => -1,
    })
}

#[no_mangle]
pub extern "C" fn E_handle_events() {
    guard((), || EVENTS.handle_events())
}

#[no_mangle]
pub extern "C" fn E_exit_events() {
    guard((), || EVENTS.exit())
}

/// Safe to call from a signal handler: an atomic store and one write(2) to a pipe.
#[no_mangle]
pub extern "C" fn E_exit_events_async_safe() {
    guard((), || EVENTS.exit())
}

/// Writes the symbol name of `fptr` into `fname` (at most `fname_len - 1` bytes, then NUL).
///
/// # Safety
/// `fname` is NULL or points to `fname_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn E_lookup_function_name(fptr: *mut c_void, fname: *mut c_char, fname_len: c_int) {
    guard((), || {
        if fname.is_null() || fname_len <= 0 {
            return;
        }
        let name = function_name(fptr as usize);
        let n = name.len().min(fname_len as usize - 1);
        // SAFETY: the caller provides `fname_len` writable bytes at `fname` (checked non-null);
        // `n + 1 <= fname_len`.
        unsafe {
            std::ptr::copy_nonoverlapping(name.as_ptr().cast::<c_char>(), fname, n);
            *fname.add(n) = 0;
        }
    })
}

/// Descriptor entry as the original library lays it out (argument of `E_time_events`).
#[repr(C)]
pub struct fd_event {
    pub fd: c_int,
    pub fd_type: c_int,
    pub func: Option<extern "C" fn(mbox: mailbox, code: c_int, data: *mut c_void)>,
    pub code: c_int,
    pub data: *mut c_void,
    pub active: c_int,
}

/// Timer entry as the original library lays it out (argument of `E_time_events`).
#[repr(C)]
pub struct time_event {
    pub t: sp_time,
    pub func: Option<extern "C" fn(code: c_int, data: *mut c_void)>,
    pub code: c_int,
    pub data: *mut c_void,
    pub next: *mut time_event,
}

const TIME_EVENT: c_int = 1;
const FD_EVENT: c_int = 2;
const EVENT_RECORD_NAMELEN: usize = 128;

/// A slow-event record as the original lays it out (argument of `E_print_slow_event`).
#[repr(C)]
pub struct event_record {
    pub dur: sp_time,
    pub type_: c_int,
    pub funcname: [c_char; EVENT_RECORD_NAMELEN],
    pub fev: fd_event,
    pub tev: time_event,
}

impl From<&fd_event> for EventSource {
    fn from(e: &fd_event) -> EventSource {
        EventSource::Fd {
            fd: e.fd,
            fd_type: e.fd_type,
            func: e.func.map_or(0, |f| f as usize),
            code: e.code,
            data: e.data as usize,
            active: e.active != 0,
        }
    }
}

impl From<&time_event> for EventSource {
    fn from(e: &time_event) -> EventSource {
        EventSource::Timer {
            func: e.func.map_or(0, |f| f as usize),
            code: e.code,
            data: e.data as usize,
        }
    }
}

/// Records that the given descriptor or timer callback (exactly one) ran from start to stop.
///
/// # Safety
/// `fev` and `tev` are each NULL or point to a valid record.
#[no_mangle]
pub unsafe extern "C" fn E_time_events(
    start: sp_time,
    stop: sp_time,
    fev: *mut fd_event,
    tev: *mut time_event,
) {
    guard((), || {
        // SAFETY: the caller passes NULL or a pointer to a valid record of that type.
        let source = match unsafe { (fev.as_ref(), tev.as_ref()) } {
            (Some(f), None) => EventSource::from(f),
            (None, Some(t)) => EventSource::from(t),
            _ => {
                log::error!("E_time_events: needs exactly one of an fd event and a time event");
                return;
            }
        };
        EVENTS.record_slow(start.into(), stop.into(), source);
    })
}

/// Prints one slow-event record to stdout (what the diagnostics function is for).
///
/// # Safety
/// `ev` is NULL or points to a valid record.
#[no_mangle]
pub unsafe extern "C" fn E_print_slow_event(ev: *mut event_record) {
    guard((), || {
        // SAFETY: the caller passes NULL or a pointer to a valid record.
        let Some(ev) = (unsafe { ev.as_ref() }) else {
            return;
        };
        let source = match ev.type_ {
            FD_EVENT => EventSource::from(&ev.fev),
            TIME_EVENT => EventSource::from(&ev.tev),
            // 0 marks an empty record.
            _ => return,
        };
        let len = ev
            .funcname
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(EVENT_RECORD_NAMELEN);
        let name = ev.funcname[..len].iter().map(|&c| c as u8 as char).collect();
        let record = SlowEvent {
            duration: ev.dur.into(),
            name,
            source,
        };
        println!("{record}");
    })
}

/// Prints the slowest callbacks the loop has run to stdout, longest first.
#[no_mangle]
pub extern "C" fn E_print_slow_events() {
    guard((), || {
        for record in EVENTS.slow_events() {
            println!("{record}");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::null_mut;

    extern "C" fn on_timer(_: c_int, _: *mut c_void) {}
    extern "C" fn on_fd(_: c_int, _: c_int, _: *mut c_void) {}

    fn t(sec: i64, usec: i64) -> sp_time {
        sp_time { sec, usec }
    }

    #[test]
    fn time_shells() {
        assert_eq!(E_add_time(t(1, 700_000), t(0, 400_000)), t(2, 100_000));
        assert_eq!(E_sub_time(t(1, 0), t(0, 1)), t(0, 999_999));
        assert_eq!(E_neg_time(t(1, 2)), t(-1, -2));
        assert_eq!(E_compare_time(t(1, 0), t(0, 5)), 1);
        assert_eq!(E_compare_time(t(0, 5), t(1, 0)), -1);
        assert_eq!(E_compare_time(t(3, 3), t(3, 3)), 0);
        assert!(E_get_time().sec > 1_600_000_000);
    }

    /// The only test touching the process-wide loop (tests run in parallel).
    #[test]
    fn result_codes_on_the_global_loop() {
        assert_eq!(E_init(), 0);
        let data = 5 as *mut c_void;
        assert_eq!(E_queue(None, 1, data, t(1, 0)), -1);
        assert_eq!(E_queue(Some(on_timer), 1, data, t(100, 0)), 0);
        assert_eq!(E_in_queue(Some(on_timer), 1, data), 1);
        assert_eq!(E_in_queue(Some(on_timer), 2, data), 0);
        assert_eq!(E_in_queue(None, 1, data), 0);
        assert_eq!(E_dequeue(Some(on_timer), 1, data), 0);
        assert_eq!(E_dequeue(Some(on_timer), 1, data), -1);

        assert_eq!(E_attach_fd(0, READ, Some(on_fd), 1, null_mut(), 0), 0);
        assert_eq!(E_attach_fd(0, READ, Some(on_fd), 2, null_mut(), 0), 1);
        assert_eq!(E_attach_fd(0, READ, Some(on_fd), 2, null_mut(), 3), -1);
        assert_eq!(E_attach_fd(0, 3, Some(on_fd), 2, null_mut(), 0), -1);
        assert_eq!(E_attach_fd(-1, READ, Some(on_fd), 2, null_mut(), 0), -1);
        assert_eq!(E_attach_fd(0, READ, None, 2, null_mut(), 0), -1);
        assert_eq!(E_num_active(0), 1);
        assert_eq!(E_num_active(3), -1);
        assert_eq!(E_deactivate_fd(0, READ), 0);
        assert_eq!(E_num_active(0), 0);
        assert_eq!(E_activate_fd(0, READ), 0);
        assert_eq!(E_activate_fd(0, 1), -1);
        assert_eq!(E_set_active_threshold(2), 2);
        assert_eq!(E_set_active_threshold(-1), -1);
        assert_eq!(E_detach_fd_priority(0, READ, 2), -1);
        assert_eq!(E_detach_fd(0, READ), 0);
        assert_eq!(E_detach_fd(0, READ), -1);
        assert_eq!(E_detach_fd(0, 9), -1);
        assert_eq!(E_init(), 0);
        assert_eq!(E_num_active(0), 0);
    }

    const READ: c_int = crate::events::READ_FD;

    #[test]
    fn function_names_are_cut_to_the_buffer() {
        let mut buf = [0x55 as c_char; 5];
        // SAFETY: buf holds 5 bytes.
        unsafe { E_lookup_function_name(libc::malloc as *mut c_void, buf.as_mut_ptr(), 5) };
        assert_eq!(buf.map(|c| c as u8), *b"mall\0");
        // SAFETY: nothing is written for a length of 0.
        unsafe { E_lookup_function_name(libc::malloc as *mut c_void, buf.as_mut_ptr(), 0) };
        assert_eq!(buf[0] as u8, b'm');
    }
}
