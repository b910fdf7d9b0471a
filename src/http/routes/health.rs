//! Liveness, readiness, metrics and the API description.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::error::AuthError;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Liveness, on every address.
pub fn liveness() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// Liveness, readiness (ready or not) and the API description: always on the public address.
pub fn router() -> OpenApiRouter<AppState> {
    liveness().routes(routes!(openapi)).routes(routes!(readyz))
}

/// Metrics: on the operations address when `FINHUB_OPS_LISTEN` names one, else on the public
/// one (the contract lists them there).
pub fn ops_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "get_health",
    responses((status = 200, description = "Alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers; load balancers route traffic only to ready instances. Only ready or
/// not: whether shared limits fell back or the audit key is missing would tell anyone which
/// controls are weak right now, so those details are on the operations address alone.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "get_readiness",
    responses((status = 200, description = "Ready"), (status = 503, description = "SERVICE_UNAVAILABLE: the store is unreachable")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match store_reachable(&state).await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(unready) => unready.into_response(),
    }
}

/// The check behind both readiness answers. Whatever the store's trouble, this instance should
/// not get traffic: 503, not 500.
async fn store_reachable(state: &AppState) -> Result<(), ApiError> {
    state
        .readiness
        .check(|| state.store.ping())
        .await
        .map_err(|e| ApiError::Auth(AuthError::Unavailable(e)))
}

/// Readiness with the details operators need (`FINHUB_OPS_LISTEN` only): where the rate limits
/// are counted and whether the audit chain is keyed. The same path as [`readyz`], answered on
/// the operations address.
pub async fn readyz_with_details(State(state): State<AppState>) -> Response {
    match store_reachable(&state).await {
        Ok(()) => Json(json!({
            "status": "ready",
            "details": {
                "rateLimits": state.limits.backend().as_str(),
                "auditKey": if state.audit_key.is_some() { "set" } else { "missing: the audit chain is plain SHA-256" },
                // Which key: every instance should name the same one once a rotation is done.
                "auditKeyId": state.audit_key,
                "locationDatabase": state.auth.location_trouble().unwrap_or_else(|| "ok".to_owned()),
            },
        }))
        .into_response(),
        Err(unready) => unready.into_response(),
    }
}

/// Prometheus metrics. With `FINHUB_OPS_LISTEN` set they are served there only; without it,
/// deployments block this path at the proxy.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "get_openapi",
    responses((status = 200, description = "OpenAPI 3.1")))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::http::openapi::document(),
    )
        .into_response()
}
