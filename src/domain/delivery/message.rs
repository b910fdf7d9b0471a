//! What waits in the outbox, and how its delivery ends.

use time::{Duration, OffsetDateTime};

use crate::domain::customer::{Customer, CustomerId, TwoFactorMethod};
use crate::domain::session::SessionId;
use crate::domain::two_factor::ChallengeId;

/// A code's message in the outbox.
#[derive(Debug, Clone)]
pub struct QueuedCode {
    pub challenge_id: ChallengeId,
    pub session_id: SessionId,
    pub customer_id: CustomerId,
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address.
    pub address: String,
    /// The code, sealed by [`CodeSeal`].
    pub sealed_code: Vec<u8>,
    pub valid_for_minutes: i64,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Attempts made, this one included once claimed.
    pub attempts: u32,
    /// The claim this worker holds: finishing needs it, so a worker whose lease ran out cannot
    /// overwrite what another did since.
    pub claim: ClaimToken,
    /// Whether the code can still be used: its challenge is the session's open one and the
    /// session has not ended. A superseded code is never sent.
    pub live: bool,
    /// Whether an earlier attempt may have delivered it (see [`NotifyError::maybe_delivered`]).
    pub maybe_delivered: bool,
}

/// A security notice in the outbox, written in the transaction of the event it tells of. It
/// holds facts the server derived, never text a client chose.
#[derive(Debug, Clone)]
pub struct QueuedNotice {
    pub id: String,
    pub customer_id: CustomerId,
    /// The customer's e-mail address.
    pub to: String,
    /// What the notice is about (the new country, network or device): a customer is told of
    /// one signal once, marked when the notice is delivered; a notice of a signal already told,
    /// or already waiting, is not queued.
    pub signal: String,
    pub facts: NoticeFacts,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub attempts: u32,
    pub claim: ClaimToken,
}

/// What an unusual-sign-in notice says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoticeFacts {
    /// ISO 3166 alpha-2, when known.
    pub country: Option<String>,
    /// Browser and system families from the user agent ("Firefox on Windows").
    pub device: Option<String>,
    /// What made the sign-in unusual, e.g. `NEW_DEVICE`.
    pub flags: Vec<String>,
}

impl QueuedNotice {
    /// A notice not sent within a day is news no longer.
    pub const LIFETIME: Duration = Duration::days(1);

    pub fn new(
        customer: &Customer,
        signal: String,
        facts: NoticeFacts,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            customer_id: customer.id.clone(),
            to: customer.email.as_str().to_owned(),
            signal,
            facts,
            created_at: now,
            expires_at: now + Self::LIFETIME,
            attempts: 0,
            claim: ClaimToken::unclaimed(),
        }
    }
}

/// One worker's claim on the messages it took in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn unclaimed() -> Self {
        Self(String::new())
    }

    pub fn from_stored(token: Option<String>) -> Self {
        Self(token.unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a message's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEnd {
    Sent,
    /// Not sent: the code expired, or was superseded, before it could go.
    Dropped,
    /// Given up on, and no attempt can have delivered it (each was refused or never reached the
    /// gateway): the send is given back to the session, so the customer can ask again at once.
    Undelivered,
    /// Given up on after an attempt that may have delivered it all the same (a slow gateway, a
    /// dropped connection): the send stays counted and the code stays usable.
    GaveUp,
}

/// Whether a finish was recorded: a worker whose claim was taken over records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Recorded,
    ClaimLost,
}

/// Where a code's message stands, as the customer waiting for it may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Queued, or being retried.
    Pending,
    Sent,
    /// Given up on: the customer can ask for a new code at once.
    Failed,
    /// The code expired before it could be sent.
    Expired,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// From the outbox row's status.
    pub fn from_stored(status: &str) -> Option<Self> {
        match status {
            "PENDING" => Some(Self::Pending),
            "SENT" => Some(Self::Sent),
            "FAILED" => Some(Self::Failed),
            "DROPPED" => Some(Self::Expired),
            _ => None,
        }
    }
}
