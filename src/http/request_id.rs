//! The outermost middleware: gives every request an id (echoing a sane incoming
//! `X-Request-Id`), runs it inside a tracing span, makes every error a problem document, and
//! counts it for the metrics endpoint.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;
use uuid::Uuid;

use super::error::ensure_problem;

tokio::task_local! {
    static REQUEST_ID: String;
}

const HEADER: &str = "x-request-id";

/// The id of the request being handled, if called while handling one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An incoming id is echoed only if it is short and plain; anything else is replaced, so it can
/// neither inject into logs nor grow without bound.
fn sane(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.to_owned())
}

/// The route a request matched, carried on the response from the inner layer to the outer one.
#[derive(Clone)]
struct Route(String);

/// Runs inside the router (as a route layer), where the matched route is known.
pub async fn mark_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        tracing::Span::current().record("route", route.as_str());
        response.extensions_mut().insert(Route(route));
    }
    response
}

pub async fn request_context(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(sane)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        path = %request.uri().path(),
        route = tracing::field::Empty,
    );
    let started = Instant::now();
    let response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span.clone()))
        .await;
    let mut response = REQUEST_ID.sync_scope(id.clone(), || ensure_problem(response));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }

    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let status = response.status().as_u16();
    let labels = [
        ("method", method_label(&method).to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("finhub_http_requests_total", &labels).increment(1);
    metrics::histogram!("finhub_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_millis() as u64,
            "request handled"
        );
    });
    response
}

/// Standard methods by name, anything else as `OTHER`, so clients cannot mint metric series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
