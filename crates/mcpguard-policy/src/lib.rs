//! MCPGuard's policy engine: YAML rules (with `file:line:col` errors), compiled to globs,
//! regexes and CEL programs, evaluated to a [`Decision`] that names the rule, its OWASP
//! ids and a reason. Evaluation cannot fail: an error inside a rule forces `deny`.
//!
//! Semantics: rules run by `priority` (lower first). Among the terminal rules
//! (allow, deny, sandbox, require_approval) that match at the lowest matching priority,
//! the strictest wins (deny > require_approval > sandbox > allow). Modifiers (audit, warn,
//! redact) of every matching rule apply alongside. No terminal match → `default_action`.

mod compile;
mod error;
mod eval;
mod index;
mod model;
pub mod owasp;

use std::sync::Arc;

pub use compile::{
    ArgumentPattern, BUILTIN_LABELS, CEL_VARIABLES, DEFAULT_PRIORITY, LabelPattern, NameMatcher,
    Place, Rule, compile, known_labels, parse,
};
pub use error::{PolicyError, suggest};
pub use eval::{Call, Decision, Matched, SessionFacts};
pub use model::{Action, PolicyFile};

/// A compiled policy: rules in evaluation order and the default action.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Arc<Rule>>,
    default_action: Action,
    tools: index::NameIndex,
    servers: index::NameIndex,
    digest: Option<String>,
}

impl Policy {
    /// A policy of `rules` (in evaluation order).
    pub(crate) fn new(rules: Vec<Arc<Rule>>, default_action: Action) -> Policy {
        let tools = index::NameIndex::build(rules.iter().map(|r| &r.tools));
        let servers = index::NameIndex::build(rules.iter().map(|r| &r.servers));
        Policy {
            rules,
            default_action,
            tools,
            servers,
            digest: None,
        }
    }

    /// `sha256:<hex>` over the policy files it was compiled from (names and texts, in
    /// order), for execution envelopes; `None` for a policy built in code.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// A policy with no rules.
    pub fn empty(default_action: Action) -> Policy {
        Policy::new(Vec::new(), default_action)
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// The decision when no terminal rule matches.
    pub fn default_action(&self) -> Action {
        self.default_action
    }

    /// True when some rule is limited to certain servers (so a call whose server is
    /// unknown cannot be judged fully).
    pub fn scopes_servers(&self) -> bool {
        self.rules.iter().any(|r| !r.servers.is_empty())
    }

    /// True when some rule needs the call's arguments parsed.
    pub fn reads_arguments(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !r.arguments.is_empty() || r.condition.is_some())
    }

    /// True when a call of `method` to `target` on `server` would be denied whatever
    /// its arguments, labels or caller: used to hide tools from `tools/list`.
    pub fn always_denies(&self, method: &str, target: &str, exposed: &str, server: &str) -> bool {
        // Walk the priority groups in order. In each, the terminal rules that could apply
        // to this tool decide: an unconditional deny always wins; an unconditional or
        // conditional non-deny may let calls through; conditional denies alone may not
        // match, so the walk goes on to the next group.
        let applicable = self.rules.iter().filter(|rule| {
            rule.action.is_terminal()
                && eval::method_matches(rule, method)
                && (rule.tools.is_empty()
                    || rule.tools.matches(target)
                    || rule.tools.matches(exposed))
                && (rule.servers.is_empty() || rule.servers.matches(server))
        });
        let mut groups: Vec<(i64, Vec<&Arc<Rule>>)> = Vec::new();
        for rule in applicable {
            match groups.last_mut() {
                Some((priority, group)) if *priority == rule.priority => group.push(rule),
                _ => groups.push((rule.priority, vec![rule])),
            }
        }
        for (_, group) in groups {
            let unconditional = |rule: &Arc<Rule>| {
                rule.arguments.is_empty()
                    && rule.labels.is_empty()
                    && rule.identities.is_empty()
                    && rule.roles.is_empty()
                    && rule.condition.is_none()
            };
            if group
                .iter()
                .any(|r| unconditional(r) && r.action == Action::Deny)
            {
                return true;
            }
            if group.iter().any(|r| r.action != Action::Deny) {
                return false;
            }
        }
        self.default_action == Action::Deny
    }
}

#[cfg(test)]
mod tests;
