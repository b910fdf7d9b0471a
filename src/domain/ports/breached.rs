//! Where breached passwords are looked up.

use async_trait::async_trait;

use crate::domain::credentials::password::breached::BreachDigest;

/// A source of breached passwords, by SHA-1 digest.
#[async_trait]
pub trait BreachedPasswords: Send + Sync + 'static {
    /// Whether a password with this digest has been seen in a breach. An error when the source
    /// cannot answer now: the caller skips the check.
    async fn contains(&self, digest: &BreachDigest) -> Result<bool, BreachSourceUnavailable>;
}

/// The breached-password source could not answer (unreachable, an unreadable file, a malformed
/// answer); never a password or a digest.
#[derive(Debug, thiserror::Error)]
#[error("the breached-password source cannot answer: {0}")]
pub struct BreachSourceUnavailable(pub String);
