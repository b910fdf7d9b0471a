//! The HTTP edge: routing, extractors and the problem+json mapping. Handlers stay thin: parse,
//! call the domain once, shape the response.

pub mod client_ip;
pub mod error;
pub mod extract;
mod limit;
pub mod openapi;
pub mod request_id;
pub mod routes;
mod schema;
pub mod state;

use std::time::Duration;

use axum::Router;
use axum::middleware;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use self::error::ApiError;
use self::state::AppState;

/// The whole API.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    Router::new()
        .merge(routes::sessions::router())
        .merge(routes::two_factor::router())
        .merge(routes::customers::router())
        .merge(routes::health::router())
        .route_layer(middleware::from_fn(request_id::mark_route))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limit::limit_per_ip,
        ))
        .with_state(state)
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(middleware::from_fn(request_id::request_context))
}
