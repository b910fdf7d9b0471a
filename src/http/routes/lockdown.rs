//! "This wasn't me": the link in an e-mailed security notice, used.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ProblemDocument;
use crate::domain::credentials::lockdown::LockdownToken;
use crate::http::error::{ApiError, ApiResult, no_store};
use crate::http::extract::{ApiJson, Client};
use crate::http::state::AppState;

/// `auth/lockdown`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(lockdown))
}

/// The token of a lockdown link.
// No `Debug`: whoever holds the token can lock the account.
#[derive(Deserialize, ToSchema)]
pub struct LockdownRequest {
    /// From the link's fragment: `#lockdown={token}`.
    #[schema(min_length = 1, max_length = 512)]
    token: String,
}

/// "This wasn't me": every session of the customer ends at once, on every instance, every
/// factor and recovery code enrolled since the link's notice (or the start of the oldest
/// session live then) is removed, and the account is locked until a completed password reset
/// or an operator's unlock (logins answer `ACCOUNT_LOCKED` without `lockedUntil`); the
/// customer is told at the profile's own addresses. No session is needed: the link is
/// single-use, valid 7 days, and limited like a login.
#[utoipa::path(post, path = "/api/v1/auth/lockdown", tag = "auth", operation_id = "lockdown",
    request_body = LockdownRequest,
    responses(
        (status = 204, description = "Locked down: every session ended"),
        (status = 400, description = "VALIDATION_ERROR (no token) or MALFORMED_REQUEST", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: an unknown, malformed, used or expired link; nothing changed", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "RATE_LIMITED: the login limits apply", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn lockdown(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<LockdownRequest>,
) -> ApiResult<Response> {
    // A token no link could carry is as unknown as any other.
    let token = LockdownToken::parse(&body.token).map_err(|_| ApiError::NotFound)?;
    state
        .auth
        .lockdown(&token, &client)
        .await
        .map_err(ApiError::Audited)?;
    Ok((StatusCode::NO_CONTENT, no_store()).into_response())
}
