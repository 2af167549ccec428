//! Daemon-to-daemon packets: any bytes decode to a packet or an error, never a panic, and a
//! packet that decodes is re-stamped (as multipath sends do) without harm.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spread::wire::packet::{decode, restamp};

fuzz_target!(|data: &[u8]| {
    if decode(data).is_ok() {
        let mut copy = data.to_vec();
        restamp(&mut copy, 7, 1);
        let _ = decode(&copy);
    }
});
