//! Authentication methods the library offers the daemon (spec 2.4). The registered list is
//! process-wide; by default it holds only `NULL`, which always succeeds.

use std::os::fd::RawFd;
use std::sync::Arc;

use parking_lot::Mutex;

use super::process;
use crate::wire::{MAX_AUTH_METHODS, MAX_AUTH_NAME};

/// The client side of a method: runs its exchange on the connecting socket, true on success.
pub type Authenticate = Arc<dyn Fn(RawFd) -> bool + Send + Sync>;

/// A method name and the function that performs it.
#[derive(Clone)]
pub struct AuthMethod {
    name: Vec<u8>,
    authenticate: Authenticate,
}

impl AuthMethod {
    /// `None` when the name does not fit a 30-byte slot with its NUL (or contains a NUL).
    pub fn new(name: &[u8], authenticate: Authenticate) -> Option<AuthMethod> {
        if name.len() >= MAX_AUTH_NAME || name.contains(&0) {
            return None;
        }
        Some(AuthMethod {
            name: name.to_vec(),
            authenticate,
        })
    }

    /// The method every daemon enables by default: nothing to exchange.
    fn null() -> AuthMethod {
        AuthMethod {
            name: b"NULL".to_vec(),
            authenticate: Arc::new(|_| true),
        }
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }

    pub(crate) fn run(&self, fd: RawFd) -> bool {
        (self.authenticate)(fd)
    }
}

/// `None` until the application registers methods: then only `NULL` is used.
static REGISTERED: Mutex<Option<Vec<AuthMethod>>> = Mutex::new(None);

/// Replaces the registered methods (at most three; none makes every connect fail with
/// `REJECT_AUTH`). False, changing nothing, when there are too many.
pub fn set_auth_methods(methods: Vec<AuthMethod>) -> bool {
    process::init_once();
    if methods.len() > MAX_AUTH_METHODS {
        return false;
    }
    *REGISTERED.lock() = Some(methods);
    true
}

/// The methods a connect uses now.
pub(crate) fn registered() -> Vec<AuthMethod> {
    REGISTERED
        .lock()
        .clone()
        .unwrap_or_else(|| vec![AuthMethod::null()])
}

/// Whether the daemon's auth list (names separated by single spaces) offers `name`.
pub(crate) fn offered(list: &[u8], name: &[u8]) -> bool {
    list.split(|&b| b == b' ').any(|token| token == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_fit_a_slot() {
        let ok = |_| true;
        assert!(AuthMethod::new(&[b'A'; 29], Arc::new(ok)).is_some());
        assert!(AuthMethod::new(&[b'A'; 30], Arc::new(ok)).is_none());
        assert!(AuthMethod::new(b"A\0B", Arc::new(ok)).is_none());
    }

    #[test]
    fn list_tokens() {
        assert!(offered(b"NULL ", b"NULL"));
        assert!(offered(b"IP NULL ", b"NULL"));
        assert!(!offered(b"NULLX ", b"NULL"));
        assert!(!offered(b"", b"NULL"));
        assert!(!offered(b"IP ", b"I"));
    }

    #[test]
    fn default_is_null() {
        // Other tests never register methods, so the default list is visible here.
        let methods = registered();
        assert_eq!(methods.len(), 1);
        assert_eq!(methods[0].name(), b"NULL");
        assert!(methods[0].run(-1));
    }
}
