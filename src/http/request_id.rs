//! Every request's id and its record: tower-http gives each request an `X-Request-Id` (echoing a
//! sane incoming one) and returns it on the response, its trace layer runs the request in a span
//! and writes the access log line; [`request_context`] makes the id available to error bodies,
//! makes every error a problem document and counts the request for the metrics endpoint.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::request_id::RequestId;

use super::client_ip::TrustedProxies;
use super::error::ensure_problem;
use crate::telemetry::traces;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, if called while handling one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An incoming id is kept only if it is short and plain; anything else is dropped before an id
/// is assigned, so it can neither inject into logs nor grow without bound.
pub async fn drop_insane_request_id(mut request: Request) -> Request {
    let sane = request.headers().get("x-request-id").is_none_or(|v| {
        (1..=128).contains(&v.len())
            && v.as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if !sane {
        request.headers_mut().remove("x-request-id");
    }
    request
}

fn id_of(request: &Request) -> &str {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
}

/// The span each request runs in; `route` is filled in once routing has matched, `status` when
/// it is answered. With traces exported it is the request's server span (`otel.*`): it
/// continues the trace a trusted proxy names in `traceparent`, and its trace id is in every log
/// line written under it. It holds nothing of the customer: the path (which may hold a
/// session's or device's id) is in the access log line only.
pub fn request_span(request: &Request, proxies: &TrustedProxies) -> tracing::Span {
    use tracing::field::Empty;
    let span = tracing::info_span!(
        "request",
        request_id = %id_of(request),
        method = method_label(request.method()),
        route = Empty,
        status = Empty,
        trace_id = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
    );
    if traces::enabled() {
        if proxies.trusts_peer(request.extensions()) {
            traces::continue_trace(&span, request.headers());
        }
        if let Some(id) = traces::trace_id(&span) {
            span.record("trace_id", id);
        }
    }
    span
}

/// The access log line, and the request's status on its span.
pub fn log_response(response: &Response, latency: Duration, span: &tracing::Span) {
    let status = response.status();
    span.record("status", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let path = response
        .extensions()
        .get::<RequestPath>()
        .map(|p| p.0.as_str());
    tracing::info!(
        status = status.as_u16(),
        path = path.unwrap_or_default(),
        latency_ms = latency.as_millis() as u64,
        "request handled"
    );
}

/// The request's path, carried on the response to its access log line.
#[derive(Clone)]
struct RequestPath(String);

/// The route a request matched, carried on the response from the inner layer to the outer one.
#[derive(Clone)]
struct Route(String);

/// Runs inside the router (as a route layer), where the matched route is known.
pub async fn mark_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = method_label(request.method());
    if let Some(route) = &route {
        let span = tracing::Span::current();
        span.record("route", route.as_str());
        if traces::enabled() {
            traces::rename(&span, format!("{method} {route}"));
        }
    }
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// The outermost layer: runs the request under its id, turns any bare error into a problem document
/// and counts the request by method, route and status.
pub async fn request_context(request: Request, next: Next) -> Response {
    let id = id_of(&request).to_owned();
    let method = method_label(request.method());
    let path = RequestPath(request.uri().path().to_owned());
    let started = Instant::now();
    let response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    let mut response = REQUEST_ID.sync_scope(id, || ensure_problem(response));
    response.extensions_mut().insert(path);

    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| "unmatched".to_owned(), |r| r.0.clone());
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("finhub_http_requests_total", &labels).increment(1);
    metrics::histogram!("finhub_http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[tokio::test]
    async fn insane_incoming_ids_are_dropped_and_sane_ones_kept() {
        for (incoming, kept) in [
            ("abc-123_x.y:z", true),
            ("has space", false),
            ("", false),
            (&"a".repeat(129), false),
        ] {
            let mut request = Request::new(axum::body::Body::empty());
            let value = HeaderValue::from_str(incoming).unwrap();
            request.headers_mut().insert("x-request-id", value);
            let request = drop_insane_request_id(request).await;
            assert_eq!(
                request.headers().contains_key("x-request-id"),
                kept,
                "{incoming:?}"
            );
        }
    }
}
