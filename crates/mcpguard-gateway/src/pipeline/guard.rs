//! The guard: secret/PII detection, taint tracking and policy, as one plugin.
//!
//! `pre_execution`: scan the call's arguments (findings become taint labels), look the
//! session's taint ledger up for values that flowed in from earlier outputs (`flow:<tool>`),
//! add `untrusted` when the session has read untrusted content, then ask the policy. A
//! denial (and a `sandbox` or `require_approval` the gateway cannot honour yet) answers the
//! call with an error that names the rule, its OWASP ids and the reason — never the value.
//! `post_execution`: scan the result and remember its sensitive values in the ledger.
//! `log`: one `decision` line per judged call (detector, location, digest; no values).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use mcpguard_detect::{Detector, Finding, Provenance, TaintFlow, TaintLedger};
use mcpguard_policy::{Action, Call, Decision, Policy, SessionFacts};
use mcpguard_protocol::{Message, RpcError, codes, mcp::method};
use parking_lot::Mutex;

use super::{CallContext, Flow, Plugin};
use crate::config::{DenialStyle, TaintConfig};

/// Methods the guard judges.
pub const GUARDED: &[&str] = &[
    method::TOOLS_CALL,
    method::PROMPTS_GET,
    method::COMPLETION_COMPLETE,
    method::RESOURCES_SUBSCRIBE,
    method::RESOURCES_READ,
];

/// Sessions whose taint state is kept at once (oldest idle dropped beyond this).
const MAX_TRACKED_SESSIONS: usize = 10_000;

/// Tools remembered per session for `session.tools`.
const MAX_TOOL_HISTORY: usize = 64;

/// What one session has shown so far.
#[derive(Debug)]
struct TaintState {
    ledger: TaintLedger,
    facts: SessionFacts,
    /// Last call seen, for idle expiry.
    last_seen: std::time::Instant,
    /// Start of the current one-minute window, and the calls in it and in the one before.
    window_start: std::time::Instant,
    window_calls: u64,
    previous_window_calls: u64,
    /// With shared state: the last ledger entry read from Redis.
    cursor: String,
}

/// A stateless agent's taint state is forgotten after this long without a call (its
/// "session" is over); handshake sessions keep theirs for as long as they live.
const STATELESS_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The rate window behind `session.recent_calls`.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl TaintState {
    fn new(capacity: usize) -> TaintState {
        let now = std::time::Instant::now();
        TaintState {
            ledger: TaintLedger::new(capacity),
            facts: SessionFacts::default(),
            last_seen: now,
            window_start: now,
            window_calls: 0,
            previous_window_calls: 0,
            cursor: String::new(),
        }
    }

    /// Counts a call; returns the calls in the last minute (a sliding estimate over two
    /// fixed windows).
    fn count_call(&mut self, now: std::time::Instant) -> u64 {
        let mut elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= RATE_WINDOW {
            // Move to the window `now` falls in; the one before it counts only if it is
            // the window that just ended.
            let windows = (elapsed.as_secs_f64() / RATE_WINDOW.as_secs_f64()).floor() as u32;
            self.previous_window_calls = if windows == 1 { self.window_calls } else { 0 };
            self.window_calls = 0;
            self.window_start += RATE_WINDOW * windows;
            elapsed = now.saturating_duration_since(self.window_start);
        }
        self.window_calls += 1;
        self.last_seen = now;
        let left = 1.0 - elapsed.as_secs_f64() / RATE_WINDOW.as_secs_f64();
        self.window_calls + (self.previous_window_calls as f64 * left) as u64
    }
}

/// The params member naming what a guarded method acts on: the URI for resources, the
/// name for tools and prompts.
fn name_member(method: &str) -> &'static str {
    match method {
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE => "uri",
        _ => "name",
    }
}

/// The guard's verdict on one call, kept for `post_execution` and `log`.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The policy's decision.
    pub decision: Decision,
    /// Labels the call carried.
    pub labels: BTreeSet<String>,
    /// Findings in the arguments.
    pub findings: Vec<Finding>,
    /// Values that flowed in from earlier outputs.
    pub flows: Vec<TaintFlow>,
    /// Findings in the result.
    pub result_findings: Vec<Finding>,
    /// Why the scan could not finish, when it could not.
    pub scan_error: Option<String>,
    /// What the user said to an approval question, when one was asked.
    pub approval: Option<String>,
    /// `sha256:<hex>` of the policy files that decided.
    pub policy_digest: Option<String>,
}

/// The guard plugin. Cheap to share; the policy can be swapped while running.
pub struct Guard {
    policy: Arc<ArcSwap<Policy>>,
    detector: Arc<Detector>,
    config: TaintConfig,
    untrusted: globset::GlobSet,
    denial: DenialStyle,
    states: Mutex<HashMap<String, Arc<Mutex<TaintState>>>>,
    /// Pinned tool definitions: `server/tool` → digest of the first definition seen.
    pins: Mutex<HashMap<String, [u8; 32]>>,
    /// Approval questions and tokens.
    approvals: super::approval::Approvals,
    /// Labels earned by tool definitions (`tool_poisoning`, `rug_pull`), by exposed name.
    tool_flags: Mutex<HashMap<String, BTreeSet<String>>>,
    /// Where calls the policy sends to a sandbox can run; none: they are denied.
    sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
    /// Taint state and pins shared with other replicas, when configured.
    shared: Option<Arc<crate::shared::SharedState>>,
}

impl Guard {
    /// A guard over `policy` (swap it to reload) with `detector`.
    pub fn new(
        policy: Arc<ArcSwap<Policy>>,
        detector: Arc<Detector>,
        config: TaintConfig,
        denial: DenialStyle,
    ) -> Result<Guard, String> {
        let mut set = globset::GlobSetBuilder::new();
        for pattern in &config.untrusted_tools {
            let glob = globset::Glob::new(pattern).map_err(|e| {
                format!("taint.untrusted_tools: bad glob `{pattern}`: {}", e.kind())
            })?;
            set.add(glob);
        }
        let untrusted = set
            .build()
            .map_err(|e| format!("taint.untrusted_tools: {e}"))?;
        Ok(Guard {
            policy,
            detector,
            config,
            untrusted,
            denial,
            states: Mutex::new(HashMap::new()),
            pins: Mutex::new(HashMap::new()),
            tool_flags: Mutex::new(HashMap::new()),
            approvals: super::approval::Approvals::new(),
            sandboxes: None,
            shared: None,
        })
    }

    /// Lets calls the policy sends to a sandbox run in `hub` (the sandbox plugin runs
    /// them); without it they are denied.
    pub fn with_sandboxes(mut self, hub: Arc<crate::sandboxing::SandboxHub>) -> Guard {
        self.sandboxes = Some(hub);
        self
    }

    /// Shares taint state and tool pins with other replicas through `shared`.
    pub fn with_shared(mut self, shared: Option<Arc<crate::shared::SharedState>>) -> Guard {
        self.shared = shared;
        self
    }

    /// Brings the caller's taint state up to date from the shared state and counts this
    /// call there.
    async fn sync_shared(
        &self,
        shared: &crate::shared::SharedState,
        ctx: &CallContext,
        state: &Mutex<TaintState>,
        tool: Option<&str>,
    ) -> Result<crate::shared::TaintSync, String> {
        let cursor = state.lock().cursor.clone();
        let mut sync = shared.sync_taint(&caller_key(ctx), tool, &cursor).await?;
        let mut st = state.lock();
        // (The local clock of the call rate is not used with shared state; this keeps
        // idle expiry and eviction of local copies working.)
        st.last_seen = std::time::Instant::now();
        let refused = st.ledger.import(std::mem::take(&mut sync.entries)) + sync.unreadable;
        if refused > 0 {
            // An entry that cannot be followed is taint that could be lost: refuse.
            return Err(format!(
                "{refused} shared taint ledger entries are unreadable"
            ));
        }
        st.cursor = sync.cursor.clone();
        st.facts.calls = sync.calls;
        st.facts.untrusted |= sync.untrusted;
        st.facts.tools = sync.tools.clone();
        Ok(sync)
    }

    /// Shares what a call's output taught; an answer to send instead of the result when
    /// the shared state cannot take it (the taint would be lost to other replicas).
    async fn share_taint(
        &self,
        ctx: &CallContext,
        untrusted: bool,
        entries: &[mcpguard_detect::SharedEntry],
    ) -> Option<Flow> {
        let shared = self.shared.as_ref()?;
        if !untrusted && entries.is_empty() {
            return None;
        }
        let recorded = shared
            .record_taint(
                &caller_key(ctx),
                untrusted,
                entries,
                self.config.ledger_capacity,
            )
            .await;
        let error = recorded.err()?;
        tracing::error!(target: "mcpguard::decisions", reason = %error, "result withheld: its taint could not be shared with the other replicas");
        let error = RpcError::new(
            codes::DENIED,
            "the result was withheld: it holds sensitive or untrusted content and the shared taint state is unavailable; denied (fail closed)",
        );
        Some(Flow::Respond(Message::error_response(
            ctx.request.id(),
            &error,
        )))
    }

    /// Why a call to `tool` that the policy sends to a sandbox cannot run in one (`None`:
    /// it can).
    fn sandbox_refusal(&self, tool: Option<&str>) -> Option<String> {
        let Some(hub) = &self.sandboxes else {
            return Some("no sandbox is configured (sandbox backend unavailable)".into());
        };
        let tool = tool.unwrap_or_default();
        if !hub.runs_code(tool) {
            return Some(format!(
                "`{tool}` is not a tool whose code the gateway can run in a sandbox (list it under `sandbox.code_tools`)"
            ));
        }
        hub.backend(None).err()
    }

    /// The taint state of the caller's session. Agents of the stateless revision have no
    /// session: their state is keyed by address (see [`caller_key`]), so taint still
    /// follows a value from one call to the next (erring towards more taint, never less).
    fn state(&self, ctx: &CallContext) -> Arc<Mutex<TaintState>> {
        let key = caller_key(ctx);
        let now = std::time::Instant::now();
        let mut states = self.states.lock();
        if states.len() >= MAX_TRACKED_SESSIONS && !states.contains_key(&key) {
            // Forget the states idle longest (never one a call is using right now).
            let mut idle: Vec<(std::time::Instant, String)> = states
                .iter()
                .filter(|(_, s)| Arc::strong_count(s) == 1)
                .map(|(k, s)| (s.lock().last_seen, k.clone()))
                .collect();
            idle.sort();
            for (_, k) in idle.into_iter().take(MAX_TRACKED_SESSIONS / 10) {
                states.remove(&k);
            }
        }
        let stale = key.starts_with("stateless:")
            && states.get(&key).is_some_and(|s| {
                now.saturating_duration_since(s.lock().last_seen) > STATELESS_IDLE
            });
        if stale {
            states.remove(&key);
        }
        states
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(TaintState::new(self.config.ledger_capacity))))
            .clone()
    }

    /// The JSON a call is judged on: `arguments` of a tool call or prompt, the params of a
    /// resource read.
    fn judged_json(request: &Message) -> Option<String> {
        // Everything the upstream will receive, except the protocol's own envelope in
        // `_meta` (version, client info and capabilities, progress token): anything else
        // there could carry data too.
        let params = request.params()?;
        let Some(meta) = mcpguard_protocol::json::member(params, "_meta") else {
            return Some(params.to_string());
        };
        let mut meta = meta.to_string();
        for key in [
            "progressToken",
            "io.modelcontextprotocol/protocolVersion",
            "io.modelcontextprotocol/clientInfo",
            "io.modelcontextprotocol/clientCapabilities",
        ] {
            meta = mcpguard_protocol::json::remove_member(&meta, key);
        }
        Some(mcpguard_protocol::json::set_member(params, "_meta", &meta))
    }

    fn denial(
        &self,
        ctx: &CallContext,
        decision: &Decision,
        labels: &BTreeSet<String>,
        refusal: Option<&str>,
    ) -> Message {
        let message = match (refusal, decision.action) {
            (Some(why), Action::Sandbox) => denial_text(decision).replacen(
                SANDBOX_UNAVAILABLE,
                &format!("needs a sandbox, and {why}"),
                1,
            ),
            (Some(why), _) => format!("call was not approved ({why}): {}", denial_text(decision)),
            (None, _) => denial_text(decision),
        };
        let id = ctx.request.id();
        if self.denial == DenialStyle::ToolResult && ctx.method() == method::TOOLS_CALL {
            let result = serde_json::json!({
                "content": [{"type": "text", "text": message}],
                "isError": true,
            });
            let reply = Message::response(id.unwrap_or("null"), &result.to_string());
            return crate::bridge::mark_complete(reply, method::TOOLS_CALL);
        }
        let data = serde_json::json!({
            "rule": decision.rule_id(),
            "action": decision.action.as_str(),
            "owasp_asi": decision.owasp_asi(),
            "owasp_mcp": decision.rule.as_ref().map(|r| r.owasp_mcp.clone()).unwrap_or_default(),
            "labels": labels,
        });
        let mut error = RpcError::new(codes::DENIED, message);
        error.data = Some(data);
        Message::error_response(id, &error)
    }
}

/// The findings that `redact` modifiers cover, with how to mask each: a rule without
/// label conditions covers every finding, otherwise those whose label or type it names.
fn redactions<'f>(
    modifiers: &[Arc<mcpguard_policy::Rule>],
    findings: &'f [Finding],
) -> Vec<(&'f Finding, mcpguard_detect::Redaction)> {
    let rules: Vec<&Arc<mcpguard_policy::Rule>> = modifiers
        .iter()
        .filter(|r| r.action == Action::Redact)
        .collect();
    findings
        .iter()
        .filter_map(|f| {
            rules
                .iter()
                .find(|r| {
                    r.labels.is_empty()
                        || r.labels
                            .iter()
                            .any(|p| p.matches(f.label.as_str()) || p.matches(f.kind))
                })
                .map(|r| (f, r.redaction))
        })
        .collect()
}

/// The policy's view of the call in `ctx`: its method, its target (the upstream-side
/// name when the gateway resolved it, else `exposed`), server, arguments and labels.
/// Identity and roles are the authenticated caller's (empty when authentication is off).
fn call_of<'a>(
    ctx: &'a CallContext,
    exposed: Option<&'a str>,
    arguments: Option<&'a serde_json::Value>,
    labels: &'a BTreeSet<String>,
    session: &'a SessionFacts,
) -> Call<'a> {
    Call {
        method: ctx.method(),
        target: ctx.target.as_ref().map(|t| t.name.as_str()).or(exposed),
        exposed,
        server: ctx.target.as_ref().map(|t| t.server.as_str()),
        arguments,
        labels,
        identity: ctx.caller.identity.as_ref().map(|i| i.name.as_str()),
        roles: ctx
            .caller
            .identity
            .as_ref()
            .map_or(&[][..], |i| i.roles.as_slice()),
        session,
    }
}

/// Whose call this is: the session, or for a stateless agent its address — not its
/// `clientInfo`, which is the agent's own claim and must not buy a clean ledger or
/// another agent's approval.
fn caller_key(ctx: &CallContext) -> String {
    match ctx.caller.session_id() {
        Some(id) => crate::shared::session_caller(id),
        None => format!(
            "stateless:{}",
            ctx.caller
                .remote
                .map(|r| r.ip().to_string())
                .unwrap_or_default()
        ),
    }
}

/// Where an approval stands.
enum Approval {
    Approved,
    Refused(String),
    /// The agent cannot be asked.
    Cannot,
    /// The stateless agent is being asked: this `input_required` answer carries the question.
    Asking(Message),
}

/// How long the gateway waits for a handshake-era agent's user to answer.
const APPROVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

impl Guard {
    async fn ask(
        &self,
        ctx: &CallContext,
        decision: &Decision,
        retry: Option<super::approval::Answer>,
    ) -> Approval {
        use super::approval::{Answer, Approvals};
        match retry {
            Some(Answer::Approved) => return Approval::Approved,
            Some(Answer::Refused(why)) => return Approval::Refused(why),
            None => {}
        }
        if !ctx.caller.has_capability("elicitation") {
            return Approval::Cannot;
        }
        let name = ctx
            .request
            .param_str("name")
            .or_else(|| ctx.request.param_str("uri"))
            .unwrap_or_default()
            .into_owned();
        let server = ctx
            .target
            .as_ref()
            .map(|t| t.server.as_str())
            .unwrap_or("?");
        let asi = decision.owasp_asi().join(", ");
        let message = format!(
            "MCPGuard: allow `{name}` on `{server}`? Policy rule `{}`{}: {}",
            decision.rule_id(),
            if asi.is_empty() {
                String::new()
            } else {
                format!(" ({asi})")
            },
            decision.reason
        );
        if ctx.caller.era == mcpguard_protocol::mcp::Era::Stateless {
            return Approval::Asking(self.approvals.input_required(
                &ctx.request,
                &caller_key(ctx),
                &message,
            ));
        }
        let question = Message::request(
            "0",
            "elicitation/create",
            Some(&Approvals::question(&message)),
        );
        match tokio::time::timeout(APPROVAL_WAIT, ctx.relay.request(question)).await {
            Err(_) => Approval::Refused("nobody answered the approval question in time".into()),
            Ok(reply) => match reply.result() {
                Some(result) => match super::approval::read_answer(result) {
                    Answer::Approved => Approval::Approved,
                    Answer::Refused(why) => Approval::Refused(why),
                },
                None => Approval::Refused("the agent could not ask its user".into()),
            },
        }
    }
}

#[derive(serde::Deserialize)]
struct ToolsPage {
    tools: Vec<Box<serde_json::value::RawValue>>,
}

impl Guard {
    /// The modifier rules that apply to a result holding `findings`: the policy asked
    /// again about this call, with the result's labels.
    fn result_modifiers(
        &self,
        ctx: &CallContext,
        findings: &[Finding],
    ) -> Vec<Arc<mcpguard_policy::Rule>> {
        let mut labels = labels_of(findings, &[]);
        let exposed = ctx
            .request
            .param_str("name")
            .or_else(|| ctx.request.param_str("uri"));
        // The session as it stands after this call, and the call's own arguments and
        // labels, so that result-time rules see what call-time rules saw.
        let facts = {
            let st = self.state(ctx);
            let st = st.lock();
            SessionFacts {
                sensitive: !st.ledger.is_empty(),
                ..st.facts.clone()
            }
        };
        if let Some(v) = ctx.extensions.get::<Verdict>() {
            labels.extend(v.labels.iter().cloned());
        }
        let arguments: Option<serde_json::Value> = ctx
            .request
            .param("arguments")
            .and_then(|a| serde_json::from_str(a).ok());
        let call = call_of(ctx, exposed.as_deref(), arguments.as_ref(), &labels, &facts);
        self.policy.load().evaluate(&call).modifiers
    }

    /// The digest each tool was first pinned with (by this replica or, with shared
    /// state, by any replica); pins what is new.
    async fn pinned(&self, digests: &[(String, [u8; 32])]) -> Result<Vec<[u8; 32]>, String> {
        if let Some(shared) = &self.shared {
            return shared.pin_tools(digests).await;
        }
        let mut pins = self.pins.lock();
        Ok(digests
            .iter()
            .map(|(tool, digest)| *pins.entry(tool.clone()).or_insert(*digest))
            .collect())
    }

    /// `json` with the findings that `modifiers` redact masked; `None` when nothing is.
    fn redact(
        &self,
        json: &str,
        modifiers: &[Arc<mcpguard_policy::Rule>],
    ) -> Result<Option<String>, mcpguard_detect::ScanError> {
        let occurrences = self.detector.scan_json_occurrences(json)?;
        let pairs = redactions(modifiers, &occurrences);
        if pairs.is_empty() {
            return Ok(None);
        }
        let masked = mcpguard_detect::redact_json(json, &pairs)?;
        // Whatever a mask could not reach (a key, a number, pieces split across an
        // array) must not slip through: look again, and refuse if anything remains.
        let left = self.detector.scan_json_occurrences(&masked)?;
        if let Some((finding, _)) = redactions(modifiers, &left).first() {
            return Err(mcpguard_detect::ScanError::Unredactable {
                kind: finding.kind,
                location: finding.location.clone(),
            });
        }
        Ok(Some(masked))
    }

    /// Pins each listed tool's definition, flags poisoned or changed ones, and removes
    /// from the list the tools the policy would deny whatever the arguments.
    async fn review_tools(&self, ctx: &mut CallContext) -> Flow {
        let Some(result) = ctx
            .response
            .as_ref()
            .and_then(|r| r.result())
            .map(str::to_string)
        else {
            return Flow::Continue;
        };
        let Ok(page) = serde_json::from_str::<ToolsPage>(&result) else {
            return Flow::Continue;
        };
        let router = ctx.extensions.get::<Arc<crate::router::Router>>().cloned();
        let policy = self.policy.load();
        let no_args = SessionFacts::default();
        let mut kept: Vec<&str> = Vec::with_capacity(page.tools.len());
        let mut hidden = Vec::new();
        let mut reviewed = Vec::with_capacity(page.tools.len());
        for raw in &page.tools {
            let Ok(tool) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
                reviewed.push((raw, None));
                continue;
            };
            let exposed = tool
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            let target = router.as_ref().and_then(|r| r.tool_target(&exposed));
            let (server, name) =
                target.map_or((String::new(), exposed.clone()), |t| (t.server, t.name));
            let report = mcpguard_detect::inspect_tool(&tool);
            reviewed.push((raw, Some((exposed, server, name, report))));
        }
        let digests: Vec<(String, [u8; 32])> = reviewed
            .iter()
            .filter_map(|(_, tool)| tool.as_ref())
            .map(|(_, server, name, report)| (format!("{server}/{name}"), report.digest))
            .collect();
        let pinned = match self.pinned(&digests).await {
            Ok(pinned) => pinned,
            Err(e) => {
                tracing::error!(target: "mcpguard::decisions", reason = %e, "the tool list cannot be checked against the shared tool pins");
                let error = RpcError::new(
                    codes::DENIED,
                    "the tool list cannot be checked against the shared tool pins; withheld (fail closed)",
                );
                return Flow::Respond(Message::error_response(ctx.request.id(), &error));
            }
        };
        let mut pinned = pinned.into_iter();
        for (raw, tool) in reviewed {
            let Some((exposed, server, name, report)) = tool else {
                kept.push(raw.get());
                continue;
            };
            let Some(pin) = pinned.next() else {
                hidden.push(exposed);
                continue;
            };
            let mut flags = BTreeSet::new();
            if pin != report.digest {
                flags.insert("rug_pull".to_string());
            }
            if !report.indicators.is_empty() {
                flags.insert("tool_poisoning".to_string());
            }
            if !flags.is_empty()
                && let Some(shared) = &self.shared
            {
                match shared.flag_tool(&exposed, &flags).await {
                    Ok(all) => flags = all,
                    Err(e) => {
                        tracing::error!(target: "mcpguard::decisions", tool = exposed.as_str(), reason = %e, "tool flags could not be shared; the tool is hidden (fail closed)");
                        hidden.push(exposed);
                        continue;
                    }
                }
            }
            if !flags.is_empty() {
                let mut known = self.tool_flags.lock();
                let entry = known.entry(exposed.clone()).or_default();
                if !flags.is_subset(entry) {
                    let signs: Vec<String> = report
                        .indicators
                        .iter()
                        .map(|i| format!("{}@{}", i.id, i.location))
                        .collect();
                    tracing::warn!(
                        target: "mcpguard::decisions",
                        tool = exposed.as_str(),
                        server = server.as_str(),
                        labels = flags.iter().cloned().collect::<Vec<_>>().join(",").as_str(),
                        indicators = signs.join(" ").as_str(),
                        digest = report.digest.iter().map(|b| format!("{b:02x}")).collect::<String>().as_str(),
                        "tool definition flagged"
                    );
                }
                entry.extend(flags.iter().cloned());
                flags = entry.clone();
            }
            let denied = if flags.is_empty() {
                policy.always_denies(method::TOOLS_CALL, &name, &exposed, &server)
            } else {
                let decision = policy.evaluate(&Call {
                    method: method::TOOLS_CALL,
                    target: Some(&name),
                    exposed: Some(&exposed),
                    server: Some(&server),
                    arguments: None,
                    labels: &flags,
                    identity: None,
                    roles: &[],
                    session: &no_args,
                });
                decision.action == Action::Deny
            };
            if denied {
                hidden.push(exposed);
            } else {
                kept.push(raw.get());
            }
        }
        if hidden.is_empty() {
            return Flow::Continue;
        }
        tracing::info!(target: "mcpguard::decisions", hidden = hidden.join(",").as_str(), "tools hidden from the list: the policy denies them");
        let tools = format!("[{}]", kept.join(","));
        let new_result = mcpguard_protocol::json::set_member(&result, "tools", &tools);
        Flow::Respond(Message::response(
            ctx.request.id().unwrap_or("null"),
            &new_result,
        ))
    }
}

/// How a denial for want of a sandbox reads, unless the guard knows more.
const SANDBOX_UNAVAILABLE: &str =
    "needs a sandbox, and no sandbox backend is available (sandbox backend unavailable)";

/// The one-line text a denied agent sees.
pub fn denial_text(decision: &Decision) -> String {
    let asi: Vec<String> = decision
        .owasp_asi()
        .iter()
        .map(|id| match mcpguard_policy::owasp::asi_title(id) {
            Some(title) => format!("{id} {title}"),
            None => id.clone(),
        })
        .collect();
    let what = match decision.action {
        Action::Sandbox => SANDBOX_UNAVAILABLE,
        Action::RequireApproval => {
            "needs the user's approval, which the agent cannot give (it did not declare the elicitation capability)"
        }
        _ => "was denied",
    };
    let rule = match &decision.rule {
        Some(rule) => format!("by policy rule `{}`", rule.id),
        None => "by the default action".to_string(),
    };
    if asi.is_empty() {
        format!("call {what} {rule}: {}", decision.reason)
    } else {
        format!(
            "call {what} {rule} ({}): {}",
            asi.join(", "),
            decision.reason
        )
    }
}

/// The taint labels of a call: each finding's label and type, and for each flow also
/// `flow:<source tool>`.
pub fn labels_of(findings: &[Finding], flows: &[TaintFlow]) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for f in findings {
        labels.insert(f.label.as_str().to_string());
        labels.insert(f.kind.to_string());
    }
    for f in flows {
        labels.insert(f.label.as_str().to_string());
        labels.insert(f.kind.to_string());
        labels.insert(format!("flow:{}", f.source.tool));
    }
    labels
}

#[async_trait]
impl Plugin for Guard {
    fn name(&self) -> &'static str {
        "guard"
    }

    fn priority(&self) -> i32 {
        1000
    }

    async fn pre_execution(&self, ctx: &mut CallContext) -> Flow {
        let Some(method) = GUARDED.iter().copied().find(|m| *m == ctx.method()) else {
            return Flow::Continue;
        };
        if ctx.request.kind() != mcpguard_protocol::Kind::Request {
            return Flow::Continue;
        }
        // A stateless agent's retry answering the gateway's approval question: judge and
        // forward the call without the approval members.
        let retry =
            self.approvals
                .retry(&ctx.request, &caller_key(ctx))
                .map(|(stripped, answer)| {
                    ctx.request = stripped;
                    answer
                });
        let json = Self::judged_json(&ctx.request);
        let state = self.state(ctx);
        let (mut findings, mut flows, mut scan_error) = (Vec::new(), Vec::new(), None);
        let synced = match &self.shared {
            None => None,
            Some(shared) => {
                let tool = ctx.request.param_str(name_member(method));
                match self.sync_shared(shared, ctx, &state, tool.as_deref()).await {
                    Ok(sync) => Some(sync),
                    Err(e) => {
                        tracing::error!(target: "mcpguard::decisions", reason = %e, "the shared taint state is unavailable");
                        scan_error = Some("the shared taint state is unavailable".to_string());
                        None
                    }
                }
            }
        };
        if self.config.enabled
            && let Some(json) = &json
        {
            match self.detector.scan_json(json) {
                Ok(f) => findings = f,
                Err(e) => scan_error = Some(format!("the arguments could not be scanned: {e}")),
            }
            // Held for the search only; calls of one session rarely overlap.
            let checked = {
                let st = state.lock();
                if st.ledger.is_empty() {
                    Ok(Vec::new())
                } else {
                    st.ledger.flows(&self.detector, json)
                }
            };
            match checked {
                Ok(f) => flows = f,
                Err(e) => {
                    scan_error.get_or_insert(format!(
                        "the arguments could not be checked for tainted values: {e}"
                    ));
                }
            }
        }
        let mut labels = labels_of(&findings, &flows);
        if method == method::TOOLS_CALL
            && let Some(name) = ctx.request.param_str("name")
            && let Some(flags) = self.tool_flags.lock().get(name.as_ref())
        {
            labels.extend(flags.iter().cloned());
        }
        if let Some(sync) = &synced {
            labels.extend(sync.tool_flags.iter().cloned());
        }
        let facts = {
            let mut st = state.lock();
            if st.facts.untrusted {
                labels.insert("untrusted".into());
            }
            let recent_calls = match &synced {
                Some(sync) => sync.recent_calls,
                None => st.count_call(std::time::Instant::now()),
            };
            SessionFacts {
                sensitive: !st.ledger.is_empty(),
                recent_calls,
                ..st.facts.clone()
            }
        };
        let policy = self.policy.load();
        let exposed = ctx.request.param_str(name_member(method));
        let arguments: Option<serde_json::Value> = if policy.reads_arguments() {
            json.as_deref().and_then(|j| serde_json::from_str(j).ok())
        } else {
            None
        };
        // Rules scoped to servers cannot judge a call whose upstream the gateway cannot
        // tell (a resource URI no listing names is tried on every upstream): refuse it.
        if scan_error.is_none()
            && ctx.target.is_none()
            && method != method::COMPLETION_COMPLETE
            && policy.scopes_servers()
        {
            scan_error = Some(format!(
                "the gateway cannot tell which upstream serves this `{method}`, and the policy has rules for particular servers"
            ));
        }
        let decision = match &scan_error {
            Some(e) => Decision {
                action: Action::Deny,
                rule: None,
                reason: format!("{e}; denied because the gateway could not judge it (fail closed)"),
                modifiers: Vec::new(),
                matched: Vec::new(),
                errors: vec![e.clone()],
            },
            None => policy.evaluate(&call_of(
                ctx,
                exposed.as_deref(),
                arguments.as_ref(),
                &labels,
                &facts,
            )),
        };
        {
            let mut st = state.lock();
            st.facts.calls += 1;
            if let Some(name) = exposed.as_deref() {
                if st.facts.tools.len() == MAX_TOOL_HISTORY {
                    st.facts.tools.remove(0);
                }
                st.facts.tools.push(name.to_string());
            }
        }
        let (answer, approval) = match decision.action {
            Action::Allow => (None, None),
            Action::RequireApproval => match self.ask(ctx, &decision, retry).await {
                Approval::Approved => (None, Some("approved by the user".to_string())),
                Approval::Refused(why) => {
                    let denial = self.denial(ctx, &decision, &labels, Some(&why));
                    (Some(denial), Some(why))
                }
                Approval::Cannot => (Some(self.denial(ctx, &decision, &labels, None)), None),
                Approval::Asking(question) => (Some(question), Some("asked the user".to_string())),
            },
            Action::Sandbox => match self.sandbox_refusal(exposed.as_deref()) {
                None => (None, None),
                Some(why) => (Some(self.denial(ctx, &decision, &labels, Some(&why))), None),
            },
            _ => (Some(self.denial(ctx, &decision, &labels, None)), None),
        };
        if answer.is_none()
            && decision.has_modifier(Action::Redact)
            && let Some(args) = ctx.request.param("arguments").map(str::to_string)
        {
            match self.redact(&args, &decision.modifiers) {
                Ok(Some(masked)) => {
                    let params = mcpguard_protocol::json::set_member(
                        ctx.request.params().unwrap_or("{}"),
                        "arguments",
                        &masked,
                    );
                    ctx.request = ctx.request.with_params(&params);
                }
                Ok(None) => {}
                Err(e) => {
                    let error = RpcError::new(
                        codes::DENIED,
                        format!(
                            "the arguments could not be redacted ({e}), so the call is denied (fail closed)"
                        ),
                    );
                    return Flow::Respond(Message::error_response(ctx.request.id(), &error));
                }
            }
        }
        ctx.extensions.insert(Verdict {
            decision,
            labels,
            findings,
            flows,
            result_findings: Vec::new(),
            scan_error,
            approval,
            policy_digest: policy.digest().map(str::to_string),
        });
        match answer {
            Some(answer) => Flow::Respond(answer),
            None => Flow::Continue,
        }
    }

    async fn post_execution(&self, ctx: &mut CallContext) -> Flow {
        if ctx.method() == method::TOOLS_LIST {
            return self.review_tools(ctx).await;
        }
        if !GUARDED.contains(&ctx.method()) || ctx.extensions.get::<Verdict>().is_none() {
            return Flow::Continue;
        }
        if ctx.answered_in.is_some_and(|(_, plugin)| plugin == "guard") {
            return Flow::Continue;
        }
        let state = self.state(ctx);
        let exposed = ctx
            .request
            .param_str("name")
            .unwrap_or_default()
            .into_owned();
        let tool = ctx
            .target
            .as_ref()
            .map_or(exposed.clone(), |t| t.name.clone());
        let untrusted = self.untrusted.is_match(&tool) || self.untrusted.is_match(&exposed);
        if untrusted {
            state.lock().facts.untrusted = true;
        }
        if !self.config.enabled {
            return self
                .share_taint(ctx, untrusted, &[])
                .await
                .unwrap_or(Flow::Continue);
        }
        // Error answers are scanned too: an upstream can leak through `message`/`data`.
        let Some((result, is_error)) = ctx.response.as_ref().and_then(|r| {
            r.result()
                .map(|b| (b.to_string(), false))
                .or_else(|| r.error().map(|b| (b.to_string(), true)))
        }) else {
            return Flow::Continue;
        };
        match self.detector.scan_json(&result) {
            Ok(findings) => {
                if !findings.is_empty() {
                    let source = Provenance {
                        tool,
                        server: ctx
                            .target
                            .as_ref()
                            .map(|t| t.server.clone())
                            .unwrap_or_default(),
                        call: ctx.request.id().unwrap_or_default().to_string(),
                    };
                    if let Some(withheld) = self
                        .share_taint(ctx, untrusted, &TaintLedger::shareable(&findings, &source))
                        .await
                    {
                        return withheld;
                    }
                    state.lock().ledger.record(&findings, source);
                } else if let Some(withheld) = self.share_taint(ctx, untrusted, &[]).await {
                    return withheld;
                }
                let redacted = if findings.is_empty() {
                    Ok(None)
                } else {
                    let modifiers = self.result_modifiers(ctx, &findings);
                    if modifiers.iter().any(|r| r.action == Action::Redact) {
                        self.redact(&result, &modifiers)
                    } else {
                        Ok(None)
                    }
                };
                if let Some(v) = ctx.extensions.get_mut::<Verdict>() {
                    v.result_findings = findings;
                }
                match (redacted, ctx.response.as_ref()) {
                    (Ok(Some(masked)), Some(_)) if is_error => {
                        let body: serde_json::Value =
                            serde_json::from_str(&masked).unwrap_or_default();
                        let mut error = RpcError::new(
                            body.get("code")
                                .and_then(|c| c.as_i64())
                                .unwrap_or(codes::INTERNAL_ERROR),
                            body.get("message")
                                .and_then(|m| m.as_str())
                                .unwrap_or("upstream error"),
                        );
                        error.data = body.get("data").cloned();
                        Flow::Respond(Message::error_response(ctx.request.id(), &error))
                    }
                    (Ok(Some(masked)), Some(response)) => {
                        Flow::Respond(response.with_result(&masked))
                    }
                    (Err(e), _) => {
                        let error = RpcError::new(
                            codes::DENIED,
                            format!(
                                "the result could not be redacted ({e}), so it is withheld (fail closed)"
                            ),
                        );
                        Flow::Respond(Message::error_response(ctx.request.id(), &error))
                    }
                    _ => Flow::Continue,
                }
            }
            Err(e) => {
                // A result the gateway cannot scan cannot be tracked: withhold it.
                let error = RpcError::new(
                    codes::DENIED,
                    format!(
                        "the result could not be scanned for sensitive data ({e}), so it is withheld (fail closed)"
                    ),
                );
                Flow::Respond(Message::error_response(ctx.request.id(), &error))
            }
        }
    }

    async fn log(&self, ctx: &CallContext) -> Result<(), super::LogFailure> {
        let Some(v) = ctx.extensions.get::<Verdict>() else {
            return Ok(());
        };
        let level_warn =
            v.decision.action != Action::Allow || v.decision.has_modifier(Action::Warn);
        // Build the line only when it will be written (allowed calls log at info).
        let wanted = if level_warn {
            tracing::enabled!(target: "mcpguard::decisions", tracing::Level::WARN)
        } else {
            tracing::enabled!(target: "mcpguard::decisions", tracing::Level::INFO)
        };
        if !wanted {
            return Ok(());
        }
        let describe = |f: &Finding| {
            format!(
                "{}@{}{}#{}",
                f.kind,
                f.location,
                f.encoding
                    .as_deref()
                    .map(|e| format!("({e})"))
                    .unwrap_or_default(),
                f.digest
            )
        };
        let findings: Vec<String> = v.findings.iter().map(describe).collect();
        let result_findings: Vec<String> = v.result_findings.iter().map(describe).collect();
        let flows: Vec<String> = v
            .flows
            .iter()
            .map(|f| {
                format!(
                    "{}@{} from {}/{} call {}",
                    f.kind, f.location, f.source.server, f.source.tool, f.source.call
                )
            })
            .collect();
        let labels: Vec<&str> = v.labels.iter().map(String::as_str).collect();
        let modifiers: Vec<String> = v
            .decision
            .modifiers
            .iter()
            .map(|r| format!("{}:{}", r.action.as_str(), r.id))
            .collect();
        macro_rules! decision_line {
            ($level:ident) => {
                tracing::$level!(
                    target: "mcpguard::decisions",
                    method = ctx.method(),
                    tool = ctx.request.param_str("name").or_else(|| ctx.request.param_str("uri")).unwrap_or_default().as_ref(),
                    server = ctx.target.as_ref().map(|t| t.server.as_str()).unwrap_or_default(),
                    session = ctx.caller.session_log_id().unwrap_or(""),
                    action = v.decision.action.as_str(),
                    rule = v.decision.rule_id(),
                    owasp_asi = v.decision.owasp_asi().join(",").as_str(),
                    reason = v.decision.reason.as_str(),
                    labels = labels.join(",").as_str(),
                    findings = findings.join(" ").as_str(),
                    flows = flows.join("; ").as_str(),
                    result_findings = result_findings.join(" ").as_str(),
                    modifiers = modifiers.join(",").as_str(),
                    approval = v.approval.as_deref().unwrap_or(""),
                    "decision"
                )
            };
        }
        if level_warn {
            decision_line!(warn);
        } else {
            decision_line!(info);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{Guard, TaintState, name_member};
    use mcpguard_protocol::Message;

    #[test]
    fn every_param_but_the_protocol_envelope_is_judged() {
        let request = Message::request(
            "1",
            "tools/call",
            Some(
                r#"{"name":"t","arguments":{"a":1},"extra":"x","_meta":{"progressToken":"p","io.modelcontextprotocol/clientInfo":{"name":"c"},"smuggled":"AKIAQ3ZRT7WX2YUV4ABC"}}"#,
            ),
        );
        let judged = Guard::judged_json(&request).unwrap_or_default();
        assert!(
            judged.contains("AKIAQ3ZRT7WX2YUV4ABC") && judged.contains("\"extra\""),
            "{judged}"
        );
        assert!(
            !judged.contains("progressToken") && !judged.contains("clientInfo"),
            "{judged}"
        );
    }

    #[test]
    fn resources_are_judged_by_their_uri_tools_and_prompts_by_name() {
        assert_eq!(name_member("resources/read"), "uri");
        assert_eq!(name_member("resources/subscribe"), "uri");
        assert_eq!(name_member("tools/call"), "name");
        assert_eq!(name_member("prompts/get"), "name");
    }

    #[test]
    fn recent_calls_is_a_sliding_minute() {
        let mut st = TaintState::new(4);
        let t0 = Instant::now();
        for i in 0..100 {
            st.count_call(t0 + Duration::from_millis(i));
        }
        assert_eq!(st.count_call(t0 + Duration::from_secs(1)), 101);
        // Half-way through the next window, half of the last window still counts.
        let estimate = st.count_call(t0 + Duration::from_secs(90));
        assert!((50..=53).contains(&estimate), "{estimate}");
        // After two idle minutes nothing from before counts.
        assert_eq!(st.count_call(t0 + Duration::from_secs(400)), 1);
    }
}
