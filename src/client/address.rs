//! Where a daemon is: the `spread_name` argument of `SP_connect` (spec 1.1), name resolution,
//! and opening a socket to it with the options the original sets.

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::error::Error;
use crate::wire::{COULD_NOT_CONNECT, DEFAULT_SPREAD_PORT, ILLEGAL_SPREAD};

/// Longest accepted `spread_name` is one less: a 64-byte host name plus port and `@`.
const MAX_SPREAD_NAME: usize = 71;
/// Environment variable naming the directory of the daemons' Unix sockets.
pub const SOCKET_DIR_VAR: &str = "SPREAD_SOCKET_DIR";
/// Where the Unix sockets are when the variable is unset or empty (the original's choice).
pub const DEFAULT_SOCKET_DIR: &str = "/tmp";

/// A daemon's address as `spread_name` gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAddress {
    /// `"<port>"`: the Unix socket of that port on this machine.
    Local(u16),
    /// `"<port>@<host>"`: TCP to the host (a name or an IPv4/IPv6 literal).
    Tcp { port: u16, host: Vec<u8> },
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads `spread_name` as the original does: a decimal port (leading white space and a sign
/// allowed, wrapping modulo 65536), then optionally one white-space-free word that must start
/// with `@`; anything after that word is ignored. `None` or empty means port 4803.
pub fn parse_spread_name(spread_name: Option<&[u8]>) -> Result<DaemonAddress, Error> {
    let illegal = Err(Error::from_code(ILLEGAL_SPREAD));
    let name = match spread_name {
        None | Some(b"") => return Ok(DaemonAddress::Local(DEFAULT_SPREAD_PORT)),
        Some(name) => name,
    };
    if name.len() >= MAX_SPREAD_NAME {
        return illegal;
    }
    let mut rest = name;
    while let [b, tail @ ..] = rest {
        if !is_c_space(*b) {
            break;
        }
        rest = tail;
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return illegal;
    }
    let mut port: u16 = 0;
    for &d in &rest[..digits] {
        port = port.wrapping_mul(10).wrapping_add((d - b'0') as u16);
    }
    if negative {
        port = port.wrapping_neg();
    }
    rest = &rest[digits..];
    let word_start = rest.iter().position(|&b| !is_c_space(b));
    let Some(start) = word_start else {
        return Ok(DaemonAddress::Local(port));
    };
    let word = &rest[start..];
    let word = &word[..word.iter().position(|&b| is_c_space(b)).unwrap_or(word.len())];
    match word.strip_prefix(b"@") {
        Some(host) => Ok(DaemonAddress::Tcp {
            port,
            host: host.to_vec(),
        }),
        None => illegal,
    }
}

/// The directory holding the daemons' Unix sockets.
pub fn socket_dir() -> PathBuf {
    match std::env::var_os(SOCKET_DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_SOCKET_DIR),
    }
}

/// The Unix socket of the daemon serving `port` on this machine.
pub fn unix_socket_path(port: u16) -> PathBuf {
    socket_dir().join(port.to_string())
}

/// Asks the system resolver for `host` and takes its first IPv4 or IPv6 answer, with `port`.
/// "No such name" is `ILLEGAL_SPREAD`; any other failure `COULD_NOT_CONNECT`.
pub fn resolve(host: &[u8], port: u16) -> Result<SocketAddr, Error> {
    let host = CString::new(host).map_err(|_| Error::from_code(ILLEGAL_SPREAD))?;
    // SAFETY: addrinfo is plain data for which all zeros is a valid (empty) hint.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_protocol = libc::IPPROTO_TCP;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `host` is NUL-terminated, `hints` valid, and `list` receives an allocation that
    // is freed below.
    let rc = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc == libc::EAI_NONAME {
        return Err(Error::from_code(ILLEGAL_SPREAD));
    }
    if rc != 0 || list.is_null() {
        log::debug!("getaddrinfo({host:?}) failed with {rc}");
        return Err(Error::from_code(COULD_NOT_CONNECT));
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() && found.is_none() {
        // SAFETY: `entry` is a node of the list getaddrinfo returned, not yet freed.
        let info = unsafe { &*entry };
        found = socket_addr(info, port);
        entry = info.ai_next;
    }
    // SAFETY: `list` came from getaddrinfo and is freed once; `found` holds no pointer into it.
    unsafe { libc::freeaddrinfo(list) };
    found.ok_or(Error::from_code(COULD_NOT_CONNECT))
}

/// The address of one resolver answer if it is IPv4 or IPv6.
fn socket_addr(info: &libc::addrinfo, port: u16) -> Option<SocketAddr> {
    if info.ai_addr.is_null() {
        return None;
    }
    let len = info.ai_addrlen as usize;
    // SAFETY (both arms): the resolver stored a sockaddr of the family it names, `len` bytes
    // long; the length is checked before reading the family-specific struct.
    match unsafe { (*info.ai_addr).sa_family } as libc::c_int {
        libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
            let sin = unsafe { &*(info.ai_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let sin6 = unsafe { &*(info.ai_addr as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Creates the socket for `address` with the original's options (TCP_NODELAY and SO_KEEPALIVE
/// for TCP, large buffers for all) and the address to connect it to. The descriptor is
/// inheritable across `exec`, as the original's is.
pub(crate) fn open_socket(address: &DaemonAddress) -> Result<(Socket, SockAddr), Error> {
    let cannot = |what: &str, e: std::io::Error| {
        log::debug!("{what}: {e}");
        Error::from_code(COULD_NOT_CONNECT)
    };
    let (socket, peer) = match address {
        DaemonAddress::Local(port) => {
            let path = unix_socket_path(*port);
            let peer = SockAddr::unix(&path).map_err(|e| cannot("unix socket path", e))?;
            let socket =
                Socket::new_raw(Domain::UNIX, Type::STREAM, None).map_err(|e| cannot("socket", e))?;
            (socket, peer)
        }
        DaemonAddress::Tcp { port, host } => {
            let addr = resolve(host, *port)?;
            let socket = Socket::new_raw(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| cannot("socket", e))?;
            if let Err(e) = socket.set_tcp_nodelay(true) {
                log::warn!("setting TCP_NODELAY failed: {e}");
            }
            if let Err(e) = socket.set_keepalive(true) {
                log::warn!("setting SO_KEEPALIVE failed: {e}");
            }
            (socket, SockAddr::from(addr))
        }
    };
    raise_buffers(&socket);
    Ok((socket, peer))
}

/// Raises send and receive buffers in 5 KiB steps from 10 KiB to 200 KiB, stopping where the
/// system refuses or caps them.
fn raise_buffers(socket: &Socket) {
    for kib in (10..=200).step_by(5) {
        let size = kib * 1024;
        if socket.set_send_buffer_size(size).is_err() || socket.set_recv_buffer_size(size).is_err() {
            break;
        }
        let granted = |got: std::io::Result<usize>| got.is_ok_and(|got| got >= size);
        if !granted(socket.send_buffer_size()) || !granted(socket.recv_buffer_size()) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DaemonAddress, i32> {
        parse_spread_name(Some(s.as_bytes())).map_err(|e| e.code())
    }

    fn tcp(port: u16, host: &str) -> Result<DaemonAddress, i32> {
        Ok(DaemonAddress::Tcp {
            port,
            host: host.as_bytes().to_vec(),
        })
    }

    #[test]
    fn forms_of_spread_name() {
        assert_eq!(parse_spread_name(None), Ok(DaemonAddress::Local(4803)));
        assert_eq!(parse(""), Ok(DaemonAddress::Local(4803)));
        assert_eq!(parse("4803"), Ok(DaemonAddress::Local(4803)));
        assert_eq!(parse("  4900 "), Ok(DaemonAddress::Local(4900)));
        assert_eq!(parse("70000"), Ok(DaemonAddress::Local(4464)));
        assert_eq!(parse("+12"), Ok(DaemonAddress::Local(12)));
        assert_eq!(parse("-1"), Ok(DaemonAddress::Local(65535)));
        assert_eq!(parse("4803@localhost"), tcp(4803, "localhost"));
        assert_eq!(parse("4803 @::1 trailing words"), tcp(4803, "::1"));
        assert_eq!(parse("4803@fe80::1%eth0"), tcp(4803, "fe80::1%eth0"));
        assert_eq!(parse("4803@"), tcp(4803, ""));
    }

    #[test]
    fn illegal_spread_names() {
        for bad in ["abc", "4803x", "4803 x@h", " ", "@host", "-", "4803#h"] {
            assert_eq!(parse(bad), Err(ILLEGAL_SPREAD), "{bad:?}");
        }
        let long = format!("4803@{}", "h".repeat(65));
        assert_eq!(long.len(), 70);
        assert!(parse(&long).is_ok());
        let too_long = format!("4803@{}", "h".repeat(66));
        assert_eq!(parse(&too_long), Err(ILLEGAL_SPREAD));
    }

    #[test]
    fn resolver_answers() {
        assert_eq!(resolve(b"127.0.0.1", 4900), Ok("127.0.0.1:4900".parse().unwrap()));
        assert_eq!(resolve(b"::1", 4901), Ok("[::1]:4901".parse().unwrap()));
        assert_eq!(resolve(b"", 1).map_err(|e| e.code()), Err(ILLEGAL_SPREAD));
        assert_eq!(resolve(b"[::1]", 1).map_err(|e| e.code()), Err(ILLEGAL_SPREAD));
        assert_eq!(resolve(b"a\0b", 1).map_err(|e| e.code()), Err(ILLEGAL_SPREAD));
    }

    #[test]
    fn socket_paths() {
        // The variable is read at call time; only the default is checked here so that tests
        // running in parallel never see each other's environment.
        if std::env::var_os(SOCKET_DIR_VAR).is_none() {
            assert_eq!(unix_socket_path(4803), PathBuf::from("/tmp/4803"));
        }
        assert!(unix_socket_path(4803).ends_with("4803"));
    }
}
