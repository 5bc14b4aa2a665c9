use super::*;

#[test]
fn templates_match_uris() {
    assert!(template_matches("echo://item/{id}", "echo://item/7"));
    assert!(!template_matches("echo://item/{id}", "echo://item/7/extra"));
    assert!(template_matches("file:///{+path}", "file:///a/b/c.txt"));
    assert!(template_matches("demo://{a}/x/{b}", "demo://1/x/2"));
    assert!(!template_matches("demo://{a}/x/{b}", "demo://1/y/2"));
    assert!(!template_matches("broken://{id", "broken://1"));
}

#[test]
fn composite_cursors_roundtrip_and_reject_foreign_ones() {
    let mut next = BTreeMap::new();
    next.insert("fs".to_string(), "page-2".to_string());
    next.insert("web".to_string(), "c=3&x=\"y\"".to_string());
    let cursor = encode_cursor(&next);
    assert!(cursor.starts_with(CURSOR_PREFIX));
    assert_eq!(decode_cursor(&cursor), Some(next));
    assert_eq!(decode_cursor("page-2"), None);
    assert_eq!(decode_cursor(&format!("{CURSOR_PREFIX}!!!")), None);
}

#[test]
fn capabilities_merge_as_a_union() {
    let mut into = serde_json::Map::new();
    let a = serde_json::json!({"tools": {"listChanged": false}, "logging": {}});
    let b = serde_json::json!({"tools": {"listChanged": true}, "resources": {"subscribe": true}});
    merge_capabilities(&mut into, a.as_object().unwrap().clone());
    merge_capabilities(&mut into, b.as_object().unwrap().clone());
    assert_eq!(
        serde_json::Value::Object(into),
        serde_json::json!({"tools": {"listChanged": true}, "logging": {}, "resources": {"subscribe": true}})
    );
}

#[test]
fn mcp_param_headers_follow_the_schema() {
    let schema = r#"{"type":"object","properties":{
        "region":{"type":"string","x-mcp-header":"Region"},
        "count":{"type":"integer","x-mcp-header":"Count"},
        "flag":{"type":"boolean","x-mcp-header":"Flag"},
        "nested":{"type":"object","properties":{"zone":{"type":"string","x-mcp-header":"Zone"}}},
        "plain":{"type":"string"}}}"#;
    let declared = header_params(schema);
    assert_eq!(declared.len(), 4);
    let headers = param_headers(
        &declared,
        Some(r#"{"region":"  spaced","count":5,"flag":true,"nested":{"zone":"eu"},"plain":"x"}"#),
    );
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(find("mcp-param-Region"), Some("=?base64?ICBzcGFjZWQ=?="));
    assert_eq!(find("mcp-param-Count"), Some("5"));
    assert_eq!(find("mcp-param-Flag"), Some("true"));
    assert_eq!(find("mcp-param-Zone"), Some("eu"));
    // Absent arguments send no header.
    assert!(param_headers(&declared, Some("{}")).is_empty());
    assert!(header_params(r#"{"type":"object"}"#).is_empty());
}

#[test]
fn template_matching_stays_fast_on_hostile_input() {
    let template = "x://{+a}{+b}{+c}{+d}{+e}{+f}/end";
    let uri = format!("x://{}", "a".repeat(5000));
    // A backtracking matcher would not finish this in any reasonable time.
    assert!(!template_matches(template, &uri));
    assert!(template_matches(template, "x://abc/end"));
}
