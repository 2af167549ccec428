//! The socket layer: writing and reading whole byte sequences on a mailbox descriptor with as
//! few system calls as possible, and readiness waits with an optional deadline. All `unsafe`
//! socket calls of the client live here.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Instant;

/// Most iovecs handed to one system call (Linux allows 1024).
const MAX_IOV: usize = 128;
/// Scratch space that receives bytes the caller has no room for.
const SINK_LEN: usize = 16 * 1024;

/// Where received bytes go: the caller's memory, or nowhere (read and dropped).
pub(crate) enum Target<'a> {
    Into(&'a mut [u8]),
    Discard(usize),
}

impl Target<'_> {
    fn len(&self) -> usize {
        match self {
            Target::Into(buf) => buf.len(),
            Target::Discard(len) => *len,
        }
    }
}

fn empty_iovecs() -> [libc::iovec; MAX_IOV] {
    [libc::iovec {
        iov_base: ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOV]
}

/// Position inside a list of byte spans: span index and offset into it.
struct Cursor {
    index: usize,
    offset: usize,
}

impl Cursor {
    /// Moves past `n` bytes of spans whose lengths `len_of` gives, and past finished spans.
    fn advance(&mut self, mut n: usize, count: usize, len_of: impl Fn(usize) -> usize) {
        while self.index < count {
            let left = len_of(self.index) - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.index += 1;
            self.offset = 0;
        }
    }
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
}

/// Waits until `fd` is readable (or writable). `Ok(false)`: the deadline passed first.
pub(crate) fn wait_ready(fd: RawFd, readable: bool, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return Ok(false);
                }
                // Round up so the wait never ends before the deadline.
                let ms = (d - now).as_micros().div_ceil(1000);
                ms.min(i32::MAX as u128) as i32
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: if readable { libc::POLLIN } else { libc::POLLOUT },
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that outlives the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if ready > 0 {
            return Ok(true);
        }
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

/// What to do after a failed send or receive call: retry, or give up with the error.
fn retry_after(err: io::Error, fd: RawFd, readable: bool, deadline: Option<Instant>) -> io::Result<()> {
    match err.kind() {
        io::ErrorKind::Interrupted => Ok(()),
        io::ErrorKind::WouldBlock => {
            if wait_ready(fd, readable, deadline)? {
                Ok(())
            } else {
                Err(timed_out())
            }
        }
        _ => Err(err),
    }
}

/// Writes all `pieces` back to back, as one `sendmsg` when the socket takes it all. Never
/// raises SIGPIPE. With a deadline, fails with `TimedOut` once it has passed.
pub(crate) fn send_all(fd: RawFd, pieces: &[&[u8]], deadline: Option<Instant>) -> io::Result<()> {
    let mut iov = empty_iovecs();
    let mut at = Cursor { index: 0, offset: 0 };
    at.advance(0, pieces.len(), |i| pieces[i].len());
    while at.index < pieces.len() {
        if expired(deadline) {
            return Err(timed_out());
        }
        let mut count = 0;
        for (i, piece) in pieces.iter().enumerate().skip(at.index) {
            if count == MAX_IOV {
                break;
            }
            let rest = if i == at.index { &piece[at.offset..] } else { piece };
            if !rest.is_empty() {
                iov[count] = libc::iovec {
                    iov_base: rest.as_ptr() as *mut libc::c_void,
                    iov_len: rest.len(),
                };
                count += 1;
            }
        }
        // SAFETY: msghdr is plain data for which all zeros is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = count as _;
        // SAFETY: the first `count` iovecs describe live slices of `pieces`, which the kernel
        // only reads.
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if sent < 0 {
            retry_after(io::Error::last_os_error(), fd, false, deadline)?;
            continue;
        }
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        at.advance(sent as usize, pieces.len(), |i| pieces[i].len());
    }
    Ok(())
}

/// Reads exactly the bytes `targets` describe, in order, with as few `readv` calls as the
/// socket allows; never reads beyond them. End of stream before that is `UnexpectedEof`.
pub(crate) fn recv_all(fd: RawFd, targets: &mut [Target<'_>], deadline: Option<Instant>) -> io::Result<()> {
    let mut sink = MaybeUninit::<[u8; SINK_LEN]>::uninit();
    let sink_ptr = sink.as_mut_ptr() as *mut libc::c_void;
    let mut iov = empty_iovecs();
    let mut at = Cursor { index: 0, offset: 0 };
    at.advance(0, targets.len(), |i| targets[i].len());
    while at.index < targets.len() {
        if expired(deadline) {
            return Err(timed_out());
        }
        let mut count = 0;
        let mut offset = at.offset;
        for target in targets[at.index..].iter_mut() {
            match target {
                Target::Into(buf) => {
                    if count == MAX_IOV {
                        break;
                    }
                    let rest = &mut buf[offset..];
                    if !rest.is_empty() {
                        iov[count] = libc::iovec {
                            iov_base: rest.as_mut_ptr() as *mut libc::c_void,
                            iov_len: rest.len(),
                        };
                        count += 1;
                    }
                }
                Target::Discard(len) => {
                    // Every chunk of a discarded span lands in the same scratch buffer.
                    let mut left = *len - offset;
                    while left > 0 && count < MAX_IOV {
                        let chunk = left.min(SINK_LEN);
                        iov[count] = libc::iovec {
                            iov_base: sink_ptr,
                            iov_len: chunk,
                        };
                        count += 1;
                        left -= chunk;
                    }
                }
            }
            offset = 0;
            if count == MAX_IOV {
                break;
            }
        }
        // SAFETY: each iovec points into a live, exclusively borrowed target buffer or into
        // `sink`, and covers only bytes inside it; the sink's contents are never read.
        let got = unsafe { libc::readv(fd, iov.as_ptr(), count as libc::c_int) };
        if got < 0 {
            retry_after(io::Error::last_os_error(), fd, true, deadline)?;
            continue;
        }
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        at.advance(got as usize, targets.len(), |i| targets[i].len());
    }
    Ok(())
}

/// Bytes waiting to be read on `fd` right now.
pub(crate) fn pending_bytes(fd: RawFd) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for the call.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut count) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(count.max(0) as usize)
}

/// Closes a mailbox descriptor the library owns.
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller has just removed `fd` from the session table, which owned it; no
    // further use of the number is made by the library. An error leaves nothing to undo.
    unsafe { libc::close(fd) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn pieces_arrive_back_to_back() {
        let (a, b) = UnixStream::pair().unwrap();
        send_all(a.as_raw_fd(), &[b"ab", b"", b"cde"], None).unwrap();
        let mut first = [0u8; 1];
        let mut rest = [0u8; 2];
        let mut targets = [
            Target::Into(&mut first),
            Target::Discard(2),
            Target::Into(&mut rest),
        ];
        recv_all(b.as_raw_fd(), &mut targets, None).unwrap();
        assert_eq!((&first, &rest), (b"a", b"de"));
    }

    #[test]
    fn reads_exactly_what_is_asked_across_partial_writes() {
        let (a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut a = a;
            let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
            for chunk in data.chunks(7_001) {
                a.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            a.write_all(b"next").unwrap();
            a
        });
        let mut head = [0u8; 10];
        let mut tail = [0u8; 5];
        let mut targets = [
            Target::Into(&mut head),
            Target::Discard(39_985),
            Target::Into(&mut tail),
        ];
        recv_all(b.as_raw_fd(), &mut targets, None).unwrap();
        assert_eq!(head, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let want: Vec<u8> = (39_995..40_000u32).map(|i| i as u8).collect();
        assert_eq!(&tail[..], &want[..]);
        let _a = writer.join().unwrap();
        let mut next = [0u8; 4];
        recv_all(b.as_raw_fd(), &mut [Target::Into(&mut next)], None).unwrap();
        assert_eq!(&next, b"next");
    }

    #[test]
    fn eof_and_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4];
        let start = Instant::now();
        let deadline = Some(start + Duration::from_millis(50));
        let err = recv_all(b.as_raw_fd(), &mut [Target::Into(&mut buf)], deadline).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(50));
        drop(a);
        let err = recv_all(b.as_raw_fd(), &mut [Target::Into(&mut buf)], None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn send_to_closed_peer_fails_without_signal() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let err = send_all(a.as_raw_fd(), &[b"x"], None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
