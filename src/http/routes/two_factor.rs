//! Sending and checking two-factor codes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    AccountLocked, NeedsPendingSession, ProblemDocument, SendLimited, TokenResponse, tokens_issued,
};
use crate::domain::audit::rfc3339;
use crate::domain::auth::{ChallengeIssued, Presented};
use crate::domain::credentials::challenge::{CODE_LENGTH, ChallengeId, ChallengeMethod};
use crate::domain::credentials::factor::FactorId;
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, AuthCustomer, AuthSession, Client};
use crate::http::schema;
use crate::http::state::AppState;

/// Sending a code, verifying it, and reporting its delivery.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(initiate))
        .routes(routes!(verify))
        .routes(routes!(delivery))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct InitiateRequest {
    /// The customer's own method, or `RECOVERY_CODE` while codes remain, if named: any other
    /// is refused (`VALIDATION_ERROR`). Without it, the default factor.
    #[schema(value_type = Option<schema::ChallengeMethod>)]
    method: Option<ChallengeMethod>,
    /// One of the customer's factors of that method (else the default if it has the method,
    /// else the oldest); any other is refused (`VALIDATION_ERROR` on `factorId`).
    #[serde(rename = "factorId")]
    factor_id: Option<String>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    challenge_id: String,
    #[schema(value_type = schema::ChallengeMethod)]
    method: ChallengeMethod,
    /// Masked, e.g. `+44********89`; `null` when nothing is sent.
    destination: Option<String>,
    /// Digits of the code; `null` when the answer is not a code.
    code_length: Option<usize>,
    expires_at: String,
    /// `null` when nothing is sent.
    resend_available_at: Option<String>,
    /// `PASSKEY` only: `PublicKeyCredentialRequestOptions` in their JSON form, for
    /// `navigator.credentials.get`.
    #[serde(rename = "publicKey", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    public_key: Option<serde_json::Value>,
}

impl From<ChallengeIssued> for ChallengeResponse {
    fn from(issued: ChallengeIssued) -> Self {
        Self {
            challenge_id: issued.challenge_id.to_string(),
            method: issued.method,
            destination: issued.destination,
            code_length: issued.method.takes_six_digits().then_some(CODE_LENGTH),
            expires_at: rfc3339(issued.expires_at),
            resend_available_at: issued.resend_available_at.map(rfc3339),
            public_key: issued.public_key,
        }
    }
}

/// 202 with the challenge just opened.
pub(super) fn challenge_opened(issued: ChallengeIssued) -> Response {
    (
        StatusCode::ACCEPTED,
        no_store(),
        Json(ChallengeResponse::from(issued)),
    )
        .into_response()
}

/// Send a fresh code to a session awaiting two-factor authentication. A password reset's
/// session never gets one by e-mail (`VALIDATION_ERROR` on `method`), and one whose customer
/// holds nothing else answers `FACTOR_REQUIRED` 409.
#[utoipa::path(post, path = "/api/v1/auth/2fa/initiate", tag = "two-factor", operation_id = "initiate_two_factor",
    request_body(content = Option<InitiateRequest>, description = "`{}` or `{\"method\": \"SMS\" | \"EMAIL\"}`"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Code sent", body = ChallengeResponse),
        NeedsPendingSession,
        AccountLocked,
        SendLimited,
    ))]
pub async fn initiate(
    State(state): State<AppState>,
    AuthCustomer(session, customer): AuthCustomer,
    Client(client): Client,
    ApiJson(body): ApiJson<InitiateRequest>,
) -> ApiResult<Response> {
    let factor = factor_id(body.factor_id.as_deref())?;
    let issued = state
        .auth
        .initiate_two_factor(&session, &customer, body.method, factor.as_ref(), &client)
        .await?;
    Ok(challenge_opened(issued))
}

/// A code to check, or a passkey's assertion. (No `Debug`: it holds the code.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    #[schema(min_length = 1, max_length = 64)]
    challenge_id: String,
    /// Six digits (SMS, EMAIL, TOTP) or a recovery code (case, spaces and dashes do not
    /// matter).
    #[schema(min_length = 1, max_length = 64)]
    code: Option<String>,
    /// `PASSKEY`: the `AuthenticationResponseJSON` of `navigator.credentials.get`.
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// Check a code; the right one activates the session and rotates its tokens.
#[utoipa::path(post, path = "/api/v1/auth/2fa/verify", tag = "two-factor", operation_id = "verify_two_factor",
    request_body = VerifyRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Session active; tokens rotated", body = TokenResponse),
        (status = 400, description = "INVALID_2FA_CODE (with attemptsRemaining), 2FA_CODE_EXPIRED or VALIDATION_ERROR", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsPendingSession,
        AccountLocked,
        (status = 429, description = "TOO_MANY_2FA_ATTEMPTS: the challenge is burned", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    AuthCustomer(session, customer): AuthCustomer,
    Client(client): Client,
    ApiJson(body): ApiJson<VerifyRequest>,
) -> ApiResult<Response> {
    let (challenge, answer) = match (body.code, body.credential) {
        (Some(code), None) => {
            let (challenge, code) = challenge_and_code(&body.challenge_id, code)?;
            (challenge, Presented::Code(code))
        }
        (None, Some(credential)) => challenge_and_credential(&body.challenge_id, credential)?,
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "code",
                "exactly one of code and credential is required",
            )]));
        }
    };
    let issued = state
        .auth
        .verify_two_factor(&session, &customer, &challenge, answer, &client)
        .await
        .map_err(ApiError::Audited)?;
    Ok(tokens_issued(issued))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResponse {
    challenge_id: String,
    /// `PENDING` (queued or being retried), `SENT`, `FAILED` (ask for a new code: it can be sent
    /// at once) or `EXPIRED` (the code expired before it could be sent).
    #[schema(value_type = schema::DeliveryState)]
    delivery: &'static str,
}

/// Where the code of the session's challenge stands: sent, still on its way, or not sent.
#[utoipa::path(get, path = "/api/v1/auth/2fa/challenges/{challengeId}", tag = "two-factor", operation_id = "two_factor_delivery",
    params(("challengeId" = String, Path, description = "From `2fa/initiate`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The delivery's state", body = DeliveryResponse),
        NeedsPendingSession,
        (status = 404, description = "NOT_FOUND: no such challenge for this session", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn delivery(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    axum::extract::Path(challenge_id): axum::extract::Path<String>,
) -> ApiResult<Response> {
    let challenge = ChallengeId::parse(&challenge_id).map_err(|_| ApiError::NotFound)?;
    let delivery = state.auth.delivery_of(&session, &challenge).await?;
    let body = DeliveryResponse {
        challenge_id,
        delivery: delivery.as_str(),
    };
    Ok((no_store(), Json(body)).into_response())
}

/// A challenge id and a code, both within bounds (the challenge says how the code is read), or
/// every field that is wrong.
pub(super) fn challenge_and_code(
    challenge: &str,
    code: String,
) -> ApiResult<(ChallengeId, String)> {
    match (ChallengeId::parse(challenge), bounded_code(code)) {
        (Ok(challenge), Ok(code)) => Ok((challenge, code)),
        (challenge, code) => {
            let mut errors = Vec::new();
            if let Err(e) = challenge {
                errors.push(FieldError::new("challengeId", e.0));
            }
            if let Err(e) = code {
                errors.push(FieldError::new("code", e.0));
            }
            Err(ApiError::Validation(errors))
        }
    }
}

/// A challenge id and a passkey's credential (a JSON object, read by the challenge), or every
/// field that is wrong.
pub(super) fn challenge_and_credential(
    challenge: &str,
    credential: serde_json::Value,
) -> ApiResult<(ChallengeId, Presented)> {
    match (ChallengeId::parse(challenge), credential_object(credential)) {
        (Ok(challenge), Ok(credential)) => Ok((challenge, credential)),
        (challenge, credential) => {
            let mut errors = Vec::new();
            if let Err(e) = challenge {
                errors.push(FieldError::new("challengeId", e.0));
            }
            if let Err(e) = credential {
                errors.push(e);
            }
            Err(ApiError::Validation(errors))
        }
    }
}

/// A passkey's credential as an answer.
pub(super) fn credential_object(credential: serde_json::Value) -> Result<Presented, FieldError> {
    credential_json(credential).map(Presented::Credential)
}

/// A passkey's credential: the JSON object a browser's WebAuthn call gives.
pub(super) fn credential_json(
    credential: serde_json::Value,
) -> Result<serde_json::Value, FieldError> {
    if credential.is_object() {
        Ok(credential)
    } else {
        Err(FieldError::new(
            "credential",
            "must be the credential a browser's WebAuthn call gives, as a JSON object",
        ))
    }
}

/// A code of any method, before its challenge says how to read it: 1 to 64 characters.
pub(super) fn bounded_code(code: String) -> Result<String, crate::domain::InvalidValue> {
    if code.is_empty() || code.len() > 64 {
        Err(crate::domain::InvalidValue(
            "must be a code of 1 to 64 characters",
        ))
    } else {
        Ok(code)
    }
}

/// A `factorId` from a request: anything short and printable may be looked up (an unknown one
/// matches none of the customer's factors).
pub(super) fn factor_id(raw: Option<&str>) -> ApiResult<Option<FactorId>> {
    match raw {
        None => Ok(None),
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(FactorId::from_stored(id.to_owned())))
        }
        Some(_) => Err(ApiError::Validation(vec![FieldError::new(
            "factorId",
            "must be the id of one of the customer's factors",
        )])),
    }
}
