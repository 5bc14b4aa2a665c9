//! A stdio peer's output in arbitrary chunks: framing never panics and never yields a line
//! longer than the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpguard_protocol::framing::LineDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = LineDecoder::new(64);
    let split = data.first().map_or(1, |b| (*b as usize % 13) + 1);
    for chunk in data.chunks(split) {
        for line in decoder.push(chunk).into_iter().flatten() {
            assert!(line.len() <= 64);
        }
    }
});
