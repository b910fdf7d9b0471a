//! The bearer token as the API reads it: the `Authorization` header, then the token's shape.
//! Any bytes get a token or nothing, and only a 43-character base64url string is a token.
#![no_main]

use axum::http::HeaderValue;
use axum_extra::headers::authorization::Bearer;
use axum_extra::headers::{Authorization, Header as _};
use finhub_auth::domain::sessions::token::SessionToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(bearer) = Authorization::<Bearer>::decode(&mut std::iter::once(&value)) else {
        return;
    };
    let raw = bearer.token();
    let shaped = raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    assert_eq!(SessionToken::parse(raw).is_some(), shaped);
});
