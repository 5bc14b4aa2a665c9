//! Any bytes an agent or upstream sends: parsing never panics, and a message that parses
//! keeps its bytes and survives an id remap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpguard_protocol::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data.to_vec()) {
        assert_eq!(message.bytes().as_ref(), data);
        let remapped = message.with_id("12345");
        if message.id().is_some() {
            assert_eq!(remapped.id(), Some("12345"));
            assert!(Message::parse(remapped.bytes().clone()).is_ok());
        }
        let _ = message.param("name");
        let _ = message.param_str("uri");
    }
});
