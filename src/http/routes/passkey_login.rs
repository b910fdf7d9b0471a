//! Passwordless login with a passkey.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::sessions::DeviceBody;
use super::two_factor::credential_json;
use super::{AccountLocked, ProblemDocument, TokenResponse, tokens_issued};
use crate::domain::credentials::passkey_login::PasskeyLoginId;
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{ApiJson, Client, PasskeyLoginOn};
use crate::http::state::AppState;

/// `auth/passkey/options` and `auth/passkey`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(passkey_options))
        .routes(routes!(passkey_login))
}

/// `{}`: nothing is asked before the browser offers a passkey.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PasskeyOptionsRequest {}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyOptionsResponse {
    /// Named with the answer; valid for `FINHUB_2FA_CODE_TTL`, answered once.
    challenge_id: String,
    /// `PublicKeyCredentialRequestOptions` for discoverable credentials, in their JSON form.
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
}

/// Open a passkey login: options for `navigator.credentials.get` (discoverable credentials,
/// user verification required). Counts as a login from the client's address.
#[utoipa::path(post, path = "/api/v1/auth/passkey/options", tag = "auth", operation_id = "passkey_options",
    request_body(content = Option<PasskeyOptionsRequest>, description = "`{}`"),
    responses(
        (status = 200, description = "The ceremony's options", body = PasskeyOptionsResponse),
        (status = 404, description = "NOT_FOUND: passkey login is off", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "RATE_LIMITED", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn passkey_options(
    _on: PasskeyLoginOn,
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(_body): ApiJson<PasskeyOptionsRequest>,
) -> ApiResult<Response> {
    let options = state.auth.passkey_login_options(&client).await?;
    let body = PasskeyOptionsResponse {
        challenge_id: options.challenge_id.to_string(),
        public_key: options.public_key,
    };
    Ok((no_store(), Json(body)).into_response())
}

/// A passkey's assertion. (No `Debug`: it signs a login.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyLoginRequest {
    /// From `auth/passkey/options`: the ceremony, sealed (base64url).
    #[schema(min_length = 1, max_length = 2048)]
    challenge_id: String,
    /// The `AuthenticationResponseJSON` of `navigator.credentials.get`.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
    device: Option<DeviceBody>,
}

/// Sign in with a passkey: a verified assertion proves both factors, so the session is ACTIVE
/// at once. An unknown credential or a bad signature is `INVALID_CREDENTIALS` (a bad signature
/// for a known passkey counts toward its customer's lockout), as is a signature counter that
/// did not advance (audited).
#[utoipa::path(post, path = "/api/v1/auth/passkey", tag = "auth", operation_id = "passkey_login",
    request_body = PasskeyLoginRequest,
    responses(
        (status = 200, description = "Session started, ACTIVE", body = TokenResponse),
        (status = 400, description = "VALIDATION_ERROR (an unknown or spent challengeId, a credential that is not WebAuthn's JSON) or MALFORMED_REQUEST", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "INVALID_CREDENTIALS", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "NOT_FOUND: passkey login is off", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
        (status = 429, description = "RATE_LIMITED", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn passkey_login(
    _on: PasskeyLoginOn,
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<PasskeyLoginRequest>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let challenge = PasskeyLoginId::parse(&body.challenge_id)
        .map_err(|e| errors.push(FieldError::new("challengeId", e.0)))
        .ok();
    let credential = credential_json(body.credential)
        .map_err(|e| errors.push(e))
        .ok();
    let device = body.device.map(|d| d.parse(&mut errors));
    let (Some(challenge), Some(credential)) = (challenge, credential) else {
        return Err(ApiError::Validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let issued = state
        .auth
        .passkey_login(&challenge, &credential, &client.with_device(device))
        .await?;
    Ok(tokens_issued(issued))
}
