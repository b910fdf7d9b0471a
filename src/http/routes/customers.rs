//! The signed-in customer's own record.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::NeedsSession;
use crate::domain::audit::rfc3339;
use crate::domain::auth::{CustomerDetails, TwoFactorSettings};
use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::customers::KycStatus;
use crate::domain::sessions::Session;
use crate::http::error::{ApiResult, no_store};
use crate::http::extract::BearerToken;
use crate::http::schema;
use crate::http::state::AppState;

/// `GET /me`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TwoFactorView {
    enabled: bool,
    #[schema(value_type = Option<schema::TwoFactorMethod>)]
    method: Option<TwoFactorMethod>,
    /// Masked.
    destination: Option<String>,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    id: String,
    /// `TWO_FACTOR_PENDING`, `ENROLMENT_REQUIRED`, `PASSWORD_RESET` or `ACTIVE`.
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
    #[schema(value_type = schema::KycStatus)]
    kyc_status: KycStatus,
    two_factor: TwoFactorView,
    /// When the current session completed login.
    last_login_at: Option<String>,
    /// The login before it.
    previous_login_at: Option<String>,
    session: SessionView,
}

/// What a session awaiting two-factor sees: no personal or KYC data.
// `deny_unknown_fields` only shapes the schema (`additionalProperties: false`), so that a full
// view never also matches this one and `oneOf` stays exact.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestrictedCustomerView {
    customer_id: String,
    two_factor: TwoFactorView,
    session: SessionView,
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MeResponse {
    Full(CustomerView),
    Restricted(RestrictedCustomerView),
}

impl From<&TwoFactorSettings> for TwoFactorView {
    fn from(t: &TwoFactorSettings) -> Self {
        Self {
            enabled: t.method.is_some(),
            method: t.method,
            destination: t.masked_destination.clone(),
        }
    }
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id.to_string(),
            state: s.state.as_str(),
            expires_at: rfc3339(s.expires_at),
            two_factor_verified: s.two_factor_verified,
        }
    }
}

impl From<CustomerDetails> for MeResponse {
    fn from(details: CustomerDetails) -> Self {
        match details {
            CustomerDetails::Restricted {
                customer_id,
                two_factor,
                session,
            } => Self::Restricted(RestrictedCustomerView {
                customer_id: customer_id.to_string(),
                two_factor: TwoFactorView::from(&two_factor),
                session: SessionView::from(&session),
            }),
            CustomerDetails::Full {
                customer: c,
                two_factor,
                session: s,
            } => Self::Full(CustomerView {
                customer_id: c.id.to_string(),
                two_factor: TwoFactorView::from(&two_factor),
                session: SessionView::from(&s),
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
        NeedsSession,
    ))]
pub async fn me(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> ApiResult<Response> {
    let details = state.auth.customer_details(&token).await?;
    Ok((no_store(), Json(MeResponse::from(details))).into_response())
}
