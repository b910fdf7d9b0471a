//! The signed-in customer's second factors: listed, added, confirmed, updated, removed (what
//! these calls answer: `factor_views.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::factor_views::{FactorAddedResponse, FactorResponse};
use super::two_factor::{bounded_code, credential_object};
use super::{
    AccountLocked, NeedsActiveSession, NeedsRecentSession, ProblemDocument, TokenResponse,
};
use crate::domain::auth::{NewFactor, Presented};
use crate::domain::credentials::factor::{FactorId, FactorName, FactorUpdate, TwoFactorMethod};
use crate::domain::customers::{Email, Phone};
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::schema;
use crate::http::state::AppState;

/// `customers/me/factors`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_factors, add_factor))
        .routes(routes!(confirm_factor))
        .routes(routes!(update_factor, remove_factor))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorListResponse {
    /// Confirmed factors, oldest first.
    factors: Vec<FactorResponse>,
    recovery_codes_remaining: u32,
}

/// The customer's confirmed second factors, and how many recovery codes remain.
#[utoipa::path(get, path = "/api/v1/customers/me/factors", tag = "credentials", operation_id = "list_factors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The factors", body = FactorListResponse),
        NeedsActiveSession,
    ))]
pub async fn list_factors(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> ApiResult<Response> {
    let list = state.auth.factors_of(&session).await?;
    let body = FactorListResponse {
        factors: list.factors.into_iter().map(FactorResponse::from).collect(),
        recovery_codes_remaining: list.recovery_codes_remaining,
    };
    Ok((no_store(), Json(body)).into_response())
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddFactorRequest {
    #[schema(value_type = schema::TwoFactorMethod)]
    method: TwoFactorMethod,
    /// What the customer calls it: 1 to 64 characters.
    #[schema(max_length = 64)]
    name: Option<String>,
    /// `SMS` only: the new phone (E.164), which the confirmation code goes to.
    phone: Option<String>,
    /// `EMAIL` only: the new mailbox, which the confirmation code goes to.
    email: Option<String>,
}

/// Add a second factor, unusable until confirmed (and dropped if not confirmed in time): an
/// authenticator app gets its secret; a phone or mailbox gets a code, so only a destination the
/// customer controls is ever used. Needs a recent second factor, except for the first factor of
/// a customer who has none.
#[utoipa::path(post, path = "/api/v1/customers/me/factors", tag = "credentials", operation_id = "add_factor",
    request_body = AddFactorRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Added, unconfirmed", body = FactorAddedResponse),
        (status = 400, description = "VALIDATION_ERROR: a field is malformed, or the customer already holds 20 factors", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsRecentSession,
        AccountLocked,
        (status = 429, description = "TOO_MANY_2FA_ATTEMPTS: codes sent too recently or too often", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn add_factor(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<AddFactorRequest>,
) -> ApiResult<Response> {
    let new = new_factor(body)?;
    let added = state.auth.add_factor(&session, new, &client).await?;
    Ok((
        StatusCode::CREATED,
        no_store(),
        Json(FactorAddedResponse::from(added)),
    )
        .into_response())
}

/// The factor a request asks for, or every field that is wrong.
fn new_factor(body: AddFactorRequest) -> ApiResult<NewFactor> {
    let mut errors = Vec::new();
    let name = match body.name.as_deref().map(FactorName::parse).transpose() {
        Ok(name) => name,
        Err(e) => {
            errors.push(FieldError::new("name", e.0));
            None
        }
    };
    let misplaced = |field: &'static str, errors: &mut Vec<FieldError>| {
        errors.push(FieldError::new(field, "is not taken by this method"));
    };
    let required = |field: &'static str, errors: &mut Vec<FieldError>| {
        errors.push(FieldError::new(field, "is required by this method"));
    };
    let new = match body.method {
        TwoFactorMethod::Totp => {
            if body.phone.is_some() {
                misplaced("phone", &mut errors);
            }
            if body.email.is_some() {
                misplaced("email", &mut errors);
            }
            Some(NewFactor::App { name })
        }
        TwoFactorMethod::Sms => {
            if body.email.is_some() {
                misplaced("email", &mut errors);
            }
            match body.phone.as_deref().map(Phone::parse) {
                Some(Ok(phone)) => Some(NewFactor::Sms { phone, name }),
                Some(Err(e)) => {
                    errors.push(FieldError::new("phone", e.0));
                    None
                }
                None => {
                    required("phone", &mut errors);
                    None
                }
            }
        }
        TwoFactorMethod::Passkey => {
            if body.phone.is_some() {
                misplaced("phone", &mut errors);
            }
            if body.email.is_some() {
                misplaced("email", &mut errors);
            }
            Some(NewFactor::Passkey { name })
        }
        TwoFactorMethod::Email => {
            if body.phone.is_some() {
                misplaced("phone", &mut errors);
            }
            match body.email.as_deref().map(Email::parse) {
                Some(Ok(email)) => Some(NewFactor::Email { email, name }),
                Some(Err(e)) => {
                    errors.push(FieldError::new("email", e.0));
                    None
                }
                None => {
                    required("email", &mut errors);
                    None
                }
            }
        }
    };
    match new {
        Some(new) if errors.is_empty() => Ok(new),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// A confirmation code, or a new passkey's registration. (No `Debug`: it holds the code.)
#[derive(Deserialize, ToSchema)]
pub struct ConfirmFactorRequest {
    /// Six digits: the code sent to the new phone or mailbox, or the app's current code.
    #[schema(min_length = 1, max_length = 64)]
    code: Option<String>,
    /// `PASSKEY`: the `RegistrationResponseJSON` of `navigator.credentials.create`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Serialize, ToSchema)]
pub struct FactorConfirmed {
    factor: FactorResponse,
    /// Only for a session that had to enrol a factor: it is ACTIVE now, with these tokens (the
    /// old ones no longer work).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<TokenResponse>,
}

/// Confirm an added factor with its code: it becomes usable (the default, if it is the first),
/// the session counts as recently authenticated, and the customer is told. The fifth wrong code
/// drops the factor; wrong codes do not count toward the lockout.
#[utoipa::path(post, path = "/api/v1/customers/me/factors/{factorId}/confirm", tag = "credentials", operation_id = "confirm_factor",
    params(("factorId" = String, Path, description = "From `POST customers/me/factors`")),
    request_body = ConfirmFactorRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed", body = FactorConfirmed),
        (status = 400, description = "INVALID_2FA_CODE (with attemptsRemaining), 2FA_CODE_EXPIRED or VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsActiveSession,
        (status = 404, description = "NOT_FOUND: no such unconfirmed factor of this session's customer, or expired", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
        (status = 429, description = "TOO_MANY_2FA_ATTEMPTS: the fifth wrong code dropped the factor", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn confirm_factor(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    Path(factor_id): Path<String>,
    ApiJson(body): ApiJson<ConfirmFactorRequest>,
) -> ApiResult<Response> {
    let factor = path_factor(factor_id)?;
    let answer = match (body.code, body.credential) {
        (Some(code), None) => bounded_code(code)
            .map(Presented::Code)
            .map_err(|e| FieldError::new("code", e.0)),
        (None, Some(credential)) => credential_object(credential),
        _ => Err(FieldError::new(
            "code",
            "exactly one of code and credential is required",
        )),
    }
    .map_err(|e| ApiError::Validation(vec![e]))?;
    let (confirmed, issued) = state
        .auth
        .confirm_factor(&session, &factor, answer, &client)
        .await?;
    let body = FactorConfirmed {
        factor: FactorResponse::from(confirmed),
        token: issued.map(TokenResponse::from),
    };
    Ok((no_store(), Json(body)).into_response())
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateFactorRequest {
    /// `true` makes it the default (another factor is made the default by naming that one).
    default: Option<bool>,
    /// A new name: 1 to 64 characters.
    #[schema(max_length = 64)]
    name: Option<String>,
}

/// Rename a factor or make it the default.
#[utoipa::path(patch, path = "/api/v1/customers/me/factors/{factorId}", tag = "credentials", operation_id = "update_factor",
    params(("factorId" = String, Path, description = "From `GET customers/me/factors`")),
    request_body = UpdateFactorRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = FactorResponse),
        (status = 400, description = "VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsRecentSession,
        (status = 404, description = "NOT_FOUND: the customer holds no such factor", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn update_factor(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    Path(factor_id): Path<String>,
    ApiJson(body): ApiJson<UpdateFactorRequest>,
) -> ApiResult<Response> {
    let factor = path_factor(factor_id)?;
    let mut errors = Vec::new();
    if body.default == Some(false) {
        errors.push(FieldError::new(
            "default",
            "must be true: make another factor the default instead",
        ));
    }
    if body.default.is_none() && body.name.is_none() {
        errors.push(FieldError::new("default", "default or name is required"));
    }
    let name = match body.name.as_deref().map(FactorName::parse).transpose() {
        Ok(name) => name,
        Err(e) => {
            errors.push(FieldError::new("name", e.0));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let update = FactorUpdate {
        make_default: body.default == Some(true),
        name,
    };
    let updated = state
        .auth
        .update_factor(&session, &factor, update, &client)
        .await?;
    Ok((no_store(), Json(FactorResponse::from(updated))).into_response())
}

/// Remove a factor: the default moves to the oldest remaining one; removing the last turns
/// two-factor off and drops the recovery codes. The customer is told.
#[utoipa::path(delete, path = "/api/v1/customers/me/factors/{factorId}", tag = "credentials", operation_id = "remove_factor",
    params(("factorId" = String, Path, description = "From `GET customers/me/factors`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        NeedsRecentSession,
        (status = 404, description = "NOT_FOUND: the customer holds no such factor", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn remove_factor(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    Path(factor_id): Path<String>,
) -> ApiResult<Response> {
    let factor = path_factor(factor_id)?;
    state.auth.remove_factor(&session, &factor, &client).await?;
    Ok((StatusCode::NO_CONTENT, no_store()).into_response())
}

/// A factor id from the path: anything else than a short printable id is no factor.
fn path_factor(raw: String) -> ApiResult<FactorId> {
    if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        Err(ApiError::NotFound)
    } else {
        Ok(FactorId::from_stored(raw))
    }
}
