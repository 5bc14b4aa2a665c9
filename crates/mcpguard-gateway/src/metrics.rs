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

use std::collections::HashMap;
use std::hash::BuildHasher;
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

/// A cached metric with the label values it was made for.
type Cached<M> = (Box<[Box<str>]>, M);

/// The metrics of one family by their label values, so that recording on a label set
/// seen before allocates nothing (the family itself wants owned labels for every
/// lookup: a vector and two strings per label, dozens of allocations per call).
/// The handles share their values with the family's, which is what gets exported.
struct Handles<M, C> {
    family: Family<Labels, M, C>,
    names: &'static [&'static str],
    /// By a hash of the label values; each entry keeps its values to tell collisions apart.
    cache: parking_lot::RwLock<HashMap<u64, Vec<Cached<M>>>>,
}

impl<M, C> Handles<M, C>
where
    M: Clone + prometheus_client::metrics::TypedMetric,
    C: prometheus_client::metrics::family::MetricConstructor<M> + Clone,
{
    fn new(family: Family<Labels, M, C>, names: &'static [&'static str]) -> Handles<M, C> {
        Handles {
            family,
            names,
            cache: parking_lot::RwLock::new(HashMap::new()),
        }
    }

    /// The metric for `values` (one per label name, in order).
    fn get(&self, values: &[&str]) -> M {
        // A fast fixed hash: the entries are compared in full on every hit, so a
        // collision costs a comparison, never a wrong metric.
        let key = foldhash::fast::FixedState::with_seed(0x6d63_7067_7561_7264).hash_one(values);
        let same = |stored: &[Box<str>]| stored.iter().map(|s| &**s).eq(values.iter().copied());
        if let Some(entries) = self.cache.read().get(&key)
            && let Some((_, metric)) = entries.iter().find(|(stored, _)| same(stored))
        {
            return metric.clone();
        }
        let labels: Labels = self
            .names
            .iter()
            .zip(values)
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let metric = self.family.get_or_create(&labels).clone();
        let stored: Box<[Box<str>]> = values.iter().map(|v| Box::from(*v)).collect();
        let mut cache = self.cache.write();
        let entries = cache.entry(key).or_default();
        if !entries.iter().any(|(s, _)| same(s)) {
            entries.push((stored, metric.clone()));
        }
        metric
    }
}

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
    calls: Handles<Counter, fn() -> Counter>,
    phases: Handles<Histogram, fn() -> Histogram>,
    upstreams: Handles<Histogram, fn() -> Histogram>,
    plugin_logs: Handles<Histogram, fn() -> Histogram>,
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
        let counter: fn() -> Counter = Counter::default;
        let calls = Family::<Labels, Counter, fn() -> Counter>::new_with_constructor(counter);
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
            calls: Handles::new(calls, &["method", "tool", "upstream", "outcome", "rule"]),
            phases: Handles::new(phases, &["phase"]),
            upstreams: Handles::new(upstreams, &["upstream"]),
            plugin_logs: Handles::new(plugin_logs, &["plugin"]),
            findings,
            rate_limited,
            auth_refusals,
            upstream_up,
            upstream_restarts,
        }
    }

    /// Records how long a phase took.
    pub fn phase(&self, phase: &str, took: Duration) {
        self.phases.get(&[phase]).observe(took.as_secs_f64());
    }

    /// Records how long an upstream took to serve a call.
    pub fn upstream(&self, upstream: &str, took: Duration) {
        self.upstreams.get(&[upstream]).observe(took.as_secs_f64());
    }

    /// Records how long a plugin's log phase took.
    pub fn plugin_log(&self, plugin: &str, took: Duration) {
        self.plugin_logs.get(&[plugin]).observe(took.as_secs_f64());
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

/// Most distinct tool names that become label values.
const MAX_TOOL_LABELS: usize = 512;
/// Most distinct non-standard method names (extensions) that become label values.
const MAX_OTHER_METHODS: usize = 32;

/// A bounded set of label values: the first `limit` distinct values pass, later new ones
/// become `other`.
struct LabelCap {
    seen: parking_lot::RwLock<std::collections::HashSet<Box<str>>>,
    limit: usize,
}

impl LabelCap {
    fn new(limit: usize) -> LabelCap {
        LabelCap {
            seen: parking_lot::RwLock::new(std::collections::HashSet::new()),
            limit,
        }
    }

    /// `value`, or `other` once `limit` other values have been seen.
    fn admit<'v>(&self, value: &'v str) -> &'v str {
        if self.seen.read().contains(value) {
            return value;
        }
        let mut seen = self.seen.write();
        if seen.len() < self.limit {
            seen.insert(value.into());
            return value;
        }
        if seen.contains(value) { value } else { "other" }
    }
}

/// The log-phase plugin that counts calls, findings and refusals.
pub struct MetricsPlugin {
    metrics: Arc<Metrics>,
    tools: LabelCap,
    other_methods: LabelCap,
}

impl MetricsPlugin {
    /// Counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> MetricsPlugin {
        MetricsPlugin {
            metrics,
            tools: LabelCap::new(MAX_TOOL_LABELS),
            other_methods: LabelCap::new(MAX_OTHER_METHODS),
        }
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
    fn phases(&self) -> &'static [crate::pipeline::Phase] {
        &[crate::pipeline::Phase::Log]
    }

    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn log(&self, ctx: &CallContext) -> Result<(), LogFailure> {
        if ctx.request.kind() != Kind::Request {
            return Ok(());
        }
        let verdict = ctx.extensions.get::<Verdict>();
        // Label values come from the agent: methods the protocol does not define and
        // tool names beyond the first `MAX_TOOL_LABELS` are counted as `other`, so that a
        // client sending made-up names cannot grow the exposition without bound.
        let method = match ctx.method() {
            m if mcp::method::is_standard(m) => m,
            m => self.other_methods.admit(m),
        };
        let tool = if method == mcp::method::TOOLS_CALL || method == mcp::method::PROMPTS_GET {
            ctx.request.param_str("name")
        } else {
            None
        };
        let tool = tool.as_deref().map(|t| self.tools.admit(t));
        let outcome = outcome(ctx, verdict);
        let rule = verdict
            .and_then(|v| v.decision.rule.as_ref())
            .map_or("", |r| r.id.as_str());
        self.metrics
            .calls
            .get(&[
                method,
                tool.unwrap_or(""),
                ctx.upstream.as_deref().unwrap_or(""),
                outcome,
                rule,
            ])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_beyond_the_cap_become_other() {
        let cap = LabelCap::new(2);
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("b"), "b");
        assert_eq!(cap.admit("a"), "a");
        assert_eq!(cap.admit("c"), "other");
        assert_eq!(cap.admit("b"), "b");
    }

    #[test]
    fn cached_handles_share_the_exported_values() {
        let metrics = Metrics::new();
        for _ in 0..3 {
            metrics.phase("access", Duration::from_micros(5));
        }
        metrics.upstream("echo", Duration::from_micros(5));
        let text = metrics.render(&[]);
        assert!(
            text.contains("mcpguard_phase_duration_seconds_count{phase=\"access\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("mcpguard_upstream_duration_seconds_count{upstream=\"echo\"} 1"),
            "{text}"
        );
    }
}
