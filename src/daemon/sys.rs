//! Thin safe wrappers over the Linux calls the event loop needs: epoll, a signalfd, batched
//! datagram reception with the arrival interface, and the machine's interfaces.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
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

/// Room for the ancillary data of one datagram: its packet information (IPv4 or IPv6), in
/// `u64`s for the alignment of a `cmsghdr`.
type Control = [u64; 8];

/// One datagram of a [`DatagramBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// `None` if not an IP address.
    pub source: Option<SocketAddr>,
    pub bytes: &'a [u8],
    /// It was longer than its buffer, and cut.
    pub cut: bool,
    /// Index of the interface it came in through, when the socket reports it (see
    /// [`report_arrival_interface`]).
    pub interface: Option<u32>,
}

/// Receive buffers for up to `slots` datagrams read by one recvmmsg(2).
pub struct DatagramBatch {
    /// `slots` buffers of `slot_len` bytes, one after the other.
    buffers: Vec<u8>,
    slot_len: usize,
    sources: Vec<libc::sockaddr_storage>,
    controls: Vec<Control>,
    /// Per datagram received: its length, whether it was cut to fit its buffer, and its
    /// arrival interface.
    received: Vec<(usize, bool, Option<u32>)>,
}

impl DatagramBatch {
    pub fn new(slots: usize, slot_len: usize) -> DatagramBatch {
        DatagramBatch {
            buffers: vec![0; slots * slot_len],
            slot_len,
            // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
            sources: vec![unsafe { std::mem::zeroed() }; slots],
            controls: vec![[0; 8]; slots],
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
            .zip(self.controls.iter_mut())
            .map(|((iov, source), control)| {
                // SAFETY: msghdr is plain data; all zero is a valid empty header.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_name = (source as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = iov;
                h.msg_iovlen = 1;
                h.msg_control = control.as_mut_ptr().cast();
                h.msg_controllen = std::mem::size_of::<Control>();
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `headers` holds `slots` entries whose name, iovec and control pointers refer
        // to `self.sources`, `iovecs`, `self.buffers` and `self.controls`, all alive and unmoved
        // during the call.
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
            (h.msg_len as usize, cut, arrival_interface(&h.msg_hdr))
        }));
        Ok(n as usize)
    }

    /// Datagram `i` of the last [`DatagramBatch::receive`].
    pub fn datagram(&self, i: usize) -> Datagram<'_> {
        let (len, cut, interface) = self.received[i];
        Datagram {
            source: socket_addr(&self.sources[i]),
            bytes: &self.buffers[i * self.slot_len..][..len.min(self.slot_len)],
            cut,
            interface,
        }
    }
}

/// The arrival interface in the packet information of a received message, if there is one.
fn arrival_interface(header: &libc::msghdr) -> Option<u32> {
    // SAFETY: `header` was filled by recvmmsg: its control pointer and (updated) length
    // describe the ancillary data the kernel wrote into our control buffer, which is alive.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(header) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return null or a header inside the buffer.
        let c = unsafe { &*cmsg };
        // SAFETY: level and type say which structure follows the header; the kernel wrote all
        // of it (cmsg_len covers it), at an address CMSG_DATA aligns for it only to the header's
        // alignment, hence the unaligned reads.
        unsafe {
            if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return u32::try_from(info.ipi_ifindex).ok();
            }
            if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(info.ipi6_ifindex);
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header of this message.
        cmsg = unsafe { libc::CMSG_NXTHDR(header, cmsg) };
    }
    None
}

fn set_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `value` is a c_int alive for the call, and we pass its size.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Makes the UDP socket `fd` report the arrival interface of each datagram (`IP_PKTINFO`,
/// `IPV6_RECVPKTINFO`), which [`DatagramBatch`] then returns.
pub fn report_arrival_interface(fd: RawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
    } else {
        set_option(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
    }
}

/// Makes unicasts and broadcasts of the UDP socket `fd` leave through interface `index`
/// whatever the routing table says (`IP_UNICAST_IF`, `IPV6_UNICAST_IF`; unprivileged, and
/// unlike `SO_BINDTODEVICE` it leaves reception alone).
pub fn send_through_interface(fd: RawFd, ipv6: bool, index: u32) -> io::Result<()> {
    let index = libc::c_int::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if ipv6 {
        set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_IF, index)
    } else {
        // The IPv4 option alone takes the index in network byte order.
        set_option(fd, libc::IPPROTO_IP, libc::IP_UNICAST_IF, index.to_be())
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
pub fn local_addresses() -> io::Result<Vec<IpAddr>> {
    Ok(interface_addresses()?.into_iter().map(|a| a.address).collect())
}

/// One IP address of one of this machine's interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub netmask: Option<IpAddr>,
    /// The interface's index (as in packet information).
    pub index: u32,
    pub name: String,
    pub loopback: bool,
}

/// An IP address in a `sockaddr` of getifaddrs, if it is one.
///
/// # Safety
/// `addr` is null or points to a sockaddr whose family tells its real type.
unsafe fn ip_of(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: by the caller's promise, the family is readable and tells the real type.
    unsafe {
        match (*addr).sa_family as libc::c_int {
            libc::AF_INET => {
                let sin = &*addr.cast::<libc::sockaddr_in>();
                Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
            }
            libc::AF_INET6 => Some(IpAddr::from(
                (*addr.cast::<libc::sockaddr_in6>()).sin6_addr.s6_addr,
            )),
            _ => None,
        }
    }
}

/// Every IP address of this machine's interfaces.
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below.
    check(unsafe { libc::getifaddrs(&mut list) })?;
    let mut out = Vec::new();
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let entry = unsafe { &*at };
        // SAFETY: getifaddrs gives null or sockaddrs whose family tells their type.
        if let Some(address) = unsafe { ip_of(entry.ifa_addr) } {
            // SAFETY: as above, for the netmask.
            let netmask = unsafe { ip_of(entry.ifa_netmask) };
            // SAFETY: ifa_name is a NUL-terminated string alive until freeifaddrs.
            let name = unsafe { CStr::from_ptr(entry.ifa_name) };
            // SAFETY: plain call with a valid C string.
            let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
            out.push(InterfaceAddress {
                address,
                netmask,
                index,
                name: name.to_string_lossy().into_owned(),
                loopback: entry.ifa_flags & libc::IFF_LOOPBACK as libc::c_uint != 0,
            });
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
                Datagram {
                    source: Some(sender.local_addr().unwrap()),
                    bytes: &[i; 3][..],
                    cut: false,
                    interface: None
                }
            );
        }
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 3);
        assert_eq!(batch.datagram(1).bytes, [5; 3]);
        // Longer than its slot: cut, and said so.
        assert_eq!(batch.datagram(2).bytes, [9; 8]);
        assert!(batch.datagram(2).cut);
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 0);
    }

    fn loopback_index() -> u32 {
        let lo = interface_addresses()
            .unwrap()
            .into_iter()
            .find(|a| a.address == Ipv4Addr::LOCALHOST);
        let lo = lo.expect("127.0.0.1 is on an interface");
        assert!(lo.loopback && lo.index > 0, "{lo:?}");
        lo.index
    }

    #[test]
    fn arrival_interfaces_are_reported_when_asked_for() {
        let lo = loopback_index();
        let v4 = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        report_arrival_interface(v4.as_raw_fd(), false).unwrap();
        v4.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        send_through_interface(sender.as_raw_fd(), false, lo).unwrap();
        for _ in 0..3 {
            sender.send_to(b"v4", v4.local_addr().unwrap()).unwrap();
        }
        let mut batch = DatagramBatch::new(4, 64);
        assert_eq!(batch.receive(v4.as_raw_fd()).unwrap(), 3);
        assert!((0..3).all(|i| batch.datagram(i).interface == Some(lo)));
        // IPv6 loopback, where the machine has it.
        let Ok(v6) = std::net::UdpSocket::bind("[::1]:0") else {
            return;
        };
        report_arrival_interface(v6.as_raw_fd(), true).unwrap();
        v6.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sender.send_to(b"v6", v6.local_addr().unwrap()).unwrap();
        assert_eq!(batch.receive(v6.as_raw_fd()).unwrap(), 1);
        assert_eq!(batch.datagram(0).interface, Some(lo));
        assert_eq!(batch.datagram(0).bytes, b"v6");
    }
}
