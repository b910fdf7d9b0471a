//! The audit trail: one event for every authentication step, hash-chained so that an edited,
//! reordered or deleted event is detected.
//!
//! Each stored event carries `hash = SHA-256(prev_hash ‖ seq ‖ canonical JSON of the event)`.
//! Events never hold a password, code or token: the types that carry those cannot be put here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod anchor;
mod chain;
pub mod search;
pub mod trail;
mod verify;

pub use anchor::{Anchor, AnchorBreak, AnchorKeys};
pub use chain::{ChainSeal, GENESIS_HASH, Link, UnknownChainKey};
pub use verify::{ChainBreak, ChainVerifier, is_keyed_link};

use crate::domain::customers::{CustomerId, Username};
use crate::domain::risk::client::ClientContext;
use crate::domain::sessions::SessionId;

/// What happened. The string forms are stable: operators filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditKind {
    /// The password was right: a session started (pending while a second factor is due).
    #[serde(rename = "login.succeeded")]
    LoginSucceeded,
    /// A login refused (events refused before the password arrive in aggregate).
    #[serde(rename = "login.failed")]
    LoginFailed,
    /// The account was locked, by repeated failures or by an operator.
    #[serde(rename = "account.locked")]
    AccountLocked,
    /// An operator lifted a lock.
    #[serde(rename = "account.unlocked")]
    AccountUnlocked,
    /// The customer said "this wasn't me": every session ended, the account locked until a
    /// completed password reset or an operator's unlock.
    #[serde(rename = "account.lockdown")]
    AccountLockdown,
    /// FinHub's support looked at a customer's sessions (who looked is the operator's to
    /// record; why is the `operatorReason`).
    #[serde(rename = "support.viewed")]
    SupportViewed,
    /// A code was issued for the session's second factor.
    #[serde(rename = "2fa.initiated")]
    TwoFactorInitiated,
    /// A correct code activated the session.
    #[serde(rename = "2fa.verified")]
    TwoFactorVerified,
    /// A wrong, expired or used-up code.
    #[serde(rename = "2fa.failed")]
    TwoFactorFailed,
    /// An ACTIVE session was asked to prove a second factor again (a code sent, or the
    /// password asked for).
    #[serde(rename = "stepup.initiated")]
    StepUpInitiated,
    /// The right answer made the session recently authenticated.
    #[serde(rename = "stepup.verified")]
    StepUpVerified,
    /// A wrong, expired or used-up step-up answer.
    #[serde(rename = "stepup.failed")]
    StepUpFailed,
    /// A code's message was handed to the SMS gateway or mail relay (or the outbox file).
    #[serde(rename = "2fa.delivered")]
    CodeDelivered,
    /// A code's message was not sent: expired first, or given up on after the last attempt.
    #[serde(rename = "2fa.undelivered")]
    CodeUndelivered,
    /// A security notice was handed to the mail relay (or the outbox file).
    #[serde(rename = "notice.delivered")]
    NoticeDelivered,
    /// A security notice was not sent: expired first, or given up on after the last attempt.
    #[serde(rename = "notice.undelivered")]
    NoticeUndelivered,
    /// A refresh token was exchanged for a new pair.
    #[serde(rename = "session.refreshed")]
    SessionRefreshed,
    /// A retired refresh token came back: the session is ended as stolen.
    #[serde(rename = "session.refresh_reused")]
    RefreshReused,
    /// The customer signed out.
    #[serde(rename = "session.logout")]
    Logout,
    /// One of the customer's sessions was ended from another.
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// The customer removed a device from their known devices.
    #[serde(rename = "device.forgotten")]
    DeviceForgotten,
    /// A customer was created (CLI, import or demo).
    #[serde(rename = "customer.created")]
    CustomerCreated,
    /// A signed-in customer changed their password; their other sessions ended.
    #[serde(rename = "password.changed")]
    PasswordChanged,
    /// A password change was refused: the current password was wrong, or the new one broke
    /// the policy.
    #[serde(rename = "password.change_failed")]
    PasswordChangeFailed,
    /// A forgotten password's reset was asked for (whether or not the username is a
    /// customer's; `codeSent` says whether a code went out).
    #[serde(rename = "password_reset.requested")]
    PasswordResetRequested,
    /// A reset code was right: a session that may only set the password started.
    #[serde(rename = "password_reset.verified")]
    PasswordResetVerified,
    /// A wrong, expired or used-up reset code, or a new password the policy refused.
    #[serde(rename = "password_reset.failed")]
    PasswordResetFailed,
    /// A password was set by a completed reset or by support: every session ended.
    #[serde(rename = "password.reset")]
    PasswordReset,
    /// A factor was added, unconfirmed until its code arrives.
    #[serde(rename = "factor.pending")]
    FactorPending,
    /// A factor's code arrived: the factor is usable.
    #[serde(rename = "factor.added")]
    FactorConfirmed,
    /// A wrong, expired or used-up confirmation code.
    #[serde(rename = "factor.confirm_failed")]
    FactorConfirmFailed,
    /// A factor was renamed or made the default.
    #[serde(rename = "factor.updated")]
    FactorUpdated,
    /// A factor was removed (with the recovery codes, when it was the last).
    #[serde(rename = "factor.removed")]
    FactorRemoved,
    /// A new set of recovery codes replaced any earlier one.
    #[serde(rename = "recovery_codes.created")]
    RecoveryCodesCreated,
    /// A password hash was upgraded to the current parameters at login.
    #[serde(rename = "customer.password_rehashed")]
    PasswordRehashed,
    /// A passkey's right signature whose counter did not advance: perhaps a cloned
    /// authenticator. Refused.
    #[serde(rename = "passkey.counter_regressed")]
    PasskeyCounterRegressed,
    /// API calls refused before they changed anything (a missing or dead token, a session
    /// not yet allowed the call, an unknown route or resource, invalid input, the per-address
    /// limit), counted by error code and address and recorded once a minute
    /// ([`Refusals`](crate::domain::risk::refusals::Refusals)).
    #[serde(rename = "request.refused")]
    RequestRefused,
    /// Events past their retention were removed (the chain keeps its head).
    #[serde(rename = "audit.purged")]
    AuditPurged,
    /// From here on the chain is sealed with the audit key; the links before it are plain
    /// SHA-256, from before a key was set.
    #[serde(rename = "audit.sealed_with_key")]
    SealedWithKey,
    /// From here on the chain is sealed with its own key derived from the audit key; the keyed
    /// links before it are sealed with the audit key itself, as earlier versions did.
    #[serde(rename = "audit.chain_key_derived")]
    ChainKeyDerived,
    /// From here on the chain is sealed under the audit key `details.keyId` (a rotation of
    /// the audit key, or links beginning to name their key); the links before it are sealed
    /// under the previous one (`details.previousKeyId` when they named it).
    #[serde(rename = "audit.key_rotated")]
    KeyRotated,
}

impl AuditKind {
    /// The stable name stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::AccountLocked => "account.locked",
            Self::AccountUnlocked => "account.unlocked",
            Self::AccountLockdown => "account.lockdown",
            Self::SupportViewed => "support.viewed",
            Self::TwoFactorInitiated => "2fa.initiated",
            Self::TwoFactorVerified => "2fa.verified",
            Self::TwoFactorFailed => "2fa.failed",
            Self::StepUpInitiated => "stepup.initiated",
            Self::StepUpVerified => "stepup.verified",
            Self::StepUpFailed => "stepup.failed",
            Self::CodeDelivered => "2fa.delivered",
            Self::CodeUndelivered => "2fa.undelivered",
            Self::NoticeDelivered => "notice.delivered",
            Self::NoticeUndelivered => "notice.undelivered",
            Self::SessionRefreshed => "session.refreshed",
            Self::RefreshReused => "session.refresh_reused",
            Self::Logout => "session.logout",
            Self::SessionRevoked => "session.revoked",
            Self::DeviceForgotten => "device.forgotten",
            Self::CustomerCreated => "customer.created",
            Self::FactorPending => "factor.pending",
            Self::FactorConfirmed => "factor.added",
            Self::FactorConfirmFailed => "factor.confirm_failed",
            Self::FactorUpdated => "factor.updated",
            Self::FactorRemoved => "factor.removed",
            Self::RecoveryCodesCreated => "recovery_codes.created",
            Self::PasswordRehashed => "customer.password_rehashed",
            Self::PasswordChanged => "password.changed",
            Self::PasswordChangeFailed => "password.change_failed",
            Self::PasswordResetRequested => "password_reset.requested",
            Self::PasswordResetVerified => "password_reset.verified",
            Self::PasswordResetFailed => "password_reset.failed",
            Self::PasswordReset => "password.reset",
            Self::PasskeyCounterRegressed => "passkey.counter_regressed",
            Self::RequestRefused => "request.refused",
            Self::AuditPurged => "audit.purged",
            Self::SealedWithKey => "audit.sealed_with_key",
            Self::ChainKeyDerived => "audit.chain_key_derived",
            Self::KeyRotated => "audit.key_rotated",
        }
    }

    /// The kind of a stored name; `None` for a name this version does not know.
    pub fn from_stored(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }
}

/// Whether the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step did what was asked.
    Success,
    /// The step was refused.
    Failure,
}

impl Outcome {
    /// Every outcome (the API documents them as an enum).
    pub const ALL: [Self; 2] = [Self::Success, Self::Failure];

    /// The stable name stored and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    /// The outcome of a stored name; `None` for anything else.
    pub fn from_stored(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// One event, before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unique and time-ordered (UUIDv7).
    pub id: String,
    /// When it happened, by the service's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What happened.
    pub kind: AuditKind,
    /// Whether it succeeded.
    pub outcome: Outcome,
    /// A short stable code for why (e.g. `bad_password`), never free text.
    pub reason: Option<String>,
    /// The normalised username the step was about, known customer or not.
    pub username: Option<String>,
    /// The customer, once known.
    pub customer_id: Option<String>,
    /// The session the step belongs to.
    pub session_id: Option<String>,
    /// The client's address as the service saw it (after trusted proxies).
    pub ip: Option<String>,
    /// The client's user agent, as sent.
    pub user_agent: Option<String>,
    /// The device fingerprint, hashed under a key derived from the audit key.
    pub device_fingerprint: Option<String>,
    /// The name the client gave its device.
    pub device_name: Option<String>,
    /// Small facts specific to the kind (e.g. `lockedUntil`, `method`); keys sort, so the
    /// canonical form is stable.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl AuditEvent {
    /// An event of `kind` at `at`, about no one yet: the builder methods add who and where.
    pub fn new(kind: AuditKind, outcome: Outcome, at: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            at,
            kind,
            outcome,
            reason: None,
            username: None,
            customer_id: None,
            session_id: None,
            ip: None,
            user_agent: None,
            device_fingerprint: None,
            device_name: None,
            details: serde_json::Map::new(),
        }
    }

    /// Adds why the step ended as it did.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// Adds the username the step was about.
    pub fn username(mut self, username: &Username) -> Self {
        self.username = Some(username.as_str().to_owned());
        self
    }

    /// Adds the customer.
    pub fn customer(mut self, id: &CustomerId) -> Self {
        self.customer_id = Some(id.as_str().to_owned());
        self
    }

    /// Adds the session.
    pub fn session(mut self, id: &SessionId) -> Self {
        self.session_id = Some(id.as_str().to_owned());
        self
    }

    /// Adds the client's address, user agent, device and country.
    pub fn client(mut self, client: &ClientContext) -> Self {
        self.ip = client.ip.map(|ip| ip.to_string());
        self.user_agent.clone_from(&client.user_agent);
        if let Some(device) = &client.device {
            self.device_fingerprint = Some(device.fingerprint.clone());
            self.device_name = device.name.as_ref().map(|n| n.as_str().to_owned());
        }
        if let Some(country) = &client.location.country {
            self.details
                .insert("country".into(), country.clone().into());
        }
        self
    }

    /// Adds one detail (see [`AuditEvent::details`]).
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// A new event of another kind about the same actor and context (who, from where, which
    /// session, and the details so far).
    pub fn recast(&self, kind: AuditKind, outcome: Outcome, reason: Option<&str>) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            kind,
            outcome,
            reason: reason.map(str::to_owned),
            ..self.clone()
        }
    }

    /// The event that records a lock caused by the failure `self` records.
    pub fn lock_caused(&self, until: OffsetDateTime, nth_lock: u32) -> Self {
        let mut lock = self.recast(
            AuditKind::AccountLocked,
            Outcome::Success,
            Some("too_many_failures"),
        );
        lock.details = serde_json::Map::new();
        lock.detail("lockedUntil", rfc3339(until))
            .detail("lockCount", nth_lock)
    }

    /// The canonical bytes that are sealed into the chain.
    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// An event as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainedEvent {
    /// Its position in the chain, from 1 without gaps.
    pub seq: i64,
    /// The event itself, its fields inline when serialised.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// The hash of the event before it ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// This event's link: the hash (or keyed MAC) over `prev_hash`, `seq` and the event.
    pub hash: String,
}

/// RFC 3339 in UTC, the form every API and audit time takes.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod test_chains;
#[cfg(test)]
mod tests;
