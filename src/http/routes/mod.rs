//! One module per resource, each exporting a `router()`.

pub mod customers;
pub mod factor_views;
pub mod factors;
pub mod health;
pub mod lockdown;
pub mod passkey_login;
pub mod password;
pub mod password_reset;
pub mod recovery_codes;
pub mod security;
pub mod sessions;
pub mod step_up;
pub mod two_factor;

use std::collections::BTreeMap;

use axum::Json;
use axum::response::IntoResponse as _;
use serde::Serialize;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{IntoResponses, ToSchema};

use crate::domain::audit::rfc3339;
use crate::domain::auth::IssuedSession;
use crate::http::error::no_store;
pub use crate::http::problem::ProblemDocument;

/// The body of every response that issues tokens (login, 2FA verification, refresh).
#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
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
    /// Present (`true`) only when two-factor is required and the customer must first add and
    /// confirm a factor.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enrolment_required: bool,
}

/// The answer of every call that issues tokens; tokens are never cached.
pub fn tokens_issued(issued: IssuedSession) -> axum::response::Response {
    (no_store(), Json(TokenResponse::from(issued))).into_response()
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
            enrolment_required: s.enrolment_required,
        }
    }
}

/// A problem+json response entry of the OpenAPI document.
pub fn problem_response(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ProblemDocument::name())))
                .build(),
        )
        .build()
        .into()
}

fn problem_responses<const N: usize>(
    entries: [(&str, &str); N],
) -> BTreeMap<String, RefOr<Response>> {
    entries
        .into_iter()
        .map(|(status, description)| (status.to_owned(), problem_response(description)))
        .collect()
}

const UNAUTHENTICATED: (&str, &str) = ("401", "UNAUTHENTICATED or SESSION_EXPIRED");

/// The refusals of a call that needs a session, pending or active (`responses(NeedsSession)`).
pub struct NeedsSession;

impl IntoResponses for NeedsSession {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([UNAUTHENTICATED])
    }
}

/// The refusals of a call that needs an ACTIVE session: a pending one is refused as well.
pub struct NeedsActiveSession;

impl IntoResponses for NeedsActiveSession {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([UNAUTHENTICATED, ("403", "TWO_FACTOR_REQUIRED")])
    }
}

/// The refusals of a two-factor call: it needs a session that still awaits its second factor.
pub struct NeedsPendingSession;

impl IntoResponses for NeedsPendingSession {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([UNAUTHENTICATED, ("409", "TWO_FACTOR_NOT_PENDING")])
    }
}

/// The refusal of a call that sends a code past the sending limits (`responses(SendLimited)`).
pub struct SendLimited;

impl IntoResponses for SendLimited {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([(
            "429",
            "TOO_MANY_2FA_ATTEMPTS: sent too recently or too often",
        )])
    }
}

/// The refusal of a call that a locked account cannot make (`responses(AccountLocked)`).
pub struct AccountLocked;

impl IntoResponses for AccountLocked {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([("423", "ACCOUNT_LOCKED")])
    }
}

/// The refusals of a call that changes how the customer signs in: it needs an ACTIVE session
/// that proved a second factor recently.
pub struct NeedsRecentSession;

impl IntoResponses for NeedsRecentSession {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problem_responses([
            UNAUTHENTICATED,
            (
                "403",
                "TWO_FACTOR_REQUIRED, or RECENT_AUTHENTICATION_REQUIRED (with methods)",
            ),
        ])
    }
}
