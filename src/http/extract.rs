//! Extractors that turn requests into trusted values, answering bad input with the contract's
//! errors: JSON bodies, the bearer session, and the client's network facts.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum_extra::TypedHeader;
use axum_extra::headers::Authorization;
use axum_extra::headers::authorization::Bearer;
use axum_extra::typed_header::TypedHeaderRejectionReason;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::json_shape::{Shape, ShapeError};
use super::state::AppState;
use crate::domain::customers::Customer;
use crate::domain::error::AuthError;
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::Session;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON body. Wrong content type → 415, too large → 413, not JSON → 400 `MALFORMED_REQUEST`;
/// JSON of the wrong shape → 400 `VALIDATION_ERROR` naming each field, never echoing a value.
/// An empty body, or `null`, counts as `{}`, for the endpoints whose body is optional.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
            .await
            .map_err(|_| ApiError::Malformed {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                detail: "the request body is larger than 16 KiB",
            })?;
        parse_body(content_type.as_deref(), &bytes).map(ApiJson)
    }
}

/// The body's value, or the contract's error for it (`Malformed` or `Validation`, never
/// `Internal`, whatever the bytes: the property tests and fuzz target hold it to that).
pub fn parse_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        let is_json = content_type.is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
        if !is_json {
            return Err(ApiError::Malformed {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "send the body as application/json",
            });
        }
        bytes
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| ApiError::Malformed {
            status: StatusCode::BAD_REQUEST,
            detail: "the body is not valid JSON",
        })?;
    // `null` is the empty body spelled out: optional bodies document it.
    let value = if value.is_null() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        value
    };
    if !value.is_object() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    // Through a deserializer whose errors keep serde's kind (missing field, wrong type, …), so
    // each failure is named without reading, or echoing, its message.
    serde_path_to_error::deserialize(Shape(value))
        .map_err(|e| ApiError::Validation(vec![field_error(&e)]))
}

/// Names the field and the kind of problem, by serde's error kind, never with the value.
fn field_error(e: &serde_path_to_error::Error<ShapeError>) -> FieldError {
    let path = e.path().to_string();
    let at = |name: &str| match path.as_str() {
        "." => name.to_owned(),
        parent => format!("{parent}.{name}"),
    };
    let (field, message) = match e.inner() {
        ShapeError::MissingField(name) => (at(name), "is required"),
        ShapeError::DuplicateField(name) => (at(name), "is given more than once"),
        ShapeError::UnknownField(name) => (at(name), "is not a known field"),
        ShapeError::InvalidType => (path.clone(), "has the wrong type"),
        ShapeError::UnknownVariant => (path.clone(), "is not one of the allowed values"),
        ShapeError::InvalidLength => (path.clone(), "has the wrong length"),
        ShapeError::InvalidValue => (path.clone(), "is invalid"),
    };
    let field = if field == "." {
        "body".to_owned()
    } else {
        field
    };
    FieldError::new(field, message)
}

/// The request's bearer token, as sent (checked by the domain, which alone knows its shape).
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = TypedHeader::<Authorization<Bearer>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| match rejection.reason() {
                TypedHeaderRejectionReason::Missing => ApiError::MissingToken,
                _ => ApiError::Auth(AuthError::Unauthenticated),
            })?;
        Ok(Self(bearer.token().to_owned()))
    }
}

/// The live session behind the request's bearer token.
pub struct AuthSession(pub Session);

impl FromRequestParts<AppState> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let BearerToken(token) = BearerToken::from_request_parts(parts, state).await?;
        Ok(Self(state.auth.authenticate(&token).await?))
    }
}

/// The live session behind the request's bearer token, with its customer, read together.
pub struct AuthCustomer(pub Session, pub Customer);

impl FromRequestParts<AppState> for AuthCustomer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let BearerToken(token) = BearerToken::from_request_parts(parts, state).await?;
        let (session, customer) = state.auth.authenticate_with_customer(&token).await?;
        Ok(Self(session, customer))
    }
}

/// The client's address (see [`super::client_ip`]) and user agent.
pub struct Client(pub ClientContext);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state.proxies.of_request(&parts.extensions, &parts.headers);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Ok(Self(ClientContext::new(ip, user_agent)))
    }
}

/// Passkey login is on; else both of its paths answer `NOT_FOUND`, before any body is read.
pub struct PasskeyLoginOn;

impl FromRequestParts<AppState> for PasskeyLoginOn {
    type Rejection = ApiError;

    async fn from_request_parts(
        _parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.auth.passkey_login_on() {
            Ok(Self)
        } else {
            Err(ApiError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        user_name: String,
        count: u32,
        kind: Option<Kind>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    enum Kind {
        A,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only parsed")]
    struct Inner {
        code: String,
    }

    fn field_of(json: &str) -> (String, String) {
        match parse_body::<Body>(Some("application/json"), json.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn each_kind_of_shape_error_names_its_field_without_the_value() {
        assert_eq!(
            field_of(r#"{"count": 1}"#),
            ("userName".into(), "is required".into())
        );
        assert_eq!(
            field_of(r#"{"userName": "x", "count": "secret-value"}"#),
            ("count".into(), "has the wrong type".into())
        );
        assert_eq!(
            field_of(r#"{"userName": "x", "count": 1, "kind": "B"}"#),
            ("kind".into(), "is not one of the allowed values".into())
        );
        assert_eq!(
            field_of(r#"{"userName": "x", "count": 1, "inner": {}}"#),
            ("inner.code".into(), "is required".into())
        );
        assert_eq!(
            field_of(r#"{"userName": "x", "count": 1, "inner": {"code": 7}}"#),
            ("inner.code".into(), "has the wrong type".into())
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_told_apart() {
        let malformed = parse_body::<Body>(Some("application/json"), b"{not json");
        assert!(
            matches!(malformed, Err(ApiError::Malformed { status, .. }) if status == StatusCode::BAD_REQUEST)
        );
        let media = parse_body::<Body>(Some("text/plain"), b"{}");
        assert!(
            matches!(media, Err(ApiError::Malformed { status, .. }) if status == StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            field_of("[1]"),
            ("body".into(), "must be a JSON object".into())
        );
        // `null` and nothing at all are the empty body.
        for empty in [&b"null"[..], b"", b" \n"] {
            let parsed = parse_body::<Option<std::collections::HashMap<String, String>>>(
                Some("application/json"),
                empty,
            );
            assert!(matches!(parsed, Ok(Some(map)) if map.is_empty()));
        }
    }
}
