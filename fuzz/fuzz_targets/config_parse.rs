//! spread.conf text: parsing never panics, whatever the input (names are not looked up).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spread::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let no_lookup = |_: &str| Err("no lookups while fuzzing".to_string());
        if let Ok(config) = Config::parse_with_resolver(text, "fuzz.conf", &no_lookup) {
            let _ = config.hash();
        }
    }
});
