//! OpenTelemetry traces (`FINHUB_OTLP_ENDPOINT`): every `tracing` span of the service (a request,
//! the store calls and the hashing under it) exported over OTLP/HTTP (JSON) in batches, posted
//! with the service's own HTTP client. Only spans are exported, never log events: the request's
//! span carries its route, method and status, nothing of the customer (no path, username, token
//! or code). Without the setting nothing is built, and the debug-level child spans are not even
//! created.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HeaderExtractor, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt as _, Targets, filter_fn};
use tracing_subscriber::registry::LookupSpan;

/// The target of the spans made for traces alone (the store calls, the hashing): debug spans
/// that the log never shows, so that without traces no layer enables them.
pub const TRACED: &str = "finhub_auth::traced";

/// Whether traces are exported: requests skip looking for a trace otherwise.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// How long an export may take before it is given up (the batch is dropped, not retried).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The exporter's provider: flushed and shut down when the process ends.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

/// The collector's address could not be used.
#[derive(Debug, thiserror::Error)]
#[error("FINHUB_OTLP_ENDPOINT: {0}")]
pub struct TracesError(String);

impl Traces {
    /// The exporter to `endpoint` (OTLP/HTTP: spans go to `{endpoint}/v1/traces`) and the layer
    /// that feeds it. Must run inside the Tokio runtime, which runs the batch exports.
    pub fn start<S>(endpoint: &url::Url) -> Result<(Self, impl Layer<S>), TracesError>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let client = crate::notify::outbound_client()
            .map_err(|e| TracesError(e.to_string()))?
            .timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TracesError(e.to_string()))?;
        let traces_url = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Poster(client))
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(traces_url)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| TracesError(e.to_string()))?;
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
        // Every request sampled, whatever a parent says: a `traceparent` flagged "not sampled"
        // must not take a request out of its trace.
        let provider = SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOn)
            .with_span_processor(processor)
            .with_resource(Resource::builder().with_service_name("finhub-auth").build())
            .build();
        let tracer = provider.tracer("finhub-auth");
        // Spans only: log events stay in the log. The service's own spans down to debug (the
        // store calls and hashing are debug spans, so that without traces they cost nothing).
        let spans = Targets::new()
            .with_target(TRACED, tracing::Level::DEBUG)
            .with_default(tracing::Level::INFO);
        let only_spans = filter_fn(|metadata| metadata.is_span())
            .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(only_spans.and(spans));
        ENABLED.store(true, Ordering::Relaxed);
        Ok((Self { provider }, layer))
    }

    /// Exports what is left; called once, as the process ends.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

/// Continues the trace a trusted proxy names in `traceparent` (W3C Trace Context): `span`
/// becomes its child. A client's own header is never followed: it could tie its requests to a
/// trace of its choosing.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if headers.contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
}

/// Names the exported span of `span` (a request's, once its route is known).
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// The trace id of `span`, when traces are exported (hex, 32 digits).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The trace id of the span the caller runs in, when traces are exported.
pub fn current_trace_id() -> Option<String> {
    enabled()
        .then(|| trace_id(&tracing::Span::current()))
        .flatten()
}

/// Logs a failed export, at most once a minute: a collector that is down must be noticed, not
/// flood the log. (The exporter's own diagnostics are off.)
fn export_failed(why: &str) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            error = why,
            "traces could not be exported (FINHUB_OTLP_ENDPOINT)"
        );
    }
}

/// OTLP's HTTP posts through reqwest, the service's one HTTP client (TLS with the ring
/// provider, the Mozilla roots, no redirects).
#[derive(Debug)]
struct Poster(reqwest::Client);

#[async_trait]
impl HttpClient for Poster {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let answer = self
            .0
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .inspect_err(|e| export_failed(&e.to_string()))?;
        if !answer.status().is_success() {
            export_failed(&format!("the collector answered {}", answer.status()));
        }
        let mut response = Response::builder().status(answer.status());
        if let Some(headers) = response.headers_mut() {
            headers.extend(answer.headers().clone());
        }
        Ok(response.body(answer.bytes().await?)?)
    }
}
