//! Handing a message over for delivery. The delivery worker renders each message of the outbox
//! into an [`Outgoing`] and gives it to a [`Notifier`]; which one is chosen once, from
//! configuration (`crate::notify`). An adapter knows channels, not purposes: a new kind of
//! message needs no change here.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::credentials::factor::TwoFactorMethod;
use crate::domain::customers::CustomerId;

/// A message ready to go: addressed, worded, and with the fields the development outbox file
/// records beside the text (for a code: its challenge and the code itself).
pub struct Outgoing {
    /// Stable across retries: the gateway's idempotency key, the e-mail's `Message-ID`.
    pub id: String,
    /// When it was queued, as the outbox file records it.
    pub at: OffsetDateTime,
    /// SMS or e-mail: which adapter sends it.
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address.
    pub to: String,
    /// Whose message it is, as the outbox file records it.
    pub customer_id: CustomerId,
    /// The e-mail's subject.
    pub subject: &'static str,
    /// The text the customer reads (the SMS, and both bodies of the e-mail). May hold a code.
    pub text: String,
    /// Purpose-specific fields of the development outbox file's line. May hold a code.
    pub record: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text and the record may hold a code.
        f.debug_struct("Outgoing")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be handed over for delivery. Never holds the code.
#[derive(Debug, thiserror::Error)]
#[error("delivery failed: {reason}")]
pub struct NotifyError {
    /// What went wrong, for the logs and the retry decision; never the code.
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

    /// A failure no retry can cure (the gateway refused the message itself); the message was not
    /// delivered.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            permanent: true,
            maybe_delivered: false,
        }
    }
}

/// Sends messages.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Hands `message` over for delivery; success means handed over, not yet read by the customer.
    async fn send(&self, message: &Outgoing) -> Result<(), NotifyError>;
}

/// Posts security events to FinHub's fraud systems, signed (`crate::notify::webhook`).
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// Sends one event; an error says whether another attempt may succeed.
    async fn post(
        &self,
        webhook: &crate::domain::delivery::webhook::Webhook,
    ) -> Result<(), NotifyError>;
}
