//! The rules of signing in, free of HTTP and SQL.
//!
//! Values are parsed once at the edge into the types here (`Username`, `Password`, `OtpCode`, …)
//! so that everything past the edge can trust them.

pub mod audit;
pub mod auth;
pub mod credentials;
pub mod customers;
pub mod delivery;
pub mod error;
pub mod housekeeping;
pub mod keys;
pub mod ports;
pub mod risk;
pub mod sessions;

/// Declares an opaque identifier: a UUIDv7 string, so ids sort by creation time.
macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// A new id: random, and time-ordered so that ids sort by creation.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Wraps an id read back from storage.
            pub fn from_stored(id: String) -> Self {
                Self(id)
            }

            /// The id as stored and as the API shows it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
pub(crate) use opaque_id;

/// Why a value could not be parsed: a short sentence for the customer, never echoing the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);
