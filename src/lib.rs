//! Spread group communication: the client library (`libspread.so.3`, C ABI in [`capi`]),
//! the wire formats, the daemon, and helpers of the command-line tools ([`tools`]).

pub mod capi;
pub mod client;
pub mod config;
pub mod daemon;
pub mod events;
pub mod groups;
pub mod link;
pub mod membership;
pub mod monitor;
pub mod node;
pub mod ring;
pub mod rng;
pub mod sim;
pub mod tools;
pub mod wire;
