//! Logs and traces for `serve` and `stdio`: log lines to stderr (text or JSON, level from
//! the config), and with `observability.traces.enabled` the gateway's call and phase
//! spans exported over OTLP/HTTP. The spans never reach the log and the log never reaches
//! the collector: each has its own filter.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use mcpguard_gateway::config::{Config, LogFormat, TracesConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// What must be flushed before the process ends.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (waiting at most the export timeout). Call it outside
    /// any async runtime.
    pub fn shutdown(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("mcpguard: the last trace spans could not be exported: {e}");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Installs the log (and, when configured, the trace exporter) for the process.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.observability.log_level)
        .with_context(|| {
            format!(
                "`observability.log_level` is `{}`, which is not a log level or filter",
                config.observability.log_level
            )
        })?
        // Call and phase spans are for the trace exporter, not the log.
        .add_directive(
            format!("{}=off", mcpguard_gateway::trace::TARGET)
                .parse()
                .context("the trace target is not a valid filter directive")?,
        );
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; log files and collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let fmt = match config.observability.log_format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let traces = &config.observability.traces;
    let (provider, spans) = if traces.enabled {
        let provider = tracer_provider(traces)?;
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("mcpguard"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(mcpguard_gateway::trace::TARGET, tracing::Level::INFO),
            );
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        (Some(provider), Some(layer))
    } else {
        (None, None)
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(spans)
        .try_init()
        .context("the log was already set up")?;
    if traces.enabled {
        tracing::info!(
            endpoint = traces.endpoint.as_str(),
            sample_ratio = traces.sample_ratio,
            "exporting trace spans over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

/// The exporter and batch processor for `traces` (OTLP/HTTP, protobuf).
fn tracer_provider(traces: &TracesConfig) -> anyhow::Result<SdkTracerProvider> {
    // The exporter's HTTP client uses rustls; the process has one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces.endpoint.as_str())
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(Duration::from_millis(traces.timeout_ms.max(1)))
        .with_headers(
            traces
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
        .build()
        .with_context(|| {
            format!(
                "cannot set up the OTLP exporter for `observability.traces.endpoint` `{}`",
                traces.endpoint
            )
        })?;
    Ok(SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(traces.service_name.clone())
                .build(),
        )
        // The gateway decides what it records: an agent's `traceparent` sets the trace a
        // call belongs to, never whether it is recorded (an agent could otherwise force
        // every call into the collector, or keep its own calls out).
        .with_sampler(Sampler::TraceIdRatioBased(traces.sample_ratio))
        .with_batch_exporter(exporter)
        .build())
}
