//! Login, renewal and logout.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AccountLocked, NeedsSession, ProblemDocument, TokenResponse, tokens_issued};
use crate::domain::auth::LogoutScope;
use crate::domain::credentials::challenge::OtpCode;
use crate::domain::credentials::password::Password;
use crate::domain::customers::Username;
use crate::domain::risk::client::{Device, DeviceName};
use crate::http::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::state::AppState;

/// Login, token renewal and logout.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token))
        .routes(routes!(refresh_token))
        .routes(routes!(logout))
}

/// Login credentials. (No `Debug`: it holds a password.)
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequest {
    /// Matched case-insensitively after trimming.
    #[schema(min_length = 1, max_length = 254)]
    username: String,
    /// 1 to 1,024 bytes.
    #[schema(min_length = 1, max_length = 1024)]
    password: String,
    device: Option<DeviceBody>,
    /// Six digits: an authenticator app's current code, for a login in one step (a customer
    /// without an app: ignored). With a wrong password or code, `INVALID_CREDENTIALS` says
    /// neither which.
    #[schema(pattern = "^[0-9]{6}$")]
    totp: Option<String>,
}

/// A login request's parts, parsed.
pub struct LoginInput {
    /// Normalised.
    pub username: Username,
    /// As received.
    pub password: Password,
    /// An authenticator app's code, for a login in one step.
    pub totp: Option<OtpCode>,
    /// The device the client names.
    pub device: Option<Device>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceBody {
    /// 1 to 512 bytes.
    #[schema(min_length = 1, max_length = 512)]
    fingerprint: String,
    /// At most 128 characters; no control or formatting characters, nothing that reads as a
    /// link or a domain. Shown only to the customer, as the device's own name.
    #[schema(max_length = 128)]
    name: Option<String>,
}

impl DeviceBody {
    /// The device the client names; what is wrong with it goes into `errors`.
    pub fn parse(self, errors: &mut Vec<FieldError>) -> Device {
        if self.fingerprint.is_empty() || self.fingerprint.len() > Device::MAX_FINGERPRINT {
            errors.push(FieldError::new(
                "device.fingerprint",
                "must be 1 to 512 bytes",
            ));
        }
        let name = self.name.as_deref().map(DeviceName::parse).transpose();
        let name = name
            .map_err(|e| errors.push(FieldError::new("device.name", e.0)))
            .ok()
            .flatten();
        Device {
            hashed_before: Vec::new(),
            fingerprint: self.fingerprint,
            name,
        }
    }
}

impl TokenRequest {
    /// The credentials as domain values, or every field that is wrong.
    pub fn parse(self) -> Result<LoginInput, ApiError> {
        let mut errors = Vec::new();
        let username = Username::parse(&self.username)
            .map_err(|e| errors.push(FieldError::new("username", e.0)))
            .ok();
        let password = Password::parse(self.password)
            .map_err(|e| errors.push(FieldError::new("password", e.0)))
            .ok();
        let device = self.device.map(|d| d.parse(&mut errors));
        let totp = self
            .totp
            .as_deref()
            .map(OtpCode::parse)
            .transpose()
            .map_err(|e| errors.push(FieldError::new("totp", e.0)))
            .ok()
            .flatten();
        match (username, password) {
            (Some(username), Some(password)) if errors.is_empty() => Ok(LoginInput {
                username,
                password,
                totp,
                device,
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }
}

/// Generate a session token from a username and password.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", operation_id = "create_token",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "Session started", body = TokenResponse),
        (status = 400, description = "VALIDATION_ERROR or MALFORMED_REQUEST", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "INVALID_CREDENTIALS", body = ProblemDocument, content_type = "application/problem+json"),
        AccountLocked,
        (status = 503, description = "SERVICE_UNAVAILABLE", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<Response> {
    let input = body.parse()?;
    let issued = state
        .auth
        .login(
            &input.username,
            &input.password,
            input.totp.as_ref(),
            &client.with_device(input.device),
        )
        .await?;
    Ok(tokens_issued(issued))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: String,
}

/// Renew a session: a new token pair for a refresh token, which is then spent.
#[utoipa::path(post, path = "/api/v1/auth/token/refresh", tag = "auth", operation_id = "refresh_token",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Tokens rotated", body = TokenResponse),
        (status = 401, description = "UNAUTHENTICATED (also on reuse, which revokes the session) or SESSION_EXPIRED", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "TWO_FACTOR_REQUIRED: the session is still pending", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn refresh_token(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    let issued = state
        .auth
        .refresh(&body.refresh_token, &client)
        .await
        .map_err(ApiError::Audited)?;
    Ok(tokens_issued(issued))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LogoutRequest {
    /// `all` ends every session of the customer; absent or `session`, only this one.
    #[serde(default)]
    scope: Option<LogoutScopeBody>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogoutScopeBody {
    Session,
    All,
}

/// Log out: the session's tokens are refused from now on.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    request_body(content = Option<LogoutRequest>, description = "optional"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        NeedsSession,
    ))]
pub async fn logout(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    ApiJson(body): ApiJson<LogoutRequest>,
) -> ApiResult<StatusCode> {
    let scope = match body.scope {
        Some(LogoutScopeBody::All) => LogoutScope::AllSessions,
        _ => LogoutScope::ThisSession,
    };
    state.auth.logout(&session, scope, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
