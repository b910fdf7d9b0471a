//! Request bodies as the API reads them: any bytes, with or without a JSON content type, for
//! every body the API takes. Each gets a value or the contract's error, never a panic or an
//! internal error.
#![no_main]

use finhub_auth::http::error::ApiError;
use finhub_auth::http::extract::parse_body;
use finhub_auth::http::routes::sessions::{LogoutRequest, RefreshRequest, TokenRequest};
use finhub_auth::http::routes::two_factor::{InitiateRequest, VerifyRequest};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn contract_error(e: &ApiError) -> bool {
    matches!(e, ApiError::Malformed { .. } | ApiError::Validation(_))
}

fn check<T: DeserializeOwned>(content_type: Option<&str>, bytes: &[u8]) -> Option<T> {
    match parse_body::<T>(content_type, bytes) {
        Ok(value) => Some(value),
        Err(e) => {
            assert!(contract_error(&e), "{e:?}");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the content type, so both paths are explored.
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let content_type = match pick % 3 {
        0 => Some("application/json"),
        1 => Some("application/problem+json; charset=utf-8"),
        _ => None,
    };
    if let Some(login) = check::<TokenRequest>(content_type, bytes)
        && let Err(e) = login.parse()
    {
        assert!(contract_error(&e), "{e:?}");
    }
    check::<RefreshRequest>(content_type, bytes);
    check::<LogoutRequest>(content_type, bytes);
    check::<InitiateRequest>(content_type, bytes);
    check::<VerifyRequest>(content_type, bytes);
});
