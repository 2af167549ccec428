//! The sockets clients connect to: the Unix socket and the TCP listeners.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

pub fn unix_listener(path: &Path) -> io::Result<Socket> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    // Clients of any user may connect, as with the original.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    }
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

pub fn tcp_listener(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket
        .bind(&address.into())
        .map_err(|e| io::Error::new(e.kind(), format!("binding TCP {address}: {e}")))?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
