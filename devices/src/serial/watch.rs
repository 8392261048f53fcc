//! Watching guest serial output for a pattern (`--snapshot-on-serial TEXT`).
//!
//! The guest's output is a byte stream that arrives in pieces of any size (Linux
//! prints byte by byte with `outb`), so the pattern may be split anywhere. A naive
//! matcher that restarts from scratch on a mismatch misses matches whose start
//! overlaps a failed partial match ("aab" in "aaab"). [`OutputWatch`] is a streaming
//! Knuth–Morris–Pratt matcher instead: its only state is how much of the pattern the
//! stream currently ends with, and on a mismatch it falls back along the pattern's
//! failure table, so each byte costs amortised O(1) with no buffering of the stream.
//!
//! It runs on the vCPU thread for every guest output byte, under the serial device's
//! lock, so it allocates nothing after it is built and makes no system call except
//! the single eventfd write when it fires.

use crate::EventFdTrigger;

/// A one-shot watch for `pattern` in the guest's output stream.
pub struct OutputWatch {
    pattern: Vec<u8>,
    /// `failure[i]`: length of the longest proper prefix of `pattern[..=i]` that is
    /// also a suffix of it (the KMP failure function).
    failure: Vec<usize>,
    /// How many bytes of `pattern` the stream seen so far ends with.
    matched: usize,
    trigger: EventFdTrigger,
}

impl OutputWatch {
    /// A watch that writes `trigger` once the stream contains `pattern`. Returns `None`
    /// for an empty pattern, which would match before any output.
    pub fn new(pattern: Vec<u8>, trigger: EventFdTrigger) -> Option<Self> {
        if pattern.is_empty() {
            return None;
        }
        let failure = failure_table(&pattern);
        Some(Self {
            pattern,
            failure,
            matched: 0,
            trigger,
        })
    }

    /// Feeds the next piece of the stream. Returns true, having written the trigger,
    /// when the stream now contains the pattern; the caller then drops the watch, so
    /// that it fires only once.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            if self.advance(byte) {
                // A failed eventfd write means the VMM's event loop is gone; there is
                // no one left to take the snapshot, so there is nothing to retry.
                if let Err(e) = vm_superio::Trigger::trigger(&self.trigger) {
                    log::error!("serial output watch cannot signal its match: {e}");
                }
                return true;
            }
        }
        false
    }

    /// One byte of KMP: returns true when the pattern has just been completed.
    fn advance(&mut self, byte: u8) -> bool {
        let mut k = self.matched;
        // Every index is below pattern.len(): `k` is at most len - 1 here, since a full
        // match returns at once, and failure[k - 1] < k.
        while k > 0 && self.pattern[k] != byte {
            k = self.failure[k - 1];
        }
        if self.pattern[k] == byte {
            k += 1;
        }
        self.matched = k;
        k == self.pattern.len()
    }
}

/// The KMP failure function of a non-empty `pattern`.
fn failure_table(pattern: &[u8]) -> Vec<usize> {
    let mut failure = vec![0; pattern.len()];
    let mut k = 0;
    for i in 1..pattern.len() {
        while k > 0 && pattern[i] != pattern[k] {
            k = failure[k - 1];
        }
        if pattern[i] == pattern[k] {
            k += 1;
        }
        failure[i] = k;
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(pattern: &[u8]) -> (OutputWatch, EventFdTrigger) {
        let trigger = EventFdTrigger::new().unwrap();
        let w = OutputWatch::new(pattern.to_vec(), trigger.clone()).unwrap();
        (w, trigger)
    }

    /// Index just past the first occurrence of `pattern` in `stream`, found naively.
    fn naive_end(stream: &[u8], pattern: &[u8]) -> Option<usize> {
        stream
            .windows(pattern.len())
            .position(|w| w == pattern)
            .map(|start| start + pattern.len())
    }

    #[test]
    fn the_failure_table_of_known_patterns() {
        assert_eq!(failure_table(b"aab"), [0, 1, 0]);
        assert_eq!(failure_table(b"abab"), [0, 0, 1, 2]);
        assert_eq!(failure_table(b"aaaa"), [0, 1, 2, 3]);
        assert_eq!(failure_table(b"abcabd"), [0, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn an_empty_pattern_is_refused() {
        assert!(OutputWatch::new(Vec::new(), EventFdTrigger::new().unwrap()).is_none());
    }

    #[test]
    fn an_overlapping_prefix_is_not_missed() {
        let (mut w, trigger) = watch(b"aab");
        assert!(!w.feed(b"aa"));
        assert!(w.feed(b"ab"), "\"aab\" ends the stream \"aaab\"");
        assert_eq!(trigger.read().unwrap(), 1);
        let (mut w, _) = watch(b"abab");
        assert!(!w.feed(b"aba"));
        assert!(
            w.feed(b"bab"),
            "\"abab\" in \"ababab\" once the second b arrives"
        );
    }

    #[test]
    fn a_pattern_split_byte_by_byte_matches_on_its_last_byte() {
        let (mut w, trigger) = watch(b"login: ");
        for &b in b"Welcome\nlogin:" {
            assert!(!w.feed(&[b]));
        }
        assert!(trigger.read().is_err(), "nothing fired yet");
        assert!(w.feed(b" "));
        assert_eq!(trigger.read().unwrap(), 1);
    }

    /// The streaming matcher agrees with a naive search of the whole stream, for
    /// streams cut into pieces at pseudo-random places, over a two-letter alphabet
    /// where partial matches overlap all the time.
    #[test]
    fn agrees_with_a_naive_search_however_the_stream_is_cut() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let pattern: Vec<u8> = (0..1 + next() % 6)
                .map(|_| b'a' + (next() % 2) as u8)
                .collect();
            let stream: Vec<u8> = (0..next() % 40)
                .map(|_| b'a' + (next() % 2) as u8)
                .collect();
            let (mut w, _) = watch(&pattern);
            // The piece of the stream during which the watch fired.
            let mut fired_in = None;
            let mut at = 0;
            while at < stream.len() && fired_in.is_none() {
                let end = (at + 1 + (next() % 5) as usize).min(stream.len());
                if w.feed(&stream[at..end]) {
                    fired_in = Some(at + 1..=end);
                }
                at = end;
            }
            let expected = naive_end(&stream, &pattern);
            match (&fired_in, expected) {
                (Some(piece), Some(end)) => {
                    assert!(piece.contains(&end), "{pattern:?} in {stream:?}")
                }
                (None, None) => {}
                _ => panic!(
                    "{pattern:?} in {stream:?}: fired in {fired_in:?}, expected {expected:?}"
                ),
            }
        }
    }
}
