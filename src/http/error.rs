//! The one mapping from errors to responses: RFC 9457 problem details with the contract's
//! `code`, the request id, and the headers the contract asks for. Internal detail is logged,
//! never sent.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::Duration;

pub use super::problem::FieldError;
use super::problem::Problem;
use crate::domain::audit::rfc3339;
use crate::domain::error::AuthError;

/// Everything an API call can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal by the login flow, answered with its own code and status.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The same, from a call whose refusals the domain audits itself (a replayed refresh
    /// token, a guess at a code): answered alike, never counted again as `request.refused`.
    #[error(transparent)]
    Audited(AuthError),
    /// A call that needs a session came without an `Authorization: Bearer` header.
    #[error("no bearer token")]
    MissingToken,
    /// Fields that failed validation, each named in the problem's `errors`.
    #[error("invalid fields")]
    Validation(Vec<FieldError>),
    /// A body or header the API cannot read at all (bad JSON, wrong content type, too large).
    #[error("malformed request: {detail}")]
    Malformed {
        /// The status to answer, such as 400, 413 or 415.
        status: StatusCode,
        /// What was wrong, sent to the client: a fixed text, never input echoed back.
        detail: &'static str,
    },
    /// No such route or resource: an id that cannot exist is answered like one that does not.
    #[error("not found")]
    NotFound,
    /// A route that exists, called with a method it does not accept.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request took longer than `FINHUB_REQUEST_TIMEOUT`: 503, retry later.
    #[error("request timed out")]
    Timeout,
    /// A fault of the service: the detail is logged under the request id, the client gets only a
    /// generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

const BEARER: &str = r#"Bearer realm="finhub""#;
const BEARER_INVALID: &str = r#"Bearer realm="finhub", error="invalid_token""#;
const BEARER_EXPIRED: &str =
    r#"Bearer realm="finhub", error="invalid_token", error_description="the session has expired""#;

impl ApiError {
    fn problem(&self) -> Problem {
        use StatusCode as S;
        match self {
            Self::Auth(e) | Self::Audited(e) => auth_problem(e),
            Self::MissingToken => unauthenticated("this call needs a bearer token", BEARER),
            Self::Validation(errors) => Problem::new(
                S::BAD_REQUEST,
                "VALIDATION_ERROR",
                "Invalid request",
                "one or more fields are invalid",
            )
            .errors(errors.clone()),
            Self::Malformed { status, detail } => {
                Problem::new(*status, "MALFORMED_REQUEST", "Malformed request", *detail)
            }
            Self::NotFound => not_found(),
            Self::MethodNotAllowed => Problem::new(
                S::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                "this route does not accept that method",
            ),
            Self::Timeout => unavailable(
                "the request took too long; retry later",
                Duration::seconds(1),
            ),
            Self::Internal(_) => internal(),
        }
    }
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "Internal error",
        "an unexpected error occurred; quote the requestId to support",
    )
}

/// Whether no route matched or the domain found no such resource: the client cannot tell which.
fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "Not found",
        "no such route or resource",
    )
}

/// A missing or unusable token, with the `WWW-Authenticate` challenge that says which.
fn unauthenticated(detail: &'static str, challenge: &'static str) -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Unauthenticated",
        detail,
    )
    .challenge(challenge)
}

/// Refused for now: `code` says which limit was reached, and the client may retry after
/// `retry_after`.
fn too_many_requests(
    code: &'static str,
    title: &'static str,
    detail: &'static str,
    retry_after: Duration,
) -> Problem {
    Problem::new(StatusCode::TOO_MANY_REQUESTS, code, title, detail).retry_after(retry_after)
}

/// Worth retrying after `retry_after`; `detail` says what is short.
fn unavailable(detail: &'static str, retry_after: Duration) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVICE_UNAVAILABLE",
        "Service unavailable",
        detail,
    )
    .retry_after(retry_after)
}

fn auth_problem(e: &AuthError) -> Problem {
    use StatusCode as S;
    match e {
        AuthError::InvalidCredentials => Problem::new(
            S::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
            "Invalid credentials",
            "the username or password is incorrect",
        )
        .challenge(BEARER),
        AuthError::AccountLocked { until } => {
            let p = Problem::new(
                S::LOCKED,
                "ACCOUNT_LOCKED",
                "Account locked",
                "the account is locked; try again later or contact support",
            );
            match until {
                Some(t) => p.locked_until(rfc3339(*t)),
                None => p,
            }
        }
        AuthError::Unauthenticated => unauthenticated(
            "the token is missing, malformed, unknown or revoked",
            BEARER_INVALID,
        ),
        AuthError::SessionExpired => Problem::new(
            S::UNAUTHORIZED,
            "SESSION_EXPIRED",
            "Session expired",
            "the session has expired; log in again",
        )
        .challenge(BEARER_EXPIRED),
        AuthError::TwoFactorRequired => Problem::new(
            S::FORBIDDEN,
            "TWO_FACTOR_REQUIRED",
            "Two-factor authentication required",
            "complete two-factor authentication first",
        ),
        AuthError::NotFound => not_found(),
        AuthError::TwoFactorNotPending => Problem::new(
            S::CONFLICT,
            "TWO_FACTOR_NOT_PENDING",
            "Two-factor not pending",
            "this session is not awaiting two-factor authentication",
        ),
        AuthError::InvalidCode { attempts_remaining } => Problem::new(
            S::BAD_REQUEST,
            "INVALID_2FA_CODE",
            "Invalid code",
            "the code is incorrect",
        )
        .attempts_remaining(*attempts_remaining),
        AuthError::CodeExpired => Problem::new(
            S::BAD_REQUEST,
            "2FA_CODE_EXPIRED",
            "Code expired",
            "the code is no longer valid; request a new one",
        ),
        AuthError::TooManyAttempts { retry_after } => too_many_requests(
            "TOO_MANY_2FA_ATTEMPTS",
            "Too many attempts",
            "too many codes were tried or sent",
            *retry_after,
        ),
        AuthError::RateLimited { retry_after } => too_many_requests(
            "RATE_LIMITED",
            "Too many requests",
            "the request rate is over the limit; retry later",
            *retry_after,
        ),
        AuthError::RecentAuthenticationRequired { methods } => Problem::new(
            S::FORBIDDEN,
            "RECENT_AUTHENTICATION_REQUIRED",
            "Recent authentication required",
            "prove a second factor again (auth/step-up) and retry",
        )
        .methods(methods.iter().map(|m| m.as_str()).collect()),
        AuthError::EnrolmentRequired => Problem::new(
            S::FORBIDDEN,
            "TWO_FACTOR_ENROLMENT_REQUIRED",
            "Two-factor enrolment required",
            "add and confirm a second factor (customers/me/factors) first",
        ),
        AuthError::PasswordResetInProgress => Problem::new(
            S::FORBIDDEN,
            "PASSWORD_RESET_IN_PROGRESS",
            "Password reset in progress",
            "this session may only prove a second factor, set the new password (auth/password-reset/complete) or log out",
        ),
        AuthError::FactorRequired => Problem::new(
            S::CONFLICT,
            "FACTOR_REQUIRED",
            "Factor required",
            "this needs a second factor the customer does not hold, or would remove the last one",
        ),
        AuthError::PasswordRejected { reasons } => Problem::new(
            S::BAD_REQUEST,
            "PASSWORD_REJECTED",
            "Password rejected",
            "the new password does not meet the password policy",
        )
        .reasons(reasons.iter().map(|r| r.as_str()).collect()),
        AuthError::Invalid { field, problem } => {
            ApiError::Validation(vec![FieldError::new(*field, problem.0)]).problem()
        }
        AuthError::Overloaded => unavailable(
            "too many logins are in progress; retry shortly",
            Duration::seconds(1),
        ),
        AuthError::Unavailable(_) => unavailable(
            "the service cannot reach its store; retry later",
            Duration::seconds(5),
        ),
        AuthError::Internal(_) => internal(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(why) => tracing::error!(error = %why, "internal error"),
            Self::Auth(AuthError::Internal(why)) | Self::Audited(AuthError::Internal(why)) => {
                tracing::error!(error = ?why, "internal error")
            }
            Self::Auth(AuthError::Unavailable(why))
            | Self::Audited(AuthError::Unavailable(why)) => {
                metrics::counter!("finhub_store_unavailable_total").increment(1);
                tracing::warn!(error = %why, "store unavailable")
            }
            _ => {}
        }
        let problem = self.problem();
        let refused = super::refused::is_unaudited(&self).then(|| problem.code());
        let mut response = problem.into_response();
        if let Some(code) = refused {
            response
                .extensions_mut()
                .insert(super::refused::Refused(code));
        }
        response
    }
}

/// Turns any error response that is not yet a problem document (axum's own 405, a timeout, a
/// panic) into one, so that every error has the contract's shape.
pub fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::Malformed {
            status,
            detail: "the request body is too large",
        },
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout,
        s if s.is_client_error() => ApiError::Malformed {
            status: StatusCode::BAD_REQUEST,
            detail: "the request could not be understood",
        },
        _ => ApiError::Internal(format!("unhandled {status} response")),
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut problem = error.into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// `Cache-Control: no-store`, for successful responses that carry tokens or personal data.
pub fn no_store() -> [(HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        serde_json::from_slice(&to_bytes(response.into_body(), 4096).await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_bare_500_becomes_an_internal_error_problem_without_detail() {
        let plain = (
            StatusCode::INTERNAL_SERVER_ERROR,
            "panicked at src/secret.rs",
        )
            .into_response();
        let problem = ensure_problem(plain);
        assert_eq!(
            problem.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let json = body(problem).await;
        assert_eq!(json["code"], "INTERNAL_ERROR");
        assert!(!json.to_string().contains("secret.rs"));
    }

    #[tokio::test]
    async fn a_bare_405_keeps_its_allow_header() {
        let mut plain = StatusCode::METHOD_NOT_ALLOWED.into_response();
        plain
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        let problem = ensure_problem(plain);
        assert_eq!(problem.headers()[header::ALLOW], "POST");
        assert_eq!(body(problem).await["code"], "METHOD_NOT_ALLOWED");
    }

    #[tokio::test]
    async fn internal_errors_never_reach_the_body() {
        let response = ApiError::Auth(AuthError::Internal(anyhow::anyhow!(
            "SELECT password_hash FROM customers"
        )))
        .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let json = body(response).await;
        assert!(!json.to_string().contains("SELECT"));
    }
}
