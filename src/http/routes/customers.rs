//! The signed-in customer's own record.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::ProblemDocument;
use crate::domain::audit::rfc3339;
use crate::domain::auth::CustomerDetails;
use crate::domain::customer::{Customer, KycStatus, TwoFactorMethod};
use crate::domain::session::{Session, SessionState};
use crate::http::error::{ApiResult, no_store};
use crate::http::extract::AuthSession;
use crate::http::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/customers/me", get(me))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorView {
    enabled: bool,
    method: Option<TwoFactorMethod>,
    /// Masked.
    destination: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: String,
    /// `TWO_FACTOR_PENDING` or `ACTIVE`.
    state: &'static str,
    expires_at: String,
    two_factor_verified: bool,
}

/// What an ACTIVE session sees.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerView {
    customer_id: String,
    username: String,
    email: String,
    phone: Option<String>,
    first_name: String,
    last_name: String,
    kyc_status: KycStatus,
    two_factor: TwoFactorView,
    /// When the current session completed login.
    last_login_at: Option<String>,
    /// The login before it.
    previous_login_at: Option<String>,
    session: SessionView,
}

/// What a session awaiting two-factor sees: no personal or KYC data.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestrictedCustomerView {
    customer_id: String,
    two_factor: TwoFactorView,
    session: SessionView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MeResponse {
    Full(CustomerView),
    Restricted(RestrictedCustomerView),
}

fn two_factor_view(c: &Customer) -> TwoFactorView {
    TwoFactorView {
        enabled: c.two_factor.is_some(),
        method: c.two_factor,
        destination: c.two_factor.and_then(|m| c.destination(m)),
    }
}

fn session_view(s: &Session) -> SessionView {
    SessionView {
        id: s.id.to_string(),
        state: s.state.as_str(),
        expires_at: rfc3339(s.expires_at),
        two_factor_verified: s.two_factor_verified,
    }
}

impl From<CustomerDetails> for MeResponse {
    fn from(
        CustomerDetails {
            customer: c,
            session: s,
        }: CustomerDetails,
    ) -> Self {
        match s.state {
            SessionState::TwoFactorPending => Self::Restricted(RestrictedCustomerView {
                customer_id: c.id.to_string(),
                two_factor: two_factor_view(&c),
                session: session_view(&s),
            }),
            SessionState::Active => Self::Full(CustomerView {
                customer_id: c.id.to_string(),
                two_factor: two_factor_view(&c),
                session: session_view(&s),
                username: c.username.to_string(),
                email: c.email.as_str().to_owned(),
                phone: c.phone.as_ref().map(|p| p.as_str().to_owned()),
                first_name: c.first_name.as_str().to_owned(),
                last_name: c.last_name.as_str().to_owned(),
                kyc_status: c.kyc_status,
                last_login_at: s.login_at.map(rfc3339),
                previous_login_at: s.previous_login_at.map(rfc3339),
            }),
        }
    }
}

/// The customer behind the session: the full view for ACTIVE sessions, the restricted view for
/// sessions awaiting two-factor.
#[utoipa::path(get, path = "/api/v1/customers/me", tag = "customers", operation_id = "get_customer",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The customer", body = MeResponse),
        (status = 401, description = "UNAUTHENTICATED or SESSION_EXPIRED", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn me(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> ApiResult<Response> {
    let details = state.auth.customer_details(session).await?;
    Ok((no_store(), Json(MeResponse::from(details))).into_response())
}
