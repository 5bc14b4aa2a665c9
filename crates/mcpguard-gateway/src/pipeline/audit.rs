//! The audit plugin: every call the pipeline sees becomes one audit event, durable before
//! the agent gets its answer. When the store cannot write, calls are refused (fail
//! closed) unless the operator opted out with `audit.fail_open`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mcpguard_audit::{
    AuditEvent, AuditWriter, DecisionRecord, EgressRecord, FindingRecord, FlowRecord, Outcome,
    SandboxRecord,
};
use mcpguard_detect::Finding;
use mcpguard_protocol::{Kind, Message, RpcError, codes, json, mcp};

use super::guard::Verdict;
use super::sandbox::SandboxRun;
use super::{CallContext, Flow, LogFailure, Phase, Plugin};

/// Records calls in the audit log.
pub struct AuditLog {
    writer: Arc<AuditWriter>,
    fail_open: bool,
    envelopes: Option<super::envelope::EnvelopeMaker>,
    /// Upstreams that run confined: name → (backend, profile).
    confined: std::collections::HashMap<String, (String, String)>,
}

impl AuditLog {
    /// A plugin appending to `writer`; with `fail_open`, calls are answered even when
    /// their event cannot be written.
    pub fn new(writer: Arc<AuditWriter>, fail_open: bool) -> AuditLog {
        AuditLog {
            writer,
            fail_open,
            envelopes: None,
            confined: std::collections::HashMap::new(),
        }
    }

    /// Also signs an execution envelope for every executed `tools/call`.
    pub fn with_envelopes(mut self, maker: super::envelope::EnvelopeMaker) -> AuditLog {
        self.envelopes = Some(maker);
        self
    }

    /// Names the upstreams that run in a sandbox (`name → (backend, profile)`): their
    /// calls' events carry a `sandbox` record with the backend and profile.
    pub fn with_confined(
        mut self,
        confined: std::collections::HashMap<String, (String, String)>,
    ) -> AuditLog {
        self.confined = confined;
        self
    }
}

/// `sha256:<hex>` of the RFC 8785 canonical form of `json` (of its exact bytes when it is
/// not valid JSON, which the edge does not let through).
pub fn canonical_digest(json: &str) -> String {
    let hex = mcpguard_envelope::canonical::canonical_digest(json)
        .unwrap_or_else(|_| mcpguard_envelope::canonical::sha256_hex(json.as_bytes()));
    format!("sha256:{hex}")
}

/// A UUID v7 for `unix_us`, with its random bits from the thread's CSPRNG: no system call
/// per id (`Uuid::now_v7` asks the kernel for randomness on every call, which costs
/// several microseconds on a virtual machine).
pub fn time_ordered_id(unix_us: i64) -> String {
    let millis = u64::try_from(unix_us / 1000).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>())
        .into_uuid()
        .to_string()
}

fn finding(f: &Finding) -> FindingRecord {
    FindingRecord {
        kind: f.kind.to_string(),
        detector: f.detector.to_string(),
        location: f.location.clone(),
        encoding: f.encoding.clone(),
        digest: f.digest.clone(),
    }
}

fn error_code(answer: &Message) -> Option<i64> {
    answer
        .error()
        .and_then(|e| json::member(e, "code"))
        .and_then(|c| c.trim().parse().ok())
}

/// The client's `name/version` from its `clientInfo`.
fn client_of(ctx: &CallContext) -> Option<String> {
    let info = ctx.caller.client_info.as_deref()?;
    let name = json::member_str(info, "name")?;
    Some(match json::member_str(info, "version") {
        Some(v) => format!("{name}/{v}"),
        None => name.into_owned(),
    })
}

fn outcome(ctx: &CallContext, verdict: Option<&Verdict>) -> Outcome {
    if ctx.response.as_ref().is_some_and(|answer| {
        matches!(
            error_code(answer),
            Some(codes::UNAUTHENTICATED | codes::FORBIDDEN)
        )
    }) {
        return Outcome::Unauthenticated;
    }
    if ctx
        .response
        .as_ref()
        .is_some_and(|answer| error_code(answer) == Some(codes::RATE_LIMITED))
    {
        return Outcome::RateLimited;
    }
    if ctx.request.kind() != Kind::Request {
        return Outcome::Notified;
    }
    let Some(answer) = &ctx.response else {
        return Outcome::Error;
    };
    let code = error_code(answer);
    if let Some((phase, _)) = ctx.answered_in
        && phase != Phase::Execution
    {
        if verdict.and_then(|v| v.approval.as_deref()) == Some("asked the user") {
            return Outcome::ApprovalRequested;
        }
        if code == Some(codes::DENIED)
            || answer
                .result()
                .is_some_and(|r| json::member(r, "isError").is_some())
        {
            return Outcome::Denied;
        }
    }
    match code {
        None if ctx.extensions.get::<SandboxRun>().is_some() => Outcome::Sandboxed,
        None => Outcome::Allowed,
        Some(
            codes::UPSTREAM_UNAVAILABLE
            | codes::UPSTREAM_TIMEOUT
            | codes::UPSTREAM_PROTOCOL_ERROR
            | codes::CONNECTION_CLOSED
            | codes::ERA_BRIDGE_UNSUPPORTED,
        ) => Outcome::UpstreamFailure,
        Some(codes::DENIED) => Outcome::Denied,
        Some(_) => Outcome::Error,
    }
}

/// The event for a call that went through the pipeline.
pub fn event_of(ctx: &CallContext) -> AuditEvent {
    let elapsed = ctx.started.elapsed();
    let received = SystemTime::now()
        .checked_sub(elapsed)
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let time_unix_us = received.as_micros() as i64;
    let verdict = ctx.extensions.get::<Verdict>();
    let method = ctx.method();
    let arguments = if method == mcp::method::TOOLS_CALL {
        ctx.request.param("arguments")
    } else {
        ctx.request.params()
    };
    let result = ctx
        .response
        .as_ref()
        .and_then(|r| r.result().or_else(|| r.error()));
    AuditEvent {
        event_id: time_ordered_id(time_unix_us),
        time: mcpguard_audit::event::format_time(time_unix_us),
        time_unix_us,
        session: ctx.caller.session_log_id().map(str::to_string),
        identity: ctx.caller.identity.as_ref().map(|i| i.name.clone()),
        roles: ctx
            .caller
            .identity
            .as_ref()
            .map(|i| i.roles.clone())
            .unwrap_or_default(),
        client: client_of(ctx),
        client_address: ctx.caller.remote.map(|a| a.to_string()),
        era: if ctx.caller.era == mcp::Era::Stateless {
            "2026-07-28".into()
        } else {
            "handshake".into()
        },
        upstream: ctx
            .upstream
            .clone()
            .or_else(|| ctx.target.as_ref().map(|t| t.server.clone())),
        method: method.to_string(),
        tool: mcp::call_target(&ctx.request).map(|t| t.to_string()),
        request_id: ctx.request.id().map(str::to_string),
        outcome: outcome(ctx, verdict),
        decision: verdict.map(|v| DecisionRecord {
            action: v.decision.action.as_str().to_string(),
            rule: v.decision.rule.as_ref().map(|r| r.id.clone()),
            owasp_asi: v.decision.owasp_asi().to_vec(),
            owasp_mcp: v
                .decision
                .rule
                .as_ref()
                .map(|r| r.owasp_mcp.clone())
                .unwrap_or_default(),
            reason: v.decision.reason.clone(),
            modifiers: v
                .decision
                .modifiers
                .iter()
                .map(|r| format!("{}:{}", r.action.as_str(), r.id))
                .collect(),
        }),
        labels: verdict
            .map(|v| v.labels.iter().cloned().collect())
            .unwrap_or_default(),
        findings: verdict
            .map(|v| v.findings.iter().map(finding).collect())
            .unwrap_or_default(),
        flows: verdict
            .map(|v| {
                v.flows
                    .iter()
                    .map(|f| FlowRecord {
                        kind: f.kind.to_string(),
                        location: f.location.clone(),
                        source_server: f.source.server.clone(),
                        source_tool: f.source.tool.clone(),
                        source_call: f.source.call.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        result_findings: verdict
            .map(|v| v.result_findings.iter().map(finding).collect())
            .unwrap_or_default(),
        arguments_digest: arguments.map(canonical_digest),
        result_digest: result.map(canonical_digest),
        error_code: ctx.response.as_ref().and_then(error_code),
        latency_us: elapsed.as_micros() as u64,
        answered_by: ctx.answered_in.map(|(_, plugin)| plugin.to_string()),
        envelope_id: None,
        sandbox: ctx.extensions.get::<SandboxRun>().map(sandbox_record),
    }
}

fn sandbox_record(run: &SandboxRun) -> SandboxRecord {
    let outcome = run.outcome.as_ref();
    let (exit_code, signal) = match outcome.map(|o| o.exit) {
        Some(mcpguard_sandbox::Exit::Code(code)) => (Some(code), None),
        Some(mcpguard_sandbox::Exit::Signal(signal)) => (None, Some(signal)),
        None => (None, None),
    };
    SandboxRecord {
        backend: run.backend.to_string(),
        profile: run.profile.clone(),
        language: Some(run.language.to_string()),
        stopped: outcome.map(|o| o.stopped.as_str().to_string()),
        exit_code,
        signal,
        wall_us: outcome.map(|o| o.usage.wall.as_micros() as u64),
        cpu_us: outcome
            .and_then(|o| o.usage.cpu)
            .map(|c| c.as_micros() as u64),
        memory_peak_bytes: outcome.and_then(|o| o.usage.memory_peak_bytes),
        process_limit_hit: outcome.is_some_and(|o| o.usage.process_limit_hit),
        error: run.error.clone(),
        egress: outcome
            .map(|o| {
                o.usage
                    .egress
                    .iter()
                    .map(|a| EgressRecord {
                        host: a.host.clone(),
                        port: a.port,
                        allowed: a.allowed,
                        reason: a.reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[async_trait]
impl Plugin for AuditLog {
    fn name(&self) -> &'static str {
        "audit"
    }

    /// First in every phase: a failing store refuses calls before they run.
    fn priority(&self) -> i32 {
        i32::MAX
    }

    async fn access(&self, ctx: &mut CallContext) -> Flow {
        if self.fail_open || self.writer.healthy() || ctx.request.kind() != Kind::Request {
            return Flow::Continue;
        }
        // The store's details (paths, hosts, database errors) go to the gateway's log,
        // not to agents.
        let error = RpcError::new(
            codes::DENIED,
            "the audit log cannot record calls, so calls are refused (fail closed); the gateway's log says why",
        );
        Flow::Respond(Message::error_response(ctx.request.id(), &error))
    }

    async fn log(&self, ctx: &CallContext) -> Result<(), LogFailure> {
        if matches!(ctx.request.kind(), Kind::Response | Kind::Error) {
            return Ok(());
        }
        if let Some(recorded) = ctx.extensions.get::<super::Recorded>() {
            recorded.mark();
        }
        let mut event = event_of(ctx);
        if event.sandbox.is_none()
            && let Some((backend, profile)) =
                event.upstream.as_ref().and_then(|u| self.confined.get(u))
        {
            event.sandbox = Some(SandboxRecord {
                backend: backend.clone(),
                profile: profile.clone(),
                ..SandboxRecord::default()
            });
        }
        let trace = match self.envelopes.as_ref().and_then(|m| m.make(ctx, &event)) {
            Some(Ok(trace)) => {
                event.envelope_id = Some(trace.id.clone());
                Some(trace)
            }
            Some(Err(e)) => {
                tracing::error!(target: "mcpguard::audit", error = %e, "no execution envelope for this call");
                None
            }
            None => None,
        };
        match self
            .writer
            .append_entry(mcpguard_audit::Entry { event, trace })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if self.fail_open => {
                tracing::error!(target: "mcpguard::audit", error = %e, method = ctx.method(), "a call was answered without being recorded (audit.fail_open)");
                Ok(())
            }
            Err(e) => {
                tracing::error!(target: "mcpguard::audit", error = %e, method = ctx.method(), "a call's answer is withheld: its event could not be recorded");
                Err(LogFailure {
                    message: "the audit log could not record this call, so its answer is withheld (fail closed); the gateway's log says why".into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_ids_are_unique_time_ordered_uuid_v7() {
        let a = super::time_ordered_id(1_795_000_000_000_000);
        let b = super::time_ordered_id(1_795_000_000_000_000);
        let later = super::time_ordered_id(1_795_000_000_005_000);
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap_or_default();
        assert_eq!(parsed.get_version_num(), 7);
        assert!(later > a && later > b, "ordered by time: {a} {b} {later}");
    }
}
