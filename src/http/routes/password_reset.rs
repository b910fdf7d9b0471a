//! The forgotten password: asking for a reset code, answering it, setting the new password.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sessions::DeviceBody;
use super::{AccountLocked, ProblemDocument, TokenResponse, tokens_issued};
use crate::domain::audit::rfc3339;
use crate::domain::credentials::challenge::OtpCode;
use crate::domain::credentials::password::Password;
use crate::domain::credentials::reset::ResetId;
use crate::domain::customers::Username;
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::state::AppState;

/// `auth/password-reset`, `/verify` and `/complete`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_reset))
        .routes(routes!(verify_reset))
        .routes(routes!(complete_reset))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    /// Matched case-insensitively after trimming.
    #[schema(min_length = 1, max_length = 254)]
    username: String,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetResponse {
    reset_id: String,
    /// When the code stops working.
    expires_at: String,
}

/// Ask for a password reset: a known customer not locked by an operator gets a 6-digit code by
/// e-mail. The answer is the same, in body and timing, for any username.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", operation_id = "request_password_reset",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the username exists", body = ResetResponse),
        (status = 400, description = "VALIDATION_ERROR or MALFORMED_REQUEST", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "RATE_LIMITED: the login limits apply", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn request_reset(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetRequest>,
) -> ApiResult<Response> {
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("username", e.0)]))?;
    let requested = state
        .auth
        .request_password_reset(&username, &client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        no_store(),
        Json(ResetResponse {
            reset_id: requested.reset_id.to_string(),
            expires_at: rfc3339(requested.expires_at),
        }),
    )
        .into_response())
}

/// A reset code to check. (No `Debug`: it holds the code.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetVerifyRequest {
    /// From `auth/password-reset`.
    reset_id: String,
    /// The six digits of the e-mail.
    #[schema(pattern = "^[0-9]{6}$")]
    code: String,
    device: Option<DeviceBody>,
}

/// Answer a reset code: a session in state `PASSWORD_RESET` that may only prove a second factor
/// (never e-mail), set the new password and log out.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/verify", tag = "auth", operation_id = "verify_password_reset",
    request_body = ResetVerifyRequest,
    responses(
        (status = 200, description = "A PASSWORD_RESET session; `twoFactorRequired` when the customer holds a factor", body = TokenResponse),
        (status = 400, description = "INVALID_2FA_CODE (with attemptsRemaining; also an unknown resetId), 2FA_CODE_EXPIRED, VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
        (status = 429, description = "TOO_MANY_2FA_ATTEMPTS: the reset's 5 guesses are used; RATE_LIMITED", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn verify_reset(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetVerifyRequest>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let reset = ResetId::parse(&body.reset_id)
        .map_err(|e| errors.push(FieldError::new("resetId", e.0)))
        .ok();
    let code = OtpCode::parse(&body.code)
        .map_err(|e| errors.push(FieldError::new("code", e.0)))
        .ok();
    let device = body.device.map(|d| d.parse(&mut errors));
    let (Some(reset), Some(code)) = (reset, code) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let issued = state
        .auth
        .verify_password_reset(&reset, &code, &client.with_device(device))
        .await?;
    Ok(tokens_issued(issued))
}

/// The new password. (No `Debug`: it holds it.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetCompleteRequest {
    /// 12 to 128 characters (`FINHUB_PASSWORD_MIN_LENGTH`), not a common password, without the
    /// customer's own names, not the current one.
    #[schema(format = Password, min_length = 1)]
    new_password: String,
}

/// Set the new password: every session of the customer ends (this one too), a lock from failures
/// is cleared, and the customer is told at every destination they hold.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/complete", tag = "auth", operation_id = "complete_password_reset",
    request_body = ResetCompleteRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Set; every session of the customer ended: log in anew"),
        (status = 400, description = "PASSWORD_REJECTED (with reasons) or VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "UNAUTHENTICATED or SESSION_EXPIRED", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "TWO_FACTOR_REQUIRED: the customer holds a factor the session has not proved", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: not a password reset's session", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
    ))]
pub async fn complete_reset(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetCompleteRequest>,
) -> ApiResult<Response> {
    let new = Password::parse(body.new_password)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("newPassword", e.0)]))?;
    state
        .auth
        .complete_password_reset(&session, &new, &client)
        .await?;
    Ok((StatusCode::NO_CONTENT, no_store()).into_response())
}
