//! The built-in log plugin: one structured line per call, with no payloads.

use async_trait::async_trait;
use mcpguard_protocol::{Kind, mcp};

use super::{CallContext, Plugin};

/// Logs every call: method, target name, upstream, outcome and duration. Arguments and
/// results are never logged (they may hold secrets).
pub struct CallLog;

#[async_trait]
impl Plugin for CallLog {
    fn phases(&self) -> &'static [super::Phase] {
        &[super::Phase::Log]
    }

    fn name(&self) -> &'static str {
        "call-log"
    }

    async fn log(&self, ctx: &CallContext) -> Result<(), super::LogFailure> {
        if !tracing::enabled!(target: "mcpguard::calls", tracing::Level::INFO) {
            return Ok(());
        }
        let method = ctx.method();
        let target = mcp::call_target(&ctx.request);
        let outcome = match ctx.response.as_ref().map(|r| r.kind()) {
            Some(Kind::Error) => "error",
            Some(_) => "ok",
            None => "notified",
        };
        let micros = ctx.started.elapsed().as_micros() as u64;
        tracing::info!(
            target: "mcpguard::calls",
            method,
            name = target.as_deref().unwrap_or(""),
            upstream = ctx.upstream.as_deref().unwrap_or(""),
            session = ctx.caller.session_log_id().unwrap_or(""),
            era = if ctx.caller.era == mcp::Era::Stateless { "2026-07-28" } else { "handshake" },
            outcome,
            answered_by = ctx.answered_in.map(|(_, plugin)| plugin).unwrap_or(""),
            micros,
            "call"
        );
        Ok(())
    }
}
