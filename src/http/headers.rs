//! Headers every response carries, pages, API answers, errors and 404s alike.
//!
//! The web client keeps its tokens in localStorage, where any script running in the page could
//! read them; so no script may run but the service's own files. The policy allows nothing
//! inline, no `eval`, no other origin, and no framing (against clickjacking).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Checked and built at compile time: an answer clones them (pointers to static bytes) and
/// checks nothing again.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
];

/// `response` with the security headers, replacing any its handler set.
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        headers.insert(name.clone(), value.clone());
    }
    response
}

/// Adds `Strict-Transport-Security` (only ever sent over HTTPS, where it means something).
pub fn with_hsts(router: Router) -> Router {
    router.layer(SetResponseHeaderLayer::overriding(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ))
}
