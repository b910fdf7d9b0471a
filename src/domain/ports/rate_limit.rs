//! Where request counts are kept when every instance must share them.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::risk::rate_limit::Rate;

/// The shared store could not count the request (unreachable, timed out, refused).
#[derive(Debug, thiserror::Error)]
#[error("shared rate-limit store unavailable: {0}")]
pub struct CounterUnavailable(pub String);

/// Counts requests against rates, for every instance at once.
#[async_trait]
pub trait SharedCounter: Send + Sync + 'static {
    /// Counts one request under `key` (already namespaced by limit) against `rate`, atomically:
    /// `None` when it is allowed, else how long until one would be.
    async fn hit(&self, key: &str, rate: Rate) -> Result<Option<Duration>, CounterUnavailable>;
}
