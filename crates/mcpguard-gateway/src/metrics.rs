//! `/metrics`: the gateway's counters and histograms in the Prometheus text format.
//!
//! - `mcpguard_calls_total{method, tool, upstream, outcome, rule}`
//! - `mcpguard_phase_duration_seconds{phase}` (access, pre_execution, execution,
//!   post_execution, log) and `mcpguard_upstream_duration_seconds{upstream}`
//! - `mcpguard_plugin_log_duration_seconds{plugin}` (`audit`: the audit write)
//! - `mcpguard_findings_total{kind, where}` (secrets and personal data found)
//! - `mcpguard_rate_limited_total{limit}`, `mcpguard_auth_refusals_total{reason}`
//! - `mcpguard_upstream_up{upstream}`, `mcpguard_upstream_restarts_total{upstream}`
//!   (read when scraped)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcpguard_protocol::{Kind, codes, json, mcp};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::pipeline::guard::Verdict;
use crate::pipeline::{CallContext, LogFailure, Plugin};

type Labels = Vec<(String, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 10 µs to ~40 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<Labels, Counter>,
    phases: Histograms,
    upstreams: Histograms,
    plugin_logs: Histograms,
    findings: Family<Labels, Counter>,
    rate_limited: Family<Labels, Counter>,
    auth_refusals: Family<Labels, Counter>,
    upstream_up: Family<Labels, Gauge>,
    upstream_restarts: Family<Labels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mcpguard");
        let calls = Family::<Labels, Counter>::default();
        let constructor: fn() -> Histogram = latency_histogram;
        let phases = Histograms::new_with_constructor(constructor);
        let upstreams = Histograms::new_with_constructor(constructor);
        let plugin_logs = Histograms::new_with_constructor(constructor);
        let findings = Family::<Labels, Counter>::default();
        let rate_limited = Family::<Labels, Counter>::default();
        let auth_refusals = Family::<Labels, Counter>::default();
        let upstream_up = Family::<Labels, Gauge>::default();
        let upstream_restarts = Family::<Labels, Counter>::default();
        registry.register(
            "calls",
            "Calls by method, tool, upstream, outcome and deciding rule",
            calls.clone(),
        );
        registry.register(
            "phase_duration_seconds",
            "Time spent in each pipeline phase per call",
            phases.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Execution time of calls an upstream served",
            upstreams.clone(),
        );
        registry.register(
            "plugin_log_duration_seconds",
            "Time each plugin's log phase took (audit: the audit write)",
            plugin_logs.clone(),
        );
        registry.register(
            "findings",
            "Secrets and personal data found, by type and where",
            findings.clone(),
        );
        registry.register(
            "rate_limited",
            "Calls refused by a rate limit, by limit",
            rate_limited.clone(),
        );
        registry.register(
            "auth_refusals",
            "Requests refused by authentication or scope checks, by reason",
            auth_refusals.clone(),
        );
        registry.register(
            "upstream_up",
            "1 when the upstream is usable, 0 when not",
            upstream_up.clone(),
        );
        registry.register(
            "upstream_restarts",
            "Restarts of stdio upstreams after they died",
            upstream_restarts.clone(),
        );
        Metrics {
            registry,
            calls,
            phases,
            upstreams,
            plugin_logs,
            findings,
            rate_limited,
            auth_refusals,
            upstream_up,
            upstream_restarts,
        }
    }

    /// Records how long a phase took.
    pub fn phase(&self, phase: &str, took: Duration) {
        self.phases
            .get_or_create(&labels(&[("phase", phase)]))
            .observe(took.as_secs_f64());
    }

    /// Records how long an upstream took to serve a call.
    pub fn upstream(&self, upstream: &str, took: Duration) {
        self.upstreams
            .get_or_create(&labels(&[("upstream", upstream)]))
            .observe(took.as_secs_f64());
    }

    /// Records how long a plugin's log phase took.
    pub fn plugin_log(&self, plugin: &str, took: Duration) {
        self.plugin_logs
            .get_or_create(&labels(&[("plugin", plugin)]))
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics exposition, with the upstreams' state as of now.
    pub fn render(&self, upstreams: &[(String, bool, u64)]) -> String {
        for (name, up, restarts) in upstreams {
            let key = labels(&[("upstream", name)]);
            self.upstream_up.get_or_create(&key).set(i64::from(*up));
            let counter = self.upstream_restarts.get_or_create(&key);
            let seen = counter.get();
            if *restarts > seen {
                counter.inc_by(restarts - seen);
            }
        }
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// The same exposition in the Prometheus text format 0.0.4 (what `promtool check
/// metrics` and older scrapers read): counter families are named with their `_total`
/// suffix in `HELP` and `TYPE`, and the OpenMetrics-only `# EOF` and `# UNIT` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => text.push_str(&line),
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// The log-phase plugin that counts calls, findings and refusals.
pub struct MetricsPlugin {
    metrics: Arc<Metrics>,
}

impl MetricsPlugin {
    /// Counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> MetricsPlugin {
        MetricsPlugin { metrics }
    }
}

fn error_code(ctx: &CallContext) -> Option<i64> {
    let answer = ctx.response.as_ref()?;
    json::member(answer.error()?, "code").and_then(|c| c.parse().ok())
}

/// What became of the call, as a label.
fn outcome(ctx: &CallContext, verdict: Option<&Verdict>) -> &'static str {
    match error_code(ctx) {
        Some(codes::UNAUTHENTICATED | codes::FORBIDDEN) => "unauthenticated",
        Some(codes::RATE_LIMITED) => "rate_limited",
        Some(codes::DENIED) => "denied",
        Some(
            codes::UPSTREAM_UNAVAILABLE
            | codes::UPSTREAM_TIMEOUT
            | codes::UPSTREAM_PROTOCOL_ERROR
            | codes::CONNECTION_CLOSED,
        ) => "upstream_failure",
        Some(_) => "error",
        None if verdict.is_some_and(|v| {
            matches!(
                v.decision.action,
                mcpguard_policy::Action::Deny | mcpguard_policy::Action::RequireApproval
            ) && ctx
                .answered_in
                .is_some_and(|(phase, _)| phase != crate::pipeline::Phase::Execution)
        }) =>
        {
            "denied"
        }
        None if ctx.response.is_none() => "no_answer",
        None => "allowed",
    }
}

#[async_trait]
impl Plugin for MetricsPlugin {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn log(&self, ctx: &CallContext) -> Result<(), LogFailure> {
        if ctx.request.kind() != Kind::Request {
            return Ok(());
        }
        let verdict = ctx.extensions.get::<Verdict>();
        let method = ctx.method();
        let tool = if method == mcp::method::TOOLS_CALL || method == mcp::method::PROMPTS_GET {
            ctx.request.param_str("name").map(|n| n.into_owned())
        } else {
            None
        };
        let outcome = outcome(ctx, verdict);
        let rule = verdict
            .and_then(|v| v.decision.rule.as_ref())
            .map(|r| r.id.clone())
            .unwrap_or_default();
        self.metrics
            .calls
            .get_or_create(&labels(&[
                ("method", method),
                ("tool", tool.as_deref().unwrap_or("")),
                ("upstream", ctx.upstream.as_deref().unwrap_or("")),
                ("outcome", outcome),
                ("rule", &rule),
            ]))
            .inc();
        if let Some(verdict) = verdict {
            for (place, findings) in [
                ("arguments", &verdict.findings),
                ("result", &verdict.result_findings),
            ] {
                for finding in findings {
                    self.metrics
                        .findings
                        .get_or_create(&labels(&[("kind", finding.kind), ("where", place)]))
                        .inc();
                }
            }
        }
        match outcome {
            "rate_limited" => {
                let limit = ctx
                    .response
                    .as_ref()
                    .and_then(|a| a.error())
                    .and_then(|e| json::member(e, "data"))
                    .and_then(|d| json::member_str(d, "limit"))
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                self.metrics
                    .rate_limited
                    .get_or_create(&labels(&[("limit", &limit)]))
                    .inc();
            }
            "unauthenticated" => {
                let reason = if error_code(ctx) == Some(codes::FORBIDDEN) {
                    "forbidden"
                } else {
                    "unauthenticated"
                };
                self.metrics
                    .auth_refusals
                    .get_or_create(&labels(&[("reason", reason)]))
                    .inc();
            }
            _ => {}
        }
        Ok(())
    }
}
