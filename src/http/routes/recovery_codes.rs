//! The signed-in customer's recovery codes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{NeedsRecentSession, ProblemDocument};
use crate::domain::audit::rfc3339;
use crate::http::error::{ApiResult, no_store};
use crate::http::extract::{AuthSession, Client};
use crate::http::state::AppState;

/// `customers/me/recovery-codes`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_recovery_codes))
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    /// Ten codes, shown this once; case, spaces and dashes do not matter when one is typed.
    codes: Vec<String>,
    created_at: String,
}

/// Make ten recovery codes, replacing any earlier set; the customer is told.
#[utoipa::path(post, path = "/api/v1/customers/me/recovery-codes", tag = "credentials", operation_id = "create_recovery_codes",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Made; shown this once", body = RecoveryCodesResponse),
        NeedsRecentSession,
        (status = 409, description = "FACTOR_REQUIRED: the customer holds no second factor", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn create_recovery_codes(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
) -> ApiResult<Response> {
    let made = state.auth.create_recovery_codes(&session, &client).await?;
    let body = RecoveryCodesResponse {
        codes: made.codes.iter().map(|c| c.display()).collect(),
        created_at: rfc3339(made.created_at),
    };
    Ok((StatusCode::CREATED, no_store(), Json(body)).into_response())
}
