//! Delivery of two-factor codes. The domain hands a [`CodeMessage`] to a [`Notifier`]; which one
//! is chosen once, from configuration (`crate::notify`).

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::customer::{CustomerId, TwoFactorMethod};
use crate::domain::delivery::CodeTemplate;
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
    pub template: Arc<CodeTemplate>,
}

impl CodeMessage {
    /// The text the customer reads.
    pub fn text(&self) -> String {
        self.template.render(&self.code, self.valid_for_minutes)
    }
}

/// A new sign-in the customer should know about, sent by e-mail.
#[derive(Debug)]
pub struct SecurityNotice {
    pub at: OffsetDateTime,
    pub to: String,
    pub customer_id: CustomerId,
    /// ISO 3166 alpha-2, when known.
    pub country: Option<String>,
    pub device: Option<String>,
    /// What made the sign-in unusual, e.g. `NEW_DEVICE`.
    pub flags: Vec<&'static str>,
}

impl SecurityNotice {
    /// The text the customer reads.
    pub fn text(&self) -> String {
        let place = self.country.as_deref().unwrap_or("an unknown place");
        let device = self.device.as_deref().unwrap_or("an unnamed device");
        format!(
            "New sign-in to your FinHub account from {place}, {device}, at {} UTC. If this was not you, change your password and contact FinHub.",
            crate::domain::audit::rfc3339(self.at)
        )
    }
}

/// Why a message could not be handed over for delivery. Never holds the code.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {reason}")]
pub struct NotifyError {
    pub reason: String,
    /// Another attempt cannot succeed (the gateway refused the message itself): no retry.
    pub permanent: bool,
}

impl NotifyError {
    /// A failure another attempt may not meet (unreachable, overloaded, timed out).
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
        }
    }
}

/// Sends codes.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    async fn send(&self, message: &CodeMessage) -> Result<(), NotifyError>;
    async fn send_notice(&self, notice: &SecurityNotice) -> Result<(), NotifyError>;
}
