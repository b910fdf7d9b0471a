//! The software passkey authenticator, on the tests' relying party.

pub use finhub_soft_authenticator::SoftAuthenticator;

/// The relying party the tests' service is configured for.
pub const RP_ID: &str = "localhost";
/// The origin the tests' browser is on.
pub const ORIGIN: &str = "https://localhost:8443";

/// A device with no passkey yet, in a browser on [`ORIGIN`].
pub fn device() -> SoftAuthenticator {
    SoftAuthenticator::new(ORIGIN)
}
