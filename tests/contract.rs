//! The HTTP contract, kept by snapshots (`tests/snapshots/`): the OpenAPI document as served,
//! and one problem document per error code, with the status and headers that go with it. Other
//! services depend on both to the letter, so any change to them shows here as a diff to review;
//! under CI a mismatch fails. After an intended change, run with `INSTA_UPDATE=always`, read
//! the `.snap` files and commit them.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Path;
use axum::http::{Request, StatusCode, header};
use axum::middleware;
use axum::routing::get;
use finhub_auth::domain::credentials::challenge::ChallengeMethod;
use finhub_auth::domain::credentials::password::Rejection;
use finhub_auth::domain::error::AuthError;
use finhub_auth::http::error::{ApiError, FieldError};
use finhub_auth::http::request_id::request_context;
use serde_json::{Value, json};
use time::macros::datetime;
use tower::ServiceExt as _;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

#[test]
fn the_openapi_document_as_served() {
    insta::assert_snapshot!("openapi", finhub_auth::http::openapi::document());
}

/// One error for each code of the contract's table that the service answers with today.
fn one_error_per_code() -> Vec<(&'static str, ApiError)> {
    let auth = ApiError::Auth;
    vec![
        ("INVALID_CREDENTIALS", auth(AuthError::InvalidCredentials)),
        (
            "ACCOUNT_LOCKED",
            auth(AuthError::AccountLocked {
                until: Some(datetime!(2026-01-02 03:04:05 UTC)),
            }),
        ),
        ("SESSION_EXPIRED", auth(AuthError::SessionExpired)),
        ("UNAUTHENTICATED", auth(AuthError::Unauthenticated)),
        (
            "INVALID_2FA_CODE",
            auth(AuthError::InvalidCode {
                attempts_remaining: 2,
            }),
        ),
        ("2FA_CODE_EXPIRED", auth(AuthError::CodeExpired)),
        (
            "TOO_MANY_2FA_ATTEMPTS",
            auth(AuthError::TooManyAttempts {
                retry_after: time::Duration::seconds(30),
            }),
        ),
        ("TWO_FACTOR_REQUIRED", auth(AuthError::TwoFactorRequired)),
        (
            "TWO_FACTOR_NOT_PENDING",
            auth(AuthError::TwoFactorNotPending),
        ),
        (
            "RATE_LIMITED",
            auth(AuthError::RateLimited {
                retry_after: time::Duration::milliseconds(1500),
            }),
        ),
        (
            "VALIDATION_ERROR",
            ApiError::Validation(vec![
                FieldError::new("username", "must not be empty"),
                FieldError::new("device.fingerprint", "must be 1 to 512 bytes"),
            ]),
        ),
        (
            "MALFORMED_REQUEST",
            ApiError::Malformed {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "the body must be application/json",
            },
        ),
        (
            "RECENT_AUTHENTICATION_REQUIRED",
            auth(AuthError::RecentAuthenticationRequired {
                methods: vec![
                    ChallengeMethod::Totp,
                    ChallengeMethod::Sms,
                    ChallengeMethod::RecoveryCode,
                ],
            }),
        ),
        ("FACTOR_REQUIRED", auth(AuthError::FactorRequired)),
        (
            "PASSWORD_RESET_IN_PROGRESS",
            auth(AuthError::PasswordResetInProgress),
        ),
        (
            "TWO_FACTOR_ENROLMENT_REQUIRED",
            auth(AuthError::EnrolmentRequired),
        ),
        (
            "PASSWORD_REJECTED",
            auth(AuthError::PasswordRejected {
                reasons: vec![Rejection::TooShort, Rejection::Context],
            }),
        ),
        ("NOT_FOUND", ApiError::NotFound),
        ("METHOD_NOT_ALLOWED", ApiError::MethodNotAllowed),
        (
            "SERVICE_UNAVAILABLE",
            auth(AuthError::Unavailable("connection refused".into())),
        ),
        (
            "INTERNAL_ERROR",
            auth(AuthError::Internal(anyhow::anyhow!(
                "SELECT password_hash FROM customers"
            ))),
        ),
    ]
}

/// The service's request context (it gives each body its request id) around a route that
/// answers `/{n}` with the n-th error of [`one_error_per_code`].
fn errors_app() -> Router {
    Router::new()
        .route(
            "/{n}",
            get(|Path(n): Path<usize>| async move {
                let mut errors = one_error_per_code();
                if n < errors.len() {
                    errors.swap_remove(n).1
                } else {
                    ApiError::NotFound
                }
            }),
        )
        .layer(middleware::from_fn(request_context))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

#[tokio::test]
async fn one_problem_document_per_error_code() {
    let codes: Vec<&str> = one_error_per_code().iter().map(|(c, _)| *c).collect();
    for (n, code) in codes.into_iter().enumerate() {
        let request = Request::get(format!("/{n}")).body(Body::empty()).unwrap();
        let response = errors_app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], code);
        // The id in the body is the one the response is filed under, whatever it is.
        let request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(!request_id.is_empty(), "{code}");
        assert_eq!(body["requestId"], request_id, "{code}");
        let header = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let response = json!({
            "status": status.as_u16(),
            "headers": {
                "content-type": header(header::CONTENT_TYPE),
                "cache-control": header(header::CACHE_CONTROL),
                "retry-after": header(header::RETRY_AFTER),
                "www-authenticate": header(header::WWW_AUTHENTICATE),
            },
            "body": body,
        });
        insta::assert_json_snapshot!(format!("problem_{code}"), response, {
            ".body.requestId" => "[request id]",
        });
    }
}
