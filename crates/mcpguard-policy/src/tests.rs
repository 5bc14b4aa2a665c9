#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;

use super::*;

fn policy(yaml: &str) -> Policy {
    compile(&[("p.yaml".into(), yaml.into())], Action::Deny).unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(yaml: &str) -> Vec<String> {
    compile(&[("p.yaml".into(), yaml.into())], Action::Deny)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

struct CallSpec<'a> {
    method: &'a str,
    tool: &'a str,
    server: &'a str,
    args: serde_json::Value,
    labels: &'a [&'a str],
    roles: Vec<String>,
    session: SessionFacts,
}

fn call(tool: &str) -> CallSpec<'_> {
    CallSpec {
        method: "tools/call",
        tool,
        server: "srv",
        args: serde_json::json!({}),
        labels: &[],
        roles: vec![],
        session: SessionFacts::default(),
    }
}

fn decide(p: &Policy, c: &CallSpec<'_>) -> Decision {
    let labels: BTreeSet<String> = c.labels.iter().map(|s| s.to_string()).collect();
    p.evaluate(&Call {
        method: c.method,
        target: Some(c.tool),
        exposed: Some(c.tool),
        server: Some(c.server),
        arguments: Some(&c.args),
        labels: &labels,
        identity: Some("alice"),
        roles: &c.roles,
        session: &c.session,
    })
}

#[test]
fn priority_then_strictness_then_default() {
    let p = policy(
        r#"
default_action: deny
rules:
  - { id: allow-read, action: allow, priority: 50, tool_patterns: ["read_*"] }
  - { id: sandbox-read, action: sandbox, priority: 50, tool_patterns: ["read_secret*"] }
  - { id: deny-secret, action: deny, priority: 10, tool_patterns: ["*"], taint_labels: [secret] }
  - { id: audit-all, action: audit, priority: 200, tool_patterns: ["*"] }
"#,
    );
    let d = decide(&p, &call("read_file"));
    assert_eq!((d.action, d.rule_id()), (Action::Allow, "allow-read"));
    assert!(d.has_modifier(Action::Audit));
    let d = decide(&p, &call("read_secrets"));
    assert_eq!((d.action, d.rule_id()), (Action::Sandbox, "sandbox-read"));
    let d = decide(
        &p,
        &CallSpec {
            labels: &["secret.aws_access_key"],
            ..call("read_file")
        },
    );
    assert_eq!((d.action, d.rule_id()), (Action::Deny, "deny-secret"));
    let d = decide(&p, &call("write_file"));
    assert_eq!((d.action, d.rule_id()), (Action::Deny, "default"));
    assert!(d.reason.contains("default action is deny"));
}

#[test]
fn matchers_on_methods_servers_regex_roles_and_arguments() {
    let p = policy(
        r#"
default_action: allow
rules:
  - id: no-rm
    action: deny
    tool_patterns: ["re:^(shell|exec)_"]
    argument_patterns: [{ key: "comm*", match: "rm\\s+-rf" }]
  - id: only-intranet
    action: deny
    servers: ["web*"]
    argument_patterns: [{ path: /request/url, not_match: "^https://intranet\\." }]
  - { id: prompts, action: deny, methods: [prompts/get], tool_patterns: [secret_prompt] }
  - { id: admins-only, action: deny, tool_patterns: [drop_db], roles: [guest] }
"#,
    );
    let shell = |cmd: &str| CallSpec {
        args: serde_json::json!({"opts": {"command": cmd}}),
        ..call("shell_run")
    };
    assert_eq!(decide(&p, &shell("rm  -rf /")).rule_id(), "no-rm");
    assert_eq!(decide(&p, &shell("ls")).action, Action::Allow);
    let web = |url: &str| CallSpec {
        server: "web1",
        args: serde_json::json!({"request": {"url": url}}),
        ..call("fetch")
    };
    assert_eq!(
        decide(&p, &web("https://evil.test/")).rule_id(),
        "only-intranet"
    );
    assert_eq!(
        decide(&p, &web("https://intranet.corp/")).action,
        Action::Allow
    );
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                server: "db",
                ..web("https://evil.test/")
            }
        )
        .action,
        Action::Allow
    );
    assert_eq!(decide(&p, &call("secret_prompt")).action, Action::Allow);
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                method: "prompts/get",
                ..call("secret_prompt")
            }
        )
        .rule_id(),
        "prompts"
    );
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                roles: vec!["guest".into()],
                ..call("drop_db")
            }
        )
        .rule_id(),
        "admins-only"
    );
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                roles: vec!["admin".into()],
                ..call("drop_db")
            }
        )
        .action,
        Action::Allow
    );
}

#[test]
fn cel_conditions_see_the_call_and_session() {
    let p = policy(
        r#"
default_action: allow
rules:
  - id: lethal-trifecta
    action: deny
    owasp_asi: [ASI01, ASI02]
    condition: 'session.untrusted && labels.exists(l, l.startsWith("secret")) && tool.startsWith("http_")'
  - id: big-upload
    action: require_approval
    condition: 'has(args.size) && args.size > 1000'
"#,
    );
    let untrusted = SessionFacts {
        untrusted: true,
        ..Default::default()
    };
    let d = decide(
        &p,
        &CallSpec {
            labels: &["secret.jwt"],
            session: untrusted.clone(),
            ..call("http_post")
        },
    );
    assert_eq!((d.action, d.rule_id()), (Action::Deny, "lethal-trifecta"));
    assert_eq!(d.owasp_asi(), ["ASI01", "ASI02"]);
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                labels: &["secret.jwt"],
                ..call("http_post")
            }
        )
        .action,
        Action::Allow
    );
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                args: serde_json::json!({"size": 5000}),
                ..call("upload")
            }
        )
        .action,
        Action::RequireApproval
    );
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                args: serde_json::json!({"size": 5}),
                ..call("upload")
            }
        )
        .action,
        Action::Allow
    );
}

#[test]
fn an_error_while_evaluating_denies() {
    let p = policy(
        r#"
default_action: allow
rules:
  - { id: typed, action: deny, condition: 'args.count > 3' }
"#,
    );
    let d = decide(&p, &call("anything"));
    assert_eq!(d.action, Action::Deny);
    assert_eq!(d.rule_id(), "typed");
    assert!(!d.errors.is_empty());
    assert!(d.reason.contains("could not decide"), "{}", d.reason);
}

#[test]
fn evaluation_errors_never_quote_argument_values() {
    let p = policy(
        r#"
default_action: allow
rules:
  - { id: typed, action: deny, condition: 'args.amount > 100' }
  - { id: shaped, action: deny, priority: 200, condition: 'args.card' }
"#,
    );
    let card = "4111111111111111";
    for args in [
        serde_json::json!({"amount": card}),
        serde_json::json!({"amount": 1, "card": card}),
    ] {
        let d = decide(
            &p,
            &CallSpec {
                args,
                ..call("pay")
            },
        );
        assert_eq!(d.action, Action::Deny);
        let said = format!("{} {:?}", d.reason, d.errors);
        assert!(!said.contains(card), "{said}");
        assert!(said.contains("condition"), "{said}");
    }
}

#[test]
fn errors_have_positions_and_hints() {
    let e = errors("rules:\n  - id: a\n    action: deny\n    tool_pattern: [x]\n");
    assert!(
        e[0].starts_with("p.yaml:4:5: unknown field `tool_pattern`"),
        "{e:?}"
    );
    let e = errors("rules:\n  - id: a\n    action: block\n");
    assert!(
        e[0].starts_with("p.yaml:3:13:") && e[0].contains("hint: actions are"),
        "{e:?}"
    );
    let e = errors("rules:\n  - id: a\n    action: deny\n    taint_labels: [secrets]\n");
    assert!(
        e[0].starts_with("p.yaml:4:20: unknown taint label `secrets`")
            && e[0].contains("did you mean `secret`?"),
        "{e:?}"
    );
    let e = errors("rules:\n  - id: a\n    action: deny\n    owasp_asi: ASI-03\n");
    assert!(
        e[0].contains("unknown OWASP ASI id `ASI-03`") && e[0].contains("write `ASI03`"),
        "{e:?}"
    );
    let e = errors("rules:\n  - id: a\n    action: deny\n    owasp_mcp: [MCP11:2025]\n");
    assert!(e[0].contains("unknown OWASP MCP id"), "{e:?}");
    let e = errors("rules:\n  - { id: a, action: deny, tool_patterns: [\"re:(\"] }\n");
    assert!(
        e[0].starts_with("p.yaml:2:") && e[0].contains("bad regex"),
        "{e:?}"
    );
    let e = errors("rules:\n  - { id: a, action: deny, tool_patterns: [\"a[\"] }\n");
    assert!(e[0].contains("bad glob"), "{e:?}");
    let e = errors("rules:\n  - id: a\n    action: deny\n    condition: 'tool ==== 1'\n");
    assert!(
        e[0].starts_with("p.yaml:4:") && e[0].contains("not valid CEL"),
        "{e:?}"
    );
    let e = errors("rules:\n  - id: a\n    action: deny\n    condition: 'tols == \"x\"'\n");
    assert!(
        e[0].contains("unknown variable `tols`") && e[0].contains("did you mean `tool`?"),
        "{e:?}"
    );
    let e = errors(
        "rules:\n  - { id: a, action: deny }\n  - { id: a, action: allow, tool_patterns: [x] }\n",
    );
    assert!(
        e[0].starts_with("p.yaml:3:")
            && e[0].contains("duplicate rule id `a`")
            && e[0].contains("p.yaml:2"),
        "{e:?}"
    );
    let e = errors("rules:\n  - { id: a, action: deny, methods: [tools/cal] }\n");
    assert!(e[0].contains("did you mean `tools/call`?"), "{e:?}");
    let e = errors(
        "rules:\n  - { id: a, action: deny, argument_patterns: [{ path: x.y, match: z }] }\n",
    );
    assert!(
        e[0].contains("JSON pointer") && e[0].contains("/x/y"),
        "{e:?}"
    );
    let e = errors("");
    assert!(e[0].contains("empty"), "{e:?}");
    let e = errors("rules:\n  - id: a\n    id: b\n    action: deny\n");
    assert!(e[0].starts_with("p.yaml:3:"), "{e:?}");
}

#[test]
fn unreachable_rules_are_reported() {
    let e = errors(
        "rules:\n  - { id: all, action: deny, priority: 1, tool_patterns: [\"*\"] }\n  - { id: later, action: allow, priority: 5, tool_patterns: [read] }\n",
    );
    assert!(
        e[0].contains("rule `later` can never decide") && e[0].contains("rule `all`"),
        "{e:?}"
    );
    // Different methods, a condition, or equal priority keep the later rule reachable.
    policy(
        "rules:\n  - { id: all, action: deny, priority: 1, methods: [prompts/get] }\n  - { id: later, action: allow, priority: 5 }\n",
    );
    policy(
        "rules:\n  - { id: c, action: deny, priority: 1, condition: 'tool == \"x\"' }\n  - { id: later, action: allow, priority: 5 }\n",
    );
    policy(
        "rules:\n  - { id: a, action: deny, priority: 5 }\n  - { id: b, action: allow, priority: 5 }\n",
    );
}

#[test]
fn disabled_rules_and_declared_labels() {
    let p = policy(
        "taint_labels: [customer_data]\nrules:\n  - { id: off, action: allow, enabled: false }\n  - { id: c, action: deny, taint_labels: [customer_data] }\n",
    );
    assert_eq!(p.rules().len(), 1);
    assert_eq!(
        decide(
            &p,
            &CallSpec {
                labels: &["customer_data"],
                ..call("x")
            }
        )
        .rule_id(),
        "c"
    );
}

#[test]
fn always_denies_hides_only_unconditional_denials() {
    let p = policy(
        "default_action: allow\nrules:\n  - { id: d, action: deny, priority: 1, tool_patterns: [\"shell_*\"] }\n  - { id: c, action: deny, priority: 2, tool_patterns: [\"http_*\"], taint_labels: [secret] }\n",
    );
    assert!(p.always_denies("tools/call", "shell_exec", "x__shell_exec", "x"));
    assert!(!p.always_denies("tools/call", "http_post", "http_post", "x"));
    assert!(!p.always_denies("tools/call", "read", "read", "x"));
    assert!(policy("default_action: deny\n").always_denies("tools/call", "read", "read", "x"));
    // A conditional deny that does not match falls through to what comes after it.
    let p = policy(
        "default_action: deny\nrules:\n  - { id: c, action: deny, priority: 1, methods: [\"*\"], taint_labels: [tool_poisoning] }\n  - { id: a, action: allow, priority: 5, tool_patterns: [\"read_*\"] }\n",
    );
    assert!(p.always_denies("tools/call", "launch", "launch", "x"));
    assert!(!p.always_denies("tools/call", "read_file", "read_file", "x"));
}

#[test]
fn owasp_ids() {
    assert!(owasp::is_asi("ASI10"));
    assert!(!owasp::is_asi("ASI11"));
    assert_eq!(owasp::fix_asi("ASI-3").as_deref(), Some("ASI03"));
    assert!(owasp::is_mcp("MCP10:2025"));
    assert!(!owasp::is_mcp("MCP1:2025"));
    assert_eq!(owasp::fix_mcp("MCP-01").as_deref(), Some("MCP01:2025"));
}
