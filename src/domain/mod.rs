//! The rules of signing in, free of HTTP and SQL.
//!
//! Values are parsed once at the edge into the types here (`Username`, `Password`, `OtpCode`, …)
//! so that everything past the edge can trust them.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod client;
pub mod customer;
pub mod error;
pub mod lockout;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod token;
pub mod two_factor;

/// Why a value could not be parsed: a short sentence for the customer, never echoing the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);
