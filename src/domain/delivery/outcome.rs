//! Where a message's delivery stands: the claim a worker holds on it, how its delivery ended,
//! whether a finish was recorded, and what the customer waiting for a code is told.

/// One worker's claim on the messages it took in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh, random claim for one worker's pass.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// No claim: a message just queued, which any worker may take.
    pub fn unclaimed() -> Self {
        Self(String::new())
    }

    /// The claim as stored; a missing one reads as unclaimed.
    pub fn from_stored(token: Option<String>) -> Self {
        Self(token.unwrap_or_default())
    }

    /// The form stored with the claimed messages.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a message's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// Handed to the gateway or mail server.
    Sent,
    /// Not sent: it expired, or was superseded, before it could go.
    Dropped,
    /// Given up on, and no attempt can have delivered it (each was refused or never reached the
    /// gateway): a code's send is given back to its session and the customer's budget, so the
    /// customer can ask again at once.
    Undelivered,
    /// Given up on after an attempt that may have delivered it all the same (a slow gateway, a
    /// dropped connection): a code's send stays counted and the code stays usable.
    GaveUp,
}

impl DeliveryEnd {
    /// The message's stored status.
    pub fn as_stored(self) -> &'static str {
        match self {
            Self::Sent => "SENT",
            Self::Dropped => "DROPPED",
            Self::Undelivered => "FAILED",
            Self::GaveUp => "GAVE_UP",
        }
    }
}

/// Whether a finish was recorded: a worker whose claim was taken over records nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The finish was stored under this worker's claim.
    Recorded,
    /// Another worker took the message over after this claim's lease ran out; nothing was recorded.
    ClaimLost,
}

/// Where a code's message stands, as the customer waiting for it may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Queued, or being retried.
    Pending,
    /// Handed to the gateway or mail server; whether it reached the customer is not known.
    Sent,
    /// Given up on: the customer can ask for a new code (at once when it cannot have gone).
    Failed,
    /// The code expired before it could be sent.
    Expired,
}

impl DeliveryState {
    /// Every state (the API documents them as an enum).
    pub const ALL: [Self; 4] = [Self::Pending, Self::Sent, Self::Failed, Self::Expired];

    /// The form the API reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Expired => "EXPIRED",
        }
    }

    /// From the message's stored status.
    pub fn from_stored(status: &str) -> Option<Self> {
        match status {
            "PENDING" => Some(Self::Pending),
            "SENT" => Some(Self::Sent),
            "FAILED" | "GAVE_UP" => Some(Self::Failed),
            "DROPPED" => Some(Self::Expired),
            _ => None,
        }
    }
}
