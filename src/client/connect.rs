//! Opening a session: the connection handshake of spec 2.1-2.5, with an optional deadline.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{SockAddr, Socket};

use super::address::{open_socket, parse_spread_name};
use super::auth;
use super::error::Error;
use super::io::{recv_all, send_all, wait_ready, Target};
use super::mailbox::Mailbox;
use super::{process, session};
use crate::wire::handshake::{encode_auth_choice, encode_connect_request, ACCEPT_BYTE, MAX_AUTH_LIST_LEN};
use crate::wire::name::name_field;
use crate::wire::{
    Name, CONNECTION_CLOSED, COULD_NOT_CONNECT, ILLEGAL_TIME, NAME_LEN, REJECT_AUTH, REJECT_VERSION,
};

/// A session just opened.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    pub mailbox: Mailbox,
    /// `#private#daemon` as the daemon assigned it, NUL-terminated.
    pub private_group: Name,
}

/// Turns `SP_connect_timeout`'s relative `{sec, usec}` into an absolute deadline. `{0, 0}`
/// means none; a negative timeout has already expired. `ILLEGAL_TIME` when the two parts have
/// opposite strict signs or `|usec|` is a second or more.
pub fn deadline_after(sec: i64, usec: i64, now: Instant) -> Result<Option<Instant>, Error> {
    if (sec < 0 && usec > 0) || (sec > 0 && usec < 0) || !(-999_999..=999_999).contains(&usec) {
        return Err(Error::from_code(ILLEGAL_TIME));
    }
    if sec == 0 && usec == 0 {
        return Ok(None);
    }
    if sec < 0 || usec < 0 {
        return Ok(Some(now));
    }
    let timeout = Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64);
    // A deadline too far away to represent is no deadline.
    Ok(now.checked_add(timeout))
}

/// Connects to the daemon named by `spread_name` (spec 1.1) as `private_name` (first 10 bytes
/// used; empty lets the daemon choose). `deadline` bounds the connect and every handshake
/// step; when it passes, the result is `CONNECTION_CLOSED`.
pub fn connect(
    spread_name: Option<&[u8]>,
    private_name: &[u8],
    priority: i32,
    group_membership: bool,
    deadline: Option<Instant>,
) -> Result<Connection, Error> {
    process::init_once();
    let address = parse_spread_name(spread_name)?;
    let (socket, peer) = open_socket(&address)?;
    open_session(socket, &peer, private_name, priority, group_membership, deadline)
}

/// Connects `socket` to `peer`, runs the handshake and registers the session.
fn open_session(
    socket: Socket,
    peer: &SockAddr,
    private_name: &[u8],
    priority: i32,
    group_membership: bool,
    deadline: Option<Instant>,
) -> Result<Connection, Error> {
    let cannot = |what: &str, e: io::Error| {
        log::debug!("connect: {what}: {e}");
        Error::from_code(COULD_NOT_CONNECT)
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| cannot("non-blocking mode", e))?;
    start_connect(&socket, peer, deadline).map_err(|e| cannot("connect", e))?;
    let private_group = handshake(
        socket.as_raw_fd(),
        private_name,
        priority,
        group_membership,
        deadline,
    )?;
    socket.set_nonblocking(false).map_err(|e| {
        log::debug!("connect: blocking mode: {e}");
        Error::from_code(CONNECTION_CLOSED)
    })?;
    let fd = socket.into_raw_fd();
    if let Err(e) = session::register(fd, private_group) {
        super::io::close(fd);
        return Err(e);
    }
    Ok(Connection {
        mailbox: Mailbox::from_fd(fd),
        private_group,
    })
}

/// Connects the non-blocking socket. A connect still in progress when the deadline passes is
/// not an error here (as in the original): the first handshake write then fails.
fn start_connect(socket: &Socket, peer: &SockAddr, deadline: Option<Instant>) -> io::Result<()> {
    match socket.connect(peer) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || e.kind() == io::ErrorKind::Interrupted
                || e.kind() == io::ErrorKind::WouldBlock =>
        {
            if wait_ready(socket.as_raw_fd(), false, deadline)? {
                match socket.take_error()? {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e),
    }
}

/// Steps 1-5 of the handshake on a connected socket; returns the private group name.
fn handshake(
    fd: RawFd,
    private_name: &[u8],
    priority: i32,
    group_membership: bool,
    deadline: Option<Instant>,
) -> Result<Name, Error> {
    let closed = Error::from_code(CONNECTION_CLOSED);
    let send = |bytes: &[u8]| send_all(fd, &[bytes], deadline).map_err(|_| closed);
    let recv = |buf: &mut [u8]| recv_all(fd, &mut [Target::Into(buf)], deadline).map_err(|_| closed);

    send(&encode_connect_request(private_name, group_membership, priority))?;

    let mut list_len = [0u8];
    recv(&mut list_len)?;
    let list_len = list_len[0] as i8;
    if list_len < 0 {
        return Err(Error::from_code(list_len as i32));
    }
    if list_len as usize > MAX_AUTH_LIST_LEN {
        return Err(closed);
    }
    let mut list = [0u8; MAX_AUTH_LIST_LEN];
    let list = &mut list[..list_len as usize];
    recv(list)?;

    let methods = auth::registered();
    if let Some(missing) = methods.iter().find(|m| !auth::offered(list, m.name())) {
        log::debug!(
            "connect: daemon does not offer auth method {:?}",
            String::from_utf8_lossy(missing.name())
        );
        return Err(Error::from_code(REJECT_AUTH));
    }
    let names: Vec<&[u8]> = methods.iter().map(|m| m.name()).collect();
    send(&encode_auth_choice(&names))?;
    // Every method runs even after one failed, as in the original.
    let failures = methods.iter().filter(|m| !m.run(fd)).count();
    if failures > 0 {
        return Err(Error::from_code(REJECT_AUTH));
    }

    let mut verdict = [0u8];
    recv(&mut verdict)?;
    if verdict[0] != ACCEPT_BYTE {
        return Err(Error::from_code(verdict[0] as i8 as i32));
    }
    let mut accept = [0u8; 4];
    recv(&mut accept)?;
    let [major, minor, _patch, len] = accept.map(|b| b as i8);
    if accept.iter().any(|&b| (b as i8) < 0) || len as usize >= NAME_LEN {
        return Err(closed);
    }
    if major < 3 || (priority > 0 && major == 3 && minor < 8) {
        return Err(Error::from_code(REJECT_VERSION));
    }
    let mut name = [0u8; NAME_LEN];
    recv(&mut name[..len as usize])?;
    Ok(name_field(&name[..len as usize]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{REJECT_ILLEGAL_NAME, REJECT_QUOTA};
    use std::io::{Read, Write};
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::PathBuf;

    #[test]
    fn timeouts() {
        let now = Instant::now();
        let ill = Err(Error::from_code(ILLEGAL_TIME));
        assert_eq!(deadline_after(0, 0, now), Ok(None));
        assert_eq!(
            deadline_after(1, 500_000, now),
            Ok(Some(now + Duration::from_micros(1_500_000)))
        );
        assert_eq!(
            deadline_after(0, 999_999, now),
            Ok(Some(now + Duration::from_micros(999_999)))
        );
        assert_eq!(deadline_after(-1, 0, now), Ok(Some(now)));
        assert_eq!(deadline_after(0, -5, now), Ok(Some(now)));
        assert_eq!(deadline_after(-1, -5, now), Ok(Some(now)));
        assert_eq!(deadline_after(1, -1, now), ill);
        assert_eq!(deadline_after(-1, 1, now), ill);
        assert_eq!(deadline_after(0, 1_000_000, now), ill);
        assert_eq!(deadline_after(0, -1_000_000, now), ill);
        assert_eq!(deadline_after(i64::MAX, 0, now), Ok(None));
    }

    /// A listening Unix socket in a private directory, named like a daemon's port socket.
    struct FakeDaemon {
        dir: PathBuf,
        listener: UnixListener,
    }

    impl FakeDaemon {
        fn new(tag: &str) -> FakeDaemon {
            let dir = std::env::temp_dir().join(format!("spread-client-test-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("4949");
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).unwrap();
            FakeDaemon { dir, listener }
        }

        /// Runs `serve` on the accepted connection while `connect` runs here (through the
        /// socket path, without touching the process environment).
        fn connect_with(
            &self,
            private_name: &[u8],
            deadline: Option<Instant>,
            serve: impl FnOnce(UnixStream) + Send + 'static,
        ) -> Result<Connection, Error> {
            let listener = self.listener.try_clone().unwrap();
            let server = std::thread::spawn(move || {
                let (stream, _) = listener.accept().unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                serve(stream);
            });
            let result = connect_at(&self.dir.join("4949"), private_name, deadline);
            server.join().unwrap();
            result
        }
    }

    impl Drop for FakeDaemon {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `connect` with an explicit socket path (the environment is process-wide, so tests must
    /// not set SPREAD_SOCKET_DIR).
    fn connect_at(
        path: &std::path::Path,
        private_name: &[u8],
        deadline: Option<Instant>,
    ) -> Result<Connection, Error> {
        let socket = Socket::new_raw(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        open_session(
            socket,
            &SockAddr::unix(path).unwrap(),
            private_name,
            0,
            true,
            deadline,
        )
    }

    fn read_n(stream: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).unwrap();
        buf
    }

    #[test]
    fn handshake_bytes_and_accept() {
        let daemon = FakeDaemon::new("ok");
        let conn = daemon
            .connect_with(b"alice", None, |mut s| {
                assert_eq!(read_n(&mut s, 10), [5, 0, 1, 1, 5, b'a', b'l', b'i', b'c', b'e']);
                s.write_all(b"\x05NULL ").unwrap();
                let choice = read_n(&mut s, 90);
                assert_eq!(&choice[..5], b"NULL\0");
                assert!(choice[4..].iter().all(|&b| b == 0));
                // The accept in small pieces, as the daemon writes it.
                for piece in [&b"\x01\x05"[..], b"\x00\x01", b"\x10#alice", b"#localhost"] {
                    s.write_all(piece).unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
            .unwrap();
        assert_eq!(&conn.private_group[..17], b"#alice#localhost\0");
        assert!(session::lookup(conn.mailbox.fd()).is_ok());
        conn.mailbox.kill();
    }

    #[test]
    fn rejections() {
        let daemon = FakeDaemon::new("reject");
        let reject_name = daemon.connect_with(b"a b", None, |mut s| {
            read_n(&mut s, 8);
            s.write_all(&[0xfb]).unwrap();
        });
        assert_eq!(reject_name.err(), Some(Error::from_code(REJECT_ILLEGAL_NAME)));
        let no_null = daemon.connect_with(b"bob", None, |mut s| {
            read_n(&mut s, 8);
            s.write_all(b"\x03IP ").unwrap();
        });
        assert_eq!(no_null.err(), Some(Error::from_code(REJECT_AUTH)));
        let auth_denied = daemon.connect_with(b"bob", None, |mut s| {
            read_n(&mut s, 8);
            s.write_all(b"\x05NULL ").unwrap();
            read_n(&mut s, 90);
            s.write_all(&[0xf7]).unwrap();
        });
        assert_eq!(auth_denied.err(), Some(Error::from_code(REJECT_AUTH)));
        let quota = daemon.connect_with(b"bob", None, |mut s| {
            s.write_all(&[0xfd]).unwrap();
        });
        assert_eq!(quota.err(), Some(Error::from_code(REJECT_QUOTA)));
    }

    #[test]
    fn malformed_answers_close() {
        let daemon = FakeDaemon::new("bad");
        let closed = Some(Error::from_code(CONNECTION_CLOSED));
        let long_list = daemon.connect_with(b"c", None, |mut s| {
            read_n(&mut s, 6);
            s.write_all(&[91]).unwrap();
        });
        assert_eq!(long_list.err(), closed);
        let long_name = daemon.connect_with(b"c", None, |mut s| {
            read_n(&mut s, 6);
            s.write_all(b"\x05NULL ").unwrap();
            read_n(&mut s, 90);
            s.write_all(&[1, 5, 0, 1, 32]).unwrap();
        });
        assert_eq!(long_name.err(), closed);
        let old = daemon.connect_with(b"c", None, |mut s| {
            read_n(&mut s, 6);
            s.write_all(b"\x05NULL ").unwrap();
            read_n(&mut s, 90);
            s.write_all(&[1, 2, 0, 1, 4]).unwrap();
        });
        assert_eq!(old.err(), Some(Error::from_code(REJECT_VERSION)));
        let hangup = daemon.connect_with(b"c", None, |mut s| {
            read_n(&mut s, 6);
            s.write_all(b"\x05NULL ").unwrap();
            read_n(&mut s, 90);
            s.write_all(&[1, 5]).unwrap();
        });
        assert_eq!(hangup.err(), closed);
    }

    #[test]
    fn silent_daemon_times_out() {
        let daemon = FakeDaemon::new("slow");
        let start = Instant::now();
        let deadline = deadline_after(0, 200_000, start).unwrap();
        let result = daemon.connect_with(b"d", deadline, |mut s| {
            read_n(&mut s, 6);
            // Say nothing; hang up only after the client gave up.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        assert_eq!(result.err(), Some(Error::from_code(CONNECTION_CLOSED)));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn absent_daemon_and_bad_names() {
        let dir = std::env::temp_dir().join(format!("spread-client-none-{}", std::process::id()));
        let socket = Socket::new_raw(socket2::Domain::UNIX, socket2::Type::STREAM, None).unwrap();
        socket.set_nonblocking(true).unwrap();
        assert!(start_connect(&socket, &SockAddr::unix(dir.join("1")).unwrap(), None).is_err());
        assert_eq!(
            connect(Some(b"x"), b"", 0, false, None).err(),
            Some(Error::from_code(crate::wire::ILLEGAL_SPREAD))
        );
        assert_eq!(
            connect(Some(b"1@127.0.0.1"), b"", 0, false, None).err(),
            Some(Error::from_code(COULD_NOT_CONNECT))
        );
    }
}
