//! Extractors that turn requests into trusted values, answering bad input with the contract's
//! errors: JSON bodies, the bearer session, and the client's network facts.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::state::AppState;
use crate::domain::client::ClientContext;
use crate::domain::session::Session;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON body. Wrong content type → 415, too large → 413, not JSON → 400 `MALFORMED_REQUEST`;
/// JSON of the wrong shape → 400 `VALIDATION_ERROR` naming each field, never echoing a value.
/// An empty body counts as `{}`, for the endpoints whose body is optional.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::Malformed {
                status: axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                detail: "the request body is larger than 16 KiB",
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            let is_json = content_type.as_deref().is_some_and(|ct| {
                let essence = ct.split(';').next().unwrap_or("").trim();
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            });
            if !is_json {
                return Err(ApiError::Malformed {
                    status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    detail: "send the body as application/json",
                });
            }
            &bytes
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| ApiError::Malformed {
                status: axum::http::StatusCode::BAD_REQUEST,
                detail: "the body is not valid JSON",
            })?;
        if !value.is_object() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        }
        serde_path_to_error::deserialize(value)
            .map(ApiJson)
            .map_err(|e| ApiError::Validation(vec![field_error(&e)]))
    }
}

/// Names the field and the kind of problem, from serde's message, without the offending value.
fn field_error(e: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = e.inner().to_string();
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let field = if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        return FieldError::new(field, "is required");
    }
    let problem = if message.starts_with("invalid type") {
        "has the wrong type"
    } else if message.starts_with("unknown variant") {
        "is not one of the allowed values"
    } else if message.starts_with("invalid length") {
        "has the wrong length"
    } else {
        "is invalid"
    };
    FieldError::new(
        if path.is_empty() {
            "body".to_owned()
        } else {
            path
        },
        problem,
    )
}

/// The live session behind the request's bearer token.
pub struct AuthSession(pub Session);

impl FromRequestParts<AppState> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::MissingToken)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Auth(
                crate::domain::error::AuthError::Unauthenticated,
            ))?;
        Ok(Self(state.auth.authenticate(token).await?))
    }
}

/// The client's address (see [`super::client_ip`]) and user agent.
pub struct Client(pub ClientContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state.proxies.of_request(&parts.extensions, &parts.headers);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Ok(Self(ClientContext::new(ip, user_agent)))
    }
}
