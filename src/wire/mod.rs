//! Byte layouts of the Spread 5.0.1 client protocol (no I/O, no unsafe).
//!
//! `consts` holds the numbers of the public header; `header` the 48-byte frame header and byte
//! order rules; `handshake` the connection set-up; `request` what a daemon accepts from a client;
//! `membership` the body of membership notices; `packet` the daemon-to-daemon packets.

pub mod consts;
pub mod handshake;
pub mod header;
pub mod membership;
pub mod name;
pub mod packet;
pub mod request;

pub use consts::*;
pub use header::{Header, HEADER_LEN};
pub use membership::GroupId;
pub use name::{Name, NAME_LEN};
