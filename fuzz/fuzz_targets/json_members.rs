//! The lexical member scanner on any text: never panics, and on valid JSON objects agrees
//! with serde_json.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpguard_protocol::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = json::members(text);
    if json::validate_strict(data).is_ok() {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        {
            for (key, value) in &map {
                let raw = json::member(text, key).expect("member present");
                let parsed: serde_json::Value = serde_json::from_str(raw).expect("member is json");
                assert_eq!(&parsed, value);
            }
        }
    }
});
