//! The operations address's bearer token (`FINHUB_OPS_TOKEN_FILE`, ASVS 12.3.3): metrics and
//! readiness details only for the monitoring system that holds it; liveness stays open.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use super::error::ApiError;

/// The token the operations address asks for.
#[derive(Clone)]
pub struct OpsToken(SecretString);

impl OpsToken {
    /// The shortest token accepted: long enough that it cannot be guessed.
    pub const MIN_LEN: usize = 32;

    /// `token` (a file's contents, trimmed), unless too short to protect anything.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        (token.len() >= Self::MIN_LEN).then(|| Self(SecretString::from(token.to_owned())))
    }

    /// Lets the request through with `Authorization: Bearer <the token>`, compared in constant
    /// time; anything else is 401 `UNAUTHENTICATED`.
    pub async fn check(self, request: Request, next: Next) -> Response {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let expected = self.0.expose_secret().as_bytes();
        if bool::from(presented.as_bytes().ct_eq(expected)) {
            next.run(request).await
        } else {
            ApiError::MissingToken.into_response()
        }
    }
}
