//! Delivery of two-factor codes. The domain hands a [`CodeMessage`] to a [`Notifier`]; which one
//! is chosen once, from configuration (`crate::notify`).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::customer::{CustomerId, TwoFactorMethod};
use crate::domain::two_factor::{ChallengeId, OtpCode};

/// A code on its way to a customer.
#[derive(Debug)]
pub struct CodeMessage {
    pub at: OffsetDateTime,
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address.
    pub to: String,
    pub customer_id: CustomerId,
    pub challenge_id: ChallengeId,
    pub code: OtpCode,
    pub valid_for_minutes: i64,
}

impl CodeMessage {
    /// The text the customer reads.
    pub fn text(&self) -> String {
        format!(
            "Your FinHub security code is {}. It expires in {} minutes. FinHub will never ask you for it.",
            self.code.expose(),
            self.valid_for_minutes
        )
    }
}

/// Why a code could not be handed over for delivery.
#[derive(Debug, thiserror::Error)]
#[error("code delivery failed: {0}")]
pub struct NotifyError(pub String);

/// Sends codes.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    async fn send(&self, message: &CodeMessage) -> Result<(), NotifyError>;
}
