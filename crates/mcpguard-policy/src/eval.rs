//! Evaluating a compiled policy against one call.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::compile::{ArgumentPattern, Place, Rule};
use crate::{Action, Policy};

/// What a session has done so far, for rules and conditions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SessionFacts {
    /// The session has read untrusted external content.
    pub untrusted: bool,
    /// The session's earlier outputs held secrets or personal data (its taint ledger is
    /// not empty).
    pub sensitive: bool,
    /// Calls made so far.
    pub calls: u64,
    /// Calls in about the last minute (a runaway loop shows here).
    pub recent_calls: u64,
    /// Tools called so far (most recent last, bounded).
    pub tools: Vec<String>,
}

/// The facts of one call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The MCP (or A2A) method.
    pub method: &'a str,
    /// The tool or prompt name as its upstream knows it, or the resource URI.
    pub target: Option<&'a str>,
    /// The name as the agent sees it (with a federation prefix).
    pub exposed: Option<&'a str>,
    /// The upstream that serves it.
    pub server: Option<&'a str>,
    /// The call's arguments, when a rule needs them.
    pub arguments: Option<&'a serde_json::Value>,
    /// Taint labels on this call (from its arguments and flows from earlier outputs).
    pub labels: &'a BTreeSet<String>,
    /// The caller, once authenticated.
    pub identity: Option<&'a str>,
    /// The caller's roles.
    pub roles: &'a [String],
    /// The session so far.
    pub session: &'a SessionFacts,
}

/// A rule that took part in a decision.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The rule.
    pub rule: Arc<Rule>,
}

/// The outcome of evaluating a call.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The terminal action.
    pub action: Action,
    /// The rule that decided it (`None` for the default action).
    pub rule: Option<Arc<Rule>>,
    /// Why, in words for the agent and the log.
    pub reason: String,
    /// Modifier rules that matched (audit, warn, redact).
    pub modifiers: Vec<Arc<Rule>>,
    /// Ids of every rule that matched.
    pub matched: Vec<String>,
    /// Errors met while evaluating (any error forces deny).
    pub errors: Vec<String>,
}

impl Decision {
    /// The rule id, or `default` when the default action decided.
    pub fn rule_id(&self) -> &str {
        self.rule.as_ref().map_or("default", |r| r.id.as_str())
    }

    /// OWASP ASI ids of the deciding rule.
    pub fn owasp_asi(&self) -> &[String] {
        self.rule.as_ref().map_or(&[], |r| r.owasp_asi.as_slice())
    }

    /// True when a modifier of `action` applies.
    pub fn has_modifier(&self, action: Action) -> bool {
        self.modifiers.iter().any(|r| r.action == action)
    }
}

/// The CEL type of a value, without the value.
fn cel_type_name(value: &cel::Value) -> &'static str {
    match value {
        cel::Value::Int(_) => "int",
        cel::Value::UInt(_) => "uint",
        cel::Value::Float(_) => "double",
        cel::Value::String(_) => "string",
        cel::Value::Bytes(_) => "bytes",
        cel::Value::Bool(_) => "bool",
        cel::Value::List(_) => "list",
        cel::Value::Map(_) => "map",
        cel::Value::Null => "null",
        _ => "value of another type",
    }
}

pub(crate) fn method_matches(rule: &Rule, method: &str) -> bool {
    rule.methods.iter().any(|m| {
        m == "*" || m == method || (m.ends_with('*') && method.starts_with(&m[..m.len() - 1]))
    })
}

impl Policy {
    /// Decides a call.
    pub fn evaluate(&self, call: &Call<'_>) -> Decision {
        let mut best: Option<&Arc<Rule>> = None;
        let mut modifiers = Vec::new();
        let mut matched = Vec::new();
        let mut errors = Vec::new();
        let mut error_rule = None;
        let mut cel_context: Option<cel::Context> = None;
        let names: Vec<&str> = [call.target, call.exposed].into_iter().flatten().collect();
        let tools_pass = self.tools.passing(&names);
        let servers_pass = self
            .servers
            .passing(&call.server.into_iter().collect::<Vec<_>>());
        for (i, rule) in self.rules.iter().enumerate() {
            let terminal = rule.action.is_terminal();
            if terminal && best.is_some_and(|b| rule.priority > b.priority) {
                continue;
            }
            if !tools_pass.contains(i) || !servers_pass.contains(i) {
                continue;
            }
            match rule_matches(rule, call, &mut cel_context) {
                Ok(false) => {}
                Ok(true) => {
                    matched.push(rule.id.clone());
                    if !terminal {
                        modifiers.push(rule.clone());
                    } else if best.is_none_or(|b| rule.action.strictness() > b.action.strictness())
                    {
                        best = Some(rule);
                    }
                }
                Err(e) => {
                    errors.push(format!("rule `{}`: {e}", rule.id));
                    error_rule.get_or_insert_with(|| rule.clone());
                }
            }
        }
        if !errors.is_empty() {
            return Decision {
                action: Action::Deny,
                reason: format!(
                    "the policy could not decide ({}), so the call is denied",
                    errors.join("; ")
                ),
                rule: error_rule,
                modifiers,
                matched,
                errors,
            };
        }
        match best {
            Some(rule) => Decision {
                action: rule.action,
                rule: Some(rule.clone()),
                reason: rule.reason.clone(),
                modifiers,
                matched,
                errors,
            },
            None => Decision {
                action: self.default_action(),
                rule: None,
                reason: format!(
                    "no rule matched; the default action is {}",
                    self.default_action().as_str()
                ),
                modifiers,
                matched,
                errors,
            },
        }
    }
}

fn rule_matches(
    rule: &Rule,
    call: &Call<'_>,
    cel_context: &mut Option<cel::Context>,
) -> Result<bool, String> {
    if !method_matches(rule, call.method) {
        return Ok(false);
    }
    if !rule.tools.is_empty() {
        let hit = call.target.is_some_and(|t| rule.tools.matches(t))
            || call.exposed.is_some_and(|t| rule.tools.matches(t));
        if !hit {
            return Ok(false);
        }
    }
    if !rule.servers.is_empty()
        && !match call.server {
            Some(s) => rule.servers.matches(s),
            None => rule.servers.written.contains("*"),
        }
    {
        return Ok(false);
    }
    if !rule.identities.is_empty() && !call.identity.is_some_and(|i| rule.identities.matches(i)) {
        return Ok(false);
    }
    if !rule.roles.is_empty() && !rule.roles.iter().any(|r| call.roles.contains(r)) {
        return Ok(false);
    }
    if !rule.labels.is_empty()
        && !rule
            .labels
            .iter()
            .any(|p| call.labels.iter().any(|l| p.matches(l)))
    {
        return Ok(false);
    }
    if !rule.arguments.is_empty() {
        let Some(args) = call.arguments else {
            return Ok(false);
        };
        if !rule.arguments.iter().all(|p| argument_holds(p, args)) {
            return Ok(false);
        }
    }
    if let Some((_, program)) = &rule.condition {
        if cel_context.is_none() {
            *cel_context = Some(context_for(call)?);
        }
        let Some(context) = cel_context.as_ref() else {
            return Ok(false);
        };
        return match program.execute(context) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            // Neither message quotes the value or the CEL error: both can hold argument
            // values (secrets included), and decisions reach logs and the audit log.
            Ok(other) => Err(format!(
                "the condition gave a {}, not true or false",
                cel_type_name(&other)
            )),
            Err(_) => Err(
                "the condition could not be evaluated (a value of an unexpected type, or a missing field or function)".into(),
            ),
        };
    }
    Ok(true)
}

fn context_for(call: &Call<'_>) -> Result<cel::Context<'static>, String> {
    let mut c = cel::Context::default();
    fn bad(e: impl std::fmt::Display) -> String {
        format!("cannot build the condition's variables: {e}")
    }
    c.add_variable("method", call.method.to_string())
        .map_err(bad)?;
    c.add_variable("tool", call.target.unwrap_or_default().to_string())
        .map_err(bad)?;
    c.add_variable("server", call.server.unwrap_or_default().to_string())
        .map_err(bad)?;
    c.add_variable("identity", call.identity.unwrap_or_default().to_string())
        .map_err(bad)?;
    c.add_variable("roles", call.roles.to_vec()).map_err(bad)?;
    c.add_variable("labels", call.labels.iter().cloned().collect::<Vec<_>>())
        .map_err(bad)?;
    let args = call
        .arguments
        .cloned()
        .unwrap_or(serde_json::Value::Object(Default::default()));
    c.add_variable("args", cel::to_value(args).map_err(bad)?)
        .map_err(bad)?;
    c.add_variable("session", cel::to_value(call.session).map_err(bad)?)
        .map_err(bad)?;
    Ok(c)
}

fn argument_holds(pattern: &ArgumentPattern, args: &serde_json::Value) -> bool {
    let mut values = Vec::new();
    match &pattern.place {
        Place::Pointer(p) => {
            if let Some(v) = args.pointer(p) {
                values.push(as_text(v));
            }
        }
        Place::Key(glob) => collect_keys(args, glob, &mut values, 0),
    }
    values.iter().any(|v| {
        pattern.matches.as_ref().is_none_or(|r| r.is_match(v))
            && pattern.not_match.as_ref().is_none_or(|r| !r.is_match(v))
    })
}

fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn collect_keys(
    v: &serde_json::Value,
    glob: &globset::GlobMatcher,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                if glob.is_match(k) {
                    out.push(as_text(child));
                }
                collect_keys(child, glob, out, depth + 1);
            }
        }
        serde_json::Value::Array(items) => items
            .iter()
            .for_each(|i| collect_keys(i, glob, out, depth + 1)),
        _ => {}
    }
}
