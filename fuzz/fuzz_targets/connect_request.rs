//! Client handshake bytes as the daemon reads them: never a panic, and the length the daemon
//! takes off the stream never exceeds what it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spread::wire::handshake::{connect_request_len, parse_connect_request};

fuzz_target!(|data: &[u8]| {
    if let Some(len) = connect_request_len(data) {
        if len <= data.len() {
            let _ = parse_connect_request(&data[..len]);
        }
    }
    let _ = parse_connect_request(data);
});
