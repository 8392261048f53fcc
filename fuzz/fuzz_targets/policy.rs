//! The sandbox's policy files: `Policy::parse` (TOML, then every rule's syscall,
//! reason, conditions, action and profiles), `Frequency::parse`, and
//! `parse_condition` on arbitrary text. Errors are fine; panics are not. A condition
//! that parses must also print (`Display`, as `sandvmm sandbox show` does) to text
//! that parses back to the same condition.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::policy::{parse_condition, Frequency, Policy};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(policy) = Policy::parse("fuzz.toml", &text) {
        for rule in policy.rules.values().flatten() {
            for c in &rule.conditions {
                assert_eq!(parse_condition(&c.to_string()).as_ref(), Ok(c));
            }
        }
    }
    if let Ok(freq) = Frequency::parse("fuzz-frequency.toml", &text) {
        let _ = freq.to_toml("fuzz");
    }
    for line in text.lines() {
        if let Ok(c) = parse_condition(line) {
            assert_eq!(parse_condition(&c.to_string()), Ok(c), "{line:?}");
        }
    }
});
