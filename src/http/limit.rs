//! The per-client-IP guard on every call but the probes: the limit, applied before any handler
//! runs (unknown routes included, so they cannot be hammered for free), and the count of the
//! calls refused (the limit's own, and those the answer marks [`Refused`]), recorded in the
//! audit trail once a minute by code and address, so that a flood costs no write.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::refused::Refused;
use super::state::AppState;
use crate::domain::error::AuthError;

/// Probes are polled by infrastructure, not clients, and cost nothing (readiness pings the
/// store at most once a second). Metrics are limited like any call where they are public:
/// rendering them costs more, and anyone can ask.
const UNLIMITED: &[&str] = &["/healthz", "/readyz"];

pub async fn limit_per_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if UNLIMITED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let ip = state
        .proxies
        .of_request(request.extensions(), request.headers());
    match state.limits.check_api(ip).await {
        Ok(()) => {
            let response = next.run(request).await;
            if let Some(Refused(code)) = response.extensions().get::<Refused>() {
                state.auth.refused_request(code, ip);
            }
            response
        }
        Err(wait) => {
            state.auth.refused_request("RATE_LIMITED", ip);
            ApiError::Auth(AuthError::RateLimited {
                retry_after: time::Duration::try_from(wait).unwrap_or(time::Duration::SECOND),
            })
            .into_response()
        }
    }
}
