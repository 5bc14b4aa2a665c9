//! Policy YAML of any shape: compiling never panics, and a compiled policy evaluates a
//! call without panicking.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use mcpguard_policy::{Action, Call, SessionFacts, compile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = compile(&[("fuzz.yaml".into(), text.into())], Action::Deny) {
        let labels: BTreeSet<String> = ["secret".to_string()].into();
        let args = serde_json::json!({"path": "/etc/passwd", "n": 3});
        let _ = policy.evaluate(&Call {
            method: "tools/call",
            target: Some("read_file"),
            exposed: Some("fs__read_file"),
            server: Some("fs"),
            arguments: Some(&args),
            labels: &labels,
            identity: None,
            roles: &[],
            session: &SessionFacts::default(),
        });
    }
});
