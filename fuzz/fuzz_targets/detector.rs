//! The detectors on any input (text and JSON), and redaction of what they find: never
//! panics, and redacting keeps valid JSON valid.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcpguard_detect::{Detector, DigestKey, Limits, Redaction, redact_json};

static DETECTOR: LazyLock<Detector> = LazyLock::new(|| {
    Detector::new(DigestKey::new([9; 32]), Limits::default()).expect("detectors compile")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = DETECTOR.scan_text(text);
    if let Ok(findings) = DETECTOR.scan_json_occurrences(text) {
        let pairs: Vec<_> = findings.iter().map(|f| (f, Redaction::Partial)).collect();
        let masked = redact_json(text, &pairs).expect("valid JSON stays redactable");
        serde_json::from_str::<serde_json::Value>(&masked).expect("redaction keeps JSON valid");
    }
});
