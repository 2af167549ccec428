//! The handle applications hold: a mailbox is the session's socket descriptor.

use std::os::fd::RawFd;

use super::error::Error;
use super::{io, session};
use crate::wire::{Name, ILLEGAL_SESSION};

/// A session of this process, named by its socket descriptor (applications may `poll` it).
/// Copying the handle does not copy the session; `kill` or `disconnect` ends it for all copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mailbox(RawFd);

impl Mailbox {
    /// The handle for a descriptor, e.g. a C `mailbox`; calls on an unknown one fail with
    /// `ILLEGAL_SESSION`.
    pub const fn from_fd(fd: RawFd) -> Mailbox {
        Mailbox(fd)
    }

    pub const fn fd(self) -> RawFd {
        self.0
    }

    /// The session's `#private#daemon` name.
    pub fn private_group(self) -> Result<Name, Error> {
        Ok(session::lookup(self.0)?.private_group)
    }

    /// Closes the session without telling the daemon (members see a disconnect once the daemon
    /// notices). Unknown mailboxes are ignored.
    pub fn kill(self) {
        if !session::close(self.0) {
            log::debug!("kill: no session for mailbox {}", self.0);
        }
    }

    /// Bytes readable on the socket now (not messages; a saved header is not counted). 0 on a
    /// broken session.
    pub fn poll(self) -> Result<usize, Error> {
        let session = session::lookup(self.0)?;
        if session.is_broken() {
            return Ok(0);
        }
        io::pending_bytes(self.0).map_err(|_| Error::from_code(ILLEGAL_SESSION))
    }
}
