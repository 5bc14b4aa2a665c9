use super::*;

fn parse(text: &str) -> Result<Config, FileError> {
    parse_yaml(Path::new("cfg.yaml"), text)
}

#[test]
fn unknown_keys_are_errors_with_position() {
    let err = parse("proxy:\n  host: 127.0.0.1\n  prot: 9000\n").unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("cfg.yaml:3:"), "{text}");
    assert!(text.contains("prot"), "{text}");
}

#[test]
fn wrong_types_are_errors_with_position() {
    let err = parse("proxy:\n  port: lots\n").unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
    assert!(err.column.is_some());
}

#[test]
fn duplicate_keys_are_errors() {
    let err = parse("proxy:\n  port: 1\n  port: 2\n").unwrap_err();
    assert_eq!(err.line, Some(3), "{err}");
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn upstreams_parse_by_name() {
    let config = parse(
        "upstreams:\n  fs:\n    command: npx\n    args: [a, b]\n  web:\n    transport: http\n    url: http://127.0.0.1:1/mcp\n",
    )
    .unwrap();
    assert_eq!(config.upstreams["fs"].args, vec!["a", "b"]);
    assert!(config.upstreams["web"].required);
    assert!(config.check().is_empty());
}
