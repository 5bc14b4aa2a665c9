//! An upstream's SSE stream, cut into arbitrary chunks: decoding never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpguard_protocol::sse::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new(4096);
    let split = data.first().map_or(1, |b| (*b as usize % 7) + 1);
    for chunk in data.chunks(split) {
        if decoder.push(chunk).is_err() {
            break;
        }
    }
});
