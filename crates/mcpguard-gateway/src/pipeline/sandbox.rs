//! The sandbox plugin: runs `mcpguard.run_code` calls, and code-tool calls the policy
//! sends to a sandbox, in the configured backend instead of any upstream, and answers
//! with a normal MCP tool result. It also adds `mcpguard.run_code` to tool listings.
//!
//! The guard decides first: a call reaches this plugin's execution phase only if the
//! policy allowed it (or said `sandbox` and the guard found it runnable). A call the
//! policy sent to a sandbox that this plugin cannot run is refused here too, so a
//! `sandbox` decision never falls through to the upstream.

use std::sync::Arc;

use async_trait::async_trait;
use mcpguard_policy::Action;
use mcpguard_protocol::mcp::method;
use mcpguard_protocol::{Message, RpcError, codes, json};
use mcpguard_sandbox::{Exit, Outcome};

use super::guard::Verdict;
use super::{CallContext, Flow, Plugin, Target};
use crate::sandboxing::{CodeJob, GATEWAY_SERVER, RUN_CODE_TOOL, SandboxHub};

/// What a sandboxed run did, kept on the call for the audit log and the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRun {
    /// The backend.
    pub backend: &'static str,
    /// The profile.
    pub profile: String,
    /// The language of the code.
    pub language: &'static str,
    /// `sha256:<hex>` of the sandbox configuration (the canonical JSON of the spec).
    pub config_digest: String,
    /// How it ended, when it ran.
    pub outcome: Option<Outcome>,
    /// Why it could not run, when it did not.
    pub error: Option<String>,
}

/// Runs code calls in a sandbox.
pub struct SandboxRunner {
    hub: Arc<SandboxHub>,
    /// `mcpguard.run_code`'s definition, when it is offered (built once).
    run_code: Option<serde_json::Value>,
}

impl SandboxRunner {
    /// A runner over `hub`.
    pub fn new(hub: Arc<SandboxHub>) -> SandboxRunner {
        let run_code = hub.run_code_tool();
        SandboxRunner { hub, run_code }
    }

    fn is_builtin(&self, ctx: &CallContext) -> bool {
        self.run_code.is_some()
            && ctx.method() == method::TOOLS_CALL
            && ctx.request.param_str("name").as_deref() == Some(RUN_CODE_TOOL)
    }

    async fn run(&self, ctx: &mut CallContext, tool: &str) -> Flow {
        let arguments: serde_json::Value = ctx
            .request
            .param("arguments")
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_else(|| serde_json::json!({}));
        let job = match self.hub.job(tool, &arguments) {
            Some(Ok(job)) => job,
            Some(Err(why)) => return Flow::Respond(tool_error(ctx, &why)),
            None => {
                // The guard lets only runnable calls through; refuse rather than forward.
                let error = RpcError::new(
                    codes::DENIED,
                    format!(
                        "the policy sends `{tool}` to a sandbox, and it is not a tool whose code the gateway can run there (list it under `sandbox.code_tools`)"
                    ),
                );
                return Flow::Respond(Message::error_response(ctx.request.id(), &error));
            }
        };
        let result = job.sandbox.run(&job.spec, job.code.as_bytes()).await;
        let run = SandboxRun {
            backend: job.sandbox.name(),
            profile: job.profile.clone(),
            language: job.language.as_str(),
            config_digest: serde_json::to_string(&job.spec)
                .map(|spec| super::audit::canonical_digest(&spec))
                .unwrap_or_default(),
            outcome: result.as_ref().ok().cloned(),
            error: result.as_ref().err().map(ToString::to_string),
        };
        ctx.extensions.insert(run);
        ctx.upstream = Some(GATEWAY_SERVER.to_string());
        match result {
            Ok(outcome) => Flow::Respond(answer(ctx, tool, &job, &outcome)),
            Err(e) => {
                tracing::warn!(
                    tool,
                    backend = job.sandbox.name(),
                    "sandboxed run failed: {e}"
                );
                let error = RpcError::new(
                    codes::INTERNAL_ERROR,
                    format!("the sandbox could not run the code: {e}"),
                );
                Flow::Respond(Message::error_response(ctx.request.id(), &error))
            }
        }
    }
}

/// A tool result that says what was wrong with the call (the agent can correct it).
fn tool_error(ctx: &CallContext, why: &str) -> Message {
    let result = serde_json::json!({
        "content": [{"type": "text", "text": why}],
        "isError": true,
    });
    let reply = Message::response(ctx.request.id().unwrap_or("null"), &result.to_string());
    crate::bridge::mark_complete(reply, method::TOOLS_CALL)
}

/// The tool result of a run: for `mcpguard.run_code`, structured content (as its output
/// schema declares) and the same as JSON text; for code tools, text blocks.
fn answer(ctx: &CallContext, tool: &str, job: &CodeJob, outcome: &Outcome) -> Message {
    let (exit_code, signal) = match outcome.exit {
        Exit::Code(code) => (Some(code), None),
        Exit::Signal(signal) => (None, Some(signal)),
    };
    let structured = serde_json::json!({
        "exit_code": exit_code,
        "signal": signal,
        "stopped": outcome.stopped.as_str(),
        "stdout": outcome.stdout.text(),
        "stderr": outcome.stderr.text(),
        "truncated": outcome.stdout.truncated || outcome.stderr.truncated,
        "wall_ms": outcome.usage.wall.as_secs_f64() * 1000.0,
        "cpu_ms": outcome.usage.cpu.map(|c| c.as_secs_f64() * 1000.0),
        "memory_peak_bytes": outcome.usage.memory_peak_bytes,
        "backend": job.sandbox.name(),
    });
    let result = if tool == RUN_CODE_TOOL {
        serde_json::json!({
            "content": [{"type": "text", "text": structured.to_string()}],
            "structuredContent": structured,
            "isError": !outcome.success(),
        })
    } else {
        let mut content = vec![serde_json::json!({"type": "text", "text": outcome.stdout.text()})];
        if !outcome.stderr.bytes.is_empty() {
            content.push(serde_json::json!({"type": "text", "text": format!("stderr:\n{}", outcome.stderr.text())}));
        }
        content.push(serde_json::json!({"type": "text", "text": format!(
            "[ran in the {} sandbox: {}, stopped: {}, {:.0} ms]",
            job.sandbox.name(), outcome.exit, outcome.stopped.as_str(), outcome.usage.wall.as_secs_f64() * 1000.0
        )}));
        let mut result = serde_json::json!({"content": content, "isError": !outcome.success()});
        // A tool that declares an output schema must return structured content: fill a
        // schema with a single string property (what SDKs declare for tools returning
        // text) with the output.
        let schema = ctx
            .extensions
            .get::<Arc<crate::router::Router>>()
            .and_then(|router| router.tool_output_schema(tool));
        if let Some(schema) = schema {
            match text_property(&schema) {
                Some(property) => {
                    result["structuredContent"] =
                        serde_json::json!({ property: outcome.stdout.text() });
                }
                None => {
                    return tool_error(
                        ctx,
                        &format!(
                            "`{tool}` ran in the sandbox, and its declared output schema cannot hold the run's output (only a schema with one string property can)"
                        ),
                    );
                }
            }
        }
        result
    };
    let reply = Message::response(ctx.request.id().unwrap_or("null"), &result.to_string());
    crate::bridge::mark_complete(reply, method::TOOLS_CALL)
}

/// The name of the only property of an output schema, when that property is a string.
fn text_property(schema: &str) -> Option<String> {
    let schema: serde_json::Value = serde_json::from_str(schema).ok()?;
    let properties = schema.get("properties")?.as_object()?;
    let (name, property) = properties.iter().next().filter(|_| properties.len() == 1)?;
    (property.get("type")? == "string").then(|| name.clone())
}

#[async_trait]
impl Plugin for SandboxRunner {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    /// Before the guard (1000) in every phase: the listing it reviews includes
    /// `mcpguard.run_code`.
    fn priority(&self) -> i32 {
        1100
    }

    async fn access(&self, ctx: &mut CallContext) -> Flow {
        if self.is_builtin(ctx) && ctx.target.is_none() {
            ctx.target = Some(Target {
                server: GATEWAY_SERVER.into(),
                name: RUN_CODE_TOOL.into(),
            });
        }
        Flow::Continue
    }

    async fn execution(&self, ctx: &mut CallContext) -> Flow {
        if ctx.method() != method::TOOLS_CALL || ctx.response.is_some() {
            return Flow::Continue;
        }
        let sandboxed = ctx
            .extensions
            .get::<Verdict>()
            .is_some_and(|v| v.decision.action == Action::Sandbox);
        if !(sandboxed || self.is_builtin(ctx)) {
            return Flow::Continue;
        }
        let tool = ctx
            .request
            .param_str("name")
            .unwrap_or_default()
            .into_owned();
        self.run(ctx, &tool).await
    }

    async fn post_execution(&self, ctx: &mut CallContext) -> Flow {
        if ctx.method() != method::TOOLS_LIST
            || ctx
                .request
                .params()
                .is_some_and(|p| json::member(p, "cursor").is_some())
        {
            return Flow::Continue;
        }
        let (Some(tool), Some(response)) = (self.run_code.clone(), &ctx.response) else {
            return Flow::Continue;
        };
        let Some(result) = response.result() else {
            return Flow::Continue;
        };
        let Ok(mut tools) = json::member(result, "tools")
            .map(serde_json::from_str::<Vec<serde_json::Value>>)
            .unwrap_or(Ok(Vec::new()))
        else {
            return Flow::Continue;
        };
        tools.push(tool);
        let tools = serde_json::Value::Array(tools).to_string();
        let result = json::set_member(result, "tools", &tools);
        Flow::Respond(Message::response(
            ctx.request.id().unwrap_or("null"),
            &result,
        ))
    }
}
