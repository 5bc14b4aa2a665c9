use super::*;

fn parse(text: &str) -> Result<Message, ParseError> {
    Message::parse(text.as_bytes().to_vec())
}

#[test]
fn classifies_the_four_kinds() {
    let req = parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
    assert_eq!(req.kind(), Kind::Request);
    assert_eq!(req.method(), Some("tools/list"));
    assert_eq!(req.id(), Some("1"));
    let note = parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(note.kind(), Kind::Notification);
    assert_eq!(note.id(), None);
    let resp = parse(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
    assert_eq!(resp.kind(), Kind::Response);
    assert_eq!(resp.result(), Some("{}"));
    let err =
        parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap();
    assert_eq!(err.kind(), Kind::Error);
    assert_eq!(err.id(), Some("null"));
}

#[test]
fn keeps_the_original_bytes() {
    let text = "{ \"jsonrpc\" : \"2.0\", \"method\":\"x/y\",\"id\":  7 ,\"params\":{\"b\":1,\"a\":1e3,\"big\":123456789012345678901234567890},\"extra\":true}";
    let msg = parse(text).unwrap();
    assert_eq!(msg.as_str(), text);
    assert_eq!(
        msg.params(),
        Some("{\"b\":1,\"a\":1e3,\"big\":123456789012345678901234567890}")
    );
}

#[test]
fn unescapes_the_method() {
    let msg = parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools\/c\u0061ll"}"#).unwrap();
    assert_eq!(msg.method(), Some("tools/call"));
}

#[test]
fn rejects_batches_and_non_objects() {
    assert_eq!(
        parse(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#).unwrap_err(),
        ParseError::Batch
    );
    assert!(matches!(parse("42"), Err(ParseError::Invalid(_))));
    assert!(matches!(parse("[1,"), Err(ParseError::Json(_))));
}

#[test]
fn rejects_duplicate_keys_anywhere() {
    let err = parse(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","name":"delete_file"}}"#).unwrap_err();
    assert!(matches!(
        err,
        ParseError::Json(JsonError::DuplicateKey { .. })
    ));
    assert_eq!(err.code(), crate::codes::INVALID_REQUEST);
    let err = parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#).unwrap_err();
    assert!(matches!(
        err,
        ParseError::Json(JsonError::DuplicateKey { .. })
    ));
}

#[test]
fn rejects_malformed_envelopes() {
    for (text, needle) in [
        (r#"{"id":1,"method":"ping"}"#, "jsonrpc"),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, "jsonrpc"),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, "`id`"),
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, "`id`"),
        (r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, "`id`"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#,
            "params",
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":5}"#, "invalid"),
        (r#"{"jsonrpc":"2.0"}"#, "needs"),
        (r#"{"jsonrpc":"2.0","id":1}"#, "needs"),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#,
            "not both",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"x","result":1}"#,
            "must not",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{text}: {err} (wanted {needle})"
        );
    }
}

#[test]
fn parse_errors_map_to_json_rpc_codes() {
    assert_eq!(parse("{").unwrap_err().code(), crate::codes::PARSE_ERROR);
    assert_eq!(
        parse("[]").unwrap_err().code(),
        crate::codes::INVALID_REQUEST
    );
}

#[test]
fn with_id_splices_only_the_id() {
    let text = r#"{"jsonrpc":"2.0","id":"client-7","method":"tools/call","params":{"name":"x"}}"#;
    let msg = parse(text).unwrap();
    let remapped = msg.with_id("1042");
    assert_eq!(
        remapped.as_str(),
        r#"{"jsonrpc":"2.0","id":1042,"method":"tools/call","params":{"name":"x"}}"#
    );
    assert_eq!(remapped.id(), Some("1042"));
    assert_eq!(remapped.params(), Some(r#"{"name":"x"}"#));
    let back = remapped.with_id("\"client-7\"");
    assert_eq!(back.as_str(), text);
}

#[test]
fn with_params_replaces_or_inserts() {
    let msg = parse(r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}}"#).unwrap();
    let changed = msg.with_params(r#"{"x":2,"y":3}"#);
    assert_eq!(
        changed.as_str(),
        r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":2,"y":3}}"#
    );
    let bare = parse(r#"{"jsonrpc":"2.0","id":1,"method":"a"}"#).unwrap();
    let added = bare.with_params(r#"{"z":true}"#);
    assert_eq!(added.params(), Some(r#"{"z":true}"#));
    assert_eq!(added.id(), Some("1"));
    assert_eq!(added.method(), Some("a"));
}

#[test]
fn builders_produce_valid_messages() {
    let req = Message::request("3", "tools/list", Some("{}"));
    assert_eq!(req.kind(), Kind::Request);
    let note = Message::notification("notifications/initialized", None);
    assert_eq!(
        note.as_str(),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
    );
    let err = Message::error_response(
        None,
        &RpcError::new(-32700, "bad \"json\"").with_data(serde_json::json!({"k": 1})),
    );
    assert_eq!(err.kind(), Kind::Error);
    let value: serde_json::Value = serde_json::from_slice(err.bytes()).unwrap();
    assert_eq!(value["error"]["message"], "bad \"json\"");
    assert_eq!(value["error"]["data"]["k"], 1);
    assert_eq!(value["id"], serde_json::Value::Null);
}

#[test]
fn debug_output_never_shows_payloads() {
    let msg =
        parse(r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"secret":"hunter2"}}"#).unwrap();
    assert!(!format!("{msg:?}").contains("hunter2"));
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = Message::parse(bytes);
    }

    #[test]
    fn remapping_an_id_roundtrips(id in 0u64..u64::MAX, name in "[a-zA-Z_/ ]{0,30}") {
        let text = serde_json::json!({"jsonrpc":"2.0","id":"orig","method":"tools/call","params":{"name":name}}).to_string();
        let msg = parse(&text).unwrap();
        let there = msg.with_id(&id.to_string());
        let back = there.with_id("\"orig\"");
        proptest::prop_assert_eq!(back.as_str(), text.as_str());
    }
}
