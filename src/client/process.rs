//! Process-wide setup done once, by the first connect or auth-method registration (as the
//! original library does).

use std::sync::Once;

use super::session;

static INIT: Once = Once::new();

/// Ignores SIGPIPE for the whole process (applications written for Spread rely on it) and
/// installs the fork handlers of the session table.
pub(crate) fn init_once() {
    INIT.call_once(|| {
        // SAFETY: changing one signal's disposition to "ignore" has no memory-safety effect.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        // SAFETY: the handlers are plain functions that live as long as the process.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(session::fork_prepare),
                Some(session::fork_parent),
                Some(session::fork_child),
            )
        };
        if rc != 0 {
            log::warn!("pthread_atfork failed ({rc}); forking while another thread uses the library may hang the child");
        }
    });
}
