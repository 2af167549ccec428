//! The loop's dispatch rules, with pipes as descriptors. Every test queues a safety timer that
//! ends the loop, so a broken loop fails instead of hanging.

use super::*;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SAFETY_CODE: c_int = -999;

struct Ctx {
    events: EventLoop,
    log: Mutex<Vec<c_int>>,
    /// The loop exits once this many callbacks ran.
    exit_after: AtomicUsize,
}

impl Ctx {
    fn new(exit_after: usize) -> Box<Ctx> {
        let ctx = Box::new(Ctx {
            events: EventLoop::new(),
            log: Mutex::new(Vec::new()),
            exit_after: AtomicUsize::new(exit_after),
        });
        ctx.events.queue(ctx.timer(SAFETY_CODE), Time::new(5, 0));
        ctx
    }

    fn data(&self) -> *mut c_void {
        self as *const Ctx as *mut c_void
    }

    fn timer(&self, code: c_int) -> TimerCallback {
        TimerCallback {
            func: on_timer,
            code,
            data: self.data(),
        }
    }

    fn fd(&self, code: c_int) -> FdCallback {
        FdCallback {
            func: on_fd,
            code,
            data: self.data(),
        }
    }

    fn note(&self, code: c_int) {
        let mut log = self.log.lock();
        log.push(code);
        if code == SAFETY_CODE || log.len() >= self.exit_after.load(Ordering::SeqCst) {
            self.events.exit();
        }
    }

    fn run(&self) -> Vec<c_int> {
        self.events.handle_events();
        let log = self.log.lock().clone();
        assert!(
            !log.contains(&SAFETY_CODE),
            "loop ran into the safety timer: {log:?}"
        );
        log
    }
}

fn ctx_of(data: *mut c_void) -> &'static Ctx {
    // SAFETY: every test passes a pointer to its boxed Ctx, which outlives its loop's run.
    unsafe { &*(data as *const Ctx) }
}

extern "C" fn on_timer(code: c_int, data: *mut c_void) {
    ctx_of(data).note(code);
}

/// Records the code without reading, so the descriptor stays ready (level-triggered).
extern "C" fn on_fd(_fd: c_int, code: c_int, data: *mut c_void) {
    ctx_of(data).note(code);
}

/// Records, then detaches itself once it has run three times.
extern "C" fn on_fd_detach_third(fd: c_int, code: c_int, data: *mut c_void) {
    let ctx = ctx_of(data);
    ctx.note(code);
    if ctx.log.lock().iter().filter(|&&c| c == code).count() == 3 {
        ctx.events.detach_fd(fd, READ_FD).unwrap();
    }
}

/// A pipe whose read end is readable; the write end is returned to keep it open.
fn readable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: pipe succeeded; we own both ends.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: writing one byte from a valid buffer to our open pipe.
    assert_eq!(unsafe { libc::write(w.as_raw_fd(), [7u8].as_ptr().cast(), 1) }, 1);
    (r, w)
}

#[test]
fn timers_fire_in_deadline_order() {
    let ctx = Ctx::new(3);
    ctx.events.queue(ctx.timer(1), Time::new(0, 20_000));
    ctx.events.queue(ctx.timer(2), Time::ZERO);
    ctx.events.queue(ctx.timer(3), Time::new(0, 40_000));
    ctx.events.queue(ctx.timer(4), Time::new(0, 30_000));
    assert!(ctx.events.dequeue(&ctx.timer(4)).is_ok());
    assert_eq!(ctx.events.dequeue(&ctx.timer(4)), Err(EventError::NotFound));
    let start = Time::now_monotonic();
    assert_eq!(ctx.run(), vec![2, 1, 3]);
    let took = Time::now_monotonic() - start;
    assert!(took >= Time::new(0, 40_000), "{took:?}");
    assert!(!ctx.events.in_queue(&ctx.timer(3)));
}

#[test]
fn high_runs_every_pass_and_low_takes_turns() {
    let ctx = Ctx::new(6);
    let pipes: Vec<_> = (0..4).map(|_| readable_pipe()).collect();
    let fd = |i: usize| pipes[i].0.as_raw_fd();
    ctx.events
        .attach_fd(fd(0), READ_FD, ctx.fd(100), HIGH_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(1), READ_FD, ctx.fd(200), MEDIUM_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(2), READ_FD, ctx.fd(1), LOW_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(3), READ_FD, ctx.fd(2), LOW_PRIORITY)
        .unwrap();
    // MEDIUM only runs in passes without a HIGH callback; LOW once per pass, in turn.
    assert_eq!(ctx.run(), vec![100, 1, 100, 2, 100, 1]);
}

#[test]
fn medium_runs_when_high_is_gone() {
    let ctx = Ctx::new(9);
    let pipes: Vec<_> = (0..3).map(|_| readable_pipe()).collect();
    let fd = |i: usize| pipes[i].0.as_raw_fd();
    let detaching = FdCallback {
        func: on_fd_detach_third,
        ..ctx.fd(100)
    };
    ctx.events
        .attach_fd(fd(0), READ_FD, detaching, HIGH_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(1), READ_FD, ctx.fd(200), MEDIUM_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(2), READ_FD, ctx.fd(1), LOW_PRIORITY)
        .unwrap();
    assert_eq!(ctx.run(), vec![100, 1, 100, 1, 100, 1, 200, 1, 200]);
}

#[test]
fn threshold_and_deactivation_silence_entries() {
    let ctx = Ctx::new(3);
    let pipes: Vec<_> = (0..3).map(|_| readable_pipe()).collect();
    let fd = |i: usize| pipes[i].0.as_raw_fd();
    ctx.events
        .attach_fd(fd(0), READ_FD, ctx.fd(1), LOW_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(1), READ_FD, ctx.fd(2), MEDIUM_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(fd(2), READ_FD, ctx.fd(3), MEDIUM_PRIORITY)
        .unwrap();
    assert_eq!(
        ctx.events.set_active_threshold(MEDIUM_PRIORITY),
        Ok(Priority::Medium)
    );
    assert_eq!(
        ctx.events.set_active_threshold(7),
        Err(EventError::InvalidPriority)
    );
    ctx.events.set_fd_active(fd(2), READ_FD, false).unwrap();
    assert_eq!(ctx.events.num_active(MEDIUM_PRIORITY), Ok(1));
    assert_eq!(ctx.events.num_active(LOW_PRIORITY), Ok(1));
    assert_eq!(ctx.run(), vec![2, 2, 2]);
}

#[test]
fn timers_wait_while_high_priority_work_is_ready() {
    let ctx = Ctx::new(6);
    let (r, _w) = readable_pipe();
    ctx.events.queue(ctx.timer(7), Time::ZERO);
    let detaching = FdCallback {
        func: on_fd_detach_third,
        ..ctx.fd(100)
    };
    ctx.events
        .attach_fd(r.as_raw_fd(), READ_FD, detaching, HIGH_PRIORITY)
        .unwrap();
    ctx.events.queue(ctx.timer(8), Time::new(0, 50_000));
    ctx.events.queue(ctx.timer(9), Time::new(0, 60_000));
    assert_eq!(ctx.run(), vec![100, 100, 100, 7, 8, 9]);
}

#[test]
fn exit_from_another_thread_wakes_the_loop() {
    let ctx = Ctx::new(usize::MAX);
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            ctx.events.exit();
        });
        assert!(ctx.run().is_empty());
    });
    // An exit requested while no loop runs does not end the next run.
    ctx.events.exit();
    ctx.events.queue(ctx.timer(1), Time::new(0, 10_000));
    ctx.exit_after.store(1, Ordering::SeqCst);
    assert_eq!(ctx.run(), vec![1]);
}

#[test]
fn slow_callbacks_are_recorded() {
    let ctx = Ctx::new(1);
    ctx.events.queue(ctx.timer(5), Time::ZERO);
    assert_eq!(ctx.run(), vec![5]);
    let slow = ctx.events.slow_events();
    assert!(
        matches!(slow[0].source, EventSource::Timer { code: 5, .. }),
        "{slow:?}"
    );
    assert_eq!(slow[0].name, function_name(on_timer as *const () as usize));
}

static SIGNALLED: EventLoop = EventLoop::new();
static SIGNAL_TEST_TIMED_OUT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn exit_on_signal(_: c_int) {
    SIGNALLED.exit();
}

extern "C" fn signal_test_timeout(_: c_int, _: *mut c_void) {
    SIGNAL_TEST_TIMED_OUT.store(1, Ordering::SeqCst);
    SIGNALLED.exit();
}

#[test]
fn exit_from_a_signal_handler() {
    let handler: extern "C" fn(c_int) = exit_on_signal;
    // SAFETY: the handler only does async-signal-safe work (an atomic store and a write).
    unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
    let timeout = TimerCallback {
        func: signal_test_timeout,
        code: 0,
        data: std::ptr::null_mut(),
    };
    SIGNALLED.queue(timeout, Time::new(5, 0));
    // SAFETY: pthread_self has no preconditions.
    let loop_thread = unsafe { libc::pthread_self() };
    let loop_done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Repeated in case a signal lands before the loop starts (which forgets it).
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(20));
                if loop_done.load(Ordering::SeqCst) {
                    break;
                }
                // SAFETY: the loop thread is alive: the scope joins this thread first.
                unsafe { libc::pthread_kill(loop_thread, libc::SIGUSR1) };
            }
        });
        SIGNALLED.handle_events();
        loop_done.store(true, Ordering::SeqCst);
    });
    assert_eq!(SIGNAL_TEST_TIMED_OUT.load(Ordering::SeqCst), 0);
}

#[test]
fn read_and_write_entries_of_one_descriptor_are_told_apart() {
    let ctx = Ctx::new(3);
    let mut fds = [-1; 2];
    // SAFETY: a writable array of two ints.
    assert_eq!(
        unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) },
        0
    );
    // SAFETY: socketpair succeeded; we own both ends.
    let (a, _b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Nothing to read yet, but room to write.
    ctx.events
        .attach_fd(a.as_raw_fd(), READ_FD, ctx.fd(1), LOW_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(a.as_raw_fd(), WRITE_FD, ctx.fd(2), LOW_PRIORITY)
        .unwrap();
    ctx.events
        .attach_fd(a.as_raw_fd(), EXCEPT_FD, ctx.fd(3), LOW_PRIORITY)
        .unwrap();
    assert_eq!(ctx.run(), vec![2, 2, 2]);
}
