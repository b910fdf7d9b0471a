//! The customer's own security view ("Account security" in the contract): sessions, devices
//! and sign-in history. Every route needs an ACTIVE session.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{NeedsActiveSession, ProblemDocument};
use crate::domain::audit::rfc3339;
use crate::domain::auth::security::{Cursor, EventPage, LiveSession, PageSize, SecurityEvent};
use crate::domain::risk::device::{DeviceId, DeviceRef, KnownDevice};
use crate::domain::sessions::{Session, SessionId};
use crate::http::error::{ApiError, ApiResult, FieldError, no_store};
use crate::http::extract::{AuthSession, Client};
use crate::http::schema;
use crate::http::state::AppState;

/// The customer's own security views: live sessions, known devices and the security history.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
        .routes(routes!(list_devices))
        .routes(routes!(forget_device))
        .routes(routes!(security_events))
}

/// Ids are UUIDs; anything much longer is no id of ours.
const MAX_ID: usize = 64;

/// An id from the path; one longer than any of ours is answered like an unknown one.
fn own_id(id: String) -> ApiResult<String> {
    if id.len() > MAX_ID {
        return Err(ApiError::NotFound);
    }
    Ok(id)
}

/// The answer once a session is ended or a device forgotten: nothing, and nothing to cache.
fn no_content() -> Response {
    (no_store(), StatusCode::NO_CONTENT).into_response()
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRefView {
    id: String,
    name: Option<String>,
}

impl From<DeviceRef> for DeviceRefView {
    fn from(d: DeviceRef) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name,
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveSessionView {
    id: String,
    #[schema(value_type = schema::SessionState)]
    state: &'static str,
    created_at: String,
    /// The last authenticated call, to within the service's activity resolution.
    last_seen_at: String,
    expires_at: String,
    /// The login's address.
    ip: Option<String>,
    /// ISO 3166 alpha-2, or `null` when unknown.
    country: Option<String>,
    user_agent: Option<String>,
    device: Option<DeviceRefView>,
    /// The caller's own session.
    current: bool,
}

impl LiveSessionView {
    fn new(s: LiveSession, caller: &Session) -> Self {
        Self {
            current: s.id == caller.id,
            id: s.id.to_string(),
            state: s.state.as_str(),
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            country: s.country,
            user_agent: s.user_agent,
            device: s.device.map(DeviceRefView::from),
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<LiveSessionView>,
}

/// The customer's live sessions, newest first; exactly one is the caller's (`current`).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "account security", operation_id = "list_sessions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        NeedsActiveSession,
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> ApiResult<Response> {
    let sessions = state.auth.own_sessions(&session).await?;
    let sessions = sessions
        .into_iter()
        .map(|s| LiveSessionView::new(s, &session))
        .collect();
    Ok((no_store(), Json(SessionList { sessions })).into_response())
}

/// End a live session of the customer's at once, on every instance (the current one: a logout).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "account security", operation_id = "end_session",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Ended"),
        NeedsActiveSession,
        (status = 404, description = "NOT_FOUND: no live session of the customer's has this id", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn end_session(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = SessionId::from_stored(own_id(id)?);
    state.auth.end_own_session(&session, &id, &client).await?;
    Ok(no_content())
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    id: String,
    /// The latest name sent with it.
    name: Option<String>,
    first_seen_at: String,
    last_seen_at: String,
    last_ip: Option<String>,
    last_country: Option<String>,
    /// Its live ACTIVE sessions.
    active_sessions: u64,
}

impl From<KnownDevice> for DeviceView {
    fn from(d: KnownDevice) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name,
            first_seen_at: rfc3339(d.first_seen_at),
            last_seen_at: rfc3339(d.last_seen_at),
            last_ip: d.last_ip,
            last_country: d.last_country,
            active_sessions: d.active_sessions,
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    devices: Vec<DeviceView>,
}

/// The devices the customer signed in from with the right password, last seen first.
#[utoipa::path(get, path = "/api/v1/customers/me/devices", tag = "account security", operation_id = "list_devices",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Devices", body = DeviceList),
        NeedsActiveSession,
    ))]
pub async fn list_devices(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
) -> ApiResult<Response> {
    let devices = state.auth.own_devices(&session).await?;
    let devices = devices.into_iter().map(DeviceView::from).collect();
    Ok((no_store(), Json(DeviceList { devices })).into_response())
}

/// Forget a device and end its sessions at once; its next login records it as new again.
#[utoipa::path(delete, path = "/api/v1/customers/me/devices/{id}", tag = "account security", operation_id = "forget_device",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The device's id")),
    responses(
        (status = 204, description = "Forgotten"),
        NeedsActiveSession,
        (status = 404, description = "NOT_FOUND: the customer has no device with this id", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
pub async fn forget_device(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Client(client): Client,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = DeviceId::from_stored(own_id(id)?);
    state.auth.forget_device(&session, &id, &client).await?;
    Ok(no_content())
}

/// `?limit=…&before=…`, read as text so that a bad value is a VALIDATION_ERROR on its field.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// 1 to 100 [50].
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// The `next` of the previous page.
    before: Option<String>,
}

impl EventsQuery {
    fn parse(self) -> Result<(PageSize, Option<Cursor>), ApiError> {
        let mut errors = Vec::new();
        let size = match self.limit {
            None => PageSize::DEFAULT,
            Some(text) => text
                .parse::<i64>()
                .ok()
                .and_then(|n| PageSize::new(n).ok())
                .unwrap_or_else(|| {
                    errors.push(FieldError::new(
                        "limit",
                        "must be a whole number from 1 to 100",
                    ));
                    PageSize::DEFAULT
                }),
        };
        let before = self
            .before
            .map(|text| Cursor::parse(&text))
            .transpose()
            .map_err(|e| errors.push(FieldError::new("before", e.0)))
            .ok()
            .flatten();
        if errors.is_empty() {
            Ok((size, before))
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEventView {
    id: String,
    at: String,
    /// An audit trail kind, e.g. `login.succeeded`.
    #[schema(value_type = schema::AuditKind)]
    kind: &'static str,
    #[schema(value_type = schema::Outcome)]
    outcome: &'static str,
    reason: Option<String>,
    ip: Option<String>,
    country: Option<String>,
    device: Option<DeviceRefView>,
    /// Why the login was judged unusual; empty when it was not.
    #[schema(value_type = Vec<schema::RiskFlag>)]
    flags: Vec<String>,
}

impl From<SecurityEvent> for SecurityEventView {
    fn from(e: SecurityEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            kind: e.kind.as_str(),
            outcome: e.outcome.as_str(),
            reason: e.reason,
            ip: e.ip,
            country: e.country,
            device: e.device.map(DeviceRefView::from),
            flags: e.flags,
        }
    }
}

#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventPage {
    events: Vec<SecurityEventView>,
    /// Pass as `before` for the next (older) page; `null` when there is none.
    next: Option<String>,
}

impl From<EventPage> for SecurityEventPage {
    fn from(page: EventPage) -> Self {
        Self {
            events: page
                .events
                .into_iter()
                .map(SecurityEventView::from)
                .collect(),
            next: page.next.map(|c| c.to_string()),
        }
    }
}

/// The customer's own sign-in history from the audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/customers/me/security-events", tag = "account security", operation_id = "security_events",
    security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = SecurityEventPage),
        (status = 400, description = "VALIDATION_ERROR: limit or before", body = ProblemDocument, content_type = "application/problem+json"),
        NeedsActiveSession,
    ))]
pub async fn security_events(
    State(state): State<AppState>,
    AuthSession(session): AuthSession,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Response> {
    let (size, before) = query.parse()?;
    let page = state.auth.security_events(&session, size, before).await?;
    Ok((no_store(), Json(SecurityEventPage::from(page))).into_response())
}
