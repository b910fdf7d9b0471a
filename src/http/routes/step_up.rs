//! Step-up: an ACTIVE session proves a second factor again, for the calls that need a recent
//! one.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::two_factor::{
    ChallengeResponse, challenge_and_code, challenge_and_credential, challenge_opened, factor_id,
};
use super::{AccountLocked, NeedsActiveSession, ProblemDocument, SendLimited};
use crate::domain::audit::rfc3339;
use crate::domain::auth::Presented;
use crate::domain::credentials::challenge::{ChallengeId, ChallengeMethod};
use crate::domain::credentials::password::Password;
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::schema;
use crate::http::state::AppState;

/// Opening a step-up and answering it.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(step_up))
        .routes(routes!(verify_step_up))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Deserialize, ToSchema)]
pub struct StepUpRequest {
    /// One of the customer's own methods (`PASSWORD` only for a customer without a second
    /// factor); any other is refused (`VALIDATION_ERROR`).
    #[schema(value_type = schema::ChallengeMethod)]
    method: ChallengeMethod,
    /// One of the customer's factors of that method (else the default if it has the method,
    /// else the oldest); any other is refused (`VALIDATION_ERROR` on `factorId`).
    #[serde(rename = "factorId")]
    factor_id: Option<String>,
}

/// Ask an ACTIVE session to prove a second factor again: a code is sent (SMS, EMAIL, under the
/// limits of `2fa/initiate`, counted with its sends), or the password is asked for.
#[utoipa::path(post, path = "/api/v1/auth/step-up", tag = "two-factor", operation_id = "step_up",
    request_body = StepUpRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Challenge open (a code sent, or the password asked for)", body = ChallengeResponse),
        NeedsActiveSession,
        AccountLocked,
        SendLimited,
    ))]
pub async fn step_up(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<StepUpRequest>,
) -> ApiResult<Response> {
    let factor = factor_id(body.factor_id.as_deref())?;
    let issued = state
        .auth
        .step_up(&session, body.method, factor.as_ref(), &client)
        .await?;
    Ok(challenge_opened(issued))
}

/// An answer to a step-up: the code sent, or the password. (No `Debug`: it holds either.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepUpVerifyRequest {
    #[schema(min_length = 1, max_length = 64)]
    challenge_id: String,
    /// Six digits (SMS, EMAIL, TOTP) or a recovery code (case, spaces and dashes do not
    /// matter).
    #[schema(min_length = 1, max_length = 64)]
    code: Option<String>,
    /// The password, for a `PASSWORD` challenge.
    #[schema(format = Password)]
    password: Option<String>,
    /// `PASSKEY`: the `AuthenticationResponseJSON` of `navigator.credentials.get`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepUpVerified {
    /// Until when the session counts as recently authenticated.
    recent_authentication_until: String,
}

/// Answer a step-up; the right answer makes the session recently authenticated.
#[utoipa::path(post, path = "/api/v1/auth/step-up/verify", tag = "two-factor", operation_id = "verify_step_up",
    request_body = StepUpVerifyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recently authenticated", body = StepUpVerified),
        (status = 400, description = "INVALID_2FA_CODE (with attemptsRemaining), 2FA_CODE_EXPIRED or VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsActiveSession,
        AccountLocked,
        (status = 429, description = "TOO_MANY_2FA_ATTEMPTS: the challenge is burned", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn verify_step_up(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<StepUpVerifyRequest>,
) -> ApiResult<Response> {
    let (challenge, answer) = parse_answer(body)?;
    let until = state
        .auth
        .verify_step_up(&session, &challenge, answer, &client)
        .await
        .map_err(ApiError::Audited)?;
    let body = StepUpVerified {
        recent_authentication_until: rfc3339(until),
    };
    Ok((no_store(), Json(body)).into_response())
}

/// The challenge and exactly one of a code, a password and a passkey's credential.
fn parse_answer(body: StepUpVerifyRequest) -> ApiResult<(ChallengeId, Presented)> {
    match (body.code, body.password, body.credential) {
        (Some(code), None, None) => {
            let (challenge, code) = challenge_and_code(&body.challenge_id, code)?;
            Ok((challenge, Presented::Code(code)))
        }
        (None, None, Some(credential)) => challenge_and_credential(&body.challenge_id, credential),
        (None, Some(password), None) => {
            let challenge = ChallengeId::parse(&body.challenge_id)
                .map_err(|e| ApiError::Validation(vec![FieldError::new("challengeId", e.0)]))?;
            let password = Password::parse(password)
                .map_err(|e| ApiError::Validation(vec![FieldError::new("password", e.0)]))?;
            Ok((challenge, Presented::Password(password)))
        }
        _ => Err(ApiError::Validation(vec![FieldError::new(
            "code",
            "exactly one of code, password and credential is required",
        )])),
    }
}
