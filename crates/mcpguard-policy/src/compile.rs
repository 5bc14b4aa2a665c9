//! From YAML text to a compiled [`Policy`]: parse with positions, then check every rule
//! (ids, globs, regexes, CEL, labels, OWASP ids, reachability), collecting all errors.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_saphyr::{Location, Spanned};

use crate::error::{PolicyError, suggest};
use crate::model::{Action, ArgumentPatternSpec, PolicyFile, RuleSpec};
use crate::{Policy, owasp};

/// Default rule priority.
pub const DEFAULT_PRIORITY: i64 = 100;

/// Labels every policy may name.
pub const BUILTIN_LABELS: &[&str] = &["secret", "pii", "untrusted", "tool_poisoning", "rug_pull"];

/// Variables a CEL condition can read.
pub const CEL_VARIABLES: &[&str] = &[
    "method", "tool", "server", "args", "labels", "identity", "roles", "session",
];

/// Methods a rule may name (others are accepted with a glob, or `*`).
const KNOWN_METHODS: &[&str] = &[
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/templates/list",
    "resources/subscribe",
    "prompts/get",
    "prompts/list",
    "completion/complete",
    "sampling/createMessage",
    "elicitation/create",
    "message/send",
    "message/stream",
    "tasks/get",
];

/// Strings matched by globs (`shell_*`) or, with `re:`, by a regex.
#[derive(Debug, Clone, Default)]
pub struct NameMatcher {
    globs: Option<GlobSet>,
    regexes: Vec<regex::Regex>,
    /// The patterns as written, for reachability checks.
    pub written: BTreeSet<String>,
}

impl NameMatcher {
    /// True when nothing was listed (the rule does not constrain this).
    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// True when `name` matches one pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.globs.as_ref().is_some_and(|g| g.is_match(name))
            || self.regexes.iter().any(|r| r.is_match(name))
    }
}

/// A place in the arguments.
#[derive(Debug, Clone)]
pub enum Place {
    /// A JSON pointer.
    Pointer(String),
    /// Every member whose key matches, at any depth.
    Key(globset::GlobMatcher),
}

/// A compiled argument pattern.
#[derive(Debug, Clone)]
pub struct ArgumentPattern {
    /// Where to look.
    pub place: Place,
    /// A value must match this.
    pub matches: Option<regex::Regex>,
    /// A value must fail this.
    pub not_match: Option<regex::Regex>,
}

/// A compiled taint-label pattern.
#[derive(Debug, Clone)]
pub enum LabelPattern {
    /// This label or any below it (`secret` covers `secret.aws_access_key`).
    Prefix(String),
    /// A glob over labels (`flow:*`).
    Glob(globset::GlobMatcher),
}

impl LabelPattern {
    /// True when `label` is covered.
    pub fn matches(&self, label: &str) -> bool {
        match self {
            LabelPattern::Prefix(p) => {
                label == p
                    || label.len() > p.len()
                        && label.starts_with(p.as_str())
                        && label.as_bytes()[p.len()] == b'.'
            }
            LabelPattern::Glob(g) => g.is_match(label),
        }
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// Title.
    pub name: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// What it does.
    pub action: Action,
    /// Lower runs first.
    pub priority: i64,
    /// Methods it applies to (`*` = any).
    pub methods: Vec<String>,
    /// Tool/prompt/URI patterns.
    pub tools: NameMatcher,
    /// Server patterns.
    pub servers: NameMatcher,
    /// Argument conditions (all must hold).
    pub arguments: Vec<ArgumentPattern>,
    /// Taint labels (any).
    pub labels: Vec<LabelPattern>,
    /// Labels as written.
    pub labels_written: BTreeSet<String>,
    /// Identity patterns.
    pub identities: NameMatcher,
    /// Roles (any).
    pub roles: Vec<String>,
    /// CEL condition.
    pub condition: Option<(String, Arc<cel::Program>)>,
    /// Tags.
    pub tags: Vec<String>,
    /// OWASP ASI ids.
    pub owasp_asi: Vec<String>,
    /// OWASP MCP ids.
    pub owasp_mcp: Vec<String>,
    /// What the agent is told.
    pub reason: String,
    /// How `redact` masks.
    pub redaction: mcpguard_detect::Redaction,
    /// Where it was written.
    pub file: String,
    /// Line of its id.
    pub line: u64,
}

pub(crate) fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

struct Checker<'f> {
    file: &'f str,
    errors: Vec<PolicyError>,
    labels: BTreeSet<String>,
}

impl Checker<'_> {
    fn err(&mut self, at: Location, message: impl Into<String>, hint: Option<String>) {
        let mut e = PolicyError::at(self.file, at, message);
        e.hint = hint;
        self.errors.push(e);
    }

    fn names(&mut self, field: &str, patterns: &[Spanned<String>]) -> NameMatcher {
        let mut set = GlobSetBuilder::new();
        let mut any_glob = false;
        let mut matcher = NameMatcher::default();
        for p in patterns {
            matcher.written.insert(p.value.clone());
            if let Some(re) = p.value.strip_prefix("re:") {
                match regex::Regex::new(re) {
                    Ok(r) => matcher.regexes.push(r),
                    Err(e) => self.err(
                        p.referenced,
                        format!(
                            "bad regex in `{field}`: `{re}`: {}",
                            one_line(&e.to_string())
                        ),
                        Some(
                            "regex syntax is Rust `regex`; escape special characters with `\\`"
                                .into(),
                        ),
                    ),
                }
            } else {
                match glob(&p.value) {
                    Ok(g) => {
                        set.add(g);
                        any_glob = true;
                    }
                    Err(e) => self.err(
                        p.referenced,
                        format!("bad glob in `{field}`: `{}`: {}", p.value, e.kind()),
                        Some(
                            "globs use `*`, `?`, `[abc]`, `{a,b}`; prefix `re:` for a regex".into(),
                        ),
                    ),
                }
            }
        }
        if any_glob {
            matcher.globs = set.build().ok();
        }
        matcher
    }

    fn regex(
        &mut self,
        at: Location,
        what: &str,
        pattern: &Option<String>,
    ) -> Option<regex::Regex> {
        let pattern = pattern.as_ref()?;
        match regex::Regex::new(pattern) {
            Ok(r) => Some(r),
            Err(e) => {
                self.err(
                    at,
                    format!(
                        "bad regex in `{what}`: `{pattern}`: {}",
                        one_line(&e.to_string())
                    ),
                    None,
                );
                None
            }
        }
    }

    fn argument(&mut self, spec: &Spanned<ArgumentPatternSpec>) -> Option<ArgumentPattern> {
        let at = spec.referenced;
        let s = &spec.value;
        let place = match (&s.path, &s.key) {
            (Some(path), None) => {
                if !path.is_empty() && !path.starts_with('/') {
                    self.err(
                        at,
                        format!("`path` must be a JSON pointer, got `{path}`"),
                        Some(format!("write `/{}`", path.replace('.', "/"))),
                    );
                    return None;
                }
                Place::Pointer(path.clone())
            }
            (None, Some(key)) => match glob(key) {
                Ok(g) => Place::Key(g.compile_matcher()),
                Err(e) => {
                    self.err(
                        at,
                        format!("bad glob in `key`: `{key}`: {}", e.kind()),
                        None,
                    );
                    return None;
                }
            },
            _ => {
                self.err(at, "an argument pattern needs exactly one of `path` (JSON pointer) or `key` (glob)", None);
                return None;
            }
        };
        if s.matches.is_none() && s.not_match.is_none() {
            self.err(
                at,
                "an argument pattern needs `match` or `not_match`",
                Some("use `match: \".*\"` to require the argument to be present".into()),
            );
            return None;
        }
        let matches = self.regex(at, "match", &s.matches);
        let not_match = self.regex(at, "not_match", &s.not_match);
        Some(ArgumentPattern {
            place,
            matches,
            not_match,
        })
    }

    fn label(&mut self, spec: &Spanned<String>) -> Option<LabelPattern> {
        let label = spec.value.as_str();
        if label.contains(['*', '?', '[', '{']) {
            let g = match glob(label) {
                Ok(g) => g.compile_matcher(),
                Err(e) => {
                    self.err(
                        spec.referenced,
                        format!("bad label glob `{label}`: {}", e.kind()),
                        None,
                    );
                    return None;
                }
            };
            if !label.starts_with("flow:") && !self.labels.iter().any(|l| g.is_match(l)) {
                self.err(spec.referenced, format!("label glob `{label}` matches no known taint label"), Some("labels are `secret`, `pii`, detector types like `secret.aws_access_key`, `untrusted`, `flow:<tool>`, or ones declared in `taint_labels`".into()));
            }
            return Some(LabelPattern::Glob(g));
        }
        if !label.starts_with("flow:") && !self.labels.contains(label) {
            let hint = suggest(label, self.labels.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| {
                    Some(
                        "declare custom labels under `taint_labels:` at the top of the file".into(),
                    )
                });
            self.err(
                spec.referenced,
                format!("unknown taint label `{label}`"),
                hint,
            );
        }
        Some(LabelPattern::Prefix(label.to_string()))
    }

    fn condition(&mut self, spec: &Spanned<String>) -> Option<(String, Arc<cel::Program>)> {
        match cel::Program::compile(&spec.value) {
            Ok(program) => {
                let bound = macro_variables(&spec.value);
                let unknown: Vec<String> = program
                    .references()
                    .variables()
                    .into_iter()
                    .filter(|v| !CEL_VARIABLES.contains(v) && !bound.iter().any(|b| b == v))
                    .map(str::to_string)
                    .collect();
                for v in unknown {
                    let hint = suggest(&v, CEL_VARIABLES.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!("conditions can read {}", CEL_VARIABLES.join(", "))
                        });
                    self.err(
                        spec.referenced,
                        format!("condition reads unknown variable `{v}`"),
                        Some(hint),
                    );
                }
                Some((spec.value.clone(), Arc::new(program)))
            }
            Err(e) => {
                self.err(
                    spec.referenced,
                    format!("condition is not valid CEL: {}", one_line(&e.to_string())),
                    None,
                );
                None
            }
        }
    }

    fn owasp(
        &mut self,
        ids: &Option<Spanned<crate::model::OneOrMany<String>>>,
        known: fn(&str) -> bool,
        fix: fn(&str) -> Option<String>,
        what: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(ids) = ids else { return out };
        for id in ids.value.as_slice() {
            if known(id) {
                out.push(id.clone());
            } else {
                let hint = fix(id).map(|f| format!("write `{f}`"));
                self.err(
                    ids.referenced,
                    format!("unknown {what} id `{id}`"),
                    hint.or_else(|| {
                        Some(format!(
                            "{what} ids are {}",
                            if what == "OWASP ASI" {
                                "ASI01..ASI10"
                            } else {
                                "MCP01:2025..MCP10:2025"
                            }
                        ))
                    }),
                );
            }
        }
        out
    }

    fn rule(&mut self, spec: &RuleSpec) -> Rule {
        let methods: Vec<String> = if spec.methods.is_empty() {
            vec!["tools/call".to_string()]
        } else {
            for m in &spec.methods {
                if m.value != "*"
                    && !m.value.contains('*')
                    && !KNOWN_METHODS.contains(&m.value.as_str())
                {
                    let hint = suggest(&m.value, KNOWN_METHODS.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"));
                    self.err(m.referenced, format!("unknown method `{}`", m.value), hint);
                }
            }
            spec.methods.iter().map(|m| m.value.clone()).collect()
        };
        if let Some(r) = &spec.redaction
            && spec.action.value != Action::Redact
        {
            self.err(
                r.referenced,
                "`redaction` only applies to rules with `action: redact`",
                None,
            );
        }
        let tools = self.names("tool_patterns", &spec.tool_patterns);
        let servers = self.names("servers", &spec.servers);
        let identities = self.names("identities", &spec.identities);
        let arguments = spec
            .argument_patterns
            .iter()
            .filter_map(|a| self.argument(a))
            .collect();
        let labels = spec
            .taint_labels
            .iter()
            .filter_map(|l| self.label(l))
            .collect();
        let condition = spec.condition.as_ref().and_then(|c| self.condition(c));
        let owasp_asi = self.owasp(&spec.owasp_asi, owasp::is_asi, owasp::fix_asi, "OWASP ASI");
        let owasp_mcp = self.owasp(&spec.owasp_mcp, owasp::is_mcp, owasp::fix_mcp, "OWASP MCP");
        let reason = spec
            .reason
            .clone()
            .or_else(|| spec.name.clone())
            .or_else(|| spec.description.clone())
            .unwrap_or_else(|| format!("rule `{}`", spec.id.value));
        Rule {
            id: spec.id.value.clone(),
            name: spec.name.clone(),
            description: spec.description.clone(),
            action: spec.action.value,
            priority: spec.priority.unwrap_or(DEFAULT_PRIORITY),
            methods,
            tools,
            servers,
            arguments,
            labels,
            labels_written: spec.taint_labels.iter().map(|l| l.value.clone()).collect(),
            identities,
            roles: spec.roles.iter().map(|r| r.value.clone()).collect(),
            condition,
            tags: spec.tags.clone(),
            owasp_asi,
            owasp_mcp,
            reason,
            redaction: spec.redaction.as_ref().map(|r| r.value).unwrap_or_default(),
            file: self.file.to_string(),
            line: spec.id.referenced.line(),
        }
    }
}

/// Names bound by comprehension macros (`labels.exists(l, ...)` binds `l`).
fn macro_variables(expression: &str) -> Vec<String> {
    static BINDER: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"\.(?:exists|exists_one|all|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,",
        )
        .ok()
    });
    BINDER
        .as_ref()
        .map(|re| {
            re.captures_iter(expression)
                .filter_map(|c| c.get(1))
                .map(|m| m.as_str().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses one file strictly (unknown fields, wrong types and duplicate keys are errors).
pub fn parse(file: &str, text: &str) -> Result<PolicyFile, PolicyError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    if text.trim().is_empty() {
        return Err(PolicyError {
            file: file.into(),
            line: 1,
            column: 1,
            message: "the policy file is empty".into(),
            hint: Some("start with `default_action: deny` and a `rules:` list".into()),
        });
    }
    serde_saphyr::from_str_with_options::<PolicyFile>(text, options).map_err(|e| {
        let location = e.location();
        let message = e.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .trim()
            .to_string();
        let hint = if message.contains("unknown field") {
            Some("see `policies/custom_template.yaml` for every field a rule takes".to_string())
        } else if message.contains("unknown variant") {
            Some(
                "actions are allow, deny, sandbox, require_approval, audit, warn, redact"
                    .to_string(),
            )
        } else {
            None
        };
        PolicyError {
            file: file.into(),
            line: location.map_or(0, |l| l.line()),
            column: location.map_or(0, |l| l.column()),
            message: one_line(&message),
            hint,
        }
    })
}

/// Compiles policy files (`(name, text)` pairs, in order) into one policy. The first file
/// that sets `default_action` decides it; otherwise `fallback_default`.
pub fn compile(
    files: &[(String, String)],
    fallback_default: Action,
) -> Result<Policy, Vec<PolicyError>> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for (name, text) in files {
        match parse(name, text) {
            Ok(p) => parsed.push((name.as_str(), p)),
            Err(e) => errors.push(e),
        }
    }
    let mut known_labels: BTreeSet<String> = BUILTIN_LABELS.iter().map(|s| s.to_string()).collect();
    known_labels.extend(
        mcpguard_detect::all_types()
            .into_iter()
            .map(|(_, kind)| kind.to_string()),
    );
    for (_, p) in &parsed {
        known_labels.extend(p.taint_labels.iter().map(|l| l.value.clone()));
    }
    let mut rules = Vec::new();
    let mut default_action = None;
    let mut seen_ids: HashMap<String, (String, u64)> = HashMap::new();
    for (name, file) in &parsed {
        let mut checker = Checker {
            file: name,
            errors: Vec::new(),
            labels: known_labels.clone(),
        };
        if let (None, Some(d)) = (&default_action, &file.default_action) {
            if !d.value.is_terminal() {
                checker.err(d.referenced, format!("`default_action` must be allow, deny, sandbox or require_approval, not `{}`", d.value.as_str()), None);
            }
            default_action = Some(d.value);
        }
        for spec in &file.rules {
            if let Some((other_file, other_line)) = seen_ids.get(&spec.id.value) {
                checker.err(
                    spec.id.referenced,
                    format!("duplicate rule id `{}`", spec.id.value),
                    Some(format!("first defined at {other_file}:{other_line}")),
                );
            } else {
                seen_ids.insert(
                    spec.id.value.clone(),
                    (name.to_string(), spec.id.referenced.line()),
                );
            }
            if spec.enabled == Some(false) {
                continue;
            }
            let rule = checker.rule(spec);
            rules.push(rule);
        }
        errors.extend(checker.errors);
    }
    // Lower priority number first; file order breaks ties.
    rules.sort_by_key(|r| r.priority);
    errors.extend(unreachable(&rules));
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut policy = Policy::new(
        rules.into_iter().map(Arc::new).collect(),
        default_action.unwrap_or(fallback_default),
    );
    policy.digest = Some(files_digest(files));
    Ok(policy)
}

/// `sha256:<hex>` of the files: each name and text, length-prefixed so that no two
/// different sets hash alike.
fn files_digest(files: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, text) in files {
        for part in [name.as_bytes(), text.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Terminal rules that can never decide: an earlier terminal rule (strictly lower
/// priority number) matches every call they match.
fn unreachable(rules: &[Rule]) -> Vec<PolicyError> {
    let mut errors = Vec::new();
    for (i, later) in rules.iter().enumerate() {
        if !later.action.is_terminal() {
            continue;
        }
        let shadow = rules[..i].iter().find(|earlier| {
            earlier.action.is_terminal()
                && earlier.priority < later.priority
                && covers(earlier, later)
        });
        if let Some(earlier) = shadow {
            errors.push(PolicyError {
                file: later.file.clone(),
                line: later.line,
                column: 0,
                message: format!("rule `{}` can never decide: rule `{}` ({}:{}, priority {}) matches every call it matches first", later.id, earlier.id, earlier.file, earlier.line, earlier.priority),
                hint: Some(format!("give `{}` a priority below {}, or narrow `{}`", later.id, earlier.priority, earlier.id)),
            });
        }
    }
    errors
}

/// True when every call `later` matches is matched by `earlier` (conservatively: each
/// constraint of `earlier` is absent or identical to `later`'s).
fn covers(earlier: &Rule, later: &Rule) -> bool {
    let methods = earlier.methods.iter().any(|m| m == "*")
        || later.methods.iter().all(|m| earlier.methods.contains(m));
    let same = |a: &NameMatcher, b: &NameMatcher| {
        a.is_empty() || a.written == b.written || a.written.contains("*")
    };
    methods
        && same(&earlier.tools, &later.tools)
        && same(&earlier.servers, &later.servers)
        && same(&earlier.identities, &later.identities)
        && (earlier.roles.is_empty() || earlier.roles == later.roles)
        && (earlier.labels_written.is_empty() || earlier.labels_written == later.labels_written)
        && earlier.arguments.is_empty()
        && earlier.condition.is_none()
}

/// Built-in labels plus every detector type.
pub fn known_labels() -> BTreeSet<String> {
    let mut labels: BTreeSet<String> = BUILTIN_LABELS.iter().map(|s| s.to_string()).collect();
    labels.extend(
        mcpguard_detect::all_types()
            .into_iter()
            .map(|(_, kind)| kind.to_string()),
    );
    labels
}
