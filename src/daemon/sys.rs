//! Thin safe wrappers over the Linux calls the event loop needs: epoll, a signalfd, batched
//! datagram reception (with the arrival interface, and coalesced datagrams cut apart) and
//! sending (with segmentation offload), and the machine's interfaces.

use std::ffi::CStr;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use socket2::SockAddr;

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

/// Room for the ancillary data of one received message: its packet information (IPv4 or
/// IPv6) and its segment size when the kernel coalesced datagrams, in `u64`s for the alignment
/// of a `cmsghdr`.
type Control = [u64; 16];

/// Largest message one read may return: datagrams the kernel coalesced (see
/// [`take_coalesced`]) are at most one IP packet's worth.
pub const MAX_MESSAGE: usize = 65_535;

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

/// One message read by a [`DatagramBatch`]: a datagram, or several of one sender that the
/// kernel coalesced.
#[derive(Debug, Clone, Copy)]
struct Message {
    len: usize,
    cut: bool,
    interface: Option<u32>,
    /// Size of each coalesced datagram (the last may be shorter); `None`: one datagram.
    segment: Option<usize>,
}

/// Receive buffers for up to `slots` messages read by one recvmmsg(2).
pub struct DatagramBatch {
    /// `slots` buffers of `slot_len` bytes, one after the other.
    buffers: Vec<u8>,
    slot_len: usize,
    sources: Vec<libc::sockaddr_storage>,
    controls: Vec<Control>,
    received: Vec<Message>,
}

impl DatagramBatch {
    pub fn new(slots: usize, slot_len: usize) -> DatagramBatch {
        DatagramBatch {
            // Zeroed by the allocator, so pages are touched only once a message fills them.
            buffers: vec![0; slots * slot_len],
            slot_len,
            // SAFETY: sockaddr_storage is plain data for which all zero bytes are valid.
            sources: vec![unsafe { std::mem::zeroed() }; slots],
            controls: vec![[0; 16]; slots],
            received: Vec::with_capacity(slots),
        }
    }

    /// Reads the messages waiting on the non-blocking socket `fd`, as many as there are
    /// slots; returns how many (0: none was waiting). A message may hold several datagrams:
    /// [`DatagramBatch::datagrams`] gives them one by one.
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
            let (interface, segment) = ancillary(&h.msg_hdr);
            Message {
                len: h.msg_len as usize,
                cut: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                interface,
                segment,
            }
        }));
        Ok(n as usize)
    }

    /// The datagrams of the last [`DatagramBatch::receive`], in order: a coalesced message
    /// cut back into its datagrams.
    pub fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> + '_ {
        self.received.iter().enumerate().flat_map(move |(i, m)| {
            let source = socket_addr(&self.sources[i]);
            let bytes = &self.buffers[i * self.slot_len..][..m.len.min(self.slot_len)];
            let segment = m
                .segment
                .filter(|&s| s > 0 && s < bytes.len())
                .unwrap_or(bytes.len());
            let count = if bytes.is_empty() {
                1
            } else {
                bytes.len().div_ceil(segment)
            };
            (0..count).map(move |k| Datagram {
                source,
                bytes: &bytes[k * segment..((k + 1) * segment).min(bytes.len())],
                // Only the end of a message is lost when it is cut.
                cut: m.cut && k + 1 == count,
                interface: m.interface,
            })
        })
    }
}

/// From the ancillary data of a received message: its arrival interface, if the packet
/// information is there, and the size of its datagrams, if the kernel coalesced several.
fn ancillary(header: &libc::msghdr) -> (Option<u32>, Option<usize>) {
    let (mut interface, mut segment) = (None, None);
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
            match (c.cmsg_level, c.cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    interface = u32::try_from(info.ipi_ifindex).ok();
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info: libc::in6_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    interface = Some(info.ipi6_ifindex);
                }
                (libc::SOL_UDP, libc::UDP_GRO) => {
                    let size: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    segment = usize::try_from(size).ok();
                }
                _ => {}
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header of this message.
        cmsg = unsafe { libc::CMSG_NXTHDR(header, cmsg) };
    }
    (interface, segment)
}

/// One message for [`send_messages`]: `parts` to `to`, as one datagram, or with `segment` as
/// one datagram per part, cut by the kernel every `segment` bytes (UDP segmentation offload:
/// then every part is `segment` bytes long but the last, which may be shorter).
pub struct Outgoing<'a> {
    pub to: &'a SockAddr,
    pub parts: &'a [IoSlice<'a>],
    pub segment: Option<u16>,
}

/// Room for a `UDP_SEGMENT` control message, in `u64`s for the alignment of a `cmsghdr`.
type SegmentControl = [u64; 4];

/// Messages one sendmmsg(2) takes at most (the kernel's UIO_MAXIOV).
const SEND_BATCH: usize = 1024;

/// Sends `messages` in order on the non-blocking socket `fd`, with as few system calls as
/// possible; returns how many were sent and, if one failed, its error: it is the one after
/// those sent.
pub fn send_messages(fd: RawFd, messages: &[Outgoing<'_>]) -> (usize, Option<io::Error>) {
    // SAFETY: CMSG_SPACE and CMSG_LEN only compute sizes.
    let (control_len, data_len) = unsafe {
        let value = std::mem::size_of::<u16>() as libc::c_uint;
        (libc::CMSG_SPACE(value) as usize, libc::CMSG_LEN(value) as usize)
    };
    let mut sent = 0;
    while sent < messages.len() {
        let batch = &messages[sent..messages.len().min(sent + SEND_BATCH)];
        let mut controls: Vec<SegmentControl> = vec![[0; 4]; batch.len()];
        let mut headers: Vec<libc::mmsghdr> = batch
            .iter()
            .zip(controls.iter_mut())
            .map(|(m, control)| {
                // SAFETY: msghdr is plain data; all zero is a valid empty header.
                let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
                h.msg_name = m.to.as_ptr().cast_mut().cast();
                h.msg_namelen = m.to.len();
                // IoSlice is ABI-compatible with iovec; the kernel only reads it.
                h.msg_iov = m.parts.as_ptr().cast_mut().cast();
                h.msg_iovlen = m.parts.len();
                if let Some(segment) = m.segment {
                    h.msg_control = control.as_mut_ptr().cast();
                    h.msg_controllen = control_len;
                    // SAFETY: the control buffer is `control_len` bytes or more, room for
                    // one header and a u16 (CMSG_SPACE), so CMSG_FIRSTHDR returns a header in
                    // it; the u16 is written unaligned into the data part it counts.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(&h);
                        (*c).cmsg_level = libc::SOL_UDP;
                        (*c).cmsg_type = libc::UDP_SEGMENT;
                        (*c).cmsg_len = data_len;
                        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
                    }
                }
                libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: `headers` holds `batch.len()` entries whose name, iovec and control pointers
        // refer to the addresses and parts of `messages` and to `controls`, all alive and
        // unmoved during the call; the kernel only reads them.
        let n = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as libc::c_uint, 0) };
        if n < 0 {
            return (sent, Some(io::Error::last_os_error()));
        }
        // Fewer than asked: the next call reports the error of the first one left.
        sent += n as usize;
    }
    (sent, None)
}

/// Lets the UDP socket `fd` read several datagrams of one sender as one message when the
/// kernel has them coalesced (`UDP_GRO`); [`DatagramBatch`] cuts them apart again.
pub fn take_coalesced(fd: RawFd) -> io::Result<()> {
    set_option(fd, libc::SOL_UDP, libc::UDP_GRO, 1)
}

pub(super) fn set_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
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
        let got: Vec<Datagram> = batch.datagrams().collect();
        assert_eq!(got.len(), 4);
        for i in 0..4u8 {
            assert_eq!(
                got[usize::from(i)],
                Datagram {
                    source: Some(sender.local_addr().unwrap()),
                    bytes: &[i; 3][..],
                    cut: false,
                    interface: None
                }
            );
        }
        assert_eq!(batch.receive(receiver.as_raw_fd()).unwrap(), 3);
        let got: Vec<Datagram> = batch.datagrams().collect();
        assert_eq!(got[1].bytes, [5; 3]);
        // Longer than its slot: cut, and said so.
        assert_eq!(got[2].bytes, [9; 8]);
        assert!(got[2].cut);
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
        assert!(batch.datagrams().all(|d| d.interface == Some(lo)));
        // IPv6 loopback, where the machine has it.
        let Ok(v6) = std::net::UdpSocket::bind("[::1]:0") else {
            return;
        };
        report_arrival_interface(v6.as_raw_fd(), true).unwrap();
        v6.set_nonblocking(true).unwrap();
        let sender = std::net::UdpSocket::bind("[::1]:0").unwrap();
        sender.send_to(b"v6", v6.local_addr().unwrap()).unwrap();
        assert_eq!(batch.receive(v6.as_raw_fd()).unwrap(), 1);
        let got: Vec<Datagram> = batch.datagrams().collect();
        assert_eq!(
            (got.len(), got[0].interface, got[0].bytes),
            (1, Some(lo), &b"v6"[..])
        );
    }

    /// A run sent as one message arrives as its datagrams: coalesced into one read where the
    /// socket takes that (and cut apart by the batch), one read each where it does not.
    #[test]
    fn segmented_sends_arrive_as_their_datagrams() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let coalescing = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        take_coalesced(coalescing.as_raw_fd()).unwrap();
        let plain = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let parts: Vec<Vec<u8>> = vec![vec![1; 100], vec![2; 100], vec![3; 100], vec![4; 30]];
        let slices: Vec<IoSlice> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let (to_coalescing, to_plain) = (
            SockAddr::from(coalescing.local_addr().unwrap()),
            SockAddr::from(plain.local_addr().unwrap()),
        );
        let messages = [&to_coalescing, &to_plain, &to_plain].map(|to| Outgoing {
            to,
            parts: &slices,
            segment: Some(100),
        });
        // The third as one datagram of all the parts.
        let messages = [
            Outgoing { ..messages[0] },
            Outgoing { ..messages[1] },
            Outgoing {
                segment: None,
                ..messages[2]
            },
        ];
        let (sent, error) = send_messages(sender.as_raw_fd(), &messages);
        assert_eq!((sent, error.map(|e| e.kind())), (3, None));
        let mut batch = DatagramBatch::new(8, MAX_MESSAGE);
        let read = |batch: &mut DatagramBatch, socket: &std::net::UdpSocket| -> (usize, Vec<Vec<u8>>) {
            socket.set_nonblocking(true).unwrap();
            let n = batch.receive(socket.as_raw_fd()).unwrap();
            (n, batch.datagrams().map(|d| d.bytes.to_vec()).collect())
        };
        assert_eq!(read(&mut batch, &coalescing), (1, parts.clone()));
        let (n, got) = read(&mut batch, &plain);
        assert_eq!((n, &got[..4]), (5, &parts[..]));
        assert_eq!(got[4], parts.concat());
        // A run the kernel refuses (no UDP checksums) fails as a whole.
        set_option(sender.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, 1).unwrap();
        let (sent, error) = send_messages(sender.as_raw_fd(), &messages[1..]);
        assert_eq!(sent, 0);
        assert!(error.is_some());
        assert_eq!(read(&mut batch, &plain).0, 0);
    }
}
