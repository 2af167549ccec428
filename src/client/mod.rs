//! The client library in safe Rust: connect to a daemon, join and leave groups, send and
//! receive messages, read membership bodies. The C API (`capi::sp`) is a thin layer over it;
//! Rust tools use it directly.
//!
//! A session is named by its [`Mailbox`] (the socket descriptor, as in C). Results are
//! `Result<_, Error>` where [`Error`] carries the C result code.

mod address;
mod auth;
mod connect;
mod error;
mod io;
mod mailbox;
pub mod membership;
mod process;
mod receive;
mod send;
mod session;

pub use address::{parse_spread_name, resolve, socket_dir, unix_socket_path, DaemonAddress, SOCKET_DIR_VAR};
pub use auth::{set_auth_methods, AuthMethod, Authenticate};
pub use connect::{connect, deadline_after, Connection};
pub use error::Error;
pub use mailbox::Mailbox;
pub use receive::{Outcome, Received};
pub use session::MAX_SESSIONS;

#[cfg(test)]
pub(crate) use session::tests::fake_session;
