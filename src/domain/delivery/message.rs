//! What the service sends a customer, as it waits in the outbox: one kind of message with a
//! purpose (a two-factor code, a security notice, …). The storage port
//! ([`OutboxStore`](crate::domain::ports::OutboxStore)) and the delivery worker
//! ([`Courier`](crate::domain::delivery::Courier)) both speak of these, so they live apart from both.
//!
//! Adding a message is a [`Content`] variant (what it carries) and its text in
//! `delivery/render.rs`; the outbox, the claim, the retries and the adapters stay as they are.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::domain::credentials::challenge::{ChallengeId, ChallengePurpose, NewChallenge};
use crate::domain::credentials::factor::{Factor, FactorId, TwoFactorMethod};
use crate::domain::credentials::reset::{NewReset, ResetId};
use crate::domain::customers::{Customer, CustomerId};
use crate::domain::sessions::SessionId;

pub use super::outcome::{ClaimToken, DeliveryEnd, DeliveryState, Finish};

/// A message in the outbox.
#[derive(Debug, Clone)]
pub struct Message {
    /// A code's message has its challenge's id, so that the gateway's idempotency key and the
    /// e-mail's `Message-ID` are the same on every retry.
    pub id: String,
    /// Whose message it is; a notice is marked as told to this customer once delivered.
    pub customer_id: CustomerId,
    /// SMS or e-mail: which adapter delivers it.
    pub channel: TwoFactorMethod,
    /// The unmasked phone number or e-mail address.
    pub address: String,
    /// The purpose and what it carries.
    pub content: Content,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Not sent after this: a late code or notice is worse than none.
    pub expires_at: OffsetDateTime,
    /// Attempts made, this one included once claimed.
    pub attempts: u32,
    /// The claim this worker holds: finishing needs it, so a worker whose lease ran out cannot
    /// overwrite what another did since.
    pub claim: ClaimToken,
    /// Whether it is still worth sending: a code's challenge is the session's open one and the
    /// session has not ended. A superseded code is never sent.
    pub live: bool,
    /// Whether an earlier attempt may have delivered it (a timeout, a dropped connection).
    pub maybe_delivered: bool,
    /// Whether its e-mail carries a "this wasn't me" link: only a notice to the profile's own
    /// mailbox does, never one to a factor's, which a thief may have added.
    pub lockdown_link: bool,
}

/// What a message carries, by purpose.
#[derive(Debug, Clone)]
pub enum Content {
    /// A two-factor code for a session waiting for it.
    Code(CodeContent),
    /// A security notice: facts the server derived, never text a client chose.
    Notice(NoticeContent),
    /// A change to how the customer signs in, told at a destination they held before it.
    Account(AccountChange),
    /// A forgotten password's reset code, to the profile's e-mail address.
    ResetCode(ResetCodeContent),
}

impl Content {
    /// The purpose as stored and as the outbox file names it.
    pub fn purpose(&self) -> &'static str {
        match self {
            Self::Code(_) => CODE_PURPOSE,
            Self::Notice(_) => NOTICE_PURPOSE,
            Self::Account(_) => ACCOUNT_NOTICE_PURPOSE,
            Self::ResetCode(_) => RESET_CODE_PURPOSE,
        }
    }
}

/// A change to how a customer signs in that they are told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// Their password was changed by a signed-in session.
    PasswordChanged,
    /// Their password was set by a completed reset, or by FinHub's support.
    PasswordReset,
    /// A second factor was added (confirmed).
    FactorAdded,
    /// A second factor was removed.
    FactorRemoved,
    /// A new set of recovery codes was made.
    RecoveryCodesCreated,
    /// A recovery code was used; `remaining` are left.
    RecoveryCodeUsed {
        /// Unused codes left after this one.
        remaining: u32,
    },
    /// Failures locked the account, until `until` (set by the store when the lock is taken).
    AccountLocked {
        /// When the lock ends.
        until: Option<OffsetDateTime>,
    },
    /// The customer locked their account down ("this wasn't me").
    LockedDown,
}

impl AccountChange {
    /// The notice's name, as the outbox file and the audit trail name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordChanged => "password.changed",
            Self::PasswordReset => "password.reset",
            Self::FactorAdded => "factor.added",
            Self::FactorRemoved => "factor.removed",
            Self::RecoveryCodesCreated => "recovery_codes.created",
            Self::RecoveryCodeUsed { .. } => "recovery_code.used",
            Self::AccountLocked { .. } => "account.locked",
            Self::LockedDown => "account.lockdown",
        }
    }

    /// Whether its e-mail carries a "this wasn't me" link: every notice of a change a thief
    /// would make. A lock's notice tells of attempts that failed, and a lockdown's of the
    /// customer's own act.
    pub fn offers_lockdown(self) -> bool {
        !matches!(self, Self::AccountLocked { .. } | Self::LockedDown)
    }

    /// As stored in the message's payload: the name, and what the text needs (`name;n`).
    pub fn to_stored(self) -> String {
        match self {
            Self::RecoveryCodeUsed { remaining } => format!("{};{remaining}", self.as_str()),
            Self::AccountLocked { until: Some(until) } => {
                format!("{};{}", self.as_str(), crate::clock::to_unix_millis(until))
            }
            other => other.as_str().to_owned(),
        }
    }

    /// The change of a stored payload; `None` for one this version does not know.
    pub fn from_stored(s: &str) -> Option<Self> {
        let (name, number) = match s.split_once(';') {
            Some((name, n)) => (name, Some(n.parse::<i64>().ok()?)),
            None => (s, None),
        };
        match (name, number) {
            ("recovery_code.used", Some(remaining)) => Some(Self::RecoveryCodeUsed {
                remaining: u32::try_from(remaining).ok()?,
            }),
            ("account.locked", until) => Some(Self::AccountLocked {
                until: until.map(crate::clock::from_unix_millis),
            }),
            (name, None) => [
                Self::PasswordChanged,
                Self::PasswordReset,
                Self::FactorAdded,
                Self::FactorRemoved,
                Self::RecoveryCodesCreated,
                Self::LockedDown,
            ]
            .into_iter()
            .find(|c| c.as_str() == name),
            _ => None,
        }
    }
}

/// The stored purpose of a code's message.
pub const CODE_PURPOSE: &str = "2fa_code";
/// The stored purpose of a security notice.
pub const NOTICE_PURPOSE: &str = "security_notice";
/// The stored purpose of a notice of an account change.
pub const ACCOUNT_NOTICE_PURPOSE: &str = "account_notice";
/// The stored purpose of a password reset's code, as the outbox file names it.
pub const RESET_CODE_PURPOSE: &str = "password_reset";

/// What a two-factor code's message carries.
#[derive(Debug, Clone)]
pub struct CodeContent {
    /// The challenge the code answers: once it is no longer the session's open one, the code is
    /// not sent.
    pub challenge_id: ChallengeId,
    /// The pending session waiting for the code; once it ends, the message is no longer worth
    /// sending.
    pub session_id: SessionId,
    /// The code, sealed by [`CodeSeal`](crate::domain::delivery::CodeSeal).
    pub sealed_code: Vec<u8>,
    /// The code's validity, told to the customer in the message's text.
    pub valid_for_minutes: i64,
    /// The factor the code confirms (sent to a new phone or mailbox), if that is what it is for.
    pub factor: Option<FactorId>,
}

/// What a password reset's code carries.
#[derive(Debug, Clone)]
pub struct ResetCodeContent {
    /// The reset the code answers: once it is no longer open, the code is not sent.
    pub reset_id: ResetId,
    /// The code, sealed by [`CodeSeal`](crate::domain::delivery::CodeSeal) for the reset.
    pub sealed_code: Vec<u8>,
    /// The code's validity, told to the customer in the message's text.
    pub valid_for_minutes: i64,
}

/// What a security notice carries.
#[derive(Debug, Clone)]
pub struct NoticeContent {
    /// What the notice is about (a new country, network or device): a customer is told of one
    /// signal once, marked when the notice is delivered; a notice of a signal already told, or
    /// already waiting, is not queued.
    pub signal: String,
    /// What the notice tells the customer, all derived by the server.
    pub facts: NoticeFacts,
}

/// What an unusual-sign-in notice says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeFacts {
    /// ISO 3166 alpha-2, when known.
    pub country: Option<String>,
    /// Browser and system families from the user agent ("Firefox on Windows").
    pub device: Option<String>,
    /// What made the sign-in unusual, e.g. `NEW_DEVICE`.
    pub flags: Vec<String>,
}

impl Message {
    /// A notice not sent within a day is news no longer.
    pub const NOTICE_LIFETIME: Duration = Duration::days(1);

    /// A code's message, to be written with its challenge.
    pub fn code(
        challenge: &NewChallenge,
        channel: TwoFactorMethod,
        customer: &CustomerId,
        address: String,
        sealed_code: Vec<u8>,
    ) -> Self {
        Self {
            id: challenge.id.as_str().to_owned(),
            ..Self::unsent(
                customer,
                channel,
                address,
                Content::Code(CodeContent {
                    challenge_id: challenge.id.clone(),
                    session_id: challenge.session_id.clone(),
                    sealed_code,
                    valid_for_minutes: (challenge.expires_at - challenge.created_at)
                        .whole_minutes(),
                    factor: match challenge.purpose {
                        ChallengePurpose::Confirm | ChallengePurpose::Enrol => {
                            challenge.factor_id.clone()
                        }
                        _ => None,
                    },
                }),
                challenge.created_at,
                challenge.expires_at,
            )
        }
    }

    /// A reset code's message to the profile's e-mail address, under the reset's id.
    pub fn reset_code(reset: &NewReset, customer: &Customer, sealed_code: Vec<u8>) -> Self {
        Self {
            id: reset.id.as_str().to_owned(),
            ..Self::unsent(
                &customer.id,
                TwoFactorMethod::Email,
                customer.email.as_str().to_owned(),
                Content::ResetCode(ResetCodeContent {
                    reset_id: reset.id.clone(),
                    sealed_code,
                    valid_for_minutes: (reset.expires_at - reset.created_at).whole_minutes(),
                }),
                reset.created_at,
                reset.expires_at,
            )
        }
    }

    /// A message queued at `now`, not yet claimed or attempted, under a fresh id.
    fn unsent(
        customer: &CustomerId,
        channel: TwoFactorMethod,
        address: String,
        content: Content,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            customer_id: customer.clone(),
            channel,
            address,
            content,
            created_at: now,
            expires_at,
            attempts: 0,
            claim: ClaimToken::unclaimed(),
            live: true,
            maybe_delivered: false,
            lockdown_link: false,
        }
    }

    /// Notices of `change`, one to each destination the customer holds before it: the
    /// profile's e-mail address and phone, and every factor's, each once. A thief who changes
    /// one cannot hide the change from the others.
    pub fn account_notices<'a>(
        customer: &Customer,
        factors: impl IntoIterator<Item = &'a Factor>,
        change: AccountChange,
        now: OffsetDateTime,
    ) -> Vec<Self> {
        let profile = std::iter::once((TwoFactorMethod::Email, customer.email.as_str())).chain(
            customer
                .phone
                .iter()
                .map(|p| (TwoFactorMethod::Sms, p.as_str())),
        );
        let held = factors
            .into_iter()
            .filter_map(|f| f.kind.address().map(|address| (f.method(), address)));
        let mut destinations: Vec<(TwoFactorMethod, &str)> = Vec::new();
        for destination in profile.chain(held) {
            if !destinations.contains(&destination) {
                destinations.push(destination);
            }
        }
        destinations
            .into_iter()
            .map(|(channel, address)| Self {
                lockdown_link: channel == TwoFactorMethod::Email
                    && address == customer.email.as_str()
                    && change.offers_lockdown(),
                ..Self::unsent(
                    &customer.id,
                    channel,
                    address.to_owned(),
                    Content::Account(change),
                    now,
                    now + Self::NOTICE_LIFETIME,
                )
            })
            .collect()
    }

    /// A lock notice completed with when the lock it tells of ends; any other message as it is.
    pub fn locked_until(&self, until: OffsetDateTime) -> Self {
        let mut message = self.clone();
        if let Content::Account(AccountChange::AccountLocked { .. }) = message.content {
            message.content = Content::Account(AccountChange::AccountLocked { until: Some(until) });
        }
        message
    }

    /// An unusual-sign-in notice to the customer's e-mail address.
    pub fn notice(
        customer: &Customer,
        signal: String,
        facts: NoticeFacts,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            lockdown_link: true,
            ..Self::unsent(
                &customer.id,
                TwoFactorMethod::Email,
                customer.email.as_str().to_owned(),
                Content::Notice(NoticeContent { signal, facts }),
                now,
                now + Self::NOTICE_LIFETIME,
            )
        }
    }
}
