//! Thin safe wrappers over the Linux calls the event loop needs: epoll and a signalfd.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A level-triggered epoll instance.
pub struct Epoll {
    fd: OwnedFd,
}

/// What a watched descriptor is waited for (errors and hang-ups are reported either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

impl Interest {
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };

    fn bits(self) -> u32 {
        let mut bits = 0;
        if self.read {
            bits |= libc::EPOLLIN as u32;
        }
        if self.write {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One readiness report: the token given when the descriptor was added, and what it is ready
/// for (errors and hang-ups count as readable, so the read finds them).
#[derive(Clone, Copy, Debug)]
pub struct Ready {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain system call; a non-negative result is a new descriptor we own.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_DEL, fd, 0, Interest::READ)
    }

    /// Waits up to `timeout_ms` (-1: no limit) and fills `ready`; an interrupted wait
    /// reports nothing.
    pub fn wait(&self, ready: &mut Vec<Ready>, timeout_ms: i32) -> io::Result<()> {
        const MAX_EVENTS: usize = 256;
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        // SAFETY: `events` has room for MAX_EVENTS entries, which is what we pass.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                MAX_EVENTS as libc::c_int,
                timeout_ms,
            )
        };
        ready.clear();
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        let readable = (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32;
        ready.extend(events[..n as usize].iter().map(|e| Ready {
            token: e.u64,
            readable: e.events & readable != 0,
            writable: e.events & libc::EPOLLOUT as u32 != 0,
        }));
        Ok(())
    }
}

/// The epoll timeout that wakes up at `deadline` (rounded up to whole milliseconds, so the
/// wake-up is never early); -1 (no limit) without a deadline.
pub fn timeout_ms(deadline: Option<Instant>, now: Instant) -> i32 {
    match deadline {
        None => -1,
        Some(t) => {
            let wait = t.saturating_duration_since(now);
            let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 != 0);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// Receive buffers for up to `slots` datagrams read by one recvmmsg(2).
pub struct DatagramBatch {
    /// `slots` buffers of `slot_len` bytes, one after the other.
    buffers: Vec<u8>,
    slot_len: usize,
    sources: Vec<libc::sockaddr_storage>,
    /// Per datagram received: its length and whether it was cut to fit its buffer.
    received: Vec<(usize, bool)>,
}

impl DatagramBatch {
    pub fn new(slots: usize, slot_len: usize) -> DatagramBatch {
        DatagramBatch {
            buffers: vec![0; slots * slot_len],
            slot_len,
            // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
            sources: vec![unsafe { std::mem::zeroed() }; slots],
            received: Vec::with_capacity(slots),
        }
    }

    /// Reads the datagrams waiting on the non-blocking socket `fd`, as many as there are
    /// slots; returns how many (0: none was waiting).
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received.clear();
        let slots = self.sources.len();
        let mut iovecs: Vec<libc::iovec> = self
            .buffers
            .chunks_exact_mut(self.slot_len)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(self.sources.iter_mut())
            .map(|(iov, source)| {
                // SAFETY: msghdr is plain data; all zero is a valid empty header.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_name = (source as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `headers` holds `slots` entries whose name and iovec pointers refer to
        // `self.sources`, `iovecs` and `self.buffers`, all alive and unmoved during the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        self.received.extend(headers[..n as usize].iter().map(|h| {
            let cut = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            (h.msg_len as usize, cut)
        }));
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`DatagramBatch::receive`]: its source (`None` if not an IP
    /// address), its bytes, and whether it was longer than its buffer (then cut).
    pub fn datagram(&self, i: usize) -> (Option<SocketAddr>, &[u8], bool) {
        let (len, cut) = self.received[i];
        let bytes = &self.buffers[i * self.slot_len..][..len.min(self.slot_len)];
        (socket_addr(&self.sources[i]), bytes, cut)
    }
}

fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // and aligned enough for.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// SIGINT and SIGTERM as a readable descriptor (the signals are blocked for the process, so
/// create this before any thread starts).
pub struct ExitSignals {
    fd: OwnedFd,
}

impl ExitSignals {
    pub fn new() -> io::Result<ExitSignals> {
        // SAFETY: the set is initialised by sigemptyset before use; all pointers are to locals.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            check(libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()))?;
            check(libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC))?
        };
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(ExitSignals {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Writing to a connection the client closed must give an error, not kill the daemon.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// One `recv` on a connected socket with `flags` (e.g. `MSG_PEEK`); `Ok(0)` is end of stream.
pub fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The IP addresses of this machine's interfaces (to find this daemon in the configuration).
pub fn local_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    check(unsafe { libc::getifaddrs(&mut list) })?;
    let mut out = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let entry = unsafe { &*at };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family tells its real type and size.
            let family = unsafe { (*entry.ifa_addr).sa_family } as libc::c_int;
            if family == libc::AF_INET {
                // SAFETY: the family says this is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                out.push(std::net::IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        at = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_round_up_to_the_deadline() {
        let now = Instant::now();
        let at = |micros| timeout_ms(Some(now + Duration::from_micros(micros)), now);
        assert_eq!(timeout_ms(None, now), -1);
        assert_eq!(timeout_ms(Some(now - Duration::from_secs(1)), now), 0);
        assert_eq!((at(0), at(1), at(1000), at(1001), at(2500)), (0, 1, 1, 2, 3));
        assert_eq!(
            timeout_ms(Some(now + Duration::from_secs(1 << 40)), now),
            i32::MAX
        );
    }

    #[test]
    fn batches_of_datagrams_with_their_sources() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = DatagramBatch::new(4, 8);
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 0);
        for i in 0..6u8 {
            sender.send_to(&[i; 3], to).unwrap();
        }
        sender.send_to(&[9; 20], to).unwrap();
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 4);
        for i in 0..4u8 {
            assert_eq!(
                batch.datagram(usize::from(i)),
                (Some(sender.local_addr().unwrap()), &[i; 3][..], false)
            );
        }
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 3);
        assert_eq!(batch.datagram(1).1, [5; 3]);
        // Longer than its slot: cut, and said so.
        assert_eq!(batch.datagram(2).1, [9; 8]);
        assert!(batch.datagram(2).2);
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 0);
    }
}
