//! Spread group communication: the client library (`libspread.so.3`, C ABI in [`capi`]),
//! the wire formats, and the daemon.

pub mod capi;
pub mod client;
pub mod config;
pub mod daemon;
pub mod events;
pub mod groups;
pub mod node;
pub mod wire;
