//! The request to leave the event loop, settable from a signal handler: an atomic flag plus a
//! self-pipe whose read end the loop polls, so a request from another thread or a signal that
//! did not interrupt the loop's poll still wakes it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

pub struct ExitRequest {
    requested: AtomicBool,
    /// Write end of the pipe, or -1 before it exists (read without locks by the signal path).
    wake_write: AtomicI32,
    pipe: OnceLock<Option<(OwnedFd, OwnedFd)>>,
}

impl ExitRequest {
    pub const fn new() -> ExitRequest {
        ExitRequest {
            requested: AtomicBool::new(false),
            wake_write: AtomicI32::new(-1),
            pipe: OnceLock::new(),
        }
    }

    /// The read end to poll, creating the pipe on first use; None if it cannot be created
    /// (then only requests made inside callbacks or signals interrupting poll end the loop).
    pub fn wake_fd(&self) -> Option<RawFd> {
        let pipe = self.pipe.get_or_init(|| {
            let mut fds: [c_int; 2] = [-1, -1];
            // SAFETY: `fds` is a writable array of two ints, as pipe2 requires.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
                log::warn!("event loop wake pipe: {}", std::io::Error::last_os_error());
                return None;
            }
            // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
            let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            self.wake_write.store(ends.1.as_raw_fd(), Ordering::Release);
            Some(ends)
        });
        pipe.as_ref().map(|(read, _)| read.as_raw_fd())
    }

    /// Called when the loop starts: requests made while it was not running are forgotten.
    pub fn reset(&self) {
        self.requested.store(false, Ordering::SeqCst);
        self.drain();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Async-signal-safe: one atomic store and at most one write(2).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        let fd = self.wake_write.load(Ordering::Acquire);
        if fd >= 0 {
            // SAFETY: the write end stays open for the life of `self`; the byte is a valid
            // buffer. A full pipe (EAGAIN) already means "wake up", so the result is ignored.
            unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
        }
    }

    /// Empties the pipe so it no longer reads as ready.
    pub fn drain(&self) {
        if let Some(Some((read, _))) = self.pipe.get() {
            let mut buf = [0u8; 64];
            // SAFETY: `buf` is writable for its length; the read end is non-blocking, so the
            // loop ends at EAGAIN. Bounded: a pipe holds finitely many bytes.
            while unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn request_sets_flag_and_wakes() {
        let exit = ExitRequest::new();
        exit.request();
        assert!(exit.is_requested());
        let fd = exit.wake_fd().expect("pipe");
        exit.reset();
        assert!(!exit.is_requested());
        assert!(!readable(fd));
        exit.request();
        exit.request();
        assert!(readable(fd));
        exit.reset();
        assert!(!readable(fd));
    }
}
