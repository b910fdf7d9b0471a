//! Delivery of two-factor codes. The domain hands a [`CodeMessage`] to a [`Notifier`]; which one
//! is chosen once, from configuration (`crate::notify`).

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::customer::{CustomerId, TwoFactorMethod};
use crate::domain::delivery::{CodeTemplate, NoticeFacts};
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

/// A new sign-in the customer should know about, sent by e-mail. Every word of it is the
/// server's: the device is described from its user agent, never by the name a client gave it.
#[derive(Debug)]
pub struct SecurityNotice {
    pub at: OffsetDateTime,
    pub to: String,
    pub customer_id: CustomerId,
    pub notice_id: String,
    pub facts: NoticeFacts,
}

impl SecurityNotice {
    /// What kind of notice this is, as the outbox file names it.
    pub const KIND: &'static str = "unusual_login";

    /// The text the customer reads.
    pub fn text(&self) -> String {
        let place = self.facts.country.as_deref().unwrap_or("an unknown place");
        let device = self
            .facts
            .device
            .as_deref()
            .unwrap_or("an unrecognised device");
        format!(
            "New sign-in to your FinHub account from {place}, on {device}, at {} UTC. If this was not you, change your password and contact FinHub.",
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
    /// The message may have reached the customer all the same (no answer in time, a dropped
    /// connection after it was handed over, a gateway error after it was accepted).
    pub maybe_delivered: bool,
}

impl NotifyError {
    /// A failure another attempt may not meet, known not to have delivered the message
    /// (unreachable, busy, refused for now).
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: false,
            maybe_delivered: false,
        }
    }

    /// A failure another attempt may not meet, after which the message may have gone out.
    pub fn uncertain(reason: impl Into<String>) -> Self {
        Self {
            maybe_delivered: true,
            ..Self::transient(reason)
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
            maybe_delivered: false,
        }
    }
}

/// Sends codes and security notices.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    async fn send(&self, message: &CodeMessage) -> Result<(), NotifyError>;
    async fn send_notice(&self, notice: &SecurityNotice) -> Result<(), NotifyError>;
}
