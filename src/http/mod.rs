//! The HTTP edge: routing, extractors and the problem+json mapping. Handlers stay thin: parse,
//! call the domain once, shape the response.

pub mod client_ip;
pub mod error;
pub mod extract;
mod headers;
mod json_shape;
mod limit;
pub mod openapi;
pub mod ops_token;
mod problem;
mod refused;
pub mod request_id;
pub mod routes;
mod schema;
pub mod state;
pub mod web;

use std::time::Duration;

use axum::Router;
use axum::middleware;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use self::client_ip::TrustedProxies;
use self::error::ApiError;
use self::ops_token::OpsToken;
use self::state::AppState;
use self::web::WebClient;

/// Where metrics are served (readiness is on the public address either way, saying only
/// ready or not; its details are on the operations address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsRoutes {
    /// On the public address too.
    Public,
    /// Only on the operations address (`FINHUB_OPS_LISTEN`).
    Separate,
}

/// The whole service: the API, and the web client's pages beside it.
pub fn router(
    state: AppState,
    web: WebClient,
    ops: OpsRoutes,
    request_timeout: Duration,
) -> Router {
    let routes = match ops {
        OpsRoutes::Public => openapi::routes().merge(routes::health::ops_router()),
        OpsRoutes::Separate => openapi::routes(),
    };
    let (routes, _) = routes.split_for_parts();
    let api = routes
        .route_layer(middleware::from_fn(request_id::mark_route))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit::limit_per_ip,
        ));
    // The pages are static and served from memory, as cheap as `/healthz`: outside the per-IP
    // limit, so a page load (a dozen files) never eats into a customer's API allowance.
    let pages = web
        .router()
        .route_layer(middleware::from_fn(request_id::mark_route));
    let proxies = state.proxies.clone();
    serving(api.merge(pages).with_state(state), request_timeout, proxies)
}

/// What every answer of the public address goes through: panics caught, the request timeout,
/// the request id and its log line, problem documents for bare errors, the security headers.
///
/// These wrap the router once, as one service, rather than through `Router::layer`, which wraps
/// every route on its own: there each layer is a boxed service cloned for every request.
fn serving(router: Router, request_timeout: Duration, proxies: TrustedProxies) -> Router {
    let service = ServiceBuilder::new()
        .layer(middleware::map_response(headers::secure))
        .layer(middleware::map_request(request_id::drop_insane_request_id))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &axum::extract::Request| {
                    request_id::request_span(request, &proxies)
                })
                .on_request(())
                .on_response(request_id::log_response)
                // Failures are logged where they are understood (internal errors, outages).
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn(request_id::request_context))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(CatchPanicLayer::new())
        .service(router);
    outermost(service)
}

/// Tells browsers to use HTTPS only, for a year, on this host and its subdomains.
pub fn with_hsts(router: Router) -> Router {
    headers::with_hsts(router)
}

/// The operations address: `/healthz`, `/readyz` with its details and `/metrics`, for the
/// monitoring network.
pub fn ops_router(state: AppState, token: Option<OpsToken>) -> Router {
    let (live, _) = routes::health::liveness().split_for_parts();
    let (guarded, _) = routes::health::ops_router().split_for_parts();
    let guarded = guarded.route(
        "/readyz",
        axum::routing::get(routes::health::readyz_with_details),
    );
    let guarded = match token {
        Some(token) => guarded.route_layer(middleware::from_fn(move |request, next| {
            token.clone().check(request, next)
        })),
        None => guarded,
    };
    let router = live
        .merge(guarded)
        .fallback(|| async { ApiError::NotFound })
        .with_state(state);
    let service = ServiceBuilder::new()
        .layer(middleware::map_response(headers::secure))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(middleware::from_fn(request_id::request_context))
        .service(router);
    outermost(service)
}

/// `service` as the whole of a router. Served through a method router, whose answer axum
/// finishes after every layer (`Content-Length` set, the body dropped from a `HEAD` answer);
/// a bare fallback service would leave that to the router inside, before the layers that may
/// still write a body (a timeout, a panic, a problem document).
fn outermost<T>(service: T) -> Router
where
    T: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    T::Response: axum::response::IntoResponse,
    T::Future: Send + 'static,
{
    Router::new().fallback_service(axum::routing::any_service(service))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_internal_error_without_its_message() {
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let router = Router::new().route("/boom", get(boom));
        let response = serving(router, Duration::from_secs(5), TrustedProxies::default())
            .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/problem+json");
        assert!(headers.contains_key("x-request-id"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "INTERNAL_ERROR");
        assert!(!String::from_utf8_lossy(&body).contains("secret detail"));
    }

    /// RFC 9110 §9.3.2: a `HEAD` answer has no content, even one a layer wrote after the handler
    /// (here the timeout's problem document); HTTP/2 would send it.
    #[tokio::test]
    async fn a_head_request_answered_by_an_outer_layer_gets_headers_without_a_body() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }
        let router = Router::new().route("/slow", get(slow));
        let response = serving(router, Duration::from_millis(20), TrustedProxies::default())
            .oneshot(Request::head("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    }
}
