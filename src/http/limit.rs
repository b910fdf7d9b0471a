//! The per-client-IP limit on every API call, applied before any handler runs.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;
use crate::domain::error::AuthError;

pub async fn limit_per_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = state
        .proxies
        .of_request(request.extensions(), request.headers());
    match state.limits.check_api(ip) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::Auth(AuthError::RateLimited {
            retry_after: time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND),
        })
        .into_response(),
    }
}
