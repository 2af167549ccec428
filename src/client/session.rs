//! The process-wide session table: the library's state per mailbox, looked up by descriptor.
//!
//! A mailbox is the session's socket descriptor, so the C API can only find its session by that
//! number. Lookups take a read lock just long enough to clone an `Arc`, so senders and
//! receivers on the same or other mailboxes never wait for each other here; per mailbox, a
//! send lock keeps each message contiguous on the stream and a receive lock hands each message
//! to one caller whole.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::error::Error;
use super::io;
use super::receive::ReceivedHeader;
use crate::wire::{Name, ILLEGAL_SESSION, NET_ERROR_ON_SESSION, REJECT_QUOTA};

/// Most sessions one process may hold.
pub const MAX_SESSIONS: usize = 1024;

/// The library's state for one connection.
pub(crate) struct Session {
    pub(crate) fd: RawFd,
    /// `#private#daemon`, the `sender` of everything this session sends.
    pub(crate) private_group: Name,
    /// A send or receive failed: the stream is unusable until the mailbox is killed.
    broken: AtomicBool,
    /// Killed or disconnected: a caller that looked the session up earlier must not touch the
    /// descriptor number any more (it may already name another socket).
    closed: AtomicBool,
    pub(crate) send_lock: Mutex<()>,
    /// The header of a message left in the stream by a short-buffer receive.
    pub(crate) saved_header: Mutex<Option<ReceivedHeader>>,
}

impl Session {
    fn new(fd: RawFd, private_group: Name, broken: bool) -> Session {
        Session {
            fd,
            private_group,
            broken: AtomicBool::new(broken),
            closed: AtomicBool::new(false),
            send_lock: Mutex::new(()),
            saved_header: Mutex::new(None),
        }
    }

    /// `ILLEGAL_SESSION` once closed, `NET_ERROR_ON_SESSION` once broken.
    pub(crate) fn check_usable(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::from_code(ILLEGAL_SESSION))
        } else if self.broken.load(Ordering::Acquire) {
            Err(Error::from_code(NET_ERROR_ON_SESSION))
        } else {
            Ok(())
        }
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    pub(crate) fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }
}

static SESSIONS: RwLock<BTreeMap<RawFd, Arc<Session>>> = RwLock::new(BTreeMap::new());

/// The session of mailbox `fd`, or `ILLEGAL_SESSION`.
pub(crate) fn lookup(fd: RawFd) -> Result<Arc<Session>, Error> {
    SESSIONS
        .read()
        .get(&fd)
        .cloned()
        .ok_or(Error::from_code(ILLEGAL_SESSION))
}

/// Records a freshly connected session; `REJECT_QUOTA` when the process holds the maximum.
pub(crate) fn register(fd: RawFd, private_group: Name) -> Result<(), Error> {
    let mut sessions = SESSIONS.write();
    // An entry for the same number means the application closed that descriptor itself and the
    // system reused the number: the old entry is stale.
    if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&fd) {
        return Err(Error::from_code(REJECT_QUOTA));
    }
    sessions.insert(fd, Arc::new(Session::new(fd, private_group, false)));
    Ok(())
}

/// Removes the session of `fd` from the table and closes its descriptor. Unknown mailboxes are
/// ignored. Returns whether there was such a session.
pub(crate) fn close(fd: RawFd) -> bool {
    let Some(session) = SESSIONS.write().remove(&fd) else {
        return false;
    };
    session.closed.store(true, Ordering::Release);
    io::close(fd);
    true
}

/// `pthread_atfork` prepare handler: no table update may be half done when the process forks.
pub(crate) extern "C" fn fork_prepare() {
    std::mem::forget(SESSIONS.write());
}

/// `pthread_atfork` parent handler: releases what `fork_prepare` took.
pub(crate) extern "C" fn fork_parent() {
    // SAFETY: `fork_prepare` took the write lock in this thread and forgot its guard.
    unsafe { SESSIONS.force_unlock_write() };
}

/// `pthread_atfork` child handler.
pub(crate) extern "C" fn fork_child() {
    // SAFETY: `fork_prepare` took the write lock in the thread that forked, which is this one.
    unsafe { SESSIONS.force_unlock_write() };
    renew_held_sessions(&mut SESSIONS.write());
}

/// Only the forking thread exists in a child process, so a session lock that is held was taken
/// by a thread that is gone and would stay locked forever. Such sessions get fresh state (same
/// socket, nothing saved) so the child can use the mailbox.
fn renew_held_sessions(sessions: &mut BTreeMap<RawFd, Arc<Session>>) {
    for session in sessions.values_mut() {
        if session.send_lock.is_locked() || session.saved_header.is_locked() {
            let fresh = Session::new(session.fd, session.private_group, session.is_broken());
            // The old value stays referenced by the vanished thread's stack and is leaked.
            *session = Arc::new(fresh);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixStream;

    /// A registered session on one end of a socket pair; the other end plays the daemon.
    pub(crate) fn fake_session(private_group: &[u8]) -> (RawFd, UnixStream) {
        let (ours, daemon) = UnixStream::pair().unwrap();
        let fd = ours.into_raw_fd();
        register(fd, crate::wire::name::name_field(private_group)).unwrap();
        (fd, daemon)
    }

    #[test]
    fn register_lookup_close() {
        let (fd, _daemon) = fake_session(b"#t1#local");
        let s = lookup(fd).unwrap();
        assert_eq!(&s.private_group[..9], b"#t1#local");
        assert!(s.check_usable().is_ok());
        s.mark_broken();
        assert_eq!(s.check_usable(), Err(Error::from_code(NET_ERROR_ON_SESSION)));
        assert!(close(fd));
        assert_eq!(s.check_usable(), Err(Error::from_code(ILLEGAL_SESSION)));
        assert_eq!(lookup(fd).err(), Some(Error::from_code(ILLEGAL_SESSION)));
        assert!(!close(fd));
    }

    #[test]
    fn fork_renews_only_held_sessions() {
        let mut sessions = BTreeMap::new();
        let held = Arc::new(Session::new(7, [0; 32], true));
        let idle = Arc::new(Session::new(8, [0; 32], false));
        sessions.insert(7, held.clone());
        sessions.insert(8, idle.clone());
        let guard = held.saved_header.lock();
        renew_held_sessions(&mut sessions);
        assert!(!Arc::ptr_eq(&sessions[&7], &held));
        assert!(!sessions[&7].saved_header.is_locked());
        assert!(sessions[&7].is_broken());
        assert!(Arc::ptr_eq(&sessions[&8], &idle));
        drop(guard);
    }

    #[test]
    fn fork_prepare_and_parent_pair_up() {
        fork_prepare();
        assert!(SESSIONS.is_locked_exclusive());
        fork_parent();
        let unlocked = SESSIONS.try_write_for(std::time::Duration::from_secs(5));
        assert!(unlocked.is_some());
    }
}
