//! Logs and traces: the process's `tracing` subscriber (text or JSON lines on stderr) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry spans sent over OTLP/HTTP.
//!
//! The standard OpenTelemetry variables apply: `OTEL_SERVICE_NAME` (default `portcullis`),
//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_EXPORTER_OTLP_HEADERS`. Spans:
//! each request (`request`, parented on the caller's W3C `traceparent`), database queries
//! (`db.query`), password hashes, mail and calls to upstream providers. Attributes hold no
//! secrets: paths without query strings, no addresses, no tokens.

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where the database spans are made; traced at debug level so that, with tracing off, the
/// spans are disabled at their call sites and cost nothing.
pub const DB_TARGET: &str = "portcullis::db";

/// Keeps the trace exporter; `shutdown` sends what is still buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: could not send the last traces: {e}");
        }
    }
}

/// Sets up logging (`PORTCULLIS_LOG_FORMAT`: `text` or `json`; `RUST_LOG` for the levels) and,
/// when configured, trace export. An error is a message for the operator.
pub fn init() -> Result<Telemetry, String> {
    let json = match std::env::var("PORTCULLIS_LOG_FORMAT")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("" | "text") => false,
        Ok("json") => true,
        Ok(other) => {
            return Err(format!(
                "PORTCULLIS_LOG_FORMAT must be text or json, got {other:?}"
            ));
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if json {
        // One JSON object a line: the event's fields at the top, with the request span's
        // (node, method, path and, when there is one, trace_id).
        logs.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed()
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed()
    };

    let traces = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => Some(tracer_provider()?),
        _ => None,
    };
    let otel = traces.as_ref().map(|provider| {
        // Requests and the work they do, database queries included; not every library's
        // debug spans.
        let wanted = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target(DB_TARGET, LevelFilter::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("portcullis"))
            .with_filter(wanted)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(Telemetry { traces })
}

fn tracer_provider() -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (adding /v1/traces) and _HEADERS itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| format!("OTEL_EXPORTER_OTLP_ENDPOINT: cannot set up trace export: {e}"))?;
    // The resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the name defaults to
    // ours rather than `unknown_service`.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("portcullis");
    }
    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG); the default is parent-based always-on.
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(key.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the caller's trace (W3C `traceparent`, when valid) and records the
/// trace id on it, so every log line of the request carries it.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let incoming = parent.span().span_context().clone();
    // Without an exporter the span has no OpenTelemetry context: keep the caller's id.
    let _ = span.set_parent(parent);
    let own = span.context().span().span_context().clone();
    let trace_id = if own.is_valid() {
        Some(own.trace_id())
    } else if incoming.is_valid() {
        Some(incoming.trace_id())
    } else {
        None
    };
    if let Some(trace_id) = trace_id {
        span.record("trace_id", tracing::field::display(trace_id));
    }
}

/// Adds `traceparent` (and `tracestate`) for the current span to an outgoing request.
pub fn inject_trace(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
}
