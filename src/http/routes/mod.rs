//! One module per resource, each exporting a `router()`.

pub mod customers;
pub mod health;
pub mod security;
pub mod sessions;
pub mod two_factor;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::audit::rfc3339;
use crate::domain::auth::IssuedSession;
pub use crate::http::problem::ProblemDocument;

/// The body of every response that issues tokens (login, 2FA verification, refresh).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// The bearer token for API calls.
    pub bff_token: String,
    /// Renews the session once; then it is spent.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until `expiresAt`.
    pub expires_in: i64,
    pub expires_at: String,
    pub session_id: String,
    pub two_factor_required: bool,
}

impl From<IssuedSession> for TokenResponse {
    fn from(s: IssuedSession) -> Self {
        Self {
            bff_token: s.tokens.access.expose().to_owned(),
            refresh_token: s.tokens.refresh.expose().to_owned(),
            token_type: "Bearer",
            expires_in: (s.expires_at - s.issued_at).whole_seconds().max(0),
            expires_at: rfc3339(s.expires_at),
            session_id: s.session_id.to_string(),
            two_factor_required: s.two_factor_required,
        }
    }
}
