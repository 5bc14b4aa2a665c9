//! Trace spans of calls: one span per call with a child span per pipeline phase, and
//! W3C trace context (`traceparent`, `tracestate`) taken from the agent's request and
//! passed on to HTTP upstreams.
//!
//! The spans use the `tracing` target [`TARGET`]; the binary sends them to an OTLP
//! collector when `observability.traces` is on, and filters them out of the log. When
//! no layer wants them they are disabled, and creating one costs a few nanoseconds.
//! Span attributes name the method, tool, upstream, outcome and rule — never argument
//! or result values.

use opentelemetry::propagation::{Extractor, Injector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::pipeline::{CallContext, Phase};

/// The `tracing` target of call and phase spans.
pub const TARGET: &str = "mcpguard::trace";

/// The agent's W3C trace context, when its request carried one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceParent {
    /// The `traceparent` header.
    pub traceparent: String,
    /// The `tracestate` header, if any.
    pub tracestate: Option<String>,
}

impl TraceParent {
    /// The trace context in `headers`, if they carry a `traceparent`.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<TraceParent> {
        let traceparent = headers.get("traceparent")?.to_str().ok()?.to_string();
        let tracestate = headers
            .get("tracestate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Some(TraceParent {
            traceparent,
            tracestate,
        })
    }
}

impl Extractor for TraceParent {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(&self.traceparent),
            "tracestate" => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec!["traceparent"];
        if self.tracestate.is_some() {
            keys.push("tracestate");
        }
        keys
    }
}

/// The span of one call (a JSON-RPC request or notification through the pipeline),
/// child of the agent's trace when it sent one.
pub fn call_span(ctx: &CallContext) -> Span {
    use tracing::field::Empty;
    let span = tracing::info_span!(
        target: TARGET,
        "mcp.call",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "jsonrpc",
        rpc.method = Empty,
        rpc.jsonrpc.request_id = Empty,
        rpc.jsonrpc.error_code = Empty,
        mcp.tool = Empty,
        mcp.session = Empty,
        mcp.protocol_version = Empty,
        enduser.id = Empty,
        mcpguard.upstream = Empty,
        mcpguard.answered_by = Empty,
        mcpguard.decision = Empty,
        mcpguard.rule = Empty,
    );
    // Nothing below runs when no exporter wants spans: the hot path stays as it was.
    if span.is_disabled() {
        return span;
    }
    let method = ctx.method();
    let name = ctx
        .request
        .param_str("name")
        .filter(|_| method != "initialize");
    let otel_name = match &name {
        Some(name) => format!("{method} {name}"),
        None => method.to_string(),
    };
    span.record("otel.name", otel_name.as_str());
    span.record("rpc.method", method);
    span.record(
        "rpc.jsonrpc.request_id",
        ctx.request.id().unwrap_or_default(),
    );
    span.record("mcp.tool", name.as_deref().unwrap_or_default());
    span.record(
        "mcp.session",
        ctx.caller.session_log_id().unwrap_or_default(),
    );
    span.record("mcp.protocol_version", &*ctx.caller.protocol_version);
    span.record(
        "enduser.id",
        ctx.caller.identity.as_ref().map_or("", |i| i.name.as_str()),
    );
    if let Some(parent) = &ctx.caller.trace_parent {
        let context =
            opentelemetry::global::get_text_map_propagator(|p| p.extract(parent.as_ref()));
        let _ = span.set_parent(context);
    }
    span
}

/// Records how the call ended on its span.
pub fn finish(span: &Span, ctx: &CallContext) {
    if span.is_disabled() {
        return;
    }
    if let Some(upstream) = &ctx.upstream {
        span.record("mcpguard.upstream", upstream.as_str());
    }
    if let Some((_, plugin)) = ctx.answered_in {
        span.record("mcpguard.answered_by", plugin);
    }
    if let Some(verdict) = ctx.extensions.get::<crate::pipeline::guard::Verdict>() {
        span.record("mcpguard.decision", verdict.decision.action.as_str());
        span.record("mcpguard.rule", verdict.decision.rule_id());
    }
    let code = ctx
        .response
        .as_ref()
        .and_then(|r| r.error())
        .and_then(|e| mcpguard_protocol::json::member(e, "code"))
        .and_then(|c| c.trim().parse::<i64>().ok());
    if let Some(code) = code {
        span.record("rpc.jsonrpc.error_code", code);
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one phase of a call.
pub fn phase_span(phase: Phase) -> Span {
    tracing::info_span!(target: TARGET, "mcpguard.phase", otel.name = phase.as_str())
}

struct Headers<'a>(&'a mut Vec<(String, String)>);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

/// Adds the current span's W3C trace context to `headers` for an upstream request
/// (nothing when tracing is off).
pub fn inject_current(headers: &mut Vec<(String, String)>) {
    let span = Span::current();
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Headers(headers))
    });
}
