//! What spmonitor reads from the network: any bytes decode to a monitor reply or query or an
//! error, and any document text parses to a JSON value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spread::monitor::json;
use spread::monitor::query::{decode_query, decode_reply};

fuzz_target!(|data: &[u8]| {
    let _ = decode_query(data);
    if let Ok(reply) = decode_reply(data) {
        let _ = json::parse(reply.document);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = json::parse(text);
    }
});
