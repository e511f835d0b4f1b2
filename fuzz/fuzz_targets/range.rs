//! Fuzzes `range::evaluate`: whatever the header, the answer must stay inside the file, be
//! disjoint, respect the part cap, and never ask to send more than the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamhub::range::{evaluate, RangeDecision, COALESCE_GAP};

fuzz_target!(|input: (u64, u8, &str)| {
    let (len, max, header) = input;
    let max = usize::from(max % 32) + 1;
    if let RangeDecision::Partial(mut parts) = evaluate(header, len, max) {
        assert!(!parts.is_empty() && parts.len() <= max);
        parts.sort_by_key(|p| p.start);
        let mut total: u64 = 0;
        for (i, p) in parts.iter().enumerate() {
            assert!(p.start <= p.end && p.end < len);
            if i > 0 {
                assert!(p.start > parts[i - 1].end + 1 + COALESCE_GAP);
            }
            total += p.len();
        }
        assert!(total <= len);
    }
});
