//! The signed-in customer's password.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AccountLocked, ProblemDocument};
use crate::domain::credentials::password::Password;
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::state::AppState;

/// `POST /customers/me/password`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password))
}

/// The current password and the new one. (No `Debug`: it holds both.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangeRequest {
    #[schema(format = Password, min_length = 1)]
    current_password: String,
    /// 12 to 128 characters (`FINHUB_PASSWORD_MIN_LENGTH`), not a common password, without the
    /// customer's own names, not the current one.
    #[schema(format = Password, min_length = 1)]
    new_password: String,
}

/// Change the password: every other session of the customer ends at once, this one stays, and
/// the customer is told at every destination they hold.
#[utoipa::path(post, path = "/api/v1/customers/me/password", tag = "credentials", operation_id = "change_password",
    request_body = PasswordChangeRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; the other sessions ended"),
        (status = 400, description = "PASSWORD_REJECTED (with reasons) or VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "INVALID_CREDENTIALS: the current password is wrong (a failure toward the lock); UNAUTHENTICATED or SESSION_EXPIRED", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "TWO_FACTOR_REQUIRED, or RECENT_AUTHENTICATION_REQUIRED (with methods) when the customer holds a second factor not proved recently", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> ApiResult<Response> {
    let current = Password::parse(body.current_password);
    let new = Password::parse(body.new_password);
    let (current, new) = match (current, new) {
        (Ok(current), Ok(new)) => (current, new),
        (current, new) => {
            let errors = [
                ("currentPassword", current.err()),
                ("newPassword", new.err()),
            ]
            .into_iter()
            .filter_map(|(field, e)| e.map(|e| FieldError::new(field, e.0)))
            .collect();
            return Err(ApiError::Validation(errors));
        }
    };
    state
        .auth
        .change_password(&session, &current, &new, &client)
        .await?;
    Ok((StatusCode::NO_CONTENT, no_store()).into_response())
}
