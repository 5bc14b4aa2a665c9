//! The plugin pipeline every message from an agent passes through.
//!
//! Phases run in order: `access → pre_execution → execution → post_execution → log`.
//! Within a phase, plugins run by descending priority (as in Kong: a higher number runs
//! first). A plugin continues, answers instead of the upstream ([`Flow::Respond`]), or
//! changes the call through the [`CallContext`] it gets. An answer given in `access` or
//! `pre_execution` skips straight to `log`; the first answer in `execution` is the result
//! that `post_execution` then sees. `log` always runs, for denied calls too.

pub mod approval;
pub mod audit;
pub mod envelope;
pub mod forward;
pub mod guard;
pub mod logging;
pub mod sandbox;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use mcpguard_protocol::Message;

use crate::caller::Caller;
use crate::upstream::Relay;

/// What a plugin wants after its phase.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next plugin.
    Continue,
    /// Stop here and send this answer (it must carry the request's id).
    Respond(Message),
}

/// The phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Who is calling, and may they (authentication, rate limits).
    Access,
    /// Judge the call (taint scan, policy).
    PreExecution,
    /// Produce the answer (forward, sandbox).
    Execution,
    /// Inspect or change the answer (scan results, redact).
    PostExecution,
    /// Record what happened (audit, metrics).
    Log,
}

impl Phase {
    /// Every phase, in running order.
    pub const ALL: [Phase; 5] = [
        Phase::Access,
        Phase::PreExecution,
        Phase::Execution,
        Phase::PostExecution,
        Phase::Log,
    ];

    /// The name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Access => "access",
            Phase::PreExecution => "pre_execution",
            Phase::Execution => "execution",
            Phase::PostExecution => "post_execution",
            Phase::Log => "log",
        }
    }
}

/// One call on its way through the pipeline.
pub struct CallContext {
    /// Who is calling and in which protocol era.
    pub caller: Caller,
    /// The message as the agent sent it (with the agent's id). Plugins may replace it.
    pub request: Message,
    /// The answer, once one exists.
    pub response: Option<Message>,
    /// Where messages about this call go on their way to the agent.
    pub relay: Arc<dyn Relay>,
    /// When the gateway received the call.
    pub started: Instant,
    /// The upstream that served the call, when one did.
    pub upstream: Option<String>,
    /// Which phase produced the answer, when a plugin answered.
    pub answered_in: Option<(Phase, &'static str)>,
    /// Where a named call (tool, prompt, resource) goes, when the gateway knows.
    pub target: Option<Target>,
    /// State plugins keep for a call, by type.
    pub extensions: http::Extensions,
}

/// The upstream and upstream-side name of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The upstream's configured name.
    pub server: String,
    /// The tool or prompt name as the upstream knows it (without prefix), or the URI.
    pub name: String,
}

impl CallContext {
    /// A fresh context for `request`.
    pub fn new(caller: Caller, request: Message, relay: Arc<dyn Relay>) -> CallContext {
        CallContext {
            caller,
            request,
            response: None,
            relay,
            started: Instant::now(),
            upstream: None,
            answered_in: None,
            target: None,
            extensions: http::Extensions::new(),
        }
    }

    /// The method of the call.
    pub fn method(&self) -> &str {
        self.request.method().unwrap_or_default()
    }
}

/// A pipeline plugin. Every phase is optional.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// A short stable name, for logs and for the record of who answered.
    fn name(&self) -> &'static str;

    /// Higher runs first within a phase.
    fn priority(&self) -> i32 {
        0
    }

    /// The phases this plugin implements; the pipeline calls it in no other (each call
    /// of a phase costs a boxed future). All of them unless a plugin says otherwise: a
    /// plugin that names too few would be skipped where it should act, so only plugins
    /// whose phases are plain narrow this.
    fn phases(&self) -> &'static [Phase] {
        &Phase::ALL
    }

    /// Authentication and admission.
    async fn access(&self, _ctx: &mut CallContext) -> Flow {
        Flow::Continue
    }

    /// Judging the call before it runs.
    async fn pre_execution(&self, _ctx: &mut CallContext) -> Flow {
        Flow::Continue
    }

    /// Producing the answer.
    async fn execution(&self, _ctx: &mut CallContext) -> Flow {
        Flow::Continue
    }

    /// Looking at (and possibly changing) the answer.
    async fn post_execution(&self, _ctx: &mut CallContext) -> Flow {
        Flow::Continue
    }

    /// Recording the outcome. Cannot change it, except by failing: a plugin that must
    /// record every call (the audit log) returns an error when it could not, and the
    /// agent then gets that error instead of the answer (fail closed).
    async fn log(&self, _ctx: &CallContext) -> Result<(), LogFailure> {
        Ok(())
    }
}

/// Set by a plugin that has handed the call's record on (the audit log), so that a call
/// cancelled while its record is on its way is not recorded twice.
#[derive(Clone, Default)]
pub struct Recorded(pub Arc<std::sync::atomic::AtomicBool>);

impl Recorded {
    /// Marks the call as recorded.
    pub fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether a record of the call is on its way.
    pub fn is_marked(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A log-phase plugin could not record a call that must be recorded.
#[derive(Debug, Clone)]
pub struct LogFailure {
    /// What went wrong and what the operator can do; sent to the agent.
    pub message: String,
}

/// The ordered plugins.
#[derive(Clone, Default)]
pub struct Pipeline {
    plugins: Vec<Arc<dyn Plugin>>,
    /// For each phase (in `Phase::ALL` order), the plugins that implement it, in order.
    by_phase: [Vec<Arc<dyn Plugin>>; 5],
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Pipeline {
    /// A pipeline of `plugins`, ordered by descending priority (stable for ties).
    pub fn new(mut plugins: Vec<Arc<dyn Plugin>>) -> Pipeline {
        plugins.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        let by_phase = Phase::ALL.map(|phase| {
            plugins
                .iter()
                .filter(|p| p.phases().contains(&phase))
                .cloned()
                .collect()
        });
        Pipeline {
            plugins,
            by_phase,
            metrics: None,
        }
    }

    /// Times every phase (and each plugin's log phase) into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Pipeline {
        self.metrics = Some(metrics);
        self
    }

    /// Runs a phase, timing it when metrics are on.
    async fn timed_phase(&self, phase: Phase, ctx: &mut CallContext) -> bool {
        use tracing::Instrument as _;
        let started = Instant::now();
        let answered = self
            .run_phase(phase, ctx)
            .instrument(crate::trace::phase_span(phase))
            .await;
        if let Some(metrics) = &self.metrics {
            let took = started.elapsed();
            metrics.phase(phase.as_str(), took);
            if phase == Phase::Execution
                && let Some(upstream) = &ctx.upstream
            {
                metrics.upstream(upstream, took);
            }
        }
        answered
    }

    /// Plugin names in running order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs a call through every phase and returns its context, with `response` set
    /// unless the call was a notification nobody answered.
    pub async fn run(&self, ctx: CallContext) -> CallContext {
        use tracing::Instrument as _;
        let span = crate::trace::call_span(&ctx);
        let ctx = self.run_phases(ctx).instrument(span.clone()).await;
        crate::trace::finish(&span, &ctx);
        ctx
    }

    async fn run_phases(&self, mut ctx: CallContext) -> CallContext {
        use tracing::Instrument as _;
        'phases: {
            for phase in [Phase::Access, Phase::PreExecution] {
                if self.timed_phase(phase, &mut ctx).await {
                    break 'phases;
                }
            }
            self.timed_phase(Phase::Execution, &mut ctx).await;
            self.timed_phase(Phase::PostExecution, &mut ctx).await;
        }
        let mut failure = None;
        let log_started = Instant::now();
        async {
            for plugin in self.in_phase(Phase::Log) {
                let started = Instant::now();
                if let Err(e) = plugin.log(&ctx).await {
                    failure.get_or_insert((plugin.name(), e));
                }
                if let Some(metrics) = &self.metrics {
                    metrics.plugin_log(plugin.name(), started.elapsed());
                }
            }
        }
        .instrument(crate::trace::phase_span(Phase::Log))
        .await;
        if let Some(metrics) = &self.metrics {
            metrics.phase(Phase::Log.as_str(), log_started.elapsed());
        }
        if let Some((plugin, e)) = failure
            && ctx.request.kind() == mcpguard_protocol::Kind::Request
        {
            let error =
                mcpguard_protocol::RpcError::new(mcpguard_protocol::codes::DENIED, e.message);
            ctx.response = Some(Message::error_response(ctx.request.id(), &error));
            ctx.answered_in = Some((Phase::Log, plugin));
        }
        ctx
    }

    /// Runs only the log phase, for a call that ended outside the pipeline (the agent
    /// cancelled it): it is recorded with the answer the agent got.
    pub async fn log_only(&self, ctx: &CallContext) {
        for plugin in self.in_phase(Phase::Log) {
            if let Err(e) = plugin.log(ctx).await {
                tracing::error!(
                    plugin = plugin.name(),
                    "a cancelled call could not be recorded: {}",
                    e.message
                );
            }
        }
    }

    /// The plugins that take part in `phase`, in order.
    fn in_phase(&self, phase: Phase) -> &[Arc<dyn Plugin>] {
        let at = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        &self.by_phase[at]
    }

    /// Runs one phase; true when a plugin answered.
    async fn run_phase(&self, phase: Phase, ctx: &mut CallContext) -> bool {
        for plugin in self.in_phase(phase) {
            let flow = match phase {
                Phase::Access => plugin.access(ctx).await,
                Phase::PreExecution => plugin.pre_execution(ctx).await,
                Phase::Execution => plugin.execution(ctx).await,
                Phase::PostExecution => plugin.post_execution(ctx).await,
                Phase::Log => Flow::Continue,
            };
            if let Flow::Respond(answer) = flow {
                ctx.response = Some(answer);
                ctx.answered_in = Some((phase, plugin.name()));
                // In post_execution every plugin sees (and may replace) the answer.
                if phase != Phase::PostExecution {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests;
