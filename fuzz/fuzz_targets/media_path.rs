//! Fuzzes `MediaPath::from_url`: an accepted path never contains a traversal segment, a
//! separator inside a name, or a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::storage::MediaPath;

fuzz_target!(|raw: &str| {
    if let Ok(p) = MediaPath::from_url(raw) {
        for s in p.segments() {
            assert!(!s.is_empty() && s != "." && s != "..");
            assert!(!s.contains(['/', '\\']));
            assert!(!s.chars().any(char::is_control));
        }
    }
});
