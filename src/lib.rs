//! Spread group communication: the client library (`libspread.so.3`, C ABI in [`capi`]),
//! the wire formats, and the daemon.

pub mod capi;
pub mod config;
pub mod ring;
pub mod sim;
pub mod wire;
