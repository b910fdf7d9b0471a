//! RFC 9457 problem documents: one type, [`ProblemDocument`], is both what every error response
//! carries and what the OpenAPI document describes, so the two cannot disagree.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::Duration;
use utoipa::ToSchema;

use super::request_id::current_request_id;
use super::schema;

/// One invalid field.
#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// An error for the field named as the client sent it.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document, the body of every error.
#[expect(
    missing_docs,
    reason = "doc comments here become OpenAPI descriptions, pinned by the contract snapshot"
)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDocument {
    /// `urn:finhub:problem:` and the code in lower case.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The stable machine-readable error code; switch on this.
    pub code: &'static str,
    /// Quote it to support: the server log holds the details under it.
    pub request_id: String,
    /// VALIDATION_ERROR only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// INVALID_2FA_CODE only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// ACCOUNT_LOCKED only; absent when an operator must unlock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<String>,
    /// RECENT_AUTHENTICATION_REQUIRED only: the ways this customer can step up.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<schema::ChallengeMethod>>)]
    pub methods: Option<Vec<&'static str>>,
    /// PASSWORD_REJECTED only: every rule the new password breaks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<schema::PasswordRejection>>)]
    pub reasons: Option<Vec<&'static str>>,
}

/// A problem document with its status and the headers that go with it.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    document: ProblemDocument,
    retry_after: Option<Duration>,
    www_authenticate: Option<&'static str>,
}

impl Problem {
    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        self.document.code
    }

    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            document: ProblemDocument {
                kind: format!("urn:finhub:problem:{}", code.to_ascii_lowercase()),
                title,
                status: status.as_u16(),
                detail: detail.into(),
                code,
                request_id: String::new(),
                errors: None,
                attempts_remaining: None,
                locked_until: None,
                methods: None,
                reasons: None,
            },
            retry_after: None,
            www_authenticate: None,
        }
    }

    pub fn errors(mut self, errors: Vec<FieldError>) -> Self {
        self.document.errors = Some(errors);
        self
    }

    pub fn attempts_remaining(mut self, n: u32) -> Self {
        self.document.attempts_remaining = Some(n);
        self
    }

    pub fn methods(mut self, methods: Vec<&'static str>) -> Self {
        self.document.methods = Some(methods);
        self
    }

    pub fn reasons(mut self, reasons: Vec<&'static str>) -> Self {
        self.document.reasons = Some(reasons);
        self
    }

    pub fn locked_until(mut self, at: String) -> Self {
        self.document.locked_until = Some(at);
        self
    }

    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    pub fn challenge(mut self, value: &'static str) -> Self {
        self.www_authenticate = Some(value);
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        self.document.request_id = current_request_id().unwrap_or_default();
        let body = serde_json::to_string(&self.document).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(d) = self.retry_after {
            // Whole seconds, rounded up, at least one.
            let secs = (d.whole_milliseconds().max(1) + 999) / 1000;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema as _;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    use super::*;

    #[test]
    fn every_member_sent_is_one_the_schema_documents() {
        let RefOr::T(Schema::Object(schema)) = ProblemDocument::schema() else {
            panic!("the problem schema is an object");
        };
        let full = Problem::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", "Invalid", "x")
            .errors(vec![FieldError::new("f", "is required")])
            .attempts_remaining(1)
            .locked_until("2026-01-01T00:00:00Z".into());
        let sent = serde_json::to_value(&full.document).unwrap();
        let sent = sent.as_object().unwrap();
        assert_eq!(sent.len(), 9);
        for member in sent.keys() {
            assert!(schema.properties.contains_key(member), "{member}");
        }
        for required in &schema.required {
            assert!(sent.contains_key(required), "{required}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "t", "d")
            .retry_after(Duration::milliseconds(1500))
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
