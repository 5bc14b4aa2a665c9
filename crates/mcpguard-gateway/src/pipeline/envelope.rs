//! Execution envelopes for executed `tools/call`s: the request and the result in RFC
//! 8785 form, their digests in an in-toto statement with what ran where under which
//! decision, signed as a DSSE envelope in a Sigstore bundle, and the payloads kept for
//! replay as configured. Made in the log phase and stored with the call's audit event.

use std::sync::Arc;

use mcpguard_audit::{AuditEvent, Payloads, Trace};
use mcpguard_envelope::canonical::{canonicalize, sha256_hex};
use mcpguard_envelope::seal::PayloadKey;
use mcpguard_envelope::statement::{
    ExecutionPredicate, GatewayRef, PolicyRef, SandboxRef, Timings, UpstreamRef,
};
use mcpguard_envelope::{Bundle, SigningKey, Statement};
use mcpguard_protocol::{Kind, json, mcp};

use super::guard::Verdict;
use super::{CallContext, Phase};
use crate::router::Router;

/// What traces keep of a call.
pub enum Keep {
    /// Only the signed digests.
    Nothing,
    /// The canonical request and result as they are.
    Plain,
    /// The canonical request and result, sealed with this key.
    Sealed(PayloadKey),
}

/// Makes and signs envelopes.
pub struct EnvelopeMaker {
    key: SigningKey,
    keep: Keep,
}

/// The request as the envelope states it: method, tool name and arguments (not the
/// JSON-RPC id or protocol metadata, which change between identical calls).
pub fn request_json(tool: &str, arguments: Option<&str>) -> String {
    format!(
        r#"{{"method":"tools/call","params":{{"name":{},"arguments":{}}}}}"#,
        serde_json::Value::String(tool.to_string()),
        arguments.unwrap_or("{}")
    )
}

/// The result as the envelope states it: the `result` member, or `{"error": ...}`.
pub fn result_json(answer: &mcpguard_protocol::Message) -> Option<String> {
    if let Some(result) = answer.result() {
        return Some(result.to_string());
    }
    answer.error().map(|e| format!(r#"{{"error":{e}}}"#))
}

impl EnvelopeMaker {
    /// A maker signing with `key`, keeping payloads as `keep` says.
    pub fn new(key: SigningKey, keep: Keep) -> EnvelopeMaker {
        EnvelopeMaker { key, keep }
    }

    /// The trace of `ctx` when an upstream executed it (a `tools/call` answered in the
    /// execution phase); `None` otherwise.
    pub fn make(&self, ctx: &CallContext, event: &AuditEvent) -> Option<Result<Trace, String>> {
        if ctx.method() != mcp::method::TOOLS_CALL
            || ctx.request.kind() != Kind::Request
            || !matches!(ctx.answered_in, Some((Phase::Execution, _)))
        {
            return None;
        }
        let answer = ctx.response.as_ref()?;
        Some(self.sign(ctx, answer, event))
    }

    fn sign(
        &self,
        ctx: &CallContext,
        answer: &mcpguard_protocol::Message,
        event: &AuditEvent,
    ) -> Result<Trace, String> {
        let tool = ctx
            .request
            .param_str("name")
            .map(|n| n.into_owned())
            .unwrap_or_default();
        let request = canonicalize(&request_json(&tool, ctx.request.param("arguments")))
            .map_err(|e| format!("the request: {e}"))?;
        let result = canonicalize(&result_json(answer).unwrap_or_else(|| "null".into()))
            .map_err(|e| format!("the result: {e}"))?;
        let id = super::audit::time_ordered_id(event.time_unix_us);
        let verdict = ctx.extensions.get::<Verdict>();
        let server = event.upstream.clone().unwrap_or_default();
        let info = ctx
            .extensions
            .get::<Arc<Router>>()
            .and_then(|r| r.upstreams().iter().find(|u| u.name == server).cloned())
            .and_then(|u| u.info());
        let finished_us = event.time_unix_us + ctx.started.elapsed().as_micros() as i64;
        let predicate = ExecutionPredicate {
            envelope_id: id.clone(),
            audit_event_id: event.event_id.clone(),
            method: mcp::method::TOOLS_CALL.into(),
            tool: tool.clone(),
            upstream_tool: ctx.target.as_ref().map(|t| t.name.clone()),
            upstream: UpstreamRef {
                name: server,
                server_name: info
                    .as_ref()
                    .and_then(|i| json::member_str(&i.server_info, "name").map(|s| s.into_owned())),
                server_version: info.as_ref().and_then(|i| {
                    json::member_str(&i.server_info, "version").map(|s| s.into_owned())
                }),
                protocol_version: info.as_ref().map(|i| i.protocol_version.clone()),
            },
            policy: PolicyRef {
                digest: verdict.and_then(|v| v.policy_digest.clone()),
                action: verdict
                    .map_or("allow", |v| v.decision.action.as_str())
                    .to_string(),
                rule: verdict.and_then(|v| v.decision.rule.as_ref().map(|r| r.id.clone())),
                owasp_asi: verdict
                    .map(|v| v.decision.owasp_asi().to_vec())
                    .unwrap_or_default(),
            },
            sandbox: match (
                ctx.extensions.get::<super::sandbox::SandboxRun>(),
                &event.sandbox,
            ) {
                (Some(run), _) => SandboxRef {
                    backend: run.backend.into(),
                    config_digest: Some(run.config_digest.clone()),
                },
                // A confined upstream served the call.
                (None, Some(record)) => SandboxRef {
                    backend: record.backend.clone(),
                    config_digest: None,
                },
                (None, None) => SandboxRef {
                    backend: "none".into(),
                    config_digest: None,
                },
            },
            timings: Timings {
                started: event.time.clone(),
                finished: mcpguard_audit::event::format_time(finished_us),
                duration_us: (finished_us - event.time_unix_us).max(0) as u64,
            },
            gateway: GatewayRef {
                name: "mcpguard".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            canonicalization: "RFC8785".into(),
        };
        let statement = Statement::new(
            &sha256_hex(request.as_bytes()),
            &sha256_hex(result.as_bytes()),
            predicate,
        );
        let bundle = Bundle::sign(&statement, &self.key)
            .and_then(|b| b.to_json())
            .map_err(|e| format!("signing: {e}"))?;
        let payloads = match &self.keep {
            Keep::Nothing => Payloads::Dropped,
            Keep::Plain => Payloads::Plain {
                request: request.into_bytes(),
                result: result.into_bytes(),
            },
            Keep::Sealed(key) => Payloads::Sealed {
                request: key
                    .seal(&format!("{id}/request"), request.as_bytes())
                    .map_err(|e| e.to_string())?,
                result: key
                    .seal(&format!("{id}/result"), result.as_bytes())
                    .map_err(|e| e.to_string())?,
            },
        };
        Ok(Trace {
            id,
            seq: 0,
            time_unix_us: event.time_unix_us,
            tool: Some(tool),
            upstream: event.upstream.clone(),
            bundle,
            payloads,
        })
    }
}
