use super::*;

#[test]
fn accepts_well_formed_values() {
    for text in [
        r#"{"a":1,"b":[1,2,{"c":null}],"d":{"e":"f"}}"#,
        "[]",
        "\"x\"",
        "12345678901234567890",
        r#"{"a":{"x":1},"b":{"x":2}}"#,
    ] {
        assert_eq!(validate_strict(text.as_bytes()), Ok(()), "{text}");
    }
}

#[test]
fn rejects_repeated_key_at_top_level() {
    let err = validate_strict(br#"{"name":"read","name":"delete"}"#).unwrap_err();
    assert!(
        matches!(&err, JsonError::DuplicateKey { key, .. } if key == "name"),
        "{err:?}"
    );
    assert!(err.to_string().contains("duplicate key `name`"));
}

#[test]
fn rejects_repeated_key_deep_inside() {
    let text = r#"{"params":{"arguments":{"list":[{"path":"/a","path":"/etc/shadow"}]}}}"#;
    let err = validate_strict(text.as_bytes()).unwrap_err();
    assert!(matches!(err, JsonError::DuplicateKey { ref key, .. } if key == "path"));
}

#[test]
fn compares_keys_after_unescaping() {
    let err = validate_strict(br#"{"name":"a","n\u0061me":"b"}"#).unwrap_err();
    assert!(matches!(err, JsonError::DuplicateKey { ref key, .. } if key == "name"));
}

#[test]
fn detects_repeats_in_large_objects() {
    let mut text = String::from("{");
    for i in 0..100 {
        text.push_str(&format!("\"k{i}\":{i},"));
    }
    text.push_str("\"k57\":0}");
    let err = validate_strict(text.as_bytes()).unwrap_err();
    assert!(matches!(err, JsonError::DuplicateKey { ref key, .. } if key == "k57"));
}

#[test]
fn reports_syntax_errors_with_position() {
    let err = validate_strict(b"{\"a\":\n  tru}").unwrap_err();
    match err {
        JsonError::Syntax { line, .. } => assert_eq!(line, 2),
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        validate_strict(b"{} {}"),
        Err(JsonError::Syntax { .. })
    ));
    assert!(matches!(
        validate_strict(b""),
        Err(JsonError::Syntax { .. })
    ));
}

#[test]
fn bounds_nesting_depth() {
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(matches!(
        validate_strict(deep.as_bytes()),
        Err(JsonError::Syntax { .. })
    ));
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = validate_strict(&bytes);
    }
}

#[test]
fn member_finds_top_level_values_only() {
    let text = r#"{"arguments":{"name":"inner"},"name":"tool\/x","n":1}"#;
    assert_eq!(member(text, "name"), Some(r#""tool\/x""#));
    assert_eq!(member_str(text, "name").as_deref(), Some("tool/x"));
    assert_eq!(member(text, "arguments"), Some(r#"{"name":"inner"}"#));
    assert_eq!(member(text, "missing"), None);
    assert_eq!(member("[1,2]", "name"), None);
    assert_eq!(member_str(text, "n"), None);
}

#[test]
fn set_member_replaces_in_place_or_appends() {
    let text = r#"{"name":"a__b", "arguments":{"x":1}}"#;
    assert_eq!(
        set_member(text, "name", r#""b""#),
        r#"{"name":"b", "arguments":{"x":1}}"#
    );
    assert_eq!(
        set_member(text, "_meta", r#"{"k":1}"#),
        r#"{"name":"a__b", "arguments":{"x":1},"_meta":{"k":1}}"#
    );
    assert_eq!(set_member("{ }", "a", "1"), r#"{"a":1}"#);
}

#[test]
fn remove_member_keeps_the_object_valid() {
    for (text, key, want) in [
        (r#"{"a":1,"b":2,"c":3}"#, "b", r#"{"a":1,"c":3}"#),
        (r#"{"a":1,"b":2,"c":3}"#, "a", r#"{"b":2,"c":3}"#),
        (r#"{"a":1,"b":2,"c":3}"#, "c", r#"{"a":1,"b":2}"#),
        (r#"{ "a" : {"x":"}"} }"#, "a", r#"{  }"#),
        (r#"{"a":1}"#, "z", r#"{"a":1}"#),
        (r#"{"q\"":1, "a":[1]}"#, "a", r#"{"q\"":1}"#),
    ] {
        let out = remove_member(text, key);
        assert_eq!(out, want, "{text} - {key}");
        validate_strict(out.as_bytes()).unwrap();
    }
}

#[test]
fn member_handles_escapes_nesting_and_whitespace() {
    let text = " {\n \"a\\\"b\" : \"x\\\\\\\"}\" , \"n\\u0061me\":[1,{\"name\":2},\"]\"],\"z\": -1.5e3 ,\"t\":true}";
    assert_eq!(member(text, "a\"b"), Some("\"x\\\\\\\"}\""));
    assert_eq!(member(text, "name"), Some("[1,{\"name\":2},\"]\"]"));
    assert_eq!(member(text, "z"), Some("-1.5e3"));
    assert_eq!(member(text, "t"), Some("true"));
    assert_eq!(member(text, "missing"), None);
    assert_eq!(member("{}", "a"), None);
    assert_eq!(member("{\"a\":{}}", "a"), Some("{}"));
}

proptest::proptest! {
    #[test]
    fn member_never_panics(text in ".{0,80}", key in "[a-z]{0,3}") {
        let _ = member(&text, &key);
    }

    #[test]
    fn member_agrees_with_serde(map in proptest::collection::btree_map("[a-z\"\\\\]{0,4}", proptest::prelude::any::<(bool, i32, String)>(), 0..5), probe in "[a-z\"\\\\]{0,4}") {
        let value: serde_json::Value = map
            .iter()
            .map(|(k, (b, n, s))| (k.clone(), serde_json::json!({"b": b, "list": [n, s], "s": s})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let text = serde_json::to_string_pretty(&value).unwrap();
        let got = member(&text, &probe).map(|raw| serde_json::from_str::<serde_json::Value>(raw).unwrap());
        proptest::prop_assert_eq!(got.as_ref(), value.get(&probe));
    }
}

#[test]
fn keys_that_differ_only_in_case_are_duplicates() {
    // Parsers that match keys case-insensitively (Go's encoding/json) would see one key.
    for text in [
        r#"{"method":"tools/list","Method":"tools/call"}"#,
        r#"{"name":"a","NAME":"b"}"#,
        "{\"params\":1,\"param\u{17f}\":2}",
        "{\"kind\":1,\"\u{212a}ind\":2}",
        r#"{"a":{"uri":"x","Uri":"y"}}"#,
    ] {
        let err = validate_strict(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, JsonError::DuplicateKey { .. }),
            "{text}: {err:?}"
        );
    }
    // Distinct keys stay distinct.
    assert_eq!(
        validate_strict(br#"{"a":1,"b":2,"ab":3,"\u00e9":4,"e":5}"#),
        Ok(())
    );
}

#[test]
fn set_member_leaves_non_objects_alone() {
    for text in [r#""x}""#, r#"[{"a":1}]"#, "7", r#"{"a":1} {"#, ""] {
        assert_eq!(set_member(text, "k", "1"), text, "{text}");
    }
    assert!(is_object(" {\"a\":[1,{}]} "));
    assert!(!is_object("{\"a\":1}}"));
}
